"""Translations of the browser chat: same keys and placeholders in French and English, every key the
code uses exists, and no French or English sentence is written in ui/*.py."""

from __future__ import annotations

import ast
import re
import string
from pathlib import Path

import pytest

from ui.texts import LANGUAGES, catalog, flatten

UI = Path(__file__).resolve().parent.parent / "ui"
STOPWORDS = {
    # English
    "the",
    "and",
    "you",
    "your",
    "is",
    "are",
    "not",
    "with",
    "for",
    "this",
    "please",
    "to",
    "of",
    "in",
    "on",
    "be",
    "can",
    "has",
    "was",
    "it",
    "an",
    "or",
    "no",
    "answer",
    "error",
    "send",
    "user",
    "chat",
    # French
    "le",
    "la",
    "les",
    "de",
    "des",
    "du",
    "un",
    "une",
    "vous",
    "votre",
    "vos",
    "est",
    "pas",
    "pour",
    "avec",
    "et",
    "au",
    "aux",
    "ce",
    "cette",
    "sur",
    "dans",
    "qui",
    "que",
    "ne",
    "il",
    "elle",
    "réponse",
    "envoyer",
}
ACCENTS = re.compile(r"[àâäçéèêëîïôöùûüÿœæÀÂÇÉÈÊËÎÏÔÙÛÜŒ]")


def _flat(lang: str) -> dict[str, object]:
    return flatten(catalog(lang))


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_same_keys_in_every_language() -> None:
    keys = {lang: set(_flat(lang)) for lang in LANGUAGES}
    for lang in LANGUAGES:
        assert keys[lang] == keys["fr"], f"{lang}.yaml differs from fr.yaml: {keys[lang] ^ keys['fr']}"


def test_same_placeholders_and_no_empty_text() -> None:
    fr, en = _flat("fr"), _flat("en")
    for key, value in fr.items():
        other = en[key]
        assert type(value) is type(other), key
        if isinstance(value, list):
            assert len(value) == len(other) and all(value) and all(other), key
            continue
        assert isinstance(value, str) and value.strip() and str(other).strip(), f"empty text at {key}"
        assert _fields(value) == _fields(str(other)), f"placeholders differ at {key}: {value!r} / {other!r}"


def _sources() -> list[Path]:
    return sorted(UI.rglob("*.py"))  # the tabs' modules (ui/tabs/) too


def _used_keys() -> tuple[set[str], set[str]]:
    """Literal keys passed to t(...)/t.items(...) or given to the relabel registry, and f-string prefixes."""
    exact, prefixes = set(), set()
    for path in _sources():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name in ("t", "items", "get_optional") and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    exact.add(arg.value)
                elif isinstance(arg, ast.JoinedStr) and isinstance(arg.values[0], ast.Constant):
                    prefixes.add(str(arg.values[0].value))
                elif isinstance(arg, ast.BinOp) and isinstance(arg.left, ast.Constant):
                    prefixes.add(str(arg.left.value))
            if name == "lab":
                exact.update(
                    k.value.value
                    for k in node.keywords
                    if isinstance(k.value, ast.Constant) and isinstance(k.value.value, str)
                )
    return exact, prefixes


def test_every_key_used_exists() -> None:
    flat = _flat("fr")
    exact, prefixes = _used_keys()
    assert len(exact) > 80, "the key scan found too few keys: is it still reading ui/*.py?"
    missing = sorted(k for k in exact if k not in flat and "." in k)
    assert not missing, f"keys used in ui/*.py but missing from the translation files: {missing}"
    for prefix in prefixes:
        assert any(k.startswith(prefix) for k in flat), f"no key starts with {prefix!r}"


def _skipped_constants(tree: ast.AST) -> set[int]:
    """Docstrings, and strings only used to match the gateway's messages (regular expressions, `in`)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                skip.add(id(first.value))
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "re"
        ):
            skip.update(id(a) for a in node.args if isinstance(a, ast.Constant))
        if isinstance(node, ast.Compare) and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops):
            if isinstance(node.left, ast.Constant):
                skip.add(id(node.left))
    return skip


def _looks_like_language(text: str) -> bool:
    text = re.sub(r"<[^>]*>", " ", text)  # markup
    text = re.sub(r"\{[^}]*\}", " ", text)  # placeholders
    if ACCENTS.search(text):
        return True
    words = re.findall(r"[A-Za-z']+", text)
    if len(words) < 2 or " " not in text.strip():
        return False
    return any(w.lower() in STOPWORDS for w in words)


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(UI)))
def test_no_sentence_in_code(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _skipped_constants(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            if _looks_like_language(node.value):
                found.append(f"line {node.lineno}: {node.value!r}")
    assert not found, f"user-facing text belongs in ui/i18n/*.yaml, not in {path.name}: {found}"


def test_detector_catches_sentences() -> None:
    assert _looks_like_language("Envoyer le message")
    assert _looks_like_language("Send the message")
    assert _looks_like_language("Réponse")
    assert not _looks_like_language('<div class="kit-status kit-{kind}">')
    assert not _looks_like_language("kit-ai-label")
    assert not _looks_like_language("/v1/charter")
