"""The architecture holds: one package per part, dependencies in one direction, no import circle,
small modules, each package saying what it owns. Reads the source; runs import-linter's contracts."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("kit", "ui")
MAX_LINES = 450
MAX_FUNCTION_LINES = 80
SHORT_FUNCTIONS = ("kit", "ui")  # every function readable on one screen


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _type_only(tree: ast.Module) -> set[int]:
    """Ids of the import nodes under `if TYPE_CHECKING:` (annotations only: no import at run time)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", "")) == "TYPE_CHECKING":
            out |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every kit or ui module this one imports at run time, at module level or inside functions."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()
    skip = _type_only(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = name.split(".") if is_pkg else name.split(".")[:-1]
                parent = parent[: len(parent) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            targets = []
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.append(sub if sub in known else base)
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle() -> None:
    modules = _modules()
    known = set(modules)
    graph = {name: _imports(name, path, known) for name, path in modules.items()}
    # A package's __init__ re-exporting its own submodules is not a circle with them.
    for name in graph:
        graph[name] = {t for t in graph[name] if not (t.startswith(name + ".") and modules[name].name == "__init__.py")}
    assert _cycles(graph) == []


def test_modules_are_small_and_packages_say_what_they_own() -> None:
    modules = _modules()
    big = {n: len(p.read_text(encoding="utf-8").splitlines()) for n, p in modules.items()}
    assert {n: c for n, c in big.items() if c > MAX_LINES} == {}
    for name, path in modules.items():
        if path.name == "__init__.py" and name.count(".") <= 2:
            doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
            assert doc and len(doc) > 40, f"{name} needs a docstring saying what it owns and may import"


def test_parts_are_packages() -> None:
    parts = ("models", "engine", "gateway", "protocol", "rules", "storage", "audit", "documents", "config", "ops",
             "bench", "bundle", "cli")
    for part in parts:
        assert (ROOT / "kit" / part / "__init__.py").exists()
    flat = sorted(p.name for p in (ROOT / "kit").glob("*.py"))
    assert flat == ["__init__.py", "errors.py", "files.py", "sse.py"]
    # the storage layer is not in the rules, and the documents are not `docs` (the documentation's folder)
    assert not (ROOT / "kit" / "docs").exists()
    assert not any((ROOT / "kit" / "rules" / f"{m}.py").exists() for m in ("db", "users", "keys", "state"))


def test_commands_live_in_modules_named_after_them() -> None:
    from kit.cli.main import cli

    for name in cli.commands:
        assert (ROOT / "kit" / "cli" / f"{name}.py").exists(), f"kit {name} should live in kit/cli/{name}.py"


def test_import_contracts_hold() -> None:
    exe = Path(sys.executable).parent / "lint-imports"
    if not exe.exists() and shutil.which("lint-imports") is None:
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    r = subprocess.run([str(exe) if exe.exists() else "lint-imports", "--no-cache"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "broken" not in r.stdout.lower().replace("0 broken", "")


def test_functions_fit_on_a_screen() -> None:
    long = {}
    for folder in SHORT_FUNCTIONS:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    size = (node.end_lineno or node.lineno) - node.lineno + 1
                    if size > MAX_FUNCTION_LINES:
                        long[f"{path.relative_to(ROOT)}::{node.name}"] = size
    assert long == {}


def test_every_package_is_in_the_distribution() -> None:
    """A package left out of pyproject's `packages.find` works from the source tree but is missing from the
    wheel (a non-editable install, a bundle for sites with no network)."""
    import tomllib

    from setuptools import find_packages

    include = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"][
        "packages"]["find"]["include"]
    found = set(find_packages(str(ROOT), include=include))
    packages = {".".join(p.parent.relative_to(ROOT).parts) for top in ("kit", "ui", "benchmarks")
                for p in (ROOT / top).rglob("__init__.py")}
    assert packages - found == set()
