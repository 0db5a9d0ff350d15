"""The wheelhouse: every distribution the kit needs to serve, at the version installed here.

:func:`closure` walks the requirements of ``kit[rag]`` (markers evaluated for this interpreter; the
test, bench and conversion extras are left out) through the installed metadata. :func:`repack` writes
an installed distribution back into a wheel from its RECORD, checking each file's recorded sha256
first: no download, the exact bytes installed here, the original wheel tag. The kit itself, when
installed from a checkout (editable), is built with ``pip wheel`` from its source.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import re
import subprocess
import sys
import sysconfig
import zipfile
from importlib import metadata
from pathlib import Path

from kit.errors import IntegrityError, KitError

SERVING_EXTRAS = frozenset({"rag"})
_SKIP_DIST_INFO = frozenset({"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"})
_EPOCH = (1980, 1, 1, 0, 0, 0)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed() -> dict[str, metadata.Distribution]:
    out: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            out.setdefault(canonical(name), dist)
    return out


def _wanted(requires: list[str], extras: frozenset[str]) -> list[tuple[str, frozenset[str]]]:
    from packaging.requirements import Requirement

    out = []
    envs = [{"extra": e} for e in extras] or [{"extra": ""}]
    for text in requires:
        req = Requirement(text)
        if req.marker is not None and not any(req.marker.evaluate(env) for env in envs):
            continue
        out.append((canonical(req.name), frozenset(req.extras)))
    return out


def closure(requires: list[str], extras: frozenset[str] = SERVING_EXTRAS) -> dict[str, metadata.Distribution]:
    """The installed distributions that the requirements ``requires`` need (``extras`` of the top)."""
    dists = installed()
    wanted: dict[str, metadata.Distribution] = {}
    queue = _wanted(requires, extras)
    done: set[tuple[str, frozenset[str]]] = set()
    while queue:
        name, ext = queue.pop()
        if (name, ext) in done:
            continue
        done.add((name, ext))
        dist = dists.get(name)
        if dist is None:
            raise KitError(f"{name} is needed but not installed in this environment ({sys.prefix}): install "
                           "it, or run `kit bundle create` from the kit's own environment / paquet manquant.")
        wanted[name] = dist
        queue.extend(_wanted(dist.requires or [], ext))
    return wanted


def wheel_requires(wheel: Path) -> list[str]:
    """The Requires-Dist lines of a wheel's METADATA."""
    from email.parser import BytesParser

    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1)
        return BytesParser().parsebytes(zf.read(meta)).get_all("Requires-Dist") or []


def licence_of(dist: metadata.Distribution) -> str:
    meta = dist.metadata
    expression = (meta.get_all("License-Expression") or [""])[0]
    if expression:
        return str(expression).strip()
    text = str((meta.get_all("License") or [""])[0] or "").strip()
    if text and "\n" not in text and len(text) <= 80 and text.upper() != "UNKNOWN":
        return text
    classifiers = [c.split("::")[-1].strip() for c in meta.get_all("Classifier") or []
                   if c.startswith("License ::") and c.count("::") >= 2]
    if classifiers:
        return " OR ".join(dict.fromkeys(classifiers))
    return "UNKNOWN"


def kit_source() -> Path | None:
    """The checkout the running kit is imported from (None when it is installed from a wheel)."""
    import kit

    root = Path(kit.__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").exists() and (root / "kit").is_dir() else None


def _record_hash(data_hash: str) -> str:
    return "sha256=" + base64.urlsafe_b64encode(bytes.fromhex(data_hash)).decode().rstrip("=")


def _dist_info(dist: metadata.Distribution) -> Path:
    path = getattr(dist, "_path", None)
    if path is None:
        raise KitError(f"{dist.metadata['Name']}: cannot find its installed files.")
    return Path(path)


def _tags(info: Path) -> str:
    wheel = info / "WHEEL"
    tags = [line.split(":", 1)[1].strip() for line in wheel.read_text().splitlines()
            if line.startswith("Tag:")] if wheel.exists() else []
    if not tags:
        return "py3-none-any"
    parts = [t.split("-") for t in tags]
    return "-".join(".".join(dict.fromkeys(p[i] for p in parts)) for i in range(3))


def repack(dist: metadata.Distribution, dest: Path) -> Path:
    """Write the installed ``dist`` as a wheel under ``dest``; a file differing from RECORD is refused."""
    info = _dist_info(dist)
    site = info.parent
    name, version = dist.metadata["Name"], dist.version
    stem = f"{re.sub(r'[-_.]+', '_', name)}-{version}"
    scripts_dir = Path(sysconfig.get_path("scripts")).resolve()
    prefix = Path(sys.prefix).resolve()
    entry_scripts = {ep.name for ep in dist.entry_points if ep.group in ("console_scripts", "gui_scripts")}
    out = dest / f"{stem}-{_tags(info)}.whl"
    record: list[tuple[str, str, str]] = []
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for item in dist.files or []:
            rel = item.as_posix()
            if "__pycache__/" in rel or rel.endswith(".pyc"):
                continue
            path = (site / rel).resolve() if rel.startswith("..") else site / rel
            if rel.startswith(info.name + "/") and rel.split("/", 1)[1] in _SKIP_DIST_INFO:
                continue
            if rel.startswith(".."):
                if path.parent == scripts_dir:
                    if path.name in entry_scripts:
                        continue  # pip writes console scripts for this machine's paths
                    arc = f"{stem}.data/scripts/{path.name}"
                else:
                    try:
                        arc = f"{stem}.data/data/{path.relative_to(prefix).as_posix()}"
                    except ValueError:
                        continue
            else:
                arc = rel
            if not path.is_file():
                continue
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            if item.hash is not None and item.hash.mode == "sha256" and _record_hash(digest) != \
                    f"sha256={item.hash.value}":
                out.unlink(missing_ok=True)
                raise IntegrityError(f"{path} ({name} {version}) differs from what was installed (RECORD): "
                                     f"reinstall {name} before making a bundle.")
            if arc.startswith(f"{stem}.data/scripts/") and data.startswith(b"#!") and b"python" in \
                    data.split(b"\n", 1)[0]:
                data = b"#!python\n" + data.split(b"\n", 1)[1]  # pip sets this machine's interpreter
                digest = hashlib.sha256(data).hexdigest()
            zinfo = zipfile.ZipInfo(arc, _EPOCH)
            zinfo.external_attr = (os.stat(path).st_mode & 0xFFFF) << 16
            zinfo.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(zinfo, data, compresslevel=1)
            record.append((arc, _record_hash(digest), str(len(data))))
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerows(record)
        writer.writerow((f"{info.name}/RECORD", "", ""))
        zf.writestr(zipfile.ZipInfo(f"{info.name}/RECORD", _EPOCH), buf.getvalue())
    return out


def build_kit_wheel(source: Path, dest: Path) -> Path:
    """Build the kit's wheel from a checkout, with no network (setuptools of this environment)."""
    before = set(dest.glob("kit-*.whl"))
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", str(dest), str(source)], capture_output=True, text=True, check=False)
    made = sorted(set(dest.glob("kit-*.whl")) - before)
    if result.returncode != 0 or not made:
        raise KitError(f"could not build the kit's wheel from {source}: {result.stderr.strip()[-800:]}")
    return made[0]
