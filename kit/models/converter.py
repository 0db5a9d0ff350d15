"""llama.cpp's Hugging Face converter, of the llama.cpp version that kit runs.

Conversion (kit.models.convert) runs llama.cpp's own ``convert_hf_to_gguf.py`` *of the llama.cpp version
that kit runs* (the one vendored in the installed llama-cpp-python): a converter from another
llama.cpp version can write metadata the runtime reads differently. ``install_converter`` extracts
it, with its ``conversion/`` package and that version's ``gguf-py``, from the llama-cpp-python
source distribution into ``<venv>/share/kit/llama.cpp-<version>/`` (``kit models
setup-converter``); ``require_converter`` checks that it and its Python dependencies (kit's
``convert`` extra: torch==2.13.0, transformers, sentencepiece, safetensors, gguf, protobuf) are
installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from kit.errors import KitError, ModelNotInstalledError, UsageError
from kit.files import sha256_file
from kit.models.lock import llama_cpp_version

CONVERTER_SCRIPT = "convert_hf_to_gguf.py"
# What is taken from the sdist's vendor/llama.cpp/: the script, the package of model classes it
# imports (conversion/), gguf-py/ of the same version, and llama.cpp's licence (MIT).
_CONVERTER_MEMBERS = (CONVERTER_SCRIPT, "conversion/", "gguf-py/", "LICENSE")
_MARKER = ".kit-converter.json"
# Python modules the converter imports (the `convert` extra).
CONVERTER_MODULES = ("torch", "numpy", "sentencepiece", "transformers", "safetensors", "yaml", "requests")


def _installed_version() -> str:
    version = llama_cpp_version()
    if not version:
        raise ModelNotInstalledError(
            "llama-cpp-python is not installed in kit's environment: run scripts/install.sh (or `pip "
            "install llama-cpp-python==0.3.36`) first."
        )
    return version


def converter_dir() -> Path:
    """Where the converter of the installed llama.cpp version lives (it may not be installed yet)."""
    return Path(sys.prefix) / "share" / "kit" / f"llama.cpp-{_installed_version()}"


def _converter_complete(directory: Path) -> bool:
    return (
        (directory / CONVERTER_SCRIPT).is_file()
        and (directory / "gguf-py" / "gguf" / "__init__.py").is_file()
        and (directory / "conversion").is_dir()
    )


def _sdist_version(sdist: Path) -> str | None:
    match = re.match(r"llama[_-]cpp[_-]python-(\d[^/]*?)\.(tar\.gz|tgz|zip)$", sdist.name)
    return match.group(1) if match else None


def install_converter(sdist: Path | None = None) -> Path:
    """Extract convert_hf_to_gguf.py, conversion/ and gguf-py/ of the installed llama.cpp version.

    From ``sdist`` (the llama-cpp-python source tarball of exactly the installed version), or when
    None from a tarball fetched with ``pip download --no-binary :all:`` (through pip's own index
    settings, so an internal PyPI mirror works). Idempotent: an installed converter is kept.
    """
    version = _installed_version()
    target = converter_dir()
    if _converter_complete(target):
        return target
    with tempfile.TemporaryDirectory(prefix="kit-converter-") as tmp:
        if sdist is None:
            sdist = _download_sdist(version, Path(tmp))
        sdist = Path(sdist)
        if not sdist.is_file():
            raise UsageError(f"{sdist} does not exist: give the llama-cpp-python-{version} source tarball.")
        found = _sdist_version(sdist)
        if found is not None and found != version:
            raise UsageError(
                f"{sdist.name} is llama-cpp-python {found} but {version} is installed: the converter must "
                f"be of the same llama.cpp version. Give llama_cpp_python-{version}.tar.gz."
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            _extract_converter(sdist, staging)
            (staging / _MARKER).write_text(
                json.dumps({"llama_cpp_python": version, "sdist": sdist.name, "sha256": sha256_file(sdist)},
                           indent=2)
                + "\n",
                encoding="utf-8",
            )
            if target.exists():  # an incomplete earlier attempt
                shutil.rmtree(target)
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return target


def _download_sdist(version: str, dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
           f"llama-cpp-python=={version}", "-d", str(dest)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = " | ".join(line for line in proc.stderr.strip().splitlines()[-3:])
        raise KitError(
            f"could not download the llama-cpp-python {version} source distribution ({tail}). Without "
            f"network, copy llama_cpp_python-{version}.tar.gz here and run `kit models setup-converter "
            "--sdist PATH`."
        )
    found = sorted(dest.glob("llama_cpp_python-*.tar.gz")) + sorted(dest.glob("llama-cpp-python-*.tar.gz"))
    if not found:
        raise KitError(f"pip downloaded no llama-cpp-python {version} source tarball into {dest}.")
    return found[0]


def _extract_converter(sdist: Path, dest: Path) -> None:
    try:
        archive = tarfile.open(sdist, "r:*")
    except (tarfile.TarError, OSError) as exc:
        raise UsageError(f"{sdist} is not a readable source tarball ({exc}).") from None
    with archive:
        wanted: list[tuple[tarfile.TarInfo, str]] = []
        for member in archive.getmembers():
            parts = member.name.split("/")
            try:
                at = parts.index("vendor")
            except ValueError:
                continue
            if parts[at + 1 : at + 2] != ["llama.cpp"]:
                continue
            rel = "/".join(parts[at + 2 :])
            if not rel or not any(rel == m or (m.endswith("/") and rel.startswith(m))
                                  for m in _CONVERTER_MEMBERS):
                continue
            if not (member.isfile() or member.isdir()):
                continue  # no links or devices from an archive
            wanted.append((member, rel))
        if not any(rel == CONVERTER_SCRIPT for _, rel in wanted):
            raise UsageError(f"{sdist} holds no vendor/llama.cpp/{CONVERTER_SCRIPT}: is it "
                             "llama-cpp-python's sdist?")
        for member, rel in wanted:
            path = dest / rel
            if ".." in Path(rel).parts:
                continue
            if member.isdir():
                path.mkdir(parents=True, exist_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            source = archive.extractfile(member)
            if source is None:
                continue
            with source, path.open("wb") as out:
                shutil.copyfileobj(source, out)
    if not _converter_complete(dest):
        raise UsageError(f"{sdist} lacks conversion/ or gguf-py/ next to {CONVERTER_SCRIPT}.")


def require_converter() -> Path:
    directory = converter_dir()
    if not _converter_complete(directory):
        raise ModelNotInstalledError(
            f"llama.cpp's converter for llama-cpp-python {_installed_version()} is not installed "
            f"({directory}): run `kit models setup-converter` (or `kit models setup-converter --sdist "
            "llama_cpp_python-X.tar.gz` without network)."
        )
    missing = [m for m in CONVERTER_MODULES if _find_spec(m) is None]
    if missing:
        raise ModelNotInstalledError(
            f"the converter needs Python packages that are not installed: {', '.join(missing)}. Install "
            "kit's convert extra: pip install 'torch==2.13.0' transformers sentencepiece safetensors gguf "
            "'protobuf<5' (see docs; keep torch pinned, an unpinned torch pulls a CUDA build of several "
            "GB)."
        )
    return directory


def _find_spec(name: str) -> object | None:
    import importlib.util

    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
