"""Usage figures (the Usage tab, GET /v1/admin/usage, `kit report`): computed from audit rows the tests write,
the threshold on distinct users, and the gateway's own rows for each kind of refusal."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import ServerHandle

from kit.audit import AuditEvent, AuditLog, span, to_csv, usage_rows
from kit.errors import UsageError

KEY = b"k" * 32
MONDAY = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # ISO week 2026-W10


class Clock:
    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment


def chat(user: str, *, model: str = "m1", tokens: int = 0, latency: int = 0, status: str = "ok",
         docs: list[str] | None = None, **detail: Any) -> AuditEvent:
    return AuditEvent(action="chat", user=user, model=model, prompt_tokens=7, completion_tokens=tokens,
                      latency_ms=latency, status=status, doc_ids=docs or [], detail=detail)


def write_week(log: AuditLog, clock: Clock) -> None:
    """Monday: six users answered, one answer with documents, one with no source, four refusals and a sign-in
    (not a request); Tuesday: two users on another model; the next Monday: one user."""
    clock.moment = MONDAY
    for i in range(1, 7):
        log.record(chat(f"u{i}", tokens=10 * i, latency=100 * i))
    log.record(chat("u1", tokens=5, latency=700, docs=["d1", "d2"], documents=True))
    log.record(chat("u2", tokens=3, latency=800, documents=True))
    log.record(AuditEvent(action="chat", user="u3", model="m1", status="blocked",
                          pii_categories=["CREDIT_CARD", "PERSON"], pii_action="block",
                          detail={"blocked": "CREDIT_CARD"}))
    log.record(chat("u4", status="limited", limit="requests_per_minute"))
    log.record(chat("u5", status="refused", reason="charter"))
    log.record(chat("u6", status="refused", reason="closed"))
    log.record(AuditEvent(action="login", user="u7"))
    clock.moment = MONDAY + timedelta(days=1, hours=14)
    log.record(chat("u1", model="m2", tokens=20, latency=50))
    log.record(AuditEvent(action="completion", user="u2", model="m2", completion_tokens=30, latency_ms=60))
    clock.moment = MONDAY + timedelta(days=7)
    log.record(chat("u1", tokens=1, latency=10))


@pytest.fixture
def log(tmp_path: Path) -> Iterator[tuple[AuditLog, Clock]]:
    clock = Clock(MONDAY)
    with AuditLog(tmp_path / "audit.db", KEY, now=clock) as opened:
        yield opened, clock


def nearest_rank(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[math.ceil(q / 100 * len(ordered)) - 1]


def test_daily_figures_match_the_rows(log: tuple[AuditLog, Clock]) -> None:
    audit, clock = log
    write_week(audit, clock)
    period = span("2026-03-02", "2026-03-04", "day")
    rows = usage_rows(audit.rows(period.since, period.until), period)
    assert [r["period"] for r in rows] == ["2026-03-02", "2026-03-03", "2026-03-04"]
    monday, tuesday, wednesday = rows
    answered = [100, 200, 300, 400, 500, 600, 700, 800]
    assert monday["requests"] == 12 and monday["active_users"] == 6
    assert monday["refusals"] == {"personal_data:CREDIT_CARD": 1, "limits": 1, "charter": 1, "closed": 1}
    assert monday["with_documents"] == 1 and monday["no_source"] == 1
    assert monday["tokens"] == sum(10 * i for i in range(1, 7)) + 5 + 3
    assert monday["latency_p50_ms"] == nearest_rank(answered, 50) == 400
    assert monday["latency_p95_ms"] == nearest_rank(answered, 95) == 800
    assert tuesday["requests"] == 2 and tuesday["tokens"] == 50 and tuesday["refusals"] == {}
    assert tuesday["active_users"] == "< 5"  # two people: never a count that small
    assert set(tuesday["models"]) == {"m2"} and tuesday["models"]["m2"]["requests"] == 2
    assert monday["models"]["m1"]["requests"] == 12
    assert wednesday["requests"] == 0 and wednesday["active_users"] == 0 and wednesday["latency_p50_ms"] is None


def test_weekly_figures_and_the_threshold(log: tuple[AuditLog, Clock]) -> None:
    audit, clock = log
    write_week(audit, clock)
    period = span("2026-03-01", "2026-03-10", "week")
    rows = usage_rows(audit.rows(period.since, period.until), period)
    assert [r["period"] for r in rows] == ["2026-W09", "2026-W10", "2026-W11"]
    assert rows[0]["requests"] == 0
    assert rows[1]["requests"] == 14 and rows[1]["active_users"] == 6 and rows[1]["tokens"] == 218 + 50
    assert rows[2]["requests"] == 1 and rows[2]["active_users"] == "< 5"
    strict = usage_rows(audit.rows(period.since, period.until), period, threshold=7)
    assert strict[1]["active_users"] == "< 7" and strict[1]["models"]["m1"]["active_users"] == "< 7"
    loose = usage_rows(audit.rows(period.since, period.until), period, threshold=1)
    assert loose[2]["active_users"] == 1


def test_csv_export_has_a_line_per_period_and_model(log: tuple[AuditLog, Clock]) -> None:
    audit, clock = log
    write_week(audit, clock)
    period = span("2026-03-02", "2026-03-03", "day")
    lines = to_csv(usage_rows(audit.rows(period.since, period.until), period)).splitlines()
    assert lines[0].startswith("period,model,requests,active_users,")
    assert "refused:personal_data:CREDIT_CARD" in lines[0]
    assert lines[1].startswith("2026-03-02,,12,6,1,1,218,400,800,")
    assert any(line.startswith("2026-03-03,m2,2,< 5,") for line in lines)
    assert not any("u1" in line for line in lines)  # never a person


@pytest.mark.parametrize(("start", "end", "by", "message"), [
    ("2026-3-2", None, "day", "YYYY-MM-DD"),
    ("2026-03-05", "2026-03-01", "day", "after"),
    ("2026-03-01", "2026-03-05", "month", "'day' or 'week'"),
    ("2000-01-01", "2026-03-05", "day", "shorter"),
])
def test_bad_periods_say_what_to_do(start: str, end: str | None, by: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        span(start, end, by)


def test_default_period_is_the_last_thirty_days() -> None:
    period = span(None, None, "day", today=date(2026, 3, 31))
    assert (period.start, period.end) == (date(2026, 3, 2), date(2026, 3, 31)) and len(period.labels()) == 30


# --- the gateway: its own audit rows for each outcome, the endpoint and who may read it ---------------------------


@pytest.fixture
def echo(tmp_path: Path) -> Iterator[ServerHandle]:
    from echo_engine import start_echo_gateway

    limits = {"user": {"requests_per_minute": 4, "tokens_per_minute": 0, "tokens_per_day": 0, "concurrent": 0}}
    handle, stop = start_echo_gateway(tmp_path / "home", tmp_path / "kit.yaml", limits=limits,
                                      policy={"usage_min_users": 2})
    yield handle
    stop()


def post_chat(gw: ServerHandle, user: str, text: str, **extra: Any) -> httpx.Response:
    body = {"messages": [{"role": "user", "content": text}], "max_tokens": 8, **extra}
    return httpx.post(gw.url + "/v1/chat/completions", headers=gw.headers(user), json=body, timeout=60)


def usage(gw: ServerHandle, user: str, role: str, query: str) -> httpx.Response:
    return httpx.get(gw.url + "/v1/admin/usage" + query, headers=gw.headers(user, role), timeout=60)


@pytest.mark.slow
def test_gateway_records_each_outcome_and_serves_the_figures(echo: ServerHandle) -> None:
    gw = echo
    assert post_chat(gw, "carol", "Bonjour").status_code == 403  # charter not acknowledged
    for user in ("alice", "bob"):
        gw.acknowledge(user)
    assert post_chat(gw, "alice", "Rédige une note sur les congés.").status_code == 200
    assert post_chat(gw, "alice", "Ma carte est 4111 1111 1111 1111, paie.").status_code == 422
    assert post_chat(gw, "bob", "Résume la procédure.", kit={"documents": True}).status_code == 200  # no document
    for _ in range(3):
        post_chat(gw, "bob", "Encore une question.")
    assert post_chat(gw, "bob", "Et une autre.").status_code == 429  # the fifth in a minute
    r = httpx.post(gw.url + "/v1/admin/chat", headers=gw.headers("root", "admin"),
                   json={"open": False, "message": "maintenance"})
    assert r.status_code == 200
    assert post_chat(gw, "alice", "Bonjour").status_code == 503
    today = datetime.now(UTC).date().isoformat()

    r = usage(gw, "dpo", "auditor", f"?from={today}&to={today}&by=day")
    assert r.status_code == 200, r.text
    (row,) = r.json()["rows"]
    assert set(row) >= {"period", "requests", "active_users", "refusals", "with_documents", "no_source", "tokens",
                        "latency_p50_ms", "latency_p95_ms"}
    assert row["period"] == today and row["requests"] == 9 and row["active_users"] == 3
    assert row["refusals"] == {"charter": 1, "personal_data:CREDIT_CARD": 1, "limits": 1, "closed": 1}
    assert row["no_source"] == 1 and row["with_documents"] == 0
    answered = [a for a in gw.state.audit.rows(action="chat") if a.status == "ok"]
    assert len(answered) == 5 and row["tokens"] == sum(a.completion_tokens for a in answered) > 0
    assert row["latency_p50_ms"] == nearest_rank([a.latency_ms for a in answered], 50)
    assert row["latency_p95_ms"] == max(a.latency_ms for a in answered)
    assert all(a.text is None for a in gw.state.audit.rows())  # minimised: no text in any row


@pytest.mark.slow
def test_endpoint_threshold_roles_and_errors(echo: ServerHandle) -> None:
    gw = echo
    gw.acknowledge("alice")
    assert post_chat(gw, "alice", "Bonjour").status_code == 200
    week = usage(gw, "root", "admin", "?by=week")
    assert week.status_code == 200 and week.json()["rows"][-1]["active_users"] == "< 2"  # policy.usage_min_users
    assert week.json()["rows"][-1]["period"].count("-W") == 1
    for role in ("user",):
        r = usage(gw, "alice", role, "")
        assert r.status_code == 403, r.text
    assert httpx.get(gw.url + "/v1/admin/usage", timeout=60).status_code in (401, 403)  # no key at all
    bad = usage(gw, "root", "admin", "?from=31/03/2026")
    assert bad.status_code == 400 and "YYYY-MM-DD" in bad.json()["error"]["message"]
    assert usage(gw, "root", "admin", "?by=month").status_code == 400
