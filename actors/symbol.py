"""The symbol actor: one per market; runs the strategy and the guard chain. Its mailbox is the lock.

A signal's way through `SymbolTrader.on_signal` (the guard chain):
    paused? -> L1 intent hash seen? -> ready (position known)? -> halted (entries)? -> L3 position open?
    -> L5 our order pending / unresolved? -> size -> one wait for: portfolio risk reservation (entries)
    -> durable intent claim -> the persistence hands the commit's orders to the gateway (L4 happens there,
    right before the send)
Every refusal is an event with a Reason. The gateway answers by `tell`, so the mailbox never waits
on the exchange and Pause or Status are handled while an order is in flight.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

import pykka
from loguru import logger
from pydantic import ValidationError

from actors.protection import (
    LABEL_OF,
    ORDER_TYPE_OF,
    PROTECTIVE_KINDS,
    ProtectionSettings,
    protective_hash,
    trigger_price,
)
from actors.refusal_log import RefusalLog
from configuration.formatting import plain_decimal
from messages import (
    UNRESOLVED_STATES,
    AbandonIntent,
    CancelOrder,
    Candles,
    ClaimGivenUp,
    ClaimIntent,
    ClaimResult,
    Event,
    EventKind,
    ExchangeMismatch,
    ExchangeOrder,
    Flatten,
    GetStatus,
    Halt,
    Handover,
    MarketSpec,
    NotReady,
    OpenOrdersSync,
    OrderBlocked,
    OrderIntent,
    OrderState,
    OrderUpdate,
    Pause,
    PendingOrderView,
    Ping,
    Position,
    PositionSide,
    PositionSync,
    ProtectionView,
    Reason,
    ResizeOrder,
    Resolve,
    Resume,
    RiskRelease,
    RiskRequest,
    Side,
    Signal,
    SignalKind,
    SymbolBootstrap,
    SymbolDied,
    SymbolState,
    SymbolStatus,
    Tick,
    Unhalt,
    client_order_id_for,
    intent_hash,
    is_advance,
    now_ms,
)
from strategies.base import Strategy

if TYPE_CHECKING:  # the actors a symbol's ports lead to (imported for the types only: they import this module)
    from actors.gateway import ExchangeGatewayActor
    from actors.persistence import PersistenceActor
    from actors.portfolio import PortfolioActor


@dataclass(frozen=True)
class SymbolSettings:
    """The per-symbol trading settings taken from the configuration."""

    pyramiding: bool = False
    order_notional: Decimal = Decimal(100)
    order_type: str = "market"
    limit_offset_bps: Decimal = Decimal(0)
    retention_ms: int = 24 * 3_600_000
    window: int = 500  # candles kept; at least the strategy's warm-up
    # The first send's processBefore, this far after the claim on the exchange's clock (exchange ms): the claim
    # then records the send durably in its own transaction. None: the gateway records it before sending.
    process_before_ms: int | None = None
    seen_max: int = 2_000  # hashes kept in memory: a cache in front of the database's unique hash (L1)
    protection: ProtectionSettings = field(default_factory=ProtectionSettings)  # stop-loss / take-profit on Kraken


class ClaimUnanswered(Exception):
    """No answer to a claim in time, and the symbol took its Handover: the claim is given up, never sent."""

    def __init__(self, detail: str, *, at_portfolio: bool) -> None:
        super().__init__(detail)
        self.at_portfolio = at_portfolio  # the portfolio never passed the claim on (its risk not reserved yet)


class SymbolPorts(Protocol):
    """What the trader needs from the actors around it (fakes in tests, actor refs when running)."""

    def claim(self, claim: ClaimIntent) -> ClaimResult:
        """Reserve the entry's risk (`claim.risk`), claim the intent durably, and once claimed hand it to the gateway.

        One wait: the answer says refused by risk, claimed before, or claimed (and handed). Raises ClaimUnanswered
        when no answer came in time (the claim is then the symbol's to give up), or the error that refused it.
        """

    def give_up(self, given_up: ClaimGivenUp, *, entry: bool) -> None:
        """Give up a claim not answered in time: its risk released (an entry) and the intent abandoned (tell)."""

    def release_risk(self, release: RiskRelease) -> None:
        """Give a reservation back (a claim refused as a duplicate)."""

    def cancel_order(self, command: CancelOrder) -> None:
        """Ask the gateway to cancel one of our orders (tell)."""

    def resize_order(self, command: ResizeOrder) -> None:
        """Ask the gateway to resize one of our protective orders (tell)."""

    def record(self, event: Event) -> None:
        """Append an event to the log."""


@dataclass
class TrackedOrder:
    """One of our orders that is not final yet."""

    intent_hash: str
    client_order_id: str
    side: Side
    reduce_only: bool
    amount: Decimal
    state: OrderState
    filled: Decimal = Decimal(0)
    exchange_order_id: str | None = None
    recovered: bool = False  # loaded at start: INITIALIZED/SUBMITTED then means "maybe sent"
    order_type: str = "market"
    kind: SignalKind | None = None  # STOP_LOSS / TAKE_PROFIT for a protective order
    trigger_price: Decimal | None = None
    trigger_signal: str | None = None
    asked_at: int | None = None  # when a cancel of this protective order was last asked for (wall ms)
    levels: tuple[Decimal | None, Decimal | None] = (None, None)  # an entry's own stop-loss / take-profit prices

    @property
    def protective(self) -> bool:
        """True for a stop-loss or take-profit protecting the position."""
        return self.kind is not None and self.kind.is_protective

    @property
    def unresolved(self) -> bool:
        """True when nobody knows whether this order is on the exchange: it blocks until resolved."""
        return self.state is OrderState.UNKNOWN or (self.recovered and self.state in UNRESOLVED_STATES)


@dataclass(frozen=True)
class Decision:
    """What became of one signal: the intent sent, or the reason it was refused."""

    signal: Signal
    intent: OrderIntent | None = None
    reason: Reason | None = None
    detail: str = ""

    @property
    def accepted(self) -> bool:
        """True when an order was handed to the gateway."""
        return self.intent is not None


@dataclass(frozen=True)
class Anchor:
    """The entry that opened the position the protective orders guard (their hashes derive from it)."""

    intent_hash: str
    side: Side
    price: Decimal  # its fill price when known, else its signal's close
    levels: tuple[Decimal | None, Decimal | None] = (None, None)  # its own stop-loss / take-profit (the strategy's)

    def level(self, kind: SignalKind) -> Decimal | None:
        """The entry's own trigger price for this protective kind, if its strategy gave one."""
        return self.levels[0] if kind is SignalKind.STOP_LOSS else self.levels[1]


@dataclass
class SymbolTrader:
    """The logic of one market: candles, strategy, guard chain, pending orders, position. No threads."""

    market: MarketSpec
    strategy: Strategy
    settings: SymbolSettings
    ports: SymbolPorts
    bootstrap: SymbolBootstrap
    clock: Callable[[], int] = now_ms
    exchange_clock: Callable[[], int] | None = None  # the exchange's time (exchange.clock.ServerClock)
    restarts: int = 0
    min_position_seq: int = 0  # position syncs older than this may miss fills an earlier actor saw
    strategy_off: bool = False  # halted after crashes: no strategy, but exits, flatten and orders are managed

    paused: bool = field(init=False, default=False)
    halted: bool = field(init=False, default=False)
    halt_reason: str = field(init=False, default="")
    position: Position | None = field(init=False, default=None)
    position_seq: int = field(init=False, default=-1)
    position_exchange_time: int | None = field(init=False, default=None)
    orders: dict[str, TrackedOrder] = field(init=False, default_factory=dict)
    seen: dict[str, int] = field(init=False, default_factory=dict)
    unsynced_fills: list[tuple[int, Decimal]] = field(init=False, default_factory=list)
    candles: deque[Any] = field(init=False)
    rejections: Counter[str] = field(init=False, default_factory=Counter)
    last_signal: str | None = field(init=False, default=None)
    last_outcome: str | None = field(init=False, default=None)
    exchange_orders: tuple[ExchangeOrder, ...] = field(init=False, default=())
    not_ready: str = field(init=False, default="waiting for reconciliation with the exchange")
    finished: dict[str, tuple[OrderState, Decimal, bool, Side]] = field(init=False, default_factory=dict)
    blocked: dict[str, str] = field(init=False, default_factory=dict)  # client order id -> why (from the gateway)
    mismatches: dict[str, str] = field(init=False, default_factory=dict)  # key -> contradiction (from the gateway)
    position_mismatch: str = field(init=False, default="")
    accept_next_sync: bool = field(init=False, default=False)
    flatten_after_cancel: str | None = field(init=False, default=None)  # the resting exit being replaced
    anchor: Anchor | None = field(init=False, default=None)  # the position's opening entry (protective orders)
    generation: dict[SignalKind, int] = field(init=False, default_factory=dict)  # next protective hash to claim
    refusals: dict[SignalKind, tuple[int, int]] = field(init=False, default_factory=dict)  # kind -> (count, at)
    protection_problem: str = field(init=False, default="")
    refusal_log: RefusalLog = field(init=False)  # the console hears a repeated refusal once, then its count

    def __post_init__(self) -> None:
        self.refusal_log = RefusalLog(self.market.symbol)
        self.candles = deque(maxlen=max(self.settings.window, self.strategy.warmup + 1))
        created = self.clock()
        for h in self.bootstrap.recent_hashes:
            self.seen[h] = created
        for record in self.bootstrap.open_intents:
            self.seen[record.intent_hash] = record.created_at
            self.orders[record.client_order_id] = TrackedOrder(
                intent_hash=record.intent_hash,
                client_order_id=record.client_order_id,
                side=record.side,
                reduce_only=record.reduce_only,
                amount=record.amount,
                state=record.state,
                filled=record.filled,
                exchange_order_id=record.exchange_order_id,
                recovered=True,
                order_type=record.order_type,
                kind=record.kind if record.kind.is_protective else None,
                trigger_price=record.trigger_price,
                trigger_signal=record.trigger_signal,
                levels=(record.stop_loss, record.take_profit),
            )
        entry = self.bootstrap.last_entry
        if entry is not None:
            self.anchor = Anchor(entry.intent_hash, entry.side, entry.price, (entry.stop_loss, entry.take_profit))
        control = self.bootstrap.control
        self.paused, self.halted, self.halt_reason = control.paused, control.halted, control.reason

    @property
    def symbol(self) -> str:
        """The market this trader trades."""
        return self.market.symbol

    # --- inputs --------------------------------------------------------------------------

    def on_candles(self, message: Candles) -> Decision | None:
        """Take newly closed candles; on live ones, ask the strategy and run its signal through the guards."""
        newest = self.candles[-1].open_time if self.candles else None
        fresh = [c for c in message.candles if newest is None or c.open_time > newest]
        if not fresh:
            return None
        self.candles.extend(fresh)
        if not message.live or self.strategy_off:
            return None
        candles = list(self.candles)
        kind = self.strategy.decide(candles, self.effective_side())
        if kind is None:
            return None
        last = fresh[-1]
        stop_loss, take_profit = self.strategy.levels(candles, kind) if kind.is_entry else (None, None)
        try:
            signal = Signal(symbol=self.symbol, kind=kind, candle_time=last.open_time, price=last.close,
                            strategy=self.strategy.name, stop_loss=stop_loss, take_profit=take_profit)
        except ValidationError as exc:  # never traded with a guessed stop: refused, said why
            bare = Signal(symbol=self.symbol, kind=kind, candle_time=last.open_time, price=last.close,
                          strategy=self.strategy.name)
            problem = "; ".join(str(e.get("msg", e)) for e in exc.errors())
            return self._reject(bare, intent_hash(self.symbol, last.open_time, kind, self.settings.order_notional),
                                Reason.BAD_SIGNAL, f"strategy {self.strategy.name}: {problem}")
        return self.on_signal(signal)

    def on_signal(self, signal: Signal) -> Decision:
        """Run one signal through the guard chain; at most one order comes out of it, ever."""
        self.last_signal = f"{signal.kind.value} @ {signal.candle_time}"
        notional = self.settings.order_notional if signal.kind.is_entry else Decimal(0)
        hash_hex = intent_hash(signal.symbol, signal.candle_time, signal.kind, notional)
        if self.paused:
            return self._reject(signal, hash_hex, Reason.PAUSED, "symbol is paused")
        if hash_hex in self.seen:  # L1, in memory; the durable claim below is L1's second half
            return self._reject(signal, hash_hex, Reason.DUPLICATE_INTENT, "this signal was seen before",
                                remember=False)
        self._remember(hash_hex, self.clock())
        if self.position is None:
            return self._reject(signal, hash_hex, Reason.NOT_READY, self.not_ready)
        if signal.kind.is_entry:
            return self._enter(signal, hash_hex, notional)
        return self._exit(signal, hash_hex)

    def _enter(self, signal: Signal, hash_hex: str, notional: Decimal) -> Decision:
        side = Side.BUY if signal.kind is SignalKind.ENTER_LONG else Side.SELL
        if self.halted:
            return self._reject(signal, hash_hex, Reason.HALTED, self.halt_reason or "symbol is halted: exits only")
        contracts = self.effective_contracts()
        if contracts != 0:  # L3, on the real position (plus our fills since the last sync)
            same_direction = (contracts > 0) == (side is Side.BUY)
            if not self.settings.pyramiding or not same_direction:
                return self._reject(signal, hash_hex, Reason.POSITION_OPEN, f"position {contracts} is open")
        doubt = self.entry_doubt()
        if doubt:  # an exchange answer contradicts what we know, or an order's fate is undecided
            return self._reject(signal, hash_hex, Reason.EXCHANGE_MISMATCH, doubt)
        foreign = [o for o in self.exchange_orders if not o.ours and o.side is side]
        if foreign:  # L4 as last seen at reconciliation; the gateway checks again right before the send
            return self._reject(signal, hash_hex, Reason.EXCHANGE_ORDER_OPEN,
                                f"{side.value} order {foreign[0].client_order_id or foreign[0].exchange_order_id} "
                                "placed outside this system rests on the exchange")
        for order in self.orders.values():  # L5: our own order still in flight
            if order.protective and contracts == 0:  # the closed position's stop could act on the new one
                return self._reject(signal, hash_hex, Reason.ORDER_PENDING,
                                    f"{LABEL_OF[order.kind]} {order.client_order_id} of the closed position is being "
                                    f"cancelled (`kraken-actors cancel {self.symbol}` cancels it by hand)"
                                    if order.kind else "")
            if order.unresolved:
                return self._reject(
                    signal, hash_hex, Reason.ORDER_UNRESOLVED, f"order {order.client_order_id} outcome unknown"
                )
            if not order.reduce_only:
                return self._reject(signal, hash_hex, Reason.ORDER_PENDING, f"order {order.client_order_id} pending")
        amount = self.market.contracts_for_notional(notional, signal.price)
        if amount <= 0 or amount < self.market.min_amount:
            return self._reject(
                signal,
                hash_hex,
                Reason.SIZE_TOO_SMALL,
                f"{notional} at {signal.price} is {amount} contracts; minimum {self.market.min_amount}",
            )
        risk = RiskRequest(symbol=self.symbol, intent_hash=hash_hex,
                           notional=self.market.notional_of(amount, signal.price))
        intent = self._intent(signal, hash_hex, side, notional, amount, reduce_only=False)
        return self._claim_and_send(signal, intent, risk=risk)

    def flatten(self, source: str) -> Decision:
        """Close the position with a reduce-only market order, paused, halted or not (an operator's command).

        A resting exit is cancelled first and replaced once the cancel is proven; an exit already
        in flight, or one whose fate is unknown, is said so rather than doubled.
        """
        now = self.clock()
        price = self.candles[-1].close if self.candles else (self.position.entry_price if self.position else None)
        signal = Signal(symbol=self.symbol, kind=SignalKind.EXIT, candle_time=now, price=price or Decimal(0),
                        strategy="flatten", note=source)
        self.last_signal = f"FLATTEN by {source}"
        hash_hex = intent_hash(self.symbol, now, SignalKind.EXIT, Decimal(0))
        if self.position is None:
            return self._reject(signal, hash_hex, Reason.NOT_READY, self.not_ready)
        contracts = self.effective_contracts()
        if contracts == 0:
            return self._reject(signal, hash_hex, Reason.NO_POSITION, "nothing to flatten: the position is flat")
        side = Side.SELL if contracts > 0 else Side.BUY
        for order in self.orders.values():
            if not (order.reduce_only and order.side is side) or order.protective:
                continue  # a stop-loss resting beside the flatten is cancelled once the position is flat
            if order.unresolved:
                return self._reject(signal, hash_hex, Reason.ORDER_UNRESOLVED,
                                    f"exit {order.client_order_id} outcome unknown; status says what frees it")
            if order.order_type == "limit" and order.state in (OrderState.ACCEPTED, OrderState.PARTIALLY_FILLED):
                if self.flatten_after_cancel != order.client_order_id:
                    self.flatten_after_cancel = order.client_order_id
                    self.ports.cancel_order(CancelOrder(symbol=self.symbol, client_order_id=order.client_order_id))
                detail = (f"cancelling resting exit {order.client_order_id}; a market exit follows once the cancel "
                          "is proven")
                self.last_outcome = detail
                return Decision(signal=signal, reason=Reason.ORDER_PENDING, detail=detail)
            return self._reject(signal, hash_hex, Reason.ORDER_PENDING,
                                f"exit already in flight: {order.client_order_id} ({order.state.value})")
        if hash_hex in self.seen:
            return self._reject(signal, hash_hex, Reason.DUPLICATE_INTENT, "flatten already sent", remember=False)
        self._remember(hash_hex, now)
        return self._exit(signal, hash_hex, order_type="market")

    def _exit(self, signal: Signal, hash_hex: str, order_type: str | None = None) -> Decision:
        contracts = self.effective_contracts()
        if contracts == 0:
            return self._reject(signal, hash_hex, Reason.NO_POSITION, "nothing to exit")
        side = Side.SELL if contracts > 0 else Side.BUY
        for order in self.orders.values():  # L5 for exits: only another exit on the same side blocks
            if order.reduce_only and order.side is side and not order.protective:
                reason = Reason.ORDER_UNRESOLVED if order.unresolved else Reason.ORDER_PENDING
                return self._reject(signal, hash_hex, reason, f"exit {order.client_order_id} in flight")
        intent = self._intent(signal, hash_hex, side, Decimal(0), abs(contracts), reduce_only=True,
                              order_type=order_type)
        return self._claim_and_send(signal, intent)

    def _intent(
        self,
        signal: Signal,
        hash_hex: str,
        side: Side,
        notional: Decimal,
        amount: Decimal,
        *,
        reduce_only: bool,
        order_type: str | None = None,
    ) -> OrderIntent:
        order_type = order_type or self.settings.order_type
        limit_price = None
        if order_type == "limit":
            offset = signal.price * self.settings.limit_offset_bps / Decimal(10_000)
            raw = signal.price - offset if side is Side.BUY else signal.price + offset
            limit_price = (raw / self.market.price_tick).to_integral_value() * self.market.price_tick
        sent_at = self._exchange_now() if self.settings.process_before_ms is not None else None
        return OrderIntent(
            sent_at=sent_at,
            process_before=None if sent_at is None else sent_at + (self.settings.process_before_ms or 0),
            intent_hash=hash_hex,
            client_order_id=client_order_id_for(hash_hex),
            symbol=self.symbol,
            kind=signal.kind,
            side=side,
            candle_time=signal.candle_time,
            notional=notional,
            amount=amount,
            price=signal.price,
            reduce_only=reduce_only,
            order_type=order_type,
            limit_price=limit_price,
            stop_loss=signal.stop_loss,
            take_profit=signal.take_profit,
            created_at=self.clock(),
        )

    def _claim_and_send(self, signal: Signal, intent: OrderIntent, *, risk: RiskRequest | None = None) -> Decision:
        """Risk (an entry), the durable claim and the hand-over to the gateway, in one wait."""
        event = Event(
            kind=EventKind.INTENT_CLAIMED,
            symbol=self.symbol,
            intent_hash=intent.intent_hash,
            detail=f"{signal.kind.value} {intent.side.value} {intent.amount} cliOrdId={intent.client_order_id}",
        )
        try:
            result = self.ports.claim(ClaimIntent(intent=intent, event=event, risk=risk))
        except Exception as exc:
            # given up: a reservation granted late is released, a claim committed late is abandoned, never sent
            self.ports.give_up(ClaimGivenUp(symbol=self.symbol, intent_hash=intent.intent_hash, sent_at=intent.sent_at,
                                            detail=f"claim not confirmed in time: {exc!r}"), entry=risk is not None)
            if isinstance(exc, ClaimUnanswered) and exc.at_portfolio:
                return self._reject(signal, intent.intent_hash, Reason.RISK_UNAVAILABLE,
                                    f"portfolio did not answer: {exc}")
            return self._reject(
                signal, intent.intent_hash, Reason.PERSISTENCE_UNAVAILABLE, f"intent not stored, not sent: {exc}"
            )
        if result.refused is not None:
            reason = Reason.RISK_LIMIT
            if result.refused.reason in (Reason.INSUFFICIENT_MARGIN.value, Reason.MARGIN_UNKNOWN.value):
                reason = Reason(result.refused.reason)  # the portfolio's margin check says its own reason
            return self._reject(signal, intent.intent_hash, reason, result.refused.detail)
        if not result.claimed:
            if risk is not None:
                self.ports.release_risk(RiskRelease(symbol=self.symbol, intent_hash=intent.intent_hash))
            state = result.existing_state.value if result.existing_state else "unknown"
            return self._reject(signal, intent.intent_hash, Reason.DUPLICATE_INTENT, f"claimed before ({state})")
        self.orders[intent.client_order_id] = TrackedOrder(
            intent_hash=intent.intent_hash,
            client_order_id=intent.client_order_id,
            side=intent.side,
            reduce_only=intent.reduce_only,
            amount=intent.amount,
            state=OrderState.INITIALIZED,
            order_type=intent.order_type,
            kind=intent.kind if intent.is_protective else None,
            trigger_price=intent.trigger_price,
            trigger_signal=intent.trigger_signal,
            levels=(intent.stop_loss, intent.take_profit),
        )
        if not result.handed:  # the gateway was gone: the claim is recovered (and proven) at the next start
            logger.error("{} {} claimed but not handed to the gateway; the next start resolves it", self.symbol,
                         intent.client_order_id)
        self.last_outcome = f"SENT {intent.side.value} {plain_decimal(intent.amount)}"
        self._log_lines(self.refusal_log.decided(signal.kind.value, self.clock()))
        logger.info(
            "{} {} -> {} {} contracts (cliOrdId {})",
            self.symbol,
            signal.kind.value,
            intent.side.value,
            intent.amount,
            intent.client_order_id,
        )
        return Decision(signal=signal, intent=intent)

    def _reject(
        self, signal: Signal, hash_hex: str, reason: Reason, detail: str, *, remember: bool = True
    ) -> Decision:
        if remember:
            self.seen.setdefault(hash_hex, self.clock())
        self.rejections[reason.value] += 1
        self.last_outcome = f"{reason.value}: {detail}" if detail else reason.value
        self.ports.record(
            Event(
                kind=EventKind.SIGNAL_REJECTED,
                symbol=self.symbol,
                reason=reason,
                intent_hash=hash_hex,
                detail=f"{signal.kind.value} candle {signal.candle_time}: {detail}",
            )
        )
        self._log_lines(self.refusal_log.refused(signal.kind.value, reason.value, detail, self.clock()))
        return Decision(signal=signal, reason=reason, detail=detail)

    @staticmethod
    def _log_lines(lines: list[str]) -> None:
        for line in lines:
            logger.info("{}", line)

    def end_refusal_streaks(self) -> None:
        """Log the count of every refusal that was repeated quietly (conditions changed, or the actor stops)."""
        self._log_lines(self.refusal_log.end_all())

    def on_order_update(self, update: OrderUpdate) -> Decision | None:
        """Apply the gateway's report on one of our orders (moves the transition table does not allow change
        nothing), then bring the position's protective orders in line with it."""
        decision = self._apply_update(update)
        if update.client_order_id is not None and update.intent_hash is not None:
            self.protect()
        return decision

    def _apply_update(self, update: OrderUpdate) -> Decision | None:
        if update.client_order_id is None or update.intent_hash is None:
            return None
        cid = update.client_order_id
        order = self.orders.get(cid)
        if order is None:
            self._taken_back(update)
            return None
        if not is_advance(order.state, update.state, filled_before=order.filled, filled_after=update.filled):
            return None
        if update.filled > order.filled:
            delta = update.filled - order.filled
            self._filled_more(order, update, delta)
            if not self._in_last_sync(update, delta):
                self.unsynced_fills.append((update.seq, delta if order.side is Side.BUY else -delta))
            order.filled = update.filled
        order.state = update.state
        order.exchange_order_id = update.exchange_order_id or order.exchange_order_id
        order.recovered = order.recovered and update.state in UNRESOLVED_STATES
        self.last_outcome = f"{update.state.value} {cid}" + (f" ({update.reason})" if update.reason else "")
        if not update.state.is_final:
            return None
        self._log_end(order, update)
        del self.orders[cid]
        self.blocked.pop(cid, None)
        self._remember_finished(cid, update.state, order.filled, order.reduce_only, order.side)
        if order.protective and update.state is OrderState.REJECTED and order.kind is not None:
            self._refused(order.kind, f"{update.reason or 'rejected'}: {update.detail}")
        if self.flatten_after_cancel == cid:
            self.flatten_after_cancel = None
            if self.effective_contracts() != 0:
                return self.flatten("flatten (after the resting exit was cancelled)")
        return None

    def _log_end(self, order: TrackedOrder, update: OrderUpdate) -> None:
        """Every way an order ends reaches the console at INFO: filled, cancelled (a limit time-out, an operator,
        on the exchange), rejected, never placed (proven absent)."""
        if update.state is OrderState.FILLED and update.fills:
            return  # the portfolio has just logged the fill that completed it
        what = LABEL_OF.get(order.kind, "order") if order.kind is not None else "order"
        why = ": ".join(part for part in (update.reason or "", update.detail) if part)
        logger.info("{} {} {} {} {}: {} of {} filled{}", self.symbol, order.side.value, what, order.client_order_id,
                    update.state.value, plain_decimal(order.filled), plain_decimal(order.amount),
                    f" ({why})" if why else "")

    def _filled_more(self, order: TrackedOrder, update: OrderUpdate, delta: Decimal) -> None:
        """An entry's fills make it the anchor of the position's protective orders; a protective order's fills are
        the exchange closing (part of) the position: said in the log and the events."""
        if not order.reduce_only:  # before this fill is counted: was the position flat (or the other way)?
            if self.anchor is None or self.anchor.side is not order.side or self.effective_contracts() == 0:
                price = update.average_price or (update.fills[0].price if update.fills else None)
                self.anchor = Anchor(order.intent_hash, order.side, price or self._reference_price(), order.levels)
                self.generation.clear()
                self.refusals.clear()
            return
        if order.protective and order.kind is not None:
            price = update.average_price
            detail = (f"{LABEL_OF[order.kind]} {order.client_order_id} filled {delta} on the exchange"
                      + (f" at {price}" if price is not None else "") + f" (trigger {order.trigger_price})")
            logger.warning("{} closed by {} on the exchange: {}", self.symbol, LABEL_OF[order.kind], detail)
            self.ports.record(Event(kind=EventKind.PROTECTION, symbol=self.symbol, intent_hash=order.intent_hash,
                                    detail=f"closed by {LABEL_OF[order.kind]} on the exchange: {detail}"))

    def _reference_price(self) -> Decimal:
        if self.position is not None and self.position.entry_price:
            return self.position.entry_price
        return self.candles[-1].close if self.candles else Decimal(0)

    def _taken_back(self, update: OrderUpdate) -> None:
        """A report on an order that had ended: found on the exchange after all, its fills count."""
        cid = update.client_order_id
        assert cid is not None and update.intent_hash is not None
        done = self.finished.get(cid)
        if done is None:
            return None
        state, filled, reduce_only, side = done
        if not is_advance(state, update.state, filled_before=filled, filled_after=update.filled):
            if update.filled > filled:  # more filled on a finished order (e.g. a rejection found filled): it counts
                delta = update.filled - filled
                if not self._in_last_sync(update, delta):
                    self.unsynced_fills.append((update.seq, delta if side is Side.BUY else -delta))
                self._remember_finished(cid, state, update.filled, reduce_only, side)
            return None
        if update.filled > filled:
            delta = update.filled - filled
            if not self._in_last_sync(update, delta):
                self.unsynced_fills.append((update.seq, delta if side is Side.BUY else -delta))
        logger.warning("{} {}: {} after {}: the exchange shows it after all; taken back", self.symbol, cid,
                       update.state.value, state.value)
        if update.state.is_final:
            self._remember_finished(cid, update.state, max(filled, update.filled), reduce_only, side)
            return None
        del self.finished[cid]
        self.orders[cid] = TrackedOrder(intent_hash=update.intent_hash, client_order_id=cid, side=side,
                                        reduce_only=reduce_only, amount=update.amount or update.filled,
                                        state=update.state, filled=update.filled,
                                        exchange_order_id=update.exchange_order_id)
        return None

    def _in_last_sync(self, update: OrderUpdate, delta: Decimal) -> bool:
        """True when the new fills are already in the last synced position: each of them timed by the exchange
        before that position was read (e.g. an order recovered after a restart, decided after the first sync)."""
        if self.position_exchange_time is None or not update.fills:
            return False
        if sum((f.amount for f in update.fills), Decimal(0)) < delta:
            return False  # part of the amount has no fill (and no exchange time) yet: counted, to be safe
        return max(f.time for f in update.fills) < self.position_exchange_time

    def _remember_finished(self, cid: str, state: OrderState, filled: Decimal, reduce_only: bool, side: Side) -> None:
        self.finished[cid] = (state, filled, reduce_only, side)
        while len(self.finished) > 1000:
            del self.finished[next(iter(self.finished))]

    def on_blocked(self, message: OrderBlocked) -> None:
        """The gateway cannot decide one of our orders (or can again)."""
        if message.detail:
            self.blocked[message.client_order_id] = message.detail
        else:
            self.blocked.pop(message.client_order_id, None)

    def on_mismatch(self, message: ExchangeMismatch) -> None:
        """An exchange answer contradicts what we know (or the contradiction is gone)."""
        if message.detail:
            self.mismatches[message.key] = message.detail
        else:
            self.mismatches.pop(message.key, None)

    def resolve(self, message: Resolve) -> str:
        """The operator checked the exchange: take its next position as true and forget the contradictions."""
        cleared = []
        if self.position_mismatch:
            cleared.append(f"position view ({self.position_mismatch}): the next sync is taken as true")
        if self.mismatches:
            cleared.append(f"{len(self.mismatches)} contradiction(s)")
        self.accept_next_sync = True
        self.position_mismatch = ""
        self.mismatches.clear()
        self.blocked.clear()
        self.ports.record(Event(kind=EventKind.CONTROL, symbol=self.symbol, reason=Reason.GIVEN_UP,
                                detail=f"resolve by {message.source}: " + ("; ".join(cleared) or "nothing blocked")))
        return "; ".join(cleared) or "nothing was blocked here"

    def entry_doubt(self) -> str:
        """Why entries are refused while the exchange's view is in doubt ('' when it is not)."""
        hint = f"; after checking the exchange, `kraken-actors resolve {self.symbol}` frees it"
        if self.position_mismatch:
            return self.position_mismatch + hint
        for detail in self.mismatches.values():
            return detail + hint
        for detail in self.blocked.values():
            return detail
        return ""

    def on_position_sync(self, sync: PositionSync) -> None:
        """Take the portfolio's position push; fills reported after it still count on top of it."""
        if sync.seq < self.position_seq or sync.seq < self.min_position_seq:
            return
        if self.position is not None and not self.accept_next_sync:
            ours = sum((amount for seq, amount in self.unsynced_fills if seq < sync.seq), Decimal(0))
            expected = self.position.signed_contracts + ours
            reported = sync.position.signed_contracts
            # Less open than we know it to be (our fills, the last trusted sync): believing it could let a
            # second entry through, so it is not booked. More open (an external order filled) only makes L3
            # stricter and is taken.
            less_open = expected != 0 and (reported == 0 or (reported > 0) != (expected > 0)
                                           or abs(reported) < abs(expected))
            if less_open:  # not booked: the last trusted position and our fills stay
                detail = (f"the exchange shows position {reported}, but the last position "
                          f"{self.position.signed_contracts} and our fills since ({ours}) make {expected}")
                if detail != self.position_mismatch:
                    self.position_mismatch = detail
                    logger.error("{}: {}; entries refused until a consistent view returns", self.symbol, detail)
                    self.ports.record(Event(kind=EventKind.RECONCILE_MISMATCH, symbol=self.symbol,
                                            reason=Reason.EXCHANGE_MISMATCH, detail=detail))
                return
        if self.position_mismatch:
            logger.info("{}: the exchange's position agrees with our fills again", self.symbol)
        self.position_mismatch = ""
        self.accept_next_sync = False
        self.position = sync.position
        self.position_seq = sync.seq
        self.position_exchange_time = sync.exchange_time
        self.unsynced_fills = [(seq, amount) for seq, amount in self.unsynced_fills if seq > sync.seq]
        self.protect()

    # --- protective orders (actors/protection.py) ---------------------------------------

    def protect(self) -> None:
        """Bring the position's stop-loss and take-profit in line with it: placed when missing, resized to the
        position, cancelled once it is flat or not the one this system opened.

        Level-triggered: called after every order update and position sync, it asks again for what is not done
        yet, so a lost cancel, a refused placement or a restart is mended at the next look."""
        settings = self.settings.protection
        if self.position is None:
            return
        contracts = self.effective_contracts()
        live = [o for o in self.orders.values() if o.protective]
        if not settings.enabled and not live:
            return
        anchor = self.anchor
        if not settings.enabled:  # turned off: nothing new, but a closed position's orders still go (none outlives it)
            if contracts == 0:
                for order in live:
                    self._cancel_protective(order, "the position is flat")
            return
        if anchor is None or contracts == 0 or (contracts > 0) != (anchor.side is Side.BUY):
            for order in live:
                self._cancel_protective(order, "the position is flat" if contracts == 0
                                        else f"position {contracts} is not the one it protected")
            self.protection_problem = "" if contracts == 0 else (
                f"position {contracts} was not opened by this system: no protective orders placed")
            return
        side = Side.SELL if contracts > 0 else Side.BUY
        problems = []
        for kind in (k for k in PROTECTIVE_KINDS if k in settings.kinds or anchor.level(k) is not None):
            have = [o for o in live if o.kind is kind]
            for order in have:
                if order.side is not side:
                    self._cancel_protective(order, f"it is a {order.side.value} but the position needs a {side.value}")
                elif order.amount != abs(contracts):
                    order.amount = abs(contracts)  # asked once per change; the gateway keeps resizing until it is
                    self.ports.resize_order(ResizeOrder(symbol=self.symbol, client_order_id=order.client_order_id,
                                                        amount=order.amount))
            if not any(o.side is side for o in have):
                problem = self._place_protective(kind, side, abs(contracts), anchor)
                if problem:
                    problems.append(problem)
        self.protection_problem = "; ".join(problems)

    def _cancel_protective(self, order: TrackedOrder, why: str) -> None:
        now = self.clock()
        if order.asked_at is not None and now - order.asked_at < self.settings.protection.retry_ms:
            return
        order.asked_at = now
        logger.info("{} cancelling {} {}: {}", self.symbol, LABEL_OF.get(order.kind, "order") if order.kind else "",
                    order.client_order_id, why)
        self.ports.cancel_order(CancelOrder(symbol=self.symbol, client_order_id=order.client_order_id))

    def _refused(self, kind: SignalKind, detail: str) -> None:
        count = self.refusals.get(kind, (0, 0))[0] + 1
        self.refusals[kind] = (count, self.clock())
        logger.error("{} {} refused ({} of {}): {}", self.symbol, LABEL_OF[kind], count,
                     self.settings.protection.max_refusals, detail)
        self.ports.record(Event(kind=EventKind.PROTECTION, symbol=self.symbol, reason=Reason.EXCHANGE_REJECTED,
                                detail=f"{LABEL_OF[kind]} refused ({count}): {detail}"))

    def _place_protective(self, kind: SignalKind, side: Side, amount: Decimal, anchor: Anchor) -> str:
        """Claim (and so send) the next protective order of this kind; '' when claimed, else why not (yet)."""
        settings, label, now = self.settings.protection, LABEL_OF[kind], self.clock()
        count, at = self.refusals.get(kind, (0, 0))
        if count >= settings.max_refusals:
            return (f"{label} refused {count} times: the position is NOT protected on the exchange; `flatten "
                    f"{self.symbol}` closes it")
        if count and now - at < settings.retry_ms:
            return f"{label} refused {count} time(s); asked again shortly"
        entry = self.position.entry_price if self.position is not None and self.position.is_open \
            and self.position.entry_price else anchor.price
        level = anchor.level(kind)  # the strategy's own price wins over the configured distance
        distance = settings.distance(kind, entry)
        long = side is Side.SELL
        if level is not None:  # on the tick grid, rounded away from the entry as a distance would be
            price = trigger_price(kind, long, level, Decimal(0), self.market.price_tick)
        else:
            price = None if distance is None else trigger_price(kind, long, entry, distance, self.market.price_tick)
        if price is None:
            return f"{label}: no valid trigger price from entry {entry}"
        # a trailing stop (no level of the strategy's): Kraken moves its trigger with the price; `price` is its start
        trailing = kind is SignalKind.STOP_LOSS and level is None and settings.trailing_stop_pct is not None
        for _ in range(64):  # generations whose orders ended before are skipped: their hashes are claimed
            generation = self.generation.get(kind, 0)
            hash_hex = protective_hash(anchor.intent_hash, kind, generation)
            sent_at = self._exchange_now() if self.settings.process_before_ms is not None else None
            intent = OrderIntent(
                sent_at=sent_at,
                process_before=None if sent_at is None else sent_at + (self.settings.process_before_ms or 0),
                intent_hash=hash_hex, client_order_id=client_order_id_for(hash_hex), symbol=self.symbol, kind=kind,
                side=side, candle_time=now, notional=Decimal(0), amount=amount, price=price, reduce_only=True,
                order_type="trailing_stop" if trailing else ORDER_TYPE_OF[kind],
                trigger_price=None if trailing else price,
                trailing_pct=settings.trailing_stop_pct if trailing else None,
                trigger_signal=settings.trigger_signal, created_at=now)
            event = Event(kind=EventKind.INTENT_CLAIMED, symbol=self.symbol, intent_hash=hash_hex,
                          detail=f"{kind.value} {side.value} {amount} trigger {price} ({settings.trigger_signal}) "
                                 f"cliOrdId={intent.client_order_id}")
            try:
                result = self.ports.claim(ClaimIntent(intent=intent, event=event))
            except Exception as exc:  # noqa: BLE001 - given up, never sent; the same hash is claimed again later
                self.ports.give_up(ClaimGivenUp(symbol=self.symbol, intent_hash=hash_hex, sent_at=intent.sent_at,
                                                detail=f"claim not confirmed in time: {exc!r}"), entry=False)
                self._refused(kind, f"claim not confirmed: {exc!r}")
                return f"{label} not claimed ({type(exc).__name__}); asked again shortly"
            state = result.existing_state
            if not result.claimed and state is not None and state.is_final:
                self.generation[kind] = generation + 1  # that one ended: the next generation is the position's
                continue
            self.orders[intent.client_order_id] = TrackedOrder(
                intent_hash=hash_hex, client_order_id=intent.client_order_id, side=side, reduce_only=True,
                amount=amount, state=OrderState.INITIALIZED if result.claimed else (state or OrderState.UNKNOWN),
                recovered=not result.claimed, order_type=intent.order_type, kind=kind,
                trigger_price=intent.trigger_price, trigger_signal=settings.trigger_signal)
            if result.claimed:
                logger.info("{} {} {} {} trigger {} ({}) (cliOrdId {})", self.symbol, label, side.value, amount, price,
                            settings.trigger_signal, intent.client_order_id)
                return ""
            return f"{label} {intent.client_order_id} claimed before ({state}): being resolved"
        return f"{label}: no free generation"

    def on_open_orders(self, sync: OpenOrdersSync) -> None:
        """Take the orders resting on the exchange for this symbol, as reconciliation found them."""
        self.exchange_orders = sync.orders

    def on_not_ready(self, message: NotReady) -> None:
        """Remember why this symbol may not trade yet."""
        if self.not_ready and not message.detail:
            self.end_refusal_streaks()
        self.not_ready = message.detail

    def effective_contracts(self) -> Decimal:
        """Signed contracts: the last synced position plus our fills reported after it."""
        base = self.position.signed_contracts if self.position else Decimal(0)
        return base + sum((amount for _, amount in self.unsynced_fills), Decimal(0))

    def effective_side(self) -> PositionSide:
        """The side of the effective position."""
        contracts = self.effective_contracts()
        if contracts > 0:
            return PositionSide.LONG
        return PositionSide.SHORT if contracts < 0 else PositionSide.FLAT

    def set_paused(self, paused: bool) -> None:
        """Pause (no new orders) or resume."""
        if self.paused and not paused:
            self.end_refusal_streaks()
        self.paused = paused

    def set_halted(self, halted: bool, reason: str = "") -> None:
        """Halt (exits only) or lift the halt."""
        if self.halted and not halted:
            self.end_refusal_streaks()
        self.halted, self.halt_reason = halted, reason if halted else ""

    def purge_seen(self) -> None:
        """Forget in-memory hashes older than the retention window (the database keeps its own)."""
        cutoff = self.clock() - self.settings.retention_ms
        self.seen = {h: t for h, t in self.seen.items() if t >= cutoff}

    def _remember(self, hash_hex: str, when: int) -> None:
        """Keep a hash in the L1 cache; beyond `seen_max` the oldest is forgotten (the claim still refuses it)."""
        self.seen[hash_hex] = when
        while len(self.seen) > self.settings.seen_max:
            del self.seen[next(iter(self.seen))]

    def _exchange_now(self) -> int | None:
        """The exchange's time for a claim that records the send, None when it has not been read yet.

        A claim never waits on the exchange: a ServerClock that has no reading yet answers None (`peek`), and
        the gateway then records the send itself before sending.
        """
        clock = self.exchange_clock
        if clock is None:
            return None
        try:
            peek = getattr(clock, "peek", None)
            return peek() if peek is not None else clock()
        except Exception as exc:  # noqa: BLE001 - a clock that cannot be read leaves the send to the gateway
            logger.debug("{}: exchange clock unreadable at claim ({!r}); the gateway records the send", self.symbol,
                         exc)
            return None

    def status(self) -> SymbolStatus:
        """This symbol's status report."""
        if self.paused:
            state = SymbolState.PAUSED
        elif self.halted:
            state = SymbolState.HALTED
        elif self.position is None:
            state = SymbolState.SYNCING
        elif any(o.unresolved for o in self.orders.values()) or self.entry_doubt():
            state = SymbolState.BLOCKED
        else:
            state = SymbolState.TRADING
        blocked = self.entry_doubt()
        if not blocked:
            unknown = [o for o in self.orders.values() if o.unresolved]
            if unknown:
                blocked = (f"order {unknown[0].client_order_id} outcome unknown: decided once its processBefore has "
                           "passed and the exchange has been searched")
        return SymbolStatus(
            symbol=self.symbol,
            state=state,
            paused=self.paused,
            halted=self.halted,
            halt_reason=self.halt_reason,
            position=self.position,
            pending_orders=tuple(
                PendingOrderView(
                    client_order_id=o.client_order_id,
                    side=o.side,
                    state=o.state,
                    reduce_only=o.reduce_only,
                    amount=o.amount,
                    filled=o.filled,
                    exchange_order_id=o.exchange_order_id,
                )
                for o in self.orders.values()
            ),
            last_candle_time=self.candles[-1].open_time if self.candles else None,
            last_signal=self.last_signal,
            last_outcome=self.last_outcome,
            rejections=dict(self.rejections),
            restarts=self.restarts,
            last_price=self.candles[-1].close if self.candles else None,
            unrealized_pnl=self.unrealized_pnl(),
            exchange_orders=self.exchange_orders,
            not_ready=self.not_ready if self.position is None else "",
            blocked=blocked,
            strategy_off=self.strategy_off,
            protection_enabled=self.settings.protection.enabled,
            protection=tuple(
                ProtectionView(kind=o.kind.value, client_order_id=o.client_order_id, side=o.side, amount=o.amount,
                               trigger_price=o.trigger_price, trigger_signal=o.trigger_signal, state=o.state)
                for o in self.orders.values() if o.protective and o.kind is not None),
            protection_problem=self.protection_problem,
        )

    def unrealized_pnl(self) -> Decimal | None:
        """The exchange's figure if it gives one, else from the last close and the entry price."""
        position = self.position
        if position is None or not position.is_open:
            return None if position is None else Decimal(0)
        if position.unrealized_pnl is not None:
            return position.unrealized_pnl
        if not self.candles or position.entry_price is None:
            return None
        move = self.candles[-1].close - position.entry_price
        return (move * position.signed_contracts * self.market.contract_size).quantize(Decimal("0.01"))


class ActorPorts:
    """SymbolPorts over actor references: asks (with time-outs) go down, the order goes by tell."""

    def __init__(
        self,
        portfolio: pykka.ActorRef[PortfolioActor],
        persistence: pykka.ActorRef[PersistenceActor],
        gateway: pykka.ActorRef[ExchangeGatewayActor],
        ask_timeout: float,
    ) -> None:
        self._portfolio, self._persistence, self._gateway = portfolio, persistence, gateway
        self._timeout = ask_timeout

    def claim(self, claim: ClaimIntent) -> ClaimResult:
        reply: pykka.Future[ClaimResult] = pykka.ThreadingFuture()
        handover = Handover()
        # an entry goes through the portfolio (risk), an exit straight to persistence; claims arriving together share
        # a commit, and the persistence hands that commit's orders to the gateway at once
        (self._portfolio if claim.risk is not None else self._persistence).tell(
            claim.model_copy(update={"reply": reply, "place": self._gateway, "handover": handover}))
        try:
            return reply.get(timeout=self._timeout)
        except pykka.Timeout:
            if handover.take("symbol"):
                raise ClaimUnanswered(f"no answer in {self._timeout:g}s",
                                      at_portfolio=claim.risk is not None and not handover.reserved) from None
            try:  # the persistence took it after the commit: handed to the gateway, the answer is being set
                return reply.get(timeout=self._timeout)
            except pykka.Timeout:
                return ClaimResult(claimed=True, handed=True)  # what taking it means; never given up now
        except Exception:
            handover.take("symbol")  # refused (a storage error): nothing was committed, nothing can be handed
            raise

    def give_up(self, given_up: ClaimGivenUp, *, entry: bool) -> None:
        if entry:  # after the claim, through the portfolio: it releases the risk and passes the abandon on
            self._portfolio.tell(given_up)
        else:
            self._persistence.tell(AbandonIntent(intent_hash=given_up.intent_hash, detail=given_up.detail,
                                                 claimed_sent_at=given_up.sent_at))

    def release_risk(self, release: RiskRelease) -> None:
        self._portfolio.tell(release)

    def cancel_order(self, command: CancelOrder) -> None:
        self._gateway.tell(command)

    def resize_order(self, command: ResizeOrder) -> None:
        self._gateway.tell(command)

    def record(self, event: Event) -> None:
        self._persistence.tell(event)


class SymbolActor(pykka.ThreadingActor):
    """The actor shell around a SymbolTrader: one thread, one mailbox, no locks."""

    def __init__(self, trader: SymbolTrader, supervisor: pykka.ActorRef[PortfolioActor] | None = None) -> None:
        super().__init__()
        self.trader = trader
        self.supervisor = supervisor

    def on_receive(self, message: Any) -> Any:
        trader = self.trader
        match message:
            case Candles():
                return trader.on_candles(message)
            case Signal():
                return trader.on_signal(message)
            case OrderUpdate():
                return trader.on_order_update(message)
            case PositionSync():
                return trader.on_position_sync(message)
            case OpenOrdersSync():
                return trader.on_open_orders(message)
            case OrderBlocked():
                return trader.on_blocked(message)
            case ExchangeMismatch():
                return trader.on_mismatch(message)
            case Resolve():
                return trader.resolve(message)
            case NotReady():
                return trader.on_not_ready(message)
            case Pause():
                return trader.set_paused(True)
            case Resume():
                return trader.set_paused(False)
            case Halt():
                return trader.set_halted(True, message.reason)
            case Unhalt():
                return trader.set_halted(False)
            case Flatten():
                return trader.flatten(message.source)
            case Tick(name="purge"):
                return trader.purge_seen()
            case GetStatus():
                return trader.status()
            case Ping():
                return True
            case _:
                raise TypeError(f"{trader.symbol}: unexpected message {type(message).__name__}")

    def on_stop(self) -> None:
        self.trader.end_refusal_streaks()

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        logger.opt(exception=(exception_type, exception_value, traceback)).error(
            "{} symbol actor died: {!r}", self.trader.symbol, exception_value
        )
        if self.supervisor is not None:
            try:
                self.supervisor.tell(
                    SymbolDied(symbol=self.trader.symbol, actor_urn=self.actor_urn, error=repr(exception_value))
                )
            except pykka.ActorDeadError:
                pass
