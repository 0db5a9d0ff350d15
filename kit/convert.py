"""Conversion of Hugging Face folders to GGUF, and quantization of GGUF files.

Conversion runs llama.cpp's own ``convert_hf_to_gguf.py`` *of the llama.cpp version that kit runs*
(the one vendored in the installed llama-cpp-python), in a subprocess, with that version's
``gguf-py`` on ``PYTHONPATH``: a converter from another llama.cpp version can write metadata the
runtime reads differently. ``install_converter`` extracts it from the llama-cpp-python source
distribution into ``<venv>/share/kit/llama.cpp-<version>/`` (``kit models setup-converter``).

The converter's Python dependencies are kit's ``convert`` extra (torch==2.13.0, transformers,
sentencepiece, safetensors, gguf, protobuf). Quantization needs none of them: it goes through
``llama_cpp.llama_model_quantize``.

Safety: only safetensors weights are converted. A folder whose weights are only pickle files
(``.bin``, ``.pt``, ``.pth``, ``.pkl``, ``.ckpt``) is refused, because unpickling can run code; a
folder whose configuration names custom code (``auto_map``) is refused, because kit never runs a
model's remote code. Outputs are written under a temporary name and renamed once complete, so a
failure never leaves a file that looks like a valid model.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kit.catalog import UNSAFE_SUFFIXES
from kit.errors import KitError, ModelNotInstalledError, UnsafeFormatError, UsageError
from kit.models import check_free_space, llama_cpp_version, sha256_file

Progress = Callable[[int, int], None]

OUTTYPES = ("f16", "bf16", "q8_0")
CONVERTER_SCRIPT = "convert_hf_to_gguf.py"
# What is taken from the sdist's vendor/llama.cpp/: the script, the package of model classes it
# imports (conversion/), gguf-py/ of the same version, and llama.cpp's licence (MIT).
_CONVERTER_MEMBERS = (CONVERTER_SCRIPT, "conversion/", "gguf-py/", "LICENSE")
_MARKER = ".kit-converter.json"
GGUF_MAGIC = b"GGUF"
# Python modules the converter imports (the `convert` extra).
CONVERTER_MODULES = ("torch", "numpy", "sentencepiece", "transformers", "safetensors", "yaml", "requests")
# Quantization types that need an importance matrix, which kit does not compute.
IMATRIX_TYPES = ("IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS", "Q2_K_S")
# Approximate bits per weight of each type, to size the disk check and the progress bar.
_BPW = {
    "F32": 32, "F16": 16, "BF16": 16, "Q8_0": 8.5, "Q6_K": 6.6, "Q5_K_M": 5.7, "Q5_K_S": 5.5, "Q5_1": 6,
    "Q5_0": 5.5, "Q4_K_M": 4.9, "Q4_K_S": 4.6, "Q4_1": 5, "Q4_0": 4.5, "IQ4_NL": 4.5, "IQ4_XS": 4.3,
    "Q3_K_L": 4.3, "Q3_K_M": 3.9, "Q3_K_S": 3.5, "Q2_K": 3.4,
}


@dataclass
class HFFolderInfo:
    path: Path
    architectures: list[str]
    weights: list[str]
    weights_size: int
    chat_template: bool


@dataclass
class ConvertResult:
    source: Path
    path: Path
    outtype: str
    size: int
    sha256: str
    seconds: float
    llama_cpp_version: str | None
    converter: Path

    def to_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}


@dataclass
class QuantizeResult:
    source: Path
    path: Path
    qtype: str
    input_size: int
    size: int
    sha256: str
    seconds: float
    llama_cpp_version: str | None
    log: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}
        data.pop("log")
        return data


# --------------------------------------------------------------------------------------------
# The converter of the installed llama.cpp version
# --------------------------------------------------------------------------------------------


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


def _require_converter() -> Path:
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


# --------------------------------------------------------------------------------------------
# Checking a Hugging Face folder
# --------------------------------------------------------------------------------------------


def check_hf_folder(path: str | Path) -> HFFolderInfo:
    """Refuse a folder that is not a safe Hugging Face model folder; describe it otherwise.

    Refused (UnsafeFormatError): weights only in pickle formats (unpickling can run code), or a
    configuration that names custom code (``auto_map``: kit never runs a model's remote code).
    """
    folder = Path(path)
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder: give a Hugging Face model folder (config.json + "
                         "safetensors).")
    files = [p for p in folder.iterdir() if p.is_file()]
    names = [p.name for p in files]
    if "config.json" not in names:
        raise UsageError(f"{folder} has no config.json: it is not a Hugging Face model folder.")
    safetensors = sorted(n for n in names if n.endswith(".safetensors"))
    pickles = sorted(n for n in names if n.lower().endswith(UNSAFE_SUFFIXES))
    if not safetensors:
        if pickles:
            raise UnsafeFormatError(
                f"{folder} holds its weights only as pickle files ({', '.join(pickles[:4])}): loading "
                "pickle can run arbitrary code, so kit refuses it. Use a safetensors or GGUF release of "
                "the model."
            )
        raise UsageError(f"{folder} holds no weights (*.safetensors).")
    for file in files:
        if file.suffix != ".json":
            continue
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            if file.name == "config.json":
                raise UsageError(f"{file} is not valid JSON.") from None
            continue
        if isinstance(data, dict) and "auto_map" in data:
            raise UnsafeFormatError(
                f"{file} names custom code (auto_map: {', '.join(sorted(map(str, data['auto_map'])))}): the "
                "model needs its own Python code to load, and kit does not run a model's remote code. Use "
                "a model whose architecture llama.cpp supports natively."
            )
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    chat = (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file()
    tok_config = folder / "tokenizer_config.json"
    if not chat and tok_config.is_file():
        try:
            chat = bool(json.loads(tok_config.read_text(encoding="utf-8")).get("chat_template"))
        except (OSError, json.JSONDecodeError):
            chat = False
    return HFFolderInfo(
        path=folder,
        architectures=list(config.get("architectures") or []),
        weights=safetensors,
        weights_size=sum((folder / n).stat().st_size for n in safetensors),
        chat_template=chat,
    )


# --------------------------------------------------------------------------------------------
# Conversion
# --------------------------------------------------------------------------------------------


def _partial(out: Path) -> Path:
    return out.with_name(f".{out.name}.partial")


def is_gguf(path: Path) -> bool:
    try:
        with Path(path).open("rb") as fh:
            return fh.read(4) == GGUF_MAGIC
    except OSError:
        return False


def convert(
    hf_dir: str | Path,
    outtype: str = "f16",
    out: str | Path | None = None,
    progress: Progress | None = None,
) -> ConvertResult:
    """Convert a Hugging Face folder (safetensors) to one GGUF file with llama.cpp's converter.

    ``out`` defaults to ``./<folder name>.<OUTTYPE>.gguf``. The converter runs offline
    (HF_HUB_OFFLINE=1): converting a local folder never reaches a hub.
    """
    outtype = outtype.lower()
    if outtype not in OUTTYPES:
        raise UsageError(f"unknown conversion type '{outtype}': use one of {', '.join(OUTTYPES)}.")
    info = check_hf_folder(hf_dir)
    directory = _require_converter()
    src = info.path.resolve()
    dest = Path(out) if out is not None else Path.cwd() / f"{src.name}.{outtype.upper()}.gguf"
    dest = dest.resolve()
    if dest.is_dir():
        dest = dest / f"{src.name}.{outtype.upper()}.gguf"
    needed = info.weights_size if outtype != "q8_0" else int(info.weights_size * 0.6)
    check_free_space(dest.parent, needed)
    tmp = _partial(dest)
    tmp.unlink(missing_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(directory / "gguf-py"), env.get("PYTHONPATH", "")]))
    env.pop("NO_LOCAL_GGUF", None)
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"})
    cmd = [sys.executable, str(directory / CONVERTER_SCRIPT), str(src),
           "--outfile", str(tmp), "--outtype", outtype]
    started = time.monotonic()
    tail: deque[str] = deque(maxlen=40)
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                                cwd=str(directory))
        assert proc.stdout is not None
        _pump(proc.stdout, tail, progress)
        rc = proc.wait()
        if rc != 0:
            raise KitError(f"converting {src} failed (exit {rc}): {_error_summary(tail)}")
        if not is_gguf(tmp):
            raise KitError(f"converting {src} produced no GGUF file: {_error_summary(tail)}")
        os.replace(tmp, dest)
    except OSError as exc:
        if exc.errno == 28:
            from kit.errors import DiskFullError

            raise DiskFullError(f"disk full while writing {dest}: free some space and convert again.") \
                from None
        raise
    finally:
        tmp.unlink(missing_ok=True)
    seconds = time.monotonic() - started
    return ConvertResult(
        source=src, path=dest, outtype=outtype, size=dest.stat().st_size, sha256=sha256_file(dest),
        seconds=round(seconds, 2), llama_cpp_version=llama_cpp_version(),
        converter=directory / CONVERTER_SCRIPT,
    )


_PERCENT = re.compile(r"Writing:\s+(\d{1,3})%")


def _pump(stream: Any, tail: deque[str], progress: Progress | None) -> None:
    """Read the converter's output: keep the last lines, report tqdm's 'Writing: N%' as progress."""
    buffer = b""
    last = -1
    while True:
        chunk = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)
        if not chunk:
            break
        buffer += chunk
        pieces = re.split(rb"[\r\n]", buffer)
        buffer = pieces.pop()
        for raw in pieces:
            line = raw.decode("utf-8", "replace").rstrip()
            if not line:
                continue
            match = _PERCENT.search(line)
            if match:
                pct = int(match.group(1))
                if progress and pct != last:
                    last = pct
                    try:
                        progress(pct, 100)
                    except Exception:  # noqa: BLE001 - a progress display never breaks a conversion
                        pass
                continue
            tail.append(line)
    if buffer.strip():
        tail.append(buffer.decode("utf-8", "replace").rstrip())


def _error_summary(tail: deque[str]) -> str:
    lines = list(tail)
    for i in range(len(lines) - 1, -1, -1):  # the last exception line, if there is a traceback
        if re.match(r"^[A-Za-z_.]*(Error|Exception)\b", lines[i]):
            return lines[i]
    interesting = [ln for ln in lines if "ERROR" in ln or "Error" in ln]
    return " | ".join((interesting or lines)[-3:]) or "no output"


# --------------------------------------------------------------------------------------------
# Quantization
# --------------------------------------------------------------------------------------------


def quant_types() -> dict[str, int]:
    """Every quantization type llama_model_quantize offers: name -> llama_ftype value."""
    import llama_cpp

    types: dict[str, int] = {}
    for attr in dir(llama_cpp):
        if attr.startswith("LLAMA_FTYPE_MOSTLY_"):
            types[attr[len("LLAMA_FTYPE_MOSTLY_"):]] = int(getattr(llama_cpp, attr))
    if hasattr(llama_cpp, "LLAMA_FTYPE_ALL_F32"):
        types["F32"] = int(llama_cpp.LLAMA_FTYPE_ALL_F32)
    return dict(sorted(types.items(), key=lambda kv: kv[1]))


def ftype_name(value: int) -> str | None:
    for name, number in quant_types().items():
        if number == value:
            return name
    return None


def _default_quant_out(src: Path, qtype: str) -> Path:
    stem = src.name[: -len(".gguf")] if src.name.lower().endswith(".gguf") else src.name
    stem = re.sub(r"[.-](f32|f16|bf16|q8_0)$", "", stem, flags=re.IGNORECASE)
    return src.with_name(f"{stem}.{qtype}.gguf")


def quantize(
    in_gguf: str | Path,
    qtype: str,
    out: str | Path | None = None,
    progress: Progress | None = None,
    nthread: int = 0,
) -> QuantizeResult:
    """Quantize a GGUF file with llama.cpp (``llama_model_quantize``, default parameters).

    ``qtype`` is a llama.cpp type name (Q4_K_M, Q5_K_M, Q8_0...; see ``quant_types()``). ``out``
    defaults to the input's name with the type swapped in. ``progress(done, expected)`` is called
    from a thread that watches the output grow (``expected`` is an estimate).
    """
    import llama_cpp

    types = quant_types()
    name = qtype.strip().upper()
    if name not in types:
        raise UsageError(f"unknown quantization type '{qtype}': valid types are {', '.join(types)}.")
    src = Path(in_gguf).resolve()
    if not src.is_file():
        raise UsageError(f"{src} does not exist.")
    if not is_gguf(src):
        raise UsageError(f"{src} is not a GGUF file (no GGUF magic): convert it first with `kit models "
                         "convert`.")
    dest = (Path(out) if out is not None else _default_quant_out(src, name)).resolve()
    if dest.is_dir():
        dest = _default_quant_out(dest / src.name, name)
    if dest == src:
        raise UsageError(f"the output {dest} would overwrite the input: choose another name with -o.")
    in_size = src.stat().st_size
    expected = int(in_size * _BPW.get(name, 16) / 16 * 1.05)
    check_free_space(dest.parent, expected)
    tmp = _partial(dest)
    tmp.unlink(missing_ok=True)

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = types[name]
    params.nthread = nthread
    errors: list[str] = []
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.5):
            try:
                size = tmp.stat().st_size
            except OSError:
                continue
            try:
                progress(min(size, expected), expected)  # type: ignore[misc]
            except Exception:  # noqa: BLE001 - a progress display never breaks a quantization
                pass

    watcher = threading.Thread(target=watch, name="kit-quantize-progress", daemon=True) if progress else None
    started = time.monotonic()
    try:
        with _capture_llama_errors(errors):
            if watcher:
                watcher.start()
            rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), ctypes.byref(params))
        if rc != 0 or not is_gguf(tmp):
            hint = ""
            if name in IMATRIX_TYPES:
                hint = f" {name} needs an importance matrix, which kit does not compute: use Q4_K_M or Q8_0."
            detail = " ".join(e.strip() for e in errors if e.strip())[-400:] or "see llama.cpp's log above"
            raise KitError(f"llama.cpp could not quantize {src.name} to {name}: {detail}.{hint}")
        os.replace(tmp, dest)
    finally:
        done.set()
        if watcher and watcher.is_alive():
            watcher.join(timeout=2)
        tmp.unlink(missing_ok=True)
    seconds = time.monotonic() - started
    size = dest.stat().st_size
    if progress:
        try:
            progress(size, size)
        except Exception:  # noqa: BLE001
            pass
    return QuantizeResult(
        source=src, path=dest, qtype=name, input_size=in_size, size=size, sha256=sha256_file(dest),
        seconds=round(seconds, 2), llama_cpp_version=llama_cpp_version(), log=errors,
    )


class _capture_llama_errors:
    """Route llama.cpp's log through a callback that keeps error lines (restored afterwards).

    Info lines are dropped (quantization logs every tensor); errors are kept for the exception
    message and still printed when KIT_DEBUG is set.
    """

    def __init__(self, sink: list[str]) -> None:
        self.sink = sink
        self.last_level = 0
        self._callback: Any = None

    def __enter__(self) -> _capture_llama_errors:
        import llama_cpp

        def _cb(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
            if level != 5:  # GGML_LOG_LEVEL_CONT continues the previous line
                self.last_level = level
            if self.last_level in (2, 3):  # warnings and errors
                message = text.decode("utf-8", "replace")
                self.sink.append(message)
                if os.environ.get("KIT_DEBUG"):
                    sys.stderr.write(message)

        self._callback = llama_cpp.llama_log_callback(_cb)
        llama_cpp.llama_log_set(self._callback, ctypes.c_void_p(0))
        return self

    def __exit__(self, *exc: object) -> None:
        import llama_cpp

        try:
            from llama_cpp import _logger

            llama_cpp.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))
        except Exception:  # noqa: BLE001 - fall back to llama.cpp's default logger
            llama_cpp.llama_log_set(None, ctypes.c_void_p(0))  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Reading a GGUF file through llama.cpp (metadata only)
# --------------------------------------------------------------------------------------------


def gguf_metadata(path: str | Path) -> dict[str, str]:
    """Load only the vocabulary and metadata of a GGUF file through llama.cpp (fast, no weights).

    Raises KitError when llama.cpp cannot load it: this is the check that a file is a model the
    runtime reads, not merely a file with a GGUF header.
    """
    import llama_cpp

    file = Path(path)
    if not is_gguf(file):
        raise KitError(f"{file} is not a GGUF file.")
    llama_cpp.llama_backend_init()
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    errors: list[str] = []
    with _capture_llama_errors(errors):
        model = llama_cpp.llama_model_load_from_file(str(file).encode(), params)
    if not model:
        detail = " ".join(e.strip() for e in errors if e.strip())[-300:]
        raise KitError(f"llama.cpp cannot load {file}: {detail or 'unknown error'}.")
    try:
        meta: dict[str, str] = {}
        buf = ctypes.create_string_buffer(1 << 16)
        for i in range(llama_cpp.llama_model_meta_count(model)):
            n = llama_cpp.llama_model_meta_key_by_index(model, i, buf, len(buf))
            if n < 0:
                continue
            key = buf.value.decode("utf-8", "replace")
            n = llama_cpp.llama_model_meta_val_str_by_index(model, i, buf, len(buf))
            if n < 0:
                continue
            if n >= len(buf):  # a long value (a chat template): ask again with room for it
                big = ctypes.create_string_buffer(n + 1)
                llama_cpp.llama_model_meta_val_str_by_index(model, i, big, len(big))
                meta[key] = big.value.decode("utf-8", "replace")
                continue
            meta[key] = buf.value.decode("utf-8", "replace")
        return meta
    finally:
        llama_cpp.llama_model_free(model)
