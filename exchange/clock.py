"""The exchange's own time, read from its answers (a paper simulator's clock may run faster than ours)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any


class ServerClock:
    """Epoch ms on the exchange's clock: the `serverTime` of the tickers answer, refreshed on demand."""

    def __init__(self, exchange: Any, rate: float = 1.0) -> None:
        self.exchange = exchange
        self.rate = rate  # exchange seconds per local second: a paper simulator may run faster
        self._reading: tuple[int, float] | None = None  # (server ms, local monotonic s): one atomic value

    def refresh(self) -> int:
        """Ask the exchange for its time (one public tickers request); return it."""
        response = self.exchange.publicGetTickers()
        stamp = response.get("serverTime") if isinstance(response, dict) else None
        if not isinstance(stamp, str):
            raise ValueError(f"the tickers answer carries no serverTime: {str(response)[:200]}")
        server_ms = int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)
        self._reading = (server_ms, time.monotonic())  # read from other threads too (claims): swapped whole
        return server_ms

    def peek(self) -> int | None:
        """The exchange's time now, or None when it has never been read (never asks the exchange)."""
        reading = self._reading
        if reading is None:
            return None
        server_ms, local_at = reading
        return server_ms + int((time.monotonic() - local_at) * 1000 * self.rate)

    def __call__(self) -> int:
        """The exchange's time now: the last reading plus the local time since (refreshed if never read)."""
        now = self.peek()
        return self.refresh() if now is None else now
