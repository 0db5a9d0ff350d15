"""The Hugging Face hub (or its mirror) as kit reaches it, and the hub cache under $KIT_HOME.

Everything goes through the real ``huggingface_hub`` client (imported inside the functions):

* ``remote_files`` lists a repository's files at the catalogue's pinned commit, with each file's
  sha256 from the hub's metadata (``HfApi.model_info(files_metadata=True)``: the LFS sha256, or the
  git blob id of a small file); offline, the files of that revision found in the cache;
* ``download`` fetches (or finds in the cache) each file, hashes it and compares it with that
  metadata, and with the sha256 models.yaml pins when it pins one. A mismatch removes the bad
  download (and nothing valid) and raises IntegrityError;
* ``HF_ENDPOINT`` (an internal mirror), ``HF_TOKEN`` (gated models) and ``HF_HUB_OFFLINE=1`` are
  read at each call (``hub_for``); offline, files are taken from the cache only;
* the client retries a dropped connection itself and resumes it with an HTTP Range request (up to
  five times in a row without progress). Note: huggingface_hub 2.x deletes a partial file when a
  download call finally fails, so a later ``kit models pull`` starts that file again;
* downloads land in ``$KIT_HOME/hub-cache`` (``hub_cache_dir``, the hub's cache layout);
  ``forget_revision`` and ``forget_blobs`` remove what kit no longer needs from it.

Client and HTTP failures become kit errors that say what to do (``DownloadError``,
``DiskFullError``, ``IntegrityError``).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kit.errors import DiskFullError, DownloadError, IntegrityError, KitError
from kit.files import Progress, sha256_file


def hub_cache_dir(home: Path) -> Path:
    return home / "hub-cache"


@dataclass
class RemoteFile:
    name: str
    size: int | None
    sha256: str | None  # LFS files
    git_sha1: str | None  # small files stored in git

    @property
    def expected(self) -> str:
        return self.sha256 or self.git_sha1 or ""


@dataclass
class Hub:
    endpoint: str
    offline: bool
    cache: Path


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def hub_for(home: Path) -> Hub:
    from huggingface_hub import constants

    endpoint = (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")
    offline = _truthy(os.environ.get("HF_HUB_OFFLINE")) or bool(constants.HF_HUB_OFFLINE)
    return Hub(endpoint=endpoint, offline=offline, cache=hub_cache_dir(home))


def offline_error(repo: str, revision: str, what: str, cache: Path) -> DownloadError:
    return DownloadError(
        f"offline mode is on (HF_HUB_OFFLINE=1) and {repo}@{revision[:12]} {what} is not in the cache "
        f"{cache}; use `kit models import PATH` with a copy brought from a connected machine (`kit models "
        "export` there), or unset HF_HUB_OFFLINE."
    )


def _hub_error(exc: BaseException, repo: str, revision: str, hub: Hub, what: str = "") -> KitError:
    """Translate a huggingface_hub / HTTP failure into a kit error saying what to do."""
    from huggingface_hub import errors as hf_errors

    where = f"{repo}@{revision[:12]}" + (f" {what}" if what else "")
    if isinstance(exc, KitError):
        return exc
    if isinstance(exc, hf_errors.OfflineModeIsEnabled):
        return offline_error(repo, revision, what or "metadata", hub.cache)
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
            return offline_error(repo, revision, what or "metadata", hub.cache)
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


def remote_files(repo: str, revision: str, hub: Hub) -> tuple[list[RemoteFile], str]:
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
        files.append(RemoteFile(
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


def repo_cache(hub: Hub, repo: str) -> Path:
    return hub.cache / ("models--" + repo.replace("/", "--"))


def _cached_files(repo: str, revision: str, hub: Hub) -> list[RemoteFile]:
    """Offline: the files of the revision that are in the cache; their hashes are the blob names."""
    snapshot = repo_cache(hub, repo) / "snapshots" / revision
    files: list[RemoteFile] = []
    if not snapshot.is_dir():
        return files
    for path in sorted(snapshot.rglob("*")):
        if not path.is_file():
            continue
        blob = path.resolve().name
        files.append(RemoteFile(
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


def download(repo: str, revision: str, files: list[RemoteFile], hub: Hub, progress: Progress | None,
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


def forget_revision(hub: Hub, repo: str, revision: str) -> None:
    """Remove one revision's snapshot and the blobs no other snapshot uses from the cache."""
    repo_dir = repo_cache(hub, repo)
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


def forget_blobs(hub: Hub, repo: str, hashes: set[str]) -> None:
    """Remove blobs with these sha256s (and links to them) from a repository's cache."""
    repo_dir = repo_cache(hub, repo)
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

