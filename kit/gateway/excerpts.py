"""Document excerpts under the personal-data policy, before the model, the caller or the history sees them.

Each retrieved excerpt (its text, its heading path and its source's name) is scanned like a message and each
category found gets its configured action (``policy.pii_actions``): mask puts placeholders in the excerpt, and that
masked text is the one the model reads, the one returned as ``kit.sources`` or as a search result, and the one kept
in the history; block withholds the excerpt (the others still go, and the model is told that excerpts were
withheld and for which categories: the caller cannot edit the documents, so refusing every question near
such a document would make it unusable, while withholding keeps its data from the model all the same); warn
and allow leave it as it is. Every category found is named in ``kit.personal_data`` (with the message's), in
``personal_data.sources`` (the excerpts' alone, with the withheld excerpts) and in the audit row.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kit.documents.retrieve import SearchResult
from kit.rules.policy import ChatOutcome, Gate
from kit.rules.privacy.detector import ScanStore


@dataclass
class Policed:
    """Excerpts after the policy: those kept (masked where the policy masks), and what was found."""

    results: list[SearchResult]
    categories: list[str] = field(default_factory=list)
    actions: dict[str, str] = field(default_factory=dict)
    masked: list[str] = field(default_factory=list)
    warned: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    withheld: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """``personal_data.sources`` of a response: what the policy found and did in the excerpts."""
        return {"categories": self.categories, "actions": self.actions, "masked": self.masked,
                "warned": self.warned, "blocked": self.blocked, "withheld": self.withheld}


def police(gate: Gate, results: Sequence[SearchResult], store: ScanStore | None = None) -> Policed:
    """Apply the policy to each excerpt's text, heading and source name (see the module docstring); ``store``: the
    findings the index keeps of its excerpts (:mod:`kit.documents.scans`: scanned at ingest, not at every chat)."""
    texts = [t for r in results for t in (r.heading, r.text, r.source)]
    outcomes = gate.apply_pii_texts(texts, store) if texts else []
    if outcomes is None:  # detection turned off: nothing scanned, nothing changed
        return Policed(list(results))
    out = Policed([])
    for n, result in enumerate(results):
        parts = outcomes[3 * n:3 * n + 3]
        heading, text, source = parts
        found = sorted({c for o in parts for c in o.categories})
        for cat in found:
            out.actions[cat] = next(o.actions[cat] for o in parts if cat in o.actions)
        blocked = sorted({c for o in parts for c in o.blocked})
        if blocked:
            named = gate.mask_for_storage(result.source) if source.categories else None  # the notice names no value
            out.withheld.append({"source": named.text if named else result.source, "page": result.page,
                                 "document_id": result.document_id, "chunk_index": result.chunk_index,
                                 "categories": blocked})
            continue
        out.results.append(dataclasses.replace(result, heading=heading.text, text=text.text, source=source.text))
    out.categories = sorted(out.actions)
    for cat in out.categories:
        {"mask": out.masked, "warn": out.warned, "block": out.blocked}.get(out.actions[cat], []).append(cat)
    return out


def with_excerpts(outcome: ChatOutcome, found: dict[str, Any]) -> ChatOutcome:
    """The request's outcome with the categories the policy found in the excerpts (``Policed.to_dict``), for the
    response and the audit row; the messages, and what blocked the request itself, are unchanged."""
    categories = sorted({*outcome.categories, *found.get("categories", [])})
    merged = [c for c in (*outcome.masked, *found.get("masked", []))]
    warned = [c for c in (*outcome.warned, *found.get("warned", []))]
    return dataclasses.replace(outcome, categories=categories, actions={**found.get("actions", {}), **outcome.actions},
                               masked=list(dict.fromkeys(merged)), warned=list(dict.fromkeys(warned)))
