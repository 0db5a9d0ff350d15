"""`kit privacy`: what the personal-data rules find in a text, without sending it anywhere."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kit.cli.common import ask_gateway, current_settings, echo_json
from kit.errors import UsageError


@click.group()
def privacy() -> None:
    """Personal-data detection."""


@privacy.command("scan")
@click.argument("source", default="-")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--local", is_flag=True,
              help="Load the detector in this process even when the gateway of this machine is running.")
def privacy_scan(source: str, as_json: bool, local: bool) -> None:
    """Find personal data in FILE (or - for standard input) with the local detector: the running gateway's on this
    machine when one answers (its models are loaded; the scan is audited there), else one loaded here."""
    if source == "-":
        text = sys.stdin.read()
    else:
        try:
            text = Path(source).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UsageError(f"{source} does not exist.") from None
    report = None if local else ask_gateway(current_settings(), "/v1/privacy/scan", {"text": text})
    if report is None or not isinstance(report.get("findings"), list):
        from kit.rules.privacy import scan_report

        report = scan_report(text)
    report = {"findings": report["findings"]}
    if as_json:
        echo_json(report)
        return
    if not report["findings"]:
        click.echo("no personal data found.")
    for f in report["findings"]:  # the characters as typed, a line break or tab shown as \n or \t
        shown = f["text"].replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")
        click.echo(f"{f['type']:14} {f['start']:>6}-{f['end']:<6} {f['score']:.2f}  {shown}")


def register(cli: click.Group) -> None:
    """Add `privacy` to the kit command line."""
    cli.add_command(privacy)
