"""Order, fill and position records of the simulated account, and their Kraken JSON shapes."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from simulator.prices import fmt

ZERO = Decimal(0)

# Order states kept by the engine (Kraken's own status strings live in `Order.status`).
OPEN = "open"  # resting in the book
UNTRIGGERED = "untriggered"  # a stop / take-profit waiting for its trigger
FILLED = "filled"
CANCELLED = "cancelled"
REJECTED = "rejected"
WORKING_STATES = (OPEN, UNTRIGGERED)

ORDER_TYPES = ("lmt", "post", "mkt", "ioc", "stp", "take_profit", "trailing_stop")
TRIGGER_TYPES = ("stp", "take_profit", "trailing_stop")
TRIGGER_SIGNALS = {"last": "last", "mark": "mark", "index": "index", "spot": "index"}
TRAILING_UNITS = ("PERCENT", "QUOTE_CURRENCY")
# Kraken send-order: trailingStopMaxDeviation "Possible values: >= 0.1 and <= 50 ... Maximum value of 50%, minimum
# value of 0.1% for 'PERCENT'" (https://docs.kraken.com/api-reference/order-management/send-order).
TRAILING_MIN = Decimal("0.1")
TRAILING_MAX = Decimal("50")
# Undocumented: how many decimals a PERCENT deviation may have (OrderError
# TRAILING_STOP_PERCENT_DEVIATION_EXCEEDS_MAX_DECIMAL_PLACES exists). The harsher reading: one, the minimum's own.
TRAILING_PERCENT_PLACES = 1
# openorders `triggerSignal` values (get-open-orders: mark, last, spot); index is Kraken's spot price
OPEN_ORDER_SIGNALS = {"mark": "mark", "last": "last", "index": "spot"}
# orders/status `OrderError` enum (https://docs.kraken.com/api/docs/futures-api/trading/get-order-status)
DOCUMENTED_ORDER_ERRORS = frozenset({
    "MARKET_SUSPENDED", "MARKET_NOT_FOUND", "INVALID_PRICE", "INVALID_QUANTITY", "SMALL_ORDER_LIMIT_EXCEEDED",
    "INSUFFICIENT_MARGIN", "WOULD_CAUSE_LIQUIDATION", "CLIENT_ORDER_ID_IN_USE", "CLIENT_ORDER_ID_TOO_LONG",
    "MAX_POSITION_EXCEEDED", "PRICE_COLLAR", "PRICE_DISLOCATION", "EDIT_HAS_NO_EFFECT",
    "ORDER_FOR_CANCELLATION_NOT_FOUND", "ORDER_FOR_EDIT_NOT_FOUND", "ORDER_CANNOT_HAVE_TRIGGER_PRICE",
    "POST_WOULD_EXECUTE", "IOC_WOULD_NOT_EXECUTE", "WOULD_EXECUTE_SELF", "WOULD_NOT_REDUCE_POSITION",
    "REJECTED_AFTER_EXECUTION", "MARKET_IS_POST_ONLY", "ORDER_LIMIT_EXCEEDED", "FIXED_LEVERAGE_TOO_HIGH",
    "CANNOT_EDIT_TRIGGER_PRICE_OF_TRAILING_STOP", "CANNOT_EDIT_LIMIT_PRICE_OF_TRAILING_STOP",
    "TRAILING_STOP_ORDER_LIMIT_EXCEEDED", "TRAILING_STOP_PERCENT_DEVIATION_EXCEEDS_MAX_DECIMAL_PLACES",
    "TRAILING_STOP_QUOTE_DEVIATION_NOT_MULTIPLE_OF_TICK_SIZE", "TRAILING_STOP_MAX_DEVIATION_TOO_LARGE",
    "TRAILING_STOP_MAX_DEVIATION_TOO_SMALL", "INSUFFICIENT_HEADROOM_AROUND_CURRENT_PRICE_TO_EDIT_TRAILING_STOP",
    "NO_REFERENCE_PRICE_AVAILABLE_FOR_CALCULATING_TRAILING_STOP_TRIGGER_PRICE", "INSUFFICIENT_CLOSING_MARGIN",
})


# sendStatus status -> the OrderError enum that `orders/status` (`error`) and the history (`orderError`) carry
# (enum from https://docs.kraken.com/api/docs/futures-api/trading/get-order-status).
ORDER_ERRORS = {
    "marketSuspended": "MARKET_SUSPENDED",
    "invalidArgument": "MARKET_NOT_FOUND",
    "invalidPrice": "INVALID_PRICE",
    "invalidSize": "INVALID_QUANTITY",
    "insufficientAvailableFunds": "INSUFFICIENT_MARGIN",
    "clientOrderIdAlreadyExist": "CLIENT_ORDER_ID_IN_USE",
    "clientOrderIdTooLong": "CLIENT_ORDER_ID_TOO_LONG",
    "maxPositionViolation": "MAX_POSITION_EXCEEDED",
    "postWouldExecute": "POST_WOULD_EXECUTE",
    "iocWouldNotExecute": "IOC_WOULD_NOT_EXECUTE",
    "wouldNotReducePosition": "WOULD_NOT_REDUCE_POSITION",
}


def order_error(status: str | None, reason: str | None = None) -> str | None:
    """Kraken's OrderError for a rejected order: its reason when that is one of the enum's values (e.g.
    TRAILING_STOP_MAX_DEVIATION_TOO_LARGE behind the send status invalidPrice), else the one for its send status
    (None when the enum has no match)."""
    if reason and reason.upper() in DOCUMENTED_ORDER_ERRORS:
        return reason.upper()
    return ORDER_ERRORS.get(status or "")


def trailing_deviation(raw: object) -> Decimal | None:
    """A request's trailingStopMaxDeviation as a Decimal (None if absent or not a number)."""
    return parse_decimal(raw)


def trailing_argument_error(params: Mapping[str, Any]) -> str | None:
    """Kraken's error for a trailing_stop request lacking its trailing parameters, or None (also `invalidArgument`
    for a relative limit, `limitPriceOffsetValue` / `limitPriceOffsetUnit`, which the simulator does not model).

    send-order: trailingStopMaxDeviation and trailingStopDeviationUnit are each "Required if the order type is
    trailing_stop"; the unit is one of PERCENT, QUOTE_CURRENCY. A missing one is `requiredArgumentMissing`, a value
    that is not a number or not in the enum `invalidArgument` (the documented generic errors; which one Kraken picks
    is not documented).
    """
    if params.get("limitPriceOffsetValue") is not None or params.get("limitPriceOffsetUnit") is not None:
        return "invalidArgument"  # documented but not simulated: refused rather than placed as a stop-market
    if str(params.get("orderType", "")).strip().lower() != "trailing_stop":
        return None
    deviation, unit = params.get("trailingStopMaxDeviation"), params.get("trailingStopDeviationUnit")
    if deviation in (None, "") or unit in (None, ""):
        return "requiredArgumentMissing"
    if trailing_deviation(deviation) is None or str(unit).strip().upper() not in TRAILING_UNITS:
        return "invalidArgument"
    return None


@functools.lru_cache(maxsize=65_536)  # the same times are written again and again (fills, history pages)
def iso(ms: int) -> str:
    """Epoch milliseconds as Kraken's ISO-8601 UTC string with milliseconds."""
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_decimal(value: object) -> Decimal | None:
    """A finite Decimal from a request value, or None if it is not a number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        d = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    if not d.is_finite() or (d != 0 and not -20 <= d.adjusted() <= 15):
        return None
    return d


def whole_param(value: object, name: str) -> int | None:
    """A whole, non-negative query parameter (epoch ms, an entry id, a count); None if absent; ValueError naming
    the parameter otherwise."""
    if value is None or value == "":
        return None
    d = parse_decimal(value)
    if d is None or d < 0 or d != d.to_integral_value():
        raise ValueError(name)
    return int(d)


def dec_state(value: Decimal | None) -> str | None:
    """A Decimal as an exact string for the state file (round-trips, unlike `fmt`)."""
    return None if value is None else str(value)


def dec_load(value: object) -> Decimal | None:
    """A Decimal back from the state file; ValueError if it is not a finite number."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"expected a decimal string, got {value!r}")
    try:
        d = Decimal(value)
    except InvalidOperation as exc:
        raise ValueError(f"bad decimal {value!r}") from exc
    if not d.is_finite():
        raise ValueError(f"bad decimal {value!r}")
    return d


def dec_load_req(value: object) -> Decimal:
    """A required Decimal back from the state file."""
    d = dec_load(value)
    if d is None:
        raise ValueError("missing decimal")
    return d


def num(value: Decimal | None) -> float | None:
    """A Decimal as a JSON number (Kraken sends numbers in order events)."""
    return None if value is None else float(value)


def text(value: Decimal | None) -> str | None:
    """A Decimal as a plain string (Kraken sends strings in listings)."""
    return None if value is None else fmt(value)


@dataclass(eq=False)
class Order:
    """One order request the account ever sent, whatever became of it."""

    order_id: str
    cli_ord_id: str | None
    symbol: str | None
    side: str | None
    order_type: str | None
    size: Decimal | None
    limit_price: Decimal | None
    stop_price: Decimal | None
    trigger_signal: str | None
    reduce_only: bool
    received_ms: int
    source: str
    state: str = REJECTED
    status: str = "placed"
    filled: Decimal = ZERO
    last_update_ms: int = 0
    closed_ms: int | None = None
    triggered_ms: int | None = None
    reason: str | None = None
    order_tag: str | None = None
    collar_price: Decimal | None = None
    trailing_deviation: Decimal | None = None  # trailing_stop: trailingStopMaxDeviation
    trailing_unit: str | None = None  # trailing_stop: PERCENT or QUOTE_CURRENCY
    activation_failed: bool = False  # a trigger whose order was refused when it fired (TRIGGER_ACTIVATION_FAILURE)
    raw: dict[str, object] = field(default_factory=dict)

    @property
    def remaining(self) -> Decimal:
        """Unfilled quantity (zero for a closed order's leftover after cancel too)."""
        return (self.size or ZERO) - self.filled

    @property
    def is_trigger(self) -> bool:
        """True for stop, take-profit and trailing-stop orders."""
        return self.order_type in TRIGGER_TYPES

    @property
    def is_trailing(self) -> bool:
        """True for trailing-stop orders."""
        return self.order_type == "trailing_stop"

    @property
    def working(self) -> bool:
        """True while the order rests in the book or waits for its trigger."""
        return self.state in WORKING_STATES

    @property
    def sign(self) -> int:
        """+1 for buys, -1 for sells."""
        return 1 if self.side == "buy" else -1

    @property
    def trigger_side(self) -> str:
        """`above` or `below`: where the watched price must go to fire the trigger."""
        if self.order_type in ("stp", "trailing_stop"):
            return "above" if self.side == "buy" else "below"
        return "below" if self.side == "buy" else "above"

    @property
    def engine_type(self) -> str:
        """Kraken's type in order events: `lmt`, `post`, `ioc` (market orders run as IoC), ..."""
        if self.order_type == "mkt":
            return "ioc"
        if self.is_trigger and self.triggered_ms is not None:
            return "lmt" if self.limit_price is not None else "ioc"
        return self.order_type or ""

    @property
    def effective_limit(self) -> Decimal | None:
        """The order's limit: a market order's (or a fired stop without limit's) is its 1% protection price."""
        if self.order_type == "mkt" or (self.is_trigger and self.limit_price is None and self.triggered_ms is not None):
            return self.collar_price
        return self.limit_price

    # -- Kraken shapes ----------------------------------------------------------
    def event_json(self) -> dict[str, object]:
        """The order as it appears inside sendorder/editorder/cancel `orderEvents`."""
        return {
            "orderId": self.order_id,
            "cliOrdId": self.cli_ord_id,
            "type": self.engine_type,
            "symbol": self.symbol,
            "side": self.side,
            "quantity": num(self.remaining),
            "filled": num(self.filled),
            "limitPrice": num(self.effective_limit),
            "stopPrice": num(self.stop_price),
            "reduceOnly": self.reduce_only,
            "timestamp": iso(self.received_ms),
            "lastUpdateTimestamp": iso(self.last_update_ms or self.received_ms),
        }

    def trigger_event_json(self) -> dict[str, object]:
        """The untriggered order as `orderTrigger` inside order events (send-order's PlaceTriggerEvent,
        CancelTriggerEvent and RejectTriggerEvent: uid, clientId, type, symbol, side, quantity, limitPrice,
        triggerPrice, triggerSide, triggerSignal, reduceOnly, timestamp, lastUpdateTimestamp, startTime)."""
        return {
            "uid": self.order_id,
            "clientId": self.cli_ord_id,
            "type": "lmt" if self.limit_price is not None else "ioc",
            "symbol": self.symbol,
            "side": self.side,
            "quantity": num(self.remaining),
            "limitPrice": num(self.limit_price),
            "triggerPrice": num(self.stop_price),
            "triggerSide": f"trigger_{self.trigger_side}",
            "triggerSignal": f"{self.trigger_signal}_price".replace("index_", "spot_"),
            "reduceOnly": self.reduce_only,
            "timestamp": iso(self.received_ms),
            "lastUpdateTimestamp": iso(self.last_update_ms or self.received_ms),
            "startTime": None,
        }

    def open_order_json(self) -> dict[str, object]:
        """The order as `/openorders` lists it (get-open-orders: orderType `lmt`, `stop`, `take_profit`; stopPrice and
        triggerSignal (`mark`, `last`, `spot`) for trigger orders). An untriggered trailing stop is listed as
        `trailing_stop` with its current trigger price as stopPrice (undocumented: our choice)."""
        if self.is_trigger and self.state == UNTRIGGERED:
            order_type = {"stp": "stop", "take_profit": "take_profit"}.get(self.order_type or "", "trailing_stop")
        else:
            order_type = "lmt"
        out: dict[str, object] = {
            "order_id": self.order_id,
            "symbol": self.symbol,
            "side": self.side,
            "orderType": order_type,
            "limitPrice": text(self.limit_price),
            "unfilledSize": text(self.remaining),
            "receivedTime": iso(self.received_ms),
            "status": "untouched" if self.filled == 0 else "partiallyFilled",
            "filledSize": text(self.filled),
            "reduceOnly": self.reduce_only,
            "lastUpdateTime": iso(self.last_update_ms or self.received_ms),
        }
        if self.cli_ord_id is not None:
            out["cliOrdId"] = self.cli_ord_id
        if self.state == UNTRIGGERED:
            out["stopPrice"] = text(self.stop_price)
            out["triggerSignal"] = OPEN_ORDER_SIGNALS.get(self.trigger_signal or "last", "last")
            if self.limit_price is None:
                out.pop("limitPrice")
        return out

    def status_json(self) -> dict[str, object]:
        """The order as `/orders/status` reports it.

        get-order-status: `order` {type TRIGGER_ORDER|ORDER, orderId, cliOrdId, symbol, side, quantity, filled,
        limitPrice, reduceOnly, timestamp, lastUpdateTimestamp, priceTriggerOptions {triggerPrice, triggerSide,
        triggerSignal, triggerTime} (required, null for a plain order)}, `status`, `updateReason`, `error`.
        """
        order: dict[str, object] = {
            "type": "TRIGGER_ORDER" if self.state == UNTRIGGERED or self.activation_failed else "ORDER",
            "orderId": self.order_id,
            "cliOrdId": self.cli_ord_id,
            "symbol": self.symbol,
            "side": self.side,
            "quantity": num(self.remaining),
            "filled": num(self.filled),
            "limitPrice": num(self.effective_limit),
            "reduceOnly": self.reduce_only,
            "timestamp": iso(self.received_ms),
            "lastUpdateTimestamp": iso(self.last_update_ms or self.received_ms),
            "priceTriggerOptions": None,
        }
        if self.is_trigger:
            order["priceTriggerOptions"] = {
                "triggerPrice": num(self.stop_price),
                "triggerSide": f"TRIGGER_{self.trigger_side.upper()}",
                "triggerSignal": f"{(self.trigger_signal or 'last').upper()}_PRICE".replace("INDEX_", "SPOT_"),
                "triggerTime": iso(self.triggered_ms) if self.triggered_ms is not None else None,
            }
        # Documented enum: ENTERED_BOOK, FULLY_EXECUTED, REJECTED, CANCELLED, TRIGGER_PLACED,
        # TRIGGER_ACTIVATION_FAILURE. A partially filled open order is ENTERED_BOOK (updateReason PARTIAL_FILL); an
        # IoC / market order whose remainder was cancelled is CANCELLED with its `filled` quantity; a trigger whose
        # order was refused when it fired (e.g. reduce-only with no position) is TRIGGER_ACTIVATION_FAILURE.
        if self.state == OPEN:
            status = "ENTERED_BOOK"
        elif self.state == UNTRIGGERED:
            status = "TRIGGER_PLACED"
        elif self.state == FILLED:
            status = "FULLY_EXECUTED"
        elif self.state == CANCELLED:
            status = "CANCELLED"
        elif self.activation_failed:
            status = "TRIGGER_ACTIVATION_FAILURE"
        else:
            status = "REJECTED"
        return {
            "order": order,
            "status": status,
            "updateReason": self.reason.upper() if self.reason and self.state != REJECTED else None,
            "error": order_error(self.status, self.reason) if self.state == REJECTED else None,
        }

    def history_json(self, account_uid: str) -> dict[str, object]:
        """The order as `/history/v2/orders` events carry it. A triggered order's `timestamp` is its activation time
        (ccxt's recorded traffic: the order of trigger a0f221cd... placed at 1769618096759, activated at
        1769618102000, shows `timestamp` 1769618102000 in its OrderUpdated)."""
        types = {"lmt": "Limit", "post": "Post", "ioc": "IoC", "mkt": "IoC"}
        limit = self.effective_limit
        placed = self.triggered_ms if self.triggered_ms is not None else self.received_ms
        return {
            "uid": self.order_id,
            "accountUid": account_uid,
            "tradeable": self.symbol,
            "direction": "Buy" if self.side == "buy" else "Sell",
            "quantity": text(self.remaining),
            "filled": text(self.filled),
            "timestamp": str(placed),
            "limitPrice": text(limit) or "",
            "orderType": types.get(self.engine_type, "Limit"),
            "clientId": self.cli_ord_id or "",
            "reduceOnly": self.reduce_only,
            "lastUpdateTimestamp": str(self.last_update_ms or placed),
        }

    def history_trigger_json(self, account_uid: str, account_id: str) -> dict[str, object]:
        """The trigger order as `/history/v2/triggers` events carry it (get-trigger-events; a trailing stop also
        carries `trailingStopOptions` {maxDeviation, unit Percent|QuoteCurrency}; ccxt's recorded plain stops have
        none, so a plain stop carries none)."""
        signals = {"last": "LastPrice", "mark": "MarkPrice", "index": "SpotPrice"}
        out: dict[str, object] = {
            "uid": self.order_id,
            "accountId": account_id,
            "accountUid": account_uid,
            "tradeable": self.symbol,
            "direction": "Buy" if self.side == "buy" else "Sell",
            "quantity": text(self.remaining),
            "timestamp": str(self.received_ms),
            "limitPrice": text(self.limit_price) or "",
            "orderType": "Limit" if self.limit_price is not None else "IoC",
            "clientId": self.cli_ord_id or "",
            "reduceOnly": self.reduce_only,
            "triggerOptions": {
                "triggerPrice": text(self.stop_price),
                "triggerSignal": signals.get(self.trigger_signal or "last", "LastPrice"),
                "triggerSide": self.trigger_side.capitalize(),
            },
            "lastUpdateTimestamp": str(self.last_update_ms or self.received_ms),
        }
        if self.is_trailing:
            out["trailingStopOptions"] = {
                "maxDeviation": text(self.trailing_deviation),
                "unit": "Percent" if self.trailing_unit == "PERCENT" else "QuoteCurrency",
            }
        return out

    def to_state(self) -> dict[str, object]:
        """Every field, JSON-able and exact, for the state file."""
        return {
            "order_id": self.order_id,
            "cli_ord_id": self.cli_ord_id,
            "symbol": self.symbol,
            "side": self.side,
            "order_type": self.order_type,
            "size": dec_state(self.size),
            "limit_price": dec_state(self.limit_price),
            "stop_price": dec_state(self.stop_price),
            "trigger_signal": self.trigger_signal,
            "reduce_only": self.reduce_only,
            "received_ms": self.received_ms,
            "source": self.source,
            "state": self.state,
            "status": self.status,
            "filled": dec_state(self.filled),
            "last_update_ms": self.last_update_ms,
            "closed_ms": self.closed_ms,
            "triggered_ms": self.triggered_ms,
            "reason": self.reason,
            "order_tag": self.order_tag,
            "collar_price": dec_state(self.collar_price),
            "trailing_deviation": dec_state(self.trailing_deviation),
            "trailing_unit": self.trailing_unit,
            "activation_failed": self.activation_failed,
            "raw": self.raw,
        }

    @classmethod
    def from_state(cls, data: Mapping[str, Any]) -> Order:
        """An order back from `to_state`; KeyError/ValueError on a malformed entry."""
        raw = data["raw"]
        if not isinstance(raw, dict):
            raise TypeError("order raw parameters must be an object")
        return cls(
            order_id=str(data["order_id"]),
            cli_ord_id=data["cli_ord_id"],
            symbol=data["symbol"],
            side=data["side"],
            order_type=data["order_type"],
            size=dec_load(data["size"]),
            limit_price=dec_load(data["limit_price"]),
            stop_price=dec_load(data["stop_price"]),
            trigger_signal=data["trigger_signal"],
            reduce_only=bool(data["reduce_only"]),
            received_ms=int(data["received_ms"]),
            source=str(data["source"]),
            state=str(data["state"]),
            status=str(data["status"]),
            filled=dec_load_req(data["filled"]),
            last_update_ms=int(data["last_update_ms"]),
            closed_ms=None if data["closed_ms"] is None else int(data["closed_ms"]),
            triggered_ms=None if data["triggered_ms"] is None else int(data["triggered_ms"]),
            reason=data["reason"],
            order_tag=data["order_tag"],
            collar_price=dec_load(data["collar_price"]),
            trailing_deviation=dec_load(data.get("trailing_deviation")),  # absent from files written before them
            trailing_unit=data.get("trailing_unit"),
            activation_failed=bool(data.get("activation_failed", False)),
            raw=raw,
        )

    def dump(self) -> dict[str, object]:
        """Everything about the order, for the admin state dump."""
        return {
            "order_id": self.order_id,
            "cliOrdId": self.cli_ord_id,
            "status": self.status,
            "state": self.state,
            "reason": self.reason,
            "symbol": self.symbol,
            "side": self.side,
            "orderType": self.order_type,
            "size": text(self.size),
            "filled": text(self.filled),
            "limitPrice": text(self.limit_price),
            "stopPrice": text(self.stop_price),
            "triggerSignal": self.trigger_signal,
            "trailingStopMaxDeviation": text(self.trailing_deviation),
            "trailingStopDeviationUnit": self.trailing_unit,
            "reduceOnly": self.reduce_only,
            "time": self.received_ms,
            "lastUpdateTime": self.last_update_ms or self.received_ms,
            "closedTime": self.closed_ms,
            "triggeredTime": self.triggered_ms,
            "source": self.source,
            "order_tag": self.order_tag,
            "raw": self.raw,
        }


@dataclass(frozen=True)
class Fill:
    """One execution of one of the account's orders."""

    fill_id: str
    order_id: str
    cli_ord_id: str | None
    symbol: str
    side: str
    size: Decimal
    price: Decimal
    time_ms: int
    fill_type: str
    fee: Decimal
    realized_pnl: Decimal

    def to_json(self) -> dict[str, object]:
        """The fill as `/fills` lists it (a fresh dict: a fill never changes, its text is built once)."""
        return dict(self._json)

    @functools.cached_property
    def json_text(self) -> str:
        """`to_json` as compact JSON text, built once (the fills endpoint answers the newest 100 every time)."""
        return json.dumps(self._json, separators=(",", ":"))

    @functools.cached_property
    def _json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "fill_id": self.fill_id,
            "symbol": self.symbol,
            "side": self.side,
            "order_id": self.order_id,
            "size": fmt(self.size),
            "price": fmt(self.price),
            "fillTime": iso(self.time_ms),
            "fillType": self.fill_type,
        }
        if self.cli_ord_id is not None:
            out["cliOrdId"] = self.cli_ord_id
        return out

    def dump(self) -> dict[str, object]:
        """Everything about the fill, for the admin state dump."""
        return {**self.to_json(), "time": self.time_ms, "fee": fmt(self.fee), "realizedPnl": fmt(self.realized_pnl)}

    def to_state(self) -> dict[str, object]:
        """Every field, JSON-able and exact, for the state file."""
        return {
            "fill_id": self.fill_id,
            "order_id": self.order_id,
            "cli_ord_id": self.cli_ord_id,
            "symbol": self.symbol,
            "side": self.side,
            "size": str(self.size),
            "price": str(self.price),
            "time_ms": self.time_ms,
            "fill_type": self.fill_type,
            "fee": str(self.fee),
            "realized_pnl": str(self.realized_pnl),
        }

    @classmethod
    def from_state(cls, data: Mapping[str, Any]) -> Fill:
        """A fill back from `to_state`; KeyError/ValueError on a malformed entry."""
        return cls(
            fill_id=str(data["fill_id"]),
            order_id=str(data["order_id"]),
            cli_ord_id=data["cli_ord_id"],
            symbol=str(data["symbol"]),
            side=str(data["side"]),
            size=dec_load_req(data["size"]),
            price=dec_load_req(data["price"]),
            time_ms=int(data["time_ms"]),
            fill_type=str(data["fill_type"]),
            fee=dec_load_req(data["fee"]),
            realized_pnl=dec_load_req(data["realized_pnl"]),
        )


@dataclass
class Position:
    """A netted position in one market."""

    symbol: str
    size: Decimal = ZERO
    avg_price: Decimal = ZERO
    opened_ms: int = 0
    realized_pnl: Decimal = ZERO

    def apply(self, signed_qty: Decimal, price: Decimal, time_ms: int) -> Decimal:
        """Net a fill into the position; returns the PnL it realized."""
        realized = ZERO
        if self.size == 0 or (self.size > 0) == (signed_qty > 0):
            total = abs(self.size) + abs(signed_qty)
            self.avg_price = (abs(self.size) * self.avg_price + abs(signed_qty) * price) / total
            if self.size == 0:
                self.opened_ms = time_ms
            self.size += signed_qty
        else:
            closing = min(abs(self.size), abs(signed_qty))
            direction = 1 if self.size > 0 else -1
            realized = closing * (price - self.avg_price) * direction
            self.size += signed_qty
            if self.size == 0:
                self.avg_price = ZERO
            elif (self.size > 0) != (direction > 0):
                self.avg_price = price
                self.opened_ms = time_ms
        self.realized_pnl += realized
        return realized

    def to_state(self) -> dict[str, object]:
        """Every field, JSON-able and exact, for the state file."""
        return {
            "symbol": self.symbol,
            "size": str(self.size),
            "avg_price": str(self.avg_price),
            "opened_ms": self.opened_ms,
            "realized_pnl": str(self.realized_pnl),
        }

    @classmethod
    def from_state(cls, data: Mapping[str, Any]) -> Position:
        """A position back from `to_state`; KeyError/ValueError on a malformed entry."""
        return cls(
            symbol=str(data["symbol"]),
            size=dec_load_req(data["size"]),
            avg_price=dec_load_req(data["avg_price"]),
            opened_ms=int(data["opened_ms"]),
            realized_pnl=dec_load_req(data["realized_pnl"]),
        )

    def unrealized(self, mark: Decimal) -> Decimal:
        """Unrealized PnL at the given mark price."""
        return self.size * (mark - self.avg_price) if self.size else ZERO

    def to_json(self, mark: Decimal) -> dict[str, object]:
        """The position as `/openpositions` lists it."""
        return {
            "side": "long" if self.size > 0 else "short",
            "symbol": self.symbol,
            "price": fmt(self.avg_price.quantize(Decimal("1e-12")) if self.avg_price else self.avg_price),
            "fillTime": iso(self.opened_ms),
            "size": fmt(abs(self.size)),
            "unrealizedFunding": "0",
            "pnlCurrency": "USD",
            "unrealizedPnl": fmt(self.unrealized(mark).quantize(Decimal("1e-8"))),
        }
