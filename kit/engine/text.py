"""Text and token helpers of the in-process engine: message contents, shared prompt prefixes and
stop strings found (or possibly starting) in streamed text."""

from __future__ import annotations

from typing import Any

from kit.errors import UsageError


def content_text(content: Any) -> str:
    """Message content as text: a string, or the text parts of an OpenAI content list."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    raise UsageError("message content must be a string or a list of text parts.")


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def find_stop(text: str, stops: list[str], sent: int) -> int | None:
    best: int | None = None
    for s in stops:
        if not s:
            continue
        i = text.find(s, max(0, sent - len(s)))
        if i >= 0 and (best is None or i < best):
            best = i
    return best


def stop_prefix_len(text: str, stops: list[str]) -> int:
    """Length of the longest tail of text that is a proper prefix of a stop string."""
    keep = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), 0, -1):
            if text.endswith(s[:k]):
                keep = max(keep, k)
                break
    return keep
