"""The gateway's stores, opened together from the configuration: state, audit log, conversations."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from kit.config import Settings
from kit.errors import KitError
from kit.rules.audit import AuditLog, pseudonymize
from kit.rules.conversations import ConversationStore
from kit.rules.store import Store, load_or_create_secret

log = logging.getLogger("kit.retention")


@dataclass
class GatewayState:
    store: Store
    audit: AuditLog
    conversations: ConversationStore
    secret: bytes

    def pseudonym(self, user: str) -> str:
        return pseudonymize(user, self.secret)

    def close(self) -> None:
        self.store.close()
        self.audit.close()


def audit_url(settings: Settings) -> str | Path:
    import os

    return os.environ.get("KIT_AUDIT_URL") or settings.home / "audit.db"


def open_state(settings: Settings) -> GatewayState:
    home = settings.home
    home.mkdir(parents=True, exist_ok=True)
    secret = load_or_create_secret(home)
    policy = settings.policy
    return GatewayState(
        store=Store(home / "state.db"),
        audit=AuditLog(audit_url(settings), secret, log_text=policy.log_prompt_text),
        conversations=ConversationStore(home / "conversations.db", policy.conversation_retention_days),
        secret=secret,
    )


def start_maintenance(state: GatewayState, settings: Settings, *, interval_s: float = 86400) -> threading.Event:
    """Apply the retention periods now and then daily (audit rows, stored conversations), in a daemon thread."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                state.audit.purge(settings.policy.audit_retention_days)
                state.conversations.purge()
            except KitError as exc:
                log.warning("retention purge failed: %s", exc)
            stop.wait(interval_s)

    threading.Thread(target=loop, name="kit-retention", daemon=True).start()
    return stop
