"""The exchange gateway: the only caller of Kraken's private endpoints; the order lifecycle lives here.

For each batch of PlaceOrder commands that arrive together:
    L4: one `fetch_open_orders` for the account -> any open order for symbol+side blocks an entry
        (check failed: fail-closed refuses with EXCHANGE_UNAVAILABLE, fail-open sends and says so)
    -> report SUBMITTED -> `create_order` with the intent's client order id
    -> report ACCEPTED / FILLED / REJECTED (the exchange said no) / UNKNOWN (time-out, dropped
       connection, 5xx, garbage: never re-sent on a guess)
Reports go by tell to persistence first, then to the portfolio (which routes them to the symbol).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import ccxt
import pykka
from loguru import logger

from messages import (
    CancelOrder,
    Fill,
    Flush,
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
    Side,
    SyncPositions,
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


class ConnectGateway(Message):
    """Wiring: where the gateway sends its reports."""

    portfolio: Any
    persistence: Any


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


class OrderGateway:
    """Open-order check, order placement and position fetches on a ccxt-shaped exchange. No threads."""

    def __init__(
        self,
        exchange: Any,
        *,
        fail_open: bool = False,
        report: Callable[[OrderUpdate], None] = lambda update: None,
    ) -> None:
        self.exchange = exchange
        self.fail_open = fail_open
        self.report = report
        self.seq = 0

    def next_seq(self) -> int:
        """The next report sequence number."""
        self.seq += 1
        return self.seq

    # --- placing ---------------------------------------------------------------------------

    def place_all(self, intents: Sequence[OrderIntent]) -> list[OrderUpdate]:
        """Check the exchange for open orders once, then place every intent that passes."""
        results: list[OrderUpdate] = []
        open_orders, check_error = self._open_orders(intents)
        taken: set[tuple[str, Side]] = set()
        for intent in intents:
            key = (intent.symbol, intent.side)
            if intent.is_entry:
                if check_error is not None and not self.fail_open:
                    results.append(
                        self._emit(intent, OrderState.REJECTED, Reason.EXCHANGE_UNAVAILABLE,
                                   f"open-order check failed, not sent (fail-closed): {check_error}")
                    )
                    continue
                if check_error is not None:
                    logger.warning(
                        "{}: open-order check failed ({}); sending anyway because open_order_check = fail-open",
                        intent.symbol, check_error,
                    )
                blocking = [o for o in open_orders if (o["symbol"], o["side"]) == key] if check_error is None else []
                if blocking or key in taken:
                    ids = ", ".join(str(o.get("clientOrderId") or o.get("id")) for o in blocking) or "this batch"
                    results.append(
                        self._emit(intent, OrderState.REJECTED, Reason.EXCHANGE_ORDER_OPEN,
                                   f"open {intent.side.value} order on the exchange: {ids}")
                    )
                    continue
            taken.add(key)
            results.append(self.place(intent))
        return results

    def place(self, intent: OrderIntent) -> OrderUpdate:
        """Send one order with its client order id and report what became of it."""
        self._emit(intent, OrderState.SUBMITTED, None, "sending")
        params: dict[str, Any] = {"clientOrderId": intent.client_order_id}
        if intent.reduce_only:
            params["reduceOnly"] = True
        order_type = "limit" if intent.order_type == "limit" and intent.limit_price is not None else "market"
        price = float(intent.limit_price) if order_type == "limit" and intent.limit_price is not None else None
        try:
            response = self.exchange.create_order(
                intent.symbol, order_type, intent.side.value, float(intent.amount), price, params
            )
        except Exception as exc:  # every failure is classified; none escapes the gateway
            state, reason, detail = classify_send_error(exc)
            log = logger.warning if state is OrderState.UNKNOWN else logger.info
            log("{} {} {}: {}", intent.symbol, intent.client_order_id, state.value, detail)
            return self._emit(intent, state, reason, detail)
        return self._report_response(intent, response)

    def _report_response(self, intent: OrderIntent, response: Any) -> OrderUpdate:
        if not isinstance(response, dict) or not response.get("id"):
            return self._emit(intent, OrderState.UNKNOWN, Reason.OUTCOME_UNKNOWN,
                              f"unreadable create_order response: {str(response)[:200]}")
        client_id = response.get("clientOrderId")
        if client_id not in (None, intent.client_order_id):
            return self._emit(intent, OrderState.UNKNOWN, Reason.OUTCOME_UNKNOWN,
                              f"response names client order id {client_id!r}, expected {intent.client_order_id}")
        filled = _decimal(response.get("filled")) or Decimal(0)
        state = _CCXT_STATUS.get(str(response.get("status")), OrderState.ACCEPTED)
        if state is OrderState.ACCEPTED and filled > 0:
            state = OrderState.FILLED if filled >= intent.amount else OrderState.PARTIALLY_FILLED
        reason = Reason.EXCHANGE_REJECTED if state is OrderState.REJECTED else None
        fills = self._fills(intent, response)
        return self._emit(
            intent,
            state,
            reason,
            "" if reason is None else str(response.get("info", ""))[:200],
            exchange_order_id=str(response["id"]),
            filled=filled,
            average_price=_decimal(response.get("average")),
            fills=fills,
        )

    @staticmethod
    def _fills(intent: OrderIntent, response: dict[str, Any]) -> tuple[Fill, ...]:
        fills = []
        for trade in response.get("trades") or []:
            amount, price = _decimal(trade.get("amount")), _decimal(trade.get("price"))
            if not trade.get("id") or amount is None or price is None:
                continue
            fee = _decimal((trade.get("fee") or {}).get("cost")) or Decimal(0)
            fills.append(
                Fill(
                    fill_id=str(trade["id"]),
                    symbol=intent.symbol,
                    side=intent.side,
                    amount=amount,
                    price=price,
                    fee=fee,
                    exchange_order_id=str(response.get("id")),
                    client_order_id=intent.client_order_id,
                    time=int(trade.get("timestamp") or now_ms()),
                )
            )
        return tuple(fills)

    def _open_orders(self, intents: Sequence[OrderIntent]) -> tuple[list[dict[str, Any]], str | None]:
        if not any(intent.is_entry for intent in intents):
            return [], None
        try:
            orders = self.exchange.fetch_open_orders()
        except Exception as exc:
            return [], f"{type(exc).__name__}: {exc}"
        if not isinstance(orders, list):
            return [], f"unreadable open orders: {str(orders)[:200]}"
        parsed = []
        for order in orders:
            if not isinstance(order, dict) or not isinstance(order.get("symbol"), str):
                return [], f"unreadable open order: {str(order)[:200]}"
            try:
                side = Side(str(order.get("side")).lower())
            except ValueError:
                return [], f"open order with unknown side: {str(order)[:200]}"
            parsed.append({**order, "side": side})
        return parsed, None

    def _emit(
        self,
        intent: OrderIntent,
        state: OrderState,
        reason: Reason | None,
        detail: str,
        **fields: Any,
    ) -> OrderUpdate:
        update = OrderUpdate(
            intent_hash=intent.intent_hash,
            client_order_id=intent.client_order_id,
            symbol=intent.symbol,
            side=intent.side,
            state=state,
            reduce_only=intent.reduce_only,
            amount=intent.amount,
            reason=reason.value if reason else None,
            detail=detail,
            seq=self.next_seq(),
            **fields,
        )
        self.report(update)
        return update

    # --- cancelling ------------------------------------------------------------------------

    def cancel(self, command: CancelOrder) -> str:
        """Cancel one order; return what happened, in words."""
        order_id = command.exchange_order_id
        params: dict[str, Any] = {}
        if order_id is None and command.client_order_id is not None:
            params["cliOrdId"] = command.client_order_id
        try:
            self.exchange.cancel_order(order_id, command.symbol, params)
        except Exception as exc:
            return f"cancel failed: {type(exc).__name__}: {exc}"
        return "cancel sent"

    # --- positions -------------------------------------------------------------------------

    def fetch_positions(self) -> PositionsSnapshot | PositionsUnavailable:
        """Every open position, or a failure that says why (never an empty list on failure)."""
        try:
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
    """The actor shell around OrderGateway: gathers the commands that arrive together into one batch."""

    def __init__(self, exchange: Any, *, fail_open: bool = False) -> None:
        super().__init__()
        self.gateway = OrderGateway(exchange, fail_open=fail_open, report=self._report)
        self.portfolio: pykka.ActorRef[Any] | None = None
        self.persistence: pykka.ActorRef[Any] | None = None
        self._orders: list[OrderIntent] = []
        self._sync_requested = False
        self._flush_scheduled = False

    def on_start(self) -> None:
        mode = "fail-open" if self.gateway.fail_open else "fail-closed"
        logger.info("exchange gateway started; open-order check is {}", mode)

    def on_receive(self, message: Any) -> Any:
        match message:
            case PlaceOrder():
                self._orders.append(message.intent)
                self._schedule_flush()
            case SyncPositions():
                self._sync_requested = True
                self._schedule_flush()
            case Flush():
                self._flush()
            case CancelOrder():
                return self.gateway.cancel(message)
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
        orders, self._orders = self._orders, []
        if orders:
            try:
                self.gateway.place_all(orders)
            except Exception:  # a bug here must not kill the only gateway; the intents stay unresolved
                logger.exception("gateway: placing {} orders failed unexpectedly", len(orders))
        if self._sync_requested:
            self._sync_requested = False
            result = self.gateway.fetch_positions()
            if isinstance(result, PositionsUnavailable):
                logger.warning("positions unavailable: {}", result.detail)
            self._tell(self.portfolio, result)

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
