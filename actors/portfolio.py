"""The portfolio: supervises the symbol actors, routes messages to them, serializes portfolio-wide risk.

`Portfolio` is the logic, a plain class over `PortfolioPorts` (like `SymbolTrader` over `SymbolPorts`):
supervision decisions, routing, the reconciliation gate, control and status; its tests run without threads.
`PortfolioActor` is the shell: one thread, one mailbox, the timers, the ports over actor references.

It never waits on the exchange: position fetches are requested from the gateway by tell and come back as
PositionsSnapshot messages, which it pushes to every symbol actor as PositionSync.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import pykka
from loguru import logger

from actors.risk import RiskBook
from actors.supervision import RestartPolicy
from actors.symbol import ActorPorts, SymbolActor, SymbolPorts, SymbolTrader
from actors.timers import ActorTimers

if TYPE_CHECKING:  # for the types of the references only (these modules import this one, or its neighbours)
    from actors.gateway import ExchangeGatewayActor
    from actors.market_data import MarketDataActor
    from actors.persistence import PersistenceActor
from messages import (
    AbandonIntent,
    AccountMargin,
    ArchiveHistory,
    Candles,
    ClaimGivenUp,
    ClaimIntent,
    ClaimResult,
    ConnectGateway,
    ConnectMarketData,
    ControlReply,
    Event,
    EventKind,
    ExchangeMismatch,
    ExchangeOrder,
    GetStatus,
    GetSymbolActors,
    Halt,
    LoadOpenIntents,
    LoadSymbol,
    MarketSpec,
    NotReady,
    OpenOrdersSync,
    OrderBlocked,
    OrderState,
    OrderUpdate,
    Pause,
    Ping,
    PortfolioStatus,
    Position,
    PositionsSnapshot,
    PositionsUnavailable,
    PositionSync,
    PurgeIntents,
    Reason,
    Reconcile,
    ReconciliationReport,
    RestartSymbol,
    Resume,
    RiskRelease,
    RiskRequest,
    SendHistory,
    SetControl,
    SymbolBootstrap,
    SymbolDied,
    SymbolState,
    SymbolStatus,
    SyncPositions,
    Tick,
    Unhalt,
    now_ms,
)

# Builds the trader of a symbol from its durable state:
# (market, bootstrap, ports, restarts so far, the newest gateway report seen) -> trader.
TraderFactory = Callable[[MarketSpec, SymbolBootstrap, SymbolPorts, int, int], SymbolTrader]


@dataclass
class PortfolioSettings:
    """Timers and time-outs of the portfolio."""

    position_sync_interval_s: float = 10.0
    reconcile_interval_s: float = 60.0
    reconcile_retry_s: float = 5.0
    purge_interval_s: float = 3600.0
    retention_ms: int = 24 * 3_600_000
    ask_timeout_s: float = 5.0
    # [retention]: table -> age (ms) past which its final rows are archived then deleted; empty keeps everything
    archive_after_ms: tuple[tuple[str, int], ...] = ()
    archive_dir: str = "storage/archive"
    archive_interval_s: float = 3600.0


class PortfolioPorts(Protocol):
    """What the portfolio needs from the actors around it (fakes in tests, actor references when running)."""

    def ask_persistence(self, message: Any) -> Any:
        """Ask the persistence and wait for the answer (with the ask time-out); raises when none comes."""

    def tell_persistence(self, message: Any) -> None:
        """Tell the persistence (events, claims passed on, abandons, purges, archives)."""

    def tell_gateway(self, message: Any) -> None:
        """Tell the gateway (reconcile, position syncs)."""

    def tell_market_data(self, message: Any) -> None:
        """Tell the market-data actor, if there is one (history for a restarted symbol)."""

    def start_symbol(self, trader: SymbolTrader) -> Any:
        """Start a symbol actor around `trader`; return its handle (it has the `actor_urn` a SymbolDied names)."""

    def stop_symbol(self, handle: Any, *, wait: bool) -> None:
        """Stop a symbol actor; with `wait`, until it has stopped (raises if it does not in time)."""

    def tell_symbol(self, handle: Any, message: Any) -> None:
        """Tell a symbol actor; a dead one is passed over (its SymbolDied is on the way)."""

    def symbol_ports(self) -> SymbolPorts:
        """The ports a new symbol trader gets."""

    def every(self, interval_s: float, message: Any, first_in: float | None = None) -> None:
        """Hand `message` to the portfolio every `interval_s` (first after `first_in`, default `interval_s`)."""

    def after(self, delay_s: float, message: Any) -> None:
        """Hand `message` to the portfolio once, after `delay_s`."""


class Portfolio:
    """Supervision, routing, the reconciliation gate, risk, control and status of every symbol. No threads."""

    def __init__(
        self,
        *,
        markets: dict[str, MarketSpec],
        trader_factory: TraderFactory,
        risk: RiskBook,
        restart_policy: RestartPolicy,
        settings: PortfolioSettings,
        ports: PortfolioPorts,
    ) -> None:
        self.markets = markets
        self.trader_factory = trader_factory
        self.risk = risk
        self.restart_policy = restart_policy
        self.settings = settings
        self.ports = ports
        self.actors: dict[str, Any] = {}  # symbol -> its symbol actor's handle; None while restarting or down
        self.supervisor_state: dict[str, SymbolState] = {}
        self.halt_reasons: dict[str, str] = {}
        self.safe_mode: set[str] = set()  # halted after crashes, running with the strategy off
        self.last_seq = 0  # the newest gateway report seen: a fresh actor trusts only newer positions
        self.reconciled = False  # no symbol trades before the first successful reconciliation
        self.exchange_orders: dict[str, tuple[ExchangeOrder, ...]] = {}

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Load the unfinished intents (risk), start every symbol actor, set the timers, ask for reconciliation."""
        records = self.ports.ask_persistence(LoadOpenIntents(with_unbooked=True))
        self.risk.load_open_intents(records)
        for symbol in self.markets:
            self._start_symbol(symbol, restarts=0)
        self.ports.every(self.settings.position_sync_interval_s, Tick(name="sync"))
        self.ports.every(self.settings.purge_interval_s, Tick(name="purge"), first_in=60.0)
        self.ports.every(self.settings.reconcile_interval_s, Tick(name="reconcile"))
        if self.settings.archive_after_ms:
            self.ports.every(self.settings.archive_interval_s, Tick(name="archive"), first_in=60.0)
        self.ports.tell_gateway(Reconcile(intents=tuple(records), reason="start"))
        logger.info("portfolio started {} symbol actors; reconciling with the exchange", len(self.markets))

    def stop_symbols(self, *, wait: bool) -> None:
        """Stop every symbol actor (no orphan trades on without its supervisor)."""
        for symbol, handle in self.actors.items():
            if handle is None:
                continue
            try:
                self.ports.stop_symbol(handle, wait=wait)
            except Exception as exc:  # noqa: BLE001 - the others are stopped whatever one does
                logger.error("{} symbol actor did not stop in time: {!r}", symbol, exc)

    def _start_symbol(self, symbol: str, restarts: int, strategy_off: bool = False) -> None:
        since = now_ms() - self.settings.retention_ms
        bootstrap = self.ports.ask_persistence(LoadSymbol(symbol=symbol, since=since))
        trader = self.trader_factory(self.markets[symbol], bootstrap, self.ports.symbol_ports(), restarts,
                                     self.last_seq)
        trader.strategy_off = strategy_off
        if strategy_off:
            trader.set_halted(True, self.halt_reasons.get(symbol, "halted after repeated crashes"))
        self.actors[symbol] = self.ports.start_symbol(trader)
        if strategy_off:
            self.safe_mode.add(symbol)
        else:
            self.safe_mode.discard(symbol)
            self.supervisor_state[symbol] = SymbolState.TRADING

    # --- messages --------------------------------------------------------------------------

    def handle(self, message: Any) -> Any:
        """One message from the mailbox; the answer of an ask, None for a tell."""
        match message:
            case RiskRequest():
                return self.risk.reserve(message)
            case ClaimIntent():
                self._claim_entry(message)
            case RiskRelease():
                self.risk.release(message.intent_hash)
            case ClaimGivenUp():  # after its claim (same sender): releases what it reserved, abandons what it claimed
                self.risk.release(message.intent_hash)
                self.ports.tell_persistence(AbandonIntent(intent_hash=message.intent_hash, detail=message.detail,
                                                            claimed_sent_at=message.sent_at))
            case OrderUpdate():
                self._on_order_update(message)
            case PositionsSnapshot():
                self._on_snapshot(message)
            case AccountMargin():  # the gateway's read of the account's available margin
                self.risk.on_margin(message)
            case ReconciliationReport():
                self._on_reconciliation(message)
            case OrderBlocked():
                if message.detail:
                    self._record(Event(kind=EventKind.ORDER_UPDATE, symbol=message.symbol, reason=Reason.BLOCKED,
                                       detail=message.detail))
                self._forward(message.symbol, message)
            case ExchangeMismatch():
                self._record(Event(kind=EventKind.RECONCILE_MISMATCH, symbol=message.symbol,
                                   reason=Reason.EXCHANGE_MISMATCH if message.detail else None,
                                   detail=message.detail or f"consistent again: {message.key}"))
                self._forward(message.symbol, message)
            case PositionsUnavailable():
                self.last_seq = max(self.last_seq, message.seq)
                self._record(Event(kind=EventKind.POSITION_SYNC_FAILED, reason=Reason(message.reason),
                                   detail=message.detail))
            case Candles():
                self._forward(message.symbol, message)
            case SymbolDied():
                self._on_death(message)
            case RestartSymbol():
                self._restart(message.symbol)
            case Pause() | Resume() | Halt() | Unhalt():
                return self._control(message)
            case GetStatus():
                return self.status()
            case Ping():
                return True
            case GetSymbolActors():
                return dict(self.actors)
            case Tick(name="sync"):
                self.ports.tell_gateway(SyncPositions(reason="timer"))
            case Tick(name="reconcile"):
                if self.reconciled:
                    self.ports.tell_gateway(Reconcile(reason="timer"))
            case Tick(name="reconcile-retry"):
                self._reconcile_with_intents("retry")
            case Tick(name="purge"):
                self.ports.tell_persistence(PurgeIntents(before=now_ms() - self.settings.retention_ms))
                for symbol in self.actors:
                    self._forward(symbol, Tick(name="purge"))
            case Tick(name="archive"):
                now = now_ms()
                for table, age_ms in self.settings.archive_after_ms:  # tells: the writer does it between claims
                    self.ports.tell_persistence(ArchiveHistory(before=now - age_ms, folder=self.settings.archive_dir,
                                                               tables=(table,)))
            case _:
                logger.error("portfolio: unexpected message {}", type(message).__name__)
        return None

    def _claim_entry(self, claim: ClaimIntent) -> None:
        """An entry's claim: reserve its risk, then pass the claim on to persistence, or answer the refusal."""
        handover = claim.handover
        if handover is not None and handover.given_up:
            return  # the symbol stopped waiting: its give-up follows, nothing is reserved
        try:
            if claim.risk is None:
                raise ValueError(f"the claim of {claim.intent.client_order_id} has no risk request")
            decision = self.risk.reserve(claim.risk)
        except Exception as exc:  # noqa: BLE001 - the symbol gets the error, the portfolio lives on
            logger.exception("portfolio: risk check of {} failed", claim.intent.client_order_id)
            if claim.reply is not None:
                claim.reply.set_exception(exc_info=(type(exc), exc, exc.__traceback__))
            return
        if not decision.granted:
            if decision.reason in (Reason.INSUFFICIENT_MARGIN.value, Reason.MARGIN_UNKNOWN.value):
                # the symbol records the refusal (SIGNAL_REJECTED with this reason); the log says it here too
                logger.warning("{}: entry {} refused: {}", claim.intent.symbol, claim.intent.client_order_id,
                               decision.detail)
            if claim.reply is not None:
                claim.reply.set(ClaimResult(claimed=False, refused=decision))
            return
        if handover is not None:
            if handover.given_up:
                return  # granted after the symbol gave up: the give-up that follows releases it
            handover.reserved = True
        self.ports.tell_persistence(claim)

    def _reconcile_with_intents(self, reason: str) -> None:
        """Reconcile with every unfinished intent; a slow database means: try again soon, never die."""
        try:
            records = self.ports.ask_persistence(LoadOpenIntents(with_unbooked=True))
        except Exception as exc:  # noqa: BLE001 - a time-out or a database error: retried, never fatal
            logger.warning("portfolio: unfinished intents unreadable for the {} reconciliation ({!r}); trying again "
                           "in {:.0f}s", reason, exc, self.settings.reconcile_retry_s)
            self.ports.after(self.settings.reconcile_retry_s, Tick(name="reconcile-retry"))
            return
        self.ports.tell_gateway(Reconcile(intents=tuple(records), reason=reason))

    def _on_order_update(self, update: OrderUpdate) -> None:
        self.last_seq = max(self.last_seq, update.seq)
        if update.fills:
            price = f" @ {update.average_price}" if update.average_price is not None else ""
            logger.info("{} {} {} of {} filled{} ({}, cliOrdId {})", update.symbol, update.side.value, update.filled,
                        update.amount, price, update.state.value, update.client_order_id)
        self.risk.on_order_update(update)
        self._forward(update.symbol, update)
        if update.fills or (update.filled > 0 and update.state in (OrderState.PARTIALLY_FILLED, OrderState.FILLED,
                                                                    OrderState.CANCELED)):
            self.ports.tell_gateway(SyncPositions(reason="fill"))  # also a partial fill whose rest was cancelled

    def _on_reconciliation(self, report: ReconciliationReport) -> None:
        if not report.ok:
            logger.error("reconciliation ({}) failed: {}; {}", report.reason, report.detail,
                         "no symbol trades until it succeeds" if not self.reconciled else "trading goes on")
            self._record(Event(kind=EventKind.RECONCILE_FAILED, reason=Reason.EXCHANGE_UNAVAILABLE,
                               detail=f"{report.reason}: {report.detail}"))
            if not self.reconciled:
                for symbol in self.markets:
                    self._forward(symbol, NotReady(detail=f"reconciliation failed: {report.detail}"))
                self.ports.after(self.settings.reconcile_retry_s, Tick(name="reconcile-retry"))
            return
        first = not self.reconciled
        self.reconciled = True
        for order in report.adopted:
            self._record(Event(kind=EventKind.RECONCILE_MISMATCH, symbol=order.symbol, reason=Reason.EXTERNAL_ORDER,
                               detail=f"open {order.side.value} {order.amount} order {order.exchange_order_id} "
                                      f"(cliOrdId {order.client_order_id}) placed outside this system: adopted"))
        grouped: dict[str, list[ExchangeOrder]] = {symbol: [] for symbol in self.markets}
        for order in report.open_orders:
            if order.symbol in grouped:
                grouped[order.symbol].append(order)
        for symbol, orders in grouped.items():
            self.exchange_orders[symbol] = tuple(orders)
            self._forward(symbol, OpenOrdersSync(symbol=symbol, orders=tuple(orders)))
        if report.snapshot is not None:
            if first:
                for position in report.snapshot.positions:
                    if position.symbol in self.markets:
                        self._record(Event(kind=EventKind.RECONCILED, symbol=position.symbol,
                                           detail=f"position on the exchange at start: {position.side.value} "
                                                  f"{position.contracts} @ {position.entry_price}"))
            self._on_snapshot(report.snapshot)
        if first:
            detail = (f"{len(report.snapshot.positions) if report.snapshot else 0} positions, "
                      f"{len(report.open_orders)} open orders ({len(report.adopted)} external), "
                      f"{report.unresolved} orders still being resolved")
            logger.info("reconciled with the exchange: {}", detail)
            self._record(Event(kind=EventKind.RECONCILED, detail=detail))

    def _on_snapshot(self, snapshot: PositionsSnapshot) -> None:
        self.last_seq = max(self.last_seq, snapshot.seq)
        self.risk.on_snapshot(snapshot)
        if not self.reconciled:
            return  # positions reach symbols only once reconciliation has finished
        by_symbol = {p.symbol: p for p in snapshot.positions}
        for symbol in self.markets:
            position = by_symbol.get(symbol) or Position.flat(symbol)
            self._forward(symbol, PositionSync(position=position, seq=snapshot.seq, as_of=snapshot.as_of,
                                                    exchange_time=snapshot.exchange_time))
        foreign = sorted(set(by_symbol) - set(self.markets))
        if foreign:
            logger.debug("positions in symbols not traded here: {}", ", ".join(foreign))

    def _forward(self, symbol: str, message: Any) -> None:
        handle = self.actors.get(symbol)
        if handle is not None:  # a dead one: its SymbolDied is on the way; the restarted actor reloads
            self.ports.tell_symbol(handle, message)

    # --- supervision -----------------------------------------------------------------------

    def _on_death(self, message: SymbolDied) -> None:
        current = self.actors.get(message.symbol)
        failed_restart = current is None and message.actor_urn == "" and \
            self.supervisor_state.get(message.symbol) is SymbolState.RESTARTING
        if not failed_restart and (current is None or current.actor_urn != message.actor_urn):
            return  # an older actor's death, already handled
        self.actors[message.symbol] = None
        delay = self.restart_policy.on_death(message.symbol)
        self._record(Event(kind=EventKind.ACTOR_DIED, symbol=message.symbol, detail=message.error))
        if delay is None:
            deaths = self.restart_policy.deaths_in_window(message.symbol)
            reason = f"halted after {deaths} crashes within {self.restart_policy.window_s:.0f}s; last: {message.error}"
            self.supervisor_state[message.symbol] = SymbolState.HALTED
            self.halt_reasons[message.symbol] = reason
            logger.error("{}: {}", message.symbol, reason)
            self._record(Event(kind=EventKind.SYMBOL_HALTED, symbol=message.symbol, reason=Reason.HALTED,
                               detail=reason))
            try:
                self.ports.ask_persistence(SetControl(symbol=message.symbol, halted=True, reason=reason,
                                                      source="supervisor"))
            except Exception as exc:  # noqa: BLE001 - halted in memory all the same; the next start may not know
                logger.error("{}: could not store the halt: {!r}", message.symbol, exc)
            if message.symbol in self.safe_mode:
                self.safe_mode.discard(message.symbol)
                logger.error("{}: the symbol actor died with its strategy off too; exits and flatten need `unhalt`",
                             message.symbol)
                return
            try:  # halted means exits only, not unmanaged: the position and its orders stay looked after
                self._start_symbol(message.symbol, restarts=self.restart_policy.restarts(message.symbol),
                                   strategy_off=True)
                self._after_restart(message.symbol)
                logger.warning("{}: restarted with its strategy off: orders followed, flatten works; `unhalt` turns "
                               "the strategy on again", message.symbol)
            except Exception as exc:  # noqa: BLE001 - the portfolio goes on supervising the others
                logger.error("{}: could not start it with the strategy off: {!r}", message.symbol, exc)
                self.actors[message.symbol] = None
            return
        self.supervisor_state[message.symbol] = SymbolState.RESTARTING
        logger.warning("{} symbol actor restarts in {:.2f}s", message.symbol, delay)
        self.ports.after(delay, RestartSymbol(symbol=message.symbol))

    def _restart(self, symbol: str) -> None:
        if self.actors.get(symbol) is not None or self.supervisor_state.get(symbol) is not SymbolState.RESTARTING:
            return
        restarts = self.restart_policy.restarts(symbol)
        try:
            self._start_symbol(symbol, restarts=restarts)
        except Exception as exc:  # noqa: BLE001 - a failed restart counts as a death: backoff, then halt
            logger.error("{}: restart failed: {!r}", symbol, exc)
            self.actors[symbol] = None
            self._on_death(SymbolDied(symbol=symbol, actor_urn="", error=repr(exc)))
            return
        self._record(Event(kind=EventKind.ACTOR_RESTARTED, symbol=symbol, detail=f"restart #{restarts}"))
        self._after_restart(symbol)

    def _after_restart(self, symbol: str) -> None:
        self.ports.tell_market_data(SendHistory(symbol=symbol))
        if symbol in self.exchange_orders:
            self._forward(symbol, OpenOrdersSync(symbol=symbol, orders=self.exchange_orders[symbol]))
        self.ports.tell_gateway(SyncPositions(reason="restart"))

    # --- control ---------------------------------------------------------------------------

    def _control(self, message: Pause | Resume | Halt | Unhalt) -> ControlReply:
        if message.symbol is not None and message.symbol not in self.markets:
            return ControlReply.unknown_symbol(message.symbol, self.markets)
        symbols = [message.symbol] if message.symbol else sorted(self.markets)
        name = type(message).__name__.lower()
        flags: dict[str, Any] = {}
        match message:
            case Pause():
                flags = {"paused": True}
            case Resume():
                flags = {"paused": False}
            case Halt():
                flags = {"halted": True}
            case Unhalt():
                flags = {"halted": False}
        reason = getattr(message, "reason", "") or name
        for symbol in symbols:  # durable before anything changes in memory
            self.ports.ask_persistence(SetControl(symbol=symbol, reason=reason, source=message.source, **flags))
        for symbol in symbols:
            if isinstance(message, Unhalt) and self.supervisor_state.get(symbol) is SymbolState.HALTED:
                self.supervisor_state[symbol] = SymbolState.RESTARTING
                self.halt_reasons.pop(symbol, None)
                running = self.actors.get(symbol)
                if running is not None:  # the strategy-off actor makes way for a normal one
                    self.actors[symbol] = None
                    try:
                        self.ports.stop_symbol(running, wait=True)
                    except Exception as exc:  # noqa: BLE001 - dead or slow to stop: the new one starts anyway
                        logger.warning("{}: the strategy-off actor did not stop cleanly: {!r}", symbol, exc)
                self._restart(symbol)
                continue
            self._forward(symbol, message.model_copy(update={"symbol": symbol}))
        logger.info("{} {} by {}", name, ", ".join(symbols), message.source)
        return ControlReply(ok=True, detail=f"{name} applied", symbols=tuple(symbols))

    def status(self) -> PortfolioStatus:
        """Portfolio totals and each symbol's supervision state."""
        symbols = []
        for symbol in sorted(self.markets):
            state = self.supervisor_state.get(symbol, SymbolState.RESTARTING)
            symbols.append(
                SymbolStatus(
                    symbol=symbol,
                    state=state if self.actors.get(symbol) is None or state is SymbolState.HALTED
                    else SymbolState.TRADING,
                    halted=state is SymbolState.HALTED,
                    halt_reason=self.halt_reasons.get(symbol, ""),
                    position=self.risk.positions.get(symbol),
                    restarts=self.restart_policy.restarts(symbol),
                )
            )
        limits = self.risk.limits
        return PortfolioStatus(
            symbols=tuple(symbols),
            open_positions=sum(1 for p in self.risk.positions.values() if p.is_open),
            reserved_slots=len(self.risk.open_symbols()),
            max_open_positions=limits.max_open_positions,
            total_notional=self.risk.total_notional(),
            max_total_notional=limits.max_total_notional,
            reconciled=self.reconciled,
            margin=self.risk.margin.available if self.risk.margin is not None else None,
        )

    def _record(self, event: Event) -> None:
        self.ports.tell_persistence(event)


class ActorPortfolioPorts:
    """PortfolioPorts over actor references; the timers tell the portfolio actor itself."""

    def __init__(self, persistence: pykka.ActorRef[PersistenceActor], gateway: pykka.ActorRef[ExchangeGatewayActor],
                 ask_timeout_s: float) -> None:
        self._persistence, self._gateway, self._timeout = persistence, gateway, ask_timeout_s
        self.persistence = persistence
        self.me: pykka.ActorRef[PortfolioActor] | None = None  # the portfolio actor, once started
        self.market_data: pykka.ActorRef[MarketDataActor] | None = None
        self.timers: ActorTimers | None = None

    def ask_persistence(self, message: Any) -> Any:
        return self._persistence.ask(message, block=True, timeout=self._timeout)

    def tell_persistence(self, message: Any) -> None:
        try:
            self._persistence.tell(message)
        except pykka.ActorDeadError:  # its own death is reported (and stops everything); not the portfolio's
            logger.warning("portfolio: the persistence actor is gone; {} not stored", type(message).__name__)

    def tell_gateway(self, message: Any) -> None:
        try:  # a dead gateway is the runner's to notice (heartbeat), not a reason to die here
            self._gateway.tell(message)
        except pykka.ActorDeadError:
            logger.error("portfolio: the exchange gateway is not running; {} dropped", type(message).__name__)

    def tell_market_data(self, message: Any) -> None:
        if self.market_data is not None:
            try:
                self.market_data.tell(message)
            except pykka.ActorDeadError:
                logger.error("portfolio: the market-data actor is not running; {} dropped", type(message).__name__)

    def start_symbol(self, trader: SymbolTrader) -> pykka.ActorRef[SymbolActor]:
        return SymbolActor.start(trader, supervisor=self.me)

    def stop_symbol(self, handle: pykka.ActorRef[SymbolActor], *, wait: bool) -> None:
        if wait:
            try:
                handle.stop(timeout=self._timeout)
            except pykka.ActorDeadError:
                pass
        else:
            handle.stop(block=False)

    def tell_symbol(self, handle: pykka.ActorRef[SymbolActor], message: Any) -> None:
        try:
            handle.tell(message)
        except pykka.ActorDeadError:
            pass

    def symbol_ports(self) -> SymbolPorts:
        assert self.me is not None, "the portfolio actor is not started"
        return ActorPorts(self.me, self._persistence, self._gateway, self._timeout)

    def every(self, interval_s: float, message: Any, first_in: float | None = None) -> None:
        if self.timers is not None and self.me is not None:
            self.timers.every(interval_s, self.me, message, first_in=first_in)

    def after(self, delay_s: float, message: Any) -> None:
        if self.timers is not None and self.me is not None:
            self.timers.after(delay_s, self.me, message)


class PortfolioActor(pykka.ThreadingActor):
    """The actor shell around Portfolio: its mailbox, its timers, and its death reported."""

    def __init__(
        self,
        *,
        markets: dict[str, MarketSpec],
        trader_factory: TraderFactory,
        risk: RiskBook,
        restart_policy: RestartPolicy,
        settings: PortfolioSettings,
        persistence: pykka.ActorRef[PersistenceActor],
        gateway: pykka.ActorRef[ExchangeGatewayActor],
    ) -> None:
        super().__init__()
        self.ports = ActorPortfolioPorts(persistence, gateway, settings.ask_timeout_s)
        self.portfolio = Portfolio(markets=markets, trader_factory=trader_factory, risk=risk,
                                   restart_policy=restart_policy, settings=settings, ports=self.ports)

    def on_start(self) -> None:
        self.ports.me, self.ports.timers = self.actor_ref, ActorTimers("portfolio")
        # the portfolio owns its relation with the gateway: introduced before its first Reconcile, so the gateway's
        # first report always has somewhere to go
        self.ports.tell_gateway(ConnectGateway(portfolio=self.actor_ref, persistence=self.ports.persistence))
        try:
            self.portfolio.start()
        except BaseException:
            self.ports.timers.stop()
            raise

    def on_stop(self) -> None:
        if self.ports.timers:
            self.ports.timers.stop()
        self.portfolio.stop_symbols(wait=True)

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        """Stop the timers and the symbol actors, and report the death: a core actor never dies silently."""
        if self.ports.timers:
            self.ports.timers.stop()
        self.portfolio.stop_symbols(wait=False)
        from actors.system import report_core_failure

        report_core_failure(self, exception_value)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, ConnectMarketData):  # wiring: where a restarted symbol's history comes from
            self.ports.market_data = message.market_data
            return None
        return self.portfolio.handle(message)
