"""`kit report`: the support pack for the DPO and the CISO."""

from __future__ import annotations

import json
from pathlib import Path

import click

from kit.cli.common import current_settings


@click.command()
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File (default: stdout).")
@click.option("--from", "start", default=None, metavar="YYYY-MM-DD",
              help="First day of the usage figures (default: 28 days before --to).")
@click.option("--to", "end", default=None, metavar="YYYY-MM-DD", help="Last day of the usage figures (default: today).")
@click.option("--by", type=click.Choice(["day", "week"]), default="week", show_default=True,
              help="Usage figures per day or per ISO week.")
def report(fmt: str, output: Path | None, start: str | None, end: str | None, by: str) -> None:
    """Write the support pack for the DPO and CISO: purpose, charter, data flows, retention, models, documents,
    checks, audit and usage figures (from the audit log only; distinct users under policy.usage_min_users shown as
    "< N")."""
    from kit.ops.report import build_report, to_markdown

    data = build_report(current_settings(), start, end, by)
    text = to_markdown(data) if fmt == "md" else json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"
    if output:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


def register(cli: click.Group) -> None:
    """Add `report` to the kit command line."""
    cli.add_command(report)
