"""Quantization of GGUF files, and reading a GGUF file's metadata, through llama.cpp in-process.

Both go through ``llama_cpp`` (imported inside the functions), not through the converter:
``quantize`` calls ``llama_model_quantize`` with default parameters (``quant_types()`` lists the
types it offers); ``gguf_metadata`` loads only a file's vocabulary and metadata, the check that
llama.cpp reads a file as a model. llama.cpp's log is captured meanwhile, its error lines kept
for the exception message. Outputs are written under a temporary name and renamed once complete.
"""

from __future__ import annotations

import ctypes
import os
import re
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kit.errors import KitError, UsageError
from kit.files import Progress, check_free_space, sha256_file
from kit.models.convert import is_gguf, partial_path
from kit.models.lock import llama_cpp_version

# Quantization types that need an importance matrix, which kit does not compute.
IMATRIX_TYPES = ("IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS", "Q2_K_S")
# Approximate bits per weight of each type, to size the disk check and the progress bar.
BITS_PER_WEIGHT = {
    "F32": 32, "F16": 16, "BF16": 16, "Q8_0": 8.5, "Q6_K": 6.6, "Q5_K_M": 5.7, "Q5_K_S": 5.5, "Q5_1": 6,
    "Q5_0": 5.5, "Q4_K_M": 4.9, "Q4_K_S": 4.6, "Q4_1": 5, "Q4_0": 4.5, "IQ4_NL": 4.5, "IQ4_XS": 4.3,
    "Q3_K_L": 4.3, "Q3_K_M": 3.9, "Q3_K_S": 3.5, "Q2_K": 3.4,
}


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


def _checked_paths(in_gguf: str | Path, qtype: str, out: str | Path | None,
                   types: dict[str, int]) -> tuple[Path, str, Path]:
    """The input file, the type's llama.cpp name and the output file, or a UsageError saying what to fix."""
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
    return src, name, dest


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
    src, name, dest = _checked_paths(in_gguf, qtype, out, types)
    in_size = src.stat().st_size
    expected = int(in_size * BITS_PER_WEIGHT.get(name, 16) / 16 * 1.05)
    check_free_space(dest.parent, expected)
    tmp = partial_path(dest)
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
