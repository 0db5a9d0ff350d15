"""Attached files: extraction speed, long summaries, OCR accuracy.

- Extraction pages/s (``kit.documents.extract.extract``, as ``POST /v1/files`` runs it) of a text PDF and of a
  scanned PDF (pages rendered at 300 dpi from known French text, no text layer: every page goes through
  Tesseract, ``fra+eng``), with the cores given (``--cores``: the process is pinned to them).
- Time to first token and total time of ``"kit": {"task": "summarise"}`` on a 20-page and a 100-page text PDF,
  streamed through the real gateway on 127.0.0.1 with the default model and the default context, and the
  process's peak resident memory during each.
- OCR character accuracy on pages rendered from known French text (accents, numbers, amounts, dates) at 300 and
  at 150 dpi: 1 - (Levenshtein distance / reference length), whitespace collapsed.

    python benchmarks/attachments.py [--cores 2] [--pages 20,100] [--out benchmarks/results/attachments.json]

The model is the catalogue's default (``models.default``), pulled into a temporary $KIT_HOME unless ``--home``
names one where it is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.attachment_files import FRENCH_PAGES, long_pages, page_image, scanned_pdf, text_pdf  # noqa: E402

OCR_TEXT = [
    "Le 14 février 2025, la commune de Saint-Étienne-du-Rouvray a voté un budget de 1 284 530,75 euros. "
    "L'élu délégué à l'équité fiscale a précisé que 62 % des dépenses concernent l'école et la crèche.",
    "Références : arrêté n° 2024-0917 du 3 décembre ; délibération 45/B. Où trouver ces pièces ? À l'accueil, "
    "bâtiment C, du lundi au vendredi de 8 h 45 à 12 h 15. Coût d'une copie : 0,18 € la page.",
    "Garçon, cœur, œuvre, naïf, Noël, façade, théâtre, maïs, août, forêt, dû, aiguë : ces mots portent des "
    "accents et des ligatures que la reconnaissance doit lire sans erreur, comme les nombres 7, 19 et 2038.",
]


def levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def accuracy(reference: str, read: str) -> float:
    ref, got = " ".join(reference.split()), " ".join(read.split())
    return max(0.0, 1 - levenshtein(ref, got) / max(len(ref), 1))


def ocr_accuracy(dpi: int) -> dict[str, Any]:
    import io

    from kit.documents import ocr

    scores = []
    for text in OCR_TEXT:
        out = io.BytesIO()
        page_image(text, dpi).save(out, "PNG", dpi=(dpi, dpi))  # type: ignore[attr-defined]
        scores.append(accuracy(text, ocr.read_image(out.getvalue(), "fra+eng")))
    return {"dpi": dpi, "pages": len(scores), "character_accuracy": round(sum(scores) / len(scores), 4),
            "worst_page": round(min(scores), 4)}


def extraction(kind: str, pages: int, workers: int) -> dict[str, Any]:
    from kit.documents.extract import OcrOptions, extract

    texts = [FRENCH_PAGES[i % len(FRENCH_PAGES)] for i in range(pages)]
    data = text_pdf(long_pages(pages)) if kind == "text" else scanned_pdf(texts)
    started = time.perf_counter()
    found = extract(f"{kind}.pdf", data, OcrOptions(workers=workers), 1000)
    seconds = time.perf_counter() - started
    return {"pdf": kind, "pages": len(found.pages), "ocr_pages": found.ocr_pages, "seconds": round(seconds, 3),
            "pages_per_s": round(len(found.pages) / seconds, 2), "bytes": len(data)}


class PeakRss:
    """The process's resident memory, sampled every 50 ms while a block runs (peak in MiB)."""

    def __enter__(self) -> PeakRss:
        self.peak = self.rss()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    @staticmethod
    def rss() -> float:
        with open("/proc/self/status", encoding="ascii") as fh:
            line = next(ln for ln in fh if ln.startswith("VmRSS:"))
        return int(line.split()[1]) / 1024

    def sample(self) -> None:
        while not self.stop.wait(0.05):
            self.peak = max(self.peak, self.rss())


def summarise(url: str, headers: dict[str, str], pages: int, max_tokens: int) -> dict[str, Any]:
    import httpx

    from kit import sse

    data = text_pdf(long_pages(pages))
    info = httpx.post(url + "/v1/files", headers=headers, files={"file": (f"rapport-{pages}.pdf", data)},
                      data={"purpose": "user_data"}, timeout=600).json()
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "Résume ce rapport."},
                                                      {"type": "file", "file": {"file_id": info["id"]}}]}],
            "stream": True, "max_tokens": max_tokens, "temperature": 0, "kit": {"task": "summarise"}}
    started = time.perf_counter()
    first: float | None = None
    steps = 0
    text = ""
    with PeakRss() as memory, httpx.stream("POST", url + "/v1/chat/completions", headers=headers, json=body,
                                           timeout=3600) as r:
        r.raise_for_status()
        for event in sse.events(r.iter_lines()):
            if event.get("object") == "kit.progress":
                steps = max(steps, event["kit"]["progress"]["total"])
            for choice in event.get("choices", []):
                piece = choice.get("delta", {}).get("content") or ""
                if piece and first is None:
                    first = time.perf_counter() - started
                text += piece
    total = time.perf_counter() - started
    return {"pages": pages, "file_tokens": info["kit"]["tokens"], "steps": steps, "ttft_s": round(first or total, 2),
            "total_s": round(total, 2), "peak_rss_mib": round(memory.peak, 1), "summary_chars": len(text)}


def gateway(home: Path, threads: int) -> tuple[str, dict[str, str], Any]:
    from kit.config import load_settings
    from kit.gateway.app import create_app
    from kit.gateway.local import http_protocol
    from kit.models.runtime import load_engine
    from kit.storage.state import open_state

    config = home.parent / f"{home.name}-etc" / "kit.yaml"  # keys beside the configuration, apart from the data
    config.parent.mkdir(exist_ok=True)
    config.write_text(json.dumps({"deployment": {"purpose": "Mesurer les pièces jointes."},
                                  "server": {"threads": threads, "parallel": 2}}), encoding="utf-8")
    os.environ["KIT_HOME"], os.environ["KIT_CONFIG"] = str(home), str(config)
    settings = load_settings(config)
    state, engine = open_state(settings), load_engine(settings)
    app = create_app(settings, engine, state)
    import socket

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           http=http_protocol(engine)))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    charter = app.state.gate.charter
    headers = {"X-Kit-User": "bench"}
    import httpx

    answers = [q.answer for q in settings.policy.quiz]
    httpx.post(url + "/v1/charter/acknowledge", headers=headers,
               json={"version": charter["version"], "quiz_answers": answers}).raise_for_status()
    return url, headers, (server, engine, state, settings.models.default, engine.n_ctx)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=2, help="Pin the process to this many cores.")
    parser.add_argument("--pages", default="20,100", help="Sizes of the summarised PDFs, in pages.")
    parser.add_argument("--ocr-pages", type=int, default=10, help="Pages of the scanned PDF timed.")
    parser.add_argument("--max-tokens", type=int, default=256, help="max_tokens of each summary step.")
    parser.add_argument("--home", type=Path, default=None, help="A KIT_HOME with the default model installed.")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "attachments.json")
    args = parser.parse_args(argv)
    cores = sorted(os.sched_getaffinity(0))[:args.cores]
    os.sched_setaffinity(0, cores)
    result: dict[str, Any] = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": len(cores),
                                          "python": platform.python_version(),
                                          "load_average_at_start": [round(x, 2) for x in os.getloadavg()]},
                              "command": "python benchmarks/attachments.py " + " ".join(argv or sys.argv[1:])}

    def save() -> None:  # after each part: a long run cut short keeps what it measured
        result["machine"]["load_average_now"] = [round(x, 2) for x in os.getloadavg()]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    result["ocr_accuracy"] = [ocr_accuracy(300), ocr_accuracy(150)]
    print(json.dumps(result["ocr_accuracy"]), flush=True)
    save()
    result["extraction"] = [extraction("text", 100, len(cores)), extraction("scanned", args.ocr_pages, len(cores))]
    print(json.dumps(result["extraction"]), flush=True)
    save()
    with tempfile.TemporaryDirectory(prefix="kit-bench-attach-") as tmp:
        home = args.home or Path(tmp) / "home"
        if args.home is None:
            from kit.config import Settings
            from kit.models.catalog import load_catalog
            from kit.models.fetch import pull

            pull(load_catalog().get(Settings().models.default), home)
        url, headers, (server, engine, state, model, n_ctx) = gateway(home, len(cores))
        result["summaries"] = {"model": model, "ctx": n_ctx, "max_tokens": args.max_tokens, "runs": []}
        for pages in (int(p) for p in args.pages.split(",")):
            run = summarise(url, headers, pages, args.max_tokens)
            print(json.dumps(run), flush=True)
            result["summaries"]["runs"].append(run)
            save()
        result["peak_rss_mib_process"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        server.should_exit = True
        engine.close()
        state.close()
    save()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
