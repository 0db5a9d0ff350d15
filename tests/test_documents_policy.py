"""Document excerpts and stored texts under the personal-data policy; need-to-know in documents (groups only,
keyword scores from what the caller may read, no server path). A real gateway on 127.0.0.1 with real stores,
the real detector, a real Chroma and the real embedding model; the engine answers with what it was given
(the model is not the subject: what reaches it is)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from echo_engine import EchoEngine, start_echo_gateway
from helpers import ServerHandle


def nir(body: str) -> str:
    return f"{body}{97 - int(body) % 97:02d}"


def iban(country: str, bban: str) -> str:
    number = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    return f"{country}{98 - number % 97:02d}{bban}"


NIR = nir("1850575056123")
IBAN = iban("FR", "30006000011234567890189")
EMAIL = "jeanne.valmont@exemple.fr"
DISMISSAL = f"""# Dossier du salarié licencié

Le salarié licencié le 3 mars relève du régime général, numéro NIR {NIR}. Son indemnité de licenciement
est calculée sur les douze derniers mois.
"""
PAYROLL = f"""# Virement de l'indemnité

L'indemnité du salarié licencié est virée sur le compte IBAN {IBAN} à la fin du préavis.
"""
LEAVE = """# Congés annuels

Chaque agent à temps plein bénéficie de vingt-sept jours de congés annuels par an. Les congés se posent
dans l'outil de planification, au moins quinze jours à l'avance, après accord du chef de service.
"""
TRAINING = """# Formation continue

Chaque agent peut demander une formation continue par an ; le chef de service valide la demande de
formation dans l'outil de planification.
"""
STRATEGY = """# Note stratégique de la direction

Le projet ornithorynque prévoit une réorganisation des services ; la formation continue des agents
sera revue, les congés et la planification aussi, formation par formation.
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    from kit.documents.ingest import ingest
    from kit.storage.users import add_user

    base = tmp_path_factory.mktemp("docpolicy")
    old = os.environ.get("KIT_HOME")
    handle, stop = start_echo_gateway(base / "home", base / "kit.yaml")
    folder = base / "partage"
    (folder / "rh" / "salaries").mkdir(parents=True)
    (folder / "rh" / "salaries" / "licenciement.md").write_text(DISMISSAL, encoding="utf-8")
    (folder / "rh" / "salaries" / "paie.md").write_text(PAYROLL, encoding="utf-8")
    (folder / "conges.md").write_text(LEAVE, encoding="utf-8")
    (folder / "formation.md").write_text(TRAINING, encoding="utf-8")
    index = handle.app.state.context.documents.index()
    report = ingest([folder / "rh"], ["rh"], settings=handle.settings, index=index)  # rag.pii_action: report
    assert report.ok and report.pii, report
    report = ingest([folder / "conges.md", folder / "formation.md"], [], settings=handle.settings, index=index)
    assert report.ok and len(report.documents) == 2, report
    home = handle.settings.home
    add_user(home, "ana", "user", "a long enough password", ["rh"])
    add_user(home, "bob", "user", "a long enough password", [])
    for user in ("ana", "bob"):
        handle.acknowledge(user)
    handle.folder = base  # type: ignore[attr-defined]
    yield handle
    stop()
    if old is not None:
        os.environ["KIT_HOME"] = old


def _received(gw: ServerHandle) -> str:
    engine: EchoEngine = gw.engine
    return "\n".join(str(m["content"]) for m in engine.received[-1])


def _chat(gw: ServerHandle, user: str, text: str, **extra: Any) -> dict[str, Any]:
    body = {"messages": [{"role": "user", "content": text}], "max_tokens": 16, "kit": {"documents": True}, **extra}
    r = httpx.post(gw.url + "/v1/chat/completions", headers=gw.headers(user), json=body, timeout=120)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _search(gw: ServerHandle, user: str, query: str, k: int = 5) -> dict[str, Any]:
    r = httpx.post(gw.url + "/v1/documents/search", headers=gw.headers(user), json={"query": query, "k": k},
                   timeout=120)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _compact(text: str) -> str:
    return "".join(text.split())


# --- excerpts under the policy -------------------------------------------------------------------------------


def test_excerpts_pass_the_policy_before_the_model(gw: ServerHandle) -> None:
    """FR_NIR is blocked by default: its excerpt is withheld; IBAN_CODE is masked: its excerpt reaches the model
    with a placeholder. The response, the sources, the history and the audit row say so, from one policed text."""
    new = httpx.post(gw.url + "/v1/conversations", headers=gw.headers("ana"), json={"title": "Licenciement"})
    cid = new.json()["id"]
    answer = _chat(gw, "ana", "Quel est le numéro NIR et le compte IBAN du salarié licencié ?", conversation_id=cid)
    seen = _compact(_received(gw))
    assert NIR not in seen and IBAN not in seen
    assert "[IBAN_CODE_1]" in _received(gw) and "indemnité" in _received(gw)  # the masked excerpt still helps
    kit = answer["kit"]
    pd = kit["personal_data"]
    assert {"FR_NIR", "IBAN_CODE"} <= set(pd["categories"])
    assert pd["actions"]["FR_NIR"] == "block" and pd["actions"]["IBAN_CODE"] == "mask"
    assert "IBAN_CODE" in pd["masked"]
    assert {"FR_NIR", "IBAN_CODE"} <= set(pd["sources"]["categories"])
    withheld = pd["sources"]["withheld"]
    assert [w["source"] for w in withheld] == ["salaries/licenciement.md"] and withheld[0]["categories"] == ["FR_NIR"]
    texts = [s["text"] for s in kit["sources"]]
    assert texts and all(NIR not in _compact(t) and IBAN not in _compact(t) for t in texts)
    assert any("[IBAN_CODE_1]" in t for t in texts)
    assert all(t in _received(gw) for t in texts)  # what the sources show is what the model read
    assert NIR not in _compact(answer["choices"][0]["message"]["content"])
    row = [r for r in gw.state.audit.rows() if r.action == "chat"][-1]
    assert {"FR_NIR", "IBAN_CODE"} <= set(row.pii_categories) and row.text is None
    conv = httpx.get(gw.url + f"/v1/conversations/{cid}", headers=gw.headers("ana")).json()
    stored = conv["messages"][-1]
    assert stored["role"] == "assistant" and stored["meta"]["sources"] == kit["sources"]
    assert NIR not in _compact(str(conv)) and IBAN not in _compact(str(conv))


def test_streamed_answer_names_the_excerpts_categories(gw: ServerHandle) -> None:
    import json

    question = "Sur quel compte IBAN est virée l'indemnité du salarié licencié ?"
    body = {"messages": [{"role": "user", "content": question}], "max_tokens": 8, "stream": True,
            "kit": {"documents": True}}
    last = None
    with httpx.stream("POST", gw.url + "/v1/chat/completions", headers=gw.headers("ana"), json=body,
                      timeout=120) as r:
        for line in r.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                event = json.loads(line[6:])
                if event.get("kit"):
                    last = event
    assert last is not None and "IBAN_CODE" in last["kit"]["personal_data"]["categories"]
    assert all(IBAN not in _compact(s["text"]) for s in last["kit"]["sources"])


def test_one_value_has_one_placeholder_across_excerpts(gw: ServerHandle) -> None:
    other = iban("FR", "20041010050500013M02606")
    outcomes = gw.app.state.context.gate.apply_pii_texts(
        [f"Compte IBAN {IBAN}.", "", f"Autre compte IBAN {other}.", f"Rappel : IBAN {IBAN}."])
    assert [o.text for o in outcomes] == ["Compte IBAN [IBAN_CODE_1].", "", "Autre compte IBAN [IBAN_CODE_2].",
                                          "Rappel : IBAN [IBAN_CODE_1]."]
    assert [o.masked for o in outcomes] == [["IBAN_CODE"], [], ["IBAN_CODE"], ["IBAN_CODE"]]


def test_search_results_pass_the_policy(gw: ServerHandle) -> None:
    found = _search(gw, "ana", "numéro NIR compte IBAN du salarié licencié indemnité")
    texts = [r["text"] for r in found["results"]]
    assert texts and all(NIR not in _compact(t) and IBAN not in _compact(t) for t in texts)
    assert any("[IBAN_CODE_1]" in t for t in texts)
    assert {"FR_NIR", "IBAN_CODE"} <= set(found["personal_data"]["categories"])


def test_excerpt_policy_follows_the_configuration(gw: ServerHandle) -> None:
    """With FR_NIR set to mask, the excerpt is no longer withheld: the model reads it with a placeholder."""
    policy = gw.settings.policy
    before = dict(policy.pii_actions)
    policy.pii_actions["FR_NIR"] = "mask"
    try:
        answer = _chat(gw, "ana", "Quel est le numéro NIR du salarié licencié ?")
    finally:
        policy.pii_actions.clear()
        policy.pii_actions.update(before)
    assert NIR not in _compact(_received(gw)) and "[FR_NIR_1]" in _received(gw)
    pd = answer["kit"]["personal_data"]
    assert "FR_NIR" in pd["masked"] and pd["sources"]["withheld"] == []


def test_a_file_name_holding_personal_data_reaches_neither_the_model_nor_the_caller(gw: ServerHandle) -> None:
    """The source's name goes with its excerpt to the model and to the caller: it passes the policy too (block:
    the excerpt is withheld, and the notice names the file without the value; mask: placeholders)."""
    for name, body in ((f"attestation_{NIR}.md", "# Attestation\n\nLa mutuelle kangourou couvre l'agent.\n"),
                       (f"virement {IBAN}.md", "# Virement\n\nLe virement wombat part le lundi.\n")):
        r = httpx.post(gw.url + "/v1/documents", headers=gw.headers("root", "admin"), timeout=120,
                       files=[("file", (name, body.encode(), "text/markdown"))], data={"group": "rh"})
        assert r.status_code == 200 and r.json()["documents"], r.text
    for question, value in (("Que couvre la mutuelle kangourou ?", NIR), ("Quand part le virement wombat ?", IBAN)):
        answer = _chat(gw, "ana", question)
        assert value not in _compact(_received(gw)), _received(gw)
        assert value not in _compact(str(answer["kit"])), answer["kit"]
        found = _search(gw, "ana", question)
        assert value not in _compact(str(found)), found


# --- stored texts ----------------------------------------------------------------------------------------------


def test_conversation_title_is_policed_before_it_is_stored(gw: ServerHandle) -> None:
    title = f"Dossier {NIR} — écrire à {EMAIL}"
    r = httpx.post(gw.url + "/v1/conversations", headers=gw.headers("ana"), json={"title": title})
    assert r.status_code == 200, r.text
    listed = httpx.get(gw.url + "/v1/conversations", headers=gw.headers("ana")).json()["data"]
    stored = next(c["title"] for c in listed if c["id"] == r.json()["id"])
    assert NIR not in _compact(stored) and EMAIL not in stored
    assert "[FR_NIR_1]" in stored and "[EMAIL_ADDRESS_1]" in stored and stored.startswith("Dossier")


def test_feedback_comment_is_policed_before_it_is_stored(gw: ServerHandle) -> None:
    comment = f"La réponse citait le NIR {NIR} ; me répondre à {EMAIL}."
    r = httpx.post(gw.url + "/v1/feedback", headers=gw.headers("ana"),
                   json={"kind": "report", "comment": comment})
    assert r.status_code == 200, r.text
    items = httpx.get(gw.url + "/v1/admin/feedback", headers=gw.headers("root", "admin")).json()["data"]
    stored = next(i["comment"] for i in items if i["id"] == r.json()["id"])
    assert NIR not in _compact(stored) and EMAIL not in stored and "[FR_NIR_1]" in stored


def test_feedback_model_and_conversation_fields_are_policed_too(gw: ServerHandle) -> None:
    """The other free-text fields of a report (``model``, ``conversation_id``) reach the administrators too."""
    r = httpx.post(gw.url + "/v1/feedback", headers=gw.headers("ana"),
                   json={"kind": "report", "comment": "voir le modèle", "model": f"écrire à {EMAIL}",
                         "conversation_id": NIR})
    assert r.status_code == 200, r.text
    items = httpx.get(gw.url + "/v1/admin/feedback", headers=gw.headers("root", "admin")).json()["data"]
    shown = str(next(i for i in items if i["id"] == r.json()["id"]))
    assert EMAIL not in shown and NIR not in _compact(shown), shown
    assert set(r.json()["personal_data"]["categories"]) >= {"EMAIL_ADDRESS", "FR_NIR"}


def test_a_title_cut_by_the_chat_never_keeps_part_of_an_identifier(gw: ServerHandle) -> None:
    """The chat names a new conversation after the first 80 characters of its first message: a NIR across
    that cut must not be stored in part (the gateway's policy cannot recognise a NIR cut in two)."""
    from ui.views import conversation_title

    spaced = " ".join([NIR[0], NIR[1:3], NIR[3:5], NIR[5:7], NIR[7:10], NIR[10:13], NIR[13:]])
    text = "Merci de vérifier le dossier de l'agent muté au service courrier, NIR " + spaced + " avant lundi."
    assert text.index(spaced) < 80 < text.index(spaced) + len(spaced)
    scan = httpx.post(gw.url + "/v1/privacy/scan", headers=gw.headers("ana"), json={"text": text}).json()
    title = conversation_title(text, scan)
    assert 0 < len(title) <= 80 and title.startswith("Merci de vérifier")
    r = httpx.post(gw.url + "/v1/conversations", headers=gw.headers("ana"), json={"title": title})
    assert r.status_code == 200, r.text
    stored = r.json()["title"]
    assert NIR[:5] not in _compact(stored) and "1 85 05" not in stored, stored


# --- need-to-know ----------------------------------------------------------------------------------------------


def test_a_collection_name_never_widens_who_may_read(gw: ServerHandle) -> None:
    files = [("file", ("strategie.md", STRATEGY.encode(), "text/markdown"))]
    r = httpx.post(gw.url + "/v1/documents", headers=gw.headers("root", "admin"), files=files,
                   data={"group": "direction", "collection": "public"}, timeout=120)
    assert r.status_code == 200, r.text
    doc_id = r.json()["documents"][0]
    for user in ("bob", "ana"):
        for query in ("projet ornithorynque réorganisation", "note stratégique de la direction"):
            found = _search(gw, user, query)["results"]
            assert all(x["document_id"] != doc_id for x in found), (user, found)
        listed = httpx.get(gw.url + "/v1/documents", headers=gw.headers(user)).json()["data"]
        assert doc_id not in [d["id"] for d in listed]
        question = "Que prévoit le projet ornithorynque ?"
        answer = _chat(gw, user, question)
        assert "ornithorynque" not in _received(gw).replace(question, "").lower()  # no excerpt of it reached the model
        assert all(s["document_id"] != doc_id for s in answer["kit"]["sources"])
    httpx.delete(gw.url + f"/v1/documents/{doc_id}", headers=gw.headers("root", "admin")).raise_for_status()


def test_keyword_scores_do_not_depend_on_hidden_documents(gw: ServerHandle) -> None:
    """A user's results (order, fused score, keyword coverage, similarity) are the same whether or not a document
    they may not read holds a word of their question."""
    from kit.documents.ingest import ingest, remove

    query = "formation continue des agents, planification et projet ornithorynque"
    before = _search(gw, "bob", query, k=10)["results"]
    assert len(before) >= 2
    folder = gw.folder / "cachee"  # type: ignore[attr-defined]
    folder.mkdir()
    (folder / "strategie.md").write_text(STRATEGY, encoding="utf-8")
    index = gw.app.state.context.documents.index()
    report = ingest([folder / "strategie.md"], ["direction"], settings=gw.settings, index=index)
    try:
        assert report.documents
        admin_sees = index.catalog.documents()
        assert any(d.id == report.documents[0] for d in admin_sees)
        after = _search(gw, "bob", query, k=10)["results"]
    finally:
        remove(report.documents[0], gw.settings, index=index)
    keys = ("document_id", "chunk_index", "score", "keyword", "similarity")
    assert [{k: r[k] for k in keys} for r in after] == [{k: r[k] for k in keys} for r in before]


def _catalog(path: Path, docs: dict[str, tuple[str, list[str]]]) -> Any:
    from kit.documents.ingest import _terms, new_row
    from kit.documents.store import Catalog

    catalog = Catalog(path)
    for name, (text, groups) in docs.items():
        row = new_row(name, "default", groups, "0" * 64, len(text))
        row.generation, row.chunks = f"g-{name}", len(text.split("\n\n"))
        catalog.begin(row.id, name, "default", row.generation, "now", [])
        catalog.add_chunks(row.generation, row.id, [(i, None, [], part, _terms(name, part))
                                                    for i, part in enumerate(text.split("\n\n"))])
        catalog.publish(row)
    return catalog


def test_keyword_scores_are_fts5_bm25_over_what_the_caller_reads(tmp_path: Path) -> None:
    """The keyword side's scores for a caller who may not read every document equal FTS5's own ``bm25()`` over an
    index holding only the documents they may read; and the other way round for one who reads everything."""
    from kit.documents.query import fts_query, query_words

    public = {"conges.md": (LEAVE, ["public"]), "formation.md": (TRAINING + "\n\n" + LEAVE.upper(), ["public"])}
    hidden = {"strategie.md": (STRATEGY + "\n\n" + TRAINING, ["direction"]), "licenciement.md": (DISMISSAL, ["rh"])}
    both = _catalog(tmp_path / "both.db", {**public, **hidden})
    alone = _catalog(tmp_path / "alone.db", public)
    match = fts_query(query_words("formation continue congés planification chef de service ornithorynque"))
    rows = alone._all("SELECT c.doc_id, c.chunk_index, -bm25(chunks_fts) AS s FROM chunks_fts f JOIN chunks c "
                      "ON c.id = f.rowid WHERE chunks_fts MATCH ?", [match])
    expected = {(r["doc_id"], r["chunk_index"]): r["s"] for r in rows}
    for groups in ([], ["elsewhere"]):
        got = {(h.doc_id, h.chunk_index): h.bm25 for h in both.keyword_search(match, 50, None, groups)}
        assert len(got) >= 3 and set(got) == set(expected)
        for key, score in expected.items():
            assert got[key] == pytest.approx(score, rel=1e-9)
    terms = [t for w in query_words("formation ornithorynque congés") for t in w.all]
    assert both.frequencies(terms, None, []) == alone.frequencies(terms)
    assert both.frequencies(terms, None, ["direction"])[1]["ornithorynqu"] == 1
    everything = {(h.doc_id, h.chunk_index): h.bm25 for h in both.keyword_search(match, 50, None, None)}
    assert len(everything) > len(expected)
    both.close()
    alone.close()


def test_sources_never_show_a_server_path(gw: ServerHandle) -> None:
    from kit.documents.ingest import ingest, remove

    base = str(gw.folder)  # type: ignore[attr-defined]
    found = _search(gw, "ana", "virement de l'indemnité à la fin du préavis")["results"]
    assert any(r["source"] == "salaries/paie.md" for r in found), found
    listed = httpx.get(gw.url + "/v1/documents", headers=gw.headers("ana")).json()["data"]
    shown = {d["source"] for d in listed}
    assert shown >= {"salaries/licenciement.md", "salaries/paie.md", "conges.md", "formation.md"}
    answer = _chat(gw, "bob", "Combien de jours de congés annuels ?")
    assert [s["source"] for s in answer["kit"]["sources"]][:1] == ["conges.md"]
    assert base not in _received(gw)
    # a document ingested before sources were relative keeps its absolute path in the index: only its name shows
    old = Path(base) / "ancien" / "teletravail.md"
    old.parent.mkdir()
    old.write_text("# Télétravail\n\nLe télétravail est possible deux jours par semaine.\n", encoding="utf-8")
    index = gw.app.state.context.documents.index()
    report = ingest([(old, str(old))], [], settings=gw.settings, index=index)
    try:
        assert index.catalog.document(report.documents[0]).source == "teletravail.md"
        found = _search(gw, "bob", "télétravail deux jours par semaine")["results"]
        assert found and found[0]["source"] == "teletravail.md"
        listed = httpx.get(gw.url + "/v1/documents", headers=gw.headers("bob")).json()["data"]
        assert all(not d["source"].startswith("/") and base not in d["source"] for d in listed)
    finally:
        remove(report.documents[0], gw.settings, index=index)


def test_a_relative_source_is_still_removed_by_its_path(gw: ServerHandle, tmp_path: Path) -> None:
    from kit.documents.ingest import ingest, remove

    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "badge.md").write_text("# Badge\n\nLe badge se retire à l'accueil.\n", encoding="utf-8")
    index = gw.app.state.context.documents.index()
    first = ingest([folder], [], settings=gw.settings, index=index)
    again = ingest([folder], [], settings=gw.settings, index=index)
    assert first.ingested == ["badge.md"] and again.skipped == ["badge.md"]  # same document, not a second one
    removed = remove(str(folder / "badge.md"), gw.settings, index=index)
    assert [r.id for r in removed] == first.documents


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_the_chat_says_when_excerpts_were_withheld(lang: str) -> None:
    from ui.texts import texts
    from ui.views import answer_content

    t = texts(lang)
    answer = {"text": "…", "model": "m", "sources": [],
              "withheld": [{"source": "salaries/licenciement.md", "page": None, "categories": ["FR_NIR"]}]}
    shown = answer_content(answer, t, 1, 1)
    assert t("docs.withheld", n=1, categories=t("pii.categories.FR_NIR")) in shown.replace("&#x27;", "'")
    assert "salaries/licenciement.md" not in shown


def test_an_index_written_before_chunk_lengths_gets_them(tmp_path: Path) -> None:
    """An index of an earlier version has no chunk lengths: they are filled in when it is opened, and a restricted
    caller's scores are then right."""
    import sqlite3

    from kit.documents.query import fts_query, query_words
    from kit.documents.store import Catalog

    public = {"conges.md": (LEAVE, ["public"]), "formation.md": (TRAINING, ["public"])}
    _catalog(tmp_path / "old.db", {**public, "strategie.md": (STRATEGY, ["direction"])}).close()
    with sqlite3.connect(tmp_path / "old.db") as db:
        db.execute("ALTER TABLE chunks DROP COLUMN length")
    alone = _catalog(tmp_path / "alone.db", public)
    old = Catalog(tmp_path / "old.db")
    match = fts_query(query_words("formation continue congés planification"))
    got = {(h.doc_id, h.chunk_index): h.bm25 for h in old.keyword_search(match, 50, None, [])}
    expected = {(h.doc_id, h.chunk_index): h.bm25 for h in alone.keyword_search(match, 50, None, None)}
    assert len(expected) >= 2 and got == pytest.approx(expected, rel=1e-9)
    old.close()
    alone.close()
