"""The exchange gateway: the only caller of Kraken's private endpoints; the order lifecycle lives here.

For each batch of PlaceOrder commands that arrive together:
    L4: one `fetch_open_orders` for the account -> any open order for symbol+side blocks an entry
        (check failed: fail-closed refuses with EXCHANGE_UNAVAILABLE, fail-open sends and says so)
    -> report SUBMITTED -> `create_order` (one) or `create_orders` (batchorder, several) with each
       intent's client order id
    -> report ACCEPTED / FILLED / REJECTED (the exchange said no) / UNKNOWN (time-out, dropped
       connection, 5xx, 429, garbage: never re-sent on a guess)
Afterwards, on every poll:
    UNKNOWN orders are resolved by client order id: `orders/status` (closed orders show there for
    5 s only), fills (which carry cliOrdId), then order history. Proven absent (nothing anywhere,
    looked up at least `absent_grace_s` after the send) and still fresh: re-sent with the SAME
    client order id (Kraken answers clientOrderIdAlreadyExist if it exists after all); too old or
    sent too often: NOT_PLACED. Never a new id for the same intent.
    Accepted orders are followed through fills and open orders until final; unfilled limit orders
    are cancelled after their time-out.
Reconcile: unfinished intents from the database are resolved the same way, open orders the
database does not know are adopted as EXTERNAL, and positions are read.
Reports go by tell to persistence first, then to the portfolio (which routes them to the symbol).
Every private call first spends from Kraken's cost budget (waiting if it must).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import ccxt
import pykka
from loguru import logger

from actors.timers import ActorTimers
from exchange.budget import CostBudget
from messages import (
    CancelOrders,
    ExchangeOrder,
    Fill,
    Flush,
    GetInFlight,
    IntentRecord,
    OrderIntent,
    OrderState,
    OrderUpdate,
    Ping,
    PlaceOrder,
    Position,
    PositionSide,
    PositionsSnapshot,
    PositionsUnavailable,
    Reason,
    Reconcile,
    ReconciliationReport,
    Side,
    SyncPositions,
    Tick,
    now_ms,
)
from messages._base import Message

# Kraken sendStatus values that mean "not placed" (ccxt raises them as "... failed due to <status>").
KRAKEN_REJECT_STATUSES = frozenset(
    {
        "invalidOrderType",
        "invalidSide",
        "invalidSize",
        "invalidPrice",
        "insufficientAvailableFunds",
        "selfFill",
        "tooManySmallOrders",
        "maxPositionViolation",
        "marketSuspended",
        "marketInactive",
        "clientOrderIdTooLong",
        "outsidePriceCollar",
        "postWouldExecute",
        "iocWouldNotExecute",
        "wouldNotReducePosition",
        "invalidArgument",
    }
)

# Errors that prove the exchange refused the request before placing anything.
_DEFINITE_REJECTIONS: tuple[type[Exception], ...] = (
    ccxt.InsufficientFunds,
    ccxt.BadRequest,  # includes BadSymbol
    ccxt.AuthenticationError,  # includes PermissionDenied
    ccxt.ArgumentsRequired,
    ccxt.InvalidOrder,  # except DuplicateOrderId / OrderNotFound, handled first
)

BATCH_LIMIT = 100  # ccxt's createOrders maximum for Kraken


class ConnectGateway(Message):
    """Wiring: where the gateway sends its reports."""

    portfolio: Any
    persistence: Any


@dataclass(frozen=True)
class GatewaySettings:
    """How the gateway follows orders and resolves unknown outcomes."""

    fail_open: bool = False
    poll_interval_s: float = 1.0
    limit_timeout_s: float = 120.0  # unfilled limit orders are cancelled after this
    absent_grace_s: float = 3.0  # a lookup this long after a send that finds nothing proves absence
    resend_max_age_s: float = 120.0  # proven absent and younger than this: re-sent, same client order id
    max_sends: int = 3  # sends of one intent at most (the first one and re-sends)


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return result if result.is_finite() else None


def classify_send_error(exc: BaseException) -> tuple[OrderState, Reason, str]:
    """Decide whether a failed send proves the order absent (REJECTED) or leaves it UNKNOWN."""
    detail = f"{type(exc).__name__}: {exc}"
    match = re.search(r"failed due to (\w+)", str(exc))
    if match and match.group(1) in KRAKEN_REJECT_STATUSES:
        return OrderState.REJECTED, Reason.EXCHANGE_REJECTED, detail
    if isinstance(exc, (ccxt.DuplicateOrderId, ccxt.OrderNotFound)):
        return OrderState.UNKNOWN, Reason.OUTCOME_UNKNOWN, detail  # it may exist after all: resolve by id
    if isinstance(exc, _DEFINITE_REJECTIONS):
        return OrderState.REJECTED, Reason.EXCHANGE_REJECTED, detail
    return OrderState.UNKNOWN, Reason.OUTCOME_UNKNOWN, detail  # time-out, reset, 5xx, 429, garbage


_CCXT_STATUS = {
    "open": OrderState.ACCEPTED,
    "closed": OrderState.FILLED,
    "canceled": OrderState.CANCELED,
    "cancelled": OrderState.CANCELED,
    "expired": OrderState.CANCELED,
    "rejected": OrderState.REJECTED,
}


@dataclass
class Tracked:
    """One of our orders the gateway follows until it is final."""

    intent: OrderIntent
    state: OrderState
    exchange_order_id: str | None = None
    filled: Decimal = Decimal(0)
    sends: int = 0
    last_send: float = 0.0  # monotonic time of the last send attempt
    placed_at: float = 0.0  # monotonic time the exchange accepted it
    accepted: bool = False  # the exchange holds (or held) it: never re-sent
    fill_ids: set[str] = field(default_factory=set)
    lookups: int = 0
    next_lookup: float = 0.0  # monotonic time of the next resolution attempt

    @property
    def client_order_id(self) -> str:
        """The intent's client order id."""
        return self.intent.client_order_id


@dataclass
class Evidence:
    """What the exchange shows of one client order id; `complete` when history was searched too."""

    order: dict[str, Any] | None = None
    fills: list[dict[str, Any]] = field(default_factory=list)
    complete: bool = False


class OrderGateway:
    """Open-order check, placement, resolution, order following and reconciliation. No threads."""

    def __init__(
        self,
        exchange: Any,
        *,
        settings: GatewaySettings | None = None,
        report: Callable[[OrderUpdate], None] = lambda update: None,
        budget: CostBudget | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], int] = now_ms,
    ) -> None:
        self.exchange = exchange
        self.settings = settings or GatewaySettings()
        self.report = report
        self.budget = budget
        self.clock = clock
        self.wall = wall
        self.seq = 0
        self.orders: dict[str, Tracked] = {}  # client order id -> our unfinished orders
        self.external: set[str] = set()  # exchange order ids adopted as EXTERNAL

    @property
    def fail_open(self) -> bool:
        """True when an unreadable open-order check does not stop a send."""
        return self.settings.fail_open

    def next_seq(self) -> int:
        """The next report sequence number."""
        self.seq += 1
        return self.seq

    def in_flight(self) -> int:
        """Our orders being sent or resolved (outcome not known yet)."""
        return sum(1 for t in self.orders.values() if t.state in (OrderState.SUBMITTED, OrderState.UNKNOWN))

    # --- calls, paced by Kraken's budget ---------------------------------------------------

    def _spend(self, endpoint: str, **cost: Any) -> None:
        if self.budget is not None:
            waited = self.budget.spend(endpoint, **cost)
            if waited > 0.5:
                logger.info("gateway: waited {:.1f}s for Kraken's cost budget ({})", waited, endpoint)

    def _fetch_open_orders(self) -> list[dict[str, Any]]:
        self._spend("openorders")
        orders = self.exchange.fetch_open_orders()
        if not isinstance(orders, list):
            raise ValueError(f"unreadable open orders: {str(orders)[:200]}")
        parsed = []
        for order in orders:
            if not isinstance(order, dict) or not isinstance(order.get("symbol"), str) or not order.get("id"):
                raise ValueError(f"unreadable open order: {str(order)[:200]}")
            try:
                side = Side(str(order.get("side")).lower())
            except ValueError:
                raise ValueError(f"open order with unknown side: {str(order)[:200]}") from None
            parsed.append({**order, "side": side})
        return parsed

    def _fetch_fills(self) -> list[dict[str, Any]]:
        self._spend("fills")
        trades = self.exchange.fetch_my_trades()
        if not isinstance(trades, list):
            raise ValueError(f"unreadable fills: {str(trades)[:200]}")
        return [t for t in trades if isinstance(t, dict)]

    def _fetch_status(self, client_order_ids: list[str]) -> list[dict[str, Any]]:
        self._spend("orders/status")
        orders = self.exchange.fetch_orders(params={"orderIds": [], "cliOrdIds": client_order_ids})
        if not isinstance(orders, list):
            raise ValueError(f"unreadable order status: {str(orders)[:200]}")
        return [o for o in orders if isinstance(o, dict)]

    def _fetch_history(self) -> list[dict[str, Any]]:
        if self.budget is not None:
            self.budget.spend_history("orders")
        orders = self.exchange.fetch_closed_orders()
        if not isinstance(orders, list):
            raise ValueError(f"unreadable order history: {str(orders)[:200]}")
        return [o for o in orders if isinstance(o, dict)]

    # --- placing ---------------------------------------------------------------------------

    def place_all(self, intents: Sequence[OrderIntent]) -> list[OrderUpdate]:
        """Check the exchange for open orders once, then place every intent that passes."""
        results: list[OrderUpdate] = []
        open_orders: list[dict[str, Any]] = []
        check_error: str | None = None
        if any(intent.is_entry for intent in intents):
            try:
                open_orders = self._fetch_open_orders()
            except Exception as exc:
                check_error = f"{type(exc).__name__}: {exc}"
        taken: set[tuple[str, Side]] = set()
        to_send: list[OrderIntent] = []
        for intent in intents:
            key = (intent.symbol, intent.side)
            if intent.is_entry:
                if check_error is not None and not self.fail_open:
                    results.append(self._emit(intent, OrderState.REJECTED, Reason.EXCHANGE_UNAVAILABLE,
                                              f"open-order check failed, not sent (fail-closed): {check_error}"))
                    continue
                if check_error is not None:
                    logger.warning(
                        "{}: open-order check failed ({}); sending anyway because open_order_check = fail-open",
                        intent.symbol, check_error,
                    )
                blocking = [o for o in open_orders if (o["symbol"], o["side"]) == key]
                if blocking or key in taken:
                    ids = ", ".join(str(o.get("clientOrderId") or o.get("id")) for o in blocking) or "this batch"
                    results.append(self._emit(intent, OrderState.REJECTED, Reason.EXCHANGE_ORDER_OPEN,
                                              f"open {intent.side.value} order on the exchange: {ids}"))
                    continue
            taken.add(key)
            to_send.append(intent)
        for start in range(0, len(to_send), BATCH_LIMIT):
            results.extend(self._send(to_send[start : start + BATCH_LIMIT]))
        return results

    def _send(self, intents: list[OrderIntent]) -> list[OrderUpdate]:
        if not intents:
            return []
        now = self.clock()
        for intent in intents:
            tracked = self.orders.setdefault(intent.client_order_id, Tracked(intent=intent, state=OrderState.SUBMITTED))
            tracked.sends += 1
            tracked.last_send = now
            self._update(tracked, OrderState.SUBMITTED, None, f"sending (attempt {tracked.sends})")
        if len(intents) == 1:
            return [self._send_one(intents[0])]
        return self._send_batch(intents)

    @staticmethod
    def _order_args(intent: OrderIntent) -> tuple[str, float | None, dict[str, Any]]:
        params: dict[str, Any] = {"clientOrderId": intent.client_order_id}
        if intent.reduce_only:
            params["reduceOnly"] = True
        if intent.order_type == "limit" and intent.limit_price is not None:
            return "limit", float(intent.limit_price), params
        return "market", None, params

    def _send_one(self, intent: OrderIntent) -> OrderUpdate:
        order_type, price, params = self._order_args(intent)
        self._spend("sendorder")
        try:
            response = self.exchange.create_order(
                intent.symbol, order_type, intent.side.value, float(intent.amount), price, params
            )
        except Exception as exc:  # every failure is classified; none escapes the gateway
            return self._send_failed(intent, exc)
        return self._on_response(intent, response)

    def _send_batch(self, intents: list[OrderIntent]) -> list[OrderUpdate]:
        requests = []
        for intent in intents:
            order_type, price, params = self._order_args(intent)
            requests.append({"symbol": intent.symbol, "type": order_type, "side": intent.side.value,
                             "amount": float(intent.amount), "price": price, "params": params})
        self._spend("batchorder", batch_size=len(intents))
        try:
            responses = self.exchange.create_orders(requests)
        except Exception as exc:
            state, _, _ = classify_send_error(exc)
            if state is OrderState.REJECTED and "failed due to" not in str(exc):
                # refused before anything was sent (e.g. ccxt's own checks): try each order alone
                logger.info("gateway: batch refused as a whole ({}); sending one by one", exc)
                return [self._send_one(intent) for intent in intents]
            return [self._send_failed(intent, exc) for intent in intents]
        if not isinstance(responses, list):
            return [self._unknown(intent, f"unreadable batch response: {str(responses)[:200]}") for intent in intents]
        by_cid: dict[str, dict[str, Any]] = {}
        by_tag: dict[int, dict[str, Any]] = {}
        for response in responses:
            if not isinstance(response, dict):
                continue
            info = response.get("info") if isinstance(response.get("info"), dict) else {}
            cid = response.get("clientOrderId") or info.get("cliOrdId")
            if cid:
                by_cid[str(cid)] = response
            tag = info.get("order_tag")
            if isinstance(tag, (int, str)) and str(tag).isdigit():
                by_tag[int(tag)] = response
        results = []
        for index, intent in enumerate(intents):
            response = by_cid.get(intent.client_order_id) or by_tag.get(index)
            if response is None:
                results.append(self._unknown(intent, "batch response does not mention this order"))
            else:
                results.append(self._on_batch_item(intent, response))
        return results

    def _on_batch_item(self, intent: OrderIntent, response: dict[str, Any]) -> OrderUpdate:
        info = response.get("info") if isinstance(response.get("info"), dict) else {}
        status = str(info.get("status") or "")
        if status == "clientOrderIdAlreadyExist":
            return self._unknown(intent, "batchorder: clientOrderIdAlreadyExist (it may exist: resolving)")
        if status in KRAKEN_REJECT_STATUSES:
            return self._rejected(intent, f"batchorder: {status}")
        return self._on_response(intent, response)

    def _send_failed(self, intent: OrderIntent, exc: BaseException) -> OrderUpdate:
        state, reason, detail = classify_send_error(exc)
        log = logger.warning if state is OrderState.UNKNOWN else logger.info
        log("{} {} {}: {}", intent.symbol, intent.client_order_id, state.value, detail)
        if state is OrderState.REJECTED:
            return self._rejected(intent, detail)
        return self._unknown(intent, detail)

    def _rejected(self, intent: OrderIntent, detail: str) -> OrderUpdate:
        return self._update(self._tracked(intent), OrderState.REJECTED, Reason.EXCHANGE_REJECTED, detail)

    def _unknown(self, intent: OrderIntent, detail: str) -> OrderUpdate:
        tracked = self._tracked(intent)
        if tracked.accepted:
            return self._update(tracked, tracked.state, None, detail)  # it exists; resolution follows it
        return self._update(tracked, OrderState.UNKNOWN, Reason.OUTCOME_UNKNOWN, detail)

    def _tracked(self, intent: OrderIntent) -> Tracked:
        return self.orders.setdefault(intent.client_order_id, Tracked(intent=intent, state=OrderState.SUBMITTED))

    def _on_response(self, intent: OrderIntent, response: Any) -> OrderUpdate:
        if not isinstance(response, dict) or not response.get("id"):
            return self._unknown(intent, f"unreadable create_order response: {str(response)[:200]}")
        client_id = response.get("clientOrderId")
        if client_id not in (None, intent.client_order_id):
            return self._unknown(intent, f"response names client order id {client_id!r}, expected {intent.client_order_id}")
        tracked = self._tracked(intent)
        return self._apply_order(tracked, response, fills=response.get("trades") or [])

    # --- applying what the exchange shows --------------------------------------------------

    def _apply_order(self, tracked: Tracked, order: dict[str, Any], fills: Iterable[dict[str, Any]] = ()) -> OrderUpdate:
        """Move a tracked order to what `order` (a ccxt order) and `fills` (ccxt trades) show."""
        new_fills = self._new_fills(tracked, fills)
        fill_total = tracked.filled + sum((f.amount for f in new_fills), Decimal(0))
        reported = _decimal(order.get("filled")) or Decimal(0)
        filled = max(fill_total, reported)
        state = _CCXT_STATUS.get(str(order.get("status")), OrderState.ACCEPTED)
        if state is OrderState.ACCEPTED and filled > 0:
            state = OrderState.FILLED if filled >= tracked.intent.amount else OrderState.PARTIALLY_FILLED
        if state is not OrderState.REJECTED:
            if not tracked.accepted:
                tracked.placed_at = self.clock()
            tracked.accepted = True
        if order.get("id"):
            tracked.exchange_order_id = str(order["id"])
        reason = Reason.EXCHANGE_REJECTED if state is OrderState.REJECTED else None
        detail = "" if reason is None else str(order.get("info", ""))[:200]
        return self._update(tracked, state, reason, detail, filled=filled,
                            average_price=_decimal(order.get("average")), fills=tuple(new_fills))

    def _new_fills(self, tracked: Tracked, trades: Iterable[dict[str, Any]]) -> list[Fill]:
        fills = []
        for trade in trades:
            fill_id = trade.get("id")
            amount, price = _decimal(trade.get("amount")), _decimal(trade.get("price"))
            if not fill_id or amount is None or price is None or str(fill_id) in tracked.fill_ids:
                continue
            tracked.fill_ids.add(str(fill_id))
            fee = _decimal((trade.get("fee") or {}).get("cost")) or Decimal(0)
            timestamp = trade.get("timestamp")
            fills.append(
                Fill(
                    fill_id=str(fill_id),
                    symbol=tracked.intent.symbol,
                    side=tracked.intent.side,
                    amount=amount,
                    price=price,
                    fee=fee,
                    exchange_order_id=str(trade.get("order") or tracked.exchange_order_id or "") or None,
                    client_order_id=tracked.client_order_id,
                    time=int(timestamp) if isinstance(timestamp, (int, float)) else self.wall(),
                )
            )
        return fills

    def _apply_fills_only(self, tracked: Tracked, trades: list[dict[str, Any]], resolving: bool = False
                          ) -> OrderUpdate | None:
        new_fills = self._new_fills(tracked, trades)
        if not new_fills and (not resolving or tracked.filled == 0):
            return None  # nothing new (a resolution still reports what earlier fills proved)
        filled = tracked.filled + sum((f.amount for f in new_fills), Decimal(0))
        tracked.accepted = True
        state = OrderState.FILLED if filled >= tracked.intent.amount else OrderState.PARTIALLY_FILLED
        if not tracked.exchange_order_id and new_fills:
            tracked.exchange_order_id = new_fills[0].exchange_order_id
        total = sum((f.amount * f.price for f in new_fills), Decimal(0))
        average = (total / sum((f.amount for f in new_fills), Decimal(0))) if new_fills else None
        return self._update(tracked, state, None, "from fills", filled=filled, average_price=average,
                            fills=tuple(new_fills))

    def _update(self, tracked: Tracked, state: OrderState, reason: Reason | None, detail: str, **fields: Any) -> OrderUpdate:
        tracked.state = state
        if "filled" in fields:
            tracked.filled = fields["filled"]
        if state.is_final:
            self.orders.pop(tracked.client_order_id, None)
        intent = tracked.intent
        update = OrderUpdate(
            intent_hash=intent.intent_hash,
            client_order_id=intent.client_order_id,
            symbol=intent.symbol,
            side=intent.side,
            state=state,
            reduce_only=intent.reduce_only,
            exchange_order_id=tracked.exchange_order_id,
            amount=intent.amount,
            filled=fields.pop("filled", tracked.filled),
            reason=reason.value if reason else None,
            detail=detail,
            seq=self.next_seq(),
            **fields,
        )
        self.report(update)
        return update

    def _emit(self, intent: OrderIntent, state: OrderState, reason: Reason | None, detail: str) -> OrderUpdate:
        return self._update(self._tracked(intent), state, reason, detail)

    # --- following orders ------------------------------------------------------------------

    def poll(self) -> None:
        """Resolve unknown outcomes that are due, follow accepted orders, cancel stale limit orders."""
        now = self.clock()
        live = [t for t in self.orders.values() if t.accepted and t.state in (OrderState.ACCEPTED,
                                                                               OrderState.PARTIALLY_FILLED)]
        unknown = [t for t in self.orders.values() if t.state is OrderState.UNKNOWN and now >= t.next_lookup]
        if unknown:
            self.resolve(unknown)
        if live:
            self._follow(live)

    def _follow(self, live: list[Tracked]) -> None:
        try:
            trades = self._fetch_fills()
            open_orders = self._fetch_open_orders()
        except Exception as exc:
            logger.warning("gateway: could not follow {} open orders: {}: {}", len(live), type(exc).__name__, exc)
            return
        by_cid, by_order = _group_trades(trades)
        open_ids = {str(o.get("id")) for o in open_orders} | {str(o.get("clientOrderId")) for o in open_orders}
        now = self.clock()
        for tracked in live:
            if tracked.client_order_id not in self.orders:
                continue
            mine = by_cid.get(tracked.client_order_id, []) + by_order.get(tracked.exchange_order_id or "", [])
            if mine:
                update = self._apply_fills_only(tracked, mine)
                if update is not None and update.state.is_final:
                    continue
            still_open = tracked.client_order_id in open_ids or (tracked.exchange_order_id or "") in open_ids
            if not still_open:
                tracked.state = OrderState.UNKNOWN  # gone from the book, not fully filled: look it up
                tracked.lookups = 0
                self.resolve([tracked])
                continue
            if tracked.intent.order_type == "limit" and now - tracked.placed_at > self.settings.limit_timeout_s:
                self._cancel(tracked, Reason.CANCELED_BY_TIMEOUT,
                             f"unfilled after {self.settings.limit_timeout_s:.0f}s")

    def _cancel(self, tracked: Tracked, reason: Reason | None, detail: str) -> str:
        if not tracked.exchange_order_id:
            return f"{tracked.client_order_id}: no exchange order id yet"
        self._spend("cancelorder")
        try:
            response = self.exchange.cancel_order(tracked.exchange_order_id, tracked.intent.symbol)
        except ccxt.OrderNotFound:
            tracked.state = OrderState.UNKNOWN  # filled or gone meanwhile: look it up
            self.resolve([tracked])
            return f"{tracked.client_order_id}: no longer open"
        except Exception as exc:
            logger.warning("gateway: cancel of {} failed: {}: {}", tracked.client_order_id, type(exc).__name__, exc)
            return f"{tracked.client_order_id}: cancel failed ({type(exc).__name__}), will retry"
        status = response.get("status") if isinstance(response, dict) else None
        if status in ("canceled", "cancelled"):
            self._update(tracked, OrderState.CANCELED, reason, detail, filled=tracked.filled)
            return f"{tracked.client_order_id}: canceled"
        tracked.state = OrderState.UNKNOWN
        self.resolve([tracked])
        return f"{tracked.client_order_id}: cancel sent"

    def cancel_open(self, symbol: str | None, traded: Iterable[str]) -> list[str]:
        """Cancel every open order on one traded symbol, or on all of them: ours and adopted ones."""
        scope = {symbol} if symbol is not None else set(traded)
        try:
            open_orders = self._fetch_open_orders()
        except Exception as exc:
            return [f"open orders unreadable ({type(exc).__name__}: {exc}); nothing was cancelled"]
        ours = {t.exchange_order_id: t for t in self.orders.values() if t.exchange_order_id}
        outcomes = []
        for order in open_orders:
            if order["symbol"] not in scope:
                continue
            tracked = ours.get(str(order["id"])) or self.orders.get(str(order.get("clientOrderId")))
            if tracked is not None:
                outcomes.append(self._cancel(tracked, None, "cancelled by operator"))
            else:
                outcomes.append(self._cancel_foreign(order))
        return outcomes or ["no open orders"]

    def _cancel_foreign(self, order: dict[str, Any]) -> str:
        name = str(order.get("clientOrderId") or order["id"])
        self._spend("cancelorder")
        try:
            self.exchange.cancel_order(str(order["id"]), order["symbol"])
        except Exception as exc:
            return f"{name}: cancel failed ({type(exc).__name__}: {exc})"
        self.report(OrderUpdate(
            intent_hash=None, client_order_id=order.get("clientOrderId"), symbol=order["symbol"], side=order["side"],
            state=OrderState.CANCELED, reduce_only=bool(order.get("reduceOnly")), exchange_order_id=str(order["id"]),
            amount=_decimal(order.get("amount")), filled=_decimal(order.get("filled")) or Decimal(0),
            reason=Reason.EXTERNAL_ORDER.value, detail="cancelled by operator", seq=self.next_seq(),
        ))
        return f"{name}: canceled"

    # --- resolving unknown outcomes --------------------------------------------------------

    def resolve(self, candidates: list[Tracked]) -> None:
        """Look our orders up by client order id; apply what is found; re-send what is proven absent."""
        due = [t for t in candidates if t.client_order_id in self.orders]
        if not due:
            return
        started = self.clock()
        try:
            evidence = self._evidence(due)
        except Exception as exc:
            logger.warning("gateway: resolving {} orders failed: {}: {}; trying again", len(due),
                           type(exc).__name__, exc)
            return
        for tracked in due:
            tracked.lookups += 1
            backoff = min(max(self.settings.absent_grace_s, 2.0 ** (tracked.lookups - 1)), 30.0)
            tracked.next_lookup = started + backoff
            found = evidence.get(tracked.client_order_id, Evidence())
            if found.order is not None:
                self._apply_order(tracked, found.order, found.fills)
            elif found.fills:
                self._apply_fills_only(tracked, found.fills, resolving=True)
            elif tracked.accepted:
                if tracked.lookups in (5, 50):
                    logger.error("gateway: {} was accepted but is nowhere to be found after {} lookups",
                                 tracked.client_order_id, tracked.lookups)
            elif found.complete and started - tracked.last_send >= self.settings.absent_grace_s:
                self._proven_absent(tracked)

    def _evidence(self, due: list[Tracked]) -> dict[str, Evidence]:
        evidence: dict[str, Evidence] = {t.client_order_id: Evidence() for t in due}
        for order in self._fetch_status([t.client_order_id for t in due]):
            cid = order.get("clientOrderId")
            if cid in evidence:
                evidence[str(cid)].order = order
        missing = [t for t in due if evidence[t.client_order_id].order is None]
        if missing:
            by_cid, by_order = _group_trades(self._fetch_fills())
            for t in missing:
                evidence[t.client_order_id].fills = by_cid.get(t.client_order_id, []) + by_order.get(
                    t.exchange_order_id or "", [])
        absent = [t for t in missing if not evidence[t.client_order_id].fills]
        if absent and (self.budget is None or self.budget.history_available()):
            for order in self._fetch_history():  # history has its own small budget: only when needed
                cid = order.get("clientOrderId")
                if cid in evidence and evidence[str(cid)].order is None:
                    evidence[str(cid)].order = order
            for t in absent:
                evidence[t.client_order_id].complete = True
        return evidence

    def _proven_absent(self, tracked: Tracked) -> None:
        intent = tracked.intent
        age_s = (self.wall() - intent.created_at) / 1000
        if tracked.sends < self.settings.max_sends and age_s <= self.settings.resend_max_age_s:
            logger.warning("{} {}: proven absent (status, fills, history); re-sending with the same client order id",
                           intent.symbol, intent.client_order_id)
            self._send([intent])
            return
        why = (f"sent {tracked.sends} times" if tracked.sends >= self.settings.max_sends
               else f"signal is {age_s:.0f}s old (> {self.settings.resend_max_age_s:.0f}s)")
        self._update(tracked, OrderState.REJECTED, Reason.NOT_PLACED,
                     f"proven absent on the exchange; not re-sent: {why}")

    # --- reconciliation --------------------------------------------------------------------

    def reconcile(self, message: Reconcile) -> ReconciliationReport:
        """Resolve unfinished intents, adopt strangers' open orders, read positions."""
        try:
            open_orders = self._fetch_open_orders()
        except Exception as exc:
            return ReconciliationReport(ok=False, reason=message.reason,
                                        detail=f"open orders unreadable: {type(exc).__name__}: {exc}")
        recovered = [self._recover(record) for record in message.intents
                     if record.client_order_id not in self.orders or self.orders[record.client_order_id].state
                     is OrderState.UNKNOWN]
        open_by_cid = {str(o.get("clientOrderId")): o for o in open_orders if o.get("clientOrderId")}
        to_resolve = []
        for tracked in recovered:
            order = open_by_cid.get(tracked.client_order_id)
            if order is not None:
                self._apply_order(tracked, order)
            else:
                to_resolve.append(tracked)
        if to_resolve:
            self.resolve(to_resolve)
        ours = set(self.orders) | {r.client_order_id for r in message.intents}
        views, adopted = [], []
        for order in open_orders:
            cid = order.get("clientOrderId")
            view = ExchangeOrder(
                symbol=order["symbol"], side=order["side"], exchange_order_id=str(order["id"]),
                client_order_id=str(cid) if cid else None, amount=_decimal(order.get("amount")),
                filled=_decimal(order.get("filled")) or Decimal(0), price=_decimal(order.get("price")),
                reduce_only=bool(order.get("reduceOnly")), ours=cid in ours,
            )
            views.append(view)
            if not view.ours and view.exchange_order_id not in self.external:
                self.external.add(view.exchange_order_id)
                adopted.append(view)
                self._report_external(view)
        positions = self.fetch_positions()
        if isinstance(positions, PositionsUnavailable):
            return ReconciliationReport(ok=False, reason=message.reason, detail=f"positions unreadable: "
                                        f"{positions.detail}", open_orders=tuple(views), adopted=tuple(adopted))
        return ReconciliationReport(ok=True, reason=message.reason, snapshot=positions, open_orders=tuple(views),
                                    adopted=tuple(adopted), unresolved=self.in_flight())

    def _recover(self, record: IntentRecord) -> Tracked:
        existing = self.orders.get(record.client_order_id)
        if existing is not None:
            return existing
        tracked = Tracked(intent=record.to_intent(), state=record.state, exchange_order_id=record.exchange_order_id,
                          filled=record.filled, sends=1,
                          accepted=record.state in (OrderState.ACCEPTED, OrderState.PARTIALLY_FILLED))
        self.orders[record.client_order_id] = tracked
        return tracked

    def _report_external(self, view: ExchangeOrder) -> None:
        logger.warning("{}: open {} order {} was not placed by this system: adopted as EXTERNAL; it blocks entries "
                       "on that side", view.symbol, view.side.value, view.client_order_id or view.exchange_order_id)
        self.report(OrderUpdate(
            intent_hash=None, client_order_id=view.client_order_id, symbol=view.symbol, side=view.side,
            state=OrderState.ACCEPTED, reduce_only=view.reduce_only, exchange_order_id=view.exchange_order_id,
            amount=view.amount, filled=view.filled, reason=Reason.EXTERNAL_ORDER.value,
            detail="placed outside this system", seq=self.next_seq(),
        ))

    # --- positions -------------------------------------------------------------------------

    def fetch_positions(self) -> PositionsSnapshot | PositionsUnavailable:
        """Every open position, or a failure that says why (never an empty list on failure)."""
        try:
            self._spend("openpositions")
            raw = self.exchange.fetch_positions()
        except Exception as exc:
            return PositionsUnavailable(reason=Reason.EXCHANGE_UNAVAILABLE.value,
                                        detail=f"{type(exc).__name__}: {exc}", seq=self.next_seq())
        if not isinstance(raw, list):
            return PositionsUnavailable(reason=Reason.EXCHANGE_UNAVAILABLE.value,
                                        detail=f"unreadable positions: {str(raw)[:200]}", seq=self.next_seq())
        positions = []
        for item in raw:
            position = _position(item)
            if position is None:
                return PositionsUnavailable(reason=Reason.EXCHANGE_UNAVAILABLE.value,
                                            detail=f"unreadable position: {str(item)[:200]}", seq=self.next_seq())
            if position.is_open:
                positions.append(position)
        return PositionsSnapshot(positions=tuple(positions), seq=self.next_seq())


def _group_trades(trades: list[dict[str, Any]]) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[dict[str, Any]]]]:
    by_cid: dict[str, list[dict[str, Any]]] = {}
    by_order: dict[str, list[dict[str, Any]]] = {}
    for trade in trades:
        info = trade.get("info") if isinstance(trade.get("info"), dict) else {}
        cid = info.get("cliOrdId") or trade.get("clientOrderId")
        if cid:
            by_cid.setdefault(str(cid), []).append(trade)
        elif trade.get("order"):
            by_order.setdefault(str(trade["order"]), []).append(trade)
    return by_cid, by_order


def _position(item: Any) -> Position | None:
    if not isinstance(item, dict) or not isinstance(item.get("symbol"), str):
        return None
    contracts = _decimal(item.get("contracts"))
    side = str(item.get("side") or "").lower()
    if contracts is None or contracts < 0 or side not in ("long", "short", "flat", ""):
        return None
    return Position(
        symbol=item["symbol"],
        side=PositionSide(side) if side in ("long", "short") and contracts > 0 else PositionSide.FLAT,
        contracts=contracts if side in ("long", "short") else Decimal(0),
        entry_price=_decimal(item.get("entryPrice")),
        unrealized_pnl=_decimal(item.get("unrealizedPnl")),
    )


class ExchangeGatewayActor(pykka.ThreadingActor):
    """The actor shell around OrderGateway: batches commands that arrive together; polls on a timer."""

    def __init__(self, exchange: Any, *, settings: GatewaySettings | None = None,
                 budget: CostBudget | None = None, symbols: Iterable[str] = ()) -> None:
        super().__init__()
        self.symbols = tuple(symbols)
        self.gateway = OrderGateway(exchange, settings=settings, report=self._report, budget=budget)
        self.portfolio: pykka.ActorRef[Any] | None = None
        self.persistence: pykka.ActorRef[Any] | None = None
        self.timers: ActorTimers | None = None
        self._orders: list[OrderIntent] = []
        self._sync_requested = False
        self._reconcile: Reconcile | None = None
        self._flush_scheduled = False

    def on_start(self) -> None:
        mode = "fail-open" if self.gateway.fail_open else "fail-closed"
        logger.info("exchange gateway started; open-order check is {}", mode)
        self.timers = ActorTimers("gateway")
        self.timers.every(self.gateway.settings.poll_interval_s, self.actor_ref, Tick(name="poll"))

    def on_stop(self) -> None:
        if self.timers:
            self.timers.stop()

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        """Stop the poll timer and report the death to the wiring: a core actor never dies silently."""
        if self.timers:
            self.timers.stop()
        from actors.system import report_core_failure

        report_core_failure(self, exception_value)

    def on_receive(self, message: Any) -> Any:
        match message:
            case PlaceOrder():
                self._orders.append(message.intent)
                self._schedule_flush()
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
            case CancelOrders():
                return self._guarded("cancel", lambda: self.gateway.cancel_open(message.symbol, self.symbols))
            case GetInFlight():
                return self.gateway.in_flight()
            case Ping():
                return True
            case ConnectGateway():
                self.portfolio, self.persistence = message.portfolio, message.persistence
            case _:
                logger.error("gateway: unexpected message {}", type(message).__name__)
        return None

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.actor_ref.tell(Flush())

    def _flush(self) -> None:
        self._flush_scheduled = False
        reconcile, self._reconcile = self._reconcile, None
        if reconcile is not None:  # before any order: no symbol trades before it has reconciled
            report = self._guarded("reconcile", lambda: self.gateway.reconcile(reconcile))
            if report is None:
                report = ReconciliationReport(ok=False, reason=reconcile.reason, detail="reconciliation crashed")
            self._tell(self.portfolio, report)
        orders, self._orders = self._orders, []
        if orders:
            self._guarded("place", lambda: self.gateway.place_all(orders))
        if self._sync_requested:
            self._sync_requested = False
            result = self.gateway.fetch_positions()
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

    @staticmethod
    def _tell(target: pykka.ActorRef[Any] | None, message: Any) -> None:
        if target is None:
            return
        try:
            target.tell(message)
        except pykka.ActorDeadError:
            logger.warning("gateway: {} is not running; report {} dropped", target, type(message).__name__)
