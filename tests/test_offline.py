"""Nothing leaves the machine: the whole stack (`kit up`: API, engine, personal-data filter, browser
chat) runs in a network namespace with loopback only, with a document ingest before it and a chat with
sources through it, while strace records every connect()."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import KIT, install_model, write_config

pytestmark = [pytest.mark.netns, pytest.mark.slow]

DRIVER = textwrap.dedent('''
    import json, os, subprocess, sys, time, urllib.request
    kit, trace, api, ui = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    doc, ingest_trace = sys.argv[5], sys.argv[6]
    ingest = subprocess.run(["strace", "-f", "-qq", "--seccomp-bpf", "-e", "trace=connect,sendto,sendmsg", "-o",
                             ingest_trace, kit, "docs", "ingest", doc], capture_output=True, text=True)
    proc = subprocess.Popen(["strace", "-f", "-qq", "--seccomp-bpf", "-e", "trace=connect,sendto,sendmsg", "-o", trace,
                             kit, "up", "--port", str(ui), "--api-port", str(api)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    def get(url, data=None, headers=None):
        req = urllib.request.Request(url, data=json.dumps(data).encode() if data is not None else None,
                                     headers={"Content-Type": "application/json", **(headers or {})})
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.read().decode()
    ok = False
    for _ in range(600):
        try:
            get(f"http://127.0.0.1:{api}/health"); get(f"http://127.0.0.1:{ui}/"); ok = True; break
        except Exception:
            if proc.poll() is not None: break
            time.sleep(0.5)
    result = {"started": ok}
    if ok:
        h = {"X-Kit-User": "offline"}
        charter = json.loads(get(f"http://127.0.0.1:{api}/v1/charter", headers=h))
        get(f"http://127.0.0.1:{api}/v1/charter/acknowledge", {"version": charter["version"],
            "quiz_answers": json.loads(os.environ["QUIZ"])}, h)
        answer = json.loads(get(f"http://127.0.0.1:{api}/v1/chat/completions", {"messages": [{"role": "user",
            "content": "Write to paul.durand@exemple.fr and see https://www.service-public.fr"}], "max_tokens": 8}, h))
        result["answer"] = answer["choices"][0]["message"]["content"]
        result["pii"] = answer["kit"]["personal_data"]["categories"]
        result["page"] = len(get(f"http://127.0.0.1:{ui}/"))
        answer = json.loads(get(f"http://127.0.0.1:{api}/v1/chat/completions", {"messages": [{"role": "user",
            "content": "Qui délivre le badge de parking du personnel ?"}], "max_tokens": 8,
            "kit": {"documents": True}}, h))
        result["sources"] = [src["source"] for src in answer["kit"]["sources"]]
    result["ingest"] = [ingest.returncode, ingest.stdout[-1000:], ingest.stderr[-2000:]]
    import signal
    os.killpg(proc.pid, signal.SIGTERM)  # strace, kit up and the gateway it started
    try:
        result["stderr"] = proc.communicate(timeout=60)[1][-2000:]
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        result["stderr"] = proc.communicate()[1][-2000:]
    print(json.dumps(result))
''')


def _can_unshare() -> bool:
    if not (shutil.which("unshare") and shutil.which("strace") and shutil.which("ip")):
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _can_unshare(), reason="needs unshare -n (root or user namespaces), strace and ip")
def test_whole_stack_offline_in_network_namespace(model_store: Path, tmp_path: Path) -> None:
    import json

    home = install_model(model_store, tmp_path / "home")
    cfg = write_config(tmp_path / "kit.yaml")
    from kit.config import load_settings

    quiz = [q.answer for q in load_settings(cfg).policy.quiz]
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER, encoding="utf-8")
    trace, ingest_trace = tmp_path / "trace.log", tmp_path / "ingest-trace.log"
    doc = tmp_path / "stationnement.md"
    doc.write_text("# Stationnement\n\n## Badge de parking\n\nLe badge de parking du personnel est délivré par "
                   "le service logistique, sur demande écrite.\n", encoding="utf-8")
    env = {**os.environ, "KIT_HOME": str(home), "KIT_CONFIG": str(cfg), "QUIZ": json.dumps(quiz)}
    for name in ("HF_HUB_OFFLINE", "GRADIO_ANALYTICS_ENABLED", "HF_HUB_DISABLE_TELEMETRY"):
        env.pop(name, None)  # the product must switch these off by itself
    r = subprocess.run(["unshare", "-n", sys.executable, str(driver), KIT, str(trace), "18000", "17860", str(doc),
                        str(ingest_trace)],
                       capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["started"], result.get("stderr")
    assert result["answer"] and "EMAIL_ADDRESS" in result["pii"] and result["page"] > 1000
    assert result["ingest"][0] == 0, result["ingest"]  # `kit docs ingest`: embeds and indexes offline
    assert result["sources"] and result["sources"][0].endswith("stationnement.md"), result  # a chat with sources
    lines = trace.read_text().splitlines() + ingest_trace.read_text().splitlines()
    inet = [ln for ln in lines if "sa_family=AF_INET" in ln]
    assert inet, "strace saw no connection at all: the trace is not working"
    outside = []
    for ln in inet:
        addrs = re.findall(r'inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)"', ln)
        for v4, v6 in addrs:
            addr = v4 or v6
            if not (addr.startswith("127.") or addr in ("::1", "::ffff:127.0.0.1")):
                outside.append(ln)
    assert outside == [], "connections to outside addresses:\n" + "\n".join(outside[:20])
    # DNS look-ups would show as connect()s to a resolver on port 53: none may happen
    assert not [ln for ln in lines if "htons(53)" in ln]


def test_fastapi_telemetry_stays_off_even_when_the_environment_asks(tmp_path: Path) -> None:
    """FastAPI records a span for each request whenever an OpenTelemetry provider is set up in the process
    (by the environment, an auto-instrumentation wrapper or a library), and adds OTLP exporters when
    FASTAPI_OTEL_AUTO_CONFIGURE=true. kit's apps turn that off: a provider set up before them records
    nothing of their requests, while a plain FastAPI app in the same process is recorded (the check works)."""
    script = textwrap.dedent("""
        import os
        os.environ["FASTAPI_OTEL_AUTO_CONFIGURE"] = "true"
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        from fastapi import FastAPI
        from fastapi.testclient import TestClient
        from kit.gateway.engine_api import create_engine_app

        class Engine:
            model_name, model_sha256, n_ctx = "m", "", 1024
            def is_ready(self):
                return True

        plain = FastAPI()
        plain.get("/health")(lambda: {"ok": True})
        assert TestClient(plain).get("/health").status_code == 200
        seen = len(exporter.get_finished_spans())
        ours = create_engine_app(Engine(), api_key=None, name="t")
        for _ in range(3):
            assert TestClient(ours).get("/health").status_code == 200
        print(seen, len(exporter.get_finished_spans()) - seen, os.environ["FASTAPI_OTEL_AUTO_CONFIGURE"])
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if k != "OTEL_SDK_DISABLED"})
    assert done.returncode == 0, done.stderr[-2000:]
    plain_spans, our_spans, auto = done.stdout.split()
    import fastapi

    if hasattr(fastapi, "telemetry"):  # FastAPI versions with native telemetry
        assert int(plain_spans) > 0
    assert int(our_spans) == 0 and auto == "false"
