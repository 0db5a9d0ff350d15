"""Errors of the documents library. Each says what to do next."""

from __future__ import annotations

from kit.errors import KitError


class DocumentError(KitError, ValueError):
    """A file cannot be ingested: unknown type, encrypted, damaged, or without text."""


class DocumentNotFoundError(KitError, LookupError):
    """No ingested document has this id or path."""


class IndexStoreError(KitError, RuntimeError):
    """The document index (SQLite, Chroma) cannot be opened or used."""


class EmbeddingModelError(KitError, FileNotFoundError):
    """The embedding model is not installed or cannot be loaded."""
