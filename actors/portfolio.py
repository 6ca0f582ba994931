"""The portfolio actor: supervises symbol actors, routes messages to them, serializes portfolio-wide risk.

It never waits on the exchange: position fetches are requested from the gateway by tell and come
back as PositionsSnapshot messages, which it pushes to every symbol actor as PositionSync.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka
from loguru import logger

from actors.risk import RiskBook
from actors.supervision import RestartPolicy
from actors.symbol import ActorPorts, SymbolActor, SymbolTrader
from actors.timers import ActorTimers
from messages import (
    AbandonIntent,
    ArchiveHistory,
    Candles,
    ClaimGivenUp,
    ClaimIntent,
    ClaimResult,
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
TraderFactory = Callable[[MarketSpec, SymbolBootstrap, ActorPorts, int, int], SymbolTrader]


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


class PortfolioActor(pykka.ThreadingActor):
    """Starts one symbol actor per market, restarts the dead, and answers risk and control requests."""

    def __init__(
        self,
        *,
        markets: dict[str, MarketSpec],
        trader_factory: TraderFactory,
        risk: RiskBook,
        restart_policy: RestartPolicy,
        settings: PortfolioSettings,
        persistence: pykka.ActorRef[Any],
        gateway: pykka.ActorRef[Any],
    ) -> None:
        super().__init__()
        self.markets = markets
        self.trader_factory = trader_factory
        self.risk = risk
        self.restart_policy = restart_policy
        self.settings = settings
        self.persistence = persistence
        self.gateway = gateway
        self.market_data: pykka.ActorRef[Any] | None = None
        self.actors: dict[str, pykka.ActorRef[Any] | None] = {}
        self.supervisor_state: dict[str, SymbolState] = {}
        self.halt_reasons: dict[str, str] = {}
        self.safe_mode: set[str] = set()  # halted after crashes, running with the strategy off
        self.last_seq = 0  # the newest gateway report seen: a fresh actor trusts only newer positions
        self.reconciled = False  # no symbol trades before the first successful reconciliation
        self.exchange_orders: dict[str, tuple[ExchangeOrder, ...]] = {}
        self.timers: ActorTimers | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def on_start(self) -> None:
        records = self.persistence.ask(LoadOpenIntents(with_unbooked=True), block=True,
                                       timeout=self.settings.ask_timeout_s)
        self.risk.load_open_intents(records)
        for symbol in self.markets:
            self._start_symbol(symbol, restarts=0)
        self.timers = ActorTimers("portfolio")
        self.timers.every(self.settings.position_sync_interval_s, self.actor_ref, Tick(name="sync"))
        self.timers.every(self.settings.purge_interval_s, self.actor_ref, Tick(name="purge"), first_in=60.0)
        self.timers.every(self.settings.reconcile_interval_s, self.actor_ref, Tick(name="reconcile"))
        if self.settings.archive_after_ms:
            self.timers.every(self.settings.archive_interval_s, self.actor_ref, Tick(name="archive"), first_in=60.0)
        self._to_gateway(Reconcile(intents=tuple(records), reason="start"))
        logger.info("portfolio started {} symbol actors; reconciling with the exchange", len(self.markets))

    def on_stop(self) -> None:
        if self.timers:
            self.timers.stop()
        for symbol, ref in self.actors.items():
            if ref is not None:
                try:
                    ref.stop(timeout=self.settings.ask_timeout_s)
                except pykka.Timeout:
                    logger.error("{} symbol actor did not stop in time", symbol)

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        """Stop the timers and the symbol actors, and report the death: a core actor never dies silently."""
        if self.timers:
            self.timers.stop()
        for ref in self.actors.values():
            if ref is not None:
                ref.stop(block=False)  # no orphan keeps trading without its supervisor
        from actors.system import report_core_failure

        report_core_failure(self, exception_value)

    def _start_symbol(self, symbol: str, restarts: int, strategy_off: bool = False) -> pykka.ActorRef[Any] | None:
        since = now_ms() - self.settings.retention_ms
        bootstrap = self.persistence.ask(LoadSymbol(symbol=symbol, since=since), block=True,
                                         timeout=self.settings.ask_timeout_s)
        ports = ActorPorts(self.actor_ref, self.persistence, self.gateway, self.settings.ask_timeout_s)
        trader = self.trader_factory(self.markets[symbol], bootstrap, ports, restarts, self.last_seq)
        trader.strategy_off = strategy_off
        if strategy_off:
            trader.set_halted(True, self.halt_reasons.get(symbol, "halted after repeated crashes"))
        ref = SymbolActor.start(trader, supervisor=self.actor_ref)
        self.actors[symbol] = ref
        if strategy_off:
            self.safe_mode.add(symbol)
        else:
            self.safe_mode.discard(symbol)
        if not strategy_off:
            self.supervisor_state[symbol] = SymbolState.TRADING
        return ref

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
            if claim.reply is not None:
                claim.reply.set(ClaimResult(claimed=False, refused=decision))
            return
        if handover is not None:
            if handover.given_up:
                return  # granted after the symbol gave up: the give-up that follows releases it
            handover.reserved = True
        self.persistence.tell(claim)

    # --- messages --------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        match message:
            case RiskRequest():
                return self.risk.reserve(message)
            case ClaimIntent():
                self._claim_entry(message)
            case RiskRelease():
                self.risk.release(message.intent_hash)
            case ClaimGivenUp():  # after its claim (same sender): releases what it reserved, abandons what it claimed
                self.risk.release(message.intent_hash)
                self.persistence.tell(AbandonIntent(intent_hash=message.intent_hash, detail=message.detail))
            case OrderUpdate():
                self._on_order_update(message)
            case PositionsSnapshot():
                self._on_snapshot(message)
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
                return self._status()
            case Ping():
                return True
            case GetSymbolActors():
                return dict(self.actors)
            case Tick(name="sync"):
                self._to_gateway(SyncPositions(reason="timer"))
            case Tick(name="reconcile"):
                if self.reconciled:
                    self._to_gateway(Reconcile(reason="timer"))
            case Tick(name="reconcile-retry"):
                self._reconcile_with_intents("retry")
            case Tick(name="purge"):
                self.persistence.tell(PurgeIntents(before=now_ms() - self.settings.retention_ms))  # a tell: never waits
                for symbol in self.actors:
                    self._forward(symbol, Tick(name="purge"))
            case Tick(name="archive"):
                now = now_ms()
                for table, age_ms in self.settings.archive_after_ms:  # tells: the writer does it between claims
                    self.persistence.tell(ArchiveHistory(before=now - age_ms, folder=self.settings.archive_dir,
                                                         tables=(table,)))
            case ConnectMarketData():
                self.market_data = message.market_data
            case _:
                logger.error("portfolio: unexpected message {}", type(message).__name__)
        return None

    def _reconcile_with_intents(self, reason: str) -> None:
        """Reconcile with every unfinished intent; a slow database means: try again soon, never die."""
        try:
            records = self.persistence.ask(LoadOpenIntents(with_unbooked=True), block=True,
                                           timeout=self.settings.ask_timeout_s)
        except Exception as exc:
            logger.warning("portfolio: unfinished intents unreadable for the {} reconciliation ({!r}); trying again "
                           "in {:.0f}s", reason, exc, self.settings.reconcile_retry_s)
            if self.timers:
                self.timers.after(self.settings.reconcile_retry_s, self.actor_ref, Tick(name="reconcile-retry"))
            return
        self._to_gateway(Reconcile(intents=tuple(records), reason=reason))

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
            self._to_gateway(SyncPositions(reason="fill"))  # also a partial fill whose rest was cancelled

    def _on_reconciliation(self, report: ReconciliationReport) -> None:
        if not report.ok:
            logger.error("reconciliation ({}) failed: {}; {}", report.reason, report.detail,
                         "no symbol trades until it succeeds" if not self.reconciled else "trading goes on")
            self._record(Event(kind=EventKind.RECONCILE_FAILED, reason=Reason.EXCHANGE_UNAVAILABLE,
                               detail=f"{report.reason}: {report.detail}"))
            if not self.reconciled:
                for symbol in self.markets:
                    self._forward(symbol, NotReady(detail=f"reconciliation failed: {report.detail}"))
                if self.timers:
                    self.timers.after(self.settings.reconcile_retry_s, self.actor_ref, Tick(name="reconcile-retry"))
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
        ref = self.actors.get(symbol)
        if ref is None:
            return
        try:
            ref.tell(message)
        except pykka.ActorDeadError:
            pass  # its SymbolDied is on the way; the restarted actor reloads from the database

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
                self.persistence.ask(
                    SetControl(symbol=message.symbol, halted=True, reason=reason, source="supervisor"),
                    timeout=self.settings.ask_timeout_s,
                )
            except Exception as exc:
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
            except Exception as exc:
                logger.error("{}: could not start it with the strategy off: {!r}", message.symbol, exc)
                self.actors[message.symbol] = None
            return
        self.supervisor_state[message.symbol] = SymbolState.RESTARTING
        logger.warning("{} symbol actor restarts in {:.2f}s", message.symbol, delay)
        if self.timers:
            self.timers.after(delay, self.actor_ref, RestartSymbol(symbol=message.symbol))

    def _restart(self, symbol: str) -> None:
        if self.actors.get(symbol) is not None or self.supervisor_state.get(symbol) is not SymbolState.RESTARTING:
            return
        restarts = self.restart_policy.restarts(symbol)
        try:
            self._start_symbol(symbol, restarts=restarts)
        except Exception as exc:
            logger.error("{}: restart failed: {!r}", symbol, exc)
            self.actors[symbol] = None
            self._on_death(SymbolDied(symbol=symbol, actor_urn="", error=repr(exc)))
            return
        self._record(Event(kind=EventKind.ACTOR_RESTARTED, symbol=symbol, detail=f"restart #{restarts}"))
        self._after_restart(symbol)

    def _after_restart(self, symbol: str) -> None:
        if self.market_data is not None:
            self.market_data.tell(SendHistory(symbol=symbol))
        if symbol in self.exchange_orders:
            self._forward(symbol, OpenOrdersSync(symbol=symbol, orders=self.exchange_orders[symbol]))
        self._to_gateway(SyncPositions(reason="restart"))

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
            self.persistence.ask(
                SetControl(symbol=symbol, reason=reason, source=message.source, **flags),
                timeout=self.settings.ask_timeout_s,
            )
        for symbol in symbols:
            if isinstance(message, Unhalt) and self.supervisor_state.get(symbol) is SymbolState.HALTED:
                self.supervisor_state[symbol] = SymbolState.RESTARTING
                self.halt_reasons.pop(symbol, None)
                running = self.actors.get(symbol)
                if running is not None:  # the strategy-off actor makes way for a normal one
                    self.actors[symbol] = None
                    try:
                        running.stop(timeout=self.settings.ask_timeout_s)
                    except (pykka.ActorDeadError, pykka.Timeout):
                        pass
                self._restart(symbol)
                continue
            self._forward(symbol, message.model_copy(update={"symbol": symbol}))
        logger.info("{} {} by {}", name, ", ".join(symbols), message.source)
        return ControlReply(ok=True, detail=f"{name} applied", symbols=tuple(symbols))

    def _status(self) -> PortfolioStatus:
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
        )

    def _to_gateway(self, message: Any) -> None:
        """Tell the gateway; a dead gateway is the runner's to notice (heartbeat), not a reason to die here."""
        try:
            self.gateway.tell(message)
        except pykka.ActorDeadError:
            logger.error("portfolio: the exchange gateway is not running; {} dropped", type(message).__name__)

    def _record(self, event: Event) -> None:
        try:
            self.persistence.tell(event)
        except pykka.ActorDeadError:  # its own death is reported (and stops everything); not the portfolio's
            logger.warning("portfolio: the persistence actor is gone; event not stored: {}", event.detail)
