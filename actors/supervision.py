"""When to restart a symbol actor that died, and when to give up and halt the symbol."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class RestartPolicy:
    """Exponential back-off between restarts; more than `max_restarts` deaths within `window_s` halts."""

    max_restarts: int
    window_s: float
    backoff_initial_s: float
    backoff_max_s: float
    clock: Callable[[], float] = time.monotonic
    _deaths: dict[str, deque[float]] = field(default_factory=dict)
    _restarts: dict[str, int] = field(default_factory=dict)

    def on_death(self, symbol: str) -> float | None:
        """Record a death; return the delay before the restart, or None when the symbol must halt."""
        now = self.clock()
        deaths = self._deaths.setdefault(symbol, deque())
        deaths.append(now)
        while deaths and deaths[0] < now - self.window_s:
            deaths.popleft()
        if len(deaths) > self.max_restarts:
            return None
        self._restarts[symbol] = self._restarts.get(symbol, 0) + 1
        return min(self.backoff_initial_s * (2 ** (len(deaths) - 1)), self.backoff_max_s)

    def restarts(self, symbol: str) -> int:
        """How many times the symbol was restarted."""
        return self._restarts.get(symbol, 0)

    def deaths_in_window(self, symbol: str) -> int:
        """Deaths counted in the current window."""
        return len(self._deaths.get(symbol, ()))
