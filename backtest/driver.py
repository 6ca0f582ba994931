"""A backtest: the trading system's own actors on the simulator replaying history, stepped candle by candle.

What runs is what trades: the symbol actors with their strategies and the whole guard chain, the portfolio's risk
book and supervision, the persistence actor's claims on a SQLite file, the gateway with its open-order check, and
the real `ccxt.krakenfutures` client building, signing and parsing every request. The exchange is the simulator
(matching on its finite book, fees, funding), replaying the candles as its price path (simulator.replay) on a
stepped clock and reached in this process (simulator.inprocess) instead of over a socket.

One step, for each close time T of the data:
1. the simulator's clock moves to T: every tick up to T is replayed (the candles that closed, and the next
   candle's open at T), resting and trigger orders trade on them;
2. if anything traded or funding was booked while it moved, the gateway looks (the poll it makes on a timer live)
   and the driver waits until every report has reached the actors;
3. each symbol actor is handed the candle that closed at T and answers with its decision (the market-data actor's
   fetch and the portfolio's routing are the only hops of the live path left out: the driver delivers the same
   Candle values);
4. if a decision sent an order, the driver waits until the gateway has nothing in flight and the fills, position
   syncs and fees have reached the actors and the database.
The simulator's clock stands still while the bot works, so a processBefore never runs out on a slow machine, and
nothing the bot decides depends on how fast it ran: the same data, configuration and seed give the same trades.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pykka
from loguru import logger

from actors import TradingSystem, gateway_settings_for
from actors.system import CoreActorDied
from backtest.data import unified_symbol
from backtest.download import iso
from backtest.result import BacktestResult, EquityPoint, FillRecord, FundingRecord
from configuration import AppConfig
from exchange import load_market_specs
from messages import Candles, EventKind, GetInFlight, GetStatus, Ping, SymbolState, Tick
from messages.market import Candle, timeframe_ms
from persistence import open_database
from persistence.queries import EXTERNAL, KIND_NAMES, fills_with_kind, funding_payments
from persistence.store import Store
from simulator.config import SimulatorConfig
from simulator.inprocess import in_process_client
from simulator.instruments import resolve_symbol
from simulator.orders import UNTRIGGERED
from simulator.replay import ReplayMarketData
from simulator.simulation import Simulator
from strategies import Strategy, build_strategy

ASK_TIMEOUT_S = 30.0  # one actor's answer; a backtest waits, it never gives up on a slow machine
SETTLE_ROUNDS_MAX = 200  # polls of one settle before the backtest stops and says what is still in flight
SYNTHETIC_ID = re.compile(r"PF_X\d{3}USD")  # the simulator's synthetic markets (simulator.instruments)
NEVER_S = 86_400.0 * 365  # a live timer a backtest drives itself instead (polls, syncs, reconciliation)


class BacktestError(RuntimeError):
    """A backtest cannot start or carry on; the message says why and what to change."""


class SimulatorTime:
    """The bot's exchange clock in a backtest: the simulator's stepped clock, read in this process."""

    rate = 1.0

    def __init__(self, simulator: Simulator) -> None:
        self.simulator = simulator

    def __call__(self) -> int:
        """The exchange's time now."""
        return self.simulator.clock.now_ms()

    def peek(self) -> int:
        """The exchange's time now (always known)."""
        return self.simulator.clock.now_ms()

    def refresh(self) -> int:
        """The exchange's time now."""
        return self.simulator.clock.now_ms()

    def seconds(self) -> float:
        """The replay's time in seconds: the gateway's own clock in a backtest (limit time-outs)."""
        return self.simulator.clock.now_ms() / 1000


@dataclass(frozen=True)
class BacktestSettings:
    """The exchange side of a backtest: the paper account, spread, fees, funding, seed."""

    seed: int = 42
    initial_balance: Decimal = Decimal(100_000)
    spread: float = 0.0002
    funding_rate: float = 0.0
    maker_fee: float = 0.0002
    taker_fee: float = 0.0005


@dataclass
class Progress:
    """Where a running backtest is: steps done of all (read from another thread for a progress bar)."""

    total: int
    done: int = 0
    time_ms: int = 0


def backtest_config(config: AppConfig) -> AppConfig:
    """The configuration the actors run with in a backtest: the user's, with the live timers the driver replaces
    switched off and the dead man's switch off (its heartbeat is wall-clock time, the replay's clock is not)."""
    data = config.model_dump()
    data["mode"] = "paper"
    data["trading"]["position_sync_interval_s"] = 3600
    data["exchange"]["reconcile_interval_s"] = 3600
    data["retention"].update({"orders_days": 0, "fills_days": 0, "events_days": 0, "check_interval_s": 7 * 86_400})
    data["protection"]["dead_man_timeout_s"] = 0
    data["database"]["sqlite_synchronous"] = "NORMAL"  # a backtest database is rebuilt by running it again
    return AppConfig.model_validate(data)


def memory_folder() -> str | None:
    """Where a backtest's database goes: /dev/shm (memory) where the system has it, else the temporary folder. The
    database is the bot's own, written as live (each claim durable before its send), rebuilt by every run."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


class Backtest:
    """One backtest run; `run()` returns its BacktestResult (partial when `stop` is set while it runs)."""

    def __init__(self, config: AppConfig, candles: Mapping[str, Sequence[Candle]], *,
                 settings: BacktestSettings | None = None,
                 strategy_factory: Callable[[str], Strategy] | None = None,
                 database_path: Path | None = None) -> None:
        self.config = backtest_config(config)
        self.settings = settings or BacktestSettings()
        self.timeframe = self.config.trading.timeframe
        try:
            self.tf_ms = timeframe_ms(self.timeframe)
        except ValueError as exc:
            raise BacktestError(str(exc)) from None
        self.symbols = tuple(self.config.trading.symbols)
        missing = [s for s in self.symbols if not candles.get(s)]
        if missing:
            raise BacktestError(f"no candles for {', '.join(missing)} in the chosen period")
        self.candles = {s: tuple(candles[s]) for s in self.symbols}
        self.strategy_factory = strategy_factory
        self.database_path = database_path
        self.stop = threading.Event()
        self.steps = _steps(self.candles, self.tf_ms)
        self.progress = Progress(total=len(self.steps))
        self.equity: list[EquityPoint] = []
        self.candle_steps = 0
        self._fills_seen = 0
        self._funding_seen = 0

    # --- the run ------------------------------------------------------------------------------

    def run(self) -> BacktestResult:
        """Start the simulator and the actors, step through every candle (or until `stop`), stop, report."""
        with tempfile.TemporaryDirectory(prefix="kraken-backtest-", dir=memory_folder()) as folder:
            db_path = self.database_path or Path(folder) / "backtest.db"
            if db_path.exists():
                raise BacktestError(f"{db_path} exists: a backtest writes a fresh database; choose another path")
            sim = self._simulator()
            try:
                system = self._system(sim, f"sqlite:///{db_path}")
            except CoreActorDied as exc:
                raise BacktestError(f"the trading system did not start: {exc}; the log above says why") from None
            complete = False
            try:
                refs = self._ready(system)
                complete = self._steps_loop(sim, system, refs)
                self._settle(sim, system)
                self._final_reads(sim, system)
            finally:
                system.stop()
                sim.close(save=False)
            return self._result(sim, db_path, complete)

    def _simulator(self) -> Simulator:
        s = self.settings
        kraken = {symbol: resolve_symbol(symbol) for symbol in self.symbols}
        unknown = [symbol for symbol, kid in kraken.items() if kid is None]
        if unknown:
            raise BacktestError(f"the simulator lists no market {', '.join(unknown)}")
        by_kraken = {kid: self.candles[symbol] for symbol, kid in kraken.items() if kid is not None}
        start = min(c[0].open_time for c in self.candles.values())
        synthetic = [int(kid[4:7]) for kid in by_kraken if SYNTHETIC_ID.fullmatch(kid)]  # PF_X001USD...: benchmarks
        cfg = SimulatorConfig(clock="stepped", start_time_ms=start, symbols=list(self.symbols), seed=s.seed,
                              extra_markets=max(synthetic, default=0),
                              initial_balance=float(s.initial_balance), spread=s.spread, rate_limit=False,
                              funding_rate=s.funding_rate, maker_fee=s.maker_fee, taker_fee=s.taker_fee,
                              history_days=0)
        tf_ms = self.tf_ms
        return Simulator(cfg, market_factory=lambda instruments, _start: ReplayMarketData(
            instruments, by_kraken, tf_ms, cfg.spread))

    def _system(self, sim: Simulator, database_url: str) -> TradingSystem:
        private = in_process_client(sim)
        public = in_process_client(sim, private=False)
        markets = load_market_specs(public, list(self.symbols))
        private.load_markets()
        clock = SimulatorTime(sim)
        cfg = self.config
        factory = self.strategy_factory or (lambda _symbol: build_strategy(cfg.strategy.name, cfg.strategy.params))
        system = TradingSystem(
            config=cfg, database_url=database_url, private_exchange=private, public_exchange=None, markets=markets,
            strategy_factory=factory, candle_clock=clock, gateway_clock=clock.seconds, ask_timeout_s=ASK_TIMEOUT_S,
            budget=None,
            gateway_settings=gateway_settings_for(cfg, poll_interval_s=NEVER_S, gather_s=0.0, gather_max_s=0.0,
                                                  account_log_interval_s=0.0, funding_interval_s=0.0),
        )
        return system.start()

    def _ready(self, system: TradingSystem) -> dict[str, Any]:
        """Wait until every symbol actor has reconciled; its reference."""
        refs = system.symbol_actors()
        deadline = time.monotonic() + 60
        for symbol, ref in refs.items():
            while True:
                if ref is None:
                    raise BacktestError(f"{symbol}: no symbol actor started")
                if ref.ask(GetStatus(), block=True, timeout=ASK_TIMEOUT_S).state is not SymbolState.SYNCING:
                    break
                if time.monotonic() > deadline:
                    raise BacktestError(f"{symbol} did not reconcile with the simulator within 60 s")
                threading.Event().wait(0.01)
        return refs

    def _steps_loop(self, sim: Simulator, system: TradingSystem, refs: dict[str, Any]) -> bool:
        """Every step in turn; False when stopped before the end."""
        exchange = sim.exchange
        for close_ms, batch in self.steps:
            if self.stop.is_set():
                return False
            sim.step_to(close_ms)
            if (len(exchange.fills) != self._fills_seen or len(exchange.account_log.entries) != self._funding_seen
                    or _resting_orders(exchange)):  # a resting order is looked at each step (its limit time-out)
                self._settle(sim, system)
            futures = [(symbol, refs[symbol].ask(Candles(symbol=symbol, candles=(candle,)), block=False))
                       for symbol, candle in batch]
            sent = False
            for symbol, future in futures:
                try:
                    decision = future.get(timeout=ASK_TIMEOUT_S)
                except pykka.ActorDeadError:
                    raise BacktestError(f"the {symbol} actor died at {iso(close_ms)}; see the log above") from None
                except Exception as exc:  # the strategy (or the guard chain) raised on this candle: said, not hidden
                    logger.opt(exception=exc).error("{}: the candle that closed at {} raised", symbol, iso(close_ms))
                    raise BacktestError(f"{symbol}: the candle that closed at {iso(close_ms)} raised "
                                        f"{type(exc).__name__}: {exc} (traceback in the log above)") from None
                sent = sent or bool(decision is not None and decision.accepted)
            self.candle_steps += len(batch)
            if sent:
                self._settle(sim, system)
            self.equity.append(self._equity(sim, close_ms))
            self.progress.done += 1
            self.progress.time_ms = close_ms
        return True

    def _settle(self, sim: Simulator, system: TradingSystem) -> None:
        """Let the gateway look until nothing is in flight and nothing new comes of the reports: a fill reaches the
        symbol actor, which may claim a stop-loss and take-profit, which persistence hands to the gateway, which
        sends them; only a round in which all of that happened and nothing is left in flight ends it."""
        gateway, portfolio, persistence = system.gateway, system.portfolio, system.persistence
        assert gateway is not None and portfolio is not None and persistence is not None
        symbols = [ref for ref in system.symbol_actors().values() if ref is not None]
        for _ in range(SETTLE_ROUNDS_MAX):
            gateway.ask(Ping(), timeout=ASK_TIMEOUT_S)  # orders gathered are sent
            gateway.tell(Tick(name="poll"))
            left = gateway.ask(GetInFlight(), timeout=ASK_TIMEOUT_S)
            for _ in range(2):  # reports, position syncs and their answers, each hop once more
                for ref in (portfolio, persistence, gateway):
                    ref.ask(Ping(), timeout=ASK_TIMEOUT_S)
            for symbol_ref in symbols:  # what the symbol actors did with the reports (claims are asks: done)
                symbol_ref.ask(Ping(), timeout=ASK_TIMEOUT_S)
            persistence.ask(Ping(), timeout=ASK_TIMEOUT_S)  # claims handed to the gateway
            if left == 0 and gateway.ask(GetInFlight(), timeout=ASK_TIMEOUT_S) == 0:
                break
        else:
            raise BacktestError(f"orders stayed in flight through {SETTLE_ROUNDS_MAX} looks of the gateway; "
                                "see the log")
        self._fills_seen = len(sim.exchange.fills)
        self._funding_seen = len(sim.exchange.account_log.entries)

    def _final_reads(self, sim: Simulator, system: TradingSystem) -> None:
        """One last look so every fee and funding payment of the run is in the database: the account log shows an
        entry `history_lag_ms` after it happened, so the clock moves that far past the last close first (no tick of
        a next candle exists: the prices stand still, and no hour boundary lies that close after a close)."""
        sim.step_to(sim.clock.now_ms() + sim.config.history_lag_ms + 1)
        self._settle(sim, system)

    def _equity(self, sim: Simulator, time_ms: int) -> EquityPoint:
        exchange = sim.exchange
        with exchange.lock:
            unrealized = Decimal(0)
            exposure = Decimal(0)
            for symbol, position in exchange.positions.items():
                if position.size:
                    mark = exchange.market.quote(symbol).mark
                    unrealized += position.unrealized(mark)
                    exposure += abs(position.size) * mark
            return EquityPoint(time_ms=time_ms, equity=exchange.balance + unrealized, exposure=exposure)

    # --- the result ---------------------------------------------------------------------------------

    def _result(self, sim: Simulator, db_path: Path, complete: bool) -> BacktestResult:
        database = open_database(f"sqlite:///{db_path}")
        try:
            store = Store(database)
            fills, funding, rejections = _read_outcomes(store)
            pnl = {symbol: {key: Decimal(str(row[key])) for key in ("gross", "fees", "funding", "net")}
                   for symbol, row in sorted(store.pnl_totals().items())}
        finally:
            database.close()
        exchange = sim.exchange
        first = min(c[0].open_time for c in self.candles.values())
        last = self.progress.time_ms or first
        cfg = self.config
        return BacktestResult(
            symbols=self.symbols, timeframe=self.timeframe, start_ms=first, end_ms=last,
            strategy=cfg.strategy.name, params=dict(cfg.strategy.params), seed=self.settings.seed,
            initial_balance=self.settings.initial_balance, final_balance=exchange.balance,
            fills=fills, funding=funding, equity=tuple(self.equity), rejections=rejections,
            candle_steps=self.candle_steps, complete=complete,
            open_positions={unified_symbol(s): p.size for s, p in sorted(exchange.positions.items()) if p.size},
            pnl=pnl,
        )


def _resting_orders(exchange: Any) -> bool:
    """True while a non-trigger order rests on the simulated book (a limit entry or exit waiting to fill)."""
    with exchange.lock:
        return any(order.state != UNTRIGGERED for book in exchange.working.values() for order in book.values())


def _steps(candles: Mapping[str, Sequence[Candle]], tf_ms: int) -> list[tuple[int, list[tuple[str, Candle]]]]:
    """(close time, the candles closing then) in time order, symbols in their configured order."""
    by_close: dict[int, list[tuple[str, Candle]]] = {}
    for symbol, series in candles.items():
        for candle in series:
            by_close.setdefault(candle.open_time + tf_ms, []).append((symbol, candle))
    return sorted(by_close.items())


def _read_outcomes(store: Store) -> tuple[tuple[FillRecord, ...], tuple[FundingRecord, ...], dict[str, int]]:
    """The fills, funding payments and refusals by reason the bot stored."""
    fill = store.models.Fill
    fills = tuple(
        FillRecord(time_ms=int(r["time"]), symbol=r["symbol"], side=r["side"], amount=Decimal(r["amount"]),
                   price=Decimal(r["price"]), fee=Decimal(r["fee"]) if r["fee"] not in (None, "") else Decimal(0),
                   kind=KIND_NAMES.get(r["intent_kind"] or "", EXTERNAL), client_order_id=r["client_order_id"])
        for r in fills_with_kind(store).order_by(fill.time, fill.id).dicts())
    funding = tuple(FundingRecord(time_ms=ms, symbol=symbol, amount=amount)
                    for symbol, amount, ms in funding_payments(store))
    event = store.models.Event
    rejections: dict[str, int] = {}
    for row in event.select(event.reason).where(event.kind == EventKind.SIGNAL_REJECTED.value).dicts():
        reason = row["reason"] or "UNKNOWN"
        rejections[reason] = rejections.get(reason, 0) + 1
    return fills, funding, dict(sorted(rejections.items()))
