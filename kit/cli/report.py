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
def report(fmt: str, output: Path | None) -> None:
    """Write the support pack for the DPO and CISO: purpose, charter, data flows, retention, models, checks, audit."""
    from kit.ops.report import build_report, to_markdown

    data = build_report(current_settings())
    text = to_markdown(data) if fmt == "md" else json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"
    if output:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


def register(cli: click.Group) -> None:
    """Add `report` to the kit command line."""
    cli.add_command(report)
