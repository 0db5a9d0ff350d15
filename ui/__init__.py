"""The browser chat of kit (Gradio), a client of the gateway API.

Importing this package turns Gradio's analytics (and FastAPI's OpenTelemetry exporters) off before
Gradio itself is imported.
"""

from __future__ import annotations

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["FASTAPI_OTEL_AUTO_CONFIGURE"] = "false"  # Gradio's app is a FastAPI app: no OTLP exporters
os.environ["OTEL_SDK_DISABLED"] = "true"

__all__ = ["create_ui", "launch_ui"]


def __getattr__(name: str):  # lazy: `import ui` stays light until the app is needed
    if name in __all__:
        from ui import app

        return getattr(app, name)
    raise AttributeError(name)
