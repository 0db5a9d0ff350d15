"""The head of the audit log (latest row number and hash) as text, and its publication to the system log.

A head copied outside the database (the system journal, a ticket, a printout) lets `kit audit verify
--head ROW:HASH` show later that rows were cut from the end or history rewritten, even by someone who
could write the database and its recorded head.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
import sys

from kit.audit.log import AuditLog
from kit.errors import UsageError

DEV_LOG = "/dev/log"
_HEAD = re.compile(r"([0-9]+):([0-9a-fA-F]{64})")
_logger = logging.getLogger("kit.audit")


def format_head(row_id: int, digest: str) -> str:
    """``ROW:HASH``, the form `kit audit head` prints and `kit audit verify --head` reads."""
    return f"{row_id}:{digest}"


def parse_head(text: str) -> tuple[int, str]:
    """Row id and hash from ``ROW:HASH``; UsageError for anything else."""
    found = _HEAD.fullmatch(text.strip())
    if not found:
        raise UsageError(f"{text.strip()!r} is not an audit head: give ROW:HASH as `kit audit head` printed it "
                         "(a row number, a colon and 64 hexadecimal digits)")
    return int(found.group(1)), found.group(2).lower()


def publish_head(log: AuditLog, reason: str, *, address: str = DEV_LOG) -> str:
    """Write ``kit audit head ROW:HASH (reason)`` to the system log and return the head.

    Sent to syslog through ``address`` (facility authpriv, tag kit-audit) when that socket exists, else to
    standard error (which journald keeps for a systemd service); also logged to the ``kit.audit`` logger.
    """
    head = format_head(*log.head())
    line = f"kit audit head {head} ({reason})"
    record = _logger.makeRecord(_logger.name, logging.INFO, __file__, 0, line, (), None)
    handler: logging.Handler
    try:
        if not os.path.exists(address):
            raise FileNotFoundError(address)
        handler = logging.handlers.SysLogHandler(address=address,
                                                 facility=logging.handlers.SysLogHandler.LOG_AUTHPRIV)
        handler.ident = "kit-audit: "
    except OSError:
        handler = logging.StreamHandler(sys.stderr)
    try:
        handler.handle(record)
    finally:
        handler.close()
    if _logger.isEnabledFor(logging.INFO):
        _logger.handle(record)
    return head
