"""Reading a file for the index: parse it into sections and scan them for personal data.

Nothing here touches the index: :func:`read_file` runs in a worker thread of an ingest, reading and
scanning the next file while the current one is embedded (the embedding engine releases the
interpreter while it computes; see :mod:`kit.documents.ingest`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from kit.config import Settings
from kit.documents.parsers import Section, parse


class FindingLike(Protocol):
    """What a personal-data detector returns for each finding (kit.rules.privacy.Finding fits)."""

    @property
    def type(self) -> str: ...
    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...


Scanner = Callable[[str], Sequence[FindingLike]]


def no_scan(text: str) -> list[FindingLike]:
    """A scanner that finds nothing (benchmarks; never the default)."""
    return []


class DetectorScan:
    """The personal-data detector used for prompts (loaded on first use, then shared); :meth:`many` scans the
    sections of a file together (one spaCy pass for several of them, as the detector batches pieces)."""

    def __call__(self, text: str) -> Sequence[FindingLike]:
        from kit.rules.privacy import get_detector

        return get_detector().scan(text)

    def many(self, texts: list[str]) -> Sequence[Sequence[FindingLike]]:
        from kit.rules.privacy import get_detector

        return get_detector().scan_many(texts)


default_scan: Scanner = DetectorScan()


def _mask(text: str, findings: Sequence[FindingLike]) -> str:
    parts, cursor = [], 0
    for f in sorted(findings, key=lambda f: f.start):
        if f.start < cursor:
            continue
        parts += [text[cursor:f.start], f"[{f.type}]"]
        cursor = f.end
    return "".join(parts) + text[cursor:]


def scan_sections(sections: list[Section], scan: Scanner,
                  settings: Settings) -> tuple[dict[str, int], list[Section], Sequence[Sequence[FindingLike]]]:
    """Counts per personal-data category, the sections with those findings masked, and every finding of each."""
    policy = settings.policy
    counts: dict[str, int] = {}
    masked = []
    many = getattr(scan, "many", None)  # a scanner that batches (the default one)
    texts = [section.text for section in sections]
    results = many(texts) if many is not None else [scan(text) for text in texts]
    for section, findings in zip(sections, results, strict=True):
        found = [f for f in findings if policy.pii_actions.get(f.type, policy.pii_default_action) != "allow"]
        for f in found:
            counts[f.type] = counts.get(f.type, 0) + 1
        masked.append(Section(_mask(section.text, found), section.page, section.heading) if found else section)
    return dict(sorted(counts.items())), masked, results


@dataclass
class ReadFile:
    """A file parsed and scanned: its sections, those with the findings masked, the findings of each
    section and the counts per category (see :func:`scan_sections`)."""

    sections: list[Section]
    masked: list[Section]
    findings: Sequence[Sequence[FindingLike]]
    counts: dict[str, int]


def read_file(path: Path, scan: Scanner, settings: Settings) -> ReadFile:
    """Parse ``path`` (:func:`kit.documents.parsers.parse`, which raises DocumentError) and scan it."""
    sections = parse(path)
    counts, masked, findings = scan_sections(sections, scan, settings)
    return ReadFile(sections, masked, findings, counts)
