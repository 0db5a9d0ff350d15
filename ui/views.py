"""Pure rendering: charter, chat messages, personal-data panel, history, admin figures.

Functions take API data and a :class:`ui.texts.Texts` and return Markdown or chat messages; they
never call the gateway, so they are easy to test and re-render when the language changes.
"""

from __future__ import annotations

import html
from typing import Any

from ui.client import ApiError, wrong_questions
from ui.markup import safe_markdown
from ui.texts import Texts

CONTACT_KEYS = ("point_of_contact", "dpo", "business_owner", "ciso", "ethics_referent")


def pick(value: Any, lang: str) -> str:
    """A {fr, en} text from the charter in the wanted language (French when missing)."""
    if isinstance(value, dict):
        return str(value.get(lang) or value.get("fr") or "")
    return str(value or "")


def _bullets(items: list[str]) -> str:
    return "\n".join(f"- {item}" for item in items)


def main_contact(charter: dict[str, Any]) -> str:
    contacts = charter.get("contacts") or {}
    return str(contacts.get("point_of_contact") or contacts.get("dpo") or "")


def charter_markdown(charter: dict[str, Any], t: Texts, model: str, *, audit_days: int, log_text: bool) -> str:
    """Everything a user must see before first use (the quiz is rendered separately)."""
    lang = t.lang
    days = int(charter.get("conversation_retention_days") or 0)
    parts = [
        f"## {t('gate.ai_title')}",
        t("gate.ai_statement", model=model or "?"),
        f"### {t('gate.purpose_title')}",
        str(charter.get("purpose") or ""),
        f"### {t('gate.allowed_title')}",
        _bullets([pick(u, lang) for u in charter.get("allowed_uses") or []]),
        f"### {t('gate.forbidden_title')}",
        _bullets([pick(u, lang) for u in charter.get("forbidden_uses") or []]),
        f"### {t('gate.limits_title')}",
        _bullets(t.items("gate.limits")),
        f"### {t('gate.data_title')}",
        _bullets(
            [
                t("gate.data_retention", days=days) if days > 0 else t("gate.data_none"),
                t("gate.data_pii" if charter.get("pii_detection", True) else "gate.data_pii_off"),
                t("gate.data_audit_text" if log_text else "gate.data_audit", days=audit_days),
            ]
        ),
        f"### {t('gate.guide_title')}",
        _bullets(t.items("gate.guide")),
    ]
    contacts = charter.get("contacts") or {}
    rows = [
        "- " + t("contacts.row", role=t("contacts." + k), value=contacts[k]) for k in CONTACT_KEYS if contacts.get(k)
    ]
    if rows:
        parts += [f"### {t('gate.contacts_title')}", "\n".join(rows)]
    sources = charter.get("sources") or []
    if sources:
        parts += [
            f"### {t('gate.sources_title')}",
            _bullets([f"[{s.get('title', '')}]({s.get('url', '')})" for s in sources]),
        ]
    parts.append(f"<sub>{t('gate.version', version=charter.get('version', ''))}</sub>")
    return "\n\n".join(p for p in parts if p)


def quiz_items(charter: dict[str, Any], lang: str) -> list[tuple[str, list[tuple[str, int]]]]:
    return [
        (pick(q.get("question"), lang), [(pick(c, lang), i) for i, c in enumerate(q.get("choices") or [])])
        for q in charter.get("quiz") or []
    ]


def ack_error(err: ApiError, t: Texts) -> str:
    if err.kind == "forbidden":
        if "not the current one" in err.message:
            return t("gate.stale")
        wrong = wrong_questions(err.message)
        if wrong:
            return t("gate.wrong", numbers=", ".join(str(n) for n in wrong))
        return t("gate.wrong_generic")
    return error_text(err, t)


def error_text(err: ApiError, t: Texts) -> str:
    """A page message for a failed call; never a stack trace."""
    if err.kind == "closed":
        return t("errors.closed", message=err.message or t("errors.closed_default"))
    if err.kind == "invalid":
        if (err.detail or {}).get("type") == "context_length_exceeded":
            return t("errors.context")
        return t("errors.invalid", detail=err.message)
    known = (
        "unreachable",
        "timeout",
        "engine",
        "busy",
        "auth",
        "forbidden",
        "not_acknowledged",
        "too_large",
        "not_found",
        "server",
    )
    return t(f"errors.{err.kind}" if err.kind in known else "errors.server")


# --- chat ----------------------------------------------------------------------------------------


def new_conversation() -> dict[str, Any]:
    return {"id": None, "title": "", "turns": []}


def ai_label(t: Texts, model: str, n: int, total: int) -> str:
    text = t("chat.ai_label_alt", model=model, n=n) if total > 1 else t("chat.ai_label", model=model)
    return f'<span class="kit-ai-label">{html.escape(text)}</span>'


def answer_content(answer: dict[str, Any], t: Texts, n: int, total: int) -> str:
    body = answer.get("text") or ""
    notes = []
    if answer.get("masked"):
        notes.append(t("chat.masked_note", categories=", ".join(category(c, t) for c in answer["masked"])))
    if answer.get("withheld"):  # excerpts the personal-data policy kept from the model
        kinds = dict.fromkeys(c for w in answer["withheld"] for c in w.get("categories") or [])
        notes.append(t("docs.withheld", n=len(answer["withheld"]), categories=", ".join(category(c, t) for c in kinds)))
    if answer.get("stopped"):
        notes.append(t("chat.stopped"))
    elif answer.get("finish") == "length":
        notes.append(t("chat.truncated"))
    if answer.get("error"):
        notes.append(f"⚠ {answer['error']}")
    if not body and not notes:
        body = "…"
    marked = [f'<div class="kit-note">{html.escape(note)}</div>' for note in notes]
    parts = [ai_label(t, answer.get("model") or "?", n, total), safe_markdown(body)]
    if answer.get("sources") is not None:  # asked with documents: the sources, or that none was found
        parts.append(sources_html(answer["sources"], t))
    progress = answer.get("progress") or {}
    if progress.get("total") and progress.get("done", 0) < progress["total"] and not answer.get("finish"):
        done, total = int(progress["done"]), int(progress["total"])
        label = html.escape(t("attach.progress", done=done, total=total))
        parts.append(f'<div class="kit-progress"><progress value="{done}" max="{total}"></progress> {label}</div>')
    if answer.get("attachments"):  # the files' pages the answer was made from
        parts.append(pages_html(answer["attachments"], t))
    return "\n\n".join([*parts, *marked])


def pages_html(attachments: list[dict[str, Any]], t: Texts) -> str:
    """Under an answer: each attached file and the pages used."""
    rows = []
    for item in attachments:
        pages = ", ".join(str(p) for p in item.get("pages_used") or []) or "—"
        rows.append(html.escape(t("attach.pages_row", name=item.get("filename") or "?", pages=pages)))
    title = html.escape(t("attach.pages_title"))
    return f'<div class="kit-pages"><span class="kit-sources-title">{title}</span> {" · ".join(rows)}</div>'


def source_place(source: dict[str, Any], t: Texts) -> str:
    """Where an excerpt comes from: file, then page and heading when known."""
    where = [str(source.get("source") or "?")]
    if source.get("page"):
        where.append(t("docs.page", page=source["page"]))
    if source.get("heading"):
        where.append(str(source["heading"]))
    return " · ".join(where)


def sources_html(sources: list[dict[str, Any]], t: Texts) -> str:
    """The sources under an answer, each opening its excerpt; or the "no source found" notice."""
    if not sources:
        return f'<div class="kit-note kit-no-source">{html.escape(t("docs.no_source"))}</div>'
    items = []
    for i, src in enumerate(sources):
        score = src.get("score")
        label = t(
            "docs.source_row",
            n=src.get("n") or i + 1,
            place=source_place(src, t),
            # the relevance is on a fixed scale (kit.documents.retrieve): shown as a percentage
            score=f"{round(100 * min(1.0, max(0.0, float(score))))}" if isinstance(score, (int, float)) else "?",
        )
        excerpt = html.escape(str(src.get("text") or "")).replace("\n", "<br>")
        items.append(
            f'<details class="kit-source"><summary>{html.escape(label)}</summary>'
            f"<blockquote>{excerpt}</blockquote></details>"
        )
    title = html.escape(t("docs.sources_title"))
    return f'<div class="kit-sources"><div class="kit-sources-title">{title}</div>{"".join(items)}</div>'


def render_chat(conv: dict[str, Any], t: Texts) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for turn in conv.get("turns") or []:
        messages.append({"role": "user", "content": safe_markdown(turn["user"])})
        answers = turn.get("answers") or []
        for i, answer in enumerate(answers):
            messages.append({"role": "assistant", "content": answer_content(answer, t, i + 1, len(answers))})
    return messages


def locate(conv: dict[str, Any], index: int) -> tuple[int, int] | None:
    """(turn, answer) shown at message `index` of the chatbot, or None for a user message."""
    pos = 0
    for ti, turn in enumerate(conv.get("turns") or []):
        pos += 1
        for ai in range(len(turn.get("answers") or [])):
            if pos == index:
                return ti, ai
            pos += 1
    return None


def api_messages(
    conv: dict[str, Any], system: str, upto: int | None = None, max_chars: int = 6000
) -> list[dict[str, str]]:
    """Messages sent to the model: the system prompt, then recent turns (first answer of each), the
    latest user message last. Older turns are dropped to fit the model's context."""
    turns = (conv.get("turns") or [])[: upto if upto is not None else None]
    out: list[dict[str, str]] = []
    used = 0
    for turn in reversed(turns):
        pair = [{"role": "user", "content": turn["user"]}]
        answers = [a for a in turn.get("answers") or [] if a.get("text")]
        if answers and turn is not turns[-1]:
            pair.append({"role": "assistant", "content": answers[0]["text"]})
        size = sum(len(m["content"]) for m in pair)
        if out and used + size > max_chars:
            break
        out = pair + out
        used += size
    return ([{"role": "system", "content": system}] if system else []) + out


# --- personal data -------------------------------------------------------------------------------


def category(kind: str, t: Texts) -> str:
    return t.get_optional(f"pii.categories.{kind}") or kind


def conversation_title(text: str, scan: dict[str, Any], size: int = 80) -> str:
    """A new conversation's title: the first line of its first message, at most ``size`` characters, never
    cut inside personal data the scan found (a value cut in two is no longer recognised, and the gateway masks
    the values a title holds whole)."""
    if not text.strip():
        return ""
    start = len(text) - len(text.lstrip())
    end = start + len(text.strip().splitlines()[0])
    cut = min(end, start + size)
    for finding in sorted(scan.get("findings") or [], key=lambda f: -int(f.get("end", 0))):
        if int(finding.get("start", 0)) < cut < int(finding.get("end", 0)):
            cut = max(start, int(finding["start"]))
    return text[start:cut].rstrip()


def pii_panel(scan: dict[str, Any], t: Texts) -> tuple[str, str]:
    """Markdown of what was found and the policy's action; and the state: "clean", "confirm",
    "masked" (confirm sending the masked text) or "blocked"."""
    actions: dict[str, str] = scan.get("actions") or {}
    findings = [f for f in scan.get("findings") or [] if actions.get(f.get("type"), "allow") != "allow"]
    if not findings:
        return "", "clean"
    blocked = list(scan.get("blocked") or [])
    rows, seen = [], set()
    for f in findings:
        key = (f["type"], f.get("text", ""))
        if key in seen:
            continue
        seen.add(key)
        action = actions.get(f["type"], "warn")
        rows.append(
            "- "
            + t(
                "pii.row",
                category=category(f["type"], t),
                text=html.escape(f.get("text", "")),
                action=t(f"pii.actions.{action}"),
            )
        )
    parts = [f"## {t('pii.title')}", t("pii.intro"), "\n".join(rows)]
    if blocked:
        parts.append(t("pii.blocked", categories=", ".join(category(c, t) for c in blocked)))
        return "\n\n".join(parts), "blocked"
    if any(a == "mask" for a in actions.values()):
        masked = html.escape(str(scan.get("masked_text") or ""))
        parts += [t("pii.masked_preview"), f'<div class="kit-masked">{masked}</div>']
        return "\n\n".join(parts), "masked"
    return "\n\n".join(parts), "confirm"


# --- history -------------------------------------------------------------------------------------


def history_choices(data: list[dict[str, Any]], t: Texts) -> list[tuple[str, str]]:
    out = []
    for c in data:
        date = str(c.get("updated") or c.get("created") or "")[:16].replace("T", " ")
        out.append((t("history.item", title=c.get("title") or t("history.untitled"), date=date), str(c["id"])))
    return out


def stored_answer(content: str, meta: dict[str, Any]) -> dict[str, Any]:
    """An answer of a kept conversation as it was shown: its sources (or "no source found"), the note on a cut
    or stopped answer, what was masked, and its id for feedback."""
    answer: dict[str, Any] = {
        "text": content,
        "model": meta.get("model") or "?",
        "finish": meta.get("finish") or "stop",
        "answer_id": meta.get("answer_id"),
        "documents": bool(meta.get("documents")),
        "masked": list(meta.get("masked") or []),
    }
    if meta.get("finish") == "cancelled":
        answer["stopped"] = True
    if "sources" in meta:
        answer["sources"] = list(meta.get("sources") or [])
    return answer


def conversation_from_api(data: dict[str, Any]) -> dict[str, Any]:
    """A kept conversation as the chat shows it; ``documents``: whether its last answer searched the documents
    (the switch is set back that way)."""
    conv = new_conversation()
    conv["id"], conv["title"] = data.get("id"), data.get("title") or ""
    for m in data.get("messages") or []:
        if m.get("role") == "user":
            conv["turns"].append({"user": m.get("content") or "", "answers": []})
        elif m.get("role") == "assistant":
            if not conv["turns"]:
                conv["turns"].append({"user": "", "answers": []})
            answer = stored_answer(m.get("content") or "", m.get("meta") or {})
            conv["turns"][-1]["answers"].append(answer)
            conv["documents"] = answer["documents"]
    return conv


# --- admin ---------------------------------------------------------------------------------------


def _table(t: Texts, head: tuple[str, str], rows: list[tuple[str, Any]]) -> str:
    if not rows:
        return t("admin.none")
    lines = [f"| {head[0]} | {head[1]} |", "|---|---:|"]
    lines += [f"| {html.escape(str(k))} | {v} |" for k, v in rows]
    return "\n".join(lines)


def stats_markdown(stats: dict[str, Any], t: Texts) -> str:
    metric, value, count = t("admin.metric"), t("admin.value"), t("admin.count")
    rows: list[tuple[str, Any]] = [
        (t("admin.total"), stats.get("total", 0)),
        (t("admin.users"), stats.get("users", 0)),
        (t("admin.prompt_tokens"), stats.get("prompt_tokens", 0)),
        (t("admin.completion_tokens"), stats.get("completion_tokens", 0)),
        (t("admin.acknowledgements"), stats.get("acknowledgements_current_charter", 0)),
    ]
    for action, ms in sorted((stats.get("mean_latency_ms") or {}).items()):
        rows.append((t("admin.latency", action=action), f"{float(ms):.0f} ms"))
    closed = stats.get("chat_closed")
    state = t("admin.state_closed", message=(closed or {}).get("message", "")) if closed else t("admin.state_open")
    by_day = sorted((stats.get("by_day") or {}).items(), reverse=True)[:14]
    return "\n\n".join(
        [
            f"## {t('admin.stats_title')}",
            t("admin.intro"),
            state,
            _table(t, (metric, value), rows),
            f"### {t('admin.by_action')}",
            _table(t, (metric, count), sorted((stats.get("by_action") or {}).items())),
            f"### {t('admin.by_day')}",
            _table(t, (metric, count), by_day),
            f"### {t('admin.pii_categories')}",
            _table(
                t,
                (metric, count),
                [(category(k, t), v) for k, v in sorted((stats.get("pii_categories") or {}).items())],
            ),
            f"### {t('admin.pii_actions')}",
            _table(
                t,
                (metric, count),
                [
                    (t.get_optional(f"pii.actions.{k}") or k, v)
                    for k, v in sorted((stats.get("pii_actions") or {}).items())
                ],
            ),
        ]
    )


def verify_markdown(result: dict[str, Any], t: Texts) -> str:
    if result.get("ok"):
        return t("admin.verify_ok", rows=result.get("rows_checked", 0))
    return t(
        "admin.verify_bad",
        id=result.get("first_bad_id"),
        rows=result.get("rows_checked", 0),
        reason=html.escape(str(result.get("reason") or "")),
    )


def feedback_table(items: list[dict[str, Any]], t: Texts) -> tuple[list[str], list[list[Any]]]:
    head = [
        t("admin.col_time"),
        t("admin.col_kind"),
        t("admin.col_rating"),
        t("admin.col_comment"),
        t("admin.col_user"),
        t("admin.col_answer"),
        t("admin.col_status"),
    ]
    rows = []
    for i in items:
        rating = {1: "+1", -1: "−1", 0: "·"}.get(i.get("rating"), "")  # type: ignore[arg-type]
        kind = t("admin.kind_report") if i.get("kind") == "report" else t("admin.kind_feedback")
        rows.append(
            [
                str(i.get("time", ""))[:19].replace("T", " "),
                kind,
                rating,
                i.get("comment", ""),
                str(i.get("user", ""))[:12],
                str((i.get("meta") or {}).get("answer_id") or ""),  # the audit row of that answer has the same id
                i.get("status", ""),
            ]
        )
    return head, rows
