"""Kraken's private answers parsed once, at the edge, into typed reports; anything unreadable is refused.

The gateway decides only on these reports. An answer is evidence only when it is readable and
consistent: a missing list, a wrong type, a non-finite or negative number, an unknown side or a
`result` other than `success` raises `UnreadableAnswer` for the whole answer — never a partial or
empty list that could be read as "nothing there".

Shapes (Kraken Futures REST v3, and the history v2 API; ccxt's recorded traffic in
shared/peers/ccxt-krakenfutures shows the same fields):
- openorders: `openOrders[]` with order_id, cliOrdId, symbol, side, orderType, limitPrice,
  unfilledSize, filledSize, reduceOnly, receivedTime.
- fills: `fills[]` with fill_id, order_id, cliOrdId, symbol, side, size, price, fillTime (the
  newest 100, older pages by `lastFillTime`).
- orders/status: `orders[]` of {order: {orderId, cliOrdId, symbol, side, quantity, filled, ...},
  status, updateReason, error}; status values ENTERED_BOOK, FULLY_EXECUTED, REJECTED, CANCELLED,
  TRIGGER_PLACED, TRIGGER_ACTIVATION_FAILURE (upper case, unmapped by ccxt). Closed orders show
  for 5 s only.
- history/v2/orders: `elements[]` of {uid, timestamp (epoch ms), event: {NAME: {order: {uid,
  clientId, tradeable, direction, quantity, filled, ...}, reason}}}, with `continuationToken`.
- history/v2/executions: `{accountUid, elements[], continuationToken?, len}`, element {uid, timestamp,
  event: {Execution: {execution: {uid, takerOrder, makerOrder, timestamp, quantity, price, ...}}}}, each order
  {uid, accountUid, clientId, tradeable, direction (Buy/Sell), ...} (get-execution-events docs); the account's
  side is the order whose accountUid is the answer's.
- openpositions: `openPositions[]` with symbol, side (long/short), size, price.
- batchorder: `batchStatus[]`, one element per instruction: {status, order_tag, order_id, cliOrdId,
  dateTimeReceived, orderEvents} for a send (matched to its instruction by order_tag).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from messages import Position, PositionSide, Side

SymbolOf = Callable[[str], str | None]  # Kraken market id (PF_XBTUSD) -> unified symbol, None if unknown


class UnreadableAnswer(ValueError):
    """An answer that is not evidence: the call counts as failed."""


class ExchangeStatus(StrEnum):
    """What an order is on the exchange, as the typed reports say it."""

    OPEN = "OPEN"  # resting (or untriggered), possibly partly filled
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"  # by anyone: user, engine (IoC remainder), dead man's switch
    REJECTED = "REJECTED"  # never placed

    @property
    def is_closed(self) -> bool:
        """True when the order can no longer trade."""
        return self is not ExchangeStatus.OPEN


# Kraken's orders/status values (get-order-status docs), read case-insensitively.
_STATUS_VALUES: dict[str, ExchangeStatus] = {
    "entered_book": ExchangeStatus.OPEN,
    "trigger_placed": ExchangeStatus.OPEN,
    "untouched": ExchangeStatus.OPEN,
    "partiallyfilled": ExchangeStatus.OPEN,
    "partially_filled": ExchangeStatus.OPEN,
    "placed": ExchangeStatus.OPEN,
    "fully_executed": ExchangeStatus.FILLED,
    "filled": ExchangeStatus.FILLED,
    "cancelled": ExchangeStatus.CANCELLED,
    "canceled": ExchangeStatus.CANCELLED,
    "rejected": ExchangeStatus.REJECTED,
    "trigger_activation_failure": ExchangeStatus.CANCELLED,
}

# Order-history event names (history v2 docs): what each says about the order.
HISTORY_EVENTS: dict[str, ExchangeStatus | None] = {
    "orderplaced": ExchangeStatus.OPEN,
    "orderupdated": None,  # a fill or an edit: the snapshot's filled quantity tells
    "orderedited": None,
    "ordercancelled": ExchangeStatus.CANCELLED,
    "orderrejected": ExchangeStatus.REJECTED,
    "orderexpired": ExchangeStatus.CANCELLED,
    "ordernotfound": None,
    # /history/v2/triggers: a stop or take-profit before it fires (once fired it goes on as an order, in the order
    # history); one cancelled untriggered (by us, by hand, by the dead man's switch) is only here
    "ordertriggerplaced": ExchangeStatus.OPEN,
    "ordertriggerupdated": None,  # an edit (size, trigger price)
    "ordertriggeractivated": None,  # fired: what follows is in the order history
    "ordertriggercancelled": ExchangeStatus.CANCELLED,
    "ordertriggerrejected": ExchangeStatus.REJECTED,
}

# sendorder / batchorder `status` values that mean the order was not placed (send-order docs).
NOT_PLACED_STATUSES = frozenset(
    {
        "invalidordertype", "invalidside", "invalidsize", "invalidprice", "insufficientavailablefunds",
        "selffill", "toomanysmallorders", "maxpositionviolation", "marketsuspended", "marketinactive",
        "clientorderidtoolong", "outsidepricecollar", "postwouldexecute", "iocwouldnotexecute",
        "wouldnotreduceposition", "invalidargument",
        "wouldprocessafterspecifiedtime",  # processBefore passed before the engine got to it (send-order docs)
        "rejected", "orderrejected",
    }
)
DUPLICATE_ID_STATUS = "clientorderidalreadyexist"


def decimal(value: Any, what: str, *, allow_negative: bool = False) -> Decimal:
    """A finite number (not a bool), non-negative unless allowed; UnreadableAnswer otherwise."""
    if value is None or isinstance(value, bool) or isinstance(value, (list, dict)):
        raise UnreadableAnswer(f"{what} is not a number: {value!r}"[:200])
    try:
        result = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise UnreadableAnswer(f"{what} is not a number: {value!r}"[:200]) from None
    if not result.is_finite() or (result < 0 and not allow_negative):
        raise UnreadableAnswer(f"{what} is not a finite, non-negative number: {value!r}"[:200])
    return result


def optional_decimal(value: Any, what: str) -> Decimal | None:
    """Like decimal(), but None and "" stay None."""
    if value is None or value == "":
        return None
    return decimal(value, what)


def time_ms(value: Any, what: str) -> int:
    """Epoch ms from an ISO-8601 text or an epoch-ms number/text."""
    if isinstance(value, bool) or value is None:
        raise UnreadableAnswer(f"{what} is not a time: {value!r}")
    if isinstance(value, (int, float)) or (isinstance(value, str) and value.strip().isdigit()):
        number = decimal(value, what)
        return int(number)
    if isinstance(value, str):
        try:
            return int(datetime.fromisoformat(value.strip().replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            pass
    raise UnreadableAnswer(f"{what} is not a time: {value!r}"[:200])


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UnreadableAnswer(f"{what} is missing or not text: {value!r}"[:200])
    return value.strip()


def _optional_text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _side(value: Any, what: str) -> Side:
    text = str(value).strip().lower() if isinstance(value, str) else ""
    if text in ("buy", "sell"):
        return Side(text)
    raise UnreadableAnswer(f"{what} has an unknown side: {value!r}"[:200])


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() == "true"


def answer_list(answer: Any, key: str, endpoint: str) -> list[Any]:
    """The list under `key` of a successful answer; UnreadableAnswer for anything else."""
    if not isinstance(answer, Mapping):
        raise UnreadableAnswer(f"{endpoint}: the answer is not a JSON object: {str(answer)[:200]}")
    if str(answer.get("result", "")).lower() != "success":
        raise UnreadableAnswer(f"{endpoint}: result is {answer.get('result')!r}, not success: {str(answer)[:200]}")
    items = answer.get(key)
    if not isinstance(items, list):
        raise UnreadableAnswer(f"{endpoint}: the answer has no {key} list: {str(answer)[:200]}")
    return items


def _item(item: Any, endpoint: str) -> Mapping[str, Any]:
    if not isinstance(item, Mapping):
        raise UnreadableAnswer(f"{endpoint}: an element is not an object: {str(item)[:200]}")
    return item


def _symbol(raw: Any, symbol_of: SymbolOf, what: str) -> str:
    market_id = _text(raw, what)
    return symbol_of(market_id) or market_id.upper()


@dataclass(frozen=True)
class OpenOrderReport:
    """An order resting on the exchange (openorders)."""

    exchange_order_id: str
    client_order_id: str | None
    symbol: str
    side: Side
    unfilled: Decimal
    filled: Decimal
    price: Decimal | None
    reduce_only: bool
    order_type: str
    received_ms: int

    @property
    def amount(self) -> Decimal:
        """The order's size: what is filled plus what rests."""
        return self.filled + self.unfilled


@dataclass(frozen=True)
class FillReport:
    """One execution (fills)."""

    fill_id: str
    exchange_order_id: str
    client_order_id: str | None
    symbol: str
    side: Side
    amount: Decimal
    price: Decimal
    time_ms: int


@dataclass(frozen=True)
class OrderStatusReport:
    """What orders/status says of one order (open, or closed within the last 5 s)."""

    exchange_order_id: str
    client_order_id: str | None
    symbol: str
    side: Side
    status: ExchangeStatus
    filled: Decimal
    reason: str | None


@dataclass(frozen=True)
class HistoryReport:
    """One order-history event."""

    uid: str
    time_ms: int
    name: str  # Kraken's event name, e.g. OrderPlaced
    status: ExchangeStatus | None  # what the event says; None: look at `filled`
    exchange_order_id: str
    client_order_id: str | None
    symbol: str
    side: Side | None
    quantity: Decimal | None
    filled: Decimal
    reason: str | None


@dataclass(frozen=True)
class SendReport:
    """Kraken's answer to one order request (sendStatus, or one batchStatus element)."""

    status: str  # Kraken's status text, e.g. placed, insufficientAvailableFunds
    exchange_order_id: str | None
    client_order_id: str | None
    order_tag: str | None
    executions: tuple[tuple[str, Decimal, Decimal], ...]  # (execution id, amount, price)
    cancelled: bool  # the engine cancelled what was left (an IoC/market remainder)

    @property
    def placed(self) -> bool:
        """True when the exchange took the order."""
        return self.status.lower() in ("placed", "edited", "filled")

    @property
    def not_placed(self) -> bool:
        """True when the status proves the order was not placed."""
        return self.status.lower() in NOT_PLACED_STATUSES

    @property
    def duplicate_id(self) -> bool:
        """True when Kraken refused the client order id as used by an open order."""
        return self.status.lower() == DUPLICATE_ID_STATUS

    @property
    def filled(self) -> Decimal:
        """The amount executed at once."""
        return sum((amount for _, amount, _ in self.executions), Decimal(0))


def parse_open_orders(answer: Any, symbol_of: SymbolOf) -> list[OpenOrderReport]:
    """openorders -> every resting order."""
    reports = []
    for raw in answer_list(answer, "openOrders", "openorders"):
        item = _item(raw, "openorders")
        reports.append(
            OpenOrderReport(
                exchange_order_id=_text(item.get("order_id"), "openorders: order_id"),
                client_order_id=_optional_text(item.get("cliOrdId")),
                symbol=_symbol(item.get("symbol"), symbol_of, "openorders: symbol"),
                side=_side(item.get("side"), "openorders"),
                unfilled=decimal(item.get("unfilledSize"), "openorders: unfilledSize"),
                filled=decimal(item.get("filledSize", 0) or 0, "openorders: filledSize"),
                price=optional_decimal(item.get("limitPrice"), "openorders: limitPrice"),
                reduce_only=_flag(item.get("reduceOnly", False)),
                order_type=str(item.get("orderType") or ""),
                received_ms=time_ms(item.get("receivedTime"), "openorders: receivedTime"),
            )
        )
    return reports


def parse_fills(answer: Any, symbol_of: SymbolOf) -> list[FillReport]:
    """fills -> executions, newest first as Kraken sends them."""
    reports = []
    for raw in answer_list(answer, "fills", "fills"):
        item = _item(raw, "fills")
        amount = decimal(item.get("size"), "fills: size")
        price = decimal(item.get("price"), "fills: price")
        if amount <= 0 or price <= 0:
            raise UnreadableAnswer(f"fills: a fill of size {amount} at {price}: {str(item)[:200]}")
        reports.append(
            FillReport(
                fill_id=_text(item.get("fill_id"), "fills: fill_id"),
                exchange_order_id=_text(item.get("order_id"), "fills: order_id"),
                client_order_id=_optional_text(item.get("cliOrdId")),
                symbol=_symbol(item.get("symbol"), symbol_of, "fills: symbol"),
                side=_side(item.get("side"), "fills"),
                amount=amount,
                price=price,
                time_ms=time_ms(item.get("fillTime"), "fills: fillTime"),
            )
        )
    return reports


def parse_executions(answer: Any, symbol_of: SymbolOf) -> tuple[list[FillReport], str | None]:
    """history/v2/executions -> one FillReport per execution of the account (answer's order), and the token.

    Kraken's execution events (https://docs.kraken.com/api/docs/futures-api/history/get-execution-events) carry
    both orders of a trade, `takerOrder` and `makerOrder`, each with its `accountUid`; ours is the one whose
    accountUid is the answer's `accountUid` (exactly one: Kraken refuses self-fills, `selfFill`). The fill's id
    is the execution's `uid`. Kraken does not document whether that uid equals the `fill_id` of the fills
    endpoint for the same trade, so the gateway never reads one fill from both sources (PrivateApi.fills_since
    reads from the execution history only the milliseconds the fills endpoint cannot page through). Event names
    other than Execution are skipped; an Execution that is not fully readable makes the whole page unreadable.
    """
    if not isinstance(answer, Mapping) or not isinstance(answer.get("elements"), list):
        raise UnreadableAnswer(f"executions: the answer has no elements list: {str(answer)[:200]}")
    account = _text(answer.get("accountUid"), "executions: accountUid")
    reports = []
    for raw in answer["elements"]:
        item = _item(raw, "executions")
        event = _item(item.get("event"), "executions: event")
        if len(event) != 1:
            raise UnreadableAnswer(f"executions: an event with {len(event)} names: {str(item)[:200]}")
        name, payload_raw = next(iter(event.items()))
        if str(name).strip().lower() != "execution":
            continue
        payload = _item(payload_raw, f"executions: {name}")
        execution = _item(payload.get("execution"), "executions: execution")
        sides = []
        for key in ("takerOrder", "makerOrder"):
            order_raw = execution.get(key)
            if order_raw is None:
                continue
            order = _item(order_raw, f"executions: {key}")
            if _optional_text(order.get("accountUid")) == account:
                sides.append(order)
        if len(sides) != 1:
            raise UnreadableAnswer(f"executions: {len(sides)} orders of account {account} in one execution: "
                                   f"{str(item)[:200]}")
        order = sides[0]
        amount = decimal(execution.get("quantity"), "executions: quantity")
        price = decimal(execution.get("price"), "executions: price")
        if amount <= 0 or price <= 0:
            raise UnreadableAnswer(f"executions: an execution of {amount} at {price}: {str(item)[:200]}")
        reports.append(
            FillReport(
                fill_id=_text(execution.get("uid"), "executions: execution uid"),
                exchange_order_id=_text(order.get("uid"), "executions: order uid"),
                client_order_id=_optional_text(order.get("clientId")) or _optional_text(order.get("cliOrdId")),
                symbol=_symbol(order.get("tradeable"), symbol_of, "executions: tradeable"),
                side=_side(order.get("direction"), "executions: direction"),
                amount=amount,
                price=price,
                time_ms=time_ms(execution.get("timestamp", item.get("timestamp")), "executions: timestamp"),
            )
        )
    token = answer.get("continuationToken")
    return reports, (str(token) if token not in (None, "") else None)


def parse_order_status(answer: Any, symbol_of: SymbolOf) -> list[OrderStatusReport]:
    """orders/status -> one report per order; statuses read case-insensitively, unknown ones refused."""
    reports = []
    for raw in answer_list(answer, "orders", "orders/status"):
        item = _item(raw, "orders/status")
        order = _item(item.get("order"), "orders/status: order")
        status_text = str(item.get("status") or "").strip().lower()
        status = _STATUS_VALUES.get(status_text)
        if status is None:
            raise UnreadableAnswer(f"orders/status: unknown status {item.get('status')!r}")
        reports.append(
            OrderStatusReport(
                exchange_order_id=_text(order.get("orderId"), "orders/status: orderId"),
                client_order_id=_optional_text(order.get("cliOrdId")),
                symbol=_symbol(order.get("symbol"), symbol_of, "orders/status: symbol"),
                side=_side(order.get("side"), "orders/status"),
                status=status,
                filled=decimal(order.get("filled", 0) or 0, "orders/status: filled"),
                reason=_optional_text(item.get("error")) or _optional_text(item.get("updateReason")),
            )
        )
    return reports


def parse_history(answer: Any, symbol_of: SymbolOf) -> tuple[list[HistoryReport], str | None]:
    """history/v2/orders (or /triggers) -> events (in the answer's order) and the continuation token, if any."""
    if not isinstance(answer, Mapping) or not isinstance(answer.get("elements"), list):
        raise UnreadableAnswer(f"history: the answer has no elements list: {str(answer)[:200]}")
    reports = []
    for raw in answer["elements"]:
        item = _item(raw, "history")
        event = _item(item.get("event"), "history: event")
        if len(event) != 1:
            raise UnreadableAnswer(f"history: an event with {len(event)} names: {str(item)[:200]}")
        name, payload_raw = next(iter(event.items()))
        payload = _item(payload_raw, f"history: {name}")
        key = str(name).strip().lower()
        order_raw = payload.get("order")
        if order_raw is None:
            order_raw = payload.get("newOrder")
        if not order_raw:
            if key in HISTORY_EVENTS:  # an order event without its order: the page is damaged, not evidence
                raise UnreadableAnswer(f"history: a {name} event without its order: {str(item)[:200]}")
            continue  # another kind of event (e.g. a trigger's) says nothing of our orders
        order = _item(order_raw, f"history: {name} order")
        direction = str(order.get("direction") or "").strip().lower()
        reports.append(
            HistoryReport(
                uid=_text(item.get("uid"), "history: uid"),
                time_ms=time_ms(item.get("timestamp"), "history: timestamp"),
                name=str(name),
                status=HISTORY_EVENTS.get(key),
                exchange_order_id=_text(order.get("uid"), "history: order uid"),
                client_order_id=_optional_text(order.get("clientId")) or _optional_text(order.get("cliOrdId")),
                symbol=_symbol(order.get("tradeable"), symbol_of, "history: tradeable"),
                side=Side(direction) if direction in ("buy", "sell") else None,
                quantity=optional_decimal(order.get("quantity"), "history: quantity"),
                filled=decimal(order.get("filled", 0) or 0, "history: filled"),
                reason=_optional_text(payload.get("reason")),
            )
        )
    token = answer.get("continuationToken")
    return reports, (str(token) if token not in (None, "") else None)


def parse_positions(answer: Any, symbol_of: SymbolOf) -> list[Position]:
    """openpositions -> open positions (a size of 0 is flat)."""
    positions = []
    for raw in answer_list(answer, "openPositions", "openpositions"):
        item = _item(raw, "openpositions")
        side = str(item.get("side") or "").strip().lower()
        if side not in ("long", "short"):
            raise UnreadableAnswer(f"openpositions: unknown side {item.get('side')!r}")
        size = decimal(item.get("size"), "openpositions: size")
        positions.append(
            Position(
                symbol=_symbol(item.get("symbol"), symbol_of, "openpositions: symbol"),
                side=PositionSide(side) if size > 0 else PositionSide.FLAT,
                contracts=size,
                entry_price=optional_decimal(item.get("price"), "openpositions: price"),
                unrealized_pnl=_optional_signed(item.get("unrealizedPnl"), "openpositions: unrealizedPnl"),
            )
        )
    return [p for p in positions if p.is_open]


def _optional_signed(value: Any, what: str) -> Decimal | None:
    if value is None or value == "":
        return None
    return decimal(value, what, allow_negative=True)


def parse_send_status(status: Any, endpoint: str) -> SendReport:
    """One sendStatus (sendorder) or batchStatus element (batchorder)."""
    item = _item(status, endpoint)
    text = item.get("status")
    if not isinstance(text, str) or not text:
        raise UnreadableAnswer(f"{endpoint}: no status in {str(item)[:200]}")
    executions = []
    cancelled = False
    events = item.get("orderEvents") or []
    if not isinstance(events, list):
        raise UnreadableAnswer(f"{endpoint}: orderEvents is not a list: {str(item)[:200]}")
    for raw in events:
        event = _item(raw, f"{endpoint}: orderEvents")
        kind = str(event.get("type") or "").upper()
        if kind == "EXECUTION":
            executions.append((
                _text(event.get("executionId"), f"{endpoint}: executionId"),
                decimal(event.get("amount"), f"{endpoint}: execution amount"),
                decimal(event.get("price"), f"{endpoint}: execution price"),
            ))
        elif kind in ("CANCEL", "REJECT"):
            cancelled = kind == "CANCEL"
    tag = item.get("order_tag")
    return SendReport(
        status=text,
        exchange_order_id=_optional_text(item.get("order_id")),
        client_order_id=_optional_text(item.get("cliOrdId")),
        order_tag=str(tag) if tag is not None else None,
        executions=tuple(executions),
        cancelled=cancelled,
    )


def parse_cancel_status(answer: Any) -> tuple[str, Decimal | None]:
    """cancelorder -> (status, the order's filled amount at the cancel if the answer shows it)."""
    if not isinstance(answer, Mapping):
        raise UnreadableAnswer(f"cancelorder: the answer is not an object: {str(answer)[:200]}")
    item = answer.get("cancelStatus", answer)
    item = _item(item, "cancelorder")
    status = item.get("status")
    if not isinstance(status, str) or not status:
        raise UnreadableAnswer(f"cancelorder: no status in {str(item)[:200]}")
    filled = None
    for raw in item.get("orderEvents") or []:
        event = _item(raw, "cancelorder: orderEvents")
        order = event.get("order")
        if isinstance(order, Mapping) and order.get("filled") is not None:
            filled = decimal(order.get("filled"), "cancelorder: filled")
    return status, filled


def parse_edit_status(answer: Any) -> str:
    """editorder -> its status ("edited", or Kraken's reason it was not: "orderForEditNotFound", ...)."""
    if not isinstance(answer, Mapping):
        raise UnreadableAnswer(f"editorder: the answer is not an object: {str(answer)[:200]}")
    item = _item(answer.get("editStatus", answer), "editorder")
    status = item.get("status")
    if not isinstance(status, str) or not status:
        raise UnreadableAnswer(f"editorder: no status in {str(item)[:200]}")
    return status


def parse_batch_status(answer: Any, expected: Sequence[tuple[str, str | None]]) -> list[SendReport]:
    """batchorder -> one SendReport per send instruction, in the order of `expected` ((order_tag, cliOrdId) each).

    Kraken answers `batchStatus[]`, one element per instruction, each naming the `order_tag` it answers (and
    the `cliOrdId` when the order has one) (batch-order docs). Each element is matched by its order_tag (by
    its cliOrdId when it has no tag); an element that matches nothing or matches twice, one whose cliOrdId
    contradicts its tag, a missing element or a count mismatch makes the whole answer unreadable: the
    caller then treats every order of the batch as UNKNOWN, never as a guess.
    """
    items = answer_list(answer, "batchStatus", "batchorder")
    if len(items) != len(expected):
        raise UnreadableAnswer(f"batchorder: {len(items)} batchStatus elements for {len(expected)} instructions: "
                               f"{str(items)[:200]}")
    by_tag = {tag: index for index, (tag, _) in enumerate(expected)}
    by_cid = {cid: index for index, (_, cid) in enumerate(expected) if cid is not None}
    if len(by_tag) != len(expected):
        raise ValueError("batchorder: order tags must be unique within a batch")
    found: list[SendReport | None] = [None] * len(expected)
    for raw in items:
        report = parse_send_status(raw, "batchorder")
        if report.order_tag is not None:
            index = by_tag.get(report.order_tag)
        else:
            index = by_cid.get(report.client_order_id) if report.client_order_id is not None else None
        if index is None:
            raise UnreadableAnswer(f"batchorder: an element answers no instruction of the batch (order_tag "
                                   f"{report.order_tag!r}, cliOrdId {report.client_order_id!r}): {str(raw)[:200]}")
        if found[index] is not None:
            raise UnreadableAnswer(f"batchorder: two elements answer instruction {expected[index][0]!r}")
        wanted_cid = expected[index][1]
        if report.client_order_id is not None and report.client_order_id != wanted_cid:
            raise UnreadableAnswer(f"batchorder: element for order_tag {expected[index][0]!r} names cliOrdId "
                                   f"{report.client_order_id!r}, the instruction carried {wanted_cid!r}")
        found[index] = report
    missing = [expected[i][0] for i, report in enumerate(found) if report is None]
    if missing:  # unreachable with equal counts and no duplicates, kept as a guard
        raise UnreadableAnswer(f"batchorder: no element for order_tag(s) {', '.join(missing)}")
    return [report for report in found if report is not None]


@dataclass(frozen=True)
class DeadMansSwitchStatus:
    """Kraken's answer to cancelallordersafter: its clock, and when it cancels every order (None: disarmed)."""

    current_ms: int
    trigger_ms: int | None

    @property
    def armed(self) -> bool:
        """True when a countdown runs."""
        return self.trigger_ms is not None


def parse_dead_mans_switch(answer: Any, timeout_s: int) -> DeadMansSwitchStatus:
    """cancelallordersafter -> its status: `{result: success, status: {currentTime, triggerTime}}`, triggerTime "0"
    when disarmed (dead-mans-switch docs; ccxt's krakenfutures.cancel_all_orders_after). An answer that does not
    match the request (armed after a timeout of 0, disarmed or already due after a positive one) is unreadable."""
    if not isinstance(answer, Mapping):
        raise UnreadableAnswer(f"cancelallordersafter: the answer is not a JSON object: {str(answer)[:200]}")
    if str(answer.get("result", "")).lower() != "success":
        raise UnreadableAnswer(f"cancelallordersafter: result is {answer.get('result')!r}, not success: "
                               f"{str(answer)[:200]}")
    status = answer.get("status")
    if not isinstance(status, Mapping):
        raise UnreadableAnswer(f"cancelallordersafter: the answer has no status object: {str(answer)[:200]}")
    current = time_ms(status.get("currentTime"), "cancelallordersafter: currentTime")
    trigger = time_ms(status.get("triggerTime"), "cancelallordersafter: triggerTime") or None  # "0": disarmed
    if timeout_s > 0 and (trigger is None or trigger <= current):
        raise UnreadableAnswer(f"cancelallordersafter: asked for a {timeout_s} s countdown, the answer shows "
                               f"{'none' if trigger is None else 'one already due'}: {str(answer)[:200]}")
    if timeout_s == 0 and trigger is not None:
        raise UnreadableAnswer(f"cancelallordersafter: asked to disarm, the answer still shows a countdown: "
                               f"{str(answer)[:200]}")
    return DeadMansSwitchStatus(current_ms=current, trigger_ms=trigger)


# --- the account log (history/v3/account-log) and the accounts endpoint -------------------------------------------
#
# get-account-log (https://docs.kraken.com/api-reference/account-history/get-account-log): `{accountUid, logs[]}`,
# paged by time (`since`, `before`) or by entry id (`from`, `to`), `sort` asc|desc, `count` (default 500). Each entry:
# {id (integer), date (ISO-8601), asset, info, booking_uid, margin_account, old_balance, new_balance,
# contract, execution, fee, funding_rate, realized_funding, realized_pnl, trade_price, mark_price, ...}
# (ccxt's recorded answer in shared/peers/ccxt-krakenfutures, fetchLedger, shows the same fields). What we read:
# - info "futures trade" with a `fee` and an `execution`: the fee of that execution (the cash leg, `asset` the
#   currency it is paid in; a positive fee is a cost). The position leg (`asset` == the contract) carries fee null.
# - info "funding rate change" with `realized_funding`: a funding payment of `contract`, in `asset`
#   (positive: received; the recorded answer's balance rises by it).
# Every other entry (transfers, conversions, position legs) is not ours to read. An entry of those two kinds that
# cannot be read is skipped with its reason (AccountLogPage.skipped), never guessed.

ACCOUNT_LOG_TRADE = "futures trade"
ACCOUNT_LOG_FUNDING = "funding rate change"


@dataclass(frozen=True)
class TradeFeeReport:
    """The fee of one execution, from its account-log entry."""

    entry_id: int
    execution: str  # the execution uid: our fill's fill_id
    symbol: str
    fee: Decimal  # paid (positive: a cost)
    currency: str
    time_ms: int


@dataclass(frozen=True)
class FundingReport:
    """One funding payment, from its account-log entry."""

    entry_id: int
    symbol: str
    amount: Decimal  # received (+) or paid (-)
    currency: str
    rate: Decimal | None
    time_ms: int


@dataclass(frozen=True)
class AccountLogPage:
    """One page of the account log: what we read, what we skipped and why, and the entry ids the page spans."""

    fees: list[TradeFeeReport]
    funding: list[FundingReport]
    skipped: list[str]
    ids: list[int]  # every readable entry id of the page (of any kind), for paging
    entries: int = 0  # how many entries the page held (readable or not)


def _entry_id(value: Any) -> int:
    if isinstance(value, bool) or value is None:
        raise UnreadableAnswer(f"id is not an integer: {value!r}")
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise UnreadableAnswer(f"id is not an integer: {value!r}"[:200]) from None
    if not number.is_finite() or number != number.to_integral_value() or number < 0:
        raise UnreadableAnswer(f"id is not an integer: {value!r}"[:200])
    return int(number)


def parse_account_log(answer: Any, symbol_of: SymbolOf) -> AccountLogPage:
    """A page of history/v3/account-log: trade fees and funding payments; an unreadable entry is skipped with its
    reason. An answer without a `logs` list is UnreadableAnswer (a page that cannot be read is not "nothing")."""
    if not isinstance(answer, Mapping):
        raise UnreadableAnswer(f"account-log: the answer is not a JSON object: {str(answer)[:200]}")
    if "result" in answer and str(answer.get("result", "")).lower() != "success":
        raise UnreadableAnswer(f"account-log: result is {answer.get('result')!r}: {str(answer)[:200]}")
    logs = answer.get("logs")
    if not isinstance(logs, list):
        raise UnreadableAnswer(f"account-log: the answer has no logs list: {str(answer)[:200]}")
    fees: list[TradeFeeReport] = []
    funding: list[FundingReport] = []
    skipped: list[str] = []
    ids: list[int] = []
    for raw in logs:
        if not isinstance(raw, Mapping):
            skipped.append(f"an entry is not an object: {str(raw)[:120]}")
            continue
        try:
            entry_id = _entry_id(raw.get("id"))
        except UnreadableAnswer as exc:
            skipped.append(f"an entry without a readable id ({exc}): {str(dict(raw))[:160]}")
            continue
        ids.append(entry_id)
        info = str(raw.get("info") or "").strip().lower()
        try:
            if info == ACCOUNT_LOG_TRADE and raw.get("fee") is not None:
                fees.append(TradeFeeReport(
                    entry_id=entry_id,
                    execution=_text(raw.get("execution"), "execution"),
                    symbol=_symbol(raw.get("contract"), symbol_of, "contract"),
                    fee=decimal(raw.get("fee"), "fee", allow_negative=True),
                    currency=_text(raw.get("asset"), "asset").upper(),
                    time_ms=time_ms(raw.get("date"), "date"),
                ))
            elif info == ACCOUNT_LOG_FUNDING and raw.get("realized_funding") is not None:
                rate = raw.get("funding_rate")
                funding.append(FundingReport(
                    entry_id=entry_id,
                    symbol=_symbol(raw.get("contract"), symbol_of, "contract"),
                    amount=decimal(raw.get("realized_funding"), "realized_funding", allow_negative=True),
                    currency=_text(raw.get("asset"), "asset").upper(),
                    rate=None if rate is None else decimal(rate, "funding_rate", allow_negative=True),
                    time_ms=time_ms(raw.get("date"), "date"),
                ))
        except UnreadableAnswer as exc:
            skipped.append(f"entry {entry_id} ({info}): {exc}")
    return AccountLogPage(fees=fees, funding=funding, skipped=skipped, ids=ids, entries=len(logs))


@dataclass(frozen=True)
class MarginReport:
    """What the accounts endpoint says of the flex (multi-collateral) account's margin."""

    available: Decimal  # availableMargin: margin equity less the initial margin of positions and orders
    initial: Decimal | None
    portfolio_value: Decimal | None


def parse_accounts_margin(answer: Any) -> MarginReport:
    """accounts (get-accounts docs): `accounts.flex.availableMargin` (and initialMargin, portfolioValue);
    UnreadableAnswer when there is no flex account or its availableMargin is not a number."""
    if not isinstance(answer, Mapping):
        raise UnreadableAnswer(f"accounts: the answer is not a JSON object: {str(answer)[:200]}")
    if str(answer.get("result", "")).lower() != "success":
        raise UnreadableAnswer(f"accounts: result is {answer.get('result')!r}, not success: {str(answer)[:200]}")
    accounts = answer.get("accounts")
    flex = accounts.get("flex") if isinstance(accounts, Mapping) else None
    if not isinstance(flex, Mapping):
        raise UnreadableAnswer(f"accounts: no flex account in the answer: {str(answer)[:200]}")
    available = decimal(flex.get("availableMargin"), "accounts: flex.availableMargin", allow_negative=True)

    def optional(key: str) -> Decimal | None:
        value = flex.get(key)
        return None if value is None or value == "" else decimal(value, f"accounts: flex.{key}", allow_negative=True)

    return MarginReport(available=available, initial=optional("initialMargin"),
                        portfolio_value=optional("portfolioValue"))
