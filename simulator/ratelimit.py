"""Kraken Futures API cost budgets: 500 per 10 s on /derivatives, 100 tokens per 10 min on /history."""

from __future__ import annotations

import threading
from collections.abc import Mapping

# Kraken's cost table is shared with the gateway's own pacing: one source of truth.
from exchange.budget import BATCH_BASE_COST, DERIVATIVES_COSTS, FILLS_WITH_LAST_FILL_TIME_COST, HISTORY_COSTS

__all__ = ["BATCH_BASE_COST", "DERIVATIVES_COSTS", "FILLS_WITH_LAST_FILL_TIME_COST", "HISTORY_COSTS",
           "RateLimiter", "TokenBucket", "derivatives_cost"]


def derivatives_cost(endpoint: str, params: Mapping[str, object], batch_size: int = 0) -> int:
    """Cost units a private /derivatives request spends."""
    if endpoint == "batchorder":
        return BATCH_BASE_COST + batch_size
    if endpoint == "fills" and params.get("lastFillTime"):
        return FILLS_WITH_LAST_FILL_TIME_COST
    return DERIVATIVES_COSTS.get(endpoint, 1)


class TokenBucket:
    """A pool of `capacity` units refilled continuously at `capacity` per `period_ms`."""

    def __init__(self, capacity: float, period_ms: float, now_ms: int) -> None:
        self.capacity = capacity
        self._rate = capacity / period_ms
        self._tokens = capacity
        self._stamp = now_ms
        self._lock = threading.Lock()

    def tokens(self, now_ms: int) -> float:
        """Units available at `now_ms`."""
        with self._lock:
            self._refill(now_ms)
            return self._tokens

    def _refill(self, now_ms: int) -> None:
        """Add what accrued since the last call."""
        if now_ms > self._stamp:
            self._tokens = min(self.capacity, self._tokens + (now_ms - self._stamp) * self._rate)
            self._stamp = now_ms

    def spend(self, cost: float, now_ms: int) -> bool:
        """Take `cost` units if available; False (and nothing taken) otherwise."""
        with self._lock:
            self._refill(now_ms)
            if self._tokens + 1e-9 < cost:
                return False
            self._tokens -= cost
            return True


class RateLimiter:
    """The two budgets of one account; disabled means every request passes."""

    def __init__(self, now_ms: int, enabled: bool = True) -> None:
        self.enabled = enabled
        self.derivatives = TokenBucket(500, 10_000, now_ms)
        self.history = TokenBucket(100, 600_000, now_ms)

    def allow(self, pool: str, cost: int, now_ms: int) -> bool:
        """Spend `cost` from `pool` (`derivatives` or `history`) if enabled; False when over budget."""
        if not self.enabled:
            return True
        bucket = self.derivatives if pool == "derivatives" else self.history
        return bucket.spend(cost, now_ms)

    def reset(self, now_ms: int) -> None:
        """Refill both budgets."""
        self.derivatives = TokenBucket(500, 10_000, now_ms)
        self.history = TokenBucket(100, 600_000, now_ms)
