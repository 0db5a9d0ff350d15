"""`kit docs`: ingest the organisation's documents, search them, list, remove, count. Thin: it parses,
calls kit.documents, prints; every ingest and removal is recorded in the audit log (ids, never text)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from kit.cli.common import ask_gateway, current_settings, echo_json


@click.group()
def docs() -> None:
    """Documents the assistant answers from, with their sources and need-to-know groups."""


def _audit(settings: Any, action: str, doc_ids: list[str], **detail: Any) -> None:
    from kit.audit import AuditEvent
    from kit.storage.state import open_state

    state = open_state(settings)
    try:
        for doc_id in doc_ids:
            state.audit.record(AuditEvent(action=action, user="cli", doc_ids=[doc_id], detail=detail))
    finally:
        state.close()


@docs.command("ingest")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--group", "-g", "groups", multiple=True, help="Group that may see them (repeat; none: public).")
@click.option("--collection", "-c", default="default", show_default=True, help="Collection to put them in.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def docs_ingest(paths: tuple[Path, ...], groups: tuple[str, ...], collection: str, as_json: bool) -> None:
    """Ingest files and folders (txt, md, html, pdf, docx, odt); unchanged files are skipped.

    Exits 1 when a file could not be read (the others are ingested)."""
    from kit.documents.ingest import ingest

    settings = current_settings()
    tty = sys.stderr.isatty()
    bar: dict[str, Any] = {"bar": None}

    def progress(done: int, total: int, name: str) -> None:
        if tty:
            if bar["bar"] is None:
                started: Any = click.progressbar(length=total, label="ingesting", file=sys.stderr)
                started.__enter__()
                bar["bar"] = started
            bar["bar"].update(1)
        elif total >= 20 and done % max(1, total // 10) == 0:
            click.echo(f"  {done}/{total} {name}", err=True)

    try:
        report = ingest(list(paths), list(groups), collection, settings, progress=progress)
    finally:
        if bar["bar"] is not None:
            bar["bar"].__exit__(None, None, None)
    _audit(settings, "document_ingested", report.documents, collection=collection)
    if as_json:
        echo_json(report.to_dict())
    else:
        for issue in report.refused:
            click.echo(f"refused  {issue.source}: {issue.message}")
        for issue in report.failed:
            click.echo(f"FAILED   {issue.source}: {issue.message}")
        for source, found in sorted(report.pii.items()):
            cats = ", ".join(f"{k}={v}" for k, v in sorted(found.items()))
            click.echo(f"personal data  {source}: {cats} (rag.pii_action: {settings.rag.pii_action})")
        click.echo(f"{report.files} file(s), {report.chunks} chunk(s), {len(report.skipped)} unchanged, "
                   f"{len(report.refused)} refused, {len(report.failed)} failed, {report.seconds:.1f} s")
    if not report.ok:
        raise SystemExit(1)


@docs.command("search")
@click.argument("question")
@click.option("-k", default=5, show_default=True, type=click.IntRange(1, 50), help="How many excerpts.")
@click.option("--group", "-g", "groups", multiple=True, help="Search as a member of these groups (repeat).")
@click.option("--collection", "-c", default=None, help="Search this collection only.")
@click.option("--json", "as_json", is_flag=True, help='Print {"results": [{"source", "page", "heading", "score", '
              '"text"}]}.')
@click.option("--local", is_flag=True, help="Search in this process even when the gateway of this machine is running.")
def docs_search(question: str, k: int, groups: tuple[str, ...], collection: str | None, as_json: bool,
                local: bool) -> None:
    """The excerpts that best answer QUESTION, best first, with their source. Without --group, the running
    gateway of this machine answers when there is one (its index and model are loaded; the excerpts then come
    through its personal-data policy, and the search is audited there)."""
    settings = current_settings()
    data = None
    if not local and not groups:
        body = {"query": question, "k": k, "collection": collection}
        data = ask_gateway(settings, "/v1/documents/search", body)
    if data is None or not isinstance(data.get("results"), list):
        from kit.documents.retrieve import search_json

        data = search_json(question, k, list(groups), collection, settings)
    if as_json:
        echo_json(data)
        return
    if not data["results"]:
        click.echo("no source found: nothing indexed answers this question closely enough.")
    for n, r in enumerate(data["results"], 1):
        where = f"p. {r['page']}" if r.get("page") else (r.get("heading") or "")
        text = " ".join(str(r["text"]).split())
        click.echo(f"[{n}] {r['source']}  {where}  (score {r['score']:.3f})\n    {text[:300]}")


@docs.command("list")
@click.option("--collection", "-c", default=None, help="One collection only.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def docs_list(collection: str | None, as_json: bool) -> None:
    """Ingested documents: id, source, groups, chunks."""
    from kit.documents.ingest import list_documents

    rows = list_documents(current_settings(), collection=collection)
    if as_json:
        echo_json({"documents": [r.to_dict() for r in rows]})
        return
    for r in rows:
        click.echo(f"{r.id}  {r.collection:12} {','.join(r.groups):20} {r.chunks:5} chunks  {r.source}")
    click.echo(f"({len(rows)} document(s))", err=True)


@docs.command("remove")
@click.argument("target")
@click.option("--collection", "-c", default=None, help="Collection of the path.")
def docs_remove(target: str, collection: str | None) -> None:
    """Remove a document by ID or PATH: its vectors and keyword rows go too."""
    from kit.documents.ingest import remove

    settings = current_settings()
    removed = remove(target, settings, collection=collection)
    _audit(settings, "document_removed", [r.id for r in removed])
    for r in removed:
        click.echo(f"removed {r.id} ({r.source}, {r.chunks} chunks)")


def _progress(label: str) -> tuple[Any, Any]:
    """A progress callback (a bar on a terminal, a line every tenth otherwise) and its closer."""
    tty = sys.stderr.isatty()
    bar: dict[str, Any] = {"bar": None}

    def progress(done: int, total: int, name: str) -> None:
        if tty:
            if bar["bar"] is None:
                started: Any = click.progressbar(length=max(total, 1), label=label, file=sys.stderr)
                started.__enter__()
                bar["bar"] = started
            if done:
                bar["bar"].update(1)
        elif total and (done == total or done % max(1, total // 10) == 0):
            click.echo(f"  {label} {done}/{total} {name}", err=True)

    def close() -> None:
        if bar["bar"] is not None:
            bar["bar"].__exit__(None, None, None)

    return progress, close


@docs.command("reindex")
@click.option("--collection", "-c", default=None, help="One collection only (default: every collection).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def docs_reindex(collection: str | None, as_json: bool) -> None:
    """Embed the stored chunks again with rag.embedding_model (after changing it), without reading the files.

    Safe to interrupt: run it again and it goes on with the documents not done yet."""
    from kit.documents.reindex import reindex

    settings = current_settings()
    progress, close = _progress("reindexing")
    try:
        report = reindex(settings, collection=collection, progress=progress)
    finally:
        close()
    if as_json:
        echo_json(report.to_dict())
        return
    click.echo(f"{report.documents} document(s), {report.chunks} chunk(s) embedded again with {report.embedder} "
               f"({report.already_done} already done), {report.seconds:.1f} s")
@docs.command("register")
@click.option("--json", "as_json", is_flag=True, help='Print {"retention_days", "data": [{"id", "name", '
              '"collection", "sha256", "groups", "size", "ingested_at", "replaced_at", "removed_at"}]}.')
def docs_register(as_json: bool) -> None:
    """The register of documents: every version indexed, with its sha256, groups and dates, removed ones
    included for the audit's retention (policy.audit_retention_days). The document ids of audit rows lead here."""
    from kit.documents.ingest import document_register

    settings = current_settings()
    entries = document_register(settings)
    if as_json:
        echo_json({"retention_days": settings.policy.audit_retention_days, "data": [e.to_dict() for e in entries]})
        return
    for e in entries:
        ended = f"removed {e.removed_at}" if e.removed_at else f"replaced {e.replaced_at}" if e.replaced_at \
            else "indexed"
        click.echo(f"{e.id}  {e.sha256[:16]}  {e.collection:12} {','.join(e.groups):20} {e.ingested_at}  "
                   f"{ended:34} {e.name}")
    click.echo(f"({len(entries)} version(s); removed ones kept {settings.policy.audit_retention_days} days)",
               err=True)


@docs.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def docs_stats(as_json: bool) -> None:
    """Counts of documents and chunks by collection and group; the embedding model; the storage."""
    from kit.documents.ingest import stats

    data = stats(current_settings())
    if as_json:
        echo_json(data)
        return
    for key, value in data.items():
        click.echo(f"{key}: {value}")


@docs.command("build-engine")
@click.option("--json", "as_json", is_flag=True, help='Print {"kept", "reason", "library", "path", "min_cosine", '
              '"built_per_s", "package_per_s", "seconds"}.')
def docs_build_engine(as_json: bool) -> None:
    """Compile the default embedding model's engine for this processor (AVX-512, AMX where present) and keep
    it if it gives the same vectors faster than the package's own engine. Run by ./scripts/install.sh;
    again after moving kit to another processor. Needs a C compiler (cc)."""
    from kit.documents.engine import build

    report = build()
    if as_json:
        echo_json(report.to_dict())
        return
    if report.kept:
        click.echo(f"embedding engine built for this processor ({report.path}): {report.built_per_s} passages/s "
                   f"against {report.package_per_s} for the package's engine, vectors within cosine "
                   f"{report.min_cosine} -> {report.library}")
    else:
        click.echo(f"kept the package's embedding engine: {report.reason}")


def register(cli: click.Group) -> None:
    """Add `kit docs` to the kit command line."""
    cli.add_command(docs)
