"""The `kit` command line. Thin: it parses, calls library functions, prints, and picks exit codes.

One module per command, named after it (`kit docs` in docs.py, `kit users` in users.py...), each with
``register(cli)``.
Heavy modules (llama_cpp, gradio, spacy...) are imported inside the commands that need them, so
`kit --help` answers at once.
"""

from __future__ import annotations

import os
import sys

import click

from kit.cli import (
    audit,
    bench,
    bundle,
    chat,
    config,
    db,
    docs,
    doctor,
    engine,
    keys,
    models,
    privacy,
    report,
    serve,
    ui,
    up,
    users,
)
from kit.errors import KitError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kit")
def cli() -> None:
    """Run a generative-AI assistant on your own machines, with the usage rules built in."""


for _module in (config, db, report, doctor, models, chat, serve, engine, keys, audit, privacy, docs, bench, bundle,
                ui, up, users):
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
