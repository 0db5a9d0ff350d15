"""docs/architecture.md agrees with the code: its one-way dependency line is pyproject.toml's import-linter
layers, its table has a row for every package of kit, and every module, class, function or attribute it
names exists (a renamed or removed module makes this fail, so the page cannot drift). Reads the source;
imports nothing of kit."""

from __future__ import annotations

import ast
import re
import tomllib
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
FILE_SUFFIXES = (".yaml", ".yml", ".json", ".db", ".sh", ".py", ".md", ".toml", ".txt", ".key", ".mako", ".js", ".css",
                 ".html", ".png", ".csv")
IDENT = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*/?")


def _text() -> str:
    return DOC.read_text(encoding="utf-8")


def _module_path(dotted: str) -> Path | None:
    """The file of a kit or ui module or package, or None."""
    base = ROOT.joinpath(*dotted.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


@cache
def _defined(path: Path) -> frozenset[str]:
    """The names a module defines for others: functions, classes, module and class attributes, attributes
    set on instances, parameters, imported names (a function's local variables do not count)."""
    names: set[str] = set()

    def targets(body: list[ast.stmt]) -> None:
        for stmt in body:
            if isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                for target in stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]:
                    names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
            elif isinstance(stmt, (ast.If, ast.Try)):
                targets(stmt.body + stmt.orelse + getattr(stmt, "finalbody", []))

    tree = ast.parse(path.read_text(encoding="utf-8"))
    targets(tree.body)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            if isinstance(node, ast.ClassDef):
                targets(node.body)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return frozenset(names)


def _files_under(package: str) -> list[Path]:
    path = _module_path(package)
    if path is None:
        return []
    return sorted(path.parent.rglob("*.py")) if path.name == "__init__.py" else [path]


def _resolves(dotted: str, packages: list[str]) -> bool:
    """`dotted` (kit.x.y.Name.attr, or relative to one of `packages`: policy, page.Handlers) is a module
    followed by names that module defines, or a name defined somewhere in `packages`."""
    dotted = dotted.rstrip("/")
    parts = dotted.split(".")
    prefixes = [""] if parts[0] in ("kit", "ui") else [p + "." for p in packages]
    for prefix in prefixes:
        full = (prefix + dotted).split(".")
        for cut in range(len(full), 0, -1):
            path = _module_path(".".join(full[:cut]))
            if path is not None:
                if all(name in _defined(path) for name in full[cut:]):
                    return True
                break
    if len(parts) == 1:  # a name in the row's packages: a function, a class, an attribute, a parameter
        return any(parts[0] in _defined(f) for pkg in packages for f in _files_under(pkg))
    return False


def _named(text: str) -> list[str]:
    """The names in backquotes that look like code (not file names, commands or prose)."""
    out = []
    for token in re.findall(r"`([^`\n]+)`", text):
        token = token.strip().removesuffix("()")
        if token.endswith(FILE_SUFFIXES) or not IDENT.fullmatch(token):
            continue
        out.append(token)
    return out


def _rows() -> list[tuple[list[str], str]]:
    """The packages table: (packages of the row, what the row says they own)."""
    rows = []
    for line in _text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`") and cells[0] != "package":
            rows.append((re.findall(r"`([^`]+)`", cells[0]), cells[1]))
    return rows


def test_the_dependency_line_is_the_import_linter_layers() -> None:
    line = " ".join(_text().split())
    found = re.search(r"Dependencies point one way: `([^`]+)`", line)
    assert found, "the page states the dependency line"
    stated = [sorted("kit." + p.strip() for p in layer.split(",")) for layer in found.group(1).split("→")]
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    (layers,) = [c["layers"] for c in contracts if c["type"] == "layers"]
    declared = [sorted(p.strip() for p in layer.split("|")) for layer in layers]
    assert stated == declared


def test_every_package_of_kit_has_a_row() -> None:
    listed = {p for packages, _ in _rows() for p in packages}
    packages = {f"kit.{p.parent.name}" for p in (ROOT / "kit").glob("*/__init__.py")} - {"kit.migrations"}
    modules = {f"kit.{p.stem}" for p in (ROOT / "kit").glob("*.py") if p.stem != "__init__"}
    assert packages | modules <= listed | {"kit.__main__"}, sorted((packages | modules) - listed)
    assert all(_module_path(p) for p in listed), [p for p in listed if not _module_path(p)]


@pytest.mark.parametrize("packages, owns", _rows(), ids=lambda v: v[0] if isinstance(v, list) else "")
def test_every_name_in_a_row_exists(packages: list[str], owns: str) -> None:
    missing = [n for n in _named(owns) if not _resolves(n, packages)]
    assert not missing, f"{packages}: {missing}"


def test_every_dotted_name_on_the_page_exists() -> None:
    text = _text()
    dotted = set(re.findall(r"\b((?:kit|ui)(?:\.[A-Za-z_]\w*)+)", text))
    dotted = {d for d in dotted if not d.endswith(tuple(s.lstrip(".") for s in FILE_SUFFIXES))
              and f"{d}<" not in text and not re.search(re.escape(d) + r"\.<", text)}
    missing = sorted(d for d in dotted if not _resolves(d, []))
    assert not missing, missing


def test_the_check_finds_a_name_that_does_not_exist() -> None:
    assert _resolves("kit.storage.state.open_state", [])
    assert not _resolves("kit.rules.audit", [])  # the audit log moved to kit.audit
    assert not _resolves("kit.docs.ingest", [])
    assert _resolves("policy", ["kit.rules"]) and not _resolves("names", ["kit.rules"])
