"""The gateway's stores, opened together from the configuration: state, audit log, conversations, all in the
installation's database (``kit.storage.db``); their keys (kept apart from it, see ``kit.storage.keyfiles``); the
retention purge and the publication of the audit head."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from kit.audit import DEV_LOG, AuditEvent, AuditLog, needs_existing_key, pseudonymize, publish_head
from kit.config import Settings
from kit.errors import ConfigError, KitError
from kit.storage.attachments import AttachmentStore
from kit.storage.conversations import ConversationStore
from kit.storage.db import Database, driver_url, open_database
from kit.storage.keyfiles import AUDIT_KEY, create_key, key_path, pseudonym_key, read_key
from kit.storage.store import Store

log = logging.getLogger("kit.retention")


@dataclass
class GatewayState:
    store: Store
    audit: AuditLog
    conversations: ConversationStore
    secret: bytes
    attachments: AttachmentStore

    def pseudonym(self, user: str) -> str:
        return pseudonymize(user, self.secret)

    def close(self) -> None:
        self.store.close()
        self.audit.close()


@dataclass
class PurgeResult:
    audit_rows: int
    conversations: int
    feedback: int
    head: str
    attachments: int = 0


def audit_url(db: Database) -> str:
    """``KIT_AUDIT_URL`` when the audit log is kept apart, else the installation's database ``db``."""
    return os.environ.get("KIT_AUDIT_URL", "").strip() or driver_url(db.url)


def _database_folders(url: str | Path) -> tuple[Path, ...]:
    text = str(url)
    if text.startswith(("postgresql://", "postgres://")):
        return ()
    return (Path(text.removeprefix("sqlite:///")).expanduser().parent,)


def audit_key(settings: Settings, url: str | Path) -> tuple[bytes, bool]:
    """The audit chain's key and whether it was created now (on first use; refused when the log already holds
    rows chained with a key, which then must be restored)."""
    path = key_path(settings, "audit_key_file", AUDIT_KEY, apart_from=_database_folders(url))
    data = read_key(path, "audit_key_file")
    if data is not None:
        return data, False
    if needs_existing_key(url):
        raise ConfigError(
            f"the audit key {path} (policy.audit_key_file) is missing, but the audit log already holds rows chained "
            "with it: restore the file from your backup (32 bytes, mode 0600, owned by the service's user). Without "
            "it the log can be neither verified nor extended; to start a new log instead, move the old one away.")
    return create_key(path, "audit_key_file")


def open_state(settings: Settings, *, adopt_plain: bool = False) -> GatewayState:
    """Open the stores. A log written before keyed chains is adopted when its key is created now, or when
    ``adopt_plain`` is true (`kit audit seal`)."""
    home = settings.home
    home.mkdir(parents=True, exist_ok=True)
    db = open_database(home)
    url = audit_url(db)
    secret = pseudonym_key(settings, apart_from=_database_folders(url))
    chain_key, created = audit_key(settings, url)
    policy = settings.policy
    audit = AuditLog(url, secret, chain_key=chain_key, log_text=policy.log_prompt_text,
                     adopt_plain=adopt_plain or created)
    return GatewayState(
        store=Store(db),
        audit=audit,
        conversations=ConversationStore(db, policy.conversation_retention_days),
        secret=secret,
        attachments=AttachmentStore(home / "attachments", settings.attachments.max_files_per_user),
    )


def purge_records(state: GatewayState, settings: Settings, *, audit_days: int | None = None,
                  address: str = DEV_LOG) -> PurgeResult:
    """Apply the retention periods (audit rows, stored conversations, feedback and reports, attached files), then
    write the audit head to the system log."""
    policy = settings.policy
    rows = state.audit.purge(audit_days or policy.audit_retention_days)
    conversations = state.conversations.purge()
    feedback = state.store.purge_feedback(policy.feedback_retention_days)
    if feedback:
        state.audit.record(AuditEvent(action="purge", detail={
            "scope": "feedback", "deleted": feedback, "retention_days": policy.feedback_retention_days}))
    files = state.attachments.purge()
    if files:
        state.audit.record(AuditEvent(action="purge", detail={
            "scope": "attachments", "deleted": files, "retention_days": settings.attachments.days(
                policy.conversation_retention_days)}))
    return PurgeResult(rows, conversations, feedback, publish_head(state.audit, "purge", address=address), files)


def start_maintenance(state: GatewayState, settings: Settings, *, purge_every_s: float = 86400,
                      head_every_s: float = 3600, address: str = DEV_LOG) -> threading.Event:
    """In a daemon thread: apply the retention periods now and every ``purge_every_s`` seconds, and write the
    audit head to the system log at each purge and every ``head_every_s`` seconds; set the Event to stop."""
    stop = threading.Event()

    def loop() -> None:
        next_purge = 0.0
        while not stop.is_set():
            try:
                if time.monotonic() >= next_purge:
                    purge_records(state, settings, address=address)
                    next_purge = time.monotonic() + purge_every_s
                else:
                    publish_head(state.audit, "hourly", address=address)
            except KitError as exc:
                log.warning("retention purge or audit head failed: %s", exc)
            stop.wait(min(head_every_s, purge_every_s))

    threading.Thread(target=loop, name="kit-retention", daemon=True).start()
    return stop
