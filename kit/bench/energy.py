"""Energy counters for eco-design reporting: RAPL (CPU packages) and NVML (NVIDIA GPUs).

``EnergyMeter.open()`` finds what this machine exposes; ``start()`` and ``stop()`` read the counters
around a measured interval. Where no counter can be read the meter says why (``reason``), and
callers report that reason instead of a zero. Counters measure this machine only: a server on
another machine is not covered.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

POWERCAP = Path("/sys/class/powercap")


@dataclass
class EnergyReading:
    joules: float | None
    sources: list[str]
    reason: str = ""  # why joules is None

    def per_1k_tokens(self, tokens: int) -> float | None:
        if self.joules is None or tokens <= 0:
            return None
        return round(self.joules * 1000 / tokens, 3)


@dataclass
class _Rapl:
    path: Path
    wrap: int


@dataclass
class EnergyMeter:
    rapl: list[_Rapl] = field(default_factory=list)
    nvml_handles: list[Any] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    _start: dict[str, int] = field(default_factory=dict)

    @classmethod
    def open(cls, root: Path = POWERCAP) -> EnergyMeter:
        meter = cls()
        meter._open_rapl(root)
        meter._open_nvml()
        return meter

    @property
    def available(self) -> bool:
        return bool(self.rapl or self.nvml_handles)

    @property
    def reason(self) -> str:
        return "" if self.available else "not available on this machine: " + "; ".join(self.notes)

    @property
    def sources(self) -> list[str]:
        return (["RAPL (CPU packages)"] if self.rapl else []) + (["NVML (GPU)"] if self.nvml_handles else [])

    def _open_rapl(self, root: Path) -> None:
        if not root.is_dir():
            self.notes.append(f"no {root} (not Linux, or powercap not built in)")
            return
        # Top-level package domains only (intel-rapl:0, not its sub-zones intel-rapl:0:0): no double count.
        zones = sorted(p for p in root.glob("intel-rapl:*") if p.name.count(":") == 1)
        if not zones:
            self.notes.append(f"no RAPL counters under {root} (virtual machine or unsupported CPU)")
            return
        for zone in zones:
            try:
                int((zone / "energy_uj").read_text())
                wrap = int((zone / "max_energy_range_uj").read_text())
            except PermissionError:
                self.notes.append(f"{zone}/energy_uj is readable by root only (Linux 5.10+): run as root or "
                                  "grant read access")
                self.rapl = []
                return
            except (OSError, ValueError) as exc:
                self.notes.append(f"{zone}: {exc}")
                continue
            self.rapl.append(_Rapl(zone, wrap))

    def _open_nvml(self) -> None:
        if not shutil.which("nvidia-smi"):
            self.notes.append("no NVIDIA GPU (no nvidia-smi) for NVML")
            return
        try:
            import pynvml
        except ImportError:
            self.notes.append("an NVIDIA GPU is present but nvidia-ml-py (pynvml) is not installed")
            return
        try:
            pynvml.nvmlInit()
            for i in range(pynvml.nvmlDeviceGetCount()):
                handle = pynvml.nvmlDeviceGetHandleByIndex(i)
                pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
                self.nvml_handles.append(handle)
        except pynvml.NVMLError as exc:
            self.notes.append(f"NVML energy counter not readable: {exc}")
            self.nvml_handles = []

    def _read(self) -> dict[str, int]:
        values: dict[str, int] = {}
        for z in self.rapl:
            values[str(z.path)] = int((z.path / "energy_uj").read_text())  # microjoules
        if self.nvml_handles:
            import pynvml

            for i, h in enumerate(self.nvml_handles):
                values[f"nvml:{i}"] = int(pynvml.nvmlDeviceGetTotalEnergyConsumption(h)) * 1000  # mJ -> uJ
        return values

    def start(self) -> None:
        self._start = self._read() if self.available else {}

    def stop(self) -> EnergyReading:
        if not self.available:
            return EnergyReading(None, [], self.reason)
        end = self._read()
        total_uj = 0
        wraps = {str(z.path): z.wrap for z in self.rapl}
        for key, value in end.items():
            delta = value - self._start.get(key, value)
            if delta < 0:  # RAPL counters wrap around at max_energy_range_uj
                delta += wraps.get(key, 0)
            total_uj += max(delta, 0)
        return EnergyReading(round(total_uj / 1e6, 3), self.sources)
