"""`kit report`: the support pack for the DPO and the CISO (impact assessment, security review).

Everything is read from the running configuration (the addresses the API and the chat noted when they
started, else kit.yaml), the model lock and catalogue, the checks of `kit doctor`, the document index's own
table (names, groups, counts: never the text) and the audit log's figures (never its content). Markdown for
people (``kit.ops.markdown``, French and English), JSON for tools.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any, Literal

from kit.config import Settings, is_loopback_host, is_loopback_url
from kit.files import published_bench, running
from kit.ops.checks import listening

SECTIONS = ("purpose", "governance", "charter", "data_flows", "personal_data", "retention", "models", "documents",
            "security_checks", "audit", "usage", "benchmarks", "sources")


def build_report(settings: Settings, usage_from: str | None = None, usage_to: str | None = None,
                 usage_by: str = "week") -> dict[str, Any]:
    from kit.audit import span
    from kit.ops.doctor import run_checks
    from kit.rules.policy import SOURCES

    dep, pol = settings.deployment, settings.policy
    charter = settings.charter()
    period = span(usage_from, usage_to, usage_by, default_days=28)  # bad dates: an error before any work
    audit = _audit(settings, charter["version"], period)
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "purpose": {"organisation": dep.organisation, "purpose": dep.purpose, "profile": dep.profile},
        "governance": dep.contacts.model_dump(),
        "charter": {"version": charter["version"], "allowed_uses": [t.model_dump() for t in pol.allowed_uses],
                    "forbidden_uses": [t.model_dump() for t in pol.forbidden_uses],
                    "quiz_questions": len(pol.quiz), "acknowledgements": audit.pop("acknowledgements")},
        "data_flows": _data_flows(settings),
        "personal_data": {"detection": pol.pii_detection,
                          "actions": dict(sorted(pol.pii_actions.items())), "default_action": pol.pii_default_action,
                          "prompt_text_in_audit": pol.log_prompt_text},
        "retention": {"conversations_days": pol.conversation_retention_days, "audit_days": pol.audit_retention_days,
                      "feedback_days": pol.feedback_retention_days,
                      "conversations_kept": pol.conversation_retention_days > 0},
        "models": _models(settings),
        "documents": _documents(settings),
        "security_checks": [dataclasses.asdict(c) for c in run_checks()],
        "audit": {"chain": audit["chain"], "figures": audit["figures"]},
        "usage": audit["usage"],
        "benchmarks": _benchmarks(settings),
        "sources": SOURCES,
    }


def _audit(settings: Settings, charter_version: str, period: Any) -> dict[str, Any]:
    from kit.audit import usage_rows
    from kit.storage.state import open_state

    threshold = settings.policy.usage_min_users
    state = open_state(settings)
    try:
        rows = usage_rows(state.audit.rows(period.since, period.until), period, threshold)
        return {"chain": dataclasses.asdict(state.audit.verify()), "figures": dataclasses.asdict(state.audit.stats()),
                "acknowledgements": state.store.ack_count(charter_version),
                "usage": {"from": period.start.isoformat(), "to": period.end.isoformat(), "by": period.by,
                          "threshold": threshold, "rows": rows}}
    finally:
        state.close()


def _address(settings: Settings, service: Literal["api", "ui"]) -> dict[str, Any]:
    """Where ``service`` listens: what the running process noted, else the configuration (not running now)."""
    found = listening(settings, service)
    return {"host": found["host"], "port": found["port"], "running": found["running"], "since": found["since"],
            "loopback_only": is_loopback_host(found["host"])}


def _data_flows(settings: Settings) -> dict[str, Any]:
    from kit.ops.security import key_counts

    srv = settings.server
    api, chat = _address(settings, "api"), _address(settings, "ui")
    chat["sign_in"] = str(listening(settings, "ui")["noted"].get("auth") or settings.ui.auth)
    keys = key_counts(settings)
    return {
        "api": api,
        "browser_chat": chat,
        "engine": srv.engine_url or "in-process llama.cpp on this machine",
        "engine_on_this_machine": not srv.engine_url or is_loopback_url(srv.engine_url),
        "engine_contract_ref": srv.engine_contract_ref,
        "api_keys": keys["user"],
        "service_keys": keys["service"],
        "telemetry": "none (Gradio analytics and Hugging Face hub calls are switched off)",
    }


def _models(settings: Settings) -> dict[str, Any]:
    """The installed models with their provenance, the one served, and whether it is a demonstration model."""
    from kit.errors import KitError
    from kit.models.catalog import load_catalog
    from kit.models.lock import read_lock, verify_one

    try:
        catalog = {e.name: e for e in load_catalog(settings.models.catalog).models}
    except KitError:
        catalog = {}
    installed = []
    for name, lock in read_lock(settings.home).items():
        entry = catalog.get(name)
        installed.append({"name": name, "file": lock.file, "sha256": lock.sha256, "size": lock.size,
                          "quant": lock.quant, "licence": lock.licence,
                          "licence_url": entry.licence_url if entry else "",
                          "source": lock.source, "revision": lock.revision, "recipe": lock.recipe,
                          "llama_cpp_version": lock.llama_cpp_version, "obtained_at": lock.obtained_at,
                          "verified": verify_one(settings.home, lock).ok, "demo": bool(entry and entry.demo)})
    api = running(settings.home, "api") or {}
    served = str(api.get("model") or settings.models.default)
    entry = catalog.get(served)
    return {"served": served, "served_running": bool(api), "demo": bool(entry and entry.demo),
            "production_profile": settings.deployment.profile == "production", "installed": installed}


def _documents(settings: Settings) -> dict[str, Any]:
    """The indexed documents from the index's own table: counts, collections, groups and the personal data the
    ingest found in them (categories and counts; never the text). Nothing is created when there is no index."""
    path = settings.home / "docs.db"
    out: dict[str, Any] = {"indexed": 0, "chunks": 0, "bytes": 0, "collections": {}, "groups": {},
                           "personal_data": {}, "documents_with_personal_data": 0}
    if not path.exists():
        return out
    from kit.documents.store import Catalog

    catalog = Catalog(path)
    try:
        stats, documents = catalog.stats(), catalog.documents()
    finally:
        catalog.close()
    found: dict[str, dict[str, int]] = {}
    for doc in documents:
        for category, count in (doc.pii or {}).items():
            item = found.setdefault(category, {"documents": 0, "occurrences": 0})
            item["documents"] += 1
            item["occurrences"] += int(count)
    out.update({"indexed": stats["documents"], "chunks": stats["chunks"], "bytes": stats["bytes"],
                "collections": dict(sorted(stats["collections"].items())),
                "groups": dict(sorted(stats["groups"].items())),
                "personal_data": dict(sorted(found.items())),
                "documents_with_personal_data": sum(1 for d in documents if d.pii)})
    return out


def _benchmarks(settings: Settings) -> dict[str, Any] | None:
    """The summary of the latest published `kit bench report`, if any."""
    found = published_bench(settings.home)
    return found and {**found, "html": str(found["html"]) if found["html"] else None}


def to_markdown(r: dict[str, Any]) -> str:
    from kit.ops.markdown import to_markdown as render

    return render(r)
