"""The minimised, tamper-evident audit log: records (rows, events, hashes), storage (SQLite or
PostgreSQL), the keyed chain's record (chain), the log itself (append, verify, purge, export, figures) and
its head (printed, checked, published to the system log), and the usage figures drawn from it (usage).

Imports kit.errors and kit.files only.
"""

from kit.audit.chain import needs_existing_key
from kit.audit.head import DEV_LOG, format_head, parse_head, publish_head
from kit.audit.log import AuditLog, start_daily_purge
from kit.audit.records import ACTIONS, ZERO_HASH, AuditEvent, AuditRow, AuditStats, VerifyResult, pseudonymize
from kit.audit.usage import Span, span, to_csv, usage_rows

__all__ = ["ACTIONS", "DEV_LOG", "ZERO_HASH", "AuditEvent", "AuditLog", "AuditRow", "AuditStats", "Span",
           "VerifyResult", "format_head", "needs_existing_key", "parse_head", "pseudonymize", "publish_head", "span",
           "start_daily_purge", "to_csv", "usage_rows"]
