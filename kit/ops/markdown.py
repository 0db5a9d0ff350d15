"""The compliance pack of `kit report` as Markdown, in French and English: every value written in words
(yes/no, a dash for nothing), never as a Python value."""

from __future__ import annotations

from typing import Any

YES, NO, NONE = "oui / yes", "non / no", "—"
REASONS = {"limits": "limites / limits", "charter": "charte non acceptée / charter not accepted",
           "closed": "assistant fermé / chat closed", "context_overflow": "demande trop longue / request too long",
           "queue_full": "serveur saturé / server full"}


def word(value: Any) -> str:
    """A value as words: booleans as yes/no, nothing as a dash, lists and mappings spelled out."""
    if isinstance(value, bool):
        return YES if value else NO
    if value is None or value == "":
        return NONE
    if isinstance(value, (list, tuple)):
        return ", ".join(word(v) for v in value) or NONE
    if isinstance(value, dict):
        return ", ".join(f"{k} {word(v)}" for k, v in value.items()) or NONE
    return str(value)


def _text(item: dict[str, str]) -> str:
    return item["fr"] + (f" / {item['en']}" if item.get("en") and item["en"] != item["fr"] else "")


def _where(a: dict[str, Any], what: str) -> str:
    reach = "boucle locale seulement / loopback only" if a["loopback_only"] else "réseau / network"
    state = (f"en service depuis / running since {a['since']}" if a["running"]
             else "configuré, arrêté au moment du rapport / configured, not running at the time of this report")
    return f"- {what}: {a['host']}:{a['port']} ({reach}; {state})"


def data_flows(f: dict[str, Any]) -> list[str]:
    engine_here = "sur cette machine / on this machine" if f["engine_on_this_machine"] else \
        "**sur une autre machine / on another machine**"
    return [
        "## 4. Flux de données / Data flows",
        _where(f["api"], "API (passerelle / gateway)"),
        _where(f["browser_chat"], "chat (navigateur / browser)")
        + f", connexion / sign-in: {f['browser_chat']['sign_in']}",
        f"- moteur / engine: {f['engine']} ({engine_here})"
        + (f", contrat / contract: {f['engine_contract_ref']}" if f["engine_contract_ref"] else ""),
        f"- clés d'API / API keys: {f['api_keys']} clé(s) utilisateur / user key(s) (comme / as `kit doctor`), "
        f"{f['service_keys']} clé(s) de service / service key(s) (le chat / the browser chat)",
        f"- télémétrie / telemetry: {f['telemetry']}",
    ]


def personal_data(p: dict[str, Any]) -> list[str]:
    out = ["## 5. Données personnelles / Personal data (action par catégorie / action per category)"]
    if not p.get("detection", True):
        out.append("- **détection désactivée / detection turned off** (policy.pii_detection: false): "
                   "les messages ne sont pas analysés, les actions ci-dessous ne s'appliquent pas / messages are not "
                   "scanned, the actions below do not apply")
    out += [f"- {k}: {v}" for k, v in p["actions"].items()]
    out.append(f"- autres catégories / other categories: {p['default_action']}")
    out.append(f"- texte des demandes dans l'audit / prompt text in the audit log: {word(p['prompt_text_in_audit'])}")
    return out


def retention(r: dict[str, Any]) -> list[str]:
    conv = (f"{r['conversations_days']} jours / days" if r["conversations_kept"]
            else "aucune conversation gardée / no conversation kept")
    return ["## 6. Conservation / Retention",
            f"- conversations (historique / history): {conv}",
            f"- journal d'audit / audit log: {r['audit_days']} jours / days",
            f"- avis et signalements / feedback and problem reports: {r['feedback_days']} jours / days"]


def models(m: dict[str, Any]) -> list[str]:
    out = ["## 7. Modèles / Models (provenance)"]
    state = "en service / serving" if m["served_running"] else "par défaut / default (models.default)"
    if m["demo"]:
        out.append(f"- **{m['served']}** ({state}) **est un modèle de démonstration / is a demonstration model**: "
                   "trop petit pour un usage réel, ses réponses sont souvent fausses ; le chat l'affiche / too small "
                   "for real work, its answers are often wrong; the chat says so"
                   + (". **Profil production : à remplacer / production profile: replace it**"
                      if m["production_profile"] else "")
                   + " — `kit models pull NAME`, puis / then models.default")
    else:
        out.append(f"- {state}: **{m['served']}** (pas un modèle de démonstration / not a demonstration model)")
    for x in m["installed"]:
        source = x["source"].get("repo") or x["source"].get("package") or ""
        out.append(f"- **{x['name']}**{' (démonstration / demo)' if x['demo'] else ''} — {x['licence']} "
                   f"{x['licence_url']}; {x['quant']}; sha256 `{x['sha256']}`; source {x['source'].get('kind')} "
                   f"{source} {x['revision'] or ''}".rstrip()
                   + f"; llama.cpp {word(x['llama_cpp_version'])}; vérifié / verified: {word(x['verified'])}")
    if not m["installed"]:
        out.append("- aucun modèle installé / no model installed (`kit models pull NAME`)")
    return out


def documents(d: dict[str, Any]) -> list[str]:
    out = ["## 8. Documents indexés / Indexed documents",
           f"- documents: {d['indexed']}, extraits / excerpts: {d['chunks']}, octets / bytes: {d['bytes']}"]
    if not d["indexed"]:
        return out
    out.append(f"- collections: {word(d['collections'])}")
    groups = word(d["groups"]) if d["groups"] else "tout le personnel / all staff"
    out.append(f"- groupes (besoin d'en connaître) / groups (need-to-know): {groups}")
    if d["personal_data"]:
        out.append(f"- données personnelles trouvées à l'indexation / personal data found when indexing: "
                   f"{d['documents_with_personal_data']} document(s)")
        out += [f"  - {k}: {v['occurrences']} occurrence(s) dans / in {v['documents']} document(s)"
                for k, v in d["personal_data"].items()]
    else:
        out.append("- aucune donnée personnelle trouvée à l'indexation / no personal data found when indexing")
    return out


def usage(u: dict[str, Any]) -> list[str]:
    per = "jour / day" if u["by"] == "day" else "semaine / week"
    out = [f"## 11. Utilisation / Usage ({u['from']} → {u['to']}, par / per {per})",
           f"_Du journal d'audit seul ; moins de {u['threshold']} utilisateurs distincts : « < {u['threshold']} » / "
           f"from the audit log only; fewer than {u['threshold']} distinct users: \"< {u['threshold']}\"_", "",
           "| période / period | demandes / requests | utilisateurs / users | refus / refused | avec documents / with "
           "documents | sans source / no source | jetons / tokens | p50 ms | p95 ms |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in u["rows"]:
        refused = sum(r["refusals"].values())
        out.append(f"| {r['period']} | {r['requests']} | {r['active_users']} | {refused} | {r['with_documents']} | "
                   f"{r['no_source']} | {r['tokens']} | {word(r['latency_p50_ms'])} | {word(r['latency_p95_ms'])} |")
    totals: dict[str, int] = {}
    for r in u["rows"]:
        for k, v in r["refusals"].items():
            totals[k] = totals.get(k, 0) + v
    if totals:
        out += ["", "**Refus par motif / refusals by reason**"]
        out += [f"- {_reason(k)}: {v}" for k, v in sorted(totals.items())]
    return out


def _reason(key: str) -> str:
    kind, _, category = key.partition(":")
    if kind == "personal_data":
        return f"données personnelles / personal data {category}"
    return REASONS.get(key, key)


def audit(a: dict[str, Any]) -> list[str]:
    chain = "intacte / intact" if a["chain"]["ok"] else "ALTÉRÉE / ALTERED: " + a["chain"]["reason"]
    out = ["## 10. Journal d'audit / Audit log", f"- chaîne / chain: {chain} ({a['chain']['rows_checked']} rows)",
           f"- événements / events: {a['figures']['total']}, utilisateurs / users: {a['figures']['users']}"]
    out += [f"- {k}: {v}" for k, v in sorted(a["figures"]["by_action"].items())]
    out += [f"- PII {k}: {v}" for k, v in sorted(a["figures"]["pii_categories"].items())]
    return out


def to_markdown(r: dict[str, Any]) -> str:
    p, g, c = r["purpose"], r["governance"], r["charter"]
    out = [f"# Dossier de conformité / Compliance pack — {p['organisation'] or '(organisation)'}",
           f"_Généré le / generated {r['generated_at']}_", "",
           "## 1. Finalité / Purpose", p["purpose"] or "**(manquante / missing)**", f"Profil / profile: {p['profile']}",
           "", "## 2. Gouvernance / Governance"]
    out += [f"- {k}: {word(v)}" for k, v in g.items()]
    out += ["", f"## 3. Charte / Charter (version {c['version']}, {c['acknowledgements']} acceptation(s))",
            "**Usages autorisés / allowed uses**"]
    out += [f"- {_text(t)}" for t in c["allowed_uses"]]
    out += ["", "**Usages interdits / forbidden uses**"]
    out += [f"- {_text(t)}" for t in c["forbidden_uses"]]
    for part in (data_flows(r["data_flows"]), personal_data(r["personal_data"]), retention(r["retention"]),
                 models(r["models"]), documents(r["documents"])):
        out += ["", *part]
    out += ["", "## 9. Contrôles de sécurité / Security checks (kit doctor)"]
    out += [f"- {x['status']} {x['name']}: {x['detail']}"
            + (f" — {x['fix']}" if x["status"] != "PASS" and x["fix"] else "") for x in r["security_checks"]]
    out += ["", *audit(r["audit"]), "", *usage(r["usage"]), "", "## 12. Bancs d'essai / Benchmarks"]
    b = r.get("benchmarks")
    if b:
        out.append(f"_Dernier rapport publié / latest published report: {b['generated_at']}"
                   + (f", {b['html']}_" if b["html"] else "_"))
        out += ["#" * 2 + line if line.startswith("#") else line for line in b["summary"].splitlines()]
    else:
        out.append("- aucun / none: `kit bench ...` then `kit bench report` publish one")
    out += ["", "## 13. Sources"] + [f"- [{s['title']}]({s['url']})" for s in r["sources"]]
    return "\n".join(out) + "\n"
