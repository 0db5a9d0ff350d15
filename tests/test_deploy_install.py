"""`scripts/install.sh --system` lays out users, files and units as the hardened services expect.

It runs for real, as root, inside a private mount namespace: /etc is an overlay whose changes land in a
temporary folder and /var/lib a temporary folder, so the machine's own users and files are untouched.
The environment is a stand-in (pip steps succeed, llama.cpp reports the wanted build, `kit` is this
checkout's): what is tested is the system part, not the build.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from helpers import KIT, ROOT

FAKE_PYTHON = """#!/bin/sh
case "$1" in
  -m) exit 0 ;;
  -c) echo "0.3.36 cpu"; exit 0 ;;
esac
exit 1
"""

SCRIPT = """set -e
mount -t overlay overlay -o lowerdir=/etc,upperdir="$T/up",workdir="$T/work" /etc
mount --bind "$T/varlib" /var/lib
mkdir -p /etc/systemd/system
install="bash $ROOT/scripts/install.sh --prefix $T/prefix --cpu --no-converter --system"
$install > "$T/first.log" 2>&1
sha256sum /etc/kit/ui-service.key > "$T/key1"
$install > "$T/second.log" 2>&1
sha256sum /etc/kit/ui-service.key > "$T/key2"
id -gn kit > "$T/ids"; id -gn kit-ui >> "$T/ids"
stat -c '%a %U:%G %n' /etc/kit /etc/kit/kit.yaml /etc/kit/ui-service.key /var/lib/kit /var/lib/kit/ui \\
  /var/lib/kit/kit.db /var/lib/kit/models /var/lib/kit/models.lock > "$T/modes"
cp /var/lib/kit/kit.db /etc/kit/ui-service.key "$T/"
mkdir "$T/units" && cp /etc/systemd/system/kit-*.service /etc/systemd/system/kit-*.timer "$T/units/"
"""


@pytest.mark.slow  # the whole system install, users and units included
def test_system_install(tmp_path: Path) -> None:
    unshare = shutil.which("unshare")
    if os.geteuid() != 0 or unshare is None:
        pytest.skip("needs root and unshare (a private mount namespace)")
    if subprocess.run([unshare, "--mount", "true"], capture_output=True, timeout=30).returncode != 0:
        pytest.skip("unshare --mount is not permitted here")
    for name in ("up", "work", "varlib", "prefix/bin"):
        (tmp_path / name).mkdir(parents=True)
    (tmp_path / "prefix/bin/python").write_text(FAKE_PYTHON)
    (tmp_path / "prefix/bin/kit").write_text(f"#!/bin/sh\nexec {KIT} \"$@\"\n")
    for tool in ("python", "kit"):
        (tmp_path / "prefix/bin" / tool).chmod(0o755)
    env = {**os.environ, "T": str(tmp_path), "ROOT": str(ROOT)}
    r = subprocess.run([unshare, "--mount", "bash", "-c", SCRIPT], capture_output=True, text=True, env=env,
                       timeout=600)
    logs = "".join((tmp_path / f).read_text() for f in ("first.log", "second.log") if (tmp_path / f).exists())
    if r.returncode != 0 and "overlay" in r.stderr:
        pytest.skip(f"overlayfs is not available here: {r.stderr[-300:]}")
    assert r.returncode == 0, r.stderr + logs

    assert (tmp_path / "ids").read_text().split() == ["kit", "kit"]
    modes = {line.split()[2]: line.split()[:2] for line in (tmp_path / "modes").read_text().splitlines()}
    assert modes["/etc/kit"] == ["750", "root:kit"]
    assert modes["/etc/kit/kit.yaml"] == ["640", "root:kit"], "readable by the services only"
    assert modes["/etc/kit/ui-service.key"] == ["600", "root:root"], "handed to kit-ui by systemd alone"
    assert modes["/var/lib/kit"] == ["750", "kit:kit"] and modes["/var/lib/kit/kit.db"] == ["600", "kit:kit"]
    assert modes["/var/lib/kit/ui"] == ["700", "kit-ui:kit"]
    assert modes["/var/lib/kit/models"][1] == "root:kit" and modes["/var/lib/kit/models.lock"] == ["440", "root:kit"]

    # One service key for the chat, kept on a second run, and it is the one in the database.
    assert (tmp_path / "key1").read_text() == (tmp_path / "key2").read_text()
    with sqlite3.connect(tmp_path / "kit.db") as con:
        keys = con.execute("SELECT name, role, sha256 FROM api_keys").fetchall()
    key = (tmp_path / "ui-service.key").read_text().strip()
    assert keys == [("kit-ui", "service", hashlib.sha256(key.encode()).hexdigest())]

    units = sorted(p.name for p in (tmp_path / "units").iterdir())
    assert units == ["kit-maintenance.service", "kit-maintenance.timer", "kit-server.service", "kit-ui.service"]
    for unit in (tmp_path / "units").iterdir():
        text = unit.read_text()
        assert "@PREFIX@" not in text and "@ROOT@" not in text, unit.name
    assert f"ExecStart={tmp_path}/prefix/bin/kit serve" in (tmp_path / "units/kit-server.service").read_text()
    assert "systemctl enable --now kit-server kit-ui" in logs
