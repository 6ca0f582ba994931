"""The base of every message: frozen, validated, no unknown fields."""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict


class Message(BaseModel):
    """An immutable, validated value passed between actors."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


def now_ms() -> int:
    """Return the wall-clock time in epoch milliseconds."""
    return time.time_ns() // 1_000_000
