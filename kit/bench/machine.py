"""The machine a benchmark ran on: CPU, memory, GPU and driver, llama.cpp build, model file, kit version.

Every benchmark JSON embeds ``machine_info()`` so that figures are never read without their context.
Nothing here fails: a fact that cannot be read is recorded as ``None`` with a note.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_SHA_CACHE: dict[tuple[str, int, float], str] = {}
# Variables that change how llama.cpp's CPU threads run or wait, in every server a benchmark starts.
THREAD_VARIABLES = ("OMP_", "GOMP_", "KMP_", "GGML_", "OPENBLAS_", "MKL_")


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def _usable_cores() -> int | None:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()


def gpus() -> dict[str, Any]:
    """NVIDIA GPUs as nvidia-smi lists them, or the reason there are none."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return {"devices": [], "driver": None, "note": "no NVIDIA GPU: nvidia-smi is not installed"}
    try:
        out = subprocess.run([smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"devices": [], "driver": None, "note": f"nvidia-smi failed: {exc}"}
    if out.returncode != 0:
        return {"devices": [], "driver": None, "note": f"nvidia-smi failed: {out.stderr.strip()[:200]}"}
    devices, driver = [], None
    for line in out.stdout.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 3:
            devices.append({"name": parts[0], "memory": parts[2]})
            driver = parts[1]
    return {"devices": devices, "driver": driver, "note": ""}


def llama_cpp_build() -> dict[str, Any]:
    """llama-cpp-python's version and llama.cpp's build flags (``llama_print_system_info``)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver: str | None = version("llama_cpp_python")
    except PackageNotFoundError:
        return {"version": None, "system_info": None, "note": "llama-cpp-python is not installed"}
    try:
        import llama_cpp

        raw = llama_cpp.llama_print_system_info()
        info = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        gpu_offload = bool(llama_cpp.llama_supports_gpu_offload())
    except (ImportError, OSError, AttributeError) as exc:
        return {"version": ver, "system_info": None, "note": f"llama_cpp could not be loaded: {exc}"}
    return {"version": ver, "system_info": info.strip(), "gpu_offload": gpu_offload, "note": ""}


def model_file(path: str | Path) -> dict[str, Any]:
    """Name, size and sha256 of a model file (hashes are cached per size and mtime)."""
    from kit.files import sha256_file

    p = Path(path)
    try:
        st = p.stat()
    except OSError as exc:
        return {"path": str(p), "size": None, "sha256": None, "note": f"not readable: {exc}"}
    key = (str(p.resolve()), st.st_size, st.st_mtime)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = sha256_file(p)
    return {"path": str(p), "name": p.name, "size": st.st_size, "sha256": _SHA_CACHE[key]}


def machine_info(model_path: str | Path | Sequence[str | Path] | None = None) -> dict[str, Any]:
    """Describe this machine (and the model files given) for a benchmark result."""
    import kit

    paths: list[str | Path]
    if model_path is None:
        paths = []
    elif isinstance(model_path, str | Path):
        paths = [model_path]
    else:
        paths = list(model_path)
    memory = _memory_bytes()
    try:
        load: list[float] | None = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": {"model": _cpu_model(), "logical_cores": os.cpu_count(), "usable_cores": _usable_cores(),
                "architecture": platform.machine()},
        "load_average": load,  # 1, 5, 15 min when the run started: other work on the machine skews timings
        "memory_bytes": memory,
        "memory_gib": round(memory / 2**30, 1) if memory else None,
        "gpu": gpus(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "llama_cpp": llama_cpp_build(),
        "kit_version": getattr(kit, "__version__", None),
        "models": [model_file(p) for p in paths],
        # Inherited by every server the run starts (kit's own GOMP_SPINCOUNT default then yields to it).
        "thread_environment": thread_environment(),
    }


def thread_environment() -> dict[str, str]:
    """The thread and OpenMP settings in this environment (``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT``...)."""
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith(THREAD_VARIABLES)}
