"""Audit rows: the actions, the event a caller records, the stored row and its hash, results and figures."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from kit.errors import AuditError, UsageError

ACTIONS = (
    "chat", "completion", "acknowledge", "login", "login_failed", "logout", "key_created", "key_revoked",
    "document_ingested", "document_removed", "admin", "feedback", "report", "purge", "export",
    "delete_user_data", "document_search", "document_list", "privacy_scan", "file_upload", "file_delete",
)
ZERO_HASH = "0" * 64
PAGE = 500
COLUMNS = ("id, ts, pseudonym, action, model, prompt_tokens, completion_tokens, latency_ms, "
            "pii_categories, pii_action, doc_ids, status, detail, body, prev_hash, hash")
HEAD_SQL = "SELECT last_id, last_hash FROM audit_head WHERE slot = 1"
ANCHOR_SQL = "SELECT last_id, last_hash FROM audit_anchor WHERE slot = 1"
CHAIN_SQL = "SELECT scheme, keyed_from, legacy_hash, seal FROM audit_chain WHERE slot = 1"
CSV_RISKY = ("=", "+", "-", "@", "\t", "\r")
_logger = logging.getLogger(__name__)

DetailValue = str | int | float | bool


def pseudonymize(user: str, key: bytes) -> str:
    """Keyed pseudonym of a user id: HMAC-SHA256(key, user) in hex, first 16 characters."""
    if user == "":
        return ""
    if not key:
        raise UsageError("the audit pseudonymisation key is empty; configure a secret key")
    return hmac.new(key, user.encode("utf-8"), hashlib.sha256).hexdigest()[:16]


@dataclass
class AuditEvent:
    """One processing event as given by the caller; ``user`` is the raw user id."""

    action: str
    user: str = ""
    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: int = 0
    pii_categories: list[str] = field(default_factory=list)
    pii_action: str = ""
    doc_ids: list[str] = field(default_factory=list)
    status: str = "ok"
    detail: dict[str, DetailValue] = field(default_factory=dict)
    text: str | None = None


@dataclass
class AuditRow:
    """One stored row: ``user`` is the pseudonym, ``time`` is ISO 8601 UTC."""

    id: int
    time: str
    user: str
    action: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: int
    pii_categories: list[str]
    pii_action: str
    doc_ids: list[str]
    status: str
    detail: dict[str, DetailValue]
    text: str | None
    prev_hash: str
    hash: str


@dataclass
class VerifyResult:
    ok: bool
    rows_checked: int
    first_bad_id: int | None
    reason: str


@dataclass
class AuditStats:
    total: int = 0
    by_action: dict[str, int] = field(default_factory=dict)
    by_day: dict[str, int] = field(default_factory=dict)
    users: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    pii_categories: dict[str, int] = field(default_factory=dict)
    pii_actions: dict[str, int] = field(default_factory=dict)
    mean_latency_ms: dict[str, float] = field(default_factory=dict)


def canon(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise UsageError("datetimes given to the audit log must be timezone-aware (UTC)")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def row_hash(row: AuditRow, key: bytes | None = None) -> str:
    """HMAC-SHA256 with the chain key of ``prev_hash`` + the row's canonical JSON; plain SHA-256 of the same
    text when ``key`` is None (the unkeyed chain of logs written before keyed chains, still verified)."""
    message = (row.prev_hash + canon({k: v for k, v in asdict(row).items() if k not in ("prev_hash", "hash")}))
    if key is None:
        return hashlib.sha256(message.encode("utf-8")).hexdigest()
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).hexdigest()


def from_db(t: tuple[Any, ...]) -> AuditRow:
    try:
        return AuditRow(
            int(t[0]), str(t[1]), str(t[2]), str(t[3]), str(t[4]), int(t[5]), int(t[6]), int(t[7]),
            json.loads(t[8]), str(t[9]), json.loads(t[10]), str(t[11]), json.loads(t[12]),
            None if t[13] is None else str(t[13]), str(t[14]), str(t[15]),
        )
    except (ValueError, TypeError) as exc:
        raise AuditError(f"audit row {t[0]} is damaged ({exc}); run the audit verification") from exc


def check_days(days: int) -> None:
    if isinstance(days, bool) or not isinstance(days, int) or days < 0:
        raise UsageError("the audit retention must be a whole number of days, 0 or more")


def check_event(event: AuditEvent) -> None:
    if event.action not in ACTIONS:
        raise UsageError(f"unknown audit action {event.action!r}; use one of: {', '.join(ACTIONS)}")
    counts = (event.prompt_tokens, event.completion_tokens, event.latency_ms)
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in counts):
        raise UsageError(f"audit token counts and latency must be non-negative integers, got {counts}")
    if not all(isinstance(item, str) for item in [*event.pii_categories, *event.doc_ids]):
        raise UsageError("audit pii_categories and doc_ids must be lists of strings")
    for key, value in event.detail.items():
        if not isinstance(key, str) or not isinstance(value, (str, int, float, bool)) or (
                isinstance(value, float) and not math.isfinite(value)):
            raise UsageError(f"audit detail {key!r} must map a string to a str, int, bool or finite float")
    if {"anchor_id", "anchor_hash"} & event.detail.keys():
        raise UsageError("audit detail keys anchor_id and anchor_hash are reserved for the log's own purges")


def csv_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return canon(value)
    if isinstance(value, str) and value.startswith(CSV_RISKY):
        return "'" + value
    return str(value)
