"""The README's commands exist with the options it shows (docs that cannot drift)."""

from __future__ import annotations

import os
import re
import shlex

import click
from helpers import ROOT

from kit.cli.main import cli


def readme_commands() -> list[list[str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():  # a command continued over lines is one
            line = line.split("  #")[0].strip()
            for part in line.split("&&"):
                words = shlex.split(part.strip())
                if words and words[0].endswith("bin/kit"):
                    commands.append(words[1:])
    return commands


def test_readme_kit_commands_exist_with_their_options() -> None:
    commands = readme_commands()
    assert len(commands) >= 15
    for words in commands:
        cmd: click.Command = cli
        rest = list(words)
        while isinstance(cmd, click.Group) and rest and rest[0] in cmd.commands:
            cmd = cmd.commands[rest.pop(0)]
        assert not isinstance(cmd, click.Group), f"README shows an incomplete command: kit {' '.join(words)}"
        known = {opt for p in cmd.params for opt in [*p.opts, *p.secondary_opts]}
        for w in rest:
            if w.startswith("-") and w != "-":
                assert w.split("=")[0] in known, f"kit {' '.join(words)}: unknown option {w}"


def test_readme_scripts_exist() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for script in set(re.findall(r"(?:\./)?(scripts/[\w./-]+\.sh|benchmarks/\w+\.py)", text)):
        path = ROOT / script
        assert path.exists(), script
        if script.endswith(".sh"):
            assert os.access(path, os.X_OK), script
    assert "./scripts/install.sh && .venv/bin/kit up" in text and "./scripts/test.sh" in text
