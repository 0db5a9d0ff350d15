"""The browser chat against hostile pages: DNS rebinding (Host), cross-site reads and requests (Origin,
Sec-Fetch-Site, Gradio's CORS and token route), the sign-in cookie's flags, and exports tied to the session
that made them. A real gateway and engine, three real chats (Gradio), real HTTP with cookies on 127.0.0.1."""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import ServerHandle, free_port, install_model, start_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

PASSWORD = "mot de passe solide"
EVIL = "https://evil.example"
PUBLIC = "chat.example.org"


class Page:
    """A started chat: its URL and the page object (whose events are called by their index)."""

    def __init__(self, url: str, demo: Any, gateway: ServerHandle) -> None:
        self.url, self.demo, self.gateway = url, demo, gateway
        self.port = int(url.rsplit(":", 1)[1])

    def fn(self, name: str) -> int:
        return next(i for i, f in self.demo.fns.items() if f.name == name)


def _launch(settings: Any, gateway: ServerHandle, **ui: Any) -> Page:
    from ui.app import launch_ui

    # unvalidated on purpose: the page is given exactly these values
    settings = settings.model_copy(update={"ui": settings.ui.model_copy(update=ui)})
    port = free_port()
    demo = launch_ui(settings, gateway.url, host="127.0.0.1", port=port, api_key=gateway.service_key,
                     max_tokens=8, prevent_thread_lock=True, quiet=True)
    return Page(f"http://127.0.0.1:{port}", demo, gateway)


@pytest.fixture(scope="module")
def pages(model_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Page]]:
    """One gateway (with the chat's service key) and three chats: local sign-in reached directly, local
    sign-in behind a TLS proxy on this machine (public name, https), and no sign-in (one machine)."""
    from kit.config import load_settings
    from kit.storage.users import add_user

    base = tmp_path_factory.mktemp("pages")
    home = install_model(model_store, base / "home")
    gateway, stop = start_server(home, base / "kit.yaml", parallel=2, ctx=1024, ui={"auth": "local"})
    settings = load_settings(base / "kit.yaml")
    for user in ("alice", "bob"):
        add_user(home, user, "user", PASSWORD)
    out = {
        "local": _launch(settings, gateway, auth="local", trusted_proxies=["127.0.0.1"]),
        "proxied": _launch(settings, gateway, auth="local", trusted_proxies=["127.0.0.1"],
                           allowed_hosts=[PUBLIC], public_url=f"https://{PUBLIC}"),
        "none": _launch(settings, gateway, auth="none"),
    }
    try:
        yield out
    finally:
        for page in out.values():
            page.demo.close()
        stop()


def _signed_in(page: Page, user: str, **headers: str) -> httpx.Client:
    client = httpx.Client(base_url=page.url, timeout=60, headers=headers)
    r = client.post("/login", data={"username": user, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return client


def _event(client: httpx.Client, page: Page, name: str, data: list[Any]) -> list[Any]:
    """Run one of the page's events as the page's own script does (queue, then the event stream)."""
    session = secrets.token_hex(8)
    r = client.post("/gradio_api/queue/join", json={"data": data, "fn_index": page.fn(name), "session_hash": session,
                                                    "event_data": None, "trigger_id": None})
    assert r.status_code == 200, r.text
    with client.stream("GET", f"/gradio_api/queue/data?session_hash={session}") as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                msg = json.loads(line[5:])
                if msg.get("msg") == "process_completed":
                    assert msg.get("success"), msg
                    return list(msg["output"]["data"])
    raise AssertionError("the event never completed")


def _download_link(output: list[Any]) -> str:
    """The link the page shows for the export, whatever component shows it."""
    for value in output:
        value = value.get("value", value) if isinstance(value, dict) and "__type__" in value else value
        if isinstance(value, dict) and value.get("url"):
            return str(value["url"])
        if isinstance(value, str) and "href=" in value:
            return re.search(r'href="([^"]+)"', value).group(1)  # type: ignore[union-attr]
    raise AssertionError(f"no download link in {output!r}")


def _absolute(page: Page, link: str) -> str:
    return link if link.startswith("http") else f"{page.url}/{link.lstrip('/')}"


# --- the chat: the session token is not readable from another site ----------------------------------------

@pytest.mark.parametrize("origin", [EVIL, "http://localhost:8081", "null"])
def test_session_token_is_not_readable_cross_origin(pages: dict[str, Page], origin: str) -> None:
    page = pages["local"]
    with closing(_signed_in(page, "alice")) as client:
        r = client.get("/gradio_api/token", headers={"Origin": origin})
        assert "access-control-allow-origin" not in r.headers, r.headers
        assert "access-control-allow-credentials" not in r.headers
        token = next(v for k, v in client.cookies.items() if k.startswith("access-token"))
        assert token not in r.text
        assert r.status_code in (403, 404) and r.json()["error"]["message"]
        # the preflight of a credentialed read gets no permission either
        pre = client.options("/gradio_api/queue/join", headers={"Origin": origin,
                                                                "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in pre.headers


def test_behind_the_tls_proxy_token_and_cookies(pages: dict[str, Page]) -> None:
    """The issue's setup: a TLS proxy on this machine passes the public name; a page on evil.example asks
    for the token with the user's cookie."""
    page = pages["proxied"]
    proxied = {"Host": PUBLIC, "X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.7"}
    login = httpx.post(page.url + "/login", data={"username": "alice", "password": PASSWORD}, headers=proxied)
    assert login.status_code == 200
    cookies = login.headers.get_list("set-cookie")
    assert cookies
    for cookie in cookies:
        flags = {p.strip().lower() for p in cookie.split(";")[1:]}
        assert "httponly" in flags and "secure" in flags, cookie
        assert "samesite=lax" in flags or "samesite=strict" in flags, cookie
    sent = "; ".join(c.split(";", 1)[0] for c in cookies)  # what the browser sends back
    token = sent.split("=", 1)[1].split(";", 1)[0]
    r = httpx.get(page.url + "/gradio_api/token", headers={**proxied, "Origin": EVIL, "Cookie": sent})
    assert "access-control-allow-origin" not in r.headers and token not in r.text
    # the page itself, opened at its public address, works
    assert httpx.get(page.url + "/", headers=proxied).status_code == 200
    same = httpx.post(page.url + "/gradio_api/queue/join", headers={**proxied, "Origin": f"https://{PUBLIC}",
                                                                     "Cookie": sent},
                      json={"data": ["fr"], "fn_index": page.fn("export"), "session_hash": "x" * 10})
    assert same.status_code == 200, same.text


def test_sign_in_cookies_are_lax_and_http_only_on_plain_http(pages: dict[str, Page]) -> None:
    page = pages["local"]
    r = httpx.post(page.url + "/login", data={"username": "alice", "password": PASSWORD})
    assert r.status_code == 200
    for cookie in r.headers.get_list("set-cookie"):
        flags = {p.strip().lower() for p in cookie.split(";")[1:]}
        assert "httponly" in flags and "samesite=none" not in flags, cookie
        assert "samesite=lax" in flags or "samesite=strict" in flags, cookie
    # over TLS through the trusted proxy (127.0.0.1 here): Secure
    tls = httpx.post(page.url + "/login", data={"username": "alice", "password": PASSWORD},
                     headers={"X-Forwarded-Proto": "https"})
    assert all("secure" in c.lower() for c in tls.headers.get_list("set-cookie"))


# --- the chat: DNS rebinding ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["local", "none"])
def test_chat_answers_only_to_its_own_names(pages: dict[str, Page], kind: str) -> None:
    page = pages[kind]
    for host in ("evil.example", f"127.attacker.example:{page.port}", f"{PUBLIC}:{page.port}", "127.0.0.1.nip.io"):
        r = httpx.get(page.url + "/", headers={"Host": host})
        assert r.status_code == 421, (host, r.status_code)
        assert "ui.allowed_hosts" in r.json()["error"]["message"]
    for host in (f"127.0.0.1:{page.port}", f"localhost:{page.port}"):
        assert httpx.get(page.url + "/", headers={"Host": host}).status_code == 200, host


def test_rebinding_page_cannot_run_the_history_or_export(pages: dict[str, Page]) -> None:
    page = pages["none"]
    rebound = {"Host": f"kit.attacker.example:{page.port}", "Origin": f"http://kit.attacker.example:{page.port}"}
    for name in ("export", "refresh_history"):
        r = httpx.post(page.url + "/gradio_api/queue/join", headers=rebound,
                       json={"data": ["fr"], "fn_index": page.fn(name), "session_hash": "r" * 10})
        assert r.status_code == 421, (name, r.status_code, r.text[:200])
    # the same page opened at its real address works
    with httpx.Client(base_url=page.url, timeout=60) as client:
        assert _event(client, page, "refresh_history", ["fr"])


# --- the chat: cross-site actions ---------------------------------------------------------------------------

@pytest.mark.parametrize("headers", [{"Origin": EVIL}, {"Origin": "http://localhost:8081"},
                                     {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"},
                                     {"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "cors"}])
def test_chat_refuses_requests_from_other_sites(pages: dict[str, Page], headers: dict[str, str]) -> None:
    page = pages["local"]
    with closing(_signed_in(page, "alice")) as client:
        r = client.post("/gradio_api/queue/join", headers=headers,
                        json={"data": ["fr"], "fn_index": page.fn("export"), "session_hash": "c" * 10})
        assert r.status_code == 403, r.text[:200]
        assert "ui.public_url" in r.json()["error"]["message"]
        # login CSRF: signing the victim into the attacker's account
        assert client.post("/login", headers=headers, data={"username": "bob", "password": PASSWORD}).status_code == 403
        # the page's own requests still work
        own = client.post("/gradio_api/queue/join", headers={"Origin": page.url, "Sec-Fetch-Site": "same-origin"},
                          json={"data": ["fr"], "fn_index": page.fn("export"), "session_hash": "o" * 10})
        assert own.status_code == 200, own.text
    # a link from another site still opens the page
    nav = httpx.get(page.url + "/", headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"})
    assert nav.status_code == 200


# --- the chat: exports belong to the session that made them ---------------------------------------------------

def test_export_download_is_tied_to_its_session_and_deleted(pages: dict[str, Page]) -> None:
    page = pages["local"]
    with closing(_signed_in(page, "alice")) as alice, closing(_signed_in(page, "bob")) as bob, \
            closing(_signed_in(page, "alice")) as alice2:
        link = _absolute(page, _download_link(_event(alice, page, "export", ["fr"])))
        for other in (bob, alice2, httpx.Client(timeout=30)):  # another user, another session of hers, nobody
            r = other.get(link)
            assert r.status_code in (401, 403, 404), (r.status_code, r.text[:200])
            assert '"alice"' not in r.text
        assert alice.head(link).status_code == 405, "a look at the link does not spend it"
        got = alice.get(link)
        assert got.status_code == 200, got.text[:300]
        assert json.loads(got.content)["user"] == "alice"
        assert "attachment" in got.headers.get("content-disposition", "")
        again = alice.get(link)
        assert again.status_code == 404, "a link works once: the file is deleted after the download"
        assert again.json()["error"]["message"]


def test_undownloaded_exports_expire(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    from ui.downloads import Downloads

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    downloads = Downloads(ttl_s=0.3)
    token = downloads.offer(b'{"user": "alice"}', "kit-export.json", frozenset({"session:a"}))
    assert [p.name for p in tmp.rglob("*.json")] == ["kit-export.json"]
    assert oct(next(tmp.rglob("*.json")).stat().st_mode & 0o777) == "0o600"
    assert downloads.take(token, frozenset({"session:b"})) is None, "another session gets nothing"
    deadline = time.monotonic() + 5
    while list(tmp.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(tmp.iterdir()) == [], "an export never downloaded is deleted when its time is over"
    assert downloads.take(token, frozenset({"session:a"})) is None


# --- in Chromium --------------------------------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
ATTACKER_PAGE = """<!doctype html><html><body><script>
window.result = fetch("{target}/gradio_api/token", {{credentials: "include"}})
  .then(r => r.text()).then(t => "read: " + t, e => "refused: " + e);
</script></body></html>"""


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)")
def test_in_chromium_export_reaches_only_its_session_and_other_sites_read_nothing(pages: dict[str, Page]) -> None:
    pytest.importorskip("playwright.sync_api")
    import http.server
    import threading

    from playwright.sync_api import sync_playwright

    from ui.texts import texts

    page = pages["local"]
    page.gateway.acknowledge("alice")
    attacker_html = ATTACKER_PAGE.format(target=page.url).encode()

    class Attacker(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(attacker_html)

        def log_message(self, *args: Any) -> None:
            pass

    attacker = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Attacker)
    threading.Thread(target=attacker.serve_forever, daemon=True).start()
    fr = texts("fr")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            contexts = {}
            for user in ("alice", "bob"):
                ctx = browser.new_context(locale="fr-FR", accept_downloads=True)
                ctx.set_default_timeout(60_000)
                tab = ctx.new_page()
                tab.goto(page.url)
                tab.fill("input[type=text]", user)
                tab.fill("input[type=password]", PASSWORD)
                tab.keyboard.press("Enter")
                tab.wait_for_selector("#kit-gate, #kit-main", state="visible")
                contexts[user] = (ctx, tab)
            ctx, tab = contexts["alice"]
            # a page of another site (localhost is not 127.0.0.1) cannot read alice's token
            tab2 = ctx.new_page()
            tab2.goto(f"http://localhost:{attacker.server_address[1]}/")
            outcome = tab2.evaluate("window.result")
            assert outcome.startswith("refused"), outcome
            # alice exports; the link works for her session only, once
            tab.locator("#kit-tabs").get_by_role("tab", name=fr("history.tab")).click()
            tab.click("#kit-export")
            link = tab.locator("#kit-export-file a")
            link.wait_for(state="visible")
            url = _absolute(page, str(link.get_attribute("href")))
            bob_ctx, _ = contexts["bob"]
            stolen = bob_ctx.request.get(url)
            assert stolen.status == 404 and "alice" not in stolen.text()
            with tab.expect_download() as got:
                link.click()
            data = json.loads(Path(got.value.path()).read_text(encoding="utf-8"))
            assert data["user"] == "alice"
            assert ctx.request.get(url).status == 404, "a link works once"
            browser.close()
    finally:
        attacker.shutdown()


def test_chat_upload_past_the_limit_is_refused_in_both_languages(pages: dict[str, Page]) -> None:
    """A file sent to the chat's own upload with no Content-Length (chunked) is refused past
    ui.max_upload_bytes, with a message in French and English."""
    gateway = pages["local"].gateway
    page = _launch(gateway.settings, gateway, auth="local", max_upload_bytes=200_000)
    try:
        client = _signed_in(page, "alice")

        def chunks() -> Iterator[bytes]:
            yield (b'--kitb\r\nContent-Disposition: form-data; name="files"; filename="gros.md"\r\n'
                   b"Content-Type: text/markdown\r\n\r\n")
            for _ in range(20):
                yield b"a" * 65536
            yield b"\r\n--kitb--\r\n"

        r = client.post("/gradio_api/upload", content=chunks(),
                        headers={"Content-Type": "multipart/form-data; boundary=kitb"})
        assert r.status_code == 413, r.text
        assert "ui.max_upload_bytes" in r.text and "octets" in r.text and "bytes" in r.text, r.text
        small = client.post("/gradio_api/upload", files={"files": ("petit.md", b"# Petit\n\nbonjour")})
        assert small.status_code == 200, small.text
    finally:
        page.demo.close()
