"""kit runs under the restrictions of its systemd units, not only rates well with them.

`systemd-analyze security` scores a unit; it does not start the program. Without systemd as PID 1
here, the same kernel restrictions are applied by hand: /proc mounted with subset=pid and
hidepid=invisible (ProcSubset=pid, ProtectProc=invisible), native system calls only, the allow list of
SystemCallFilter=@system-service minus ~@privileged @resources returning EPERM (as the units'
SystemCallErrorNumber=EPERM), and MemoryDenyWriteExecute=yes where kit-ui and kit-maintenance use it.
The filter is built from `systemd-analyze syscall-filter`, so it follows the installed systemd.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import KIT, free_port

SANDBOX_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "allow.h"
#define ERR (SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA))
#define LD(field) (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, field))
#define JEQ(k, t, f) (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (k), (t), (f))
#define AND(k) (struct sock_filter)BPF_STMT(BPF_ALU | BPF_AND | BPF_K, (k))
#define RET(k) (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, (k))
int main(int argc, char **argv) {
  static struct sock_filter f[4096];
  int i = 0;
  f[i++] = LD(arch); f[i++] = JEQ(AUDIT_ARCH_X86_64, 1, 0); f[i++] = RET(SECCOMP_RET_KILL_PROCESS);
  f[i++] = LD(nr);
  f[i++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1);
  f[i++] = RET(SECCOMP_RET_KILL_PROCESS);
  if (getenv("MDWE") && getenv("MDWE")[0] == '1') {  /* as systemd: no W+X mmap, no PROT_EXEC mprotect */
    f[i++] = JEQ(__NR_mmap, 0, 4); f[i++] = LD(args[2]); f[i++] = AND(PROT_WRITE | PROT_EXEC);
    f[i++] = JEQ(PROT_WRITE | PROT_EXEC, 0, 1); f[i++] = RET(ERR);
    f[i++] = LD(nr); f[i++] = JEQ(__NR_mprotect, 1, 0); f[i++] = JEQ(__NR_pkey_mprotect, 0, 4);
    f[i++] = LD(args[2]); f[i++] = AND(PROT_EXEC); f[i++] = JEQ(PROT_EXEC, 0, 1); f[i++] = RET(ERR);
    f[i++] = LD(nr); f[i++] = JEQ(__NR_shmat, 0, 4); f[i++] = LD(args[2]); f[i++] = AND(SHM_EXEC);
    f[i++] = JEQ(0, 1, 0); f[i++] = RET(ERR);
    f[i++] = LD(nr);
  }
  for (size_t k = 0; k < sizeof(allow) / sizeof(allow[0]); k++) {
    f[i++] = JEQ(allow[k], 0, 1); f[i++] = RET(SECCOMP_RET_ALLOW);
  }
  f[i++] = RET(ERR);
  struct sock_fprog prog = {.len = (unsigned short)i, .filter = f};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog)) {
    perror("seccomp"); return 126;
  }
  execvp(argv[1], argv + 1);
  perror("exec");
  return 127;
}
"""


def _groups(tool: str) -> dict[str, list[str]]:
    out = subprocess.run([tool, "syscall-filter", "--no-pager"], capture_output=True, text=True, timeout=60).stdout
    groups: dict[str, list[str]] = {}
    current = None
    for line in out.splitlines():
        if line.startswith("@"):
            current = line.split()[0]
            groups[current] = []
        elif current and line.strip() and not line.strip().startswith("#"):
            groups[current].append(line.strip())
    return groups


def _expand(groups: dict[str, list[str]], name: str) -> set[str]:
    if not name.startswith("@"):
        return {name}
    return set().union(*(_expand(groups, item) for item in groups.get(name, [])))


@pytest.fixture(scope="module")
def jail(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    tools = {t: shutil.which(t) for t in ("systemd-analyze", "gcc", "unshare")}
    missing = [t for t, path in tools.items() if path is None]
    if missing or platform.machine() != "x86_64" or os.geteuid() != 0:
        pytest.skip(f"needs root on x86_64 with {', '.join(tools)} (missing: {', '.join(missing) or 'none'})")
    groups = _groups(str(tools["systemd-analyze"]))
    allowed = _expand(groups, "@system-service") - _expand(groups, "@privileged") - _expand(groups, "@resources")
    work = tmp_path_factory.mktemp("jail")
    (work / "allow.h").write_text("static const int allow[] = {\n" + "".join(
        f"#ifdef __NR_{n}\n  __NR_{n},\n#endif\n" for n in sorted(allowed) if re.fullmatch(r"\w+", n)) + "};\n")
    (work / "sandbox.c").write_text(SANDBOX_C)
    r = subprocess.run([str(tools["gcc"]), "-O2", "-o", "sandbox", "sandbox.c"], cwd=work, capture_output=True,
                       text=True, timeout=120)
    if r.returncode != 0:
        pytest.skip(f"the seccomp launcher does not build here: {r.stderr[-300:]}")
    probe = subprocess.run([str(tools["unshare"]), "--mount", "--pid", "--fork", "true"], capture_output=True,
                           timeout=30)
    if probe.returncode != 0:
        pytest.skip("unshare --mount --pid is not permitted here")
    script = 'mount -t proc -o subset=pid,hidepid=invisible proc /proc && exec "$0" "$@"'
    return [str(tools["unshare"]), "--mount", "--pid", "--fork", "--kill-child", "sh", "-c", script,
            str(work / "sandbox")]


def _run(jail: list[str], *args: str, mdwe: bool, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*jail, KIT, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "MDWE": "1" if mdwe else "0"})


def test_the_filter_bites(jail: list[str]) -> None:
    code = ("import mmap, os\n"
            "try:\n    os.sched_setaffinity(0, {0})\nexcept PermissionError:\n    print('affinity refused')\n"
            "try:\n    mmap.mmap(-1, 4096, prot=7)\nexcept PermissionError:\n    print('wx refused')\n"
            "print(os.path.exists('/proc/meminfo'))\n")
    r = subprocess.run([*jail, sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "MDWE": "1"})
    assert r.stdout.split() == ["affinity", "refused", "wx", "refused", "False"], r.stdout + r.stderr


@pytest.mark.slow
def test_model_answers_under_the_server_restrictions(jail: list[str], installed_home: Path) -> None:
    # kit-server leaves MemoryDenyWriteExecute off (torch); llama.cpp on CPU would even run with it.
    for mdwe in (False, True):
        r = _run(jail, "chat", "--max-tokens", "8", "--temperature", "0", "Bonjour", mdwe=mdwe)
        assert r.returncode == 0 and "generated" in r.stderr, f"MDWE={mdwe}: {r.stdout}\n{r.stderr}"


def test_maintenance_commands_under_its_restrictions(jail: list[str]) -> None:
    for command in (["audit", "purge"], ["audit", "verify"]):
        r = _run(jail, *command, mdwe=True, timeout=120)
        assert r.returncode == 0, f"kit {' '.join(command)}: {r.stdout}\n{r.stderr}"


@pytest.mark.slow  # starts the whole browser chat in its own process
def test_chat_page_under_its_restrictions(jail: list[str], tmp_path: Path) -> None:
    import httpx

    port = free_port()
    log = (tmp_path / "ui.log").open("w")
    child = subprocess.Popen([*jail, KIT, "ui", "--port", str(port), "--server-url", f"http://127.0.0.1:{free_port()}"],
                             stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "MDWE": "1"},
                             start_new_session=True)
    try:
        deadline, status = time.monotonic() + 180, None
        while time.monotonic() < deadline and child.poll() is None and status != 200:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/", timeout=5, trust_env=False).status_code
            except httpx.HTTPError:
                time.sleep(1)
        assert status == 200, (tmp_path / "ui.log").read_text()[-2000:]
    finally:
        os.killpg(child.pid, signal.SIGKILL)  # the jail's first process is PID 1 there: it ignores SIGTERM
        child.wait(timeout=30)
        log.close()
