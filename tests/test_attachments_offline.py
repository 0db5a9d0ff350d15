"""Nothing leaves the machine with an attached file: `kit serve` runs in a network namespace with loopback
only, while strace records every connect() and program start of it and of the programs it starts (Tesseract,
pdftoppm); a scanned PDF is uploaded (read by OCR) and a chat uses it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import KIT, install_model, write_config

from benchmarks.attachment_files import FRENCH_PAGES, scanned_pdf

pytestmark = [pytest.mark.netns, pytest.mark.slow]

DRIVER = textwrap.dedent('''
    import json, subprocess, sys, time, urllib.request, uuid
    kit, trace, api, pdf = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    quiz = json.loads(sys.argv[5])
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    proc = subprocess.Popen(["strace", "-f", "-qq", "--seccomp-bpf", "-e", "trace=connect,sendto,sendmsg,execve",
                             "-o", trace, kit, "serve", "--port", str(api), "--ctx", "1024", "--parallel", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    base = f"http://127.0.0.1:{api}"
    def call(path, data=None, headers=None, raw=None):
        body = raw if raw is not None else (json.dumps(data).encode() if data is not None else None)
        req = urllib.request.Request(base + path, data=body, headers={"Content-Type": "application/json",
                                                                      "X-Kit-User": "offline", **(headers or {})})
        with urllib.request.urlopen(req, timeout=300) as r:
            return json.loads(r.read().decode())
    result = {"started": False}
    for _ in range(600):
        try:
            call("/health"); result["started"] = True; break
        except Exception:
            if proc.poll() is not None: break
            time.sleep(0.5)
    if result["started"]:
        charter = call("/v1/charter")
        call("/v1/charter/acknowledge", {"version": charter["version"], "quiz_answers": quiz})
        boundary = uuid.uuid4().hex
        form = (f"--{boundary}\\r\\nContent-Disposition: form-data; name=\\"purpose\\"\\r\\n\\r\\nuser_data\\r\\n"
                f"--{boundary}\\r\\nContent-Disposition: form-data; name=\\"file\\"; filename=\\"scan.pdf\\"\\r\\n"
                "Content-Type: application/pdf\\r\\n\\r\\n").encode() + open(pdf, "rb").read()
        form += f"\\r\\n--{boundary}--\\r\\n".encode()
        info = call("/v1/files", raw=form, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        result["file"] = info["kit"]
        answer = call("/v1/chat/completions", {"max_tokens": 8, "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Qui délivre le badge ?"}, {"type": "file", "file": {"file_id": info["id"]}}]}]})
        result["attachments"] = answer["kit"]["attachments"]
    import os, signal
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        result["stderr"] = proc.communicate(timeout=60)[1][-2000:]
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        result["stderr"] = proc.communicate()[1][-2000:]
    print(json.dumps(result))
''')


def _can_unshare() -> bool:
    if not (shutil.which("unshare") and shutil.which("strace") and shutil.which("ip") and shutil.which("tesseract")):
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _can_unshare(), reason="needs unshare -n (root or user namespaces), strace, ip and tesseract")
def test_attachment_with_ocr_offline_in_network_namespace(model_store: Path, tmp_path: Path) -> None:
    home = install_model(model_store, tmp_path / "home")
    cfg = write_config(tmp_path / "kit.yaml")
    from kit.config import load_settings

    quiz = [q.answer for q in load_settings(cfg).policy.quiz]
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER, encoding="utf-8")
    pdf = tmp_path / "scan.pdf"
    pdf.write_bytes(scanned_pdf([FRENCH_PAGES[2]]))
    trace = tmp_path / "trace.log"
    env = {**os.environ, "KIT_HOME": str(home), "KIT_CONFIG": str(cfg)}
    for name in ("HF_HUB_OFFLINE", "GRADIO_ANALYTICS_ENABLED", "HF_HUB_DISABLE_TELEMETRY"):
        env.pop(name, None)  # the product must switch these off by itself
    r = subprocess.run(["unshare", "-n", sys.executable, str(driver), KIT, str(trace), "18010", str(pdf),
                        json.dumps(quiz)], capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["started"], result.get("stderr")
    assert result["file"]["ocr_pages"] == 1 and result["file"]["pages"] == 1, result
    assert result["attachments"][0]["pages_used"] == [1], result
    lines = trace.read_text().splitlines()
    # the trace follows the programs the gateway starts: Tesseract read the page under it
    assert [ln for ln in lines if "execve(" in ln and "tesseract" in ln], "strace did not see Tesseract run"
    inet = [ln for ln in lines if "sa_family=AF_INET" in ln]
    outside = []
    for ln in inet:
        for v4, v6 in re.findall(r'inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)"', ln):
            addr = v4 or v6
            if not (addr.startswith("127.") or addr in ("::1", "::ffff:127.0.0.1")):
                outside.append(ln)
    assert outside == [], "connections to outside addresses:\n" + "\n".join(outside[:20])
    assert not [ln for ln in lines if "htons(53)" in ln]  # no DNS look-up
