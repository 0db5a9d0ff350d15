"""Abuse limits: requests and generated tokens per user (per key for key holders) and role, and a cap on the
generations one user has running or queued, so that one caller cannot starve the others of the shared engine.

Counting uses the ``limits`` library: requests per minute in a moving (or fixed) window; generated tokens in
fixed windows of a minute and of a day, charged once the answer is done, and a request is refused while a
token window is spent. Counters live in this process, or in Redis when ``KIT_REDIS_URL`` is set, so that
several gateways share them. The cap on running generations is kept per process (a counter per user under a
lock) and released when the answer ends, however it ends.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from kit.config import Limits, RoleLimits
from kit.errors import ConfigError, LimitExceededError, LimitsUnavailableError, UsageError, redact

if TYPE_CHECKING:
    from limits import RateLimitItem
    from limits.strategies import RateLimiter

log = logging.getLogger("kit.limits")
REDIS_ENV = "KIT_REDIS_URL"
CONCURRENT_RETRY_S = 2  # a running generation's end cannot be foreseen: ask to come back soon
NAMESPACE = "kit"


@dataclass
class Ticket:
    """One admitted request: whose it is, under which role, how many generations. Finish it once."""

    subject: str
    role: str
    n: int
    done: bool = False


@dataclass
class LimitCounts:
    """What /metrics shows: generations admitted and not yet finished, users holding them, refusals by limit."""

    running: int
    users_running: int
    refused: dict[str, int] = field(default_factory=dict)


def storage_uri(environ: Mapping[str, str] | None = None) -> str:
    """``memory://``, or the Redis URL of ``KIT_REDIS_URL``."""
    url = (os.environ if environ is None else environ).get(REDIS_ENV, "").strip()
    if not url:
        return "memory://"
    if urlsplit(url).scheme not in ("redis", "rediss", "redis+unix"):
        raise ConfigError(f"{REDIS_ENV} is {redact(url)}: give a Redis URL such as redis://127.0.0.1:6379/0.")
    return url


class Limiter:
    """Admits, charges and releases requests under the configured limits of each role."""

    def __init__(self, config: Limits, uri: str = "memory://", width: int = 8) -> None:
        from limits.errors import ConfigurationError
        from limits.storage import storage_from_string
        from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

        self.config = config
        self.uri = uri
        self.width = width  # sequences the engine decodes at once (server.parallel): the default cap stays below
        options: dict[str, Any] = {}
        if not uri.startswith("memory"):
            options = {"socket_timeout": 2, "socket_connect_timeout": 2}
        try:
            self.storage = storage_from_string(uri, wrap_exceptions=True, **options)
        except ConfigurationError as exc:
            raise ConfigError(f"{REDIS_ENV} ({redact(uri)}) cannot be used: {exc}. Install the Redis client "
                              "with `pip install 'kit[redis]'`.") from None
        if not uri.startswith("memory") and not self.storage.check():
            raise ConfigError(f"the Redis server of {REDIS_ENV} ({redact(uri)}) does not answer: start it, "
                              f"or unset {REDIS_ENV} to count in this process only.")
        moving = config.strategy == "moving-window"
        self.requests: RateLimiter = (MovingWindowRateLimiter if moving else FixedWindowRateLimiter)(self.storage)
        self.tokens: RateLimiter = FixedWindowRateLimiter(self.storage)  # charged after the fact: counters
        self._lock = threading.Lock()
        self._running: dict[str, int] = {}
        self._refused: dict[str, int] = {}

    @classmethod
    def from_environment(cls, config: Limits, environ: Mapping[str, str] | None = None, width: int = 8) -> Limiter:
        return cls(config, storage_uri(environ), width)

    @property
    def shared(self) -> bool:
        """Counters in Redis, shared by every gateway that uses it (each call is a network round trip)."""
        return not self.uri.startswith("memory")

    def role_limits(self, role: str) -> RoleLimits:
        found = getattr(self.config, role, None)
        return found if isinstance(found, RoleLimits) else self.config.user

    def cap(self, role: str) -> int:
        """Generations the role may run at once (0: unlimited); unset, one less than the engine's width."""
        concurrent = self.role_limits(role).concurrent
        return max(1, self.width - 1) if concurrent is None else concurrent

    # admission --------------------------------------------------------------------------------------

    def admit(self, user: str, via: str, role: str, n: int = 1) -> Ticket:
        """Let one request of `n` generations in, or raise LimitExceededError naming the limit and when to retry."""
        rl, name = self.role_limits(role), f"limits.{role if hasattr(self.config, role) else 'user'}"
        subject = f"{via}:{user}"
        cap = self.cap(role)
        if cap and n > cap:
            derived = "" if rl.concurrent is not None else ", by default one less than server.parallel"
            raise UsageError(f"this request asks for {n} choices (n) but your role may run {cap} generations at once "
                             f"({name}.concurrent{derived}): lower n.")
        with self._lock:
            running = self._running.get(subject, 0)
            if cap and running + n > cap:
                self._refused["concurrent"] = self._refused.get("concurrent", 0) + 1
                raise LimitExceededError(
                    f"you have {running} generations running or queued (each of the n choices counts) and this "
                    f"request asks for {n} more; the limit for your role is {cap} ({name}.concurrent): "
                    f"retry in {CONCURRENT_RETRY_S} s, when one has ended.", CONCURRENT_RETRY_S, "concurrent")
            self._running[subject] = running + n
        ticket = Ticket(subject, role, n)
        try:
            self._check_rates(subject, rl, name)
        except BaseException:
            self._release(ticket)
            raise
        return ticket

    def _token_items(self, rl: RoleLimits) -> list[tuple[str, str, RateLimitItem]]:
        from limits import RateLimitItemPerDay, RateLimitItemPerMinute

        items: list[tuple[str, str, RateLimitItem]] = []
        if rl.tokens_per_minute:
            items.append(("tokens_per_minute", "1-minute", RateLimitItemPerMinute(rl.tokens_per_minute,
                                                                                  namespace=NAMESPACE)))
        if rl.tokens_per_day:
            items.append(("tokens_per_day", "24-hour", RateLimitItemPerDay(rl.tokens_per_day, namespace=NAMESPACE)))
        return items

    def _check_rates(self, subject: str, rl: RoleLimits, name: str) -> None:
        from limits.errors import StorageError

        try:
            for label, window, item in self._token_items(rl):
                if not self.tokens.test(item, "tokens", subject):
                    used = self.storage.get(item.key_for("tokens", subject))
                    retry = self.tokens.get_window_stats(item, "tokens", subject).reset_time - time.time()
                    self._count(label)
                    raise LimitExceededError(
                        f"your answers used {used} generated tokens in the current {window} window; the limit for "
                        f"your role is {item.amount} ({name}.{label}): retry in {max(1, math.ceil(retry))} s.",
                        retry, label)
            self._hit_requests(subject, rl, name)
        except StorageError as exc:
            raise self._unavailable(exc) from None

    def _hit_requests(self, subject: str, rl: RoleLimits, name: str, label: str = "requests_per_minute") -> None:
        from limits import RateLimitItemPerMinute

        amount, kind = getattr(rl, label), label.removesuffix("_per_minute")
        if amount:
            item = RateLimitItemPerMinute(amount, namespace=NAMESPACE)
            if not self.requests.hit(item, kind, subject):
                retry = self.requests.get_window_stats(item, kind, subject).reset_time - time.time()
                self._count(label)
                raise LimitExceededError(
                    f"you sent {item.amount + 1} {kind} in the last minute; the limit for your role is "
                    f"{item.amount} ({name}.{label}): retry in {max(1, math.ceil(retry))} s.",
                    retry, label)

    def _unavailable(self, exc: Any) -> LimitsUnavailableError:
        return LimitsUnavailableError(f"the counters' store ({redact(self.uri)}) does not answer "
                                      f"({exc.storage_error}): retry shortly; an administrator checks the Redis "
                                      "server.")

    def request(self, user: str, via: str, role: str) -> None:
        """Count one request that runs no generation (a document search, a personal-data scan) against the
        role's lookups per minute (kept apart from chat's requests per minute: the browser chat checks each
        message before sending it); raise LimitExceededError over it."""
        from limits.errors import StorageError

        rl, name = self.role_limits(role), f"limits.{role if hasattr(self.config, role) else 'user'}"
        try:
            self._hit_requests(f"{via}:{user}", rl, name, "lookups_per_minute")
        except StorageError as exc:
            raise self._unavailable(exc) from None

    # end of a request -------------------------------------------------------------------------------

    def finish(self, ticket: Ticket, tokens: int) -> None:
        """Release the request's generations and charge the tokens they produced; only the first call counts."""
        if ticket.done:
            return
        self._release(ticket)
        if tokens <= 0:
            return
        from limits.errors import StorageError

        try:
            for _, _, item in self._token_items(self.role_limits(ticket.role)):
                self.tokens.hit(item, "tokens", ticket.subject, cost=tokens)
        except StorageError as exc:
            log.warning("could not charge %d tokens to the limits store %s: %s", tokens, redact(self.uri),
                        exc.storage_error)

    def _release(self, ticket: Ticket) -> None:
        with self._lock:
            if ticket.done:
                return
            ticket.done = True
            left = self._running.get(ticket.subject, 0) - ticket.n
            if left > 0:
                self._running[ticket.subject] = left
            else:
                self._running.pop(ticket.subject, None)

    def _count(self, label: str) -> None:
        with self._lock:
            self._refused[label] = self._refused.get(label, 0) + 1

    def counts(self) -> LimitCounts:
        with self._lock:
            return LimitCounts(sum(self._running.values()), len(self._running), dict(self._refused))
