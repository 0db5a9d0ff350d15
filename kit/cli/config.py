"""`kit config`: write a commented configuration file, or show the one in force."""

from __future__ import annotations

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


def register(cli: click.Group) -> None:
    """Add `config` to the kit command line."""
    cli.add_command(config)
