"""`kit db`: the installation's database schema (upgrade, status)."""

from __future__ import annotations

import click

from kit.cli.common import current_settings, echo_json


@click.group()
def db() -> None:
    """The database of keys, users, acknowledgements, conversations, feedback and audit (KIT_DATABASE_URL)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Schema version to reach.")
def db_upgrade(revision: str) -> None:
    """Bring the database to this kit's schema, keeping every row; move in the files of an older layout."""
    from kit.storage.db import connect, database_url, import_files, upgrade

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
    from kit.storage.db import SCHEMA_VERSION, connect, current_revision, database_url

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


def register(cli: click.Group) -> None:
    """Add `db` to the kit command line."""
    cli.add_command(db)
