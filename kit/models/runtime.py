"""Build the engine the configuration asks for: the built-in llama.cpp one, or a remote URL."""

from __future__ import annotations

import os

from kit.config import Settings
from kit.engine.base import Engine


def load_engine(settings: Settings, model: str | None = None) -> Engine:
    """Resolve and verify the model, then start its engine, which declares whether it serves a demonstration model
    (the catalogue's flag). Raises kit errors with the next step."""
    engine = _start(settings, model)
    engine.demo = is_demo(settings, engine.model_name)
    return engine


def is_demo(settings: Settings, name: str) -> bool:
    """The catalogue marks ``name`` as a demonstration model (False for a model it does not list)."""
    from kit.errors import KitError
    from kit.models.catalog import load_catalog

    try:
        return any(e.name == name and e.demo for e in load_catalog(settings.models.catalog).models)
    except KitError:
        return False


def _start(settings: Settings, model: str | None) -> Engine:
    settings.check_engine_contract()
    name = model or settings.models.default
    srv = settings.server
    if srv.engines:
        from kit.engine.pool import EnginePool, PoolSettings

        config = PoolSettings(max_failures=srv.engine_max_failures, probe_every_s=srv.engine_probe_s)
        shared = None
        if os.environ.get("KIT_REDIS_URL", "").strip():  # in-flight counts of every gateway (checked by limits)
            from kit.engine.inflight import SharedInFlight

            shared = SharedInFlight(os.environ["KIT_REDIS_URL"].strip(),
                                    ttl_s=max(15.0, 3 * srv.engine_probe_s))
        return EnginePool.from_entries(srv.engines, model_name=name, ctx=srv.ctx, timeout_s=srv.request_timeout_s,
                                       config=config, api_key=srv.engine_api_key, shared=shared)
    if srv.engine_url:
        from kit.engine.remote import RemoteEngine

        return RemoteEngine(srv.engine_url, model_name=name, api_key=srv.engine_api_key, ctx=srv.ctx,
                            timeout_s=srv.request_timeout_s)
    from kit.engine.llama import LlamaEngine
    from kit.models.catalog import load_catalog
    from kit.models.lock import resolve

    lock, path = resolve(settings.home, load_catalog(settings.models.catalog), name)
    return LlamaEngine(path, model_name=name, model_sha256=lock.sha256, parallel=srv.parallel, ctx=srv.ctx,
                       batch=srv.batch, threads=srv.threads, gpu_layers=srv.gpu_layers, max_queue=srv.max_queue,
                       warm_up=srv.warm_up, prompt_cache_mb=srv.prompt_cache_mb, prefill_chunk=srv.prefill_chunk)
