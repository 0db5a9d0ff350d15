"""Crash: `kill -9` of `kit serve` during a streamed chat. The client gets an error within seconds, not a hang;
after a restart on the same $KIT_HOME the audit chain verifies, the conversations database is intact and its
list loads, and a new chat is answered."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers import KIT, free_port, run_kit, wait_healthy

from kit.config import load_settings

pytestmark = pytest.mark.slow


class KitServe:
    """`kit serve` as a real process on a free loopback port."""

    def __init__(self, home: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        threads = str(max(1, (os.cpu_count() or 2) - 1))
        self.log = log.open("ab")
        self.proc = subprocess.Popen(
            [KIT, "serve", "--host", "127.0.0.1", "--port", str(self.port), "--parallel", "2", "--ctx", "512",
             "--threads", threads], env={**os.environ, "KIT_HOME": str(home)}, stdout=self.log, stderr=self.log)
        wait_healthy(self.url, self.proc, log, "kit serve")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()


@pytest.fixture
def served(installed_home: Path, tmp_path: Path) -> Iterator[list[KitServe]]:
    started: list[KitServe] = []
    yield started
    for s in started:
        s.stop()


def acknowledge(url: str) -> None:
    settings = load_settings()
    charter = httpx.get(url + "/v1/charter", timeout=30).json()
    answers = [settings.policy.quiz[i].answer for i in range(len(charter["quiz"]))]
    r = httpx.post(url + "/v1/charter/acknowledge", json={"version": charter["version"], "quiz_answers": answers},
                   timeout=30)
    r.raise_for_status()


def chat(text: str, **extra: object) -> dict[str, object]:
    return {"messages": [{"role": "user", "content": text}], "temperature": 0, **extra}


def test_kill_9_mid_stream_then_restart(installed_home: Path, tmp_path: Path, served: list[KitServe]) -> None:
    log = tmp_path / "serve.log"
    first = KitServe(installed_home, log)
    served.append(first)
    acknowledge(first.url)
    cid = httpx.post(first.url + "/v1/conversations", json={"title": "before the crash"}, timeout=30).json()["id"]
    r = httpx.post(first.url + "/v1/chat/completions", json=chat("Say hello.", max_tokens=8, conversation_id=cid),
                   timeout=120)
    assert r.status_code == 200, r.text

    # a long streamed answer, stored in the same conversation; the server dies in the middle of it
    body = chat("Count from 1 to 1000, one number per line.", max_tokens=2000, stream=True, conversation_id=cid)
    events = 0
    killed_at = 0.0
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)) as dropped:
        with httpx.stream("POST", first.url + "/v1/chat/completions", json=body,
                          timeout=httpx.Timeout(60, read=30)) as stream:
            assert stream.status_code == 200
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    events += 1
                if events == 8:
                    os.kill(first.proc.pid, signal.SIGKILL)
                    killed_at = time.perf_counter()
    noticed = time.perf_counter() - killed_at
    first.proc.wait(timeout=10)
    assert first.proc.returncode == -signal.SIGKILL
    print(f"\ncrash: client got {type(dropped.value).__name__} {noticed:.2f} s after kill -9 (after {events} events)")
    assert killed_at and noticed < 5

    # restart on the same home: the stores open, the chain verifies, nothing is corrupt
    second = KitServe(installed_home, log)
    served.append(second)
    verify = run_kit("audit", "verify", env={"KIT_HOME": str(installed_home)}, timeout=120)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    with sqlite3.connect(installed_home / "kit.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    listed = httpx.get(second.url + "/v1/conversations", timeout=30)
    assert listed.status_code == 200, listed.text
    assert cid in [c["id"] for c in listed.json()["data"]]
    conv = httpx.get(second.url + f"/v1/conversations/{cid}", timeout=30)
    assert conv.status_code == 200, conv.text
    roles = [m["role"] for m in conv.json()["messages"]]
    assert roles[:2] == ["user", "assistant"], roles  # the turn answered before the crash is kept
    r = httpx.post(second.url + "/v1/chat/completions", json=chat("Say hello again.", max_tokens=8,
                                                                  conversation_id=cid), timeout=120)
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"], r.text
