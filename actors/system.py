"""Wiring: start the actors in order, stop them in reverse, and ask the running system for status."""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pykka
from loguru import logger

from actors.gateway import ExchangeGatewayActor, GatewaySettings
from actors.market_data import CandleFeed, MarketDataActor
from actors.persistence import DATABASE_GIVE_UP_S, PersistenceActor
from actors.portfolio import PortfolioActor, PortfolioSettings
from actors.protection import ProtectionSettings
from actors.risk import RiskBook, RiskLimits
from actors.stop_report import describe_left
from actors.supervision import RestartPolicy
from actors.symbol import SymbolActor, SymbolPorts, SymbolSettings, SymbolTrader
from configuration import AppConfig
from exchange.budget import CostBudget
from messages import (
    CancelOrders,
    ControlCode,
    ControlReply,
    Event,
    EventKind,
    Flatten,
    GetInFlight,
    GetStatus,
    GetSymbolActors,
    Halt,
    MarketSpec,
    Pause,
    Ping,
    PortfolioStatus,
    QueryMoney,
    QueryPnl,
    Reason,
    Resolve,
    Resume,
    SymbolBootstrap,
    SymbolState,
    SymbolStatus,
    Unhalt,
    now_ms,
)
from messages.control import BeginStop, Holdings, ReadHoldings, Shutdown
from persistence import open_database
from strategies import Strategy, build_strategy


def make_trader_factory(config: AppConfig, strategy_factory: Any = None, *, exchange_clock: Any = None,
                        process_before_ms: int | None = None) -> Any:
    """Return the function the portfolio uses to build a SymbolTrader from durable state (a TraderFactory).

    The portfolio calls it as `build(market, bootstrap, ports, restarts, floor)`: the symbol's MarketSpec, what
    persistence loaded for it (LoadSymbol -> SymbolBootstrap), the trader's ports, how many times this symbol's
    actor was restarted so far, and the seq of the newest gateway report the portfolio has seen (the new trader
    ignores position syncs older than that floor: they may miss fills an earlier actor saw).

    With an exchange clock and a processBefore span, each claim records the first send durably (SUBMITTED,
    with its processBefore) in the claim's own transaction, so the gateway sends without another commit.
    """
    settings = SymbolSettings(
        pyramiding=config.trading.pyramiding,
        order_notional=config.trading.order_notional,
        order_type=config.trading.order_type,
        limit_offset_bps=config.trading.limit_offset_bps,
        retention_ms=int(config.trading.intent_retention_hours * 3_600_000),
        process_before_ms=process_before_ms if exchange_clock is not None else None,
        protection=ProtectionSettings.from_config(config.protection),
    )

    def build(market: MarketSpec, bootstrap: SymbolBootstrap, ports: SymbolPorts, restarts: int,
              floor: int) -> SymbolTrader:
        strategy: Strategy = (
            strategy_factory(market.symbol)
            if strategy_factory is not None
            else build_strategy(config.strategy.name, config.strategy.params)
        )
        return SymbolTrader(
            market=market,
            strategy=strategy,
            settings=settings,
            ports=ports,
            bootstrap=bootstrap,
            exchange_clock=exchange_clock,
            restarts=restarts,
            min_position_seq=floor,
        )

    return build


CANCEL_TIMEOUT_S = 60.0  # cancels wait for Kraken's cost budget: 10 units each

# The core actors, in start order (stopped in reverse). Each one's death stops the process.
CORE_ACTORS: tuple[str, ...] = ("persistence", "gateway", "portfolio", "market_data")
CORE_LABELS = {"persistence": "persistence", "gateway": "exchange gateway", "portfolio": "portfolio",
               "market_data": "market-data"}
_CLASS_ROLES = {"PersistenceActor": "persistence", "ExchangeGatewayActor": "gateway", "PortfolioActor": "portfolio",
                "MarketDataActor": "market_data"}


@dataclass(frozen=True)
class CoreActorDeath:
    """A core actor stopped without being asked to: the process must stop so a supervisor restarts it."""

    actor: str  # one of CORE_ACTORS
    detail: str  # the exception, or how the death was found

    @property
    def label(self) -> str:
        """The actor's name for people: 'exchange gateway', 'portfolio', ..."""
        return CORE_LABELS.get(self.actor, self.actor)

    def fatal_line(self) -> str:
        """The process's last log line."""
        return (f"FATAL: the {self.label} actor died ({self.detail}); stopping so a process supervisor restarts "
                "this process — reconciliation carries on at the next start")


class CoreActorDied(RuntimeError):
    """A core actor died (or failed to start): the trading system cannot trade and must be restarted."""

    def __init__(self, death: CoreActorDeath) -> None:
        super().__init__(f"the {death.label} actor died ({death.detail})")
        self.death = death


_watch_lock = threading.Lock()
_watched: dict[str, tuple[weakref.ref[TradingSystem], str]] = {}  # actor URN -> (owner, role)


def describe_exception(exc: BaseException | None) -> str:
    """`TypeName: message`, one line, bounded."""
    if exc is None:
        return "no exception"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def report_core_failure(actor: pykka.Actor, exc: BaseException | None) -> None:
    """Called from a core actor's `on_failure`: tell the trading system that owns it, the one place that decides.

    Never raises (pykka would only log it): an unknown actor is logged and otherwise ignored.
    """
    try:
        with _watch_lock:
            owner_ref, role = _watched.get(actor.actor_urn, (None, _CLASS_ROLES.get(type(actor).__name__, "")))
        owner = owner_ref() if owner_ref is not None else None
        death = CoreActorDeath(role or type(actor).__name__, describe_exception(exc))
        if owner is None:
            logger.critical("the {} actor died ({}) outside a running trading system", death.label, death.detail)
            return
        owner.core_died(death)
    except Exception:  # noqa: BLE001 - on_failure must not fail
        logger.exception("could not report the death of {}", actor)


def merge_status(supervised: PortfolioStatus, live: dict[str, SymbolStatus | None],
                 realized: dict[str, Decimal]) -> PortfolioStatus:
    """The status an operator sees, from the portfolio's supervision rows, each running symbol actor's own row and
    the writer's realized PnL per symbol.

    A symbol's own row replaces its supervision row (keeping the portfolio's restart count); one whose actor did
    not answer (`live[symbol]` None) shows RESTARTING; one with no actor (restarting, halted) keeps the portfolio's.
    """
    rows = []
    for row in supervised.symbols:
        if row.symbol in live:
            answer = live[row.symbol]
            row = (answer.model_copy(update={"restarts": row.restarts}) if answer is not None
                   else row.model_copy(update={"state": SymbolState.RESTARTING}))
        rows.append(row.model_copy(update={"realized_pnl": realized.get(row.symbol, Decimal(0))}))
    unrealized = [r.unrealized_pnl for r in rows if r.unrealized_pnl is not None]
    return supervised.model_copy(update={
        "symbols": tuple(rows),
        "realized_pnl": sum(realized.values(), Decimal(0)),
        "unrealized_pnl": sum(unrealized, Decimal(0)) if unrealized else None,
    })


def with_money(status: PortfolioStatus, totals: dict[str, dict[str, Any]]) -> PortfolioStatus:
    """The status with each symbol's and the total gross PnL, fees, funding and net PnL (Store.pnl_totals)."""
    keys = ("gross", "fees", "funding", "net")
    money = {symbol: {key: Decimal(str(row[key])) for key in keys} for symbol, row in sorted(totals.items())}
    total = {key: sum((row[key] for row in money.values()), Decimal(0)) for key in keys}
    return status.model_copy(update={"money": money, "gross_pnl": total["gross"], "fees": total["fees"],
                                     "funding": total["funding"], "net_pnl": total["net"]})


def cancel_summary(outcomes: list[str]) -> str:
    """"2 orders cancelled", and which could not be, from the gateway's per-order outcomes."""
    cancelled = sum(1 for o in outcomes if o.endswith(": canceled"))
    others = [o for o in outcomes if not o.endswith(": canceled") and o != "no open orders"]
    text = f"{cancelled} order{'s' if cancelled != 1 else ''} cancelled"
    return text + (f"; {'; '.join(others)}" if others else "")


def protection_notes(symbols: tuple[str, ...], rows: dict[str, SymbolStatus]) -> list[str]:
    """After a cancel: where protection is on and a position is open, its stop-loss/take-profit come back."""
    notes = []
    for symbol in symbols:
        row = rows.get(symbol)
        if row is not None and row.protection_enabled and row.position is not None and row.position.is_open:
            notes.append(f"{symbol}: the stop-loss/take-profit will be placed again while the position is open "
                         "(protection is on); `flatten` closes it")
    return notes


def gateway_settings_for(config: AppConfig, *, clock_rate: float = 1.0, **changes: Any) -> GatewaySettings:
    """The gateway's settings as the configuration gives them (`changes`: GatewaySettings fields to set otherwise,
    e.g. a tighter poll interval in a benchmark)."""
    return GatewaySettings(**{
        "fail_open": config.exchange.open_order_check == "fail-open",
        "limit_timeout_s": config.trading.limit_timeout_s,
        "resend_max_age_s": config.exchange.resend_max_age_s,
        "process_before_s": config.exchange.process_before_s,
        "clock_skew_s": config.exchange.clock_skew_s,
        "history_lag_s": config.exchange.history_lag_s,
        "clock_rate": clock_rate,
        "pyramiding": config.trading.pyramiding,
        "batch_max": config.exchange.batch_max,
        "dead_man_timeout_s": config.protection.dead_man_timeout_s,
        "heartbeat_interval_s": config.protection.heartbeat_interval_s,
        **changes,
    })


# --- start and stop, one plain function per core actor (Mopidy's way: started in order, stopped in reverse) ------


def start_persistence(database_url: str, config: AppConfig, *,
                      give_up_after_s: float = DATABASE_GIVE_UP_S) -> pykka.ActorRef[PersistenceActor]:
    """Open the database (migrating it if needed) and start the persistence actor on it."""
    database = open_database(database_url, sqlite_synchronous=config.database.sqlite_synchronous)
    return PersistenceActor.start(database, give_up_after_s=give_up_after_s)


def start_gateway(private_exchange: Any, settings: GatewaySettings, *, budget: CostBudget | None,
                  symbols: list[str], exchange_clock: Any, ask_timeout_s: float,
                  clock: Callable[[], float] = time.monotonic) -> pykka.ActorRef[ExchangeGatewayActor]:
    """Start the exchange gateway on the private client (the portfolio introduces itself in its own start).

    `clock`: the gateway's own seconds (limit time-outs, lookups' back-off): the local monotonic clock, or in a
    backtest the replay's clock."""
    return ExchangeGatewayActor.start(private_exchange, settings=settings, budget=budget, symbols=symbols,
                                      exchange_clock=exchange_clock, ask_timeout_s=ask_timeout_s, clock=clock)


def start_portfolio(config: AppConfig, markets: dict[str, MarketSpec], trader_factory: Any, *,
                    persistence: pykka.ActorRef[PersistenceActor], gateway: pykka.ActorRef[ExchangeGatewayActor],
                    ask_timeout_s: float, archive_dir: str) -> pykka.ActorRef[PortfolioActor]:
    """Start the portfolio (it starts one symbol actor per market) with the configured risk limits and supervision."""
    restart = config.supervision
    return PortfolioActor.start(
        markets=markets,
        trader_factory=trader_factory,
        risk=RiskBook(
            limits=RiskLimits(
                max_open_positions=config.risk.max_open_positions,
                max_notional_per_order=config.risk.max_notional_per_order,
                max_total_notional=config.risk.max_total_notional,
            ),
            markets=markets,
            check_margin=True,  # an entry needs its initial margin within the exchange's available margin
        ),
        restart_policy=RestartPolicy(
            max_restarts=restart.max_restarts,
            window_s=restart.restart_window_s,
            backoff_initial_s=restart.backoff_initial_s,
            backoff_max_s=restart.backoff_max_s,
        ),
        settings=PortfolioSettings(
            position_sync_interval_s=config.trading.position_sync_interval_s,
            reconcile_interval_s=config.exchange.reconcile_interval_s,
            retention_ms=int(config.trading.intent_retention_hours * 3_600_000),
            ask_timeout_s=ask_timeout_s,
            archive_after_ms=tuple((table, int(days * 86_400_000)) for table, days in (
                ("orders", config.retention.orders_days), ("fills", config.retention.fills_days),
                ("events", config.retention.events_days)) if days > 0),
            archive_dir=archive_dir,
            archive_interval_s=config.retention.check_interval_s,
        ),
        persistence=persistence,
        gateway=gateway,
    )


def start_market_data(config: AppConfig, public_exchange: Any, symbols: list[str],
                      strategy_for: Callable[[str], Strategy], *, portfolio: pykka.ActorRef[PortfolioActor],
                      persistence: pykka.ActorRef[PersistenceActor], clock: Any,
                      interval_s: float) -> pykka.ActorRef[MarketDataActor]:
    """Start the candle feed for every symbol, with enough history for the longest strategy warm-up."""
    warmup = max((strategy_for(symbol).warmup for symbol in symbols), default=1)
    feed = CandleFeed(public_exchange, symbols, config.trading.timeframe, history=warmup + 1, clock=clock)
    return MarketDataActor.start(feed, portfolio, interval_s, events=persistence)


def ensure_running(ref: pykka.ActorRef[Any], role: str, timeout_s: float) -> None:
    """Ping a freshly started actor: pykka reports an `on_start` failure only by stopping it."""
    death = CoreActorDeath(role, "it stopped while starting; see the log above for why")
    if not ref.is_alive():
        raise CoreActorDied(death)
    try:
        ref.ask(Ping(), block=True, timeout=timeout_s)
    except pykka.ActorDeadError:
        raise CoreActorDied(death) from None
    except pykka.Timeout:
        raise CoreActorDied(CoreActorDeath(role, f"it did not answer within {timeout_s:.0f}s of starting")) from None


def stop_actor(ref: pykka.ActorRef[Any], role: str, timeout_s: float) -> None:
    """Stop one actor and wait for it; one already dead is fine, one that does not stop in time is logged."""
    try:
        ref.stop(timeout=timeout_s)
    except pykka.ActorDeadError:
        pass
    except pykka.Timeout:
        logger.error("the {} actor did not stop within {}s", role, timeout_s)


@dataclass
class TradingSystem:
    """The running actors of one trading system, started and stopped as a whole."""

    config: AppConfig
    database_url: str
    private_exchange: Any  # ccxt.krakenfutures or a fake with its shapes; used only by the gateway
    public_exchange: Any | None  # its own client for candles; None: no market-data actor (tests)
    markets: dict[str, MarketSpec]
    strategy_factory: Callable[[str], Strategy] | None = None  # symbol -> Strategy; None: the configured one
    candle_clock: Any = now_ms  # the exchange's clock (ServerClock: callable, with `rate` and `peek`)
    ask_timeout_s: float = 5.0
    budget: CostBudget | None = None  # Kraken's cost budget; None: unpaced (fakes in tests)
    market_data_interval_s: float | None = None  # default: trading.tick_interval_s
    gateway_settings: GatewaySettings | None = None  # None: gateway_settings_for(config) at the clock's rate
    on_fatal: Callable[[CoreActorDeath], None] | None = None  # told once, from the dying actor's thread
    database_give_up_s: float = DATABASE_GIVE_UP_S  # a database refusing every write this long stops the process
    database_open_timeout_s: float = 1800.0  # opening the database, a one-time migration included
    archive_dir: str | None = None  # [retention] archive_dir resolved against the config file (default: as written)
    gateway_clock: Callable[[], float] = time.monotonic  # the gateway's seconds (a backtest: the replay's clock)
    death: CoreActorDeath | None = field(default=None, init=False)
    fatal: threading.Event = field(default_factory=threading.Event, init=False)
    persistence: pykka.ActorRef[PersistenceActor] | None = field(default=None, init=False)
    gateway: pykka.ActorRef[ExchangeGatewayActor] | None = field(default=None, init=False)
    portfolio: pykka.ActorRef[PortfolioActor] | None = field(default=None, init=False)
    market_data: pykka.ActorRef[MarketDataActor] | None = field(default=None, init=False)

    def start(self) -> TradingSystem:
        """Start persistence, gateway, portfolio (and its symbol actors), market data, in that order, each pinged
        before the next starts; whatever started is stopped in reverse if a later one fails."""
        cfg = self.config
        try:
            self.persistence = self._started("persistence", start_persistence(
                self.database_url, cfg, give_up_after_s=self.database_give_up_s),
                # opening may run a one-time schema migration (it logs how much): not an ask time-out's business
                timeout_s=self.database_open_timeout_s)
            gateway_settings = self.gateway_settings or gateway_settings_for(
                cfg, clock_rate=float(getattr(self.candle_clock, "rate", 1.0)))
            self.gateway = self._started("gateway", start_gateway(
                self.private_exchange, gateway_settings, budget=self.budget, symbols=list(self.markets),
                exchange_clock=self.candle_clock, ask_timeout_s=self.ask_timeout_s, clock=self.gateway_clock))
            self.portfolio = self._started("portfolio", start_portfolio(
                cfg, self.markets, make_trader_factory(
                    cfg, self.strategy_factory, exchange_clock=self.candle_clock,
                    process_before_ms=gateway_settings.exchange_ms(gateway_settings.process_before_s)),
                persistence=self.persistence, gateway=self.gateway, ask_timeout_s=self.ask_timeout_s,
                archive_dir=self.archive_dir or cfg.retention.archive_dir))
            if self.public_exchange is not None:
                self.market_data = self._started("market_data", start_market_data(
                    cfg, self.public_exchange, list(self.markets), self._strategy_for, portfolio=self.portfolio,
                    persistence=self.persistence, clock=self.candle_clock,
                    interval_s=self.market_data_interval_s or cfg.trading.tick_interval_s))
        except BaseException:
            self.stop()
            raise
        logger.info("trading system started: {} symbols", len(self.markets))
        return self

    def _started(self, role: str, ref: pykka.ActorRef[Any], timeout_s: float | None = None) -> Any:
        """Watch a freshly started core actor (its death stops the process) and ping it."""
        self._watch(ref, role)
        ensure_running(ref, role, timeout_s if timeout_s is not None else self.ask_timeout_s * 2)
        return ref

    def _strategy_for(self, symbol: str) -> Strategy:
        if self.strategy_factory is not None:
            return self.strategy_factory(symbol)
        return build_strategy(self.config.strategy.name, self.config.strategy.params)

    # --- core actors cannot die silently -----------------------------------------------------

    def _watch(self, ref: pykka.ActorRef[Any], role: str) -> None:
        with _watch_lock:
            _watched[ref.actor_urn] = (weakref.ref(self), role)

    def _unwatch(self, ref: pykka.ActorRef[Any]) -> None:
        with _watch_lock:
            _watched.pop(ref.actor_urn, None)

    def core_died(self, death: CoreActorDeath) -> None:
        """Record the first core actor death and tell `on_fatal`; quick and safe from any thread."""
        with _watch_lock:
            if self.death is not None:
                return
            self.death = death
        logger.error("the {} actor died ({}); the process stops", death.label, death.detail)
        self.fatal.set()
        if self.on_fatal is not None:
            try:
                self.on_fatal(death)
            except Exception:  # noqa: BLE001 - the death is recorded in any case
                logger.exception("on_fatal failed")

    def check_core(self) -> CoreActorDeath | None:
        """The first core actor found dead (reported like an on_failure), or None; for a periodic heartbeat."""
        if self.death is not None:
            return self.death
        for role in CORE_ACTORS:
            ref = getattr(self, role)
            if ref is not None and not ref.is_alive():
                self.core_died(CoreActorDeath(role, "found stopped by the heartbeat"))
                return self.death
        return None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop market data, portfolio (and symbol actors), gateway, persistence: the reverse of start."""
        for role in reversed(CORE_ACTORS):
            ref = getattr(self, role)
            if ref is None:
                continue
            self._unwatch(ref)  # a stop we asked for is not a death
            stop_actor(ref, role, timeout)
            setattr(self, role, None)

    # --- asking the running system ---------------------------------------------------------

    def symbol_actors(self) -> dict[str, pykka.ActorRef[SymbolActor] | None]:
        """The current symbol actor of each symbol."""
        assert self.portfolio is not None, "not started"
        return self.portfolio.ask(GetSymbolActors(), block=True, timeout=self.ask_timeout_s)

    def status(self) -> PortfolioStatus:
        """Portfolio totals and one row per symbol, asked of each running symbol actor."""
        assert self.portfolio is not None and self.persistence is not None, "not started"
        supervised: PortfolioStatus = self.portfolio.ask(GetStatus(), block=True, timeout=self.ask_timeout_s)
        realized: dict[str, Decimal] = self.persistence.ask(QueryPnl(), block=True, timeout=self.ask_timeout_s)
        supervised = with_money(supervised, self.persistence.ask(QueryMoney(), block=True,
                                                                 timeout=self.ask_timeout_s))
        live: dict[str, SymbolStatus | None] = {}
        for symbol, ref in self.symbol_actors().items():
            if ref is not None:
                try:
                    live[symbol] = ref.ask(GetStatus(), block=True, timeout=self.ask_timeout_s)
                except (pykka.ActorDeadError, pykka.Timeout):
                    live[symbol] = None
        return merge_status(supervised, live, realized)

    def _flatten(self, message: Flatten) -> ControlReply:
        """Ask each symbol actor to flatten and say, per symbol, what it did (sent, nothing to do, in flight)."""
        assert self.persistence is not None
        symbols = [message.symbol] if message.symbol else sorted(self.markets)
        self.persistence.tell(Event(kind=EventKind.CONTROL, symbol=message.symbol,
                                    detail=f"flatten {', '.join(symbols)} by {message.source}"))
        actors = self.symbol_actors()
        outcomes, ok, flat = [], True, 0
        for symbol in symbols:
            ref = actors.get(symbol)
            if ref is None:
                outcomes.append(f"{symbol}: not running (restarting, or halted after crashing with its strategy off "
                                "too: `unhalt` first)")
                ok = False
                continue
            try:
                decision = ref.ask(message.model_copy(update={"symbol": symbol}), block=True,
                                   timeout=self.ask_timeout_s)
            except (pykka.ActorDeadError, pykka.Timeout) as exc:
                outcomes.append(f"{symbol}: did not answer ({type(exc).__name__}); check status")
                ok = False
                continue
            if decision.intent is not None:
                outcomes.append(f"{symbol}: flatten sent: {decision.intent.side.value} {decision.intent.amount} "
                                f"reduce-only market (cliOrdId {decision.intent.client_order_id})")
            elif decision.reason is Reason.NO_POSITION:
                outcomes.append(f"nothing to flatten: {symbol} is flat")
                flat += 1
            else:
                outcomes.append(f"{symbol}: {decision.detail or decision.reason}")
                ok = ok and decision.reason in (Reason.ORDER_PENDING,)
        logger.warning("flatten by {}: {}", message.source, "; ".join(outcomes))
        nothing = flat == len(symbols) > 0  # every symbol answered it was flat: decided by reason, not by the words
        code = ControlCode.NOTHING_TO_DO if nothing else ControlCode.DONE if ok else ControlCode.REFUSED
        return ControlReply(ok=ok, detail="; ".join(outcomes), symbols=tuple(symbols), code=code)

    def _resolve(self, message: Resolve) -> ControlReply:
        """The operator checked the exchange: the gateway gives up on undecided orders, the symbol on its doubts."""
        assert self.gateway is not None and self.persistence is not None
        self.persistence.tell(Event(kind=EventKind.CONTROL, symbol=message.symbol, reason=Reason.GIVEN_UP,
                                    detail=f"resolve {message.symbol} by {message.source}"))
        outcomes = list(self.gateway.ask(message, block=True, timeout=CANCEL_TIMEOUT_S) or [])
        ref = self.symbol_actors().get(message.symbol)
        if ref is not None:
            outcomes.append(ref.ask(message, block=True, timeout=self.ask_timeout_s))
        detail = "; ".join(o for o in outcomes if o) or "nothing was blocked"
        logger.warning("resolve {} by {}: {}", message.symbol, message.source, detail)
        return ControlReply(ok=True, detail=f"{message.symbol}: {detail}", symbols=(message.symbol,))

    def stop_feeds(self) -> None:
        """Stop the market-data actor: no new candles, so no new signals."""
        if self.market_data is not None:
            self._unwatch(self.market_data)
            stop_actor(self.market_data, "market_data", 10.0)
            self.market_data = None

    def wait_in_flight(self, timeout: float) -> int:
        """Wait up to `timeout` seconds for orders being sent or resolved; return how many are left."""
        assert self.gateway is not None, "not started"
        deadline = time.monotonic() + timeout
        pause = threading.Event()
        while True:
            try:
                left = self.gateway.ask(GetInFlight(), block=True, timeout=max(0.1, deadline - time.monotonic()))
            except pykka.Timeout:
                return -1
            except pykka.ActorDeadError:  # the gateway died: the next start resolves what was in flight
                return -1
            if left == 0 or time.monotonic() >= deadline:
                return int(left)
            pause.wait(0.2)

    def control(self, message: Pause | Resume | Halt | Unhalt | CancelOrders | Flatten | Resolve) -> ControlReply:
        """Apply a control message: through the portfolio, at the symbol actors (flatten, resolve) or the gateway
        (cancels); the reply says what really happened."""
        assert self.portfolio is not None and self.gateway is not None and self.persistence is not None
        if isinstance(message, (Flatten, Resolve, CancelOrders)) and message.symbol is not None \
                and message.symbol not in self.markets:
            return ControlReply.unknown_symbol(message.symbol, self.markets)
        if isinstance(message, Resolve):
            return self._resolve(message)
        if isinstance(message, (Pause, Resume)):
            return self._pause_or_resume(message)
        if not isinstance(message, (Flatten, CancelOrders)):
            return self.portfolio.ask(message, block=True, timeout=self.ask_timeout_s)
        paused = ""
        if message.pause:  # durably first, as `pause` does: no new entry follows the cancel or flatten
            reply = self.portfolio.ask(Pause(symbol=message.symbol, source=message.source), block=True,
                                       timeout=self.ask_timeout_s)
            if not reply.ok:
                return reply
            paused = f"paused {', '.join(reply.symbols)} first (`resume` lifts it); "
        reply = self._flatten(message) if isinstance(message, Flatten) else self._cancel(message)
        rows = self._status_rows()
        notes = []
        if not message.pause:
            trading = [s for s in reply.symbols if s not in rows or not (rows[s].paused or rows[s].halted)]
            if trading:
                notes.append(f"new entries may follow on {', '.join(trading)} (the strategy keeps trading): pass "
                             "--pause to pause first")
        if isinstance(message, CancelOrders):
            notes.extend(protection_notes(reply.symbols, rows))
        detail = paused + reply.detail + "".join(f". {note}" for note in notes)
        return reply.model_copy(update={"detail": detail})

    def _cancel(self, message: CancelOrders) -> ControlReply:
        """Cancel every open order on the symbol(s) at the gateway, which waits for each result; count them."""
        assert self.gateway is not None and self.persistence is not None
        self.persistence.tell(Event(kind=EventKind.CONTROL, symbol=message.symbol,
                                    detail=f"cancel {message.symbol or 'all symbols'} by {message.source}"))
        outcomes = self.gateway.ask(message, block=True, timeout=CANCEL_TIMEOUT_S) or ["cancel failed: see the log"]
        ok = not any("failed" in o or "unreadable" in o for o in outcomes)
        symbols = (message.symbol,) if message.symbol else tuple(sorted(self.markets))
        return ControlReply(ok=ok, detail=cancel_summary(outcomes), symbols=symbols)

    def _status_rows(self) -> dict[str, SymbolStatus]:
        """Each symbol's status row, or none when the status cannot be had (the replies then say less)."""
        try:
            return {row.symbol: row for row in self.status().symbols}
        except Exception as exc:  # noqa: BLE001 - a reply's extra words are not worth failing the command
            logger.warning("control: status unavailable for the reply ({!r})", exc)
            return {}

    def _pause_or_resume(self, message: Pause | Resume) -> ControlReply:
        """Pause or resume through the portfolio; the reply says which symbols already were so."""
        assert self.portfolio is not None
        before = self._status_rows()
        reply: ControlReply = self.portfolio.ask(message, block=True, timeout=self.ask_timeout_s)
        if not reply.ok:
            return reply
        wanted = isinstance(message, Pause)
        already = [s for s in reply.symbols if s in before and before[s].paused is wanted]
        changed = [s for s in reply.symbols if s not in already]
        word = "paused" if wanted else "resumed"
        parts = [f"{word} {', '.join(changed)}"] if changed else []
        if already:
            parts.append(f"already {'paused' if wanted else 'not paused'}: {', '.join(already)}")
        code = ControlCode.NOTHING_TO_DO if not changed else ControlCode.DONE
        return reply.model_copy(update={"detail": "; ".join(parts), "code": code})

    # --- the stop ------------------------------------------------------------------------------

    def begin_stop(self, message: Shutdown, in_flight_wait_s: float = 10.0) -> ControlReply:
        """The first part of a stop, before the actors stop: the gateway sends nothing new from now on; with
        `flatten`, positions are closed (reduce-only market) and every open order cancelled, with `cancel_orders`
        every open order cancelled, each result waited for; then what stays on the exchange is read, logged and
        said, with how to close it."""
        if self.gateway is None:
            return ControlReply(ok=True, detail="stopping")
        lines: list[str] = []
        ok = True
        try:
            self.gateway.ask(BeginStop(allow_flatten=message.flatten), block=True, timeout=self.ask_timeout_s)
        except (pykka.ActorDeadError, pykka.Timeout) as exc:
            logger.error("stop: the gateway did not take the stop ({}); it stops with the actors", type(exc).__name__)
            return ControlReply(ok=False, detail=f"stopping; the gateway did not answer ({type(exc).__name__}): "
                                                 "check open orders and positions on Kraken")
        acted = message.flatten or message.cancel_orders
        if acted:
            self.stop_feeds()  # no new signals while it works
        if message.flatten:
            reply = self._flatten(Flatten(symbol=None, source=message.source))
            ok = ok and reply.ok
            lines.append(f"flatten: {reply.detail}")
            self.wait_in_flight(in_flight_wait_s)
        if acted:
            outcomes = self._ask_gateway(CancelOrders(symbol=None, source=message.source), CANCEL_TIMEOUT_S)
            outcomes = outcomes or ["cancel failed: see the log"]
            ok = ok and not any("failed" in o or "unreadable" in o for o in outcomes)
            lines.append(f"cancel: {cancel_summary(outcomes)}")
        holdings = self._ask_gateway(ReadHoldings(), CANCEL_TIMEOUT_S)
        if not isinstance(holdings, Holdings):
            holdings = Holdings(problem="the gateway did not answer")
        lines.append(describe_left(holdings, acted=acted))
        if holdings.orders or holdings.positions or holdings.problem:
            ok = False
        if acted and not ok:
            lines.append("not everything could be done: the system stops all the same; the lines above say what")
        for line in lines:
            (logger.info if ok else logger.warning)("stop: {}", line)
        # the stop goes on in any case: the reply is DONE, its lines say what was done and what could not be
        return ControlReply(ok=True, detail="stopping\n  " + "\n  ".join(lines))

    def _ask_gateway(self, message: Any, timeout: float) -> Any:
        assert self.gateway is not None
        try:
            return self.gateway.ask(message, block=True, timeout=timeout)
        except (pykka.ActorDeadError, pykka.Timeout) as exc:
            logger.error("stop: the gateway did not answer {} ({})", type(message).__name__, type(exc).__name__)
            return None
