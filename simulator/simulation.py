"""One simulator instance: clock, markets, account, authentication, budgets and faults, wired together."""

from __future__ import annotations

import heapq
import itertools
import threading
from collections import deque
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from loguru import logger

from simulator.api import ApiResponse, KrakenApi
from simulator.auth import Authenticator, generate_credentials
from simulator.clock import Clock, RealClock, SteppedClock, wall_ms
from simulator.config import SimulatorConfig
from simulator.engine import Exchange
from simulator.faults import FaultInjector
from simulator.instruments import INSTRUMENTS, Instrument, resolve_symbol, synthetic_markets
from simulator.orders import iso
from simulator.prices import MarketData
from simulator.ratelimit import RateLimiter
from simulator.state import (
    STATE_CHANGING_ENDPOINTS,
    StateFileError,
    StateStore,
    apply_state,
)

REQUEST_LOG_SIZE = 10_000
MarketFactory = Callable[[dict[str, Instrument], int], MarketData]  # (markets, start ms) -> their price paths


def select_instruments(symbols: list[str] | None, extra_markets: int = 0) -> dict[str, Instrument]:
    """The configured subset of markets (all when None, with `extra_markets` synthetic ones after the real
    ones); ValueError on an unknown symbol."""
    listed = {**INSTRUMENTS, **synthetic_markets(extra_markets)}
    if symbols is None:
        return listed
    chosen: dict[str, Instrument] = {}
    for name in symbols:
        symbol = resolve_symbol(name)
        if symbol is None or symbol not in listed:
            raise ValueError(f"unknown market {name!r}")
        chosen[symbol] = listed[symbol]
    return chosen


class Simulator:
    """Everything behind the HTTP server; rebuildable in place by `reset`."""

    def __init__(self, config: SimulatorConfig, market_factory: MarketFactory | None = None) -> None:
        self.config = config
        self.market_factory = market_factory  # None: the seeded random walk; e.g. a replay of history (backtests)
        if config.api_key and config.api_secret:
            self.api_key, self.api_secret = config.api_key, config.api_secret
        else:
            key, secret = generate_credentials()
            self.api_key = config.api_key or key
            self.api_secret = config.api_secret or secret
        self.instruments = select_instruments(config.symbols, config.extra_markets)
        self.stop_event = threading.Event()
        self.requests: deque[dict[str, object]] = deque(maxlen=REQUEST_LOG_SIZE)
        # `late` fault: requests held inside the exchange, processed at their due time on the simulator clock
        self._late: list[tuple[int, int, dict[str, Any]]] = []
        self._late_seq = itertools.count()
        self._late_lock = threading.RLock()
        self.state_store: StateStore | None = None
        saved: dict[str, Any] | None = None
        if config.state_file:
            self.state_store = StateStore(
                config.state_file,
                lambda: self.exchange,
                self._state_config(),
                interval_s=config.state_save_interval_s,
                gap_s=config.state_save_gap_s,
                keep_minutes=config.state_bar_minutes,
            )
            saved = self.state_store.open()
        try:
            self._build(config.start_time_ms, saved)
            if self.state_store is not None:
                self.state_store.save(force=True)  # fails now, not later, if the file cannot be written
        except BaseException:
            self.close(save=False)
            raise
        if self.state_store is not None:
            self.state_store.start()

    def _state_config(self) -> dict[str, object]:
        """The settings recorded in the state file (no keys)."""
        cfg = self.config
        return {
            "seed": cfg.seed,
            "clock": cfg.clock,
            "speed": cfg.speed,
            "tick_ms": cfg.tick_ms,
            "volatility": cfg.volatility,
            "spread": cfg.spread,
            "symbols": list(self.instruments),
            "cli_ord_id_scope": cfg.cli_ord_id_scope,
            "honour_process_before": cfg.honour_process_before,
            "market_fill": cfg.market_fill,
            "resting_fill": cfg.resting_fill,
            "history_lag_ms": cfg.history_lag_ms,
            "edit_requires_stop_price": cfg.edit_requires_stop_price,
            "edit_qty_mode": cfg.edit_qty_mode,
            "trailing_range": cfg.trailing_range,
            "dead_man_scope": cfg.dead_man_scope,
            "reduce_only_orphans": cfg.reduce_only_orphans,
        }

    def _build(self, start_ms: int | None, saved: dict[str, Any] | None = None) -> None:
        """Create clock, markets, account, budgets, faults and API from the configuration (and a saved state)."""
        cfg = self.config
        start = wall_ms() if start_ms is None else start_ms
        if saved is not None:
            assert self.state_store is not None
            try:
                start = int(saved["clock"]["now"])
            except (KeyError, TypeError, ValueError) as exc:
                raise StateFileError(f"simulator state file {self.state_store.path} has no clock time") from exc
        self.clock: Clock = SteppedClock(start) if cfg.clock == "stepped" else RealClock(start, cfg.speed)
        self.market = self.market_factory(self.instruments, start) if self.market_factory else MarketData(
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
            cli_ord_id_scope=cfg.cli_ord_id_scope, honour_process_before=cfg.honour_process_before,
            market_fill=cfg.market_fill, resting_fill=cfg.resting_fill, history_lag_ms=cfg.history_lag_ms,
            history_page_max=cfg.history_page_max, edit_requires_stop_price=cfg.edit_requires_stop_price,
            edit_qty_mode=cfg.edit_qty_mode, trailing_range=cfg.trailing_range, dead_man_scope=cfg.dead_man_scope,
            reduce_only_orphans=cfg.reduce_only_orphans,
            maker_fee=Decimal(repr(cfg.maker_fee)), taker_fee=Decimal(repr(cfg.taker_fee)),
            funding_rate=None if cfg.funding_rate is None else Decimal(repr(cfg.funding_rate)),
            account_log_page_max=cfg.account_log_page_max,
        )
        if saved is not None:
            assert self.state_store is not None
            apply_state(self.state_store.path, saved, self.exchange)
            self._log_resume(saved)
        for name in cfg.faults.suspended:
            symbol = resolve_symbol(name)
            if symbol in self.instruments:
                self.exchange.suspended.add(symbol)
        self.limiter = RateLimiter(self.clock.now_ms(), cfg.rate_limit)
        self.faults = FaultInjector(cfg.faults.model_copy(deep=True), cfg.seed)
        self.api = KrakenApi(self.exchange, Authenticator(self.api_key, self.api_secret), self.limiter,
                             cfg.status_window_ms, cfg.batch_max_instructions)
        self.exchange.sync()

    def _log_resume(self, saved: dict[str, Any]) -> None:
        """Say what was resumed, and which settings differ from the saved ones."""
        ex = self.exchange
        logger.info(
            "simulator: resumed the paper account from {}: {} orders ({} working), {} fills, {} positions, "
            "balance {} USD, clock at {}",
            self.state_store.path if self.state_store else "?", len(ex.orders),
            sum(len(b) for b in ex.working.values()), len(ex.fills), sum(1 for p in ex.positions.values() if p.size),
            ex.balance, iso(self.clock.now_ms()),
        )
        before = saved.get("config")
        if isinstance(before, dict):
            now = self._state_config()
            changed = {k: (before.get(k), v) for k, v in now.items() if k in before and before[k] != v}
            if changed:
                logger.info("simulator: settings changed since the state was saved (the new ones apply): {}",
                            ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changed.items()))

    def reset(self) -> None:
        """Start over: fresh account, markets, budgets and faults (same seed, same keys).

        With a state file, the fresh state overwrites the saved one at once, so a restart after a reset
        starts from the reset state too.
        """
        self.requests.clear()
        with self._late_lock:
            self._late.clear()
        if self.state_store is None:
            self._build(self.config.start_time_ms)
            return
        with self.state_store.lock:
            self._build(self.config.start_time_ms)
            self.state_store.save(force=True)
        logger.info("simulator: reset; {} now holds the fresh account", self.state_store.path)

    def after_request(self, endpoint: str) -> None:
        """Hook after a Kraken request was served (before it is answered): persist order changes."""
        if self.state_store is not None and endpoint in STATE_CHANGING_ENDPOINTS:
            self.state_store.after_change()

    def close(self, save: bool = True) -> None:
        """Save the state a last time (unless `save` is False) and stop saving; after the server stopped."""
        if self.state_store is not None:
            self.state_store.close(save)

    def log_request(self, entry: dict[str, object]) -> None:
        """Remember one served Kraken request (no headers, so no secrets)."""
        self.requests.append(entry)

    def log_answer(self, entry: dict[str, object], response: ApiResponse) -> None:
        """Remember a request the API answered: its entry with the answer's status, result and error."""
        entry["status"] = response.status
        entry["result"] = response.body.get("result")
        if response.body.get("error"):
            entry["error"] = response.body["error"]
        self.log_request(entry)

    # -- the `late` fault ------------------------------------------------------------------
    def defer(self, due_ms: int, request: dict[str, Any]) -> None:
        """Hold a Kraken request inside the exchange until `due_ms` (simulator clock), then process it."""
        with self._late_lock:
            heapq.heappush(self._late, (due_ms, next(self._late_seq), request))
        logger.debug("simulator: holding a {} request until {}", request.get("endpoint"), iso(due_ms))

    def next_late_ms(self) -> int | None:
        """When the next held request is due, or None."""
        with self._late_lock:
            return self._late[0][0] if self._late else None

    def pending_late(self) -> int:
        """How many held requests still wait for processing."""
        with self._late_lock:
            return len(self._late)

    def run_due(self) -> int:
        """Process every held request whose time has come (oldest first); returns how many ran."""
        ran = 0
        with self._late_lock:
            while self._late and self._late[0][0] <= self.clock.now_ms():
                _, _, req = heapq.heappop(self._late)
                context = {"received_ms": req["received_ms"], "fault": "late"}
                response = self.api.handle(req["method"], req["path"], req["query"], req["body"], req["headers"],
                                           context)
                self.after_request(str(req["endpoint"]))
                self.log_request({"time": self.clock.now_ms(), "method": req["method"], "endpoint": req["endpoint"],
                                  "target": req["target"], "fault": "late", "processed": True,
                                  "received": req["received_ms"], "status": response.status,
                                  "result": response.body.get("result")})
                ran += 1
        return ran

    def step_to(self, target_ms: int) -> int:
        """Advance a stepped clock to `target_ms`, processing held requests exactly at their due times."""
        while True:
            due = self.next_late_ms()
            now = self.clock.now_ms()
            if due is None or due > target_ms:
                break
            if due > now:
                self.clock.advance(due - now)
                self.exchange.sync()
            self.run_due()
        now = self.clock.now_ms()
        if target_ms > now:
            self.clock.advance(target_ms - now)
        return self.exchange.sync()
