"""Sign-in for front ends: password check of local users (audited, throttled per account and per
address) and who a user is, for the browser chat acting with its service key. The user store stays
with the gateway; the chat never opens it."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from kit.config import is_loopback_host
from kit.errors import AccountLockedError, AuthError, TooManyError
from kit.gateway.context import Context
from kit.gateway.schemas import LoginRequest, OidcEvent
from kit.rules.policy import LOCAL_OPERATOR, Identity
from kit.storage.users import check_password, get_user, session_stamp, unlocked_at

CLIENT_HEADER = "x-kit-client-address"  # the browser's address, as the front end saw it


class Throttle:
    """Failed sign-ins per account and per address over a sliding window; past the limit every attempt,
    right or wrong, waits until the oldest failure leaves the window.

    Checking and counting are one step under a lock: an attempt takes a place in every window before its
    password is checked (``reserve``) and gives it back only if the password was right (``succeed``), so
    that attempts running at the same time cannot all pass the check before any of them is counted."""

    def __init__(self, limit: int = 5, window_s: float = 300.0) -> None:
        self.limit, self.window_s = limit, window_s
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _waits(self, now: float, keys: tuple[str, ...]) -> dict[str, int]:
        """Seconds to wait for each key past its limit (keys free to go are left out)."""
        waits = {}
        for key in keys:
            q = self._failures.get(key)
            while q and now - q[0] > self.window_s:
                q.popleft()
            if q and len(q) >= self.limit:
                waits[key] = int(self.window_s - (now - q[0])) + 1
        return waits

    def wait(self, *keys: str) -> int:
        """Seconds to wait before the next attempt (0: go ahead)."""
        with self._lock:
            return max(self._waits(time.monotonic(), keys).values(), default=0)

    def reserve(self, *keys: str) -> tuple[dict[str, int], float]:
        """({key: seconds to wait}, 0.0) when throttled; else ({}, stamp): the attempt counts as a failure of
        every key until ``succeed(stamp, ...)`` gives its place back."""
        now = time.monotonic()
        with self._lock:
            waits = self._waits(now, keys)
            if waits:
                return waits, 0.0
            self._add(now, keys)
            return {}, now

    def forget(self, key: str) -> None:
        """Drop every failure counted against ``key`` (an administrator unlocked the account), and the same
        attempts where they counted against an address too (one attempt has one time stamp in every window)."""
        with self._lock:
            stamps = set(self._failures.pop(key, ()))
            if not stamps:
                return
            for other, q in self._failures.items():
                if any(t in stamps for t in q):
                    self._failures[other] = deque(t for t in q if t not in stamps)

    def fail(self, *keys: str) -> None:
        with self._lock:
            self._add(time.monotonic(), keys)

    def _add(self, now: float, keys: tuple[str, ...]) -> None:
        for key in keys:
            self._failures.setdefault(key, deque()).append(now)
            if len(self._failures) > 100_000:  # bounded memory under a spray of names
                self._failures.pop(next(iter(self._failures)))

    def succeed(self, key: str, stamp: float | None = None, *others: str) -> None:
        """A right password: the account's failures are forgotten; the place the attempt held in the
        windows of ``others`` (its address) is given back."""
        with self._lock:
            self._failures.pop(key, None)
            if stamp is None:
                return
            for other in others:
                q = self._failures.get(other)
                if q is not None and stamp in q:
                    q.remove(stamp)


def _front_end(ident: Identity) -> None:
    if ident.via != "local" and ident.role != "service":
        raise AuthError("only the browser chat's service key may check passwords.")


def router(ctx: Context) -> APIRouter:
    api = APIRouter()
    home = ctx.settings.home
    throttle = Throttle()
    applied: dict[str, str] = {}  # account key -> the unlock time last applied to the throttle

    @api.post("/v1/auth/login")
    async def login(request: Request) -> dict[str, Any]:
        caller = await ctx.identify(request)
        _front_end(caller)
        req = LoginRequest.model_validate(await ctx.body(request))
        name = req.user.strip()
        # Per account always; per address when the caller's address is known (a front end may pass the
        # browser's in X-Kit-Client-Address; its own address is shared by all its users and is not counted).
        if caller.role == "service":
            address = request.headers.get(CLIENT_HEADER, "").strip()[:64]
        else:
            address = request.client.host if request.client else ""
        keys = (f"user:{name.lower()}",) + ((f"addr:{address}",) if address else ())
        who = Identity(name, "user", "service")
        unlocked = await run_in_threadpool(unlocked_at, home, name)
        if unlocked and applied.get(keys[0]) != unlocked:  # `kit users unlock`, maybe on another machine
            applied[keys[0]] = unlocked
            throttle.forget(keys[0])
        waits, stamp = throttle.reserve(*keys)
        if waits:
            await ctx.audit_async(who, "login_failed", reason="throttled")
            wait = max(waits.values())
            if keys[0] in waits:  # the account itself: said whatever the password, with when it ends
                raise AccountLockedError(f"this account is locked after too many failed sign-ins: it unlocks in "
                                         f"{wait} s, or sooner with `kit users unlock {name}`.", wait)
            raise TooManyError(f"too many failed sign-ins from this address: try again in {wait} s.", wait)
        signed = await run_in_threadpool(check_password, home, name, req.password)
        if signed is None:
            await ctx.audit_async(who, "login_failed")  # the place reserved above stays: a failure
            raise AuthError("wrong user name or password.")
        throttle.succeed(keys[0], stamp, *keys[1:])
        await ctx.audit_async(who, "login")
        return {"user": name, "role": signed.role, "session_stamp": signed.stamp}

    @api.post("/v1/auth/oidc")
    async def oidc_event(request: Request) -> dict[str, Any]:
        """The browser chat reports a sign-in with the identity provider (or its refusal, or a sign-out): one
        audit row under the user's pseudonym, with the role and the number of groups the claims gave."""
        caller = await ctx.identify(request)
        if caller.via not in ("service", "local") and caller.role != "service":
            raise AuthError("only the browser chat's service key may report sign-ins.")
        req = OidcEvent.model_validate(await ctx.body(request))
        who = caller if caller.via == "service" else Identity("", "user", "service")
        detail: dict[str, Any] = {"via": "oidc"}
        if req.event == "login":
            detail.update(role=who.role, groups=len(who.groups))
        if req.reason:
            detail["reason"] = req.reason
        await ctx.audit_async(who, req.event, **detail)
        return {"recorded": req.event}

    @api.get("/v1/me")
    async def me(request: Request) -> dict[str, Any]:
        ident = await ctx.identify(request)
        user = await run_in_threadpool(get_user, home, ident.user)
        role = ctx.gate.role_for(ident.user) if ident.via == "service" else ident.role
        known = user is not None or ident.user == LOCAL_OPERATOR
        return {"user": ident.user, "role": role, "via": ident.via, "known": known,
                "changed_at": user.updated if user else None,
                "session_stamp": await run_in_threadpool(session_stamp, home, ident.user) if user else None,
                "loopback": is_loopback_host(request.client.host if request.client else "")}

    return api
