"""The RAG-shaped load of ``kit bench serving --rag``: questions answered from document excerpts.

What staff send once documents are in: a system prompt, excerpts and a question, some 1,500 tokens, for
answers of about 150 tokens. The labelled documents are cut at their articles, into excerpts of about 215
tokens: the search quotes six of them (``top_k``, set in the started kit as ``rag.top_k``), about 1,525
tokens with the system prompt, the rules and the question. Half of the requests are follow-ups on the
same documents: after each question, another question on the excerpts its answer cited ("Y a-t-il des
exceptions ?", "Who should I contact?"), sent with ``"kit": {"sources": [...]}`` (the excerpts named
``document_id:chunk_index``, as the first answer's sources give them), so the pair shares the system prompt
and the excerpts (a prompt cache can reuse them) and only the question differs.

kit gets the questions as a user sends them, with ``"kit": {"documents": true}``: it searches its index
(the labelled documents of ``benchmarks/data/rag/docs``, ingested before it starts), applies the
personal-data policy to the excerpts and quotes them. llama-server gets the same final prompts: the
excerpts kit's own search endpoint returns for each question (``POST /v1/documents/search``, the same search
and policy), quoted by the same code (:mod:`kit.documents.prompt`). Only the delimiters' tag differs (a
keyed hash, whose key each process draws). Those prompts are built by another kit on the same index, stopped
before the measured one starts: the measured kit meets every question and every excerpt for the first time.
Every labelled question is asked once (those the search finds nothing for are left out), and each pass sends
the next ones (``ServingConfig.fresh``), so no round finds its prompts cached from the round before. The run
records the share of follow-ups that share their question's excerpts (``shared``: 1.0) and the prompts' length.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kit.bench.results import data_dir
from kit.bench.serving import Target
from kit.errors import ServerStartError, UsageError

SYSTEM = {"fr": "Tu es un assistant interne. Réponds en français de façon brève et exacte. Si tu ne sais pas, dis-le.",
          "en": "You are an internal assistant. Answer briefly and accurately. If you do not know, say so."}
FOLLOW_UPS = {"fr": ("Y a-t-il des exceptions à cette règle ?", "Quelles sont les démarches à suivre, dans l'ordre ?",
                     "Qui faut-il contacter en cas de doute ?", "Y a-t-il un délai à respecter ?"),
              "en": ("Are there any exceptions to this rule?", "What are the steps to follow, in order?",
                     "Who should I contact if in doubt?", "Is there a deadline to meet?")}


@dataclass
class RagLoad:
    """The requests of the load, in the order they are sent, for kit and for a server without documents."""

    questions: list[tuple[str, str]]  # (language, question as sent)
    top_k: int = 6  # the articles of these documents make excerpts of ~215 tokens: six give ~1,525 in all
    chunk_size: int = 1000  # characters per excerpt at ingest: some 250 tokens of French or English
    final: list[list[dict[str, str]]] = field(default_factory=list)  # filled once kit answers
    excerpts: list[list[str]] = field(default_factory=list)  # ids of each request's excerpts
    dropped: int = 0  # questions left out: the search found no excerpt for them (see ``final_prompts``)
    docs: Path = field(default_factory=lambda: data_dir() / "rag" / "docs")

    def kit_prompts(self) -> list[list[dict[str, str]]]:
        return [[{"role": "system", "content": SYSTEM[lang]}, {"role": "user", "content": q}]
                for lang, q in self.questions]

    def kit_bodies(self) -> list[dict[str, Any]]:
        """Each request's ``kit`` block: a search for a question, its question's excerpts for a follow-up."""
        bodies: list[dict[str, Any]] = []
        for i in range(len(self.questions)):
            named = self.excerpts[i - 1] if i % 2 and i - 1 < len(self.excerpts) else []
            bodies.append({"kit": {"documents": True, "sources": named} if named else {"documents": True}})
        return bodies

    def shared(self) -> float:
        """The share of follow-ups (odd requests) whose excerpts are those of the question before them, among the
        questions for which the search found excerpts (see ``unanswered``)."""
        ex = self.excerpts
        pairs = [(ex[i - 1], ex[i]) for i in range(1, len(ex), 2) if ex[i - 1]]
        return round(sum(1 for a, b in pairs if a == b) / len(pairs), 3) if pairs else 0.0

    def unanswered(self) -> int:
        """Questions (even requests) for which the search found no excerpt above its relevance floor: their prompts
        carry the "no source found" notice instead of excerpts, on both servers alike."""
        return sum(1 for found in self.excerpts[::2] if not found)

    def describe(self) -> dict[str, Any]:
        return {"requests": len(self.questions), "top_k": self.top_k, "follow_ups_sharing_excerpts": self.shared(),
                "questions_without_excerpts": self.dropped,
                "excerpts_per_request": [len(e) for e in self.excerpts],
                "prompt_chars": [sum(len(m["content"]) for m in p) for p in self.final]}


def make_load(requests: int | None = None, seed: int = 0, top_k: int = 6) -> RagLoad:
    """``requests`` questions (default: each labelled question once, with its follow-up): pairs of a labelled
    question and its follow-up, the questions in a fixed random order (answerable ones only: those labelled with
    a document)."""
    path = data_dir() / "rag" / "questions.jsonl"
    try:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the RAG questions {path}: {exc}") from None
    labelled = [r for r in rows if r.get("doc")]
    random.Random(seed).shuffle(labelled)
    questions: list[tuple[str, str]] = []
    requests = 2 * len(labelled) if requests is None else requests
    for i in range((requests + 1) // 2):
        row = labelled[i % len(labelled)]
        lang = "en" if row.get("lang") == "en" else "fr"
        questions.append((lang, row["question"]))
        questions.append((lang, FOLLOW_UPS[lang][i % len(FOLLOW_UPS[lang])]))
    return RagLoad(questions[:requests], top_k=top_k)


def flatten(docs: Path, dest: Path, per_file: int = 2) -> Path:
    """The documents as plain texts, ``per_file`` documents to a file, each section's heading a line of its
    text: the labelled documents are short notes (1 to 2.6 thousand characters), and excerpts of about 250
    tokens (``RagLoad.chunk_size`` characters, whole) are what longer handbooks give."""
    from kit.documents.parsers import PARSERS, parse

    dest.mkdir(parents=True, exist_ok=True)
    texts = []
    for path in sorted(docs.iterdir()):
        if path.suffix.lower() in PARSERS:
            parts = [" — ".join(s.heading) + "\n" + s.text if s.heading else s.text for s in parse(path)]
            texts.append((path.stem, "\n\n".join(parts) + "\n"))
    for start in range(0, len(texts), per_file):
        group = texts[start:start + per_file]
        (dest / f"{'+'.join(stem for stem, _ in group)}.txt").write_text(
            "\n".join(text for _, text in group), encoding="utf-8")
    return dest


def ingest(load: RagLoad, env: dict[str, str]) -> None:
    """Put the documents in the index of the kit about to start (visible to every user), then build the final
    prompts with another kit on that index, stopped before the measured one starts: the measured kit meets each
    question and each excerpt for the first time, as a gateway does with staff's questions (nothing it remembers
    from these searches, such as the excerpts' personal-data scans, helps it)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="kit-rag-load-") as tmp:
        folder = flatten(load.docs, Path(tmp) / "docs")
        env = {**env, "KIT_RAG__CHUNK_SIZE": str(load.chunk_size)}
        done = subprocess.run([sys.executable, "-m", "kit.cli", "docs", "ingest", str(folder)], env=env,
                              capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise ServerStartError(f"the documents could not be ingested for the RAG load: {done.stderr[-800:]}")
    from kit.bench import servers

    port = servers.free_port()
    argv = [sys.executable, "-m", "kit.cli", "serve", "--port", str(port), "--parallel", "1", "--ctx", "2048"]
    headers = {"X-Kit-User": "bench"}
    with servers.running(argv, "kit-prompts", port, env, headers) as helper:
        servers.acknowledge(helper.url, headers, Path(env["KIT_CONFIG"]))
        final_prompts(load, helper)


def final_prompts(load: RagLoad, kit: Target, default_language: str = "fr") -> None:
    """Each request's final prompt as kit builds it, from kit's own search of its documents (the language of the
    quoting as the gateway guesses it, else ``ui.default_language``). A question the search finds no excerpt
    for (below its relevance floor) is left out with its follow-up: its prompt would be a tenth of the load's."""
    import httpx

    from kit.documents.prompt import render, with_documents
    from kit.documents.retrieve import SearchResult
    from kit.documents.text import guess_language

    load.final.clear()
    load.excerpts.clear()
    keys = set(SearchResult.__dataclass_fields__)
    found: dict[str, Any] = {}
    for i, ((_, question), messages) in enumerate(zip(load.questions, load.kit_prompts(), strict=True)):
        if i % 2 == 0 or not found.get("results"):  # a follow-up keeps its question's excerpts
            r = httpx.post(kit.url + "/v1/documents/search", headers=kit.all_headers(), timeout=120,
                           json={"query": question, "k": load.top_k})
            if r.status_code != 200:
                raise ServerStartError(f"kit's document search answered HTTP {r.status_code}: {r.text[:300]}")
            found = r.json()
        results = [SearchResult(**{k: v for k, v in item.items() if k in keys}) for item in found["results"]]
        # a follow-up's excerpts passed the policy already: kit finds none to withhold again
        personal = (found.get("personal_data") or {}) if i % 2 == 0 else {}
        withheld, blocked = personal.get("withheld") or [], personal.get("blocked") or []
        guessed = guess_language(question) or default_language
        context = render(results, "en" if guessed == "en" else "fr", len(withheld), blocked)
        load.final.append(with_documents(messages, context))
        load.excerpts.append([f"{x.document_id}:{x.chunk_index}" for x in results])
    load.dropped = load.unanswered()
    kept = [i + j for i in range(0, len(load.questions), 2) if load.excerpts[i] for j in (0, 1)
            if i + j < len(load.questions)]  # the pairs whose question finds excerpts: prompts of the load's length
    load.questions = [load.questions[i] for i in kept]
    load.final = [load.final[i] for i in kept]
    load.excerpts = [load.excerpts[i] for i in kept]


def for_kit(load: RagLoad) -> Any:
    """The ``ready`` hook of the started kit: its requests (the final prompts for the other servers were built
    before it started, see :func:`ingest`)."""
    def ready(target: Target) -> None:
        target.prompts = load.kit_prompts()
        target.bodies = load.kit_bodies()
    return ready


def for_reference(load: RagLoad) -> Any:
    """The ``ready`` hook of a server given the final prompts (started after kit, which builds them)."""
    def ready(target: Target) -> None:
        if not load.final:
            raise UsageError("the RAG load needs kit started first (--kit): its document search builds the prompts.")
        target.prompts = load.final
    return ready
