"""The exchange gateway: the only caller of Kraken's private endpoints; the order lifecycle lives here.

A send (every send carries Kraken's `processBefore`, a few seconds ahead on the exchange's clock):
    L4: one open-order check for the account; an open order on symbol+side blocks an entry (an
        unreadable or self-contradictory answer is a failed check: fail-closed refuses)
    -> the SUBMITTED state with its send time and processBefore is durable (persist before send): written
       by the claim itself when the intent carries `process_before` (a first send; if that time is
       already too close when the gateway gets to it, the order is not sent: NOT_PLACED), otherwise
       written here, with a fresh processBefore, before anything leaves
    -> the orders that arrived together leave in ⌈N/batch_max⌉ batchorders (one alone by sendorder),
       each with the intents' client order ids and the request-level `ProcessBefore`; a batch whose
       request fails leaves every order in it UNKNOWN, a definite refusal of the request rejects them all
    -> ACCEPTED / PARTIALLY_FILLED / FILLED / REJECTED (the answer says so, confirmed later from the
       order history) / UNKNOWN (time-out, dropped connection, 5xx, 429, garbage)
An UNKNOWN is decided only after its processBefore (plus clock skew and history lag) has passed on
the exchange's clock — then no copy can still execute — by a search complete for the window since
the send: open orders, orders/status, fills paged by time, the order history paged from the send
time. Found: followed as ours. Proven absent: re-sent (same client order id, new processBefore) only
if young enough and if L3 and L4 pass again on positions and open orders fetched for that decision;
otherwise REJECTED (NOT_PLACED), which is then final because no copy can still execute.
Accepted orders are followed through fills and open orders; one that leaves the book is looked up
(orders/status, then history) until its final state is proven; a limit order past its time-out is
cancelled and its fills at the cancel are read from the cancel answer and the fills.
Where the gateway cannot decide, the symbol is told (OrderBlocked) why and that `resolve SYMBOL`
frees it; an answer that contradicts what we know for certain is an ExchangeMismatch: the symbol
refuses entries until a consistent view returns, and nothing is booked from it.
Reports go by tell to persistence first, then to the portfolio (which routes them to the symbol).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import ccxt
import pykka
from loguru import logger

from actors.account_money import AccountLogSettings, AccountMoney
from actors.heartbeat import DeadMansSwitch
from actors.timers import ActorTimers
from exchange.budget import CostBudget
from exchange.private_api import FillsPending, PrivateApi
from exchange.reports import (
    ExchangeStatus,
    FillReport,
    HistoryReport,
    OpenOrderReport,
    OrderStatusReport,
    SendReport,
    UnreadableAnswer,
)
from messages import (
    AccountLogEntries,
    CancelOrder,
    CancelOrders,
    ConnectGateway,
    ExchangeMismatch,
    ExchangeOrder,
    Fill,
    FindIntents,
    Flush,
    GetAccountLogCursor,
    GetInFlight,
    IntentRecord,
    OrderBlocked,
    OrderIntent,
    OrderState,
    OrderUpdate,
    Ping,
    PlaceOrder,
    PlaceOrders,
    Position,
    PositionsSnapshot,
    PositionsUnavailable,
    Reason,
    Reconcile,
    ReconciliationReport,
    RecordSends,
    ResizeOrder,
    Resolve,
    Side,
    SyncPositions,
    Tick,
    now_ms,
)
from messages._base import Message
from messages.control import BeginStop, Holdings, ReadHoldings

if TYPE_CHECKING:  # for the types of the references only (they import this module)
    from actors.persistence import PersistenceActor
    from actors.portfolio import PortfolioActor

# Errors that prove the exchange refused the request before placing anything (4xx-like answers).
_DEFINITE_REJECTIONS: tuple[type[Exception], ...] = (
    ccxt.InsufficientFunds,
    ccxt.BadRequest,  # includes BadSymbol
    ccxt.AuthenticationError,  # includes PermissionDenied
    ccxt.ArgumentsRequired,
)
_LIVE = (OrderState.ACCEPTED, OrderState.PARTIALLY_FILLED)


@dataclass(frozen=True)
class GatewaySettings:
    """How the gateway sends, follows orders and decides unknown outcomes."""

    fail_open: bool = False
    poll_interval_s: float = 1.0
    limit_timeout_s: float = 120.0  # unfilled limit orders are cancelled after this
    resend_max_age_s: float = 120.0  # proven absent and younger than this: re-sent, same client order id
    max_sends: int = 3  # sends of one intent at most (the first one and re-sends)
    process_before_s: float = 5.0  # every request carries processBefore this far ahead (real seconds)
    clock_skew_s: float = 2.0  # margin between our clock and the exchange's
    history_lag_s: float = 5.0  # how long an event may take to show in the order history
    clock_rate: float = 1.0  # exchange seconds per real second (a paper simulator runs faster)
    pyramiding: bool = False  # re-sends pass L3 again: an open position blocks a re-sent entry
    batch_max: int = 100  # orders in one batchorder at most ([exchange] batch_max; Kraken documents no maximum)
    send_margin_s: float = 0.25  # a claimed processBefore closer than this when the gateway gets to it: not sent
    # orders wait until no other order came for gather_s (real s), at most gather_max_s after the first: the rest
    # of their burst joins them, one open-order check and one batch carry it. gather_s outlasts a claim commit
    # (the claims of one close commit in a few groups, an fsync apart); a burst that already holds an order
    # for every traded symbol goes at once (one symbol: never waits)
    gather_s: float = 0.025
    gather_max_s: float = 0.2
    backoff_max_s: float = 30.0  # lookups that decide nothing are retried, at most this far apart
    block_after_lookups: int = 3  # after this many undecided lookups the symbol shows BLOCKED
    dead_man_timeout_s: int = 0  # [protection] Kraken's dead man's switch (our seconds); 0: off
    heartbeat_interval_s: float = 20.0  # how often it is pushed back
    # the account log (fees, funding; actors/account_money.py), real seconds: while fills await their fee, and
    # otherwise (at least twice per hour of the exchange's clock: Kraken charges funding hourly)
    account_log_interval_s: float = 20.0
    funding_interval_s: float = 300.0

    def exchange_ms(self, seconds: float) -> int:
        """Real seconds as a span on the exchange's clock."""
        return int(seconds * self.clock_rate * 1000)

    @property
    def window_ms(self) -> int:
        """After processBefore plus this (exchange ms), a search that finds nothing proves absence."""
        return self.exchange_ms(self.clock_skew_s + self.history_lag_s)

    @property
    def margin_ms(self) -> int:
        """Searches start this much before a send (clock skew), on the exchange's clock."""
        return self.exchange_ms(self.clock_skew_s) + 1000


@dataclass
class Tracked:
    """One of our orders the gateway follows until its final state is proven."""

    intent: OrderIntent
    state: OrderState
    exchange_order_id: str | None = None
    filled: Decimal = Decimal(0)  # what the exchange says is filled (answers, status, history, fills)
    booked: Decimal = Decimal(0)  # the amount of the fills booked (each fill id once)
    booked_value: Decimal = Decimal(0)  # their amount times price
    fill_ids: set[str] = field(default_factory=set)
    average_price: Decimal | None = None
    sends: int = 0
    sent_at_ms: int | None = None  # exchange ms of the latest send
    process_before_ms: int | None = None  # no copy executes after this (exchange ms)
    window_unknown: bool = False  # sent by schema version 1, without processBefore
    placed_at: float = 0.0  # monotonic time the exchange accepted it (limit time-outs)
    lookups: int = 0
    next_lookup: float = 0.0
    blocked: str = ""
    confirm: bool = False  # final as answered, still to be confirmed by the order history
    gone: bool = False  # accepted but no longer listed among open orders: being looked up
    want_amount: Decimal | None = None  # a protective order's size as its symbol asked (ResizeOrder)
    resize_after: int = 0  # exchange ms: a resize already sent may still land until then; not sent again before
    cancel_wanted: tuple[Reason | None, str] | None = None  # a cancel that failed: asked again at every look

    @property
    def client_order_id(self) -> str:
        """The intent's client order id."""
        return self.intent.client_order_id

    @property
    def symbol(self) -> str:
        """The intent's market."""
        return self.intent.symbol


@dataclass
class Evidence:
    """What the exchange shows of one client order id in one complete search."""

    open: OpenOrderReport | None = None
    statuses: list[OrderStatusReport] = field(default_factory=list)
    history: list[HistoryReport] = field(default_factory=list)
    fills: list[FillReport] = field(default_factory=list)

    def order_ids(self) -> set[str]:
        """Every exchange order id seen for this client order id."""
        ids = {s.exchange_order_id for s in self.statuses} | {h.exchange_order_id for h in self.history}
        ids |= {f.exchange_order_id for f in self.fills}
        if self.open is not None:
            ids.add(self.open.exchange_order_id)
        return ids

    @property
    def seen(self) -> bool:
        """True when anything shows the order existed."""
        return bool(self.open or self.statuses or self.history or self.fills)


@dataclass(frozen=True)
class Conclusion:
    """What a search proves: a state (None: nothing yet, look again), the filled amount, why."""

    state: OrderState | None
    filled: Decimal = Decimal(0)
    detail: str = ""
    absent: bool = False
    blocked: str = ""


def conclude(tracked: Tracked, evidence: Evidence) -> Conclusion:
    """Decide one order from a complete search (the caller checks that the window has passed)."""
    ids = evidence.order_ids()
    if len(ids) > 1:
        return Conclusion(None, blocked=f"{len(ids)} exchange orders carry client order id {tracked.client_order_id}: "
                                        f"{', '.join(sorted(ids))}")
    filled = max([tracked.booked, sum((f.amount for f in evidence.fills), Decimal(0))]
                 + [s.filled for s in evidence.statuses] + [h.filled for h in evidence.history]
                 + ([evidence.open.filled] if evidence.open else []))
    amount = tracked.intent.amount
    statuses = {s.status for s in evidence.statuses} | {h.status for h in evidence.history if h.status}
    if evidence.open is not None:
        return Conclusion(OrderState.PARTIALLY_FILLED if filled > 0 else OrderState.ACCEPTED, filled, "open")
    if filled >= amount or ExchangeStatus.FILLED in statuses:
        return Conclusion(OrderState.FILLED, max(filled, amount) if ExchangeStatus.FILLED in statuses else filled,
                          "filled")
    if ExchangeStatus.CANCELLED in statuses:
        return Conclusion(OrderState.CANCELED, filled, "cancelled on the exchange")
    if ExchangeStatus.REJECTED in statuses and filled == 0:
        rested = tracked.state in _LIVE or ExchangeStatus.OPEN in {h.status for h in evidence.history}
        if rested:  # it rested first (placed, or a trigger placed): refused when it fired (nothing left to reduce)
            return Conclusion(OrderState.CANCELED, filled, "accepted, then refused by the exchange when it triggered")
        return Conclusion(OrderState.REJECTED, filled, "rejected by the exchange")
    if ExchangeStatus.OPEN in {s.status for s in evidence.statuses}:
        return Conclusion(None, filled, "orders/status shows it open but openorders does not list it")
    if evidence.seen:
        return Conclusion(None, filled, "placed, but its end is not in the history yet")
    return Conclusion(None, absent=True)


class FillIndex:
    """One look's fills by client order id and by exchange order id: each order finds its own without a scan.

    An order's fills are those naming its client order id or, once known, its exchange order id, in the order the
    exchange listed them (a 300-order burst followed in one look would otherwise compare every fill with every order).
    """

    def __init__(self, fills: Iterable[FillReport]) -> None:
        self._by_cid: dict[str, list[tuple[int, FillReport]]] = {}
        self._by_id: dict[str, list[tuple[int, FillReport]]] = {}
        for n, fill in enumerate(fills):
            if fill.client_order_id:
                self._by_cid.setdefault(fill.client_order_id, []).append((n, fill))
            if fill.exchange_order_id:
                self._by_id.setdefault(fill.exchange_order_id, []).append((n, fill))

    def of(self, tracked: Tracked) -> list[FillReport]:
        found = dict(self._by_cid.get(tracked.client_order_id, ()))
        if tracked.exchange_order_id:
            found.update(self._by_id.get(tracked.exchange_order_id, ()))
        return [found[n] for n in sorted(found)]


class OrderGateway:
    """Open-order check, placement, resolution, order following and reconciliation. No threads."""

    def __init__(
        self,
        exchange: Any,
        *,
        settings: GatewaySettings | None = None,
        report: Callable[[OrderUpdate], None] = lambda update: None,
        route: Callable[[Message], None] = lambda message: None,
        record_sends: Callable[[Sequence[OrderUpdate]], str | None] = lambda updates: None,
        find_intents: Callable[[Sequence[str]], list[IntentRecord]] = lambda cids: [],
        budget: CostBudget | None = None,
        exchange_clock: Callable[[], int] | None = None,
        refresh_clock: Callable[[], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], int] = now_ms,
        record_money: Callable[[AccountLogEntries], None] = lambda entries: None,
        account_log_cursor: Callable[[], int | None] = lambda: None,
    ) -> None:
        self.api = exchange if isinstance(exchange, PrivateApi) else PrivateApi(exchange, budget)
        self.settings = settings or GatewaySettings()
        # fees, funding and margin (actors/account_money.py): every fill reported or recorded awaits its fee
        self.money = AccountMoney(self.api, record=record_money, route=route, cursor=account_log_cursor,
                                  exchange_now=exchange_clock or wall, clock=clock, settings=AccountLogSettings(
                                      interval_s=self.settings.account_log_interval_s,
                                      funding_interval_s=min(self.settings.funding_interval_s,
                                                             1800 / max(self.settings.clock_rate, 1e-9))))

        def report_fills(update: OrderUpdate) -> None:
            report(update)
            self.money.booked(update.fills)

        def record_fills(updates: Sequence[OrderUpdate]) -> str | None:
            failed = record_sends(updates)
            if failed is None:
                for update in updates:
                    self.money.booked(update.fills)
            return failed

        self.report_to = report_fills
        self.route = route
        self.record_sends = record_fills
        self.find_intents = find_intents
        self.exchange_now = exchange_clock or wall
        self.refresh_clock = refresh_clock
        self.clock = clock
        self.wall = wall
        self.seq = 0
        self.orders: dict[str, Tracked] = {}  # client order id -> our orders not proven final
        self.watch: dict[str, Tracked] = {}  # final, but fills still to book or a rejection to confirm
        self.external: dict[str, OpenOrderReport] = {}  # exchange order id -> adopted as EXTERNAL
        self.mismatches: dict[tuple[str, str], str] = {}
        self.fill_cursor_ms: int | None = None
        self.stop_begun = False  # a stop has begun: nothing new is sent (BeginStop); cancels still go
        self.stop_allows_flatten = False  # stop --flatten: its reduce-only market exits still go

    @property
    def fail_open(self) -> bool:
        """True when an unreadable open-order check does not stop a send."""
        return self.settings.fail_open

    def next_seq(self) -> int:
        """The next report sequence number."""
        self.seq += 1
        return self.seq

    def in_flight(self) -> int:
        """Our orders being sent or resolved (outcome not known yet), and filled ones whose fills are not booked."""
        collecting = sum(1 for t in self.watch.values() if not t.confirm and t.booked < t.filled)
        unresolved = (OrderState.SUBMITTED, OrderState.UNKNOWN)
        return collecting + sum(1 for t in self.orders.values() if t.state in unresolved)

    # --- placing ---------------------------------------------------------------------------

    def place_all(self, intents: Sequence[OrderIntent]) -> list[OrderUpdate]:
        """Check the exchange for open orders once, then place every intent that passes."""
        results: list[OrderUpdate] = []
        open_orders: list[OpenOrderReport] = []
        check_error: str | None = None
        doubtful: dict[str, str] = {}
        if any(intent.is_entry for intent in intents):
            try:
                open_orders = self.api.open_orders()
                doubtful = self._verify_known_open(open_orders)
            except Exception as exc:
                check_error = f"{type(exc).__name__}: {exc}"
        taken: set[tuple[str, Side]] = set()
        to_send: list[OrderIntent] = []
        for intent in intents:
            key = (intent.symbol, intent.side)
            if intent.client_order_id in self.orders and self.orders[intent.client_order_id].state is not \
                    OrderState.INITIALIZED:
                continue  # already being sent or followed: one order per intent
            if intent.is_entry:
                error = check_error or doubtful.get(intent.symbol)
                if error is not None and (not self.fail_open or intent.symbol in doubtful):
                    results.append(self._emit(intent, OrderState.REJECTED, Reason.EXCHANGE_UNAVAILABLE,
                                              f"open-order check failed, not sent (fail-closed): {error}"))
                    continue
                if error is not None:
                    logger.warning("{}: open-order check failed ({}); sending anyway because open_order_check = "
                                   "fail-open", intent.symbol, error)
                blocking = [o for o in open_orders if (o.symbol, o.side) == key]
                if blocking or key in taken:
                    ids = ", ".join(o.client_order_id or o.exchange_order_id for o in blocking) or "this batch"
                    results.append(self._emit(intent, OrderState.REJECTED, Reason.EXCHANGE_ORDER_OPEN,
                                              f"open {intent.side.value} order on the exchange: {ids}"))
                    continue
            taken.add(key)
            to_send.append(intent)
        results.extend(self._send(to_send))
        return results

    def _send(self, intents: Sequence[OrderIntent]) -> list[OrderUpdate]:
        """Make every send durable first, then send them together: ⌈N/batch_max⌉ requests.

        A first send whose intent carries `process_before` was recorded durably by the claim itself (SUBMITTED,
        in the claim's transaction): it writes nothing here and goes with exactly that processBefore, unless the
        exchange's clock is already within `send_margin_s` of it (then it is not sent: NOT_PLACED). Every other
        send (no processBefore claimed, or a re-send) records SUBMITTED with a fresh processBefore first.
        """
        results: list[OrderUpdate] = []
        if self.stop_begun:
            intents, held = self._held_at_stop(intents)
            results.extend(held)
        if not intents:
            return results
        now_ex = self.exchange_now()
        claimed: list[Tracked] = []
        recorded: list[Tracked] = []
        for intent in intents:
            tracked = self._tracked(intent)
            (claimed if tracked.sends == 0 and intent.process_before is not None else recorded).append(tracked)
        going: list[Tracked] = []
        margin_ms = self.settings.exchange_ms(self.settings.send_margin_s)
        for tracked in claimed:
            intent = tracked.intent
            assert intent.process_before is not None
            if now_ex >= intent.process_before - margin_ms:
                results.append(self._final(tracked, OrderState.REJECTED, Reason.NOT_PLACED,
                                           f"processBefore passed before the send (processBefore "
                                           f"{intent.process_before}, exchange time {now_ex}): not sent"))
                continue
            sent_at = intent.sent_at if intent.sent_at is not None else now_ex
            self._submitted(tracked, sent_at, intent.process_before)
            self.route(self._update_message(tracked, OrderState.SUBMITTED, None,
                                            f"sending (attempt 1), processBefore {intent.process_before} "
                                            "(recorded with the claim)", sent_at=sent_at,
                                            process_before=intent.process_before, sends=1))
            going.append(tracked)
        if recorded:
            process_before = now_ex + self.settings.exchange_ms(self.settings.process_before_s)
            submitted = []
            for tracked in recorded:
                self._submitted(tracked, now_ex, process_before)
                submitted.append(self._update_message(tracked, OrderState.SUBMITTED, None,
                                                      f"sending (attempt {tracked.sends}), processBefore "
                                                      f"{process_before}", sent_at=now_ex,
                                                      process_before=process_before, sends=tracked.sends))
            error = self.record_sends(submitted)
            if error is not None:
                logger.error("gateway: the sends could not be recorded durably ({}); {} orders not sent", error,
                             len(recorded))
                results.extend(self._update(t, OrderState.REJECTED, Reason.PERSISTENCE_UNAVAILABLE,
                                            f"send not recorded durably, not sent: {error}") for t in recorded)
            else:
                for update in submitted:
                    self.route(update)  # persistence has it already
                going.extend(recorded)
        if not going:
            return results
        earliest = min(t.sent_at_ms for t in going if t.sent_at_ms is not None) - self.settings.margin_ms
        if self.fill_cursor_ms is None or earliest < self.fill_cursor_ms:
            self.fill_cursor_ms = earliest
        size = max(1, self.settings.batch_max)
        for start in range(0, len(going), size):
            chunk = going[start:start + size]
            # one order alone goes by sendorder (same cost, its processBefore a documented query parameter)
            results.extend([self._send_one(chunk[0])] if len(chunk) == 1 else self._send_batch(chunk))
        return results

    def begin_stop(self, allow_flatten: bool = False) -> None:
        """A stop has begun: from now on no order is sent and none resized; cancels (and with `allow_flatten`,
        reduce-only market exits) still go. An intent that reaches the send once the stop began ends NOT_PLACED."""
        self.stop_begun, self.stop_allows_flatten = True, allow_flatten
        logger.info("gateway: stop begun; nothing new is sent{}", " but the flatten" if allow_flatten else "")

    def _held_at_stop(self, intents: Sequence[OrderIntent]) -> tuple[list[OrderIntent], list[OrderUpdate]]:
        """The intents still allowed once the stop began, and the others ended NOT_PLACED.

        Proven, not assumed: `_send` only ever gets an intent that is new (this gateway has not sent it, and the
        instance lock keeps any other process from having done so) or proven absent after its processBefore, so
        one held here can never execute. Ending it now, durably, keeps a signal from before the stop from being
        sent by the next start."""
        allowed = [i for i in intents if self.stop_allows_flatten and i.reduce_only and i.order_type == "market"
                   and not i.is_protective]
        held = []
        for intent in intents:
            if intent not in allowed:
                held.append(self._final(self._tracked(intent), OrderState.REJECTED, Reason.NOT_PLACED,
                                        "not sent: the stop had begun"))
        return allowed, held

    def holdings(self, traded: Iterable[str]) -> Holdings:
        """What rests on the exchange now, read fresh: open orders on the traded symbols (ours by kind), positions."""
        from actors.stop_report import held_orders

        ours = {t.exchange_order_id: t for t in self.orders.values() if t.exchange_order_id}

        def kind_of(order: OpenOrderReport) -> Any:
            tracked = ours.get(order.exchange_order_id) or self.orders.get(order.client_order_id or "")
            return tracked.intent.kind if tracked is not None else None

        problems = []
        orders: tuple[Any, ...] = ()
        try:
            orders = held_orders(self.api.open_orders(), kind_of, traded)
        except Exception as exc:
            problems.append(f"open orders unreadable: {type(exc).__name__}: {exc}")
        found = self.fetch_positions(follow_first=False)
        positions = found.positions if isinstance(found, PositionsSnapshot) else ()
        if isinstance(found, PositionsUnavailable):
            problems.append(f"positions unreadable: {found.detail}")
        return Holdings(orders=orders, positions=tuple(p for p in positions if p.is_open), problem="; ".join(problems))

    def _submitted(self, tracked: Tracked, sent_at: int, process_before: int) -> None:
        tracked.sends += 1
        tracked.sent_at_ms, tracked.process_before_ms = sent_at, process_before
        tracked.state, tracked.window_unknown, tracked.lookups = OrderState.SUBMITTED, False, 0

    def _send_one(self, tracked: Tracked) -> OrderUpdate:
        intent = tracked.intent
        assert tracked.process_before_ms is not None
        try:
            answer = self.api.send(intent, tracked.process_before_ms)
        except UnreadableAnswer as exc:
            return self._unknown(tracked, str(exc))
        except Exception as exc:  # every failure is classified; none escapes the gateway
            return self._failed(tracked, exc, "sendorder")
        return self._on_answer(tracked, answer)

    def _send_batch(self, chunk: list[Tracked]) -> list[OrderUpdate]:
        """One batchorder for these orders. Its ProcessBefore (one for the request) is the earliest of theirs: no
        copy of any of them executes after the processBefore recorded for it. A failed request leaves them all
        UNKNOWN (decided by the search after the window), a definite refusal of the request rejects them all."""
        process_before = min(t.process_before_ms for t in chunk if t.process_before_ms is not None)
        try:
            answers = self.api.send_batch([t.intent for t in chunk], process_before)
        except UnreadableAnswer as exc:
            logger.warning("batchorder of {} orders: answer unreadable ({}); every one is UNKNOWN", len(chunk), exc)
            return [self._unknown(t, f"batchorder: {exc}") for t in chunk]
        except Exception as exc:  # every failure is classified; none escapes the gateway
            return [self._failed(t, exc, "batchorder") for t in chunk]
        return [self._on_answer(t, answer, "batchorder") for t, answer in zip(chunk, answers, strict=True)]

    def _failed(self, tracked: Tracked, exc: Exception, endpoint: str) -> OrderUpdate:
        """A send request that raised: a definite refusal rejects, anything else leaves the outcome unknown."""
        intent = tracked.intent
        if isinstance(exc, _DEFINITE_REJECTIONS) and not isinstance(exc, ccxt.NetworkError):
            logger.info("{} {} REJECTED ({}): {}: {}", intent.symbol, intent.client_order_id, endpoint,
                        type(exc).__name__, exc)
            return self._rejected(tracked, f"{type(exc).__name__}: {exc}", confirm=False)
        logger.warning("{} {} outcome unknown ({}): {}: {}", intent.symbol, intent.client_order_id, endpoint,
                       type(exc).__name__, exc)
        return self._unknown(tracked, f"{type(exc).__name__}: {exc}")

    def _on_answer(self, tracked: Tracked, answer: SendReport, endpoint: str = "sendorder") -> OrderUpdate:
        if answer.client_order_id not in (None, tracked.client_order_id):
            return self._unknown(tracked, f"the answer names client order id {answer.client_order_id!r}")
        if answer.duplicate_id:
            tracked.next_lookup = 0.0  # the id is used by an open order: it exists, look it up at once
            tracked.window_unknown = False
            return self._unknown(tracked, "clientOrderIdAlreadyExist: an open order carries this id; looking it up")
        if answer.not_placed:
            return self._rejected(tracked, f"{endpoint}: {answer.status}", confirm=True)
        if not answer.placed or not answer.exchange_order_id:
            return self._unknown(tracked, f"{endpoint}: unreadable status {answer.status!r}")
        tracked.exchange_order_id = answer.exchange_order_id
        tracked.placed_at = self.clock()
        filled = answer.filled
        if answer.executions:
            total = sum((amount * price for _, amount, price in answer.executions), Decimal(0))
            tracked.average_price = total / filled if filled else None
        tracked.filled = max(tracked.filled, filled)
        if tracked.filled >= tracked.intent.amount:
            return self._final(tracked, OrderState.FILLED, None, "filled at once")
        if answer.cancelled:
            return self._final(tracked, OrderState.CANCELED, None,
                               f"filled {tracked.filled} of {tracked.intent.amount}; the rest was cancelled (IoC)")
        state = OrderState.PARTIALLY_FILLED if tracked.filled > 0 else OrderState.ACCEPTED
        return self._update(tracked, state, None, "placed")

    # --- reports ---------------------------------------------------------------------------

    def _tracked(self, intent: OrderIntent) -> Tracked:
        return self.orders.setdefault(intent.client_order_id, Tracked(intent=intent, state=OrderState.INITIALIZED))

    def _update_message(self, tracked: Tracked, state: OrderState, reason: Reason | None, detail: str,
                        fills: tuple[Fill, ...] = (), **fields: Any) -> OrderUpdate:
        intent = tracked.intent
        return OrderUpdate(
            intent_hash=intent.intent_hash, client_order_id=intent.client_order_id, symbol=intent.symbol,
            side=intent.side, state=state, reduce_only=intent.reduce_only, exchange_order_id=tracked.exchange_order_id,
            amount=intent.amount, filled=tracked.filled, average_price=tracked.average_price, fills=fills,
            reason=reason.value if reason else None, detail=detail, seq=self.next_seq(), **fields,
        )

    def _update(self, tracked: Tracked, state: OrderState, reason: Reason | None, detail: str,
                fills: tuple[Fill, ...] = ()) -> OrderUpdate:
        tracked.state = state
        if state.is_final:
            self.orders.pop(tracked.client_order_id, None)
        update = self._update_message(tracked, state, reason, detail, fills)
        self.report_to(update)
        if tracked.blocked and (state.is_final or state in _LIVE):
            self._unblock(tracked)
        return update

    def _final(self, tracked: Tracked, state: OrderState, reason: Reason | None, detail: str,
               fills: tuple[Fill, ...] = (), confirm: bool = False) -> OrderUpdate:
        """A final state; fills still to book (or a rejection to confirm) keep it watched."""
        update = self._update(tracked, state, reason, detail, fills)
        tracked.confirm = confirm
        if confirm or tracked.booked < tracked.filled:
            self.watch[tracked.client_order_id] = tracked
        else:
            self.watch.pop(tracked.client_order_id, None)
        return update

    def _emit(self, intent: OrderIntent, state: OrderState, reason: Reason | None, detail: str) -> OrderUpdate:
        return self._final(self._tracked(intent), state, reason, detail)

    def _rejected(self, tracked: Tracked, detail: str, *, confirm: bool) -> OrderUpdate:
        return self._final(tracked, OrderState.REJECTED, Reason.EXCHANGE_REJECTED, detail, confirm=confirm)

    def _unknown(self, tracked: Tracked, detail: str) -> OrderUpdate:
        return self._update(tracked, OrderState.UNKNOWN, Reason.OUTCOME_UNKNOWN, detail)

    def _block(self, tracked: Tracked, detail: str) -> None:
        text = (f"{detail}; after checking the exchange, `kraken-actors resolve {tracked.symbol}` gives up on "
                f"order {tracked.client_order_id}")
        if tracked.blocked != text:
            tracked.blocked = text
            logger.error("{}: BLOCKED: {}", tracked.symbol, text)
            self.route(OrderBlocked(symbol=tracked.symbol, client_order_id=tracked.client_order_id, detail=text))

    def _unblock(self, tracked: Tracked) -> None:
        tracked.blocked = ""
        self.route(OrderBlocked(symbol=tracked.symbol, client_order_id=tracked.client_order_id, detail=""))

    def _mismatch(self, symbol: str, key: str, detail: str) -> None:
        if self.mismatches.get((symbol, key)) != detail:
            self.mismatches[(symbol, key)] = detail
            logger.error("{}: exchange answer contradicts what we know: {}; entries refused until a consistent "
                         "view returns", symbol, detail)
            self.route(ExchangeMismatch(symbol=symbol, key=key, detail=detail))

    def _consistent(self, symbol: str, key: str) -> None:
        if self.mismatches.pop((symbol, key), None) is not None:
            logger.info("{}: consistent again ({})", symbol, key)
            self.route(ExchangeMismatch(symbol=symbol, key=key, detail=""))

    # --- fills -----------------------------------------------------------------------------

    def _book(self, tracked: Tracked, fills: Iterable[FillReport]) -> tuple[Fill, ...]:
        """Book the new fills of one order (each id once); fills that contradict the order book nothing."""
        new = [f for f in fills if f.fill_id not in tracked.fill_ids]
        if not new:
            return ()
        key = f"fills:{tracked.client_order_id}"
        strangers = [f for f in new if tracked.exchange_order_id and f.exchange_order_id != tracked.exchange_order_id]
        total = tracked.booked + sum((f.amount for f in new), Decimal(0))
        if strangers:
            self._mismatch(tracked.symbol, key,
                           f"fill {strangers[0].fill_id} names order {strangers[0].exchange_order_id}"
                           f", not {tracked.exchange_order_id} (cliOrdId {tracked.client_order_id})")
            return ()
        if total > tracked.intent.amount:
            self._mismatch(tracked.symbol, key, f"fills of {total} for order {tracked.client_order_id} of "
                                                f"{tracked.intent.amount}: more than its size; not booked")
            return ()
        if new[0].side is not tracked.intent.side:
            self._mismatch(tracked.symbol, key, f"fill {new[0].fill_id} is a {new[0].side.value}, the order a "
                                                f"{tracked.intent.side.value}")
            return ()
        self._consistent(tracked.symbol, key)
        tracked.fill_ids.update(f.fill_id for f in new)
        tracked.booked = total
        if not tracked.exchange_order_id:
            tracked.exchange_order_id = new[0].exchange_order_id
        tracked.booked_value += sum((f.amount * f.price for f in new), Decimal(0))
        tracked.average_price = tracked.booked_value / total
        tracked.filled = max(tracked.filled, total)
        return tuple(
            Fill(fill_id=f.fill_id, symbol=tracked.symbol, side=f.side, amount=f.amount, price=f.price,
                 exchange_order_id=f.exchange_order_id, client_order_id=tracked.client_order_id, time=f.time_ms)
            for f in new
        )

    def _read_fills(self, since_ms: int) -> tuple[list[FillReport], list[int]]:
        """Every fill since `since_ms` and the milliseconds still missing from it (empty: complete).

        The fills endpoint cannot page through a millisecond of 100 fills or more (a batch of market orders); those
        milliseconds are read from the execution history once it has surely published them: after the history lag
        and the clock skew (`window_ms`, the rule the order history follows). Until then they are missing, and
        every other fill is there: booked now, the missing ones on a later look (their orders wait in `watch`). A
        search with missing milliseconds still decides absence safely: an order is only decided after
        processBefore + window_ms, when its OrderPlaced (at or before processBefore) is published in the history.
        """
        try:
            return self.api.fills_since(since_ms, settled_before_ms=self.exchange_now() - self.settings.window_ms), []
        except FillsPending as pending:
            logger.debug("gateway: {}; booking the other fills now", pending)
            return pending.fills, pending.pending_ms

    # --- following orders ------------------------------------------------------------------

    def poll(self) -> None:
        """Decide unknown outcomes that are due, follow accepted orders, confirm and collect what is watched."""
        now = self.clock()
        due = [t for t in self.orders.values() if t.state is OrderState.UNKNOWN and now >= t.next_lookup]
        if due:
            self.resolve(due)
        live = [t for t in self.orders.values() if t.state in _LIVE]
        if live or self.watch:
            self.follow(live)
        self.money.read_margin()  # after fills (and until it is first read)
        self.money.read_log()  # fees of the fills booked, funding

    def follow(self, live: list[Tracked] | None = None) -> None:
        """One look at open orders and new fills: book fills, notice orders that left the book, time out limits."""
        live = [t for t in self.orders.values() if t.state in _LIVE] if live is None else live
        started = self.exchange_now()
        cursor = self.fill_cursor_ms  # every order's fills come after its send
        starts = [t.sent_at_ms for t in self.watch.values() if t.sent_at_ms is not None and t.booked < t.filled]
        if cursor is None:
            starts += [t.sent_at_ms for t in live if t.sent_at_ms is not None]
        if starts or cursor is None:  # fills still missing are searched for from their order's send, however late
            cursor = min([*starts, started] + ([cursor] if cursor is not None else [])) - self.settings.margin_ms
        try:
            open_orders = self.api.open_orders() if live else []
            fills, missing = self._read_fills(cursor)
        except Exception as exc:
            logger.warning("gateway: could not follow {} orders: {}: {}", len(live) + len(self.watch),
                           type(exc).__name__, exc)
            return
        self.fill_cursor_ms = started - self.settings.margin_ms - self.settings.exchange_ms(self.settings.history_lag_s)
        if missing:  # milliseconds not settled in the execution history yet: searched again from before them
            self.fill_cursor_ms = min(self.fill_cursor_ms, min(missing) - self.settings.margin_ms)
        by_cid = {o.client_order_id: o for o in open_orders if o.client_order_id}
        by_id = {o.exchange_order_id: o for o in open_orders}
        index = FillIndex(fills)
        now = self.clock()
        for tracked in live:
            if tracked.client_order_id not in self.orders:
                continue
            booked = self._book(tracked, index.of(tracked))
            resting = by_cid.get(tracked.client_order_id) or by_id.get(tracked.exchange_order_id or "")
            if resting is not None:
                self._consistent(tracked.symbol, f"openorders:{tracked.client_order_id}")
                tracked.gone = False
                tracked.exchange_order_id = tracked.exchange_order_id or resting.exchange_order_id
                tracked.filled = max(tracked.filled, resting.filled)
                if tracked.intent.is_protective:
                    self._protective_size(tracked, resting.filled + resting.unfilled)
                if tracked.filled >= tracked.intent.amount:
                    self._final(tracked, OrderState.FILLED, None, "filled", booked)
                    continue
                if booked or (tracked.filled > 0 and tracked.state is OrderState.ACCEPTED):
                    self._update(tracked, OrderState.PARTIALLY_FILLED, None, "filling", booked)
                if tracked.cancel_wanted is not None:  # its fills of this look are reported above
                    self._cancel(tracked, *tracked.cancel_wanted)
                    continue
                if tracked.intent.order_type == "limit" and now - tracked.placed_at > self.settings.limit_timeout_s:
                    self._cancel(tracked, Reason.CANCELED_BY_TIMEOUT,
                                 f"unfilled after {self.settings.limit_timeout_s:.0f}s")
                continue
            if tracked.booked >= tracked.intent.amount:
                self._final(tracked, OrderState.FILLED, None, "filled", booked)
                continue
            if booked:
                self._update(tracked, OrderState.PARTIALLY_FILLED, None, "filling", booked)
            if not tracked.gone or now >= tracked.next_lookup:
                tracked.gone = True
                self._look_up_gone(tracked)
        for tracked in list(self.watch.values()):
            booked = self._book(tracked, index.of(tracked))
            if booked:
                self._report_fills(tracked, booked)
            if tracked.confirm:
                self._confirm(tracked)
            elif tracked.booked >= tracked.filled:
                self.watch.pop(tracked.client_order_id, None)

    def _report_fills(self, tracked: Tracked, fills: tuple[Fill, ...]) -> None:
        """Fills of an order already final: stored (and counted) without changing its state."""
        update = self._update_message(tracked, tracked.state, None, "fills of a finished order", fills)
        self.report_to(update)

    def _look_up_gone(self, tracked: Tracked) -> None:
        """An accepted order no longer listed as open: prove how it ended (status, then history)."""
        try:
            evidence = self._search([tracked], with_history=False)
            found = evidence[tracked.client_order_id]
            result = conclude(tracked, found)
            if result.state is None and not found.statuses:
                evidence = self._search([tracked], with_history=True)
                found = evidence[tracked.client_order_id]
                result = conclude(tracked, found)
        except Exception as exc:
            self._retry_later(tracked,
                              f"looking up order {tracked.client_order_id} failed: {type(exc).__name__}: {exc}")
            return
        if result.state is OrderState.ACCEPTED or result.state is OrderState.PARTIALLY_FILLED or (
                result.state is None and ExchangeStatus.OPEN in {s.status for s in found.statuses}):
            self._mismatch(tracked.symbol, f"openorders:{tracked.client_order_id}",
                           f"order {tracked.client_order_id} is open (orders/status) but openorders does not list it")
            tracked.gone = False
            return
        self._apply_conclusion(tracked, found, result)

    def _apply_conclusion(self, tracked: Tracked, found: Evidence, result: Conclusion) -> None:
        booked = self._book(tracked, found.fills)
        if result.blocked:
            self._retry_later(tracked, result.blocked)
            return
        if result.state is None:
            self._retry_later(tracked, result.detail or "nothing decided yet")
            return
        if found.open is not None or found.statuses:
            ident = found.open.exchange_order_id if found.open else found.statuses[0].exchange_order_id
            tracked.exchange_order_id = tracked.exchange_order_id or ident
        elif found.history:
            tracked.exchange_order_id = tracked.exchange_order_id or found.history[-1].exchange_order_id
        tracked.filled = max(tracked.filled, result.filled)
        if result.state.is_final:
            self._final(tracked, result.state, None if result.state is not OrderState.REJECTED else
                        Reason.EXCHANGE_REJECTED, result.detail, booked)
            return
        if tracked.placed_at == 0.0:
            tracked.placed_at = self.clock()
        tracked.lookups = 0
        self._update(tracked, result.state, None, result.detail, booked)

    def _retry_later(self, tracked: Tracked, why: str) -> None:
        tracked.lookups += 1
        tracked.next_lookup = self.clock() + min(self.settings.backoff_max_s, 2.0 ** tracked.lookups)
        logger.warning("{} {}: {}; looking again in {:.0f}s", tracked.symbol, tracked.client_order_id, why,
                       tracked.next_lookup - self.clock())
        if tracked.lookups >= self.settings.block_after_lookups:
            self._block(tracked, f"{why} (after {tracked.lookups} lookups)")

    def _confirm(self, tracked: Tracked) -> None:
        """A rejection answered by the exchange, checked against the history once no copy can execute."""
        if tracked.process_before_ms is None or not self._window_passed(tracked):
            return
        try:
            evidence = self._search([tracked], with_history=True)[tracked.client_order_id]
        except Exception as exc:
            logger.warning("{} {}: confirming the rejection failed: {}", tracked.symbol, tracked.client_order_id, exc)
            return
        result = conclude(tracked, evidence)
        self.watch.pop(tracked.client_order_id, None)
        tracked.confirm = False
        if result.absent or result.state is OrderState.REJECTED:
            return
        logger.error("{} {}: answered as rejected, but the exchange shows it placed ({}): taken back as ours",
                     tracked.symbol, tracked.client_order_id, result.detail or result.blocked)
        self.orders[tracked.client_order_id] = tracked
        if result.state is None:
            tracked.state = OrderState.UNKNOWN
            self._retry_later(tracked, result.blocked or result.detail)
            return
        self._apply_conclusion(tracked, evidence, result)

    def _cancel(self, tracked: Tracked, reason: Reason | None, detail: str) -> str:
        if not tracked.exchange_order_id:
            return f"{tracked.client_order_id}: no exchange order id yet"
        tracked.cancel_wanted = None
        try:
            status, filled_at_cancel = self.api.cancel(tracked.exchange_order_id)
        except Exception as exc:  # idempotent: asked again at the next look while the order still rests
            tracked.cancel_wanted = (reason, detail)
            logger.warning("gateway: cancel of {} failed: {}: {}; asked again at the next look",
                           tracked.client_order_id, type(exc).__name__, exc)
            return f"{tracked.client_order_id}: cancel failed ({type(exc).__name__}), will retry"
        if status.lower() not in ("cancelled", "canceled"):
            tracked.gone = True
            self._look_up_gone(tracked)  # filled or gone meanwhile: prove how it ended
            return f"{tracked.client_order_id}: not open any more ({status})"
        if filled_at_cancel is not None:
            tracked.filled = max(tracked.filled, filled_at_cancel)
        booked: tuple[Fill, ...] = ()
        try:  # a fill between the last poll and the cancel: read it now, not never
            fills, _ = self._read_fills((tracked.sent_at_ms or self.exchange_now()) - self.settings.margin_ms)
            booked = self._book(tracked, FillIndex(fills).of(tracked))
        except Exception as exc:
            logger.warning("{} {}: fills after the cancel unreadable ({}); they are collected later",
                           tracked.symbol, tracked.client_order_id, exc)
        self._final(tracked, OrderState.CANCELED, reason, f"{detail}; filled {tracked.filled}", booked)
        if reason is Reason.CANCELED_BY_TIMEOUT:
            logger.info("{} limit order {} cancelled: {}", tracked.symbol, tracked.client_order_id, detail)
        return f"{tracked.client_order_id}: canceled"

    def _protective_size(self, tracked: Tracked, size: Decimal) -> None:
        """The size a protective order rests with is the truth; one that differs from what its symbol asked is
        resized again once an earlier resize can no longer land (its processBefore passed)."""
        if size > 0 and size != tracked.intent.amount:
            tracked.intent = tracked.intent.model_copy(update={"amount": size})
        if tracked.want_amount is not None and tracked.want_amount != size \
                and self.exchange_now() >= tracked.resize_after:
            self._resize(tracked, tracked.want_amount)

    def resize(self, message: ResizeOrder) -> str:
        """A symbol asks for a protective order of the given size: edited now if it rests, else once it does."""
        tracked = self.orders.get(message.client_order_id)
        if tracked is None or not tracked.intent.is_protective:
            return f"{message.client_order_id}: not a protective order of ours being followed"
        tracked.want_amount = message.amount
        if tracked.state not in _LIVE or not tracked.exchange_order_id:
            return f"{message.client_order_id}: resized to {message.amount} once it rests"
        return self._resize(tracked, message.amount)

    def _resize(self, tracked: Tracked, amount: Decimal) -> str:
        if self.stop_begun:
            return f"{tracked.client_order_id}: not resized: the stop has begun"
        if amount == tracked.intent.amount:
            return f"{tracked.client_order_id}: already {amount}"
        assert tracked.exchange_order_id is not None
        process_before = self.exchange_now() + self.settings.exchange_ms(self.settings.process_before_s)
        tracked.resize_after = process_before + self.settings.margin_ms
        try:
            status = self.api.resize(tracked.exchange_order_id, amount, tracked.intent.trigger_price, process_before)
        except Exception as exc:  # the next look compares the resting size again, after the processBefore
            logger.warning("{} {}: resizing to {} failed: {}: {}; tried again at a later look", tracked.symbol,
                           tracked.client_order_id, amount, type(exc).__name__, exc)
            return f"{tracked.client_order_id}: resize failed ({type(exc).__name__}), will retry"
        if status.lower() != "edited":
            logger.warning("{} {}: resize to {} not done: {}", tracked.symbol, tracked.client_order_id, amount, status)
            return f"{tracked.client_order_id}: resize not done ({status})"
        tracked.intent = tracked.intent.model_copy(update={"amount": amount})
        logger.info("{} {} {} resized to {}", tracked.symbol, tracked.intent.kind.value, tracked.client_order_id,
                    amount)
        return f"{tracked.client_order_id}: resized to {amount}"

    def cancel_one(self, message: CancelOrder) -> str:
        """Cancel one of our orders (flatten replaces a resting exit)."""
        tracked = self.orders.get(message.client_order_id)
        if tracked is None:
            return f"{message.client_order_id}: not an open order of ours"
        return self._cancel(tracked, None, "cancelled to be replaced")

    def cancel_open(self, symbol: str | None, traded: Iterable[str]) -> list[str]:
        """Cancel every open order on one traded symbol, or on all of them: ours and adopted ones."""
        scope = {symbol} if symbol is not None else set(traded)
        try:
            open_orders = self.api.open_orders()
        except Exception as exc:
            return [f"open orders unreadable ({type(exc).__name__}: {exc}); nothing was cancelled"]
        ours = {t.exchange_order_id: t for t in self.orders.values() if t.exchange_order_id}
        outcomes = []
        for order in open_orders:
            if order.symbol not in scope:
                continue
            tracked = ours.get(order.exchange_order_id) or self.orders.get(order.client_order_id or "")
            if tracked is not None:
                tracked.exchange_order_id = tracked.exchange_order_id or order.exchange_order_id
                outcomes.append(self._cancel(tracked, None, "cancelled by operator"))
            else:
                outcomes.append(self._cancel_foreign(order))
        return outcomes or ["no open orders"]

    def _cancel_foreign(self, order: OpenOrderReport) -> str:
        name = order.client_order_id or order.exchange_order_id
        try:
            status, _ = self.api.cancel(order.exchange_order_id)
        except Exception as exc:
            return f"{name}: cancel failed ({type(exc).__name__}: {exc})"
        if status.lower() not in ("cancelled", "canceled"):
            return f"{name}: not cancelled ({status})"
        self.external.pop(order.exchange_order_id, None)
        self.report_to(OrderUpdate(
            intent_hash=None, client_order_id=order.client_order_id, symbol=order.symbol, side=order.side,
            state=OrderState.CANCELED, reduce_only=order.reduce_only, exchange_order_id=order.exchange_order_id,
            amount=order.amount, filled=order.filled, reason=Reason.EXTERNAL_ORDER.value,
            detail="cancelled by operator", seq=self.next_seq(),
        ))
        return f"{name}: canceled"

    # --- deciding unknown outcomes ---------------------------------------------------------

    def _window_passed(self, tracked: Tracked) -> bool:
        if tracked.process_before_ms is None:
            return tracked.window_unknown  # schema-1 sends: searched at once, absence never proven
        return self.exchange_now() > tracked.process_before_ms + self.settings.window_ms

    def _search(self, due: Sequence[Tracked], *, with_history: bool) -> dict[str, Evidence]:
        """Open orders, orders/status, fills and (if asked) history since the earliest send: one Evidence each."""
        evidence = {t.client_order_id: Evidence() for t in due}
        ids = {t.exchange_order_id: t.client_order_id for t in due if t.exchange_order_id}
        for order in self.api.open_orders():
            cid = order.client_order_id if order.client_order_id in evidence else ids.get(order.exchange_order_id)
            if cid is not None:
                evidence[cid].open = order
        for status in self.api.order_status([t.client_order_id for t in due], list(ids)):
            cid = status.client_order_id if status.client_order_id in evidence else ids.get(status.exchange_order_id)
            if cid is not None:
                evidence[cid].statuses.append(status)
        starts = [t.sent_at_ms for t in due if t.sent_at_ms is not None]
        since = (min(starts) if starts else self.exchange_now() - 24 * 3_600_000) - self.settings.margin_ms
        for fill in self._read_fills(since)[0]:
            cid = fill.client_order_id if fill.client_order_id in evidence else ids.get(fill.exchange_order_id)
            if cid is not None:
                evidence[cid].fills.append(fill)
        if with_history:
            events = self.api.history_since(since)
            if any(t.intent.is_protective for t in due):  # cancelled before they fired: only in the trigger history
                events = self.api.history_since(since, triggers=True) + events
            for event in events:
                cid = event.client_order_id if event.client_order_id in evidence else ids.get(event.exchange_order_id)
                if cid is not None:
                    evidence[cid].history.append(event)
        return evidence

    def resolve(self, candidates: list[Tracked]) -> None:
        """Decide the unknown orders whose window has passed: found -> followed; absent -> re-sent or NOT_PLACED."""
        due = [t for t in candidates if t.client_order_id in self.orders and self._window_passed(t)]
        if not due:
            for tracked in candidates:
                tracked.next_lookup = self.clock() + max(0.2, self.settings.poll_interval_s)
            return
        if self.refresh_clock is not None and any(t.process_before_ms is not None for t in due):
            try:
                self.refresh_clock()  # "after processBefore" on the exchange's own clock, read now
            except Exception as exc:
                logger.warning("gateway: the exchange's clock is unreadable ({}); deciding later", exc)
                return
            due = [t for t in due if self._window_passed(t)]
            if not due:
                return
        try:
            evidence = self._search(due, with_history=True)
        except Exception as exc:
            for tracked in due:
                self._retry_later(tracked, f"the search failed: {type(exc).__name__}: {exc}")
            return
        absent: list[Tracked] = []
        for tracked in due:
            found = evidence[tracked.client_order_id]
            result = conclude(tracked, found)
            if result.absent:
                if tracked.window_unknown:
                    self._retry_later(tracked, "sent by an older version without processBefore and not found")
                    self._block(tracked, "sent by an older version without processBefore; nothing on the exchange "
                                         "shows it, but a late copy cannot be ruled out")
                else:
                    absent.append(tracked)
                continue
            self._apply_conclusion(tracked, found, result)
        if absent:
            self._proven_absent(absent)

    def _proven_absent(self, absent: list[Tracked]) -> None:
        """No copy can execute any more: send again if young, safe and not sent too often; else NOT_PLACED."""
        resend: list[Tracked] = []
        for tracked in absent:
            age_s = (self.wall() - tracked.intent.created_at) / 1000
            if tracked.sends == 0:
                self._final(tracked, OrderState.REJECTED, Reason.NOT_PLACED, "claimed but never sent")
            elif tracked.sends >= self.settings.max_sends:
                self._final(tracked, OrderState.REJECTED, Reason.NOT_PLACED,
                            f"proven absent; not re-sent: sent {tracked.sends} times")
            elif age_s > self.settings.resend_max_age_s:
                self._final(tracked, OrderState.REJECTED, Reason.NOT_PLACED,
                            f"proven absent; not re-sent: signal is {age_s:.0f}s old "
                            f"(> {self.settings.resend_max_age_s:.0f}s)")
            else:
                resend.append(tracked)
        if not resend:
            return
        try:  # L3 and L4 again, on positions and open orders fetched for this decision
            positions = {p.symbol: p.signed_contracts for p in self.api.positions()}
            open_orders = self.api.open_orders()
            doubtful = self._verify_known_open(open_orders)
        except Exception as exc:
            for tracked in resend:
                self._retry_later(tracked, f"proven absent, but positions or open orders are unreadable for the "
                                           f"re-send checks: {type(exc).__name__}: {exc}")
            return
        go: list[Tracked] = []
        for tracked in resend:
            refusal = self._recheck(tracked.intent, positions, open_orders, doubtful)
            if refusal is not None:
                reason, why = refusal
                self._final(tracked, OrderState.REJECTED, Reason.NOT_PLACED,
                            f"proven absent; not re-sent: {reason.value}: {why}")
            else:
                logger.warning("{} {}: proven absent (open orders, status, fills, history after processBefore); "
                               "re-sending", tracked.symbol, tracked.client_order_id)
                go.append(tracked)
        self._send([t.intent for t in go])

    def _recheck(self, intent: OrderIntent, positions: dict[str, Decimal], open_orders: list[OpenOrderReport],
                 doubtful: dict[str, str]) -> tuple[Reason, str] | None:
        """L3 and L4 for a re-send; None when it may go."""
        position = positions.get(intent.symbol, Decimal(0))
        if intent.reduce_only:
            if position == 0 or (position > 0) == (intent.side is Side.BUY):
                return Reason.NO_POSITION, f"position {position}: nothing for this exit to reduce"
            return None
        if position != 0 and (not self.settings.pyramiding or (position > 0) != (intent.side is Side.BUY)):
            return Reason.POSITION_OPEN, f"position {position} is open"
        if intent.symbol in doubtful:
            return Reason.EXCHANGE_MISMATCH, doubtful[intent.symbol]
        resting = [o for o in open_orders if o.symbol == intent.symbol and o.side is intent.side]
        if resting:
            order_id = resting[0].client_order_id or resting[0].exchange_order_id
            return Reason.EXCHANGE_ORDER_OPEN, f"{intent.side.value} order {order_id} rests"
        return None

    def _verify_known_open(self, open_orders: list[OpenOrderReport]) -> dict[str, str]:
        """Orders we know to be open but the answer omits: checked; symbol -> why its answer is not trusted."""
        listed = ({o.exchange_order_id for o in open_orders}
                  | {o.client_order_id for o in open_orders if o.client_order_id})
        missing_ours = [t for t in self.orders.values() if t.state in _LIVE and not t.gone
                        and t.client_order_id not in listed and (t.exchange_order_id or "") not in listed]
        missing_foreign = [o for oid, o in self.external.items() if oid not in listed]
        for oid, order in self.external.items():
            if oid in listed:  # listed again: that contradiction is gone
                self._consistent(order.symbol, f"openorders:{oid}")
        if not missing_ours and not missing_foreign:
            return {}
        statuses = self.api.order_status([t.client_order_id for t in missing_ours],
                                         [o.exchange_order_id for o in missing_foreign])
        still_open = {s.exchange_order_id for s in statuses if s.status is ExchangeStatus.OPEN}
        still_open |= {s.client_order_id for s in statuses if s.status is ExchangeStatus.OPEN and s.client_order_id}
        closed = {s.exchange_order_id for s in statuses if s.status.is_closed}
        unseen = [o for o in missing_foreign if o.exchange_order_id not in closed | still_open]
        if unseen:  # closed more than 5 s ago: the history says how it ended
            since = min(o.received_ms for o in unseen) - self.settings.margin_ms
            closed |= {e.exchange_order_id for e in self.api.history_since(since)
                       if e.status is not None and e.status.is_closed}
        doubtful: dict[str, str] = {}
        for tracked in missing_ours:
            if tracked.client_order_id in still_open or (tracked.exchange_order_id or "") in still_open:
                why = f"openorders omits our open order {tracked.client_order_id}"
                doubtful[tracked.symbol] = why
                self._mismatch(tracked.symbol, f"openorders:{tracked.client_order_id}", why)
        for order in missing_foreign:
            if order.exchange_order_id in closed:
                self.external.pop(order.exchange_order_id, None)
                self._consistent(order.symbol, f"openorders:{order.exchange_order_id}")
                continue
            why = (f"openorders omits order {order.client_order_id or order.exchange_order_id}, open at the last "
                   "look, and nothing shows it closed")
            doubtful[order.symbol] = why
            self._mismatch(order.symbol, f"openorders:{order.exchange_order_id}", why)
        return doubtful

    # --- reconciliation --------------------------------------------------------------------

    def reconcile(self, message: Reconcile) -> ReconciliationReport:
        """Take back unfinished intents, adopt strangers' open orders, read positions."""
        try:
            open_orders = self.api.open_orders()
        except Exception as exc:
            return ReconciliationReport(ok=False, reason=message.reason,
                                        detail=f"open orders unreadable: {type(exc).__name__}: {exc}")
        for record in message.intents:
            self._recover(record)
        unknown_cids = [o.client_order_id for o in open_orders if o.client_order_id and o.client_order_id not in
                        self.orders and o.client_order_id not in self.watch]
        if unknown_cids:  # an open order with one of our client order ids is ours, whatever the database said
            try:
                for record in self.find_intents(unknown_cids):
                    self._recover(record, taken_back=True)
            except Exception as exc:
                return ReconciliationReport(ok=False, reason=message.reason,
                                            detail=f"could not look up client order ids: {type(exc).__name__}: {exc}")
        if self.external:
            try:  # adopted orders that left the book are forgotten once proven closed; otherwise a mismatch
                self._verify_known_open(open_orders)
            except Exception as exc:
                logger.warning("gateway: adopted orders could not be checked: {}: {}", type(exc).__name__, exc)
        by_cid = {o.client_order_id: o for o in open_orders if o.client_order_id}
        for tracked in list(self.orders.values()):
            order = by_cid.get(tracked.client_order_id)
            if order is not None and tracked.state not in _LIVE:
                evidence = Evidence(open=order)
                self._apply_conclusion(tracked, evidence, conclude(tracked, evidence))
        views, adopted = [], []
        for order in open_orders:
            ours = order.client_order_id in self.orders or order.client_order_id in self.watch
            view = ExchangeOrder(symbol=order.symbol, side=order.side, exchange_order_id=order.exchange_order_id,
                                 client_order_id=order.client_order_id, amount=order.amount, filled=order.filled,
                                 price=order.price, reduce_only=order.reduce_only, ours=ours)
            views.append(view)
            if not ours and order.exchange_order_id not in self.external:
                self.external[order.exchange_order_id] = order
                adopted.append(view)
                self._report_external(view)
        positions = self.fetch_positions(follow_first=False)
        self.money.read_margin(force=True)  # entries wait for it: the portfolio refuses them until it is read
        self.money.read_log(force=True)
        if isinstance(positions, PositionsUnavailable):
            return ReconciliationReport(ok=False, reason=message.reason, detail=f"positions unreadable: "
                                        f"{positions.detail}", open_orders=tuple(views), adopted=tuple(adopted))
        return ReconciliationReport(ok=True, reason=message.reason, snapshot=positions, open_orders=tuple(views),
                                    adopted=tuple(adopted), unresolved=self.in_flight())

    def _recover(self, record: IntentRecord, taken_back: bool = False) -> None:
        if record.client_order_id in self.orders or record.client_order_id in self.watch:
            return
        tracked = Tracked(intent=record.to_intent(), state=record.state, exchange_order_id=record.exchange_order_id,
                          filled=record.filled, booked=record.fills_booked, fill_ids=set(record.fill_ids),
                          sends=record.sends, sent_at_ms=record.sent_at, process_before_ms=record.process_before,
                          window_unknown=record.schema_v1)
        if record.schema_v1 and tracked.sends == 0:
            tracked.sends = 1
        if record.state.is_final and not taken_back:  # filled, its fills not all stored: book them
            if record.fills_booked < record.filled:
                self.watch[record.client_order_id] = tracked
                if record.sent_at is not None and self.fill_cursor_ms is not None:
                    self.fill_cursor_ms = min(self.fill_cursor_ms, record.sent_at - self.settings.margin_ms)
            return
        self.orders[record.client_order_id] = tracked
        if record.sent_at is not None and self.fill_cursor_ms is not None:
            self.fill_cursor_ms = min(self.fill_cursor_ms, record.sent_at - self.settings.margin_ms)
        if taken_back:
            logger.error("{} {}: an open order carries our client order id while the database says {}: taken back "
                         "as ours", record.symbol, record.client_order_id, record.state.value)
            return
        if record.state in _LIVE:
            tracked.placed_at = self.clock()
            return
        if record.state is OrderState.INITIALIZED and record.sent_at is None and not record.schema_v1:
            # every send is recorded durably before it leaves: no record, no send
            self._final(tracked, OrderState.REJECTED, Reason.NOT_PLACED, "claimed but never sent (no send recorded)")
            return
        tracked.state = OrderState.UNKNOWN
        if not record.state.is_final:
            logger.info("{} {}: recovered {} order; decided once its processBefore has passed", record.symbol,
                        record.client_order_id, record.state.value)

    def _report_external(self, view: ExchangeOrder) -> None:
        logger.warning("{}: open {} order {} was not placed by this system: adopted as EXTERNAL; it blocks entries "
                       "on that side", view.symbol, view.side.value, view.client_order_id or view.exchange_order_id)
        self.report_to(OrderUpdate(
            intent_hash=None, client_order_id=view.client_order_id, symbol=view.symbol, side=view.side,
            state=OrderState.ACCEPTED, reduce_only=view.reduce_only, exchange_order_id=view.exchange_order_id,
            amount=view.amount, filled=view.filled, reason=Reason.EXTERNAL_ORDER.value,
            detail="placed outside this system", seq=self.next_seq(),
        ))

    # --- operator --------------------------------------------------------------------------

    def give_up(self, message: Resolve) -> list[str]:
        """The operator checked the exchange: give up on this symbol's undecided orders and contradictions."""
        outcomes = []
        for tracked in [t for t in self.orders.values() if t.symbol == message.symbol]:
            if tracked.state in (OrderState.UNKNOWN, OrderState.SUBMITTED) or tracked.blocked:
                state = OrderState.CANCELED if tracked.state in _LIVE else OrderState.REJECTED
                tracked.blocked = ""
                self._final(tracked, state, Reason.GIVEN_UP, f"given up by {message.source} (resolve)")
                tracked.confirm = True  # still watched: if it ever shows up, it is taken back as ours
                self.watch[tracked.client_order_id] = tracked
                self.route(OrderBlocked(symbol=tracked.symbol, client_order_id=tracked.client_order_id, detail=""))
                outcomes.append(f"gave up on order {tracked.client_order_id} ({state.value})")
        for symbol, key in [k for k in self.mismatches if k[0] == message.symbol]:
            self._consistent(symbol, key)
            outcomes.append(f"cleared {key}")
        for oid, order in list(self.external.items()):
            if order.symbol == message.symbol:
                self.external.pop(oid)  # re-adopted at the next reconciliation if it still rests
        return outcomes

    # --- positions -------------------------------------------------------------------------

    def fetch_positions(self, follow_first: bool = True) -> PositionsSnapshot | PositionsUnavailable:
        """Every open position, or a failure that says why (never an empty list on failure)."""
        if follow_first and any(t.state in _LIVE for t in self.orders.values()):
            self.follow()  # fills first, so a position that includes them is not taken for a contradiction
        try:
            positions, before = self.api.positions_read(self.settings.clock_rate)
        except Exception as exc:
            return PositionsUnavailable(reason=Reason.EXCHANGE_UNAVAILABLE.value,
                                        detail=f"{type(exc).__name__}: {exc}", seq=self.next_seq())
        return PositionsSnapshot(positions=tuple(positions), seq=self.next_seq(), exchange_time=before)


class ExchangeGatewayActor(pykka.ThreadingActor):
    """The actor shell around OrderGateway: batches commands that arrive together; polls on a timer."""

    def __init__(self, exchange: Any, *, settings: GatewaySettings | None = None,
                 budget: CostBudget | None = None, symbols: Iterable[str] = (),
                 exchange_clock: Any = None, ask_timeout_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.symbols = tuple(symbols)
        self.ask_timeout_s = ask_timeout_s
        self.gateway = OrderGateway(
            exchange, settings=settings, report=self._report, route=self._route, record_sends=self._record_sends,
            find_intents=self._find_intents, budget=budget, exchange_clock=exchange_clock, clock=clock,
            refresh_clock=getattr(exchange_clock, "refresh", None),
            record_money=lambda entries: self._tell(self.persistence, entries),
            account_log_cursor=self._account_log_cursor,
        )
        self.portfolio: pykka.ActorRef[PortfolioActor] | None = None
        self.persistence: pykka.ActorRef[PersistenceActor] | None = None
        self.timers: ActorTimers | None = None
        self._orders: list[OrderIntent] = []
        self._all_symbols = frozenset(self.symbols)
        self._gathered: set[str] = set()  # symbols of the gathered orders
        self._first_order = self._last_order = 0.0  # monotonic arrival of the first and latest gathered order
        self._sync_requested = False
        self._reconcile: Reconcile | None = None
        self._flush_scheduled = False
        cfg = self.gateway.settings
        self.dead_man = (DeadMansSwitch(self.gateway.api, cfg.dead_man_timeout_s, clock_rate=cfg.clock_rate)
                         if cfg.dead_man_timeout_s else None)

    def on_start(self) -> None:
        mode = "fail-open" if self.gateway.fail_open else "fail-closed"
        logger.info("exchange gateway started; open-order check is {}", mode)
        self.timers = ActorTimers("gateway")
        self.timers.every(self.gateway.settings.poll_interval_s, self.actor_ref, Tick(name="poll"))
        if self.dead_man is not None:
            self.timers.every(self.gateway.settings.heartbeat_interval_s, self.actor_ref, Tick(name="heartbeat"),
                              first_in=0)

    def on_stop(self) -> None:
        if self.timers:
            self.timers.stop()

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        """Stop the timer and report the death: a core actor never dies silently."""
        if self.timers:
            self.timers.stop()
        from actors.system import report_core_failure

        report_core_failure(self, exception_value)

    def on_receive(self, message: Any) -> Any:
        match message:
            case PlaceOrder():
                self._gather((message.intent,))
            case PlaceOrders():  # the orders one commit claimed
                self._gather(message.intents)
            case SyncPositions():
                self._sync_requested = True
                self._schedule_flush()
            case Reconcile():
                merged = message.intents + (self._reconcile.intents if self._reconcile else ())
                self._reconcile = message.model_copy(update={"intents": merged})
                self._schedule_flush()
            case Flush():
                self._flush()
            case Tick(name="poll"):
                self._guarded("poll", self.gateway.poll)
            case Tick(name="heartbeat") if self.dead_man is not None:
                self.dead_man.beat()
            case CancelOrders():
                return self._guarded("cancel", lambda: self.gateway.cancel_open(message.symbol, self.symbols))
            case CancelOrder():
                return self._guarded("cancel", lambda: self.gateway.cancel_one(message))
            case ResizeOrder():
                return self._guarded("resize", lambda: self.gateway.resize(message))
            case Resolve():
                return self._guarded("resolve", lambda: self.gateway.give_up(message))
            case BeginStop():
                self.gateway.begin_stop(message.allow_flatten)
                return True
            case ReadHoldings():
                return self._guarded("holdings", lambda: self.gateway.holdings(self.symbols)) or Holdings(
                    problem="the gateway failed reading the exchange; see the log")
            case GetInFlight():
                return self.gateway.in_flight() + len(self._orders)  # orders gathered for the next send count too
            case Ping():  # a barrier: orders gathered before it are sent before it is answered
                if self._orders:
                    self._flush(gather=False)
                return True
            case ConnectGateway():
                self.portfolio, self.persistence = message.portfolio, message.persistence
            case _:
                logger.error("gateway: unexpected message {}", type(message).__name__)
        return None

    def _gather(self, intents: Sequence[OrderIntent]) -> None:
        """Orders join the next send; it leaves once every traded symbol has one, or the burst has been quiet."""
        self._last_order = time.monotonic()
        if not self._orders:
            self._first_order = self._last_order
        self._orders.extend(intents)
        self._gathered.update(intent.symbol for intent in intents)
        if self._all_symbols and self._gathered >= self._all_symbols:
            self._flush(gather=False)  # every symbol we trade has its order: nothing more can join
        else:
            self._schedule_flush(self.gateway.settings.gather_s)

    def _schedule_flush(self, delay_s: float = 0.0) -> None:
        """Flush after what is queued now; orders wait `gather_s` more, so the rest of a burst joins their batch."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            if delay_s > 0 and self.timers is not None:
                self.timers.after(delay_s, self.actor_ref, Flush())
            else:
                self.actor_ref.tell(Flush())

    def _flush(self, gather: bool = True) -> None:
        self._flush_scheduled = False
        settings = self.gateway.settings
        if gather and self._orders and self._reconcile is None and not self._sync_requested and self.timers is not None:
            # a burst still arriving: wait until it has been quiet gather_s (at most gather_max_s)
            now = time.monotonic()
            quiet_for, waited = now - self._last_order, now - self._first_order
            if quiet_for < settings.gather_s and waited < settings.gather_max_s:
                self._schedule_flush(min(settings.gather_s - quiet_for, settings.gather_max_s - waited))
                return
        reconcile, self._reconcile = self._reconcile, None
        if reconcile is not None:  # before any order: no symbol trades before it has reconciled
            report = self._guarded("reconcile", lambda: self.gateway.reconcile(reconcile))
            if report is None:
                report = ReconciliationReport(ok=False, reason=reconcile.reason, detail="reconciliation crashed")
            self._tell(self.portfolio, report)
        orders, self._orders = self._orders, []
        self._gathered = set()
        if orders:
            self._guarded("place", lambda: self.gateway.place_all(orders))
        if self._sync_requested:
            self._sync_requested = False
            result = self._guarded("positions", self.gateway.fetch_positions)
            if result is None:
                result = PositionsUnavailable(reason=Reason.EXCHANGE_UNAVAILABLE.value, detail="position fetch crashed",
                                              seq=self.gateway.next_seq())
            if isinstance(result, PositionsUnavailable):
                logger.warning("positions unavailable: {}", result.detail)
            self._tell(self.portfolio, result)

    @staticmethod
    def _guarded(what: str, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except Exception:  # a bug here must not kill the only gateway; unfinished orders stay unresolved
            logger.exception("gateway: {} failed unexpectedly", what)
            return None

    def _report(self, update: OrderUpdate) -> None:
        self._tell(self.persistence, update)
        self._tell(self.portfolio, update)

    def _route(self, message: Message) -> None:
        self._tell(self.portfolio, message)

    def _record_sends(self, updates: Sequence[OrderUpdate]) -> str | None:
        """Persist SUBMITTED reports and wait for the commit; the error text if it did not happen."""
        if self.persistence is None:
            return None  # tests without persistence
        reply: pykka.Future[Any] = pykka.ThreadingFuture()
        try:
            self.persistence.tell(RecordSends(updates=tuple(updates), reply=reply))
            reply.get(timeout=self.ask_timeout_s)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    def _account_log_cursor(self) -> int | None:
        """The newest account-log entry id persistence holds (None: none, or no persistence in a test)."""
        if self.persistence is None:
            return None
        return self.persistence.ask(GetAccountLogCursor(), block=True, timeout=self.ask_timeout_s)

    def _find_intents(self, cids: Sequence[str]) -> list[IntentRecord]:
        if self.persistence is None:
            return []
        return self.persistence.ask(FindIntents(client_order_ids=tuple(cids)), block=True, timeout=self.ask_timeout_s)

    @staticmethod
    def _tell(target: pykka.ActorRef[Any] | None, message: Any) -> None:
        if target is None:
            return
        try:
            target.tell(message)
        except pykka.ActorDeadError:
            logger.warning("gateway: {} is not running; report {} dropped", target, type(message).__name__)


__all__ = ["ExchangeGatewayActor", "GatewaySettings", "OrderGateway", "Position", "conclude"]
