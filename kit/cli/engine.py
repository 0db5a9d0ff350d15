"""`kit engine`: the in-process continuous-batching engine alone, as a member of a gateways' pool."""

from __future__ import annotations

import os
from pathlib import Path

import click

from kit.cli.common import apply_server_options, current_settings
from kit.errors import ConfigError


@click.command()
@click.option("--model", "-m", default=None, help="Installed model name (default: models.default).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Bind address.")
@click.option("--port", default=8100, show_default=True, type=click.IntRange(1, 65535), help="Port.")
@click.option("--parallel", default=None, type=click.IntRange(1, 64), help="Sequences decoded together.")
@click.option("--ctx", default=None, type=click.IntRange(256), help="Context length per sequence.")
@click.option("--gpu-layers", default=None, type=int, help="Layers offloaded to the GPU (-1 all, 0 none).")
@click.option("--threads", default=None, type=click.IntRange(1), help="CPU threads.")
@click.option("--name", default=None, help="Name in /health and /metrics (default: host:port).")
@click.option("--key-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File holding this engine's key (or KIT_ENGINE_API_KEY); required off loopback.")
def engine(model: str | None, host: str, port: int, parallel: int | None, ctx: int | None, gpu_layers: int | None,
           threads: int | None, name: str | None, key_file: Path | None) -> None:
    """Serve the model's raw OpenAI API (no usage rules: those are the gateway's) for `server.engines`."""
    import gc

    import uvicorn

    from kit.config import is_loopback_host
    from kit.gateway.engine_api import create_engine_app
    from kit.gateway.local import http_protocol
    from kit.models.runtime import load_engine

    settings = current_settings()
    key = key_file.read_text(encoding="utf-8").strip() if key_file else os.environ.get("KIT_ENGINE_API_KEY", "").strip()
    if not is_loopback_host(host) and not key:
        raise ConfigError(f"kit engine on {host} would serve prompts to the network without a key: give one with "
                          "--key-file FILE or KIT_ENGINE_API_KEY (the gateways send it: server.engine_api_key "
                          "or server.engines[].api_key).")
    srv = settings.server
    srv.engines, srv.engine_url = [], None  # this process runs the model itself
    apply_server_options(settings, model, parallel=parallel, ctx=ctx, gpu_layers=gpu_layers, threads=threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    loaded = load_engine(settings)
    gc.collect()
    gc.freeze()  # the loaded libraries stay out of the collector's full passes (see `kit serve`)
    app = create_engine_app(loaded, api_key=key or None, name=name or f"{host}:{port}",
                            max_tokens_default=srv.max_tokens_default, timeout_s=srv.request_timeout_s, host=host)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, timeout_graceful_shutdown=5,
                    http=http_protocol(loaded), timeout_keep_alive=srv.keep_alive_s)
    finally:
        loaded.close()


def register(cli: click.Group) -> None:
    cli.add_command(engine)
