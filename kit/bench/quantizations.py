"""Quantization table: one model in several llama.cpp quantization types, side by side.

From a Hugging Face folder, the F16 reference is made with llama.cpp's converter
(``kit.models.convert.convert``); from a GGUF file, that file is the reference (F16 when it is one;
quantizing an already quantized file is refused by llama.cpp's default parameters, and the row says
so). Each type is then produced from the reference with ``kit.models.quantize.quantize`` and gets:
file size and bits per weight, load time, single-sequence decode tokens/s, perplexity on the
evaluation text, and KL divergence and same top-1 share against the reference (kit.bench.quality).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from kit.bench.quality import LoadedModel, QualityRun, evaluate
from kit.bench.results import Progress
from kit.errors import KitError, UsageError

DEFAULT_TYPES = ("Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q3_K_M")


@dataclass
class QuantRow:
    type: str
    file: str
    size: int
    size_mib: float
    bits_per_weight: float | None
    produce_s: float | None  # conversion or quantization time
    load_s: float | None
    decode_tokens_per_s: float | None
    ppl: float | None
    ppl_ratio: float | None
    kl_mean: float | None
    same_top1: float | None
    sha256: str | None
    error: str = ""


@dataclass
class QuantizationRun:
    source: str
    source_kind: str  # "hf" (converted to F16) or "gguf"
    reference: str
    text: str
    n_ctx: int
    chunks: int | None
    threads: int
    rows: list[QuantRow]
    quality: QualityRun | None
    kept_in: str | None
    notes: list[str] = field(default_factory=list)


def parse_types(text: str) -> list[str]:
    types = [t.strip().upper() for t in text.split(",") if t.strip()]
    if not types:
        raise UsageError("give at least one quantization type, e.g. --types Q8_0,Q4_K_M.")
    return types


def _reference(source: Path, work: Path, progress: Progress | None) -> tuple[Path, str, float | None, str]:
    """The reference GGUF: F16 converted from a Hugging Face folder, or the GGUF given."""
    from kit.models.convert import is_gguf

    if source.is_dir():
        from kit.models.convert import convert
        from kit.models.converter import install_converter

        install_converter()

        def conv(done: int, total: int) -> None:
            if progress:
                progress("convert to F16", done, total)

        result = convert(source, "f16", out=work / f"{source.name}.F16.gguf", progress=conv)
        return result.path, "hf", result.seconds, "F16"
    if not source.is_file() or not is_gguf(source):
        raise UsageError(f"{source} is neither a Hugging Face folder nor a GGUF file.")
    label = "source"
    try:
        from kit.models.quantize import ftype_name, gguf_metadata

        ftype = gguf_metadata(source).get("general.file_type")
        if ftype is not None and ftype.strip().isdigit():
            label = ftype_name(int(ftype)) or label
    except KitError:
        pass
    return source, "gguf", None, label


def run_quantizations(source: Path, types: list[str], text: str, text_name: str, work: Path | None = None,
                      keep: Path | None = None, n_ctx: int = 512, chunks: int | None = None,
                      threads: int | None = None, progress: Progress | None = None) -> QuantizationRun:
    """Produce each type from the reference and tabulate size, speed and quality."""
    from kit.files import sha256_file
    from kit.models.quantize import quant_types, quantize

    threads = threads or os.cpu_count() or 1
    known = quant_types()
    unknown = [t for t in types if t not in known]
    if unknown:
        raise UsageError(f"unknown quantization type(s) {', '.join(unknown)}: valid types are {', '.join(known)}.")
    own_work = work is None
    work = Path(tempfile.mkdtemp(prefix="kit-bench-quant-")) if work is None else work
    work.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    try:
        ref, kind, ref_seconds, label = _reference(source, work, progress)
        files: list[tuple[str, Path, float | None, str]] = [(label, ref, ref_seconds, "")]
        stem = re.sub(r"[.-](f32|f16|bf16)$", "", ref.name[:-5] if ref.name.lower().endswith(".gguf") else ref.name,
                      flags=re.IGNORECASE)
        for t in types:
            if t == label:
                continue

            def qprog(done: int, total: int, t: str = t) -> None:
                if progress:
                    progress(f"quantize {t}", done, total)

            try:
                res = quantize(ref, t, out=work / f"{stem}.{t}.gguf", progress=qprog, nthread=threads)
                files.append((t, res.path, res.seconds, ""))
            except KitError as exc:
                files.append((t, Path(), None, str(exc)))
        good = [(t, p) for t, p, _, err in files if not err]
        quality = evaluate([p for _, p in good], text, text_name, n_ctx=n_ctx, chunks=chunks, threads=threads,
                           names=[t for t, _ in good], progress=progress)
        ppl = {r.model: r for r in quality.perplexity}
        kld = {d.model: d for d in quality.divergence}
        rows: list[QuantRow] = []
        for t, path, seconds, err in files:
            if err:
                rows.append(QuantRow(t, "", 0, 0.0, None, None, None, None, None, None, None, None, None, err))
                continue
            with LoadedModel(path, n_ctx=256, threads=threads) as m:
                load_s, tps, n_params = m.load_s, m.decode_speed(64), m.n_params
            if progress:
                progress(f"speed {t}", 1, 1)
            size = path.stat().st_size
            p, d = ppl.get(t), kld.get(t)
            rows.append(QuantRow(
                type=t, file=path.name, size=size, size_mib=round(size / 2**20, 2),
                bits_per_weight=round(size * 8 / n_params, 2) if n_params else None,
                produce_s=seconds, load_s=round(load_s, 3), decode_tokens_per_s=round(tps, 1),
                ppl=p.ppl if p else None, ppl_ratio=d.ppl_ratio if d else (1.0 if t == label else None),
                kl_mean=d.kl_mean if d else (0.0 if t == label else None),
                same_top1=d.same_top1 if d else (1.0 if t == label else None), sha256=sha256_file(path)))
        if kind == "gguf" and label not in ("F16", "BF16", "F32"):
            notes.append(f"the reference is the given GGUF ({label}), not F16: KL divergence is measured against "
                         "an already quantized model.")
        notes += order_notes(rows)
        kept = None
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            for _, path, _, err in files:
                if not err and path.parent == work:
                    shutil.copy2(path, keep / path.name)
            kept = str(keep)
        return QuantizationRun(source=str(source), source_kind=kind, reference=label, text=text_name, n_ctx=n_ctx,
                               chunks=chunks, threads=threads, rows=rows, quality=quality, kept_in=kept, notes=notes)
    finally:
        if own_work:
            shutil.rmtree(work, ignore_errors=True)


def order_notes(rows: list[QuantRow]) -> list[str]:
    """Say where quality does not fall with size (a smaller file with a lower KL than a larger one)."""
    good = sorted((r for r in rows if r.kl_mean is not None and r.size), key=lambda r: -r.size)
    notes = []
    for big, small in zip(good, good[1:], strict=False):
        if small.kl_mean is not None and big.kl_mean is not None and small.kl_mean < big.kl_mean:
            notes.append(f"quality does not fall in size order here: {small.type} ({small.size_mib} MiB) is closer to "
                         f"the reference (KL {small.kl_mean}) than {big.type} ({big.size_mib} MiB, KL {big.kl_mean}); "
                         "one known cause: llama.cpp stores tensors whose rows are not a multiple of 256 in other "
                         "types (Q5_1, Q5_0...) than the k-quant named, so the mix differs from the name.")
    return notes
