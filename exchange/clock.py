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
        self._server_ms: int | None = None
        self._local_at = 0.0

    def refresh(self) -> int:
        """Ask the exchange for its time (one public tickers request); return it."""
        response = self.exchange.publicGetTickers()
        stamp = response.get("serverTime") if isinstance(response, dict) else None
        if not isinstance(stamp, str):
            raise ValueError(f"the tickers answer carries no serverTime: {str(response)[:200]}")
        self._server_ms = int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)
        self._local_at = time.monotonic()
        return self._server_ms

    def __call__(self) -> int:
        """The exchange's time now: the last reading plus the local time since (refreshed if never read)."""
        if self._server_ms is None:
            return self.refresh()
        return self._server_ms + int((time.monotonic() - self._local_at) * 1000 * self.rate)
