"""`kit doctor`: check the installation, each check with its fix."""

from __future__ import annotations

import click

from kit.cli.common import echo_json


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def doctor(as_json: bool) -> None:
    """Check the installation; each check is PASS, WARN or FAIL with the fix. Exit 1 on any FAIL."""
    from kit.ops.doctor import run_checks

    checks = run_checks()
    if as_json:
        echo_json({"checks": [c.__dict__ for c in checks], "ok": all(c.status != "FAIL" for c in checks)})
    else:
        for c in checks:
            line = f"{c.status:4}  {c.name}: {c.detail}"
            click.echo(line)
            if c.status != "PASS" and c.fix:
                click.echo(f"      fix: {c.fix}")
    if any(c.status == "FAIL" for c in checks):
        raise SystemExit(1)


def register(cli: click.Group) -> None:
    """Add `doctor` to the kit command line."""
    cli.add_command(doctor)
