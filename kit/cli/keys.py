"""`kit keys`: the API keys of applications and scripts (create, list, revoke)."""

from __future__ import annotations

import click

from kit.cli.common import current_settings


@click.group()
def keys() -> None:
    """Create, list and revoke API keys."""


@keys.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(["user", "admin", "auditor", "service"]), default="user", show_default=True)
@click.option("--acknowledge/--no-acknowledge", default=True,
              help="The key's owner acknowledges the current charter now (they must have read it).")
@click.option("--group", "-g", "groups", multiple=True, help="Need-to-know group whose documents it may retrieve "
              "(repeat).")
def keys_create(name: str, role: str, acknowledge: bool, groups: tuple[str, ...]) -> None:
    """Create a key for NAME and print it once; only its hash is stored."""
    from kit.storage.keys import create_key

    settings = current_settings()
    key, record = create_key(settings, name, role, acknowledge=acknowledge, groups=list(groups))
    click.echo(key)
    click.echo(f"key for {record.name} ({record.role}) created; it is shown only once: store it now.", err=True)


@keys.command("list")
def keys_list() -> None:
    """List keys (names, roles, hash prefixes)."""
    from kit.storage.keys import list_keys

    for k in list_keys(current_settings()):
        click.echo(f"{k.name:24} {k.role:8} {k.sha256[:12]}…")


@keys.command("revoke")
@click.argument("name")
def keys_revoke(name: str) -> None:
    """Revoke the key(s) named NAME."""
    from kit.storage.keys import revoke_key

    n = revoke_key(current_settings(), name)
    click.echo(f"revoked {n} key(s) named {name}.")


def register(cli: click.Group) -> None:
    """Add `keys` to the kit command line."""
    cli.add_command(keys)
