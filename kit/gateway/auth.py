"""Sign-in for front ends: password check of local users and who a user is (role), for the browser chat
acting with its service key. The user store stays with the gateway; the chat never opens it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from kit.gateway.context import Context
from kit.gateway.schemas import LoginRequest
from kit.rules.policy import AuthError, Identity
from kit.rules.users import get_role, verify_password


def _front_end(ident: Identity) -> None:
    if ident.via not in ("service", "local") and ident.role != "service":
        raise AuthError("only the browser chat's service key may check passwords or look users up.")


def router(ctx: Context) -> APIRouter:
    api = APIRouter()
    home = ctx.settings.home

    @api.post("/v1/auth/login")
    async def login(request: Request) -> dict[str, Any]:
        caller = await ctx.identify(request)
        _front_end(caller)
        req = LoginRequest.model_validate(await ctx.body(request))
        role = await run_in_threadpool(verify_password, home, req.user, req.password)
        who = Identity(req.user.strip(), "user", "service")
        if role is None:
            await ctx.audit_async(who, "login_failed")
            raise AuthError("wrong user name or password.")
        await ctx.audit_async(who, "login")
        return {"user": who.user, "role": role}

    @api.get("/v1/me")
    async def me(request: Request) -> dict[str, Any]:
        ident = await ctx.identify(request)
        stored = await run_in_threadpool(get_role, home, ident.user)
        return {"user": ident.user, "role": stored or ident.role, "via": ident.via, "known": stored is not None}

    return api
