"""The `kit` command line: `kit --help` imports nothing heavy, usage errors exit 2, errors are one line
(a traceback only with KIT_DEBUG), the terminal chat on the real model, `kit up` options from the
configuration."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import KIT, PURPOSE, run_kit


def test_help_is_fast_and_imports_nothing_heavy() -> None:
    code = (
        "import sys, time; t=time.perf_counter(); sys.argv=['kit','--help']\n"
        "from kit.cli.main import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy=[m for m in ('torch','llama_cpp','chromadb','gradio','spacy','presidio_analyzer','fastapi','uvicorn')"
        " if m in sys.modules]\n"
        "print('HEAVY', heavy, time.perf_counter()-t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    line = [ln for ln in out.splitlines() if ln.startswith("HEAVY")][0]
    assert line.startswith("HEAVY []"), line
    assert "Commands:" in out and "chat" in out and "models" in out


def test_unknown_model_and_debug_traceback(installed_home: Path) -> None:
    r = run_kit("chat", "hi", "--model", "nope")
    assert r.returncode == 1 and "no model named 'nope'" in r.stderr and "Traceback" not in r.stderr
    r = run_kit("chat", "hi", "--model", "nope", env={"KIT_DEBUG": "1"})
    assert "Traceback" in r.stderr


def test_usage_errors_exit_2() -> None:
    assert run_kit("chat", "--max-tokens", "0", "x").returncode == 2
    assert run_kit("nosuchcommand").returncode == 2


@pytest.mark.slow
def test_chat_one_shot_streams_an_answer(installed_home: Path) -> None:
    r = run_kit("chat", "What is the capital of France?", "--max-tokens", "24", "--temperature", "0")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.strip()) > 5
    assert "tokens/s" in r.stderr and "Paris" in r.stdout


@pytest.mark.slow
def test_chat_interactive_session(installed_home: Path) -> None:
    r = run_kit("chat", "--max-tokens", "8", "--temperature", "0", input="Say hello.\n/reset\nHi\n/bye\n")
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("tokens/s") == 2


def test_kit_entry_point_exists() -> None:
    assert Path(KIT).exists()
    assert PURPOSE


def test_kit_up_options_default_to_the_configuration(kit_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`KIT_UI__PORT=7999 kit up` used to serve on 7860: the options default to the configuration now."""
    import socket

    from click.testing import CliRunner

    from kit.cli.main import cli

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    monkeypatch.setenv("KIT_UI__PORT", str(port))  # kit up must try this port, find it taken, and say so
    try:
        r = CliRunner().invoke(cli, ["up"])
    finally:
        busy.close()
    assert r.exit_code != 0 and f"port {port}" in str(r.exception), r.output
