"""The browser chat's layout: one module per tab, each laying its components out into a dataclass and
wiring its own events; no long function left in ui/."""

from __future__ import annotations

import ast
import dataclasses
import importlib
from pathlib import Path

import pytest

UI = Path(__file__).resolve().parent.parent / "ui"
MAX_FUNCTION_LINES = 80
TABS = ("chat", "history", "charter", "documents", "admin", "usage")


def _functions() -> list[tuple[int, str]]:
    out = []
    for path in sorted(UI.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                out.append((lines, f"{path.relative_to(UI.parent)}::{node.name}"))
    return sorted(out, reverse=True)


def test_no_function_in_ui_over_80_lines() -> None:
    functions = _functions()
    assert len(functions) > 100, "the scan found too few functions: is it still reading ui/?"
    long = [f"{name} ({n} lines)" for n, name in functions if n > MAX_FUNCTION_LINES]
    assert not long, f"split these along a seam: {long}"


@pytest.mark.parametrize("name", TABS)
def test_each_tab_builds_a_dataclass_and_wires_its_events(name: str) -> None:
    module = importlib.import_module(f"ui.tabs.{name}")
    built = module.build.__annotations__["return"]
    tab = getattr(module, built)
    assert dataclasses.is_dataclass(tab)
    fields = {f.name for f in dataclasses.fields(tab)}
    assert "tab" in fields, fields
    assert name == "charter" or callable(getattr(module, "wire", None)), f"ui.tabs.{name} wires no event"
