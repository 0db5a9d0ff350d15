"""The common last steps of every way of obtaining a model (hub pull, local source, import).

``build_gguf`` converts (and quantizes) a Hugging Face folder into ``$KIT_HOME/models/<name>/``,
checking that llama.cpp loads the result; ``write_lock_replacing`` records a model in the lock and
deletes the files of the installation it replaces. Conversion and quantization (kit.models.convert,
kit.models.quantize) are imported inside the functions.
"""

from __future__ import annotations

import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

from kit.files import Progress
from kit.models.lock import LockEntry, models_dir, read_lock, write_lock_entry


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_lock_replacing(home: Path, lock: LockEntry) -> None:
    """Record the entry, then delete files of the previous installation that the new one does not use."""
    previous = read_lock(home).get(lock.name)
    write_lock_entry(home, lock)
    if previous is None:
        return
    keep = {lock.file, *lock.files}
    for rel in {previous.file, *previous.files} - keep:
        path = models_dir(home) / rel
        if inside(path, models_dir(home)):
            path.unlink(missing_ok=True)


def inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def build_gguf(folder: Path, home: Path, name: str, stem: str, outtype: str, quantize_to: str | None,
               progress: Progress | None) -> tuple[Path, list[str], str]:
    """Convert (and quantize) a Hugging Face folder into $KIT_HOME/models/<name>/; nothing is left on failure.

    Returns the installed file, the recipe steps, and the quantization of the file.
    """
    from kit.models.convert import convert
    from kit.models.quantize import gguf_metadata, quantize

    work = models_dir(home) / f".work-{name}-{uuid.uuid4().hex[:8]}"
    work.mkdir(parents=True)
    steps: list[str] = []
    try:
        converted = convert(folder, outtype=outtype, out=work / f"{stem}.{outtype.upper()}.gguf",
                            progress=progress)
        steps.append(
            f"converted to {outtype.upper()} with llama.cpp's convert_hf_to_gguf.py of llama-cpp-python "
            f"{converted.llama_cpp_version} ({converted.seconds:.1f} s, {converted.size} bytes)"
        )
        final = converted.path
        quant = outtype.upper()
        if quantize_to:
            quantized = quantize(converted.path, quantize_to,
                                 out=work / f"{stem}.{quantize_to.upper()}.gguf", progress=progress)
            steps.append(
                f"quantized {outtype.upper()} -> {quantized.qtype} with llama_model_quantize (default "
                f"parameters, llama-cpp-python {quantized.llama_cpp_version}; {quantized.seconds:.1f} s, "
                f"{quantized.size} bytes)"
            )
            converted.path.unlink(missing_ok=True)
            final, quant = quantized.path, quantized.qtype
        meta = gguf_metadata(final)
        template = "with" if meta.get("tokenizer.chat_template") else "WITHOUT"
        steps.append(f"verified: llama.cpp loads it (architecture {meta.get('general.architecture', '?')}, "
                     f"{template} a chat template in its metadata)")
        dest = models_dir(home) / name / final.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.partial")
        os.replace(final, tmp)
        os.replace(tmp, dest)
        return dest, steps, quant
    finally:
        shutil.rmtree(work, ignore_errors=True)
