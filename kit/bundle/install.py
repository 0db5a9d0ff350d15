"""The site's side of a bundle, once install.sh has installed its wheels: the models through the
air-gapped import (sha256 of every file checked against its export), an embedding folder, and the
record of the bundle in ``$KIT_HOME/bundle.json`` that ``kit doctor`` reports.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from kit.bundle.manifest import MANIFEST, SIGNATURE, now, read_manifest
from kit.errors import IntegrityError

RECORD = "bundle.json"  # under $KIT_HOME


def import_models(folder: Path, home: Path, say: Any = print) -> list[str]:
    """Install the bundle's models and embedder folders; models already installed identical are kept."""
    from kit.models.lock import read_lock, verify_one
    from kit.models.transfer import import_path

    manifest = read_manifest((folder / MANIFEST).read_bytes(), str(folder))
    done = []
    bundled = json.loads((folder / "models.lock").read_text(encoding="utf-8")).get("models", {})
    for name in manifest.get("models", []):
        have = read_lock(home).get(name)
        want = bundled.get(name, {}).get("sha256")
        if have is not None and have.sha256 == want and verify_one(home, have).ok:
            say(f"model {name}: already installed, sha256 {want[:12]}… checked")
        else:
            lock = import_path(folder / "models" / name, home, name=name, replace=True)
            say(f"model {name}: imported, sha256 {lock.sha256[:12]}… checked")
        done.append(name)
    for sub in sorted((folder / "embedders").glob("*")) if (folder / "embedders").is_dir() else []:
        _copy_embedder(sub, folder, home / "models" / sub.name, manifest)
        say(f"embedding model {sub.name}: copied to {home / 'models' / sub.name}")
    return done


def _copy_embedder(src: Path, folder: Path, dest: Path, manifest: dict[str, Any]) -> None:
    tmp = dest.with_name(dest.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        target = tmp / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        digest = hashlib.sha256(target.read_bytes()).hexdigest()
        if digest != manifest["files"].get(rel, {}).get("sha256"):
            shutil.rmtree(tmp, ignore_errors=True)
            raise IntegrityError(f"{rel}: sha256 differs from bundle.json / le sha256 diffère")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)


def record(folder: Path, home: Path, source: str | None = None) -> dict[str, Any]:
    """Write ``$KIT_HOME/bundle.json``: which bundle this install came from (earlier ones kept)."""
    body = (folder / MANIFEST).read_bytes()
    manifest = read_manifest(body, str(folder))
    path = home / RECORD
    history: list[dict[str, Any]] = []
    if path.exists():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
            history = [*old.get("history", []), {k: v for k, v in old.items() if k != "history"}]
        except (OSError, json.JSONDecodeError, AttributeError):
            history = []
    entry = {
        "source": source or str(folder),
        "manifest_sha256": hashlib.sha256(body).hexdigest(),
        "created_at": manifest.get("created_at"),
        "installed_at": now(),
        "kit_version": manifest.get("kit_version"),
        "python": manifest.get("python"),
        "backend": manifest.get("backend"),
        "models": manifest.get("models", []),
        "embedder": manifest.get("embedder"),
        "components": len(manifest.get("components", [])),
        "files": len(manifest.get("files", {})),
        "signed": (folder / SIGNATURE).exists(),
        "history": history,
    }
    home.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(entry, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return entry
