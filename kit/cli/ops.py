"""`kit config`, `kit doctor` and `kit report`: configuration, installation checks and the support pack."""

from __future__ import annotations

import json
from pathlib import Path

import click

from kit.cli.common import current_settings, echo_json
from kit.errors import UsageError


@click.group()
def config() -> None:
    """Write or show the configuration (kit.yaml)."""


@config.command("init")
@click.argument("path", type=click.Path(path_type=Path), default=Path("kit.yaml"))
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def config_init(path: Path, force: bool) -> None:
    """Write a commented kit.yaml holding every key with its default."""
    from kit.config import template

    if path.exists() and not force:
        raise UsageError(f"{path} exists already; pass --force to overwrite it.")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(template(), encoding="utf-8")
    path.chmod(0o640)  # it may hold the engine's key: not for every local account
    click.echo(f"wrote {path}: set deployment.purpose and the contacts, then run `kit doctor`.")


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of YAML.")
def config_show(as_json: bool) -> None:
    """Print the effective configuration (file + environment), secrets hidden."""
    import yaml

    from kit.config import redacted

    settings = current_settings()
    data = redacted(settings)
    click.echo(f"# source: {settings.source or 'defaults'}; KIT_HOME={settings.home}", err=True)
    if as_json:
        echo_json(data)
    else:
        click.echo(yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=100))


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


# --- database ------------------------------------------------------------------------------------


@click.group()
def db() -> None:
    """The database of keys, users, acknowledgements, conversations, feedback and audit (KIT_DATABASE_URL)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Schema version to reach.")
def db_upgrade(revision: str) -> None:
    """Bring the database to this kit's schema, keeping every row; move in the files of an older layout."""
    from kit.rules.db import connect, database_url, import_files, upgrade

    settings = current_settings()
    database = connect(database_url(settings.home))
    before, after = upgrade(database, revision)
    click.echo(f"{database.where}: schema {before or 'empty'} -> {after}.")
    imported = import_files(database, settings.home) if revision == "head" else {}
    for name, rows in imported.items():
        click.echo(f"  moved {name} into the database ({rows} rows).")
    if imported:
        click.echo(f"the old files are under {settings.home}/imported-*/: delete that folder once checked (it holds "
                   "conversations and password hashes).")


@db.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def db_status(as_json: bool) -> None:
    """Show the database in use and its schema version against this kit's."""
    from kit.rules.db import SCHEMA_VERSION, connect, current_revision, database_url

    database = connect(database_url(current_settings().home))
    current, head = current_revision(database), SCHEMA_VERSION
    data = {"database": database.where, "dialect": database.engine.dialect.name, "schema": current, "needed": head,
            "up_to_date": current == head}
    if as_json:
        echo_json(data)
    else:
        state = "up to date" if current == head else "run `kit db upgrade`"
        click.echo(f"{data['database']} ({data['dialect']}): schema {current or 'empty'}, this kit needs {head}: "
                   f"{state}.")


# --- doctor --------------------------------------------------------------------------------------


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
    """Add `config`, `db`, `report` and `doctor` to the kit command line."""
    for command in (config, db, report, doctor):
        cli.add_command(command)
