"""Translations of the browser chat: every user-facing string comes from ui/i18n/<lang>.yaml."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

I18N_DIR = Path(__file__).resolve().parent / "i18n"
LANGUAGES = ("fr", "en")
DEFAULT = "fr"


@functools.cache
def catalog(lang: str) -> dict[str, Any]:
    lang = lang if lang in LANGUAGES else DEFAULT
    data = yaml.safe_load((I18N_DIR / f"{lang}.yaml").read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{I18N_DIR / f'{lang}.yaml'} must hold a mapping")
    return data


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


class Texts:
    """``t("chat.send")`` returns the text; ``t("chat.ai_label", model=...)`` fills placeholders."""

    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in LANGUAGES else DEFAULT
        self._flat = flatten(catalog(self.lang))

    def raw(self, key: str) -> Any:
        if key in self._flat:
            return self._flat[key]
        fallback = flatten(catalog(DEFAULT))
        return fallback.get(key, key)

    def __call__(self, key: str, **values: Any) -> str:
        text = self.raw(key)
        if not isinstance(text, str):
            return key
        return text.format(**values) if values else text

    def items(self, key: str) -> list[str]:
        value = self.raw(key)
        return [str(v) for v in value] if isinstance(value, list) else []

    def get_optional(self, key: str) -> str | None:
        value = self._flat.get(key)
        return value if isinstance(value, str) else None


def texts(lang: str) -> Texts:
    return _texts(lang if lang in LANGUAGES else DEFAULT)


@functools.cache
def _texts(lang: str) -> Texts:
    return Texts(lang)


def language_choices() -> list[tuple[str, str]]:
    """Each language named in its own words."""
    return [(str(catalog(lang)["language_name"]), lang) for lang in LANGUAGES]
