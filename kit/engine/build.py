"""What the installed llama.cpp build does on this CPU, and model parameters that keep it off its broken paths.

llama.cpp built natively on a CPU with Intel AMX (Xeon Sapphire Rapids and later) repacks the weights
for its AMX matrix kernels, and in the llama.cpp version kit ships those kernels crash the process
(segmentation fault in ``ggml_backend_amx_mul_mat``) at the first batch of several tokens.
``scripts/install.sh`` builds llama.cpp without AMX (``scripts/llama-cflags.sh``); a build made
elsewhere that still has it is used with llama.cpp's extra weight layouts turned off (AMX and the
AVX repacking: slower prompt reading, no crash), and kit says so once.

llama.cpp's CPU threads meet at a barrier after each of the hundreds of operations of a decode, through
OpenMP. llama.cpp asks the OpenMP runtime to let a waiting thread spin for 200 ms before it sleeps
(``KMP_BLOCKTIME``), but only LLVM's and Intel's runtimes read that variable: GNU's libgomp, which the
GCC build links, reads ``GOMP_SPINCOUNT`` and otherwise sleeps after 300,000 spins (a few ms). Where the
HTTP server and the benchmark or the users' requests share the cores, a thread that went to sleep
at a barrier wakes late; on CPU inference kit gives libgomp the same 200 ms (:func:`openmp_waits`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger("kit.engine")
_warned = False
OPENMP_SPINS = "7500000"  # libgomp's spins in about 200 ms on a 2.6 GHz core (measured: ~37,000 per ms)


def openmp_waits(gpu_layers: int = 0) -> str:
    """Set libgomp's spin count for CPU inference, unless the environment sets an OpenMP wait already;
    return what is in force. Only works before libgomp is loaded (the first ``import llama_cpp``)."""
    for name in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY"):
        if name in os.environ:
            return f"{name}={os.environ[name]} (from the environment)"
    if gpu_layers != 0:  # the GPU decodes: spinning CPU threads would only burn power
        return "OpenMP runtime default (GPU offload)"
    try:
        loaded = "/libgomp.so" in Path("/proc/self/maps").read_text(encoding="utf-8", errors="replace")
    except OSError:
        loaded = False
    if loaded:
        return "OpenMP runtime default (libgomp was loaded before the engine)"
    os.environ["GOMP_SPINCOUNT"] = OPENMP_SPINS
    return f"GOMP_SPINCOUNT={OPENMP_SPINS} (kit's default for CPU inference)"


def system_info(L: Any) -> str:
    """llama.cpp's one-line summary of the CPU features it was built with."""
    raw = L.llama_print_system_info()
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def uses_amx(L: Any) -> bool:
    """Whether this llama.cpp build runs Intel AMX kernels on this CPU."""
    return "AMX_INT8 = 1" in system_info(L)


def extra_layouts_allowed(L: Any) -> bool:
    """False when llama.cpp's extra weight layouts must stay off: an AMX build, unless KIT_LLAMA_AMX=on."""
    return not uses_amx(L) or os.environ.get("KIT_LLAMA_AMX") == "on"


def model_params(L: Any, gpu_layers: int = 0) -> Any:
    """``llama_model_default_params()`` with ``gpu_layers`` (-1: all), safe for this build (see the module)."""
    global _warned
    params = L.llama_model_default_params()
    params.n_gpu_layers = 999 if gpu_layers < 0 else gpu_layers
    if not extra_layouts_allowed(L):
        params.use_extra_bufts = False
        if not _warned:
            _warned = True
            log.warning("this llama.cpp build uses Intel AMX, whose kernels crash this llama.cpp version: "
                        "its extra weight layouts are turned off (slower prompt reading). Rebuild it without "
                        "AMX with scripts/install.sh for full speed.")
    return params


@contextmanager
def safe_llama_defaults() -> Iterator[None]:
    """Within the block, ``llama_cpp.Llama(...)`` loads models with :func:`model_params`' safe settings
    (the high-level class builds its parameters itself, from ``llama_model_default_params``)."""
    import llama_cpp.llama_cpp as low

    original = low.llama_model_default_params
    if extra_layouts_allowed(low):
        yield
        return

    def safe() -> Any:
        params = original()
        params.use_extra_bufts = False
        return params

    low.llama_model_default_params = safe
    try:
        yield
    finally:
        low.llama_model_default_params = original
