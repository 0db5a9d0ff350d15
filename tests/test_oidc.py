"""Sign-in with an OpenID Connect provider (ui.auth: oidc) and its access tokens at the gateway
(server.oidc_bearer), against a real provider: node-oidc-provider started on loopback once for the module,
with users in different groups. The chat and the gateway are the real ones (the engine echoes what it
receives, so that the documents a user's groups let through show in the answer)."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from echo_engine import start_echo_gateway
from helpers import free_port
from oidc_provider import OidcProvider, chat_sign_in, missing, through_provider

# slow: each module starts a real OpenID provider (node), a gateway and the chat; the claim mapping
# without a provider is in test_oidc_claims.py, among the fast tests.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600),
              pytest.mark.skipif(missing() is not None, reason=str(missing()))]

SECRET = "chat-secret-" + "x" * 24
API = "https://kit.example/api"
APP_BACK = "http://127.0.0.1:9/app-callback"  # a client's redirect URI that the tests stop at, unvisited
ALICE, BOB = "alice@agents.example.fr", "bob@agents.example.fr"
USERS = {
    "alice": {"password": "pw-alice", "email": ALICE, "groups": ["rh"], "roles": []},
    "bob": {"password": "pw-bob", "email": BOB, "groups": ["finance"], "roles": ["kit-auditors"]},
    "eve": {"password": "pw-eve", "email": "eve@elsewhere.example", "groups": ["rh"], "roles": []},
}
PAYROLL = "# Paie\n\nLe bulletin de paie des agents est versé le vingt-huit du mois par le service ornithorynque.\n"
BUDGET = "# Budget\n\nLe budget primitif de la collectivité est voté en mars par le conseil pélican.\n"


class Stack:
    def __init__(self, provider: OidcProvider, gateway: Any, chat: str, signin: Any, oidc: Any) -> None:
        self.provider, self.gateway, self.chat, self.signin, self.oidc = provider, gateway, chat, signin, oidc


def _client(client_id: str, back: str, secret: str) -> dict[str, Any]:
    return {"client_id": client_id, "client_secret": secret, "redirect_uris": [back],
            "post_logout_redirect_uris": [back.rsplit("/auth/", 1)[0] + "/"],
            "grant_types": ["authorization_code", "refresh_token"]}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from starlette.middleware import Middleware

    from kit.config import load_settings
    from kit.documents.ingest import ingest
    from ui.app import launch_ui
    from ui.oidc import OidcGate

    base = tmp_path_factory.mktemp("oidc")
    chat = f"http://127.0.0.1:{free_port()}"
    provider = OidcProvider(base, {k: dict(v) for k, v in USERS.items()}, [
        _client("kit-chat", chat + "/auth/oidc/callback", SECRET),
        _client("other-app", APP_BACK, "other-secret-" + "y" * 20),
        _client("kit-app", APP_BACK, "app-secret-" + "z" * 20),
    ])
    provider.start()
    secret = base / "client.secret"
    secret.write_text(SECRET + "\n", encoding="utf-8")
    secret.chmod(0o600)
    ui = {"auth": "oidc", "oidc": {
        "issuer": provider.issuer, "client_id": "kit-chat", "client_secret_file": str(secret),
        "scopes": ["openid", "email", "profile", "groups", "roles"], "user_claim": "email", "groups_claim": "groups",
        "role_claim": "roles", "roles": {"kit-auditors": "auditor", "kit-admins": "admin"},
        "allowed_domains": ["agents.example.fr"], "redirect_url": chat + "/auth/oidc/callback",
        "api_audience": API, "refresh_minutes": 0.05}}
    old = os.environ.get("KIT_HOME")
    gateway, stop = start_echo_gateway(base / "home", base / "kit.yaml", ui=ui, server={"oidc_bearer": True})
    folder = base / "partage"
    folder.mkdir()
    (folder / "paie.md").write_text(PAYROLL, encoding="utf-8")
    (folder / "budget.md").write_text(BUDGET, encoding="utf-8")
    index = gateway.app.state.context.documents.index()
    assert ingest([folder / "paie.md"], ["rh"], settings=gateway.settings, index=index).ok
    assert ingest([folder / "budget.md"], ["finance"], settings=gateway.settings, index=index).ok
    for user in (ALICE, BOB):
        gateway.acknowledge(user)
    settings = load_settings(base / "kit.yaml")
    port = int(chat.rsplit(":", 1)[1])
    demo = launch_ui(settings, gateway.url, host="127.0.0.1", port=port, api_key=gateway.service_key,
                     max_tokens=16, prevent_thread_lock=True, quiet=True)
    gate = next(m for m in demo.app.user_middleware if isinstance(m, Middleware) and m.cls is OidcGate)
    try:
        yield Stack(provider, gateway, chat, gate.kwargs["signin"], settings.ui.oidc)
    finally:
        demo.close()
        stop()
        provider.stop()
        if old is not None:
            os.environ["KIT_HOME"] = old


def _session(stack: Stack, client: httpx.Client) -> tuple[str, Any]:
    from ui.oidc import COOKIE

    token = client.cookies.get(COOKIE)
    assert token, dict(client.cookies)
    session = stack.signin.sessions.check(token, touch=False)
    assert session is not None
    return token, session


def _search(stack: Stack, who: Any, query: str) -> str:
    """A document search made as the chat makes it for `who` (its service key and identity headers)."""
    from ui.client import GatewayClient

    headers = GatewayClient(stack.gateway.url, stack.gateway.service_key).headers(who)
    r = httpx.post(stack.gateway.url + "/v1/documents/search", headers=headers, json={"query": query, "k": 5},
                   timeout=120)
    assert r.status_code == 200, r.text
    return r.text


def _provider_tokens(stack: Stack, client_id: str, secret: str, login: str,
                     extra: str = "") -> tuple[Any, dict[str, Any], str]:
    """A kit Provider for `client_id`, the tokens a real sign-in as `login` gave it, and the sign-in's nonce."""
    from kit.oidc.provider import Provider, pkce_pair

    oidc = stack.oidc.model_copy(update={"client_id": client_id})
    back = stack.chat + "/auth/oidc/callback" if client_id == "kit-chat" else APP_BACK  # reached, never visited
    p = Provider(oidc, back, secret=secret)
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    verifier, challenge = pkce_pair()
    with httpx.Client(follow_redirects=False, timeout=30) as http:
        answer = through_provider(http, p.authorization_url(state, nonce, challenge) + extra, login,
                                  USERS[login]["password"], back)
    query = parse_qs(urlsplit(answer).query)
    assert query["state"] == [state], answer
    return p, p.exchange(query["code"][0], verifier), nonce


def _rogue_token(claims: dict[str, Any], kid: str) -> str:
    from joserfc import jwt
    from joserfc.jwk import RSAKey

    key = RSAKey.generate_key(2048, parameters={"kid": kid})
    return jwt.encode({"alg": "RS256", "kid": kid}, claims, key)


# --- sign-in over HTTP ---------------------------------------------------------------------------------


def test_sign_in_maps_claims_to_user_role_and_groups_and_audits_a_pseudonym(stack: Stack) -> None:
    r = httpx.get(stack.chat + "/", timeout=30)
    assert r.status_code == 303 and r.headers["location"] == "/auth/oidc/login"
    r = httpx.get(stack.chat + "/auth/oidc/login", timeout=30)
    assert r.status_code in (302, 303)
    query = parse_qs(urlsplit(r.headers["location"]).query)
    assert r.headers["location"].startswith(stack.provider.issuer + "/auth?")
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert query["state"][0] and query["nonce"][0] and query["client_id"] == ["kit-chat"]

    alice, _ = chat_sign_in(stack.chat, "alice", "pw-alice")
    bob, _ = chat_sign_in(stack.chat, "bob", "pw-bob")
    _, a = _session(stack, alice)
    _, b = _session(stack, bob)
    assert (a.user, a.role, a.groups) == (ALICE, "user", ("rh",))
    assert (b.user, b.role, b.groups) == (BOB, "auditor", ("finance",))
    assert alice.get(stack.chat + "/").status_code == 200  # the page, signed in

    from ui.client import Who

    seen_by_alice = _search(stack, Who(a.user, a.role, a.groups), "bulletin de paie ornithorynque")
    seen_by_bob = _search(stack, Who(b.user, b.role, b.groups), "bulletin de paie ornithorynque")
    assert "paie.md" in seen_by_alice and "budget.md" not in seen_by_alice
    assert "paie.md" not in seen_by_bob

    audit = stack.gateway.state.audit
    logins = [row for row in audit.rows(action="login") if row.detail.get("via") == "oidc"]
    assert {row.user for row in logins} >= {audit.pseudonym(ALICE), audit.pseudonym(BOB)}
    assert all("@" not in row.user for row in logins)
    assert any(row.detail.get("role") == "auditor" and row.detail.get("groups") == 1 for row in logins)


def test_a_domain_not_allowed_is_refused_and_audited(stack: Stack) -> None:
    client = httpx.Client(follow_redirects=False, timeout=30)
    r = client.get(stack.chat + "/auth/oidc/login")
    callback = through_provider(client, r.headers["location"], "eve", "pw-eve", stack.chat + "/auth/oidc/callback")
    r = client.get(callback)
    assert r.status_code == 401 and "allowed_domains" in r.text and "Connexion refusée" in r.text
    assert "access-token-kit" not in r.headers.get("set-cookie", "").split("=", 1)[0] or "Max-Age=0" in r.text
    failed = list(stack.gateway.state.audit.rows(action="login_failed"))
    assert any("allowed_domains" in str(row.detail.get("reason")) for row in failed)


def test_a_forged_state_and_a_state_of_another_browser_are_refused(stack: Stack) -> None:
    from ui.oidc import COOKIE

    client = httpx.Client(follow_redirects=False, timeout=30)
    client.get(stack.chat + "/auth/oidc/login")  # holds a login cookie, but not this state
    r = client.get(stack.chat + "/auth/oidc/callback", params={"state": "made-up", "code": "anything"})
    assert r.status_code == 401 and "state" in r.text and COOKIE not in client.cookies

    # an answer naming another provider as its issuer (RFC 9207, mix-up)
    state = parse_qs(urlsplit(client.get(stack.chat + "/auth/oidc/login").headers["location"]).query)["state"][0]
    r = client.get(stack.chat + "/auth/oidc/callback", params={"state": state, "code": "x", "iss": "https://evil.example"})
    assert r.status_code == 401 and "another identity provider" in r.text and COOKIE not in client.cookies

    # login CSRF: a sign-in started by another browser, finished in this one
    other = httpx.Client(follow_redirects=False, timeout=30)
    started = other.get(stack.chat + "/auth/oidc/login").headers["location"]
    callback = through_provider(client, started, "alice", "pw-alice", stack.chat + "/auth/oidc/callback")
    r = client.get(callback)
    assert r.status_code == 401 and "another browser" in r.text and COOKIE not in client.cookies


def test_a_replayed_code_is_refused(stack: Stack) -> None:
    from ui.oidc import COOKIE

    _, callback = chat_sign_in(stack.chat, "alice", "pw-alice")
    again = httpx.Client(follow_redirects=False, timeout=30)
    r = again.get(callback)  # the same answer of the provider a second time
    assert r.status_code == 401 and COOKIE not in again.cookies
    # the code with a fresh state of this browser: the provider itself refuses a used code
    fresh = parse_qs(urlsplit(again.get(stack.chat + "/auth/oidc/login").headers["location"]).query)["state"][0]
    code = parse_qs(urlsplit(callback).query)["code"][0]
    r = again.get(stack.chat + "/auth/oidc/callback", params={"state": fresh, "code": code})
    assert r.status_code == 401 and "invalid_grant" in r.text and COOKIE not in again.cookies


def test_tokens_signed_by_another_key_expired_or_for_another_audience_are_refused(stack: Stack) -> None:
    from kit.errors import SignInError

    p, tokens, nonce = _provider_tokens(stack, "kit-chat", SECRET, "alice")
    claims = p.verify_id_token(tokens["id_token"], nonce)
    assert claims["sub"] == "alice"
    with pytest.raises(SignInError, match="nonce"):
        p.verify_id_token(tokens["id_token"], "another-nonce")
    # signed by another key: an unknown key id, and the provider's own key id on a forged signature
    now = int(time.time())
    forged = {"iss": stack.provider.issuer, "aud": "kit-chat", "sub": "alice", "iat": now, "exp": now + 600,
              "nonce": nonce, "email": ALICE, "groups": ["rh", "finance"]}
    with pytest.raises(SignInError, match="does not publish"):
        p.verify_id_token(_rogue_token(forged, "rogue"), nonce)
    real_kid = p.keys().keys[0].kid
    with pytest.raises(SignInError, match="signature"):
        p.verify_id_token(_rogue_token(forged, real_kid), nonce)
    # expired: the same real token, read two hours later (beyond the clock skew)
    late = type(p)(p.oidc, p.redirect_url, secret=SECRET, clock=lambda: time.time() + 7200)
    with pytest.raises(SignInError, match="expired"):
        late.verify_id_token(tokens["id_token"], nonce)
    # another audience: an ID token issued to another client of the same provider
    _, others, other_nonce = _provider_tokens(stack, "other-app", "other-secret-" + "y" * 20, "alice")
    with pytest.raises(SignInError, match="aud"):
        p.verify_id_token(others["id_token"], other_nonce)


def test_access_tokens_as_bearer_tokens_at_the_gateway(stack: Stack) -> None:
    from kit.errors import SignInError
    from kit.storage.keys import create_key

    secret = "app-secret-" + "z" * 20
    url = stack.gateway.url + "/v1/documents/search"
    body = {"query": "budget primitif pélican bulletin de paie", "k": 5}
    app, tokens, _ = _provider_tokens(stack, "kit-app", secret, "bob", extra="&resource=" + API)
    access = tokens["access_token"]
    assert access.count(".") == 2  # a JWT for the API's audience
    r = httpx.post(url, headers={"Authorization": f"Bearer {access}"}, json=body, timeout=120)
    assert r.status_code == 200, r.text
    assert "budget.md" in r.text and "paie.md" not in r.text  # bob's group only
    me = httpx.get(stack.gateway.url + "/v1/me", headers={"Authorization": f"Bearer {access}"}, timeout=30).json()
    assert (me["user"], me["role"], me["via"]) == (BOB, "auditor", "oidc")

    _, others, _ = _provider_tokens(stack, "kit-app", secret, "bob", extra="&resource=https://other.example/api")
    r = httpx.post(url, headers={"Authorization": f"Bearer {others['access_token']}"}, json=body, timeout=120)
    assert r.status_code == 401 and "aud" in r.json()["error"]["message"]
    now = int(time.time())
    forged = {"iss": stack.provider.issuer, "aud": API, "sub": "bob", "exp": now + 600, "email": BOB,
              "groups": ["rh"], "roles": ["kit-admins"]}
    r = httpx.post(url, headers={"Authorization": f"Bearer {_rogue_token(forged, 'rogue')}"}, json=body, timeout=120)
    assert r.status_code == 401, r.text
    with pytest.raises(SignInError, match="expired"):
        type(app)(stack.oidc, clock=lambda: time.time() + 7200).verify_access_token(access)

    key, _ = create_key(stack.gateway.settings, "an-application", "user", acknowledge=True)  # API keys still work
    r = httpx.get(stack.gateway.url + "/v1/documents", headers={"Authorization": f"Bearer {key}"}, timeout=60)
    assert r.status_code == 200, r.text
    for caller in (key, access):  # only the chat's service key reports sign-ins to the audit log
        r = httpx.post(stack.gateway.url + "/v1/auth/oidc", headers={"Authorization": f"Bearer {caller}"},
                       json={"event": "login"}, timeout=30)
        assert r.status_code == 401, r.text


def test_a_group_removed_at_the_provider_is_lost_at_renewal_and_next_sign_in(stack: Stack) -> None:
    alice, _ = chat_sign_in(stack.chat, "alice", "pw-alice")
    token, session = _session(stack, alice)
    assert session.groups == ("rh",)
    stack.provider.set_groups("alice", ["finance"])
    try:
        renewed = stack.signin.renew(token, session)  # not due yet: unchanged
        assert renewed is not None and renewed.groups == ("rh",)
        time.sleep(stack.oidc.refresh_minutes * 60 + 0.5)
        renewed = stack.signin.renew(token, session)  # due: the refresh token brings the provider's groups
        assert renewed is not None and renewed.groups == ("finance",)
        again, _ = chat_sign_in(stack.chat, "alice", "pw-alice")
        _, fresh = _session(stack, again)
        assert fresh.groups == ("finance",)
    finally:
        stack.provider.set_groups("alice", ["rh"])


def test_an_account_removed_at_the_provider_is_signed_out_at_renewal(stack: Stack) -> None:
    bob, _ = chat_sign_in(stack.chat, "bob", "pw-bob")
    token, session = _session(stack, bob)
    gone = stack.provider.users.pop("bob")
    stack.provider.write_users()
    try:
        time.sleep(stack.oidc.refresh_minutes * 60 + 0.5)
        assert stack.signin.renew(token, session) is None
        assert stack.signin.sessions.check(token, touch=False) is None
        assert bob.get(stack.chat + "/").status_code == 303  # back to the sign-in
    finally:
        stack.provider.users["bob"] = gone
        stack.provider.write_users()


def test_logout_ends_the_kit_session_and_goes_to_the_providers_end_session(stack: Stack) -> None:
    from ui.oidc import COOKIE

    alice, _ = chat_sign_in(stack.chat, "alice", "pw-alice")
    token, _ = _session(stack, alice)
    r = alice.get(stack.chat + "/auth/logout")
    assert r.status_code == 303
    target = urlsplit(r.headers["location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == stack.provider.issuer + "/session/end"
    assert parse_qs(target.query)["post_logout_redirect_uri"] == [stack.chat + "/"]
    assert stack.signin.sessions.check(token, touch=False) is None
    alice.cookies.set(COOKIE, token)
    assert alice.get(stack.chat + "/").status_code == 303  # back to the sign-in
    assert any(row.detail.get("via") == "oidc" for row in stack.gateway.state.audit.rows(action="logout"))


def test_key_rotation_at_the_provider(stack: Stack) -> None:
    """The provider starts again with a new signing key: the chat, which kept the old keys, fetches them again."""
    old = stack.signin.provider.keys().keys[0].kid
    stack.provider.restart()
    alice, _ = chat_sign_in(stack.chat, "alice", "pw-alice")
    _, session = _session(stack, alice)
    assert session.user == ALICE
    assert stack.signin.provider.keys().keys[0].kid != old


def test_doctor_checks_the_provider_and_the_secret_file(stack: Stack, tmp_path: Path) -> None:
    from kit.ops.identity import identity_checks

    settings = stack.gateway.settings
    checks = {c.name: c for c in identity_checks(settings)}
    assert [c.status for c in checks.values()] == ["PASS", "PASS", "PASS"], checks
    assert "with an end-session endpoint" in checks["oidc provider"].detail
    loose = tmp_path / "loose.secret"
    loose.write_text("s", encoding="utf-8")
    loose.chmod(0o644)
    gone = f"http://127.0.0.1:{free_port()}"
    changed = settings.model_copy(update={"ui": settings.ui.model_copy(update={"oidc": settings.ui.oidc.model_copy(
        update={"client_secret_file": str(loose), "issuer": gone})})})
    checks = {c.name: c for c in identity_checks(changed)}
    assert checks["oidc secret"].status == "FAIL" and "chmod 600" in checks["oidc secret"].fix
    assert checks["oidc provider"].status == "FAIL" and "cannot be reached" in checks["oidc provider"].detail


# --- in a real browser -----------------------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)")
def test_browser_sign_in_documents_of_the_groups_renewal_and_sign_out(stack: Stack) -> None:
    pytest.importorskip("playwright.sync_api")
    from playwright.sync_api import expect, sync_playwright

    from ui.texts import texts

    fr = texts("fr")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_context(locale="fr-FR").new_page()
            page.set_default_timeout(60_000)
            expect.set_options(timeout=60_000)
            page.goto(stack.chat)  # no session: to the provider's sign-in form
            page.wait_for_selector("#login")
            assert page.url.startswith(stack.provider.issuer + "/interaction/")
            page.fill("#login", "alice")
            page.fill("#password", "pw-alice")
            page.click("#submit")
            page.locator("#kit-main").wait_for(state="visible")
            assert page.url.rstrip("/") == stack.chat
            expect(page.locator("#kit-who")).to_contain_text(ALICE)

            # the documents of alice's group answer her question; the other group's do not
            page.get_by_label(fr("docs.switch")).check()
            page.fill("#kit-input textarea", "Quand le bulletin de paie est-il versé par le service ornithorynque ?")
            page.click("#kit-send")
            sources = page.locator("#kit-chatbot .bot").last.locator(".kit-sources")
            expect(sources).to_contain_text("paie.md", timeout=120_000)
            expect(sources).not_to_contain_text("budget.md")
            page.locator("#kit-send").wait_for(state="visible", timeout=120_000)

            # alice moves from rh to finance at the provider: the session's renewal brings the change
            stack.provider.set_groups("alice", ["finance"])
            time.sleep(stack.oidc.refresh_minutes * 60 + 0.5)
            page.fill("#kit-input textarea", "Quand le budget primitif est-il voté par le conseil pélican ?")
            page.click("#kit-send")
            sources = page.locator("#kit-chatbot .bot").last.locator(".kit-sources")
            expect(sources).to_contain_text("budget.md", timeout=120_000)
            expect(sources).not_to_contain_text("paie.md")
            page.locator("#kit-send").wait_for(state="visible", timeout=120_000)

            # sign out: the kit session ends, then the provider's (its confirmation), then back to its form
            page.click("#kit-logout")
            page.wait_for_url(stack.provider.issuer + "/session/end**")
            page.get_by_role("button", name="Yes, sign me out").click()
            page.wait_for_selector("#login")
            assert page.url.startswith(stack.provider.issuer + "/interaction/")
        finally:
            browser.close()
            stack.provider.set_groups("alice", ["rh"])
