"""Moving models without a hub: import from this machine or removable media, export, removal.

``import_path`` installs a GGUF file, a Hugging Face folder (converted, then quantized when asked),
or a folder written by ``export_model`` (air-gapped servers: every file's sha256 is re-verified
against the exported lock entry); ``pull_local`` does the same for a catalogue entry whose source
is ``local``. ``export_model`` copies an installed model with its lock entry and a licence note;
``remove_model`` deletes a model, its hub-cache copies and its lock entry.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict
from pathlib import Path

from kit.errors import (
    IntegrityError,
    KitError,
    ModelNotInstalledError,
    UnsafeFormatError,
    UsageError,
)
from kit.files import Progress, check_free_space, copy_verified, sha256_file
from kit.models.catalog import UNSAFE_SUFFIXES, LocalSource, ModelEntry
from kit.models.hub import Hub, forget_blobs, forget_revision, hub_cache_dir, repo_cache
from kit.models.install import build_gguf, inside, now, write_lock_replacing
from kit.models.lock import LockEntry, llama_cpp_version, models_dir, read_lock, remove_lock_entry, verify_one

EXPORT_SUFFIX = ".lock.json"
EXPORT_FORMAT = 1
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


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
        from kit.models.catalog import load_catalog

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


def pull_local(entry: ModelEntry, source: LocalSource, home: Path, progress: Progress | None = None) -> LockEntry:
    """Install a catalogue entry whose source is ``local``, replacing an installed copy.

    A Hugging Face folder is converted, then quantized to the entry's quant.
    """
    path = Path(source.path).expanduser()
    quantize_to = None
    if path.is_dir():  # a Hugging Face folder: converted, then quantized to the entry's quant
        from kit.models.quantize import quant_types

        wanted = entry.quant.upper()
        if wanted in quant_types() and wanted not in ("F32", "F16", "BF16"):
            quantize_to = wanted
    return _import(path, home, entry.name, quantize_to=quantize_to, outtype="f16",
                   progress=progress, replace=True, entry=entry)


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
        from kit.models.convert import is_gguf

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
    from kit.models.quantize import ftype_name, gguf_metadata

    stem = path.name[: -len(".gguf")] if path.name.lower().endswith(".gguf") else path.stem
    name = _target_name(name or (entry.name if entry else None), stem, home, replace)
    entry = entry or _catalog_entry(name)
    expected = getattr(entry.source, "sha256", None) if entry else None
    meta = gguf_metadata(path)  # refuses a file llama.cpp cannot read
    dest = models_dir(home) / name / path.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    sha = copy_verified(path, dest, expected, progress)
    ftype = meta.get("general.file_type")
    quant = ((ftype_name(int(ftype)) if ftype and ftype.isdigit() else None)
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
        obtained_at=now(),
    )
    write_lock_replacing(home, lock)
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
    from kit.models.convert import check_hf_folder
    from kit.models.quantize import quant_types

    info = check_hf_folder(folder)
    name = _target_name(name or (entry.name if entry else None), folder.resolve().name, home, replace)
    entry = entry or _catalog_entry(name)
    if quantize_to and quantize_to.upper() not in quant_types():
        raise UsageError(f"unknown quantization type '{quantize_to}': valid types are "
                         f"{', '.join(quant_types())}.")
    check_free_space(home, info.weights_size * 2)
    path, steps, quant = build_gguf(folder, home, name, _slug(folder.resolve().name), outtype, quantize_to,
                                    progress)
    licence = (entry.licence if entry else None) or _folder_licence(folder) or "unknown (imported folder)"
    lock = LockEntry(
        name=name, file=f"{name}/{path.name}", sha256=sha256_file(path), size=path.stat().st_size,
        source={"kind": "local", "path": str(folder.resolve()), "sha256": None}, quant=quant, licence=licence,
        revision=None,
        recipe=[f"imported the Hugging Face folder {folder.resolve()} ({len(info.weights)} safetensors "
                f"files, {info.weights_size} bytes)", *steps],
        llama_cpp_version=llama_cpp_version(), obtained_at=now(),
    )
    write_lock_replacing(home, lock)
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
        llama_cpp_version=original.llama_cpp_version, obtained_at=now(), files=installed,
    )
    write_lock_replacing(home, lock)
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
        "exported_at": now(),
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
        if inside(path, root):
            path.unlink(missing_ok=True)
    folder = root / name
    if folder.is_dir() and inside(folder, root) and folder.resolve() != root.resolve():
        shutil.rmtree(folder, ignore_errors=True)
    repo = lock.source.get("repo") if isinstance(lock.source, dict) else None
    if repo:
        hub = Hub(endpoint="", offline=True, cache=hub_cache_dir(home))
        forget_blobs(hub, repo, {lock.sha256, *lock.files.values()})
        if lock.revision:
            snapshot = repo_cache(hub, repo) / "snapshots" / lock.revision
            if snapshot.is_dir() and lock.source.get("kind") == "hub-safetensors":
                forget_revision(hub, repo, lock.revision)
    remove_lock_entry(home, name)
    return lock
