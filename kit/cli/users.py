"""`kit users`: the browser chat's local accounts (add, list, change groups or role, unlock, remove, change a
password)."""

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
    """List accounts: name, role, need-to-know groups, creation date (never passwords)."""
    from kit.storage.users import list_users

    rows = list_users(ui_settings().home)
    if not rows:
        click.echo("no account yet: add one with `kit users add NAME --role admin`.")
        return
    width = max(6, *(len(",".join(u.groups)) for u in rows))
    click.echo(f"{'NAME':32} {'ROLE':8} {'GROUPS':{width}} CREATED")
    for u in rows:
        click.echo(f"{u.name:32} {u.role:8} {','.join(u.groups) or '-':{width}} {u.created}")


@users.command("set")
@click.argument("name")
@click.option("--group", "-g", "groups", multiple=True, help="Need-to-know group (repeat); replaces the account's "
              "groups.")
@click.option("--no-groups", is_flag=True, help="Take every group away: only the public documents remain.")
@click.option("--role", type=click.Choice(ROLES), default=None, help="A new role.")
def users_set(name: str, groups: tuple[str, ...], no_groups: bool, role: str | None) -> None:
    """Change the groups or the role of NAME (its open sessions end: it signs in again)."""
    from kit.storage.users import get_user, set_groups, set_role

    if groups and no_groups:
        raise UsageError("give either --group or --no-groups, not both.")
    if not groups and not no_groups and role is None:
        raise UsageError("nothing to change: give --group G (repeat), --no-groups or --role R.")
    home = ui_settings().home
    if groups or no_groups:
        set_groups(home, name, groups)
    if role is not None:
        set_role(home, name, role)
    user = get_user(home, name)
    if user is None:  # removed meanwhile
        raise UsageError(f"no user named '{name}': `kit users list` shows them.")
    click.echo(f"{user.name}: role {user.role}, groups {','.join(user.groups) or '-'}.")


@users.command("unlock")
@click.argument("name")
def users_unlock(name: str) -> None:
    """End the sign-in lock of NAME now (after too many failed sign-ins), instead of waiting for it to end."""
    from kit.storage.users import unlock_user

    unlock_user(ui_settings().home, name)
    click.echo(f"{name} is unlocked: the gateways forget its failed sign-ins at its next attempt.")


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
