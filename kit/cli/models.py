"""`kit models`: list, pull, verify, convert, quantize, import, export, rm, setup-converter.

Commands are thin: they parse, call kit.models.*, and print; kit errors propagate to the main CLI,
which prints them on one line with their exit code. Progress goes to stderr, results to stdout.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from kit.cli.common import current_settings, echo_json, progress_printer


@click.group()
def models() -> None:
    """List, install, verify and manage models."""


def _catalog(settings: Any) -> Any:
    from kit.models.catalog import load_catalog

    return load_catalog(settings.models.catalog)


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def models_list(as_json: bool) -> None:
    """Catalogue entries: installed or not, size, licence, and whether this machine has the memory."""
    from kit.models.lock import read_lock
    from kit.ops.doctor import total_ram_gb

    settings = current_settings()
    catalog = _catalog(settings)
    lock = read_lock(settings.home)
    ram = total_ram_gb()
    rows = []
    for entry in catalog.models:
        got = lock.get(entry.name)
        need = entry.ram_needed()
        rows.append({
            "name": entry.name,
            "params": entry.params,
            "quant": entry.quant,
            "licence": entry.licence,
            "languages": entry.languages,
            "installed": got is not None,
            "size": got.size if got else None,
            "ram_needed_gb": need,
            "fits_in_ram": None if need is None else need <= ram,
            "default": entry.name == settings.models.default,
            "source": entry.source.kind,
            "description": entry.description,
        })
    embedders = [{"name": e.name, "licence": e.licence, "languages": e.languages or ["multilingual"],
                  "dimensions": e.dimensions, "source": e.source.kind,
                  "installed": e.source.kind == "bundled" or (settings.home / "models" / e.name).is_dir(),
                  "in_use": e.name == settings.rag.embedding_model.lower(), "description": e.description}
                 for e in catalog.embedders]
    if as_json:
        echo_json({"models": rows, "embedders": embedders, "ram_gb": round(ram, 1)})
        return
    click.echo(f"{'NAME':32} {'PARAMS':7} {'QUANT':7} {'LICENCE':22} {'INSTALLED':10} {'RAM':>7}  FITS")
    for r in rows:
        size = f"{r['size'] / 2**20:.0f} MiB" if r["size"] else "no"
        need = f"{r['ram_needed_gb']:.1f}G" if r["ram_needed_gb"] else "?"
        fits = {True: "yes", False: "NO", None: "?"}[r["fits_in_ram"]]
        mark = "*" if r["default"] else " "
        click.echo(f"{mark}{r['name']:31} {r['params']:7} {r['quant']:7} {r['licence'][:22]:22} "
                   f"{size:10} {need:>7}  {fits}")
    click.echo(f"(* default; this machine has {ram:.1f} GiB of RAM)")
    click.echo(f"\n{'EMBEDDING MODEL':32} {'DIMS':5} {'SOURCE':8} {'LICENCE':22} {'INSTALLED':10} LANGUAGES")
    for e in embedders:
        mark = "*" if e["in_use"] else " "
        click.echo(f"{mark}{e['name']:31} {e['dimensions']:<5} {e['source']:8} {e['licence'][:22]:22} "
                   f"{'yes' if e['installed'] else 'no':10} {','.join(e['languages'])}")
    click.echo("(* rag.embedding_model; `kit models pull NAME` installs a hub one, then `kit docs reindex`)")


@models.command("pull")
@click.argument("name", required=False)
def models_pull(name: str | None) -> None:
    """Install a catalogue model under $KIT_HOME/models and record it in the lock (an embedding model: under
    $KIT_HOME/models/NAME, or verified when its package brings it)."""
    from kit.models.fetch import pull

    settings = current_settings()
    catalog = _catalog(settings)
    embedder = catalog.embedder(name) if name else None
    if embedder is not None:
        from kit.models.embedders import pull_embedder

        click.echo(f"pulling {embedder.name} ({embedder.source.kind}, {embedder.licence})", err=True)
        done = pull_embedder(embedder, settings.home, progress=progress_printer())
        click.echo(f"installed {done.name}: {done.folder}, {done.size / 2**20:.1f} MiB, sha256 {done.weights_sha256}")
        return
    entry = catalog.get(name or settings.models.default)
    click.echo(f"pulling {entry.name} ({entry.source.kind}, {entry.licence})", err=True)
    lock = pull(entry, settings.home, progress=progress_printer())
    click.echo(f"installed {lock.name}: {lock.file}, {lock.size / 2**20:.1f} MiB, sha256 {lock.sha256}")


@models.command("verify")
@click.argument("name", required=False)
def models_verify(name: str | None) -> None:
    """Hash installed files again and compare with the lock; exit 1 on any mismatch."""
    from kit.models.lock import verify

    results = verify(current_settings().home, name)
    if not results:
        click.echo("no model installed: run `kit models pull`.")
        return
    bad = 0
    for r in results:
        click.echo(f"{'OK  ' if r.ok else 'FAIL'} {r.name}: {r.message if not r.ok else r.path}")
        bad += not r.ok
    if bad:
        raise SystemExit(1)


def _home() -> Path:
    from kit.config import load_settings

    return load_settings().home


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


@contextmanager
def _progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """A progress callback drawing click's bar on stderr (plain lines when stderr is not a terminal)."""
    state: dict[str, Any] = {"bar": None, "done": 0, "total": 0, "last": -1}
    tty = sys.stderr.isatty()

    def update(done: int, total: int) -> None:
        if tty:
            if state["bar"] is None or total != state["total"]:
                if state["bar"] is not None:
                    state["bar"].render_finish()
                state["bar"] = click.progressbar(length=max(total, 1), label=label, file=sys.stderr)
                state["total"], state["done"] = total, 0
            bar = state["bar"]
            bar.update(max(done - state["done"], 0))
            state["done"] = done
        else:
            pct = int(100 * done / total) if total else 100
            if pct // 25 != state["last"] // 25:
                click.echo(f"  {label}: {pct:3d}%", err=True)
                state["last"] = pct

    try:
        yield update
    finally:
        if state["bar"] is not None:
            state["bar"].render_finish()


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


@click.command("convert")
@click.argument("hf_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--outtype", type=click.Choice(["f16", "bf16", "q8_0"]), default="f16", show_default=True,
              help="GGUF type written by llama.cpp's converter.")
@click.option("-o", "--out", type=click.Path(path_type=Path), default=None,
              help="Output GGUF file (default ./<folder>.<OUTTYPE>.gguf).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def convert_cmd(hf_dir: Path, outtype: str, out: Path | None, as_json: bool) -> None:
    """Convert a Hugging Face folder (safetensors) to GGUF with llama.cpp's converter."""
    from kit.models.convert import convert

    with _progress("converting") as progress:
        result = convert(hf_dir, outtype=outtype, out=out, progress=progress)
    if as_json:
        _echo_json(result.to_dict())
        return
    click.echo(f"wrote {result.path} ({result.outtype.upper()}, {_mib(result.size)}, {result.seconds:.1f} s)")
    click.echo(f"sha256 {result.sha256}")


@click.command("quantize")
@click.argument("in_gguf", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--type", "qtype", required=True, help="llama.cpp quantization type: Q4_K_M, Q5_K_M, Q8_0...")
@click.option("-o", "--out", type=click.Path(path_type=Path), default=None,
              help="Output GGUF file (default: the input's name with the type).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def quantize_cmd(in_gguf: Path, qtype: str, out: Path | None, as_json: bool) -> None:
    """Quantize a GGUF file with llama.cpp (llama_model_quantize)."""
    from kit.models.quantize import quantize

    with _progress(f"quantizing to {qtype.upper()}") as progress:
        result = quantize(in_gguf, qtype, out=out, progress=progress)
    if as_json:
        _echo_json(result.to_dict())
        return
    click.echo(f"wrote {result.path} ({result.qtype}, {_mib(result.input_size)} -> {_mib(result.size)}, "
               f"{result.seconds:.1f} s)")
    click.echo(f"sha256 {result.sha256}")


@click.command("import")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--name", default=None, help="Model name (default: the export's name, or the file/folder "
                                           "name).")
@click.option("--quantize", "quantize_to", default=None,
              help="For a Hugging Face folder: quantize the conversion to this type (Q4_K_M...).")
@click.option("--outtype", type=click.Choice(["f16", "bf16", "q8_0"]), default="f16", show_default=True,
              help="For a Hugging Face folder: conversion type.")
@click.option("--replace", is_flag=True, help="Replace an installed model of the same name.")
def import_cmd(path: Path, name: str | None, quantize_to: str | None, outtype: str, replace: bool) -> None:
    """Install a GGUF file, an exported model folder or a Hugging Face folder, without network."""
    from kit.models.transfer import import_path

    with _progress("importing") as progress:
        lock = import_path(path, _home(), name=name, quantize=quantize_to, outtype=outtype, progress=progress,
                           replace=replace)
    click.echo(f"installed {lock.name}: {lock.file} ({lock.quant}, {_mib(lock.size)}), sha256 {lock.sha256}")
    click.echo(f"licence: {lock.licence}")


@click.command("export")
@click.argument("name")
@click.argument("dest_dir", type=click.Path(file_okay=False, path_type=Path))
def export_cmd(name: str, dest_dir: Path) -> None:
    """Copy an installed model, its lock entry and a licence note to DEST_DIR/NAME (for `kit models "
      "import`)."""
    from kit.models.transfer import export_model

    out = export_model(name, _home(), dest_dir)
    click.echo(f"exported {name} to {out}: on the other server run `kit models import {out}`")


@click.command("rm")
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def rm_cmd(name: str, yes: bool) -> None:
    """Delete an installed model's files and its lock entry."""
    from kit.errors import ModelNotInstalledError
    from kit.models.lock import read_lock
    from kit.models.transfer import remove_model

    home = _home()
    lock = read_lock(home).get(name)
    if lock is None:
        raise ModelNotInstalledError(f"model '{name}' is not installed (`kit models list` shows what is).")
    if not yes:
        click.confirm(f"delete {name} ({lock.file}, {_mib(lock.size)})?", abort=True, err=True)
    remove_model(name, home)
    click.echo(f"removed {name}")


@click.command("setup-converter")
@click.option("--sdist", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="llama_cpp_python-<version>.tar.gz of the installed version (default: pip download it).")
def setup_converter_cmd(sdist: Path | None) -> None:
    """Install llama.cpp's Hugging Face converter of the installed llama.cpp version."""
    from kit.models.converter import install_converter

    path = install_converter(sdist)
    click.echo(f"converter ready: {path}")


COMMANDS = (convert_cmd, quantize_cmd, import_cmd, export_cmd, rm_cmd, setup_converter_cmd)


for _command in COMMANDS:
    models.add_command(_command)


def register(cli: click.Group) -> None:
    """Add the `kit models` group to the kit command line."""
    cli.add_command(models)
