"""`kit bundle`: create, verify and import the archives that install the kit on sites with no network."""

from __future__ import annotations

from pathlib import Path

import click

from kit.cli.common import echo_json


@click.group()
def bundle() -> None:
    """One verified archive to install the kit without network / une archive pour les sites sans réseau."""


@bundle.command("create")
@click.option("-o", "--output", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The archive to write (FILE.tar).")
@click.option("--model", "models", multiple=True, help="A chat model to include (repeat; default: models.default).")
@click.option("--embedder", default=None, help="The embedding model (default: rag.embedding_model).")
@click.option("--cpu", "backend", flag_value="cpu", help="The llama.cpp build for CPUs.")
@click.option("--cuda", "backend", flag_value="cuda", help="The llama.cpp build for NVIDIA GPUs.")
@click.option("--python", "python", default=None, help="Python version of the site (must be this one's: 3.11...).")
@click.option("--sign-key", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Ed25519 private key (PEM) signing bundle.json (`kit bundle keygen` makes one).")
@click.option("--llama-wheel", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A llama-cpp-python wheel to use instead of install.sh's cached build.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest's summary as JSON.")
def create_cmd(out: Path, models: tuple[str, ...], embedder: str | None, backend: str | None,
               python: str | None, sign_key: Path | None, llama_wheel: Path | None, as_json: bool) -> None:
    """Build FILE.tar: the kit, its wheels, llama.cpp, the models, a manifest and an SBOM."""
    from kit.bundle.create import Options, create_bundle, part_sizes

    click.echo(f"building {out} (wheels, llama.cpp, models)...", err=True)
    manifest = create_bundle(Options(out=out, models=list(models), embedder=embedder, backend=backend,
                                     python=python, sign_key=sign_key, llama_wheel=llama_wheel))
    sizes = part_sizes(manifest)
    summary = {"bundle": str(out), "size": out.stat().st_size, "parts": sizes,
               "components": len(manifest["components"]), "files": len(manifest["files"]),
               "models": manifest["models"], "backend": manifest["backend"], "python": manifest["python"],
               "signed": sign_key is not None}
    if as_json:
        echo_json(summary)
        return
    click.echo(f"wrote {out}: {summary['size'] / 2**20:.0f} MiB, {summary['components']} components, "
               f"{summary['files']} files ({', '.join(f'{k} {v / 2**20:.0f} MiB' for k, v in sizes.items())})")
    click.echo(f"on the site: mkdir kit-bundle && tar -xf {out.name} -C kit-bundle && kit-bundle/scripts/install.sh")


@bundle.command("verify")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--key", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="The signer's public key (signer.pub or PEM): the signature must hold for it.")
@click.option("--require-signature", is_flag=True, help="Refuse a bundle that is not signed.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def verify_cmd(path: Path, key: Path | None, require_signature: bool, as_json: bool) -> None:
    """Check every file of a bundle (FILE.tar or its folder) against bundle.json, and its signature."""
    from kit.bundle.verify import verify_bundle

    report = verify_bundle(path, key=key, require_signature=require_signature)
    if as_json:
        echo_json({"ok": report.ok, "checked": report.checked, "problems": report.problems,
                   "signature": report.signature})
    else:
        for problem in report.problems:
            click.echo(f"REFUSED {problem}", err=True)
        if report.ok:
            click.echo(f"OK {path}: {report.checked} files match bundle.json; signature: {report.signature}")
    if not report.ok:
        raise SystemExit(1)


@bundle.command("keygen")
@click.argument("key", type=click.Path(dir_okay=False, path_type=Path))
def keygen_cmd(key: Path) -> None:
    """Write an Ed25519 private key to KEY (mode 0600) and its public key to KEY.pub."""
    import os

    from kit.bundle.manifest import crypto, encode_public, fingerprint, public_raw

    serialization, ed25519 = crypto()

    if key.exists():
        raise click.ClickException(f"{key} exists: choose another name / le fichier existe déjà.")
    private = ed25519.Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    raw = public_raw(private)
    Path(f"{key}.pub").write_bytes(encode_public(raw))
    click.echo(f"wrote {key} (private, keep it) and {key}.pub ({fingerprint(raw)}): give the .pub to the sites")


@bundle.command("import")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--source", default=None, help="Where the bundle came from, for the record (the .tar's path).")
def import_cmd(folder: Path, source: str | None) -> None:
    """Install an extracted bundle's models (sha256 checked) and record it for `kit doctor`."""
    from kit.bundle.install import import_models, record
    from kit.cli.common import current_settings

    settings = current_settings()
    home = settings.home
    done = import_models(folder, home, say=lambda text: click.echo(text, err=True))
    entry = record(folder, home, source)
    if done and settings.models.default not in done:
        click.echo(f"note: models.default is {settings.models.default}, which this bundle does not bring: set "
                   f"models.default to one of {', '.join(done)} in kit.yaml / choisissez models.default parmi "
                   f"les modèles du bundle.", err=True)
    click.echo(f"recorded the bundle made {entry['created_at']} in {home / 'bundle.json'}")


def register(cli: click.Group) -> None:
    """Add the `kit bundle` group to the kit command line."""
    cli.add_command(bundle)
