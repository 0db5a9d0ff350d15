"""Usage figures for administrators, auditors and the DPO, computed from the audit log alone.

Per day or ISO week over a period: chat and completion requests, distinct active users (pseudonyms),
refusals by reason, answers that used documents and answers for which no source was found, generated
tokens, latency percentiles of the answers, and the same per model. A count of distinct users below the
threshold is shown as ``"< N"``: the figures never describe one person.

Refusal reasons: ``personal_data:CATEGORY`` (the policy blocked that category), ``limits`` (an abuse
limit), ``charter`` (the charter was not acknowledged), ``closed`` (the chat was closed by an
administrator), and ``context_overflow`` / ``queue_full`` (the request was too long for the model, or the
server was full).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from kit.audit.records import AuditRow
from kit.errors import UsageError

Period = Literal["day", "week"]
REQUESTS = ("chat", "completion")
REFUSED = ("blocked", "limited", "refused")  # statuses of the requests that got no answer
MAX_DAYS = 3660  # ten years: one query, one answer


@dataclass
class Span:
    """A validated period: ``start`` and ``end`` inclusive (UTC dates), cut ``by`` day or ISO week."""

    start: date
    end: date
    by: Period

    @property
    def since(self) -> datetime:
        return datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC)

    @property
    def until(self) -> datetime:
        return self.since + timedelta(days=(self.end - self.start).days + 1)

    def label(self, day: date) -> str:
        if self.by == "day":
            return day.isoformat()
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"

    def labels(self) -> list[str]:
        out: list[str] = []
        for i in range((self.end - self.start).days + 1):
            name = self.label(self.start + timedelta(days=i))
            if not out or out[-1] != name:
                out.append(name)
        return out


def parse_day(text: str | None, name: str) -> date | None:
    if text is None or text == "":
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"'{name}' must be a date written YYYY-MM-DD (for example 2026-03-31), got {text!r}") from None


def span(start: str | None, end: str | None, by: str | None = "day", *, today: date | None = None,
         default_days: int = 30) -> Span:
    """The period asked for: ``end`` defaults to today (UTC), ``start`` to ``default_days`` days before it."""
    if by not in ("day", "week"):
        raise UsageError(f"'by' must be 'day' or 'week', got {by!r}")
    last = parse_day(end, "to") or today or datetime.now(UTC).date()
    first = parse_day(start, "from") or last - timedelta(days=default_days - 1)
    if first > last:
        raise UsageError(f"'from' ({first}) is after 'to' ({last}): give the earlier date first")
    if (last - first).days >= MAX_DAYS:
        raise UsageError(f"the period spans more than {MAX_DAYS} days: ask for a shorter one")
    return Span(first, last, by)  # type: ignore[arg-type]


def percentile(values: list[int], q: float) -> int | None:
    """Nearest-rank percentile (q in 0..100); None without values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def masked(count: int, threshold: int) -> int | str:
    """A count of distinct users, or ``"< threshold"`` when it is positive but below the threshold."""
    return f"< {threshold}" if 0 < count < threshold else count


def refusal_reasons(row: AuditRow) -> list[str]:
    """Why a request got no answer (empty for an answered one)."""
    if row.status == "limited":
        return ["limits"]
    if row.status == "blocked":
        named = str(row.detail.get("blocked") or "")
        categories = [c for c in named.split(",") if c] or row.pii_categories or ["unknown"]
        return [f"personal_data:{c}" for c in sorted(set(categories))]
    if row.status == "refused":
        return [str(row.detail.get("reason") or "other")]
    return []


@dataclass
class _Tally:
    requests: int = 0
    users: set[str] = field(default_factory=set)
    refusals: dict[str, int] = field(default_factory=dict)
    with_documents: int = 0
    no_source: int = 0
    tokens: int = 0
    latencies: list[int] = field(default_factory=list)

    def add(self, row: AuditRow) -> None:
        self.requests += 1
        if row.user:
            self.users.add(row.user)
        reasons = refusal_reasons(row)
        for reason in reasons:
            self.refusals[reason] = self.refusals.get(reason, 0) + 1
        self.tokens += row.completion_tokens
        if reasons or row.status != "ok":
            return
        self.latencies.append(row.latency_ms)
        if row.doc_ids:
            self.with_documents += 1
        elif row.detail.get("documents") is True:
            self.no_source += 1

    def figures(self, threshold: int) -> dict[str, Any]:
        return {"requests": self.requests, "active_users": masked(len(self.users), threshold),
                "refusals": dict(sorted(self.refusals.items())), "with_documents": self.with_documents,
                "no_source": self.no_source, "tokens": self.tokens,
                "latency_p50_ms": percentile(self.latencies, 50), "latency_p95_ms": percentile(self.latencies, 95)}


def usage_rows(rows: Iterable[AuditRow], period: Span, threshold: int = 5) -> list[dict[str, Any]]:
    """One dict per day or week of ``period`` (empty ones included, in order): the figures of the chat and
    completion rows among ``rows``, and ``models``: the same figures per model."""
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
        raise UsageError("the usage threshold must be a whole number of distinct users, 1 or more")
    tallies: dict[str, _Tally] = {name: _Tally() for name in period.labels()}
    per_model: dict[str, dict[str, _Tally]] = {name: {} for name in tallies}
    for row in rows:
        if row.action not in REQUESTS:
            continue
        day = datetime.fromisoformat(row.time).astimezone(UTC).date()
        if not period.start <= day <= period.end:
            continue
        name = period.label(day)
        tallies[name].add(row)
        per_model[name].setdefault(row.model or "?", _Tally()).add(row)
    return [{"period": name, **tally.figures(threshold),
             "models": {m: t.figures(threshold) for m, t in sorted(per_model[name].items())}}
            for name, tally in tallies.items()]


def reasons_of(rows: list[dict[str, Any]]) -> list[str]:
    return sorted({reason for r in rows for reason in r["refusals"]})


def to_csv(rows: list[dict[str, Any]]) -> str:
    """The figures as CSV: one line per period (model empty) then one per period and model, a column per
    refusal reason."""
    reasons = reasons_of(rows)
    head = ["period", "model", "requests", "active_users", "with_documents", "no_source", "tokens",
            "latency_p50_ms", "latency_p95_ms", *[f"refused:{r}" for r in reasons]]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(head)
    for period, model, figures in _lines(rows):
        writer.writerow([period, model, *["" if figures[k] is None else figures[k] for k in head[2:9]],
                         *[figures["refusals"].get(r, 0) for r in reasons]])
    return out.getvalue()


def _lines(rows: list[dict[str, Any]]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for r in rows:
        yield r["period"], "", r
    for r in rows:
        for model, figures in r["models"].items():
            yield r["period"], model, figures
