"""``create_app(settings, engine, state)``: the gateway's FastAPI app, wiring only.

The engine and the stores are passed in; nothing is global. Each route group lives in its own module
(system, auth, chat, charter, privacy, conversations, feedback, admin) and receives the shared Context.
"""

from __future__ import annotations

from fastapi import FastAPI

from kit.config import Settings
from kit.engine.base import Engine
from kit.gateway import admin, auth, charter, chat, conversations, feedback, privacy, system
from kit.gateway.context import Context
from kit.gateway.errors import install_handlers
from kit.gateway.metrics import Metrics
from kit.rules.policy import Gate
from kit.rules.state import GatewayState

ROUTE_GROUPS = (system, auth, chat, charter, privacy, feedback, conversations, admin)


def create_app(settings: Settings, engine: Engine, state: GatewayState) -> FastAPI:
    """The gateway app for one engine and one set of stores."""
    ctx = Context(settings=settings, engine=engine, state=state, gate=Gate(settings, state), metrics=Metrics(engine))
    app = FastAPI(title="kit", version="0.1.0", docs_url=None, redoc_url=None)
    app.state.settings, app.state.engine, app.state.gate, app.state.metrics = settings, engine, ctx.gate, ctx.metrics
    app.state.context = ctx
    install_handlers(app)
    for group in ROUTE_GROUPS:
        app.include_router(group.router(ctx))
    return app
