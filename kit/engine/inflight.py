"""In-flight requests per engine, counted in Redis across every gateway of a cluster (``KIT_REDIS_URL``).

A new conversation goes to the least busy engine; with several gateways, "busy" must count the requests
that the other gateways sent too. Each gateway keeps its own count per engine in the hash
``kit:inflight:<engine>`` (one field per gateway) and announces itself in the sorted set ``kit:gateways``
(score: the time of its last heartbeat). A reader sums the fields of the gateways heard from within
``ttl_s`` seconds, so the requests of a gateway that was killed stop counting after that time instead of
weighing on an engine forever. One round trip per read (a pipeline), one per update.

Redis being down never fails a request: the pool then falls back to the counts of its own gateway, and says
so once in the log. The engine that served each conversation's last turn is kept there too (a digest of the
conversation key, for a week), so that every gateway counts the same affinity hits.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import time
import uuid
from typing import Any

log = logging.getLogger("kit.engine.pool")
PREFIX = "kit:inflight:"
GATEWAYS = "kit:gateways"
LAST = "kit:last-engine:"  # which engine served a conversation's previous turn (the affinity hit rate)
LAST_TTL_S = 7 * 86400


def _last_key(conversation: str) -> str:
    """The Redis key of a conversation's last engine: a digest, never the conversation's id or text."""
    return LAST + hashlib.sha256(conversation.encode()).hexdigest()[:32]


class SharedInFlight:
    def __init__(self, url: str, *, gateway_id: str | None = None, ttl_s: float = 15.0) -> None:
        import redis

        self._redis: Any = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self._errors: tuple[type[Exception], ...] = (redis.RedisError, OSError)
        self.gateway_id = gateway_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.ttl_s = ttl_s
        self._warned = False
        self.heartbeat()

    def _failed(self, exc: Exception) -> None:
        if not self._warned:
            log.warning("the shared in-flight counts in Redis cannot be used (%s): this gateway routes new "
                        "conversations on its own counts until Redis answers again", exc)
            self._warned = True

    def heartbeat(self) -> None:
        """Say this gateway is alive; forget gateways silent for more than ten times the TTL."""
        now = time.time()
        try:
            pipe = self._redis.pipeline()
            pipe.zadd(GATEWAYS, {self.gateway_id: now})
            pipe.zremrangebyscore(GATEWAYS, "-inf", now - 10 * self.ttl_s)
            pipe.execute()
            self._warned = False
        except self._errors as exc:
            self._failed(exc)

    def add(self, engine: str, delta: int) -> None:
        try:
            self._redis.hincrby(PREFIX + engine, self.gateway_id, delta)
        except self._errors as exc:
            self._failed(exc)

    def counts(self, engines: list[str]) -> dict[str, int] | None:
        """In-flight requests per engine over the live gateways; None when Redis does not answer."""
        try:
            pipe = self._redis.pipeline()
            pipe.zrangebyscore(GATEWAYS, time.time() - self.ttl_s, "+inf")
            for name in engines:
                pipe.hgetall(PREFIX + name)
            alive_raw, *per_engine = pipe.execute()
        except self._errors as exc:
            self._failed(exc)
            return None
        alive = {g.decode() for g in alive_raw} | {self.gateway_id}
        return {name: sum(max(0, int(v)) for g, v in fields.items() if g.decode() in alive)
                for name, fields in zip(engines, per_engine, strict=True)}

    def last(self, key: str) -> str | None | bool:
        """The engine that served the conversation ``key`` last (None if none did), or False when Redis does not
        answer."""
        try:
            found = self._redis.get(_last_key(key))
        except self._errors as exc:
            self._failed(exc)
            return False
        return found.decode() if found is not None else None

    def swap_last(self, key: str, engine: str) -> str | None | bool:
        """Record ``engine`` as the last one to serve the conversation ``key``; return the one before (None for
        a first turn), or False when Redis does not answer."""
        try:
            before = self._redis.set(_last_key(key), engine, ex=LAST_TTL_S, get=True)
        except self._errors as exc:
            self._failed(exc)
            return False
        return before.decode() if before is not None else None

    def close(self) -> None:
        try:
            pipe = self._redis.pipeline()
            pipe.zrem(GATEWAYS, self.gateway_id)
            pipe.execute()
            self._redis.close()
        except self._errors:
            pass
