"""`kit users`: the browser chat's local accounts (add, list, remove, change a password)."""

from __future__ import annotations

import sys

import click

from kit.cli.ui import ui_settings
from kit.errors import UsageError

ROLES = ("user", "admin", "auditor")


@click.group()
def users() -> None:
    """Local accounts of the browser chat (ui.auth: local); passwords are stored as argon2 hashes."""


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), default="user", show_default=True, help="What the account may do.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
@click.option("--group", "-g", "groups", multiple=True, help="Need-to-know group whose documents the user may "
              "retrieve (repeat).")
def users_add(name: str, role: str, password_stdin: bool, groups: tuple[str, ...]) -> None:
    """Add the account NAME (asks for its password twice, hidden)."""
    from kit.storage.users import add_user, users_place

    settings = ui_settings()
    user = add_user(settings.home, name, role, _read_password(password_stdin), groups)
    click.echo(f"added {user.name} ({user.role}) to {users_place(settings.home)}.")


@users.command("list")
def users_list() -> None:
    """List accounts: name, role, creation date (never passwords)."""
    from kit.storage.users import list_users

    rows = list_users(ui_settings().home)
    if not rows:
        click.echo("no account yet: add one with `kit users add NAME --role admin`.")
        return
    click.echo(f"{'NAME':32} {'ROLE':8} CREATED")
    for u in rows:
        click.echo(f"{u.name:32} {u.role:8} {u.created}")


@users.command("rm")
@click.argument("name")
def users_rm(name: str) -> None:
    """Remove the account NAME."""
    from kit.storage.users import remove_user

    remove_user(ui_settings().home, name)
    click.echo(f"removed {name}.")


@users.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the new password from the first line of standard input.")
def users_passwd(name: str, password_stdin: bool) -> None:
    """Set a new password for NAME."""
    from kit.storage.users import get_user, set_password

    settings = ui_settings()
    if get_user(settings.home, name) is None:
        raise UsageError(f"no user named '{name}': `kit users list` shows them.")
    set_password(settings.home, name, _read_password(password_stdin))
    click.echo(f"password of {name} changed.")


def register(cli: click.Group) -> None:
    """Add `users` to the kit command line."""
    cli.add_command(users)
