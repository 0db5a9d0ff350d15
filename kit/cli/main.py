"""The `kit` command line. Thin: it parses, calls library functions, prints, and picks exit codes.

One module per command group (models, serve, engine, rules, ops, ui, docs, bench, bundle), each with ``register(cli)``.
Heavy modules (llama_cpp, gradio, presidio...) are imported inside the commands that need them, so
`kit --help` answers at once.
"""

from __future__ import annotations

import os
import sys

import click

from kit.cli import bench, bundle, docs, engine, models, ops, rules, serve, ui
from kit.errors import KitError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kit")
def cli() -> None:
    """Run a generative-AI assistant on your own machines, with the usage rules built in."""


for _module in (ops, models, serve, engine, rules, docs, bench, bundle, ui):
    _module.register(cli)


def main() -> None:
    """Entry point: map kit errors to one-line messages (KIT_DEBUG=1 shows the traceback)."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("interrupted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KitError as exc:
        if os.environ.get("KIT_DEBUG"):
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted.", err=True)
        sys.exit(130)
    except SystemExit:
        raise
    except OSError as exc:
        if os.environ.get("KIT_DEBUG"):
            raise
        click.echo(f"error: {exc} (set KIT_DEBUG=1 for details)", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
