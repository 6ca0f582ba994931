"""Run a trading system as a process: lock, exchange, actors, control endpoint, status line, clean stop.

Ctrl-C or SIGTERM: the feeds stop first (no new signals), orders in flight get a bounded time to
resolve, the actors stop in reverse order, the database is flushed, the lock is released. A second
start on the same storage or database is refused and names the running one.

A core actor (persistence, gateway, portfolio, market data) that dies - reported by its `on_failure`,
failing in `on_start`, or found stopped by the heartbeat - stops the process the same way, and
`run_trading` returns EXIT_CORE_ACTOR_DIED with a last line that says so: a process supervisor restarts
the process and reconciliation carries on at the next start. Never a process that runs without trading.
"""

from __future__ import annotations

import gc
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ccxt
import pykka
from loguru import logger

from actors.endpoint import open_endpoint
from actors.preflight import Problem, check_control_port
from actors.startup import COMMAND, control_lines, read_controls
from actors.system import CoreActorDeath, CoreActorDied, TradingSystem
from configuration import LoadedConfig, setup_logging
from control import ControlError, start_control_endpoint
from exchange import load_market_specs, make_kraken_client
from exchange.budget import CostBudget
from exchange.clock import ServerClock
from exchange.markets import UnknownSymbolError
from exchange.modes import CredentialsError, ExchangeEndpoint
from messages import MarketSpec, PortfolioStatus, Shutdown
from persistence import (
    AlreadyRunningError,
    DatabaseUrlError,
    InstanceLock,
    SchemaVersionError,
)

IN_FLIGHT_WAIT_S = 10.0
HEARTBEAT_S = 1.0  # how often the run checks that every core actor is alive
EXIT_CORE_ACTOR_DIED = 70  # sysexits' EX_SOFTWARE: restart me (2 is a start-up/configuration refusal)


def status_line(status: PortfolioStatus) -> str:
    """One line for the log: positions, open orders, PnL, rejections by reason."""
    positions = []
    open_orders = 0
    rejections: dict[str, int] = {}
    for row in status.symbols:
        base = row.symbol.split("/")[0]
        if row.position is not None and row.position.is_open:
            pnl = f" uPnL {row.unrealized_pnl:+.2f}" if row.unrealized_pnl is not None else ""
            positions.append(f"{base} {row.position.side.value} "
                             f"{row.position.contracts}@{row.position.entry_price}{pnl}")
        open_orders += len(row.pending_orders) + sum(1 for o in row.exchange_orders if not o.ours)
        for reason, count in row.rejections.items():
            rejections[reason] = rejections.get(reason, 0) + count
    def money(value: object) -> str:
        return f"{value:+.2f}" if value is not None else "n/a"

    parts = [
        f"positions {', '.join(positions) if positions else 'none'}",
        f"open orders {open_orders}",
        f"realized {money(status.realized_pnl)}",
        f"unrealized {money(status.unrealized_pnl)}",
        "rejected " + (" ".join(f"{k}×{v}" for k, v in sorted(rejections.items())) or "none"),
    ]
    if not status.reconciled:
        parts.insert(0, "NOT RECONCILED")
    return "status: " + " | ".join(parts)


class StartCancelled(RuntimeError):
    """A stop was requested before the start finished."""


class TradingProcess:
    """Everything one `run.py run` owns, started in order and stopped in reverse."""

    def __init__(self, loaded: LoadedConfig) -> None:
        self.loaded = loaded
        self.lock: InstanceLock | None = None
        self.endpoint: ExchangeEndpoint | None = None
        self.system: TradingSystem | None = None
        self.control_server: Any = None
        self.stopping = threading.Event()
        self.stop_told = False  # the stop's first part ran (a stop command): the gateway sends nothing new
        self.death: CoreActorDeath | None = None

    def _on_fatal(self, death: CoreActorDeath) -> None:
        """A core actor died (told from its thread): wake the run, which stops everything."""
        if self.death is None:
            self.death = death
        self.stopping.set()

    def check_core(self) -> CoreActorDeath | None:
        """The heartbeat: a dead core actor found here takes the same path as one reported by on_failure."""
        if self.death is None and self.system is not None:
            self.system.check_core()
        return self.death

    def start(self) -> None:
        """Take the lock, open the exchange, start the actors and the control endpoint: in that order, each by its
        own function; `stop` undoes them in reverse (run_trading calls it in its `finally`)."""
        check_control_port(self.loaded)  # first: a taken port refuses the start before anything is started
        self.lock = take_instance_lock(self.loaded)
        self.endpoint = open_endpoint(self.loaded)
        clients = connect_exchange(self.loaded, self.endpoint, self.stopping)
        self.system = start_trading_system(self.loaded, clients, on_fatal=self._on_fatal)
        self.control_server = start_control_endpoint(self, self.loaded)
        freeze_startup_heap()
        cfg = self.loaded.config
        logger.info(
            "trading {} in {} mode on {}; strategy {}; database {}; stop with Ctrl-C or `{} stop`",
            ", ".join(cfg.trading.symbols), cfg.mode, self.endpoint.description, cfg.strategy.name,
            self.loaded.database.masked, COMMAND,
        )
        self.log_controls()

    def log_controls(self) -> None:
        """Say which symbols are paused or halted (durable: from an earlier run), since when, by whom, how to lift."""
        system = self.system
        if system is None or system.persistence is None:
            return
        persistence = system.persistence
        try:
            records = read_controls(system.markets, lambda query: persistence.ask(query, block=True, timeout=10))
        except Exception as exc:  # noqa: BLE001 - a start is not refused for a log line; status shows the flags
            logger.warning("paused/halted symbols unreadable at start-up ({!r}); `{} status` shows them", exc, COMMAND)
            return
        for line in control_lines(records):
            (logger.warning if not line.endswith(": none") else logger.info)("{}", line)

    # --- the ControlTarget the control endpoint drives --------------------------------------

    def status(self) -> PortfolioStatus:
        """The running system's status."""
        assert self.system is not None
        return self.system.status()

    def control(self, message: Any) -> Any:
        """Apply a control message."""
        assert self.system is not None
        return self.system.control(message)

    def report(self, query: Any) -> Any:
        """A read-only report (trades, orders, pnl, why, markets): actors/reports.py."""
        from actors.reports import report_of

        assert self.system is not None
        return report_of(self.system, query)

    def shutdown(self, message: Shutdown) -> Any:
        """Stop the process cleanly, as Ctrl-C does: the gateway sends nothing new from now on; with --cancel-orders
        or --flatten those are done first (their results waited for); the reply says what stays on the exchange."""
        from messages import ControlReply, Event, EventKind

        what = " with --flatten" if message.flatten else " with --cancel-orders" if message.cancel_orders else ""
        logger.warning("stop{} requested by {}", what, message.source)
        system = self.system
        if system is not None and system.persistence is not None:
            system.persistence.tell(Event(kind=EventKind.CONTROL, detail=f"stop{what} by {message.source}"))
        try:
            reply = system.begin_stop(message, IN_FLIGHT_WAIT_S) if system is not None else None
            self.stop_told = reply is not None
        finally:
            self.stopping.set()  # the stop goes on whatever the first part came to
        return reply or ControlReply(ok=True, detail="stopping")

    # --- stopping ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the endpoint and the feeds, wait for orders in flight, stop actors in reverse, release the rest.

        Every step runs even if an earlier one fails (a dead actor must not keep the rest running).
        """
        if self.control_server is not None:
            self._step("stopping the control endpoint", self.control_server.stop)
            self.control_server = None
        system = self.system
        if system is not None:
            if not self.stop_told and system.gateway is not None and system.gateway.is_alive():  # Ctrl-C, SIGTERM
                self.stop_told = True
                self._step("beginning the stop", lambda: system.begin_stop(Shutdown(source="signal")))
            self._step("stopping the feeds", system.stop_feeds)
            if system.gateway is not None and system.gateway.is_alive():
                left = self._step("waiting for orders in flight", lambda: system.wait_in_flight(IN_FLIGHT_WAIT_S))
                if left:
                    logger.warning("{} orders still unresolved at shutdown: the next start resolves them first",
                                   "some" if left < 0 else left)
            self._step("stopping the actors", system.stop)
            self.system = None
        # Whatever a dead supervisor left behind (its symbol actors) stops too: actor threads are not daemons.
        self._step("stopping the remaining actors", lambda: pykka.ActorRegistry.stop_all(timeout=10))
        if self.endpoint is not None:
            self._step("closing the exchange", self.endpoint.close)
            self.endpoint = None
        if self.lock is not None:
            self._step("releasing the lock", self.lock.release)
            self.lock = None

    @staticmethod
    def _step(what: str, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except Exception:  # noqa: BLE001 - shutdown goes on
            logger.exception("shutdown: {} failed", what)
            return None


# --- start, one plain function per step (stopped in reverse by TradingProcess.stop) ----------------------------


def take_instance_lock(loaded: LoadedConfig) -> InstanceLock:
    """The lock on the storage and the database: a second start on either is refused and names the first."""
    lock = InstanceLock(loaded.storage_dir, loaded.database)  # one reading of the URL: the file locked is opened
    lock.acquire()
    return lock


@dataclass(frozen=True)
class ExchangeClients:
    """The exchange as the actors see it: a public client for candles, a private one for the gateway, the markets."""

    public: Any
    private: Any
    markets: dict[str, MarketSpec]
    clock: ServerClock  # the exchange's clock (faster than the wall on the paper simulator)
    tick_interval_s: float  # how often market data looks for a new candle, in wall seconds


def connect_exchange(loaded: LoadedConfig, endpoint: ExchangeEndpoint, stopping: threading.Event) -> ExchangeClients:
    """Two ccxt clients on the endpoint and one market listing, read through network trouble until `stopping`."""
    cfg = loaded.config
    timeout_ms = int(cfg.exchange.timeout_s * 1000)
    public = make_kraken_client(endpoint.base_url, timeout_ms=timeout_ms)
    private = make_kraken_client(endpoint.base_url, endpoint.api_key, endpoint.api_secret, timeout_ms=timeout_ms)
    markets = retry_through_network("loading the market list", lambda: load_market_specs(public, cfg.trading.symbols),
                                    stopping)
    private.set_markets(public.markets, public.currencies)  # one listing, no second request
    interval, rate = cfg.trading.tick_interval_s, 1.0
    if endpoint.simulator is not None:  # ticks are in market time; the paper clock runs faster
        interval, rate = max(0.25, interval / cfg.paper.speed), cfg.paper.speed
    return ExchangeClients(public=public, private=private, markets=markets, clock=ServerClock(public, rate=rate),
                           tick_interval_s=interval)


def start_trading_system(loaded: LoadedConfig, clients: ExchangeClients, *,
                         on_fatal: Callable[[CoreActorDeath], None]) -> TradingSystem:
    """Start the actors of the configured system on the exchange (persistence, gateway, portfolio, market data)."""
    cfg = loaded.config
    return TradingSystem(
        config=cfg,
        database_url=loaded.database.url,
        private_exchange=clients.private,
        public_exchange=clients.public,
        markets=clients.markets,
        candle_clock=clients.clock,
        budget=CostBudget(),
        market_data_interval_s=clients.tick_interval_s,
        on_fatal=on_fatal,
        archive_dir=str(loaded.resolve(cfg.retention.archive_dir)),
    ).start()


def retry_through_network(what: str, action: Callable[[], Any], stopping: threading.Event) -> Any:
    """Retry a start-up call through network trouble (not through refused keys or unknown symbols)."""
    delay = 1.0
    while True:
        try:
            return action()
        except (ccxt.NetworkError, ccxt.ExchangeNotAvailable) as exc:
            logger.warning("{}: {}: {}; trying again in {:.0f}s", what, type(exc).__name__, exc, delay)
        if stopping.wait(delay):
            raise StartCancelled(f"stopped while {what}")
        delay = min(delay * 2, 30.0)


def freeze_startup_heap() -> None:
    """Keep what start-up built (clients, market lists, schemas, actors) out of every later garbage collection.

    A full collection walks every tracked object while holding the GIL: with the start-up heap in it one took
    60-80 ms, in the middle of a 300-symbol candle-close burst; with it frozen, about 5 ms (benchmarks/README.md).
    """
    gc.collect()
    gc.freeze()


def run_trading(
    loaded: LoadedConfig,
    *,
    status_interval_s: float = 30.0,
    install_signals: bool = True,
    on_started: Callable[[TradingProcess], None] | None = None,
) -> int:
    """Run until Ctrl-C, SIGTERM or a stop command; return the exit status."""
    cfg = loaded.config
    log_file = loaded.resolve(cfg.logging.file) if cfg.logging.file else None
    setup_logging(cfg.logging.level, log_file, cfg.logging.rotation, cfg.logging.retention)
    process = TradingProcess(loaded)
    if install_signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda signum, frame: process.stopping.set())
    try:
        try:
            process.start()
        except CoreActorDied as exc:
            process.death = exc.death
            return _fatal(process)
        except AlreadyRunningError as exc:
            logger.error("{}", exc)
            return 2
        except StartCancelled:
            return 0
        except Problem as exc:
            logger.error("cannot start: {}: {}", loaded.path, exc)
            return 2
        except ControlError as exc:
            logger.error("cannot start the control endpoint: {}; set [control] port in {} to a free port, or stop "
                         "the other process", exc, loaded.path)
            return 2
        except (CredentialsError, UnknownSymbolError, DatabaseUrlError, SchemaVersionError) as exc:
            logger.error("cannot start: {}", exc)
            return 2
        except ccxt.AuthenticationError as exc:
            logger.error("cannot start: the exchange refused the API keys ({}); check {} and {}", exc,
                         cfg.exchange.api_key_env, cfg.exchange.api_secret_env)
            return 2
        except ccxt.BaseError as exc:
            logger.error("cannot start: the exchange could not be reached ({}: {})", type(exc).__name__, exc)
            return 2
        if on_started is not None:
            on_started(process)
        next_status = time.monotonic() + status_interval_s
        while not process.stopping.wait(min(HEARTBEAT_S, max(0.0, next_status - time.monotonic()))):
            if process.check_core() is not None:
                break
            if time.monotonic() >= next_status:
                next_status = time.monotonic() + status_interval_s
                try:
                    logger.info("{}", status_line(process.status()))
                except Exception as exc:  # noqa: BLE001 - the heartbeat above decides about dead actors
                    logger.warning("status unavailable: {!r}", exc)
        if process.check_core() is not None:
            return _fatal(process)
        logger.info("stopping: feeds first, then orders in flight (up to {:.0f}s), then the actors", IN_FLIGHT_WAIT_S)
        started = process.system is not None
        process.stop()
        if started:
            logger.info("stopped")
        return 0
    finally:
        process.stop()  # idempotent: a no-op after a clean or fatal stop, the safety net after an exception


def _fatal(process: TradingProcess) -> int:
    """Stop everything in reverse order, log the FATAL line last, return EXIT_CORE_ACTOR_DIED."""
    death = process.death
    assert death is not None
    logger.error("stopping everything: the {} actor died", death.label)
    process.stop()
    logger.critical("{}", death.fatal_line())
    return EXIT_CORE_ACTOR_DIED


__all__ = ["EXIT_CORE_ACTOR_DIED", "ExchangeClients", "TradingProcess", "connect_exchange", "run_trading",
           "start_trading_system", "status_line", "take_instance_lock"]
