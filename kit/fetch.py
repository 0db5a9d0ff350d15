"""Obtaining models from a Hugging Face hub (or its mirror) and from removable media.

``pull`` installs a catalogue entry whose source is ``hub-gguf``, ``hub-safetensors`` or ``local``
(``kit.models.pull`` handles ``package`` sources and calls this module for the others).
``import_path`` installs a GGUF file, a Hugging Face folder, or a folder written by
``export_model`` (air-gapped servers); ``remove_model`` deletes a model and its lock entry.

Hub downloads go through the real ``huggingface_hub`` client:

* the revision is the catalogue's pinned commit; the file list and every file's sha256 come from
  the hub's metadata (``HfApi.model_info(files_metadata=True)``: the LFS sha256, or the git blob id
  of a small file); every downloaded file is hashed and compared with it, and with the sha256
  models.yaml pins when it pins one. A mismatch installs nothing, removes the bad download (and
  nothing valid) and raises IntegrityError;
* ``HF_ENDPOINT`` (an internal mirror), ``HF_TOKEN`` (gated models) and ``HF_HUB_OFFLINE=1`` are
  read at each call; offline, files are taken from the cache only;
* the client retries a dropped connection itself and resumes it with an HTTP Range request (up to
  five times in a row without progress). Note: huggingface_hub 2.x deletes a partial file when a
  download call finally fails, so a later ``kit models pull`` starts that file again;
* downloads land in ``$KIT_HOME/hub-cache`` (the hub's cache layout). A GGUF is then hard-linked
  into ``$KIT_HOME/models/<name>/`` (copied if the file system refuses links), so keeping the cache
  costs no disk space and a second pull, even offline, finds the file there. A safetensors
  download is removed from the cache once converted; after a failed conversion it is kept, so a
  retry does not download it again (``kit models rm`` or a successful pull removes it).

Only safe formats are accepted: GGUF files, and safetensors weights (pickle weights ``.bin``/
``.pt``/... can run code when loaded) with no custom code (``auto_map``). A repository whose
weights are only pickle files is refused from its file list, before any weights are downloaded.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kit.catalog import (
    UNSAFE_SUFFIXES,
    HubGgufSource,
    HubSafetensorsSource,
    LocalSource,
    ModelEntry,
)
from kit.errors import (
    CatalogError,
    DiskFullError,
    DownloadError,
    IntegrityError,
    KitError,
    ModelNotInstalledError,
    UnsafeFormatError,
    UsageError,
)
from kit.models import (
    LockEntry,
    check_free_space,
    copy_verified,
    llama_cpp_version,
    models_dir,
    read_lock,
    remove_lock_entry,
    sha256_file,
    verify_one,
    write_lock_entry,
)

Progress = Callable[[int, int], None]
EXPORT_SUFFIX = ".lock.json"
EXPORT_FORMAT = 1
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_SPLIT = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$")
# Files of a Hugging Face repository that a conversion never needs and kit never downloads.
_SKIP_SUFFIXES = (".py", ".gguf", ".onnx", ".onnx_data", ".h5", ".msgpack", ".ot", ".tflite", ".pb",
                  ".mlmodel", ".zip", ".tar", ".gz", ".npz", ".npy", ".png", ".jpg", ".jpeg", ".gif", ".mp4")


def hub_cache_dir(home: Path) -> Path:
    return home / "hub-cache"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# ============================================================================================
# Entry point for catalogue entries
# ============================================================================================


def pull(entry: ModelEntry, home: Path, progress: Progress | None = None) -> LockEntry:
    """Install a hub-gguf, hub-safetensors or local catalogue entry; record it in the lock."""
    home = Path(home)
    source = entry.source
    if isinstance(source, HubGgufSource):
        return _pull_hub_gguf(entry, source, home, progress)
    if isinstance(source, HubSafetensorsSource):
        return _pull_hub_safetensors(entry, source, home, progress)
    if isinstance(source, LocalSource):
        path = Path(source.path).expanduser()
        quantize_to = None
        if path.is_dir():  # a Hugging Face folder: converted, then quantized to the entry's quant
            from kit.convert import quant_types

            wanted = entry.quant.upper()
            if wanted in quant_types() and wanted not in ("F32", "F16", "BF16"):
                quantize_to = wanted
        return _import(path, home, entry.name, quantize_to=quantize_to, outtype="f16",
                       progress=progress, replace=True, entry=entry)
    raise UsageError(f"kit.fetch cannot pull a '{source.kind}' source; use kit.models.pull.")


# ============================================================================================
# Hub access
# ============================================================================================


@dataclass
class _RemoteFile:
    name: str
    size: int | None
    sha256: str | None  # LFS files
    git_sha1: str | None  # small files stored in git

    @property
    def expected(self) -> str:
        return self.sha256 or self.git_sha1 or ""


@dataclass
class _Hub:
    endpoint: str
    offline: bool
    cache: Path


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _hub(home: Path) -> _Hub:
    from huggingface_hub import constants

    endpoint = (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")
    offline = _truthy(os.environ.get("HF_HUB_OFFLINE")) or bool(constants.HF_HUB_OFFLINE)
    return _Hub(endpoint=endpoint, offline=offline, cache=hub_cache_dir(home))


def _offline_error(repo: str, revision: str, what: str, cache: Path) -> DownloadError:
    return DownloadError(
        f"offline mode is on (HF_HUB_OFFLINE=1) and {repo}@{revision[:12]} {what} is not in the cache "
        f"{cache}; use `kit models import PATH` with a copy brought from a connected machine (`kit models "
        "export` there), or unset HF_HUB_OFFLINE."
    )


def _hub_error(exc: BaseException, repo: str, revision: str, hub: _Hub, what: str = "") -> KitError:
    """Translate a huggingface_hub / HTTP failure into a kit error saying what to do."""
    from huggingface_hub import errors as hf_errors

    where = f"{repo}@{revision[:12]}" + (f" {what}" if what else "")
    if isinstance(exc, KitError):
        return exc
    if isinstance(exc, hf_errors.OfflineModeIsEnabled):
        return _offline_error(repo, revision, what or "metadata", hub.cache)
    if isinstance(exc, hf_errors.GatedRepoError):
        return DownloadError(
            f"{repo} is gated: accept its licence on the hub with your account, then set HF_TOKEN to a "
            "token of that account (or configure the mirror) and pull again."
        )
    if isinstance(exc, hf_errors.RevisionNotFoundError):
        return DownloadError(f"revision {revision} does not exist in {repo} on {hub.endpoint}: the "
                             "catalogue pin is wrong or the mirror is not up to date.")
    if isinstance(exc, hf_errors.RemoteEntryNotFoundError):
        return DownloadError(f"{where} does not exist on {hub.endpoint}.")
    if isinstance(exc, hf_errors.RepositoryNotFoundError):
        return DownloadError(
            f"{repo} was not found on {hub.endpoint} (or it is private: set HF_TOKEN). Check the catalogue "
            "entry and HF_ENDPOINT."
        )
    if isinstance(exc, hf_errors.LocalEntryNotFoundError):
        if hub.offline:
            return _offline_error(repo, revision, what or "metadata", hub.cache)
        return DownloadError(
            f"cannot reach {hub.endpoint} to download {where}: check the network or set HF_ENDPOINT to an "
            "internal mirror; without network use `kit models import`."
        )
    if isinstance(exc, hf_errors.HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", "?")
        return DownloadError(f"{hub.endpoint} answered HTTP {status} for {where}: "
                             f"{str(exc).splitlines()[0]}. Pull again later; the file will be verified "
                             "whatever happens.")
    if isinstance(exc, OSError) and exc.errno == 28:
        return DiskFullError(f"disk full while downloading {where}: free some space (or set KIT_HOME to a "
                             "larger disk) and pull again.")
    name = type(exc).__name__
    if name.endswith(("ConnectError", "TimeoutException", "ReadTimeout", "ConnectTimeout",
                      "RemoteProtocolError", "NetworkError", "ReadError", "ProxyError")) \
            or isinstance(exc, ConnectionError):
        return DownloadError(
            f"cannot download {where} from {hub.endpoint} ({name}: {exc}): check the network or "
            "HF_ENDPOINT; pull again to retry."
        )
    if isinstance(exc, OSError):
        return DownloadError(f"download of {where} failed: {exc}. Pull again to retry.")
    return DownloadError(f"download of {where} failed ({name}: {exc}).")


def _remote_files(repo: str, revision: str, hub: _Hub) -> tuple[list[_RemoteFile], str]:
    """The repository's files at the revision, with sizes and hashes, and the resolved commit."""
    if hub.offline:
        return _cached_files(repo, revision, hub), revision
    from huggingface_hub import HfApi

    try:
        info = HfApi(endpoint=hub.endpoint).model_info(repo, revision=revision, files_metadata=True)
    except Exception as exc:  # noqa: BLE001 - translated into a kit error
        raise _hub_error(exc, repo, revision, hub, "metadata") from None
    files = []
    for sib in info.siblings or []:
        lfs = sib.lfs
        files.append(_RemoteFile(
            name=sib.rfilename,
            size=(lfs.size if lfs else sib.size),
            sha256=(lfs.sha256 if lfs else None),
            git_sha1=(None if lfs else sib.blob_id),
        ))
    commit = info.sha or revision
    if commit != revision:
        raise IntegrityError(
            f"{hub.endpoint} resolved {repo}@{revision} to commit {commit}: the pinned revision must be a "
            "full commit id, and the mirror must serve it unchanged."
        )
    return files, commit


def _repo_cache(hub: _Hub, repo: str) -> Path:
    return hub.cache / ("models--" + repo.replace("/", "--"))


def _cached_files(repo: str, revision: str, hub: _Hub) -> list[_RemoteFile]:
    """Offline: the files of the revision that are in the cache; their hashes are the blob names."""
    snapshot = _repo_cache(hub, repo) / "snapshots" / revision
    files: list[_RemoteFile] = []
    if not snapshot.is_dir():
        return files
    for path in sorted(snapshot.rglob("*")):
        if not path.is_file():
            continue
        blob = path.resolve().name
        files.append(_RemoteFile(
            name=path.relative_to(snapshot).as_posix(),
            size=path.stat().st_size,
            sha256=blob if re.fullmatch(r"[0-9a-f]{64}", blob) else None,
            git_sha1=blob if re.fullmatch(r"[0-9a-f]{40}", blob) else None,
        ))
    return files


def _tqdm_for(progress: Progress | None, total: int, state: dict[str, int]) -> type | None:
    """A tqdm class for hf_hub_download that reports bytes to ``progress`` instead of drawing a bar."""
    if progress is None:
        return None  # the hub's own progress bar (stderr)
    report: Progress = progress
    from huggingface_hub.utils import tqdm as hf_tqdm

    class _KitProgress(hf_tqdm):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)
            self._kit_done = int(kwargs.get("initial") or 0)

        def update(self, n: float | None = 1) -> bool | None:
            self._kit_done += int(n or 0)
            try:
                report(state["base"] + self._kit_done, total)
            except Exception:  # noqa: BLE001 - a progress display never breaks a download
                pass
            return super().update(n)

    return _KitProgress


def _git_blob_sha1(path: Path) -> str:
    digest = hashlib.sha1(usedforsecurity=False)
    digest.update(f"blob {path.stat().st_size}\0".encode())
    with path.open("rb") as fh:
        while chunk := fh.read(4 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _drop_download(pointer: Path) -> None:
    """Remove a download that failed verification: its blob and the snapshot link to it."""
    try:
        blob = pointer.resolve()
        if blob != pointer and blob.exists():
            blob.unlink()
    except OSError:
        pass
    pointer.unlink(missing_ok=True)


def _download(repo: str, revision: str, files: list[_RemoteFile], hub: _Hub, progress: Progress | None,
              pins: dict[str, str] | None = None) -> dict[str, tuple[Path, str]]:
    """Download (or find in the cache) and verify each file. Returns name -> (cached path, sha256)."""
    from huggingface_hub import hf_hub_download

    pins = pins or {}
    total = sum(f.size or 0 for f in files)
    state = {"base": 0}
    tqdm_class = _tqdm_for(progress, total, state)
    result: dict[str, tuple[Path, str]] = {}
    hub.cache.mkdir(parents=True, exist_ok=True)
    for remote in files:
        try:
            local = Path(hf_hub_download(
                repo_id=repo, filename=remote.name, revision=revision, cache_dir=str(hub.cache),
                endpoint=hub.endpoint, local_files_only=hub.offline, tqdm_class=tqdm_class,
            ))
        except Exception as exc:  # noqa: BLE001 - translated into a kit error
            raise _hub_error(exc, repo, revision, hub, remote.name) from None
        sha = sha256_file(local)
        problems = []
        if remote.sha256 and sha != remote.sha256:
            problems.append(f"the hub's metadata says {remote.sha256}")
        if remote.git_sha1 and not remote.sha256 and _git_blob_sha1(local) != remote.git_sha1:
            problems.append(f"its git blob id should be {remote.git_sha1}")
        pin = pins.get(remote.name)
        if pin and sha != pin:
            problems.append(f"models.yaml pins {pin}")
        if not remote.sha256 and not remote.git_sha1 and not pin:
            _drop_download(local)
            raise IntegrityError(
                f"{repo}@{revision[:12]} {remote.name} has no hash to check it against (no hub metadata and "
                "no sha256 in models.yaml): it is refused. Pull online, or pin its sha256 in models.yaml."
            )
        if problems:
            _drop_download(local)
            raise IntegrityError(
                f"{remote.name} from {repo}@{revision[:12]} ({hub.endpoint}) has sha256 {sha} but "
                f"{' and '.join(problems)}: the download is corrupt or the mirror serves another file. It "
                "was deleted and nothing was installed; pull again, and if it happens again check "
                "HF_ENDPOINT's mirror."
            )
        result[remote.name] = (local, sha)
        state["base"] += remote.size or local.stat().st_size
    return result


def _install_file(src: Path, dest: Path, sha256: str) -> None:
    """Put a verified file in place: a hard link when possible (no extra space), else a copy."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.partial")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src.resolve(), tmp)
        os.replace(tmp, dest)
    except OSError:
        tmp.unlink(missing_ok=True)
        copy_verified(src, dest, sha256)


def _forget_revision(hub: _Hub, repo: str, revision: str) -> None:
    """Remove one revision's snapshot and the blobs no other snapshot uses from the cache."""
    repo_dir = _repo_cache(hub, repo)
    snapshot = repo_dir / "snapshots" / revision
    if not snapshot.is_dir():
        return
    blobs = {p.resolve() for p in snapshot.rglob("*") if p.is_symlink()}
    shutil.rmtree(snapshot, ignore_errors=True)
    still_used = {p.resolve() for p in (repo_dir / "snapshots").rglob("*") if p.is_symlink()}
    for blob in blobs - still_used:
        try:
            blob.unlink()
        except OSError:
            pass
    if not any((repo_dir / "snapshots").iterdir()):
        shutil.rmtree(repo_dir, ignore_errors=True)


def _forget_blobs(hub: _Hub, repo: str, hashes: set[str]) -> None:
    """Remove blobs with these sha256s (and links to them) from a repository's cache."""
    repo_dir = _repo_cache(hub, repo)
    if not repo_dir.is_dir():
        return
    for digest in hashes:
        (repo_dir / "blobs" / digest).unlink(missing_ok=True)
    snapshots = repo_dir / "snapshots"
    if snapshots.is_dir():
        for link in list(snapshots.rglob("*")):
            if link.is_symlink() and not link.exists():
                link.unlink()
        if not any(p.is_file() for p in snapshots.rglob("*")):
            shutil.rmtree(repo_dir, ignore_errors=True)


# ============================================================================================
# hub-gguf
# ============================================================================================


def _match_gguf(files: list[_RemoteFile], pattern: str, repo: str, revision: str) -> list[_RemoteFile]:
    matched = sorted((f for f in files if fnmatch.fnmatchcase(f.name, pattern)), key=lambda f: f.name)
    if not matched:
        ggufs = [f.name for f in files if f.name.endswith(".gguf")]
        raise CatalogError(
            f"no file matching '{pattern}' in {repo}@{revision[:12]}"
            + (f" (GGUF files there: {', '.join(ggufs[:8])})" if ggufs else "")
            + ": fix the catalogue entry's file pattern."
        )
    bad = [f.name for f in matched if not f.name.endswith(".gguf")]
    if bad:
        raise UnsafeFormatError(f"{', '.join(bad)} in {repo} is not a GGUF file: a hub-gguf source takes "
                                "GGUF only.")
    if len(matched) > 1:
        splits = [f for f in matched if _SPLIT.search(f.name)]
        stems = {_SPLIT.sub("", f.name) for f in splits}
        if len(splits) != len(matched) or len(stems) != 1:
            raise CatalogError(
                f"'{pattern}' matches several files in {repo} ({', '.join(f.name for f in matched[:6])}): "
                "make the catalogue's file pattern name one file (or the parts of one split file)."
            )
    return matched


def _pull_hub_gguf(entry: ModelEntry, source: HubGgufSource, home: Path,
                   progress: Progress | None) -> LockEntry:
    hub = _hub(home)
    files, commit = _remote_files(source.repo, source.revision, hub)
    if hub.offline and not files:
        raise _offline_error(source.repo, source.revision, source.file, hub.cache)
    try:
        matched = _match_gguf(files, source.file, source.repo, source.revision)
    except CatalogError:
        if hub.offline:
            raise _offline_error(source.repo, source.revision, source.file, hub.cache) from None
        raise
    main = matched[0]
    pins: dict[str, str] = {}
    if source.sha256:
        if len(matched) > 1:
            raise CatalogError(f"entry '{entry.name}' pins one sha256 but '{source.file}' matches a split "
                               "file.")
        if main.sha256 and main.sha256 != source.sha256:
            raise IntegrityError(
                f"{source.repo}@{source.revision[:12]} {main.name}: models.yaml pins sha256 {source.sha256} "
                f"but the hub ({hub.endpoint}) says {main.sha256}. Nothing was downloaded; the catalogue or "
                "the mirror is wrong."
            )
        pins[main.name] = source.sha256
    need = sum(f.size or 0 for f in matched)
    check_free_space(home, need)
    obtained = _download(source.repo, source.revision, matched, hub, progress, pins)

    dest_dir = models_dir(home) / entry.name
    installed: dict[str, str] = {}
    existed = entry.name in read_lock(home)
    try:
        for remote in matched:
            local, sha = obtained[remote.name]
            dest = dest_dir / Path(remote.name).name
            _install_file(local, dest, sha)
            installed[f"{entry.name}/{dest.name}"] = sha
    except BaseException:
        if not existed:  # no part of a split file is left without its lock entry
            for rel in installed:
                (models_dir(home) / rel).unlink(missing_ok=True)
        raise
    main_rel = f"{entry.name}/{Path(main.name).name}"
    main_sha = installed.pop(main_rel)
    checks = "the hub's LFS metadata" + (" and the sha256 pinned in models.yaml" if source.sha256 else "")
    recipe = [
        f"downloaded {source.repo}@{commit} {main.name}"
        + (f" (+{len(matched) - 1} parts)" if len(matched) > 1 else "")
        + (f" from {hub.endpoint}" if not hub.offline else f" from the hub cache {hub.cache} (offline)"),
        f"verified sha256 {main_sha} against {checks}",
    ]
    lock = LockEntry(
        name=entry.name, file=main_rel, sha256=main_sha, size=(models_dir(home) / main_rel).stat().st_size,
        source=source.model_dump(), quant=entry.quant, licence=entry.licence, revision=commit, recipe=recipe,
        llama_cpp_version=llama_cpp_version(), obtained_at=_now(), files=installed,
    )
    _write_lock_replacing(home, lock)
    return lock


def _write_lock_replacing(home: Path, lock: LockEntry) -> None:
    """Record the entry, then delete files of the previous installation that the new one does not use."""
    previous = read_lock(home).get(lock.name)
    write_lock_entry(home, lock)
    if previous is None:
        return
    keep = {lock.file, *lock.files}
    for rel in {previous.file, *previous.files} - keep:
        path = models_dir(home) / rel
        if _inside(path, models_dir(home)):
            path.unlink(missing_ok=True)


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


# ============================================================================================
# hub-safetensors: download -> convert -> quantize -> verify -> record
# ============================================================================================


def _hf_selection(files: list[_RemoteFile], repo: str) -> list[_RemoteFile]:
    """The files a conversion needs, after refusing pickle-only repositories (from the list alone)."""
    top = [f for f in files if "/" not in f.name]
    safetensors = [f for f in top if f.name.endswith(".safetensors")]
    pickles = [f.name for f in files if f.name.lower().endswith(UNSAFE_SUFFIXES)]
    if not safetensors:
        if pickles:
            raise UnsafeFormatError(
                f"{repo} publishes its weights only as pickle files ({', '.join(pickles[:4])}): loading "
                "pickle can run arbitrary code, so kit refuses it (nothing was downloaded). Use a "
                "safetensors or GGUF release."
            )
        raise CatalogError(f"{repo} has no safetensors weights at its top level: it cannot be converted.")
    if not any(f.name == "config.json" for f in top):
        raise CatalogError(f"{repo} has no config.json: it is not a transformers model repository.")
    prefixed = [f for f in safetensors if f.name.startswith("model")]
    weights = {f.name for f in (prefixed or safetensors)}
    chosen = []
    for f in top:
        low = f.name.lower()
        if low.endswith(".safetensors"):
            if f.name in weights:
                chosen.append(f)
        elif low.endswith(UNSAFE_SUFFIXES) or low.endswith(_SKIP_SUFFIXES):
            continue
        else:
            chosen.append(f)
    return chosen


def _check_configs(paths: dict[str, tuple[Path, str]], repo: str) -> None:
    for name, (path, _) in paths.items():
        if not name.endswith(".json"):
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(data, dict) and "auto_map" in data:
            raise UnsafeFormatError(
                f"{repo}'s {name} names custom code (auto_map): the model needs its own Python code to "
                "load, and kit does not run a model's remote code. Its weights were not downloaded."
            )


def _pull_hub_safetensors(entry: ModelEntry, source: HubSafetensorsSource, home: Path,
                          progress: Progress | None) -> LockEntry:
    from kit import convert as conv

    hub = _hub(home)
    if source.quantize:
        types = conv.quant_types()
        if source.quantize.upper() not in types:
            raise CatalogError(f"entry '{entry.name}': unknown quantize type '{source.quantize}' "
                               f"(valid: {', '.join(types)}).")
    conv._require_converter()  # fail before downloading gigabytes
    files, commit = _remote_files(source.repo, source.revision, hub)
    if hub.offline and not files:
        raise _offline_error(source.repo, source.revision, "(safetensors folder)", hub.cache)
    chosen = _hf_selection(files, source.repo)
    configs = [f for f in chosen if f.name.endswith(".json")]
    rest = [f for f in chosen if not f.name.endswith(".json")]
    weights_size = sum(f.size or 0 for f in rest if f.name.endswith(".safetensors"))
    download_size = sum(f.size or 0 for f in chosen)
    quant_size = int(weights_size * conv._BPW.get((source.quantize or "F16").upper(), 16) / 16)
    check_free_space(home, download_size + weights_size + quant_size)

    obtained = _download(source.repo, source.revision, configs, hub, None)
    _check_configs(obtained, source.repo)
    obtained.update(_download(source.repo, source.revision, rest, hub, progress))
    folder = obtained["config.json"][0].parent  # the snapshot folder: links named as in the repository
    path, steps, quant = _build_gguf(folder, home, entry.name, Path(source.repo).name, source.outtype,
                                     source.quantize, progress)
    total = sum(f.size or 0 for f in chosen)
    recipe = [
        f"downloaded {source.repo}@{commit} ({len(chosen)} files, {total / 2**30:.2f} GiB) from "
        + (hub.endpoint if not hub.offline else f"the hub cache {hub.cache} (offline)")
        + "; every file's sha256 verified against the hub's metadata",
        *steps,
        "removed the intermediate file and the downloaded folder",
    ]
    lock = LockEntry(
        name=entry.name, file=f"{entry.name}/{path.name}", sha256=sha256_file(path), size=path.stat().st_size,
        source=source.model_dump(), quant=quant, licence=entry.licence, revision=commit, recipe=recipe,
        llama_cpp_version=llama_cpp_version(), obtained_at=_now(),
    )
    _write_lock_replacing(home, lock)
    _forget_revision(hub, source.repo, source.revision)
    return lock


def _build_gguf(folder: Path, home: Path, name: str, stem: str, outtype: str, quantize_to: str | None,
                progress: Progress | None) -> tuple[Path, list[str], str]:
    """Convert (and quantize) a Hugging Face folder into $KIT_HOME/models/<name>/; nothing is left on failure.

    Returns the installed file, the recipe steps, and the quantization of the file.
    """
    from kit import convert as conv

    work = models_dir(home) / f".work-{name}-{uuid.uuid4().hex[:8]}"
    work.mkdir(parents=True)
    steps: list[str] = []
    try:
        converted = conv.convert(folder, outtype=outtype, out=work / f"{stem}.{outtype.upper()}.gguf",
                                 progress=progress)
        steps.append(
            f"converted to {outtype.upper()} with llama.cpp's convert_hf_to_gguf.py of llama-cpp-python "
            f"{converted.llama_cpp_version} ({converted.seconds:.1f} s, {converted.size} bytes)"
        )
        final = converted.path
        quant = outtype.upper()
        if quantize_to:
            quantized = conv.quantize(converted.path, quantize_to,
                                      out=work / f"{stem}.{quantize_to.upper()}.gguf", progress=progress)
            steps.append(
                f"quantized {outtype.upper()} -> {quantized.qtype} with llama_model_quantize (default "
                f"parameters, llama-cpp-python {quantized.llama_cpp_version}; {quantized.seconds:.1f} s, "
                f"{quantized.size} bytes)"
            )
            converted.path.unlink(missing_ok=True)
            final, quant = quantized.path, quantized.qtype
        meta = conv.gguf_metadata(final)
        template = "with" if meta.get("tokenizer.chat_template") else "WITHOUT"
        steps.append(f"verified: llama.cpp loads it (architecture {meta.get('general.architecture', '?')}, "
                     f"{template} a chat template in its metadata)")
        dest = models_dir(home) / name / final.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.partial")
        os.replace(final, tmp)
        os.replace(tmp, dest)
        return dest, steps, quant
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ============================================================================================
# Import (air gap), export, removal
# ============================================================================================


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")
    return slug or "model"


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise UsageError(f"'{name}' is not a valid model name: use lowercase letters, digits, '.', '_' and "
                         "'-'.")
    return name


def _catalog_entry(name: str) -> ModelEntry | None:
    try:
        from kit.catalog import load_catalog

        return {e.name: e for e in load_catalog().models}.get(name)
    except KitError:
        return None


def _find_export(path: Path) -> Path | None:
    """The export manifest for a folder (or a GGUF file inside one) written by export_model."""
    folder = path if path.is_dir() else path.parent
    candidates = sorted(folder.glob(f"*{EXPORT_SUFFIX}"))
    for candidate in candidates:
        try:
            data = json.loads(candidate.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(data, dict) and data.get("kit_export") and isinstance(data.get("lock"), dict):
            if path.is_dir() or Path(data["lock"].get("file", "")).name == path.name:
                return candidate
    return None


def import_path(
    path: str | Path,
    home: Path,
    name: str | None = None,
    quantize: str | None = None,
    outtype: str = "f16",
    progress: Progress | None = None,
    replace: bool = False,
) -> LockEntry:
    """Install a model from this machine or removable media, without network.

    ``path`` is a GGUF file, a folder written by ``export_model`` (its lock entry is re-verified:
    every file's sha256 must match), or a Hugging Face folder (safetensors), which is converted to
    ``outtype`` then quantized to ``quantize`` when given. The name defaults to the export's name
    or the file/folder name. When the name is a catalogue entry that pins a sha256, the file must
    match it. An installed name is refused unless ``replace``.
    """
    return _import(Path(path), Path(home), name, quantize, outtype, progress, replace, entry=None)


def _import(path: Path, home: Path, name: str | None, quantize_to: str | None, outtype: str,
            progress: Progress | None, replace: bool, entry: ModelEntry | None) -> LockEntry:
    path = path.expanduser()
    if not path.exists():
        raise UsageError(f"{path} does not exist.")
    manifest = _find_export(path)
    if manifest is not None:
        return _import_export(manifest, home, name, progress, replace)
    if path.is_dir() and (path / "config.json").is_file():
        return _import_hf_folder(path, home, name, quantize_to, outtype, progress, replace, entry)
    if path.is_file():
        from kit.convert import is_gguf

        if not is_gguf(path):
            if path.name.lower().endswith(UNSAFE_SUFFIXES):
                raise UnsafeFormatError(f"{path} is a pickle file, which can run code when loaded: kit "
                                        "imports GGUF files and safetensors folders only.")
            raise UsageError(f"{path} is not a GGUF file.")
        if quantize_to:
            raise UsageError("--quantize applies to Hugging Face folders; quantize a GGUF with `kit models "
                             "quantize`.")
        return _import_gguf(path, home, name, progress, replace, entry)
    raise UsageError(
        f"{path} is neither a GGUF file, a folder written by `kit models export`, nor a Hugging Face folder "
        "(config.json + safetensors)."
    )


def _target_name(name: str | None, default: str, home: Path, replace: bool) -> str:
    chosen = _check_name(name or _slug(default))
    if not replace and chosen in read_lock(home):
        raise UsageError(f"a model named '{chosen}' is already installed: remove it first (`kit models rm "
                         f"{chosen}`) or choose another name with --name.")
    return chosen


def _import_gguf(path: Path, home: Path, name: str | None, progress: Progress | None, replace: bool,
                 entry: ModelEntry | None) -> LockEntry:
    from kit import convert as conv

    stem = path.name[: -len(".gguf")] if path.name.lower().endswith(".gguf") else path.stem
    name = _target_name(name or (entry.name if entry else None), stem, home, replace)
    entry = entry or _catalog_entry(name)
    expected = getattr(entry.source, "sha256", None) if entry else None
    meta = conv.gguf_metadata(path)  # refuses a file llama.cpp cannot read
    dest = models_dir(home) / name / path.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    sha = copy_verified(path, dest, expected, progress)
    ftype = meta.get("general.file_type")
    quant = ((conv.ftype_name(int(ftype)) if ftype and ftype.isdigit() else None)
             or (entry.quant if entry else "?"))
    licence = entry.licence if entry else (meta.get("general.license") or "unknown (imported file; check "
                                                                          "its licence)")
    recipe = [f"imported from {path.resolve()}"]
    recipe.append("sha256 matches the one models.yaml pins" if expected else
                  "no sha256 was pinned for it: the lock records the one computed at import")
    source = {"kind": "local", "path": str(path.resolve()), "sha256": sha}
    lock = LockEntry(
        name=name, file=f"{name}/{dest.name}", sha256=sha, size=dest.stat().st_size, source=source,
        quant=quant, licence=licence, revision=None, recipe=recipe, llama_cpp_version=llama_cpp_version(),
        obtained_at=_now(),
    )
    _write_lock_replacing(home, lock)
    return lock


def _folder_licence(folder: Path) -> str | None:
    readme = folder / "README.md"
    if not readme.is_file():
        return None
    text = readme.read_text(encoding="utf-8", errors="replace")
    match = re.match(r"^---\s*\n(.*?)\n---", text, re.DOTALL)
    if match:
        found = re.search(r"^license:\s*(\S+)", match.group(1), re.MULTILINE)
        if found:
            return found.group(1).strip("'\"")
    return None


def _import_hf_folder(folder: Path, home: Path, name: str | None, quantize_to: str | None, outtype: str,
                      progress: Progress | None, replace: bool, entry: ModelEntry | None) -> LockEntry:
    from kit import convert as conv

    info = conv.check_hf_folder(folder)
    name = _target_name(name or (entry.name if entry else None), folder.resolve().name, home, replace)
    entry = entry or _catalog_entry(name)
    if quantize_to and quantize_to.upper() not in conv.quant_types():
        raise UsageError(f"unknown quantization type '{quantize_to}': valid types are "
                         f"{', '.join(conv.quant_types())}.")
    check_free_space(home, info.weights_size * 2)
    path, steps, quant = _build_gguf(folder, home, name, _slug(folder.resolve().name), outtype, quantize_to,
                                     progress)
    licence = (entry.licence if entry else None) or _folder_licence(folder) or "unknown (imported folder)"
    lock = LockEntry(
        name=name, file=f"{name}/{path.name}", sha256=sha256_file(path), size=path.stat().st_size,
        source={"kind": "local", "path": str(folder.resolve()), "sha256": None}, quant=quant, licence=licence,
        revision=None,
        recipe=[f"imported the Hugging Face folder {folder.resolve()} ({len(info.weights)} safetensors "
                f"files, {info.weights_size} bytes)", *steps],
        llama_cpp_version=llama_cpp_version(), obtained_at=_now(),
    )
    _write_lock_replacing(home, lock)
    return lock


def _import_export(manifest: Path, home: Path, name: str | None, progress: Progress | None,
                   replace: bool) -> LockEntry:
    data = json.loads(manifest.read_text(encoding="utf-8"))
    try:
        original = LockEntry(**data["lock"])
    except TypeError as exc:
        raise UsageError(f"{manifest} is not a kit export manifest ({exc}).") from None
    folder = manifest.parent
    name = _target_name(name, original.name, home, replace)
    parts = {original.file: original.sha256, **original.files}
    check_free_space(home, sum((folder / Path(rel).name).stat().st_size for rel in parts
                               if (folder / Path(rel).name).is_file()))
    installed: dict[str, str] = {}
    done: list[Path] = []
    existed = name in read_lock(home)
    try:
        for rel, expected in parts.items():
            src = folder / Path(rel).name
            if not src.is_file():
                raise IntegrityError(f"{src} is missing from the export {folder}: copy the whole folder "
                                     "again.")
            dest = models_dir(home) / name / src.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                copy_verified(src, dest, expected, progress)
            except IntegrityError:
                raise IntegrityError(
                    f"{src} does not match the sha256 its export recorded ({expected[:12]}…): the copy is "
                    "damaged or was changed. Nothing was installed; export it again on the source server."
                ) from None
            done.append(dest)
            installed[f"{name}/{src.name}"] = expected
    except BaseException:
        if not existed:  # a failed import leaves nothing behind
            for dest in done:
                dest.unlink(missing_ok=True)
            shutil.rmtree(models_dir(home) / name, ignore_errors=True)
        raise
    main_rel = f"{name}/{Path(original.file).name}"
    installed.pop(main_rel)
    lock = LockEntry(
        name=name, file=main_rel, sha256=original.sha256, size=(models_dir(home) / main_rel).stat().st_size,
        source=original.source, quant=original.quant, licence=original.licence, revision=original.revision,
        recipe=[*original.recipe,
                f"exported by kit on {data.get('exported_at', '?')} and imported from {folder.resolve()}; "
                "sha256 of every file verified against the exported lock entry"],
        llama_cpp_version=original.llama_cpp_version, obtained_at=_now(), files=installed,
    )
    _write_lock_replacing(home, lock)
    return lock


def _licence_url(lock: LockEntry) -> str:
    entry = _catalog_entry(lock.name)
    if entry and entry.licence_url:
        return entry.licence_url
    repo = lock.source.get("repo") if isinstance(lock.source, dict) else None
    return f"https://huggingface.co/{repo}" if repo else ""


def export_model(name: str, home: Path, dest_dir: str | Path) -> Path:
    """Copy an installed model for another server: ``<dest_dir>/<name>/`` with the GGUF file(s),
    ``<name>.lock.json`` (its lock entry) and ``README.txt`` (licence, its URL, how to import).

    The file is verified against the lock first; the copy is verified while written. Returns the
    export folder, which ``kit models import`` takes as it is.
    """
    home = Path(home)
    lock = read_lock(home).get(name)
    if lock is None:
        raise ModelNotInstalledError(f"model '{name}' is not installed: nothing to export (`kit models "
                                     "list`).")
    check = verify_one(home, lock)
    if not check.ok:
        raise IntegrityError(check.message)
    out = Path(dest_dir).expanduser() / name
    out.mkdir(parents=True, exist_ok=True)
    parts = {lock.file: lock.sha256, **lock.files}
    check_free_space(out, sum((models_dir(home) / rel).stat().st_size for rel in parts))
    for rel, expected in parts.items():
        copy_verified(models_dir(home) / rel, out / Path(rel).name, expected)
    url = _licence_url(lock)
    manifest = {
        "kit_export": EXPORT_FORMAT,
        "exported_at": _now(),
        "licence": lock.licence,
        "licence_url": url,
        "lock": asdict(lock),
    }
    (out / f"{name}{EXPORT_SUFFIX}").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n",
                                                encoding="utf-8")
    source = lock.source or {}
    origin = (f"{source.get('repo')} at revision {lock.revision}" if source.get("repo")
              else source.get("package") or source.get("path") or source.get("kind", "?"))
    readme = f"""Model: {name}
File: {Path(lock.file).name}
sha256: {lock.sha256}
Size: {lock.size} bytes
Quantization: {lock.quant}
Licence: {lock.licence}
Licence text: {url or "see the model's publisher"}
Origin: {origin}
llama.cpp (llama-cpp-python) version that produced it: {lock.llama_cpp_version or "?"}

The licence above applies to this model file; redistributing it means following it (keep this note
and the licence with the file).

To install on another kit server (no network needed):
    kit models import /path/to/{name}
kit checks the sha256 of every file against {name}{EXPORT_SUFFIX} and refuses a damaged copy.
"""
    (out / "README.txt").write_text(readme, encoding="utf-8")
    return out


def remove_model(name: str, home: Path) -> LockEntry:
    """Delete an installed model's files (and its hub-cache copies) and its lock entry."""
    home = Path(home)
    lock = read_lock(home).get(name)
    if lock is None:
        raise ModelNotInstalledError(f"model '{name}' is not installed (`kit models list` shows what is).")
    root = models_dir(home)
    for rel in {lock.file, *lock.files}:
        path = root / rel
        if _inside(path, root):
            path.unlink(missing_ok=True)
    folder = root / name
    if folder.is_dir() and _inside(folder, root) and folder.resolve() != root.resolve():
        shutil.rmtree(folder, ignore_errors=True)
    repo = lock.source.get("repo") if isinstance(lock.source, dict) else None
    if repo:
        hub = _Hub(endpoint="", offline=True, cache=hub_cache_dir(home))
        _forget_blobs(hub, repo, {lock.sha256, *lock.files.values()})
        if lock.revision:
            snapshot = _repo_cache(hub, repo) / "snapshots" / lock.revision
            if snapshot.is_dir() and lock.source.get("kind") == "hub-safetensors":
                _forget_revision(hub, repo, lock.revision)
    remove_lock_entry(home, name)
    return lock
