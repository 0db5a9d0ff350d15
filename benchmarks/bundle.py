"""Size of a kit bundle per part and the time to install from it with no network.

Builds a bundle with ``kit bundle create`` (or takes ``--bundle FILE.tar``), reads its manifest for the
size of each part (wheels, llama.cpp, models, other), then installs it with ``scripts/install.sh
--bundle`` into a fresh prefix and KIT_HOME under a temporary folder, inside a network namespace with
loopback only when ``unshare -n`` is allowed (plainly otherwise; the JSON says which). Prints a table
and writes the figures as JSON.

    python benchmarks/bundle.py [--bundle FILE.tar] [--no-install] [--out benchmarks/results/bundle.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KIT = str(Path(sys.executable).parent / "kit")


def _unshare_ok() -> bool:
    return bool(shutil.which("unshare") and shutil.which("ip")) and \
        subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


def _parts(bundle: Path) -> dict[str, int]:
    from kit.bundle.create import part_sizes

    with tarfile.open(bundle) as tar:
        return part_sizes(json.load(tar.extractfile("bundle.json")))  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=None, help="an existing bundle (default: build one)")
    parser.add_argument("--no-install", action="store_true", help="sizes only")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/bundle.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kit-bundle-bench-"))
    figures: dict[str, object] = {"machine": platform.machine(), "cpus": os.cpu_count(),
                                  "python": platform.python_version()}
    try:
        bundle = args.bundle
        if bundle is None:
            bundle = work / "kit.tar"
            start = time.monotonic()
            subprocess.run([KIT, "bundle", "create", "-o", str(bundle)], check=True)
            figures["create_seconds"] = round(time.monotonic() - start, 1)
        figures["bundle_bytes"] = bundle.stat().st_size
        figures["parts_bytes"] = _parts(bundle)
        if not args.no_install:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("KIT_", "PYTHONPATH"))}
            env.update(KIT_HOME=str(work / "home"), KIT_CONFIG=str(work / "kit.yaml"))
            cmd = ["/bin/bash", str(ROOT / "scripts/install.sh"), "--bundle", str(bundle), "--prefix",
                   str(work / "venv")]
            offline = _unshare_ok()
            if offline:
                cmd = ["unshare", "-n", "/bin/bash", "-c", "ip link set lo up && exec \"$@\"", "-", *cmd]
            start = time.monotonic()
            subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
            figures["install_seconds"] = round(time.monotonic() - start, 1)
            figures["install_offline_netns"] = offline
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'part':12} {'MiB':>8}")
    parts: dict[str, int] = figures["parts_bytes"]  # type: ignore[assignment]
    for part, size in parts.items():
        print(f"{part:12} {size / 2**20:8.1f}")
    print(f"{'archive':12} {figures['bundle_bytes'] / 2**20:8.1f}")  # type: ignore[operator]
    for key in ("create_seconds", "install_seconds"):
        if key in figures:
            print(f"{key}: {figures[key]}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
