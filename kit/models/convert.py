"""Conversion of Hugging Face folders to GGUF.

Conversion runs llama.cpp's own ``convert_hf_to_gguf.py`` of the llama.cpp version that kit runs
(kit.models.converter installs it), in a subprocess, with that version's ``gguf-py`` on ``PYTHONPATH``.
Quantization of the result is kit.models.quantize's (``llama_model_quantize``, no converter needed).

Safety: only safetensors weights are converted. A folder whose weights are only pickle files
(``.bin``, ``.pt``, ``.pth``, ``.pkl``, ``.ckpt``) is refused, because unpickling can run code; a
folder whose configuration names custom code (``auto_map``) is refused, because kit never runs a
model's remote code. Outputs are written under a temporary name and renamed once complete, so a
failure never leaves a file that looks like a valid model.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kit.errors import KitError, UnsafeFormatError, UsageError
from kit.files import Progress, check_free_space, sha256_file
from kit.models.catalog import UNSAFE_SUFFIXES
from kit.models.converter import CONVERTER_SCRIPT, require_converter
from kit.models.lock import llama_cpp_version

OUTTYPES = ("f16", "bf16", "q8_0")
GGUF_MAGIC = b"GGUF"


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


def partial_path(out: Path) -> Path:
    """The name an output is written under until it is complete (then renamed)."""
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
    directory = require_converter()
    src = info.path.resolve()
    dest = Path(out) if out is not None else Path.cwd() / f"{src.name}.{outtype.upper()}.gguf"
    dest = dest.resolve()
    if dest.is_dir():
        dest = dest / f"{src.name}.{outtype.upper()}.gguf"
    needed = info.weights_size if outtype != "q8_0" else int(info.weights_size * 0.6)
    check_free_space(dest.parent, needed)
    tmp = partial_path(dest)
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
