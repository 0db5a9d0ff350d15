"""`kit report`: the support pack for the DPO and the CISO (impact assessment, security review).

Everything is read from the configuration, the model lock, the checks of `kit doctor` and the audit
log's figures (never its content). Markdown for people, JSON for tools.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from kit.config import Settings, is_loopback_host, is_loopback_url
from kit.files import published_bench

SECTIONS = ("purpose", "governance", "charter", "data_flows", "personal_data", "retention", "models",
            "security_checks", "audit", "benchmarks", "sources")


def build_report(settings: Settings) -> dict[str, Any]:
    from kit.models.catalog import load_catalog
    from kit.models.lock import read_lock, verify_one
    from kit.ops.doctor import run_checks
    from kit.rules.policy import SOURCES
    from kit.storage.keys import list_keys
    from kit.storage.state import open_state

    dep, pol, srv, ui = settings.deployment, settings.policy, settings.server, settings.ui
    charter = settings.charter()
    catalog = {e.name: e for e in load_catalog(settings.models.catalog).models}
    models = []
    for name, lock in read_lock(settings.home).items():
        entry = catalog.get(name)
        models.append({"name": name, "file": lock.file, "sha256": lock.sha256, "size": lock.size, "quant": lock.quant,
                       "licence": lock.licence, "licence_url": entry.licence_url if entry else "",
                       "source": lock.source, "revision": lock.revision, "recipe": lock.recipe,
                       "llama_cpp_version": lock.llama_cpp_version, "obtained_at": lock.obtained_at,
                       "verified": verify_one(settings.home, lock).ok})
    state = open_state(settings)
    try:
        stats = dataclasses.asdict(state.audit.stats())
        verify = dataclasses.asdict(state.audit.verify())
        acks = state.store.ack_count(charter["version"])
    finally:
        state.close()
    engine = srv.engine_url or "in-process llama.cpp on this machine"
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "purpose": {"organisation": dep.organisation, "purpose": dep.purpose, "profile": dep.profile},
        "governance": dep.contacts.model_dump(),
        "charter": {"version": charter["version"], "allowed_uses": [t.model_dump() for t in pol.allowed_uses],
                    "forbidden_uses": [t.model_dump() for t in pol.forbidden_uses],
                    "quiz_questions": len(pol.quiz), "acknowledgements": acks},
        "data_flows": {
            "api": f"{srv.host}:{srv.port} ({'loopback only' if is_loopback_host(srv.host) else 'network'})",
            "browser_chat": f"{ui.host}:{ui.port}, sign-in: {ui.auth}",
            "engine": engine,
            "engine_on_this_machine": not srv.engine_url or is_loopback_url(srv.engine_url),
            "engine_contract_ref": srv.engine_contract_ref,
            "api_keys": len(list_keys(settings)),
            "telemetry": "none (Gradio analytics and Hugging Face hub calls are switched off)",
        },
        "personal_data": {"detection": pol.pii_detection,
                          "actions": dict(sorted(pol.pii_actions.items())), "default_action": pol.pii_default_action,
                          "prompt_text_in_audit": pol.log_prompt_text},
        "retention": {"conversations_days": pol.conversation_retention_days, "audit_days": pol.audit_retention_days,
                      "conversations_kept": pol.conversation_retention_days > 0},
        "models": models,
        "security_checks": [dataclasses.asdict(c) for c in run_checks()],
        "audit": {"chain": verify, "figures": stats},
        "benchmarks": _benchmarks(settings),
        "sources": SOURCES,
    }


def _benchmarks(settings: Settings) -> dict[str, Any] | None:
    """The summary of the latest published `kit bench report`, if any."""
    found = published_bench(settings.home)
    return found and {**found, "html": str(found["html"]) if found["html"] else None}


def _text(item: dict[str, str]) -> str:
    return item["fr"] + (f" / {item['en']}" if item.get("en") and item["en"] != item["fr"] else "")


def to_markdown(r: dict[str, Any]) -> str:
    p, g, c, f = r["purpose"], r["governance"], r["charter"], r["data_flows"]
    out = [f"# Dossier de conformité / Compliance pack — {p['organisation'] or '(organisation)'}",
           f"_Généré le / generated {r['generated_at']}_", "",
           "## 1. Finalité / Purpose", p["purpose"] or "**(manquante / missing)**", f"Profil / profile: {p['profile']}",
           "", "## 2. Gouvernance / Governance"]
    out += [f"- {k}: {v or '—'}" for k, v in g.items()]
    out += ["", f"## 3. Charte / Charter (version {c['version']}, {c['acknowledgements']} acceptation(s))",
            "**Usages autorisés / allowed uses**"]
    out += [f"- {_text(t)}" for t in c["allowed_uses"]]
    out += ["", "**Usages interdits / forbidden uses**"]
    out += [f"- {_text(t)}" for t in c["forbidden_uses"]]
    out += ["", "## 4. Flux de données / Data flows"] + [f"- {k}: {v}" for k, v in f.items()]
    out += ["", "## 5. Données personnelles / Personal data (action par catégorie / action per category)"]
    if not r["personal_data"].get("detection", True):
        out.append("- **détection désactivée / detection turned off** (policy.pii_detection: false): "
                   "les messages ne sont pas analysés, les actions ci-dessous ne s'appliquent pas / messages are not "
                   "scanned, the actions below do not apply")
    out += [f"- {k}: {v}" for k, v in r["personal_data"]["actions"].items()]
    out.append("- texte des demandes dans l'audit / prompt text in the audit log: "
               f"{r['personal_data']['prompt_text_in_audit']}")
    out += ["", "## 6. Conservation / Retention"] + [f"- {k}: {v}" for k, v in r["retention"].items()]
    out += ["", "## 7. Modèles / Models (provenance)"]
    for m in r["models"]:
        out.append(f"- **{m['name']}** — {m['licence']} {m['licence_url']}; {m['quant']}; sha256 `{m['sha256']}`; "
                   f"source {m['source'].get('kind')} {m['source'].get('repo') or m['source'].get('package') or ''} "
                   f"{m['revision'] or ''}; llama.cpp {m['llama_cpp_version']}; vérifié / verified: {m['verified']}")
    out += ["", "## 8. Contrôles de sécurité / Security checks (kit doctor)"]
    out += [f"- {c['status']} {c['name']}: {c['detail']}"
            + (f" — {c['fix']}" if c["status"] != "PASS" and c["fix"] else "")
            for c in r["security_checks"]]
    a = r["audit"]
    out += ["", "## 9. Journal d'audit / Audit log",
            "- chaîne / chain: "
            f"{'intacte / intact' if a['chain']['ok'] else 'ALTÉRÉE / ALTERED: ' + a['chain']['reason']}"
            f" ({a['chain']['rows_checked']} rows)",
            f"- événements / events: {a['figures']['total']}, utilisateurs / users: {a['figures']['users']}"]
    out += [f"- {k}: {v}" for k, v in sorted(a["figures"]["by_action"].items())]
    out += [f"- PII {k}: {v}" for k, v in sorted(a["figures"]["pii_categories"].items())]
    out += ["", "## 10. Bancs d'essai / Benchmarks"]
    b = r.get("benchmarks")
    if b:
        out.append(f"_Dernier rapport publié / latest published report: {b['generated_at']}"
                   + (f", {b['html']}_" if b["html"] else "_"))
        out += ["#" * 2 + line if line.startswith("#") else line for line in b["summary"].splitlines()]
    else:
        out.append("- aucun / none: `kit bench ...` then `kit bench report` publish one")
    out += ["", "## 11. Sources"] + [f"- [{s['title']}]({s['url']})" for s in r["sources"]]
    return "\n".join(out) + "\n"
