"""Kraken Futures' API cost budget, kept on our side so that normal operation never draws apiLimitExceeded.

Kraken charges each private /derivatives request a cost from a pool of 500 units refilled over 10 s,
and the history endpoints from a separate pool of 100 tokens refilled over 10 minutes. The gateway
spends from these buckets before each call and waits when a bucket is empty, instead of ccxt's flat
600 ms between requests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# Cost of each private /derivatives endpoint (Kraken's "Derivatives Rate Limits" table).
DERIVATIVES_COSTS: dict[str, int] = {
    "sendorder": 10,
    "editorder": 10,
    "cancelorder": 10,
    "accounts": 2,
    "openpositions": 2,
    "fills": 2,
    "cancelallorders": 25,
    "cancelallordersafter": 25,
    "openorders": 2,
    "orders/status": 1,
    "feeschedules/volumes": 1,
}
FILLS_WITH_LAST_FILL_TIME_COST = 25
BATCH_BASE_COST = 9
HISTORY_COSTS: dict[str, int] = {"orders": 1, "triggers": 1, "executions": 1}
# history/v3/account-log costs by its `count` (default 500): Kraken's "Futures Rate Limits" guide,
# https://docs.kraken.com/api/docs/guides/futures-rate-limits ("accountlog (count: 1 - 25) 1 ... 5001 - 100000 10")
ACCOUNT_LOG_COSTS: tuple[tuple[int, int], ...] = ((25, 1), (50, 2), (1000, 3), (5000, 6), (100_000, 10))
ACCOUNT_LOG_DEFAULT_COUNT = 500
DERIVATIVES_POOL = (500, 10.0)  # units, seconds to refill fully
HISTORY_POOL = (100, 600.0)


def derivatives_cost(endpoint: str, fills_since: bool = False, batch_size: int = 0) -> int:
    """Cost units a private /derivatives request spends."""
    if endpoint == "batchorder":
        return BATCH_BASE_COST + batch_size
    if endpoint == "fills" and fills_since:
        return FILLS_WITH_LAST_FILL_TIME_COST
    return DERIVATIVES_COSTS.get(endpoint, 1)


def account_log_cost(count: int | None) -> int:
    """History tokens one account-log request of `count` entries spends (no count: Kraken's default, 500)."""
    wanted = ACCOUNT_LOG_DEFAULT_COUNT if count is None else count
    for most, cost in ACCOUNT_LOG_COSTS:
        if wanted <= most:
            return cost
    return ACCOUNT_LOG_COSTS[-1][1]


class Bucket:
    """A pool of `capacity` units refilled continuously over `period_s`; `take` waits for room."""

    def __init__(self, capacity: float, period_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = capacity
        self.rate = capacity / period_s
        self.clock = clock
        self._tokens = capacity
        self._stamp = clock()
        self._lock = threading.Lock()

    def available(self) -> float:
        """Units available now."""
        with self._lock:
            self._refill()
            return self._tokens

    def take(self, cost: float, sleep: Callable[[float], None] = time.sleep) -> float:
        """Spend `cost` units, waiting until they are there; return the seconds waited."""
        waited = 0.0
        cost = min(cost, self.capacity)
        while True:
            with self._lock:
                self._refill()
                if self._tokens + 1e-9 >= cost:
                    self._tokens -= cost
                    return waited
                pause = (cost - self._tokens) / self.rate
            sleep(pause)
            waited += pause

    def _refill(self) -> None:
        now = self.clock()
        if now > self._stamp:
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now


class CostBudget:
    """Both of an account's pools, with a safety margin below Kraken's limits."""

    def __init__(self, margin: float = 0.9, clock: Callable[[], float] = time.monotonic) -> None:
        units, period = DERIVATIVES_POOL
        tokens, history_period = HISTORY_POOL
        self.derivatives = Bucket(units * margin, period, clock)
        self.history = Bucket(tokens * margin, history_period, clock)

    def spend(self, endpoint: str, *, fills_since: bool = False, batch_size: int = 0) -> float:
        """Wait for and spend the cost of one /derivatives request; return the seconds waited."""
        return self.derivatives.take(derivatives_cost(endpoint, fills_since, batch_size))

    def spend_history(self, endpoint: str = "orders", count: int | None = None) -> float:
        """Wait for and spend one history request's tokens (the account log's depend on its `count`)."""
        cost = account_log_cost(count) if endpoint == "account-log" else HISTORY_COSTS.get(endpoint, 1)
        return self.history.take(cost)

    def history_available(self) -> bool:
        """True when a history request could go now without waiting."""
        return self.history.available() >= 1
