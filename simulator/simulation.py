"""One simulator instance: clock, markets, account, authentication, budgets and faults, wired together."""

from __future__ import annotations

import threading
from collections import deque
from decimal import Decimal

from simulator.api import KrakenApi
from simulator.auth import Authenticator, generate_credentials
from simulator.clock import Clock, RealClock, SteppedClock, wall_ms
from simulator.config import SimulatorConfig
from simulator.engine import Exchange
from simulator.faults import FaultInjector
from simulator.instruments import INSTRUMENTS, Instrument, resolve_symbol
from simulator.prices import MarketData
from simulator.ratelimit import RateLimiter

REQUEST_LOG_SIZE = 10_000


def select_instruments(symbols: list[str] | None) -> dict[str, Instrument]:
    """The configured subset of markets (all when None); ValueError on an unknown symbol."""
    if symbols is None:
        return dict(INSTRUMENTS)
    chosen: dict[str, Instrument] = {}
    for name in symbols:
        symbol = resolve_symbol(name)
        if symbol is None:
            raise ValueError(f"unknown market {name!r}")
        chosen[symbol] = INSTRUMENTS[symbol]
    return chosen


class Simulator:
    """Everything behind the HTTP server; rebuildable in place by `reset`."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        if config.api_key and config.api_secret:
            self.api_key, self.api_secret = config.api_key, config.api_secret
        else:
            key, secret = generate_credentials()
            self.api_key = config.api_key or key
            self.api_secret = config.api_secret or secret
        self.instruments = select_instruments(config.symbols)
        self.stop_event = threading.Event()
        self.requests: deque[dict[str, object]] = deque(maxlen=REQUEST_LOG_SIZE)
        self._build(config.start_time_ms)

    def _build(self, start_ms: int | None) -> None:
        """Create clock, markets, account, budgets, faults and API from the configuration."""
        cfg = self.config
        start = wall_ms() if start_ms is None else start_ms
        self.clock: Clock = SteppedClock(start) if cfg.clock == "stepped" else RealClock(start, cfg.speed)
        self.market = MarketData(
            self.instruments,
            seed=cfg.seed,
            start_ms=start,
            tick_ms=cfg.tick_ms,
            volatility=cfg.volatility,
            spread=cfg.spread,
            history_days=cfg.history_days,
        )
        self.exchange = Exchange(
            self.market, self.clock, self.instruments, Decimal(repr(cfg.initial_balance)), seed=cfg.seed,
            cli_ord_id_scope=cfg.cli_ord_id_scope,
        )
        for name in cfg.faults.suspended:
            symbol = resolve_symbol(name)
            if symbol in self.instruments:
                self.exchange.suspended.add(symbol)
        self.limiter = RateLimiter(self.clock.now_ms(), cfg.rate_limit)
        self.faults = FaultInjector(cfg.faults.model_copy(deep=True), cfg.seed)
        self.api = KrakenApi(self.exchange, Authenticator(self.api_key, self.api_secret), self.limiter,
                             cfg.status_window_ms)
        self.exchange.sync()

    def reset(self) -> None:
        """Start over: fresh account, markets, budgets and faults (same seed, same keys)."""
        self.requests.clear()
        self._build(self.config.start_time_ms)

    def log_request(self, entry: dict[str, object]) -> None:
        """Remember one served Kraken request (no headers, so no secrets)."""
        self.requests.append(entry)
