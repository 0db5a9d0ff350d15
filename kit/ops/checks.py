"""One check of `kit doctor`: a name, PASS, WARN or FAIL, what was found, and how to fix it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["PASS", "WARN", "FAIL"]


@dataclass
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""
