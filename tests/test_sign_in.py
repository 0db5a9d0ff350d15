"""Sign-in of the browser chat (ui.auth: local) and of its gateway: the throttle of failed sign-ins under
concurrent attempts, the browser's address reaching the gateway, the chat's event loop during a burst of
sign-ins, and the lifetime of sign-in sessions (idle, absolute, bound to the password and role).

One real gateway (echo engine: no answer is read here; real user store) and two chats on it per module,
over HTTP on 127.0.0.1; each test signs in from its own loopback source address (127.0.0.x), so the
per-address throttle of one test does not reach another. The two sessions-in-real-time tests wait on the
clock (slow); test_session_lifetimes_with_a_clock checks the same rules without waiting."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from echo_engine import start_echo_gateway
from helpers import free_port, serve_app

PASSWORD = "un mot de passe solide"
LIMIT = 5  # failed sign-ins per account and per address in the window (kit.gateway.auth.Throttle)
IDLE_S, MAX_S = 4.0, 9.0  # session lifetimes of the second chat


class Stack(SimpleNamespace):
    gateway: Any
    home: Path
    chat: str  # default session lifetimes
    short: str  # IDLE_S and MAX_S
    demo: Any


def from_address(address: str, **kw: Any) -> httpx.Client:
    """An HTTP client whose connections come from `address` (any 127.x.y.z is this machine)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=60, **kw)


def sign_in(client: httpx.Client, url: str, user: str, password: str = PASSWORD, **headers: str) -> httpx.Response:
    return client.post(url + "/login", data={"username": user, "password": password}, headers=headers)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from kit.config import load_settings
    from kit.storage.users import add_user
    from ui.app import launch_ui

    base = tmp_path_factory.mktemp("signin")
    home = base / "home"
    old = os.environ.get("KIT_HOME")
    gateway, stop = start_echo_gateway(home, base / "kit.yaml", ui={"auth": "local"})
    for name in ["alice", "bob", "carol", "dave", "erin"] + [f"user{i:02d}" for i in range(16)]:
        add_user(home, name, "user", PASSWORD)
    demos = []
    urls = []
    for short in (False, True):
        settings = load_settings(base / "kit.yaml")
        if short:
            settings.ui.session_idle_minutes, settings.ui.session_max_hours = IDLE_S / 60, MAX_S / 3600
        port = free_port()
        demos.append(launch_ui(settings, gateway.url, host="127.0.0.1", port=port, api_key=gateway.service_key,
                               max_tokens=8, prevent_thread_lock=True, quiet=True))
        urls.append(f"http://127.0.0.1:{port}")
    try:
        yield Stack(gateway=gateway, home=home, chat=urls[0], short=urls[1], demo=demos[0])
    finally:
        for demo in demos:
            demo.close()
        stop()
        if old is not None:
            os.environ["KIT_HOME"] = old


def handlers(demo: Any) -> Any:
    return next(f for f in demo.fns.values() if f.name == "stop").fn.__self__


# --- the gateway's throttle ---------------------------------------------------------------------------


def test_parallel_wrong_passwords_get_exactly_the_limit_then_429(stack: Stack) -> None:
    """Attempts running at the same time cannot all pass the throttle's check before one is counted."""
    url = stack.gateway.url + "/v1/auth/login"
    headers = {**stack.gateway.headers(None), "X-Kit-Client-Address": "198.51.100.20"}
    barrier = threading.Barrier(16)

    def attempt(i: int) -> int:
        barrier.wait()
        return httpx.post(url, headers=headers, json={"user": "bob", "password": f"wrong {i}"}, timeout=60).status_code

    with ThreadPoolExecutor(16) as pool:
        codes = sorted(pool.map(attempt, range(16)))
    assert codes == [401] * LIMIT + [429] * (16 - LIMIT), codes
    r = httpx.post(url, headers=headers, json={"user": "bob", "password": PASSWORD}, timeout=60)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0


def test_a_right_password_does_not_count_against_its_address(stack: Stack) -> None:
    url = stack.gateway.url + "/v1/auth/login"
    headers = {**stack.gateway.headers(None), "X-Kit-Client-Address": "198.51.100.21"}
    for _ in range(LIMIT + 2):  # colleagues behind one address signing in, again and again
        r = httpx.post(url, headers=headers, json={"user": "carol", "password": PASSWORD}, timeout=60)
        assert r.status_code == 200 and r.json()["role"] == "user" and r.json()["session_stamp"]


# --- through the chat ---------------------------------------------------------------------------------


def test_the_browsers_address_reaches_the_gateway_and_spoofed_headers_do_not(stack: Stack) -> None:
    """12 accounts, one wrong password each, from one browser: its address is throttled after the limit,
    whatever forwarding headers it sends (it is not a trusted proxy)."""
    codes = []
    with from_address("127.0.0.1") as browser:  # the chat's own machine: still not a trusted proxy
        for i in range(12):
            spoof = {"X-Forwarded-For": f"203.0.113.{i}", "X-Kit-Client-Address": f"203.0.113.{100 + i}",
                     "X-Real-IP": f"203.0.113.{200 + i}"}
            codes.append(sign_in(browser, stack.chat, f"user{i:02d}", "wrong password", **spoof).status_code)
        right = sign_in(browser, stack.chat, "dave")
    assert all(c in (400, 401) for c in codes[:LIMIT]), codes
    assert codes[LIMIT:] == [429] * (12 - LIMIT), codes
    assert right.status_code == 429 and int(right.headers["Retry-After"]) > 0, right.text
    detail = right.json()["detail"]
    assert detail["reason"] == "rate_limit_exceeded" and detail["retry_after"] > 0  # the address, not the account
    assert "réessayez" in detail["message"] and "try again" in detail["message"]  # in both languages
    with from_address("127.0.0.4") as other:  # another browser is not held back
        assert sign_in(other, stack.chat, "dave").status_code == 200


def test_the_chats_event_loop_stays_free_during_a_burst_of_sign_ins(tmp_path: Path) -> None:
    """The password check runs off the page's event loop: a slow gateway (1 s a sign-in) and 12 sign-ins at
    once do not hold up another request to the page (checked on the event loop they would, for 12 s; the bound
    is generous for a busy machine)."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    from kit.config import load_settings
    from ui.app import launch_ui

    slow = FastAPI()

    @slow.post("/v1/auth/login")
    async def login() -> JSONResponse:
        await asyncio.sleep(1.0)
        return JSONResponse({"error": {"message": "wrong user name or password.", "type": "authentication_error"}},
                            status_code=401)

    gateway_url, stop = serve_app(slow)
    from helpers import write_config

    settings = load_settings(write_config(tmp_path / "k.yaml", ui={"auth": "local"}))
    port = free_port()
    demo = launch_ui(settings, gateway_url, host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True)
    url = f"http://127.0.0.1:{port}"
    try:
        assert httpx.get(url + "/health", timeout=10).status_code == 200
        latencies: list[float] = []
        done = threading.Event()

        def probe() -> None:
            while not done.is_set():
                start = time.perf_counter()
                httpx.get(url + "/health", timeout=30)
                latencies.append(time.perf_counter() - start)
                time.sleep(0.05)

        prober = threading.Thread(target=probe)
        prober.start()
        with ThreadPoolExecutor(12) as pool:
            codes = list(pool.map(lambda i: sign_in(httpx.Client(timeout=60), url, f"u{i}", "x").status_code,
                                  range(12)))
        done.set()
        prober.join()
        assert all(c in (400, 401) for c in codes), codes
        assert latencies and max(latencies) < 2.0, f"the page waited {max(latencies):.2f} s behind the sign-ins"
    finally:
        demo.close()
        stop()


def test_a_locked_account_is_said_locked_even_with_the_right_password_until_unlocked(stack: Stack) -> None:
    """Failed sign-ins from several addresses lock the account itself: the right password then gets "locked",
    with when the lock ends, through the gateway and the chat; `kit users unlock` ends it at once, also for the
    address the failures came from."""
    from kit.storage.users import add_user, unlock_user

    add_user(stack.home, "gina", "user", PASSWORD)
    for i in range(LIMIT):  # one failure from each of LIMIT addresses: no address is held back
        with from_address(f"127.0.1.{i + 1}") as browser:
            assert sign_in(browser, stack.chat, "gina", "wrong password").status_code in (400, 401)
    with from_address("127.0.1.50") as browser:
        locked = sign_in(browser, stack.chat, "gina")  # the right password
    assert locked.status_code == 429, locked.text
    detail = locked.json()["detail"]
    assert detail["reason"] == "account_locked" and 0 < detail["retry_after"] <= 301
    assert int(locked.headers["Retry-After"]) == detail["retry_after"]
    assert "verrouillé" in detail["message"] and "locked" in detail["message"]
    url = stack.gateway.url + "/v1/auth/login"
    r = httpx.post(url, headers=stack.gateway.headers(None), json={"user": "GINA", "password": PASSWORD}, timeout=60)
    assert r.status_code == 429 and r.json()["error"]["code"] == "account_locked", r.text  # any case of the name

    unlock_user(stack.home, "gina")
    with from_address("127.0.1.1") as browser:  # an address whose failure was for this account: given back too
        assert sign_in(browser, stack.chat, "gina").status_code == 200
    with from_address("127.0.1.2") as browser:  # unlocked once: a new failure counts from zero
        assert sign_in(browser, stack.chat, "gina", "wrong password").status_code in (400, 401)
        assert sign_in(browser, stack.chat, "gina").status_code == 200


# --- sessions --------------------------------------------------------------------------------------------


def logged_in(client: httpx.Client, url: str) -> bool:
    return client.get(url + "/gradio_api/login_check").status_code == 200


@pytest.mark.slow  # waits on the clock: IDLE_S twice over
def test_sessions_end_after_their_idle_time(stack: Stack) -> None:
    with from_address("127.0.0.5") as browser:
        assert sign_in(browser, stack.short, "erin").status_code == 200
        for _ in range(int(IDLE_S) + 1):  # used every second: alive past IDLE_S
            time.sleep(1)
            assert logged_in(browser, stack.short)
        time.sleep(IDLE_S + 0.5)
        assert not logged_in(browser, stack.short)
        assert not logged_in(browser, stack.short)  # and it stays ended


@pytest.mark.slow  # waits on the clock: MAX_S
def test_sessions_end_after_their_absolute_time_even_in_use(stack: Stack) -> None:
    with from_address("127.0.0.6") as browser:
        assert sign_in(browser, stack.short, "erin").status_code == 200
        start = time.monotonic()
        while time.monotonic() - start < MAX_S - 2:  # used every second, never idle for long
            assert logged_in(browser, stack.short)
            time.sleep(1)
        time.sleep(max(0.0, start + MAX_S + 0.5 - time.monotonic()))  # less than IDLE_S since the last use
        assert not logged_in(browser, stack.short)
        assert sign_in(browser, stack.short, "erin").status_code == 200  # signing in again works
        assert logged_in(browser, stack.short)


def test_signing_out_ends_every_session_of_the_user(stack: Stack) -> None:
    with from_address("127.0.0.7") as browser, from_address("127.0.0.7") as laptop:
        assert sign_in(browser, stack.chat, "erin").status_code == 200
        assert sign_in(laptop, stack.chat, "erin").status_code == 200
        token = dict(browser.cookies.items())
        browser.get(stack.chat + "/logout")
        assert not logged_in(laptop, stack.chat)
    with from_address("127.0.0.7", cookies=token) as replay:  # the old cookie, sent again
        assert not logged_in(replay, stack.chat)


def _event_request(browser: httpx.Client, user: str) -> Any:
    """What a page event of this browser gives the handlers (the request with its cookies, the user)."""
    return SimpleNamespace(username=user, request=SimpleNamespace(cookies=dict(browser.cookies.items())),
                           headers={}, client=SimpleNamespace(host="127.0.0.1"))


@pytest.mark.parametrize("change", ["password", "role"])
def test_a_change_ends_sessions_issued_before_it_even_unused(stack: Stack, change: str) -> None:
    from kit.storage.users import add_user, set_password, set_role
    from ui.auth import Refusal
    from ui.client import Who

    name = f"frank-{change}"
    add_user(stack.home, name, "user", PASSWORD)
    h = handlers(stack.demo)
    with from_address("127.0.0.8") as used, from_address("127.0.0.9") as unused:
        assert sign_in(used, stack.chat, name).status_code == 200
        assert sign_in(unused, stack.chat, name).status_code == 200  # signed in, not used yet
        assert h.who(_event_request(used, name)) == Who(name, "user")
        if change == "password":
            set_password(stack.home, name, "a brand new password")
        else:
            set_role(stack.home, name, "auditor")
        for browser in (used, unused):
            refused = h.who(_event_request(browser, name))
            assert isinstance(refused, Refusal) and refused.key == "auth.session_ended", refused
            assert not logged_in(browser, stack.chat)  # ended for good: the page asks to sign in again
        password = "a brand new password" if change == "password" else PASSWORD
        with from_address("127.0.0.10") as again:
            assert sign_in(again, stack.chat, name, password).status_code == 200
            assert h.who(_event_request(again, name)) == Who(name, "auditor" if change == "role" else "user")


def test_session_lifetimes_with_a_clock() -> None:
    from ui.sessions import Sessions

    now = [1000.0]
    sessions = Sessions(idle_s=1800, max_s=10 * 3600, clock=lambda: now[0])
    sessions.open("t1", "alice", "s1")
    now[0] += 1700
    assert sessions.check("t1") is not None  # used: idle time restarts
    now[0] += 1700
    assert sessions.check("t1", touch=False) is not None
    now[0] += 200
    assert sessions.check("t1") is None and len(sessions) == 0  # idle for 1900 s
    sessions.open("t2", "alice", "s1")
    for _ in range(20):  # used every 30 min for 10 hours
        now[0] += 1800
        assert sessions.check("t2") is not None
    now[0] += 1
    assert sessions.check("t2") is None
    sessions.open("t3", "alice", "s1")
    assert not sessions.bound("t3", "alice", "s2") and sessions.check("t3") is None
    sessions.open("t4", "alice", "s1")
    assert not sessions.bound("t4", "bob", "s1") and not sessions.bound("unknown", "alice", "s1")


def test_session_lifetimes_are_configurable(tmp_path: Path) -> None:
    from helpers import write_config

    from kit.config import load_settings, template
    from kit.errors import ConfigError

    settings = load_settings(write_config(tmp_path / "k.yaml"))
    assert 15 <= settings.ui.session_idle_minutes <= 60 and 8 <= settings.ui.session_max_hours <= 12
    settings = load_settings(write_config(tmp_path / "k.yaml", ui={"session_idle_minutes": 15,
                                                                     "session_max_hours": 8}))
    assert (settings.ui.session_idle_minutes, settings.ui.session_max_hours) == (15, 8)
    with pytest.raises(ConfigError, match="session_idle_minutes"):
        load_settings(write_config(tmp_path / "k.yaml", ui={"session_idle_minutes": 0}))
    assert "session_idle_minutes" in template() and "session_max_hours" in template()


def test_doctor_flags_long_session_lifetimes(tmp_path: Path) -> None:
    from helpers import write_config

    from kit.config import load_settings
    from kit.ops.security import check_sessions, security_checks

    def status(**ui: Any) -> str:
        return check_sessions(load_settings(write_config(tmp_path / "k.yaml", ui={"auth": "local", **ui}))).status

    assert status() == "PASS"
    assert status(session_idle_minutes=240) == "WARN"
    assert status(session_max_hours=72) == "WARN"
    assert status(auth="proxy", trusted_proxies=["10.1.2.3"], session_max_hours=72) == "PASS"  # the portal's own
    settings = load_settings(write_config(tmp_path / "k.yaml", ui={"auth": "local"}))
    assert any(c.name == "sign-in sessions" for c in security_checks(settings))
