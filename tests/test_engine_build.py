"""llama.cpp as the engine runs it: the build and its threads.

On CPUs with Intel AMX, llama.cpp's AMX kernels crash this llama.cpp version at the first batch of
several tokens, so install.sh builds without them and the engine turns llama.cpp's extra weight
layouts off when a build still has them. And llama.cpp's OpenMP threads must exist once per process.

The engine runs in child processes: a segmentation fault there fails the test instead of ending the
whole test session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kit.bench.inputs import packaged_default

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import sys
from kit.engine.base import SamplingParams
from kit.engine.llama import LlamaEngine

engine = LlamaEngine(sys.argv[1], parallel=8, ctx=512, threads=2, prompt_cache_mb=0)
prompts = ["Write three sentences about the sea, the wind and the rain near the coast of Brittany.",
           "Rédige trois phrases sur la mer, le vent et la pluie près des côtes de Bretagne, s'il te plaît."]
gens = [engine.submit_completion(prompts[i % 2] + " " * (i % 3), SamplingParams(max_tokens=4, temperature=0))
        for i in range(8)]
texts = ["".join(c.text for c in g) for g in gens]
assert all(g.finish_reason in ("stop", "length") for g in gens), [g.finish_reason for g in gens]
print("decoded", len(texts), "sequences;", engine.stats.prompt_tokens_total, "prompt tokens")
engine.close()
"""


@pytest.mark.slow  # runs the real model: eight sequences decoded at once
def test_a_batch_of_several_sequences_decodes_without_crashing(tmp_path: Path) -> None:
    """Warm-up at load and then eight prompts of 20-30 tokens read together: the batch shapes that sent
    llama.cpp's AMX kernels into a segmentation fault on AMX machines (exit -11 before the fix)."""
    proc = subprocess.run([sys.executable, "-c", CHILD, str(packaged_default())], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path, env={**os.environ, "PYTHONFAULTHANDLER": "1"})
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
    assert "decoded 8 sequences" in proc.stdout


def test_model_params_keep_an_amx_build_off_its_amx_kernels() -> None:
    import llama_cpp as L

    from kit.engine.build import extra_layouts_allowed, model_params, safe_llama_defaults, uses_amx

    amx = uses_amx(L)
    assert amx == ("AMX_INT8 = 1" in L.llama_print_system_info().decode())
    params = model_params(L, gpu_layers=-1)
    assert params.n_gpu_layers == 999
    assert bool(params.use_extra_bufts) is extra_layouts_allowed(L)
    if os.environ.get("KIT_LLAMA_AMX") != "on":
        assert bool(params.use_extra_bufts) is not amx
    import llama_cpp.llama_cpp as low

    original = low.llama_model_default_params
    with safe_llama_defaults():
        inside = low.llama_model_default_params()
    assert low.llama_model_default_params is original  # put back after the block
    assert bool(inside.use_extra_bufts) is extra_layouts_allowed(L)


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_the_build_flags_leave_amx_out_exactly_where_the_compiler_would_use_it() -> None:
    """scripts/llama-cflags.sh, which install.sh and build-reference.sh pass to llama.cpp's build, checked
    against the real compiler: with its flags, -march=native no longer turns AMX on."""
    script = ROOT / "scripts" / "llama-cflags.sh"
    env = {k: v for k, v in os.environ.items() if k != "KIT_LLAMA_AMX"}
    flags = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env, check=True).stdout.split()
    native = subprocess.run(["cc", "-march=native", "-dM", "-E", "-"], input="", capture_output=True, text=True)
    if native.returncode != 0:
        pytest.skip("the compiler does not know -march=native here")
    assert bool(flags) == ("__AMX_INT8__" in native.stdout)
    if flags:
        after = subprocess.run(["cc", *flags, "-march=native", "-dM", "-E", "-"], input="", capture_output=True,
                               text=True, check=True)
        assert "__AMX_INT8__" not in after.stdout and "__AMX_TILE__" not in after.stdout
        kept = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=True,
                              env={**env, "KIT_LLAMA_AMX": "on"})
        assert kept.stdout.strip() == ""


def test_the_installed_build_leaves_amx_out() -> None:
    """install.sh built llama.cpp with those flags: the library reports no AMX kernels (unless asked for)."""
    import llama_cpp as L

    from kit.engine.build import uses_amx

    if os.environ.get("KIT_LLAMA_AMX") == "on":
        pytest.skip("KIT_LLAMA_AMX=on keeps AMX")
    flags = subprocess.run(["bash", str(ROOT / "scripts" / "llama-cflags.sh")], capture_output=True, text=True,
                           check=True).stdout.strip()
    assert not (flags and uses_amx(L)), "llama.cpp was built with AMX here: run ./scripts/install.sh again"


CHILD_THREADS = r"""
import os, sys
from kit.engine.base import SamplingParams
from kit.engine.llama import LlamaEngine

def count() -> int:
    return len(os.listdir("/proc/self/task"))

before = count()
engine = LlamaEngine(sys.argv[1], parallel=2, ctx=512, threads=3, prompt_cache_mb=0)
params = SamplingParams(max_tokens=4, temperature=0)
gens = [engine.submit_completion("Bonjour, comment allez-vous aujourd'hui ?", params) for _ in range(2)]
for g in gens:
    list(g)
print("new threads", count() - before)
engine.close()
"""


def test_llama_cpp_threads_belong_to_the_engine_thread_alone(tmp_path: Path) -> None:
    """Every decode, the warm-up's included, runs on the engine's scheduler thread, so llama.cpp's OpenMP
    workers exist once: the engine thread and its threads - 1 workers, nothing more. A warm-up on the
    loading thread made a second set; libgomp then counted more threads than cores and slept at each of
    ggml's barriers instead of spinning (on 2 cores: 22% idle CPU under load, 128 instead of 174 tok/s)."""
    proc = subprocess.run([sys.executable, "-c", CHILD_THREADS, str(packaged_default())], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "new threads 3" in proc.stdout, proc.stdout  # kit-engine + 2 OpenMP workers


CHILD_OPENMP = r"""
import ctypes, os, sys
if sys.argv[2] == "preloaded":
    ctypes.CDLL("libgomp.so.1")
from kit.engine.llama import LlamaEngine

engine = LlamaEngine(sys.argv[1], parallel=1, ctx=256, threads=2, prompt_cache_mb=0, warm_up=False)
maps = open("/proc/self/maps").read()
print("waits:", engine.openmp_waits)
print("GOMP_SPINCOUNT:", os.environ.get("GOMP_SPINCOUNT"))
print("libgomp loaded:", "/libgomp.so" in maps)
engine.close()
"""


@pytest.mark.parametrize("case, env, says, spins", [
    ("default", {}, "GOMP_SPINCOUNT=7500000 (kit's default for CPU inference)", "7500000"),
    ("policy", {"OMP_WAIT_POLICY": "passive"}, "OMP_WAIT_POLICY=passive (from the environment)", "None"),
    ("spins", {"GOMP_SPINCOUNT": "1000"}, "GOMP_SPINCOUNT=1000 (from the environment)", "1000"),
    ("preloaded", {}, "libgomp was loaded before the engine", "None"),
])
def test_openmp_threads_spin_as_llama_cpp_asks_unless_told_otherwise(case: str, env: dict[str, str], says: str,
                                                                     spins: str, tmp_path: Path) -> None:
    """On CPU inference the engine sets libgomp's spin count (llama.cpp's 200 ms KMP_BLOCKTIME reaches only
    LLVM's and Intel's OpenMP) before llama.cpp loads libgomp; an OpenMP setting in the environment wins,
    and when libgomp is already in the process the engine says the runtime's default is in force."""
    base = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    proc = subprocess.run([sys.executable, "-c", CHILD_OPENMP, str(packaged_default()), case],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path, env={**base, **env})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert says in proc.stdout.split("waits: ", 1)[-1].splitlines()[0], proc.stdout
    assert f"GOMP_SPINCOUNT: {spins}" in proc.stdout, proc.stdout
    assert "libgomp loaded: True" in proc.stdout, proc.stdout  # the setting came before llama.cpp's OpenMP


def test_gpu_offload_leaves_openmp_waits_to_the_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    from kit.engine.build import openmp_waits

    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert openmp_waits(gpu_layers=-1) == "OpenMP runtime default (GPU offload)"
    assert "GOMP_SPINCOUNT" not in os.environ


@pytest.mark.slow
def test_engine_renders_model_template_like_llama_cpp(installed_home: Path) -> None:
    from kit.engine.llama import LlamaEngine

    path = next((installed_home / "models").glob("*/*.gguf"))
    engine = LlamaEngine(path, parallel=1, ctx=512)
    try:
        prompt = engine.render_chat([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}])
        assert prompt == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
        assert "im_start" in (engine.chat_template or "")
    finally:
        engine.close()
