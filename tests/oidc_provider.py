"""A real OpenID Connect provider for the tests: node-oidc-provider (tests/oidc/provider.mjs) started on
loopback, its users in a JSON file the tests rewrite, and a sign-in driven over plain HTTP (httpx) through
its login form, for the tests that need a code, a state or raw tokens rather than a browser."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from helpers import ROOT, free_port

FOLDER = ROOT / "tests" / "oidc"
NODE = shutil.which("node")


def missing() -> str | None:
    """Why the provider cannot run here, or None."""
    if NODE is None:
        return "node is not installed (the identity-provider tests need node 20 or newer)"
    if not (FOLDER / "node_modules" / "oidc-provider").is_dir():
        return "tests/oidc/node_modules is missing: run `npm ci` in tests/oidc (scripts/test.sh does it)"
    return None


class OidcProvider:
    """One provider process; `restart()` starts it again on the same port with a new signing key."""

    def __init__(self, folder: Path, users: dict[str, dict[str, Any]], clients: list[dict[str, Any]]) -> None:
        self.folder, self.port = folder, free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.users_file = folder / "users.json"
        self.config = folder / "provider.json"
        self.log = folder / "provider.log"
        self.users = users
        self.write_users()
        self.config.write_text(json.dumps({"port": self.port, "issuer": self.issuer, "users_file": str(self.users_file),
                                           "clients": clients}), encoding="utf-8")
        self.proc: subprocess.Popen[bytes] | None = None

    def write_users(self) -> None:
        self.users_file.write_text(json.dumps(self.users), encoding="utf-8")

    def set_groups(self, login: str, groups: list[str]) -> None:
        """Change a user's groups at the provider (read again at its next token)."""
        self.users[login]["groups"] = groups
        self.write_users()

    def start(self) -> None:
        """Start the provider (it answers within a second); one that has not answered in 20 s is stopped and
        started again, three times at most (a start was seen to stall, idle, before listening)."""
        assert NODE is not None
        for _ in range(3):
            self.proc = subprocess.Popen([NODE, str(FOLDER / "provider.mjs"), str(self.config)], cwd=FOLDER,
                                         stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
            deadline = time.time() + 20
            while time.time() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(f"the provider exited: {self.log.read_text()[-2000:]}")
                try:
                    if httpx.get(self.issuer + "/.well-known/openid-configuration", timeout=2).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
            self.proc.kill()
            self.proc.wait(timeout=10)
        raise AssertionError(f"the provider did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


def through_provider(client: httpx.Client, url: str, login: str, password: str, back_to: str) -> str:
    """Follow the redirects from `url` through the provider's login form (signing in as `login`) and its consent,
    up to the first address starting with `back_to` (the client's redirect URI), which is returned unvisited."""
    for _ in range(20):
        if url.startswith(back_to):
            return url
        r = client.get(url)
        if r.status_code in (302, 303):
            url = urljoin(url, r.headers["location"])
            continue
        if r.status_code == 200 and 'name="login"' in r.text:
            action = r.text.split('action="', 1)[1].split('"', 1)[0]
            r = client.post(urljoin(url, action), data={"login": login, "password": password})
            assert r.status_code in (302, 303), r.text[:500]
            url = urljoin(url, r.headers["location"])
            continue
        raise AssertionError(f"unexpected answer {r.status_code} from {url}: {r.text[:500]}")
    raise AssertionError("too many redirects")


def chat_sign_in(chat_url: str, login: str, password: str) -> tuple[httpx.Client, str]:
    """A client that signed in to the chat through the provider, and the callback URL it used."""
    client = httpx.Client(follow_redirects=False, timeout=30)
    r = client.get(chat_url + "/auth/oidc/login")
    assert r.status_code in (302, 303), r.text
    callback = through_provider(client, r.headers["location"], login, password, chat_url + "/auth/oidc/callback")
    r = client.get(callback)
    assert r.status_code == 303 and urlsplit(r.headers["location"]).path == "/", (r.status_code, r.text[:800])
    return client, callback
