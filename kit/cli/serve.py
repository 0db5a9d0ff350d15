"""`kit serve`: the API gateway in front of the engine."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from kit.cli.common import apply_server_options, current_settings

if TYPE_CHECKING:
    from kit.config import Settings


@click.command()
@click.option("--model", "-m", default=None, help="Installed model name (default: models.default).")
@click.option("--host", default=None, help="Bind address (default: server.host, 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default: server.port, 8000).")
@click.option("--parallel", default=None, type=click.IntRange(1, 64), help="Sequences decoded together.")
@click.option("--ctx", default=None, type=click.IntRange(256), help="Context length per sequence.")
@click.option("--gpu-layers", default=None, type=int, help="Layers offloaded to the GPU (-1 all, 0 none).")
@click.option("--threads", default=None, type=click.IntRange(1), help="CPU threads.")
@click.option("--insecure-no-auth", is_flag=True,
              help="Allow a non-loopback address without API keys. Anyone who reaches the port can use it.")
def serve(model: str | None, host: str | None, port: int | None, parallel: int | None, ctx: int | None,
          gpu_layers: int | None, threads: int | None, insecure_no_auth: bool) -> None:
    """Serve the OpenAI-compatible API with continuous batching."""
    settings = current_settings()
    apply_server_options(settings, model, host=host, port=port, parallel=parallel, ctx=ctx, gpu_layers=gpu_layers,
                         threads=threads)
    if insecure_no_auth:
        settings.server.allow_insecure_bind = True
    run_server(settings)


def run_server(settings: Settings) -> None:
    """Load the model, open the stores and serve until interrupted."""
    import gc
    import os
    import threading

    import uvicorn

    from kit.files import forget_running, note_running
    from kit.gateway.app import create_app
    from kit.gateway.local import http_protocol
    from kit.models.runtime import load_engine
    from kit.rules.privacy import get_detector
    from kit.storage.state import open_state, start_maintenance

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    settings.require_purpose()
    settings.check_engine_contract()
    # The personal-data models load beside the model and the stores (spaCy in Python, llama.cpp mostly in C
    # with the interpreter released): /health answers 503 "starting" until they are in, so load balancers and
    # `kit up` send no user to a server whose first scans would wait for them.
    detector = threading.Thread(target=lambda: get_detector().scan("warm-up"), name="kit-pii-load", daemon=True)
    detector.start()
    state = open_state(settings)
    engine = load_engine(settings)
    app = create_app(settings, engine, state)
    stop = start_maintenance(state, settings)
    warm = app.state.context.warm
    warm.clear()

    def warm_up() -> None:
        detector.join()
        # What is loaded by now (libraries, the personal-data models) stays out of the collector's full
        # passes: each took 0.1-0.3 s over those objects, holding the interpreter while no token streamed.
        gc.collect()
        gc.freeze()
        warm.set()

    threading.Thread(target=warm_up, name="kit-pii-warmup", daemon=True).start()
    noted = note_running(settings.home, "api", host=settings.server.host, port=settings.server.port,
                         model=engine.model_name)  # `kit report` states where the API really listens
    try:
        uvicorn.run(app, host=settings.server.host, port=settings.server.port, log_level="warning",
                    access_log=False, timeout_graceful_shutdown=5, http=http_protocol(engine),
                    timeout_keep_alive=settings.server.keep_alive_s)
    finally:
        forget_running(noted)
        stop.set()
        engine.close()
        state.close()


def register(cli: click.Group) -> None:
    """Add `serve` to the kit command line."""
    cli.add_command(serve)
