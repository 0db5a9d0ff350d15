"""The `kit` command line. Thin: it parses, calls library functions, prints, and picks exit codes.

Heavy modules (llama_cpp, gradio, presidio...) are imported inside the commands that need them, so
`kit --help` answers at once.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from kit.errors import KitError, UsageError


def _settings() -> Any:
    from kit.config import load_settings

    return load_settings()


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kit")
def cli() -> None:
    """Run a generative-AI assistant on your own machines, with the usage rules built in."""


# --- configuration -------------------------------------------------------------------------------


@cli.group()
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
    click.echo(f"wrote {path}: set deployment.purpose and the contacts, then run `kit doctor`.")


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of YAML.")
def config_show(as_json: bool) -> None:
    """Print the effective configuration (file + environment), secrets hidden."""
    import yaml

    from kit.config import redacted

    settings = _settings()
    data = redacted(settings)
    click.echo(f"# source: {settings.source or 'defaults'}; KIT_HOME={settings.home}", err=True)
    if as_json:
        _echo_json(data)
    else:
        click.echo(yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=100))


# --- models --------------------------------------------------------------------------------------


@cli.group()
def models() -> None:
    """List, install, verify and manage models."""


def _catalog(settings: Any) -> Any:
    from kit.catalog import load_catalog

    return load_catalog(settings.models.catalog)


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def models_list(as_json: bool) -> None:
    """Catalogue entries: installed or not, size, licence, and whether this machine has the memory."""
    from kit.doctor import total_ram_gb
    from kit.models import read_lock

    settings = _settings()
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
    if as_json:
        _echo_json({"models": rows, "ram_gb": round(ram, 1)})
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


@models.command("pull")
@click.argument("name", required=False)
def models_pull(name: str | None) -> None:
    """Install a catalogue model under $KIT_HOME/models and record it in the lock."""
    from kit.models import pull

    settings = _settings()
    entry = _catalog(settings).get(name or settings.models.default)
    click.echo(f"pulling {entry.name} ({entry.source.kind}, {entry.licence})", err=True)
    lock = pull(entry, settings.home, progress=_progress_printer())
    click.echo(f"installed {lock.name}: {lock.file}, {lock.size / 2**20:.1f} MiB, sha256 {lock.sha256}")


def _progress_printer() -> Any:
    last = {"pct": -1}

    def show(done: int, total: int) -> None:
        pct = int(100 * done / total) if total else 100
        if pct // 10 != last["pct"] // 10 and sys.stderr.isatty() or pct == 100 and last["pct"] != 100:
            click.echo(f"  {pct:3d}% of {total / 2**20:.0f} MiB", err=True)
        last["pct"] = pct

    return show


@models.command("verify")
@click.argument("name", required=False)
def models_verify(name: str | None) -> None:
    """Hash installed files again and compare with the lock; exit 1 on any mismatch."""
    from kit.models import verify

    results = verify(_settings().home, name)
    if not results:
        click.echo("no model installed: run `kit models pull`.")
        return
    bad = 0
    for r in results:
        click.echo(f"{'OK  ' if r.ok else 'FAIL'} {r.name}: {r.message if not r.ok else r.path}")
        bad += not r.ok
    if bad:
        raise SystemExit(1)


def _register_pipeline() -> None:
    from kit.cli_pipeline import register

    register(models)


_register_pipeline()


# --- chat and serving ----------------------------------------------------------------------------


@cli.command()
@click.argument("prompt", required=False)
@click.option("--model", "-m", default=None, help="Installed model name (default: models.default).")
@click.option("--max-tokens", default=256, show_default=True, type=click.IntRange(1), help="Longest answer.")
@click.option("--temperature", default=0.7, show_default=True, type=click.FloatRange(0, 5),
              help="Sampling temperature.")
@click.option("--system", default=None, help="System prompt.")
@click.option("--ctx", default=None, type=int, help="Context length (default: server.ctx).")
@click.option("--threads", default=None, type=int, help="CPU threads.")
@click.option("--stats/--no-stats", default=True, help="Print tokens/s on stderr after each answer.")
def chat(prompt: str | None, model: str | None, max_tokens: int, temperature: float, system: str | None,
         ctx: int | None, threads: int | None, stats: bool) -> None:
    """Chat with the local model in the terminal (one answer with PROMPT, a session without)."""
    from kit.chat import run_chat

    run_chat(_settings(), prompt, model=model, max_tokens=max_tokens, temperature=temperature,
             system=system, ctx=ctx, threads=threads, stats=stats)


@cli.command()
@click.option("--model", "-m", default=None, help="Installed model name (default: models.default).")
@click.option("--host", default=None, help="Bind address (default: server.host, 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default: server.port, 8000).")
@click.option("--parallel", default=None, type=click.IntRange(1, 64), help="Sequences decoded together.")
@click.option("--ctx", default=None, type=click.IntRange(256), help="Context length per sequence.")
@click.option("--gpu-layers", default=None, type=int, help="Layers offloaded to the GPU (-1 all, 0 none).")
@click.option("--threads", default=None, type=click.IntRange(1), help="CPU threads.")
@click.option("--insecure-no-auth", is_flag=True,
              help="Allow a non-loopback address without API keys. Anyone who reaches the port can use it.")
def serve(model: str | None, host: str | None, port: int | None, parallel: int | None, ctx: int | None,
          gpu_layers: int | None, threads: int | None, insecure_no_auth: bool) -> None:
    """Serve the OpenAI-compatible API with continuous batching."""
    from kit.server import run_server

    settings = _settings()
    overrides = {"host": host, "port": port, "parallel": parallel, "ctx": ctx, "gpu_layers": gpu_layers,
                 "threads": threads}
    for key, value in overrides.items():
        if value is not None:
            setattr(settings.server, key, value)
    if insecure_no_auth:
        settings.server.allow_insecure_bind = True
    if model:
        settings.models.default = model
    run_server(settings)


# --- keys ----------------------------------------------------------------------------------------


@cli.group()
def keys() -> None:
    """Create, list and revoke API keys."""


@keys.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(["user", "admin", "auditor", "service"]), default="user", show_default=True)
@click.option("--acknowledge/--no-acknowledge", default=True,
              help="The key's owner acknowledges the current charter now (they must have read it).")
def keys_create(name: str, role: str, acknowledge: bool) -> None:
    """Create a key for NAME and print it once; only its hash is stored."""
    from kit.keys import create_key

    settings = _settings()
    key, record = create_key(settings, name, role, acknowledge=acknowledge)
    click.echo(key)
    click.echo(f"key for {record.name} ({record.role}) created; it is shown only once: store it now.", err=True)


@keys.command("list")
def keys_list() -> None:
    """List keys (names, roles, hash prefixes)."""
    from kit.keys import list_keys

    for k in list_keys(_settings()):
        click.echo(f"{k.name:24} {k.role:8} {k.sha256[:12]}…")


@keys.command("revoke")
@click.argument("name")
def keys_revoke(name: str) -> None:
    """Revoke the key(s) named NAME."""
    from kit.keys import revoke_key

    n = revoke_key(_settings(), name)
    click.echo(f"revoked {n} key(s) named {name}.")


# --- audit and privacy ---------------------------------------------------------------------------


@cli.group()
def audit() -> None:
    """Check, purge, export and summarise the audit log (for the DPO and auditors)."""


def _audit_log() -> Any:
    from kit.gateway_state import open_state

    return open_state(_settings())


@audit.command("verify")
def audit_verify() -> None:
    """Check the hash chain; report the first altered or missing row and exit 1."""
    state = _audit_log()
    try:
        result = state.audit.verify()
    finally:
        state.close()
    if result.ok:
        click.echo(f"OK: {result.rows_checked} rows, chain intact.")
        return
    click.echo(f"FAIL: {result.reason} (first bad row: {result.first_bad_id}; {result.rows_checked} rows checked).")
    raise SystemExit(1)


@audit.command("purge")
@click.option("--days", type=click.IntRange(1), default=None,
              help="Retention in days (default: policy.audit_retention_days).")
def audit_purge(days: int | None) -> None:
    """Delete audit rows older than the retention period (the server also does it daily)."""
    settings = _settings()
    state = _audit_log()
    try:
        n = state.audit.purge(days or settings.policy.audit_retention_days)
        kept = settings.policy.conversation_retention_days
        m = state.conversations.purge() if kept else 0
    finally:
        state.close()
    click.echo(f"purged {n} audit row(s) and {m} conversation(s).")


@audit.command("export")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]), default=None,
              help="First day to export (YYYY-MM-DD).")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="jsonl", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File (default: stdout).")
def audit_export(since: Any, fmt: str, output: Path | None) -> None:
    """Export audit rows (pseudonymised; no prompt text unless policy.log_prompt_text is on)."""
    from datetime import UTC

    state = _audit_log()
    start = since.replace(tzinfo=UTC) if since else None
    try:
        if output:
            with output.open("w", encoding="utf-8", newline="") as fh:
                n = state.audit.export(fh, fmt, since=start)  # type: ignore[arg-type]
            click.echo(f"wrote {n} rows to {output}", err=True)
        else:
            n = state.audit.export(sys.stdout, fmt, since=start)  # type: ignore[arg-type]
    finally:
        state.close()


@audit.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def audit_stats(as_json: bool) -> None:
    """Counts by action and day, users, tokens, personal-data categories: figures, never content."""
    import dataclasses

    state = _audit_log()
    try:
        stats = dataclasses.asdict(state.audit.stats())
    finally:
        state.close()
    if as_json:
        _echo_json(stats)
        return
    click.echo(f"rows: {stats['total']}, distinct users: {stats['users']}, tokens: {stats['prompt_tokens']} in / "
               f"{stats['completion_tokens']} out")
    for key in ("by_action", "pii_categories", "pii_actions", "by_day"):
        if stats[key]:
            click.echo(f"{key}: " + ", ".join(f"{k}={v}" for k, v in sorted(stats[key].items())))


@cli.group()
def privacy() -> None:
    """Personal-data detection."""


@privacy.command("scan")
@click.argument("source", default="-")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def privacy_scan(source: str, as_json: bool) -> None:
    """Find personal data in FILE (or - for standard input) with the local detector."""
    from kit.privacy import scan_report

    if source == "-":
        text = sys.stdin.read()
    else:
        try:
            text = Path(source).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UsageError(f"{source} does not exist.") from None
    report = scan_report(text)
    if as_json:
        _echo_json(report)
        return
    if not report["findings"]:
        click.echo("no personal data found.")
    for f in report["findings"]:
        click.echo(f"{f['type']:14} {f['start']:>6}-{f['end']:<6} {f['score']:.2f}  {f['text']}")


@cli.command()
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File (default: stdout).")
def report(fmt: str, output: Path | None) -> None:
    """Write the support pack for the DPO and CISO: purpose, charter, data flows, retention, models, checks, audit."""
    from kit.report import build_report, to_markdown

    data = build_report(_settings())
    text = to_markdown(data) if fmt == "md" else json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"
    if output:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


# --- doctor --------------------------------------------------------------------------------------


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def doctor(as_json: bool) -> None:
    """Check the installation; each check is PASS, WARN or FAIL with the fix. Exit 1 on any FAIL."""
    from kit.doctor import run_checks

    checks = run_checks()
    if as_json:
        _echo_json({"checks": [c.__dict__ for c in checks], "ok": all(c.status != "FAIL" for c in checks)})
    else:
        for c in checks:
            line = f"{c.status:4}  {c.name}: {c.detail}"
            click.echo(line)
            if c.status != "PASS" and c.fix:
                click.echo(f"      fix: {c.fix}")
    if any(c.status == "FAIL" for c in checks):
        raise SystemExit(1)


def _register_ui() -> None:
    from kit.cli_ui import register

    register(cli)


_register_ui()


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
