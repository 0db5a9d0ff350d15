"""Error types of the kit.

Every error a user can meet is one of these classes. Each also subclasses the matching standard
exception so callers may catch either. Messages say what went wrong and what to do next; the CLI
prints them on one line (``KIT_DEBUG=1`` shows the traceback).
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


class KitError(Exception):
    """Base class: a failure the user can fix. Exit code 1 in the CLI."""

    exit_code = 1


class UsageError(KitError, ValueError):
    """The command or request was malformed. Exit code 2."""

    exit_code = 2


class ConfigError(KitError, ValueError):
    """The configuration file or an environment override is invalid."""


class CatalogError(KitError, ValueError):
    """models.yaml has an invalid entry, or a model name is unknown."""


class ModelNotInstalledError(KitError, FileNotFoundError):
    """The model is in the catalogue but not installed under $KIT_HOME."""


class IntegrityError(KitError):
    """A file's sha256 differs from the one recorded: the file changed or is corrupt."""


class UnsafeFormatError(KitError, ValueError):
    """A model source uses a format that can run code (pickle) or needs remote code."""


class DownloadError(KitError, ConnectionError):
    """A download failed or the hub (or its mirror) could not be reached."""


class EngineError(KitError, RuntimeError):
    """The inference engine failed to load or to run."""


class ContextOverflowError(KitError, ValueError):
    """A prompt does not fit in the model's context window."""


class QueueFullError(KitError, RuntimeError):
    """The engine's waiting queue is full; retry later."""


class PolicyError(KitError, PermissionError):
    """A request breaks the usage policy (not acknowledged, blocked personal data, chat closed)."""


class AuditError(KitError):
    """The audit log is damaged or could not be written."""


class DiskFullError(KitError, OSError):
    """Not enough free disk space for the operation."""


def redact(url: str) -> str:
    """A URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
