"""Soak: kit under a steady mixed load for a long while, its memory sampled, every answer checked.

``kit serve`` starts on the default model with every usage rule on (personal-data scan, charter, audit log;
only the abuse limits are off, since one client stands for many users) and the labelled documents of
``benchmarks/data/rag/docs`` ingested. ``--streams`` clients then send, one request after another, a mix
of: chats (the serving prompts), chats with the documents (``"kit": {"documents": true}``), document
searches, personal-data scans, and, where the gateway has ``POST /v1/files``, a chat about an attached file
(uploaded, then referred to in the message; the part is left out, and the run says so, where the gateway
has no such route). Every ``--interval`` seconds the resident memory of every process of the server
(``/proc/PID/status`` VmRSS, the process and its children) is recorded.

At the end: requests and errors by kind (an error is any answer other than 200 or a stream that does not
end with a finish reason), the memory curve with its first, highest and last value and the growth over the
second half of the run, and ``kit audit verify`` on the server's audit log (the keyed hash chain intact).

    python benchmarks/soak.py [--minutes 30] [--streams 4] [--interval 10] [--max-tokens 64]
                              [--out benchmarks/results/soak.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.footprint import descendants, rss_bytes  # noqa: E402

DEFAULT_OUT = ROOT / "benchmarks" / "results" / "soak.json"
ATTACHMENT = ("Note de service\n\nObjet : fermeture du service le vendredi 12 après-midi.\n\nLes agents sont priés "
              "de poser leurs congés dans l'outil de gestion du temps avant mercredi. Le standard sera renvoyé "
              "vers l'accueil du bâtiment B. Pour toute question, s'adresser au secrétariat général.\n")
KINDS = ("chat", "chat_documents", "search", "scan", "attachment")


class Soak:
    """The clients' shared state: what was sent, what failed, the questions and prompts."""

    def __init__(self, url: str, headers: dict[str, str], max_tokens: int) -> None:
        from kit.bench.ragload import make_load
        from kit.bench.serving import load_prompts

        self.url, self.headers, self.max_tokens = url, headers, max_tokens
        self.prompts = load_prompts()
        self.questions = make_load(40).kit_prompts()
        self.sent: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.samples: list[str] = []
        self.attachments = True
        self.model = "default"

    def fail(self, kind: str, why: str) -> None:
        self.errors[kind] += 1
        if sum(1 for x in self.samples if x.startswith(kind + ":")) < 3:  # the first three of each kind
            self.samples.append(f"{kind}: {why[:300]}")

    async def chat(self, client: Any, kind: str, messages: list[dict[str, Any]], extra: dict[str, Any]) -> None:
        from kit.bench.serving import Target, one_request

        target = Target(name="kit", url=self.url, headers=self.headers)
        record = await one_request(client, target, self.model, messages, self.max_tokens, extra)
        if not record.ok:
            self.fail(kind, f"{record.error_kind}: {record.error}")

    async def post(self, client: Any, kind: str, path: str, body: dict[str, Any]) -> None:
        r = await client.post(self.url + path, json=body, headers=self.headers)
        if r.status_code != 200:
            self.fail(kind, f"HTTP {r.status_code} {r.text[:200]}")

    async def attachment(self, client: Any, rng: random.Random) -> None:
        files = {"file": (f"note-{rng.randrange(10**6)}.txt", ATTACHMENT.encode(), "text/plain")}
        r = await client.post(self.url + "/v1/files", files=files, data={"purpose": "user_data"},
                              headers=self.headers)
        if r.status_code in (404, 405):
            self.attachments = False  # this gateway has no attachments: that part of the mix is left out
            return
        if r.status_code != 200:
            self.fail("attachment", f"upload: HTTP {r.status_code} {r.text[:200]}")
            return
        content = [{"type": "text", "text": "Résume ce document en deux phrases."},
                   {"type": "file", "file": {"file_id": r.json()["id"]}}]
        await self.chat(client, "attachment", [{"role": "user", "content": content}], {})
        await client.delete(self.url + f"/v1/files/{r.json()['id']}", headers=self.headers)

    async def one(self, client: Any, rng: random.Random) -> None:
        kinds = [k for k in KINDS if k != "attachment" or self.attachments]
        kind = rng.choice(kinds)
        self.sent[kind] += 1
        try:
            if kind == "chat":
                await self.chat(client, kind, rng.choice(self.prompts), {})
            elif kind == "chat_documents":
                await self.chat(client, kind, rng.choice(self.questions), {"kit": {"documents": True}})
            elif kind == "search":
                question = rng.choice(self.questions)[-1]["content"]
                await self.post(client, kind, "/v1/documents/search", {"query": question, "k": 5})
            elif kind == "scan":
                await self.post(client, kind, "/v1/privacy/scan", {"text": "Écrire à Marie Dupont, marie.dupont@"
                                                                   f"exemple.fr, dossier {rng.randrange(10**6)}."})
            else:
                await self.attachment(client, rng)
        except Exception as exc:  # noqa: BLE001 - every failure of the server is what a soak counts
            self.fail(kind, f"{type(exc).__name__}: {exc}")

    async def run(self, streams: int, seconds: float) -> None:
        import httpx

        from kit.bench.serving import Target, model_id

        deadline = time.monotonic() + seconds
        async with httpx.AsyncClient(timeout=600) as client:
            self.model = await model_id(client, Target(name="kit", url=self.url, headers=self.headers))
            async def stream(n: int) -> None:
                rng = random.Random(n)
                while time.monotonic() < deadline:
                    await self.one(client, rng)

            await asyncio.gather(*[stream(n) for n in range(streams)])


def sample_memory(pid: int) -> dict[str, int]:
    return {str(p): rss_bytes(p) for p in descendants(pid)}


def prompt_cache_mb(url: str, headers: dict[str, str]) -> float | None:
    """What the engine's host-memory prompt cache holds now (``kit_prompt_cache_bytes``; bounded by
    ``server.prompt_cache_mb``): the part of the memory that grows by design until the cache is full."""
    import httpx

    try:
        text = httpx.get(url + "/metrics", headers=headers, timeout=10).text
    except httpx.HTTPError:
        return None
    for line in text.splitlines():
        if line.startswith("kit_prompt_cache_bytes "):
            return round(float(line.split()[1]) / 2**20, 1)
    return None


def summary(curve: list[dict[str, Any]]) -> dict[str, Any]:
    """First, highest and last total; growth over the second half, in all and outside the prompt cache."""
    totals = [c["total_mb"] for c in curve]
    half = curve[len(curve) // 2:]
    growth = half[-1]["total_mb"] - half[0]["total_mb"] if len(half) > 1 else 0.0
    span = (half[-1]["t_s"] - half[0]["t_s"]) / 60 if len(half) > 1 else 0.0
    cache = [c.get("prompt_cache_mb") for c in (half[0], half[-1])] if len(half) > 1 else [None, None]
    other = None if None in cache else growth - (cache[1] - cache[0])  # type: ignore[operator]
    return {"first_mb": totals[0], "max_mb": max(totals), "last_mb": totals[-1],
            "second_half_growth_mb": round(growth, 1),
            "second_half_growth_mb_per_min": round(growth / span, 2) if span else None,
            "prompt_cache_last_mb": curve[-1].get("prompt_cache_mb"),
            "second_half_growth_outside_prompt_cache_mb": None if other is None else round(other, 1)}


def main(argv: list[str] | None = None) -> None:
    from kit.bench import ragload
    from kit.bench.inputs import packaged_default
    from kit.bench.machine import machine_info
    from kit.bench.servers import NO_LIMITS, kit_server

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--interval", type=float, default=10.0, help="Seconds between memory samples.")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    model = packaged_default()
    threads = args.threads or os.cpu_count() or 1
    environ: dict[str, str] = {}
    load = ragload.make_load(2)

    def prepare(env: dict[str, str]) -> None:
        environ.update(env)
        ragload.ingest(load, env)

    config = {"limits": {"user": dict(NO_LIMITS), "admin": dict(NO_LIMITS)}}
    machine = machine_info(model)
    with kit_server(model, threads, max(args.streams, 4), 2048, config, prepare=prepare) as target:
        assert target.pid is not None
        soak = Soak(target.url, target.all_headers(), args.max_tokens)
        curve: list[dict[str, Any]] = []
        t0 = time.monotonic()

        def record() -> None:
            per = sample_memory(target.pid)  # type: ignore[arg-type]
            curve.append({"t_s": round(time.monotonic() - t0, 1), "total_mb": round(sum(per.values()) / 2**20, 1),
                          "prompt_cache_mb": prompt_cache_mb(target.url, target.all_headers()),
                          "processes_mb": {p: round(v / 2**20, 1) for p, v in per.items()}})

        async def sampled() -> None:
            async def sampler() -> None:
                while time.monotonic() - t0 < args.minutes * 60:
                    record()
                    await asyncio.sleep(args.interval)
            await asyncio.gather(sampler(), soak.run(args.streams, args.minutes * 60))

        record()
        asyncio.run(sampled())
        record()
        duration = time.monotonic() - t0
        # the server's home goes when it stops: its audit log is checked while it still runs
        verify = subprocess.run([sys.executable, "-m", "kit.cli", "audit", "verify"], env=environ,
                                capture_output=True, text=True, timeout=600)
    result = {
        "benchmark": "soak", "machine": machine, "minutes": round(duration / 60, 2), "streams": args.streams,
        "max_tokens": args.max_tokens, "threads": threads,
        "attachments": "sent" if soak.attachments else "left out: this gateway has no POST /v1/files",
        "requests": dict(soak.sent), "errors": dict(soak.errors), "error_samples": soak.samples,
        "memory": summary(curve), "curve": curve,
        "audit_verify": {"ok": verify.returncode == 0, "output": (verify.stdout + verify.stderr).strip()[-500:]},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps({k: result[k] for k in ("minutes", "requests", "errors", "memory", "attachments")}, indent=2))
    print("audit:", result["audit_verify"]["output"])
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
