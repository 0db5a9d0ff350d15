"""``create_app(settings, engine, state)``: the gateway's FastAPI app, wiring only.

The engine and the stores are passed in; nothing is global. Each route group lives in its own module
(system, auth, chat, charter, privacy, conversations, feedback, documents, admin) and receives the shared Context.
"""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI
from prometheus_client import Gauge

from kit.config import Settings
from kit.engine.base import Engine
from kit.gateway import admin, auth, charter, chat, conversations, documents, feedback, files, privacy, system
from kit.gateway.context import Context
from kit.gateway.errors import install_handlers
from kit.gateway.guard import install_guard
from kit.gateway.local import fastapi_options
from kit.gateway.metrics import Metrics
from kit.rules.limits import Limiter
from kit.rules.policy import Gate
from kit.storage.state import GatewayState

ROUTE_GROUPS = (system, auth, chat, charter, privacy, feedback, conversations, documents, files, admin)


def create_app(settings: Settings, engine: Engine, state: GatewayState) -> FastAPI:
    """The gateway app for one engine and one set of stores."""
    ctx = Context(settings=settings, engine=engine, state=state, gate=Gate(settings, state), metrics=Metrics(engine),
                  limiter=Limiter.from_environment(settings.limits, width=settings.server.parallel))
    ctx.documents = documents.Documents(ctx)
    limit_gauges(ctx)
    app = FastAPI(title="kit", version="0.1.0", docs_url=None, redoc_url=None, **fastapi_options())
    app.state.settings, app.state.engine, app.state.gate, app.state.metrics = settings, engine, ctx.gate, ctx.metrics
    app.state.context = ctx
    ctx.warm.set()  # ready at once; `kit serve` clears it while the personal-data models load
    install_handlers(app)
    install_guard(app, settings)
    for group in ROUTE_GROUPS:
        app.include_router(group.router(ctx))
    return app


def limit_gauges(ctx: Context) -> None:
    """Expose the abuse limits' counts in /metrics (totals only: no user name becomes a label)."""
    registry, limiter = ctx.metrics.registry, ctx.limiter
    Gauge("kit_limit_running_generations", "Generations admitted under the per-user cap and not yet ended.",
          registry=registry).set_function(lambda: limiter.counts().running)
    Gauge("kit_limit_users_running", "Users (or keys) with a generation running or queued.",
          registry=registry).set_function(lambda: limiter.counts().users_running)
    refused = Gauge("kit_limit_refusals", "Requests refused by an abuse limit since start, by limit.", ["limit"],
                    registry=registry)
    for name in ("concurrent", "requests_per_minute", "lookups_per_minute", "tokens_per_minute", "tokens_per_day"):
        refused.labels(name).set_function(partial(_refusals, limiter, name))


def _refusals(limiter: Limiter, name: str) -> int:
    return limiter.counts().refused.get(name, 0)
