"""The minimised, tamper-evident audit log: records (rows, events, hashes), storage (SQLite or
PostgreSQL) and the log itself (append, verify, purge, export, figures).

Imports kit.errors only.
"""

from kit.rules.audit.log import AuditLog, start_daily_purge
from kit.rules.audit.records import ACTIONS, ZERO_HASH, AuditEvent, AuditRow, AuditStats, VerifyResult, pseudonymize

__all__ = ["ACTIONS", "ZERO_HASH", "AuditEvent", "AuditLog", "AuditRow", "AuditStats", "VerifyResult", "pseudonymize",
           "start_daily_purge"]
