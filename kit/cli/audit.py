"""`kit audit`: check, seal, purge, export and count the audit log."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from kit.cli.common import current_settings, echo_json


@click.group()
def audit() -> None:
    """Check, purge, export and summarise the audit log (for the DPO and auditors)."""


def _audit_log(adopt_plain: bool = False) -> Any:
    from kit.storage.state import open_state

    return open_state(current_settings(), adopt_plain=adopt_plain)


@audit.command("verify")
@click.option("--head", "noted", metavar="ROW:HASH", default=None,
              help="A head printed earlier by `kit audit head` (or read in the system journal): the log must "
                   "still hold that row with that hash.")
def audit_verify(noted: str | None) -> None:
    """Check the keyed hash chain; report the first altered or missing row and exit 1.

    With --head, also fail when rows were cut from the end or the history rewritten since that head was noted.
    """
    from kit.audit import parse_head

    head = parse_head(noted) if noted else None
    state = _audit_log()
    try:
        result = state.audit.verify(head=head)
    finally:
        state.close()
    if result.ok:
        click.echo(f"OK: {result.rows_checked} rows, chain intact" + (f"; {result.reason}." if head else "."))
        return
    click.echo(f"FAIL: {result.reason} (first bad row: {result.first_bad_id}; {result.rows_checked} rows checked).")
    raise SystemExit(1)


@audit.command("head")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: row, hash and head.")
def audit_head(as_json: bool) -> None:
    """Print the head of the audit log, ROW:HASH (latest row number and its hash), to keep outside the server.

    `kit audit verify --head ROW:HASH` later shows whether rows were cut or rewritten since.
    """
    from kit.audit import format_head

    state = _audit_log()
    try:
        row, digest = state.audit.head()
    finally:
        state.close()
    if as_json:
        echo_json({"row": row, "hash": digest, "head": format_head(row, digest)})
        return
    click.echo(format_head(row, digest))


@audit.command("seal")
def audit_seal() -> None:
    """Adopt an audit log written by a kit from before keyed chains (once, after the upgrade).

    Its rows keep their plain SHA-256 chain and still verify; the end of that chain is sealed with the audit
    key and new rows are keyed. The server does this itself when it creates the audit key.
    """
    state = _audit_log(adopt_plain=True)
    try:
        result = state.audit.verify()
    finally:
        state.close()
    click.echo(("OK: " if result.ok else "FAIL: ") + f"{result.reason}; new rows are chained with the audit key.")
    if not result.ok:
        raise SystemExit(1)


@audit.command("purge")
@click.option("--days", type=click.IntRange(1), default=None,
              help="Retention in days (default: policy.audit_retention_days).")
def audit_purge(days: int | None) -> None:
    """Delete audit rows, conversations, feedback and attached files older than their retention periods, then
    write the audit head to the system log (the server also does it daily)."""
    from kit.storage.state import purge_records

    settings = current_settings()
    state = _audit_log()
    try:
        done = purge_records(state, settings, audit_days=days)
    finally:
        state.close()
    click.echo(f"purged {done.audit_rows} audit row(s), {done.conversations} conversation(s), {done.feedback} "
               f"feedback item(s) and {done.attachments} attached file(s); audit head {done.head}.")


@audit.command("export")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]), default=None,
              help="First day to export (YYYY-MM-DD).")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="jsonl", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File (default: stdout).")
def audit_export(since: Any, fmt: str, output: Path | None) -> None:
    """Export audit rows (pseudonymised; no prompt text unless policy.log_prompt_text is on)."""
    from datetime import UTC

    state = _audit_log()
    start = since.replace(tzinfo=UTC) if since else None
    try:
        if output:
            with output.open("w", encoding="utf-8", newline="") as fh:
                n = state.audit.export(fh, fmt, since=start)  # type: ignore[arg-type]
            click.echo(f"wrote {n} rows to {output}", err=True)
        else:
            n = state.audit.export(sys.stdout, fmt, since=start)  # type: ignore[arg-type]
    finally:
        state.close()


@audit.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def audit_stats(as_json: bool) -> None:
    """Counts by action and day, users, tokens, personal-data categories: figures, never content."""
    import dataclasses

    state = _audit_log()
    try:
        stats = dataclasses.asdict(state.audit.stats())
    finally:
        state.close()
    if as_json:
        echo_json(stats)
        return
    click.echo(f"rows: {stats['total']}, distinct users: {stats['users']}, tokens: {stats['prompt_tokens']} in / "
               f"{stats['completion_tokens']} out")
    for key in ("by_action", "pii_categories", "pii_actions", "by_day"):
        if stats[key]:
            click.echo(f"{key}: " + ", ".join(f"{k}={v}" for k, v in sorted(stats[key].items())))


def register(cli: click.Group) -> None:
    """Add `audit` to the kit command line."""
    cli.add_command(audit)
