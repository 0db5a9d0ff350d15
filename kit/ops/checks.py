"""One check of `kit doctor`: a name, PASS, WARN or FAIL, what was found, and how to fix it; and where a service
listens (what the running process noted, else the configuration), which `kit doctor` and `kit report` both state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from kit.files import running

if TYPE_CHECKING:
    from kit.config import Settings

Status = Literal["PASS", "WARN", "FAIL"]


@dataclass
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""


def listening(settings: Settings, service: Literal["api", "ui"]) -> dict[str, Any]:
    """``host``, ``port``, ``running`` and ``since`` of the API (``api``) or the browser chat (``ui``): those the
    running process noted when it started (`kit serve --port`, `kit up`, `kit ui`), else the configured ones."""
    section = settings.server if service == "api" else settings.ui
    noted = running(settings.home, service)
    if noted is None:
        return {"host": section.host, "port": section.port, "running": False, "since": None, "noted": {}}
    return {"host": str(noted.get("host") or section.host), "port": int(noted.get("port") or section.port),
            "running": True, "since": noted.get("started_at"), "noted": noted}
