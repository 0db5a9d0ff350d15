"""scripts/install.sh fails early with a clear message instead of a wall of pip output."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from helpers import ROOT

SCRIPT = str(ROOT / "scripts" / "install.sh")


def _fakebin(tmp_path: Path, *tools: str) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in tools:
        real = sys.executable if tool == "python3" else shutil.which(tool)
        assert real, tool
        (bin_dir / tool).symlink_to(real)
    return str(bin_dir)


def _run(path: str, *args: str, prefix: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/bin/bash", SCRIPT, "--prefix", str(prefix), *args], capture_output=True, text=True,
                          env={"PATH": path, "HOME": os.environ.get("HOME", "/tmp")}, timeout=60)


def test_missing_python_is_explained(tmp_path: Path) -> None:
    r = _run(_fakebin(tmp_path, "dirname", "mkdir"), prefix=tmp_path / "venv")
    assert r.returncode == 1 and "Python 3.11 or newer is needed" in r.stderr


def test_missing_compiler_is_explained(tmp_path: Path) -> None:
    r = _run(_fakebin(tmp_path, "dirname", "mkdir", "python3"), prefix=tmp_path / "venv")
    assert r.returncode == 1 and "compiler is needed" in r.stderr and "build-essential" in r.stderr


def test_unknown_option_and_help(tmp_path: Path) -> None:
    r = subprocess.run(["/bin/bash", SCRIPT, "--frobnicate"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "unknown option --frobnicate" in r.stderr
    r = subprocess.run(["/bin/bash", SCRIPT, "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "--cuda" in r.stdout and "--prefix" in r.stdout
