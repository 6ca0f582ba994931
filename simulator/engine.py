"""The simulated Kraken Futures account: order entry, matching, positions, PnL, fees and margin."""

from __future__ import annotations

import base64
import binascii
import bisect
import dataclasses
import random
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any, cast

from loguru import logger

from simulator.account_log import FUNDING, TRADE, AccountLog
from simulator.clock import Clock
from simulator.instruments import Instrument
from simulator.orders import (
    CANCELLED,
    FILLED,
    OPEN,
    ORDER_TYPES,
    REJECTED,
    TRAILING_MAX,
    TRAILING_MIN,
    TRAILING_PERCENT_PLACES,
    TRAILING_UNITS,
    TRIGGER_SIGNALS,
    UNTRIGGERED,
    ZERO,
    Fill,
    Order,
    Position,
    dec_load_req,
    iso,
    order_error,
    parse_decimal,
    text,
    trailing_argument_error,
    whole_param,
)
from simulator.prices import MarketData, Quote, ceil_tick, floor_tick, fmt, stable_seed

# Kraken Futures fee schedule, lowest tier (30-day volume 0 - 100,000 USD): maker 0.0200 %, taker 0.0500 %, "calculated
# as a percentage of the notional order value for a matched trade"
# (https://support.kraken.com/hc/en-us/articles/360048917612-Fee-schedule); multi-collateral fees are "charged in USD"
# (https://support.kraken.com/hc/en-us/articles/4844392809620-Fees-Charges-for-Multi-Collateral-Futures).
MAKER_FEE = Decimal("0.0002")
TAKER_FEE = Decimal("0.0005")
HOUR_MS = 3_600_000
# get-instruments: fundingRateCoefficient (24 for the linear perpetuals) and maxRelativeFundingRate ("the absolute
# value of the maximum permissible funding rate", 0.0025); instruments.py lists both for every market.
FUNDING_COEFFICIENT = Decimal(24)
MAX_RELATIVE_FUNDING = Decimal("0.0025")
FUNDING_RATE_STEP = Decimal("1e-12")
AMOUNT_STEP = Decimal("1e-8")
MAX_CLI_ORD_ID = 100
STATUS_WINDOW_MS = 5_000
# Kraken send-order docs: `mkt` is "an immediate-or-cancel order with 1% price protection"
# (https://docs.kraken.com/api/docs/futures-api/trading/send-order).
MARKET_COLLAR = Decimal("0.01")
BOOK_LEVELS = 10  # levels per side of the simulated book (the public `orderbook` shows exactly these)
BOOK_LEVEL_FACTOR = Decimal(5)  # level i holds impact_mid_size * 5 * (i + 1); LTC's whole side is ~29k USD
# Kraken's send-order docs list `wouldProcessAfterSpecifiedTime`: "order would be processed after the time
# specified in processBefore parameter".
TOO_LATE = "wouldProcessAfterSpecifiedTime"
# Not documented: the reason Kraken's history gives when the engine cancels an IoC/market remainder. We use the
# lower-cased OrderUpdateReason closest to it; clients must rely on the event type and the filled quantity.
IOC_REMAINDER_REASON = "ioc_would_not_execute_reason"
# The simulated market's side of every execution (the executions feed shows both orders): not the account's.
MARKET_ACCOUNT_UID = "00000000-0000-4000-8000-000000000000"
# Not documented: the reason Kraken's order history gives the order a fired trigger places. We use the
# OrderUpdateReason for it (orders/status `updateReason` STOP_ORDER_TRIGGERED).
TRIGGERED_REASON = "stop_order_triggered"
# editorder `qtyMode` (edit-order page): "defaulting to 'RELATIVE'. 'ABSOLUTE' means that the total order size,
# including past fills, is set to `size`. 'RELATIVE' means that the current open order size is set to `size`."
QTY_MODES = ("RELATIVE", "ABSOLUTE")
# editStatus statuses -> the OrderError an OrderEditRejected / OrderTriggerEditRejected carries
EDIT_ERRORS = {
    "invalidSize": "INVALID_QUANTITY",
    "invalidPrice": "INVALID_PRICE",
    "insufficientAvailableFunds": "INSUFFICIENT_MARGIN",
    "orderForEditNotAStop": "ORDER_CANNOT_HAVE_TRIGGER_PRICE",
    "cannotEditTriggerPriceOfTrailingStop": "CANNOT_EDIT_TRIGGER_PRICE_OF_TRAILING_STOP",
    "cannotEditLimitPriceOfTrailingStop": "CANNOT_EDIT_LIMIT_PRICE_OF_TRAILING_STOP",
}

Params = Mapping[str, Any]


class HistoryEvent:
    """One entry of the order or trigger history (`/history/v2/orders|triggers`)."""

    __slots__ = ("uid", "time_ms", "name", "payload", "symbol")

    def __init__(self, uid: str, time_ms: int, name: str, payload: dict[str, object], symbol: str | None) -> None:
        self.uid = uid
        self.time_ms = time_ms
        self.name = name
        self.payload = payload
        self.symbol = symbol

    def to_json(self) -> dict[str, object]:
        """The element as Kraken's history endpoints return it."""
        return {"uid": self.uid, "timestamp": str(self.time_ms), "event": {self.name: self.payload}}

    def to_state(self) -> dict[str, object]:
        """Every field, JSON-able, for the state file."""
        return {"uid": self.uid, "time_ms": self.time_ms, "name": self.name, "payload": self.payload,
                "symbol": self.symbol}

    @classmethod
    def from_state(cls, data: Mapping[str, Any]) -> HistoryEvent:
        """An event back from `to_state`; KeyError/ValueError on a malformed entry."""
        payload = data["payload"]
        if not isinstance(payload, dict):
            raise TypeError("history payload must be an object")
        return cls(str(data["uid"]), int(data["time_ms"]), str(data["name"]), payload, data["symbol"])


def _decode_token(token: str) -> int:
    """The sequence number a continuation token names; ValueError if it is not one of ours."""
    try:
        text_ = base64.b64decode(token, validate=True).decode()
        _, seq = text_.split("/", 1)
        return int(seq)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValueError("continuation_token") from exc


def _flag(value: object) -> bool:
    """Kraken boolean parameter (`true`/`false`, JSON booleans)."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() == "true"


class Exchange:
    """One Kraken Futures flex (multi-collateral, USD) account trading against simulated markets."""

    def __init__(
        self,
        market: MarketData,
        clock: Clock,
        instruments: Mapping[str, Instrument],
        initial_balance: Decimal,
        seed: int = 0,
        maker_fee: Decimal = MAKER_FEE,
        taker_fee: Decimal = TAKER_FEE,
        cli_ord_id_scope: str = "open",
        honour_process_before: bool = True,
        market_fill: str = "book",
        resting_fill: str = "partial",
        history_lag_ms: int = 3_000,
        history_page_max: int = 100,
        edit_requires_stop_price: bool = True,
        edit_qty_mode: str = "RELATIVE",
        trailing_range: str = "both",
        dead_man_scope: str = "all",
        reduce_only_orphans: str = "stay",
        funding_rate: Decimal | None = None,
        account_log_page_max: int = 500,
    ) -> None:
        self.lock = threading.RLock()
        self.market = market
        self.clock = clock
        self.instruments = dict(instruments)
        self.initial_balance = initial_balance
        self.maker_fee = maker_fee
        self.taker_fee = taker_fee
        self.cli_ord_id_scope = cli_ord_id_scope
        self.honour_process_before = honour_process_before
        self.market_fill = market_fill
        self.resting_fill = resting_fill
        self.history_lag_ms = history_lag_ms
        self.history_page_max = history_page_max
        self.edit_requires_stop_price = edit_requires_stop_price
        self.edit_qty_mode = edit_qty_mode
        self.trailing_range = trailing_range
        self.dead_man_scope = dead_man_scope
        self.reduce_only_orphans = reduce_only_orphans
        self.funding_rate = funding_rate  # relative hourly rate; None: from the mark premium (README rule 18)
        self.account_log_page_max = account_log_page_max
        self.account_log = AccountLog()
        self.funding_hour = clock.now_ms() // HOUR_MS  # the last hour boundary funding was settled for
        self.funding_paid = ZERO  # sum of realized funding (positive: received)
        self.seed = seed
        self.ids_drawn = 0
        self.revision = 0  # bumped by every change a state file must capture (besides the clock)
        self._ids = random.Random(stable_seed(seed, "ids"))
        self.account_uid = self._new_id()
        self.account_id = str(100000 + self._ids.randrange(900000))
        self.balance = initial_balance
        self.fees_paid = ZERO
        self.orders: dict[str, Order] = {}
        self.cli_ids: dict[str, list[Order]] = {}  # every order that carried the id, oldest first
        self.working: dict[str, dict[str, Order]] = {s: {} for s in self.instruments}
        self.fills: list[Fill] = []
        self.positions: dict[str, Position] = {}
        self.order_history: list[HistoryEvent] = []
        self.trigger_history: list[HistoryEvent] = []
        self.order_requests: list[dict[str, object]] = []  # every order instruction received (admin record)
        self.request_context: dict[str, object] = {}  # set by the API around one request (receipt time, fault)
        self.batch_seq = 0  # batchorder requests processed (numbers them in the order request record)
        self._taken: dict[str, tuple[int, dict[Decimal, Decimal]]] = {}  # symbol+side -> (tick, price -> taken)
        self.suspended: set[str] = set()
        self.dead_man_ms: int | None = None
        self.listeners: list[Callable[[Fill], None]] = []

    # -- time ------------------------------------------------------------------
    def now(self) -> int:
        """Current simulated time (ms)."""
        return self.clock.now_ms()

    def sync(self) -> int:
        """Advance the markets to the clock, matching working orders tick by tick; returns now."""
        with self.lock:
            now = self.clock.now_ms()
            for tick_ms in self.market.advance_to(now):
                self._on_step(tick_ms)
            self._check_dead_man(now)
            return now

    def _on_step(self, time_ms: int) -> None:
        """Match every market's working orders against the prices of one tick."""
        self._check_dead_man(time_ms)
        while time_ms // HOUR_MS > self.funding_hour:  # every hour boundary passed, also when ticks are hours apart
            self._settle_funding(self.funding_hour + 1)  # (a replay of daily candles ticks every 6 h)
        for symbol, book in self.working.items():
            if book and symbol not in self.suspended:
                self._match_book(symbol, self.market.quote(symbol), time_ms)

    def _check_dead_man(self, time_ms: int) -> None:
        """Fire the dead man's switch when its time has come.

        Kraken (https://docs.kraken.com/api-reference/order-management/dead-mans-switch): a countdown "that will
        cancel all user orders when timeout expires". "All" is not said to include untriggered trigger orders; the
        harsher reading (default `dead_man_scope="all"`) cancels them too, so protective stops go with the resting
        orders (`"resting"` spares them). After firing the timer stays off until a new non-zero timeout (the Spot
        page says so: "the timer remains disabled until the client provides a new (non-zero) timeout"; the Futures
        page is silent).
        """
        if self.dead_man_ms is not None and time_ms >= self.dead_man_ms:
            self.dead_man_ms = None
            self.revision += 1
            logger.info("simulator: dead man's switch fired, cancelling all orders")
            victims = [o for book in self.working.values() for o in book.values()
                       if self.dead_man_scope == "all" or o.state != UNTRIGGERED]
            for order in victims:
                self._cancel(order, time_ms, "dead_man_switch")

    # -- funding -------------------------------------------------------------------
    def relative_funding_rate(self, symbol: str) -> Decimal:
        """The hourly relative funding rate of a market now.

        Kraken (Linear Multi-Collateral Perpetual Contract Specifications,
        https://support.kraken.com/hc/en-us/articles/4844359082772): "If the premium is above zero, then the long
        positions payout to short positions, and if the premium is below zero, then the short positions pay out to the
        long positions ... calculated every hour". Our reading: the premium of the mark over the index, divided by the
        instrument's fundingRateCoefficient (24) and capped at maxRelativeFundingRate (get-instruments); a configured
        `funding_rate` replaces it with a fixed rate (0: no funding).
        """
        if self.funding_rate is not None:
            return self.funding_rate
        quote = self.market.quote(symbol)
        if quote.index <= 0:
            return ZERO
        rate = (quote.mark / quote.index - 1) / FUNDING_COEFFICIENT
        rate = max(-MAX_RELATIVE_FUNDING, min(MAX_RELATIVE_FUNDING, rate))
        return rate.quantize(FUNDING_RATE_STEP)

    def absolute_funding_rate(self, symbol: str) -> Decimal:
        """USD per contract per hour (tickers' `fundingRate`, the account log's `funding_rate`: "Absolute funding
        rate"; ccxt divides it by the mark price to get the relative rate)."""
        return (self.relative_funding_rate(symbol) * self.market.quote(symbol).mark).quantize(FUNDING_RATE_STEP)

    def _settle_funding(self, hour: int) -> None:
        """Pay or receive one hour of funding on every open position at the hour boundary `hour * HOUR_MS`.

        Amount = - position size x absolute rate (= - relative rate x position value at the mark): a long pays when
        the rate is positive, a short receives. Rounded towards the account's loss (1e-8 USD). Each payment is booked
        to the balance and written as a `funding rate change` account-log entry; a zero amount writes nothing.
        """
        self.funding_hour = hour
        self.revision += 1
        at = hour * HOUR_MS
        for symbol, pos in sorted(self.positions.items()):
            if not pos.size:
                continue
            rate = self.absolute_funding_rate(symbol)
            amount = (-pos.size * rate).quantize(AMOUNT_STEP, rounding=ROUND_FLOOR)
            if not amount:
                continue
            old = self.balance
            self.balance += amount
            self.funding_paid += amount
            self.account_log.add(at, "usd", FUNDING, old, self.balance, contract=symbol.lower(),
                                 funding_rate=rate, realized_funding=amount,
                                 mark_price=self.market.quote(symbol).mark,
                                 old_average_entry_price=pos.avg_price, new_average_entry_price=pos.avg_price)
            logger.debug("simulator: funding {} {} USD on {}", symbol, fmt(amount), fmt(pos.size))

    # -- helpers -----------------------------------------------------------------
    def _new_id(self) -> str:
        """A reproducible UUID4 string (every new order, fill and history event draws one)."""
        self.ids_drawn += 1
        self.revision += 1
        return str(uuid.UUID(int=self._ids.getrandbits(128), version=4))

    def position(self, symbol: str) -> Decimal:
        """Signed position size in a market."""
        pos = self.positions.get(symbol)
        return pos.size if pos else ZERO

    def _record(self, order: Order) -> None:
        """Remember an order request (every one, including rejected ones)."""
        self.orders[order.order_id] = order
        if order.cli_ord_id is not None:
            same = self.cli_ids.setdefault(order.cli_ord_id, [])
            if order not in same:
                same.append(order)

    def _by_cli(self, cli_ord_id: str) -> Order | None:
        """The order a cliOrdId names for cancel/edit: the oldest OPEN one carrying it, else the newest one."""
        same = self.cli_ids.get(cli_ord_id) or []
        for order in same:
            if order.working:
                return order
        return same[-1] if same else None

    def _history(self, order: Order, time_ms: int, name: str, **extra: object) -> None:
        """Append an order-history event with a snapshot of the order."""
        if name == "OrderUpdated":
            payload: dict[str, object] = {
                "oldOrder": extra.pop("old"),
                "newOrder": order.history_json(self.account_uid),
            }
        else:
            payload = {"order": order.history_json(self.account_uid)}
        if name != "OrderRejected" and "reason" in extra:
            order.reason = str(extra["reason"])  # orders/status `updateReason` is the latest one
        payload.update(extra)
        self.order_history.append(HistoryEvent(self._new_id(), time_ms, name, payload, order.symbol))

    def _trigger_history(self, order: Order, time_ms: int, name: str, **extra: object) -> None:
        """Append a trigger-history event with a snapshot of the trigger order (get-trigger-events:
        OrderTriggerUpdated carries `oldOrderTrigger` / `newOrderTrigger`, OrderTriggerEditRejected
        `attemptedOrderTrigger` / `oldOrderTrigger`, the others `order`)."""
        snapshot = order.history_trigger_json(self.account_uid, self.account_id)
        payload: dict[str, object]
        if name == "OrderTriggerUpdated":
            payload = {"oldOrderTrigger": extra.pop("old"), "newOrderTrigger": snapshot}
        elif name == "OrderTriggerEditRejected":
            payload = {"attemptedOrderTrigger": extra.pop("attempted"), "oldOrderTrigger": snapshot}
        else:
            payload = {"order": snapshot}
        if name != "OrderTriggerEditRejected" and "reason" in extra:
            order.reason = str(extra["reason"])  # orders/status `updateReason` is the latest one
        payload.update(extra)
        self.trigger_history.append(HistoryEvent(self._new_id(), time_ms, name, payload, order.symbol))

    # -- account -----------------------------------------------------------------
    def unrealized(self) -> Decimal:
        """Total unrealized PnL at mark prices."""
        return sum(
            (p.unrealized(self.market.quote(s).mark) for s, p in self.positions.items() if p.size),
            ZERO,
        )

    def margin(self) -> tuple[Decimal, Decimal, Decimal]:
        """Initial margin of positions, maintenance margin, and initial margin of working orders."""
        im = mm = ZERO
        for symbol, pos in self.positions.items():
            if pos.size:
                notional = abs(pos.size) * self.market.quote(symbol).mark
                im_rate, mm_rate = self.instruments[symbol].margin_rates(notional)
                im += notional * im_rate
                mm += notional * mm_rate
        orders_im = ZERO
        for symbol, book in self.working.items():
            for order in book.values():
                if order.reduce_only:
                    continue
                price = order.limit_price or order.stop_price or self.market.quote(symbol).mark
                notional = order.remaining * price
                orders_im += notional * self.instruments[symbol].margin_rates(notional)[0]
        return im, mm, orders_im

    def available_margin(self) -> Decimal:
        """Margin equity minus initial margin of positions and working orders."""
        im, _, orders_im = self.margin()
        return self.balance + self.unrealized() - im - orders_im

    def _required_margin(self, symbol: str, side: str, qty: Decimal, price: Decimal) -> Decimal:
        """Initial margin plus taker fee an order needs beyond what it closes."""
        pos = self.position(symbol)
        signed = qty if side == "buy" else -qty
        increase = qty if pos == 0 or (pos > 0) == (signed > 0) else max(ZERO, qty - abs(pos))
        notional = increase * price
        im_rate = self.instruments[symbol].margin_rates(notional)[0]
        return notional * im_rate + qty * price * self.taker_fee

    # -- order entry ---------------------------------------------------------------
    def too_late(self, process_before_ms: int | None, now: int) -> bool:
        """True if a request carrying `processBefore` is processed at or after that time (and the rule is on).

        Kraken: processBefore is "The time before which the request should be processed, otherwise it is
        rejected" (send-order, batch-order, edit-order, cancel-order docs). Processing exactly at the time counts
        as too late (the harsher reading of "before").
        """
        return self.honour_process_before and process_before_ms is not None and now >= process_before_ms

    def send_order(self, params: Params, source: str = "sendorder",
                   process_before_ms: int | None = None) -> dict[str, object]:
        """Place one order; returns Kraken's `sendStatus`."""
        with self.lock:
            now = self.sync()
            out = self._send(params, now, source, process_before_ms)
            self.note_request(source, "send", params, out, now)
            return out

    def _too_late_status(self, params: Params, now: int) -> dict[str, object]:
        """The answer to an order request processed after its processBefore: nothing placed, nothing recorded."""
        logger.debug("simulator: request processed after its processBefore; not placed")
        out: dict[str, object] = {"status": TOO_LATE, "receivedTime": iso(now), "orderEvents": []}
        if params.get("cliOrdId") is not None:
            out["cliOrdId"] = str(params.get("cliOrdId"))
        return out

    def note_request(self, endpoint: str, kind: str, params: Params, out: Mapping[str, object], now: int) -> None:
        """Add one order instruction (send / edit / cancel) and its outcome to the admin request record."""
        order_id = out.get("order_id") or out.get("orderId") or params.get("order_id") or params.get("orderId")
        order = self.orders.get(str(order_id)) if order_id else None
        entry: dict[str, object] = {
            "seq": len(self.order_requests) + 1,
            "time": now,
            "received": self.request_context.get("received_ms", now),
            "fault": self.request_context.get("fault"),
            "endpoint": endpoint,
            "kind": kind,
            "cliOrdId": None if params.get("cliOrdId") is None else str(params.get("cliOrdId")),
            "order_id": None if order_id is None else str(order_id),
            "symbol": None if params.get("symbol") is None else str(params.get("symbol")).upper(),
            "side": None if params.get("side") is None else str(params.get("side")).lower(),
            "orderType": None if params.get("orderType") is None else str(params.get("orderType")),
            "size": None if params.get("size") is None else str(params.get("size")),
            "limitPrice": None if params.get("limitPrice") is None else str(params.get("limitPrice")),
            "reduceOnly": _flag(params.get("reduceOnly", False)),
            "processBefore": self.request_context.get("process_before"),
            "batch": self.request_context.get("batch"),  # batchorder: the request's number (one per batch)
            "status": out.get("status"),
            "filled": text(order.filled) if order is not None else None,
        }
        if order is not None and entry["symbol"] is None:
            entry.update(symbol=order.symbol, side=order.side, cliOrdId=entry["cliOrdId"] or order.cli_ord_id)
        self.order_requests.append(entry)
        self.revision += 1

    def _send(self, params: Params, now: int, source: str, process_before_ms: int | None = None) -> dict[str, object]:
        """Validate, place and match one order at `now`."""
        if self.too_late(process_before_ms, now):
            return self._too_late_status(params, now)
        argument_error = trailing_argument_error(params)
        if argument_error is not None:  # refused before it is an order: no id, no trace (batchorder's recorded form)
            refused: dict[str, object] = {"status": argument_error, "receivedTime": iso(now), "orderEvents": []}
            if params.get("cliOrdId") is not None:
                refused["cliOrdId"] = str(params.get("cliOrdId"))
            return refused
        raw = {k: v for k, v in params.items()}
        cli = params.get("cliOrdId")
        cli_ord_id = None if cli is None else str(cli)
        order_type = str(params.get("orderType", "")).strip().lower() or None
        symbol_raw = params.get("symbol")
        symbol = None if symbol_raw is None else str(symbol_raw).strip().upper()
        side = None if params.get("side") is None else str(params.get("side")).strip().lower()
        signal_raw = params.get("triggerSignal")
        order = Order(
            order_id=self._new_id(),
            cli_ord_id=cli_ord_id,
            symbol=symbol,
            side=side,
            order_type=order_type,
            size=parse_decimal(params.get("size")),
            limit_price=parse_decimal(params.get("limitPrice")),
            stop_price=parse_decimal(params.get("stopPrice")),
            trigger_signal=None,
            reduce_only=_flag(params.get("reduceOnly", False)),
            received_ms=now,
            source=source,
            last_update_ms=now,
            order_tag=None if params.get("order_tag") is None else str(params.get("order_tag")),
            raw=raw,
        )
        if order.is_trailing:
            order.trailing_deviation = parse_decimal(params.get("trailingStopMaxDeviation"))
            order.trailing_unit = str(params.get("trailingStopDeviationUnit")).strip().upper()
        refusal = self._validate(order, params, signal_raw)
        if refusal is not None:
            status, reason = refusal
            return self._reject(order, status, now, events=False, reason=reason)
        assert order.symbol is not None and order.size is not None and order.side is not None
        quote = self.market.quote(order.symbol)
        if order.is_trigger:
            return self._place_trigger(order, quote, now)
        return self._place_active(order, quote, now, events=True)

    def _validate(self, order: Order, params: Params, signal_raw: object) -> tuple[str, str | None] | None:
        """Kraken's rejection (send status, and the OrderError when a specific one applies) for an order request,
        or None if it may be placed."""
        status = self._validate_status(order, params, signal_raw)
        if status is not None:
            return status, None
        if order.is_trailing:
            assert order.symbol is not None
            return self._trailing_refusal(order, self.instruments[order.symbol])
        return None

    def _trailing_refusal(self, order: Order, inst: Instrument) -> tuple[str, str | None] | None:
        """Why a trailing stop's stopPrice / limitPrice / deviation is refused (send status, OrderError), or None.

        send-order: stopPrice and limitPrice: "if placing a trailing_stop then leave undefined" (refused, not ignored:
        the harsher reading; OrderError ORDER_CANNOT_HAVE_TRIGGER_PRICE for a stopPrice). trailingStopMaxDeviation:
        "Possible values: >= 0.1 and <= 50 ... Maximum value of 50%, minimum value of 0.1% for 'PERCENT'" (OrderErrors
        TRAILING_STOP_MAX_DEVIATION_TOO_SMALL / _TOO_LARGE); the range binds QUOTE_CURRENCY too unless
        `trailing_range="percent"` (the parameter's range is stated without a unit: harsher reading). A PERCENT
        deviation has at most one decimal (TRAILING_STOP_PERCENT_DEVIATION_EXCEEDS_MAX_DECIMAL_PLACES; the number of
        places is undocumented, one is the harsher reading), a QUOTE_CURRENCY one is a multiple of the tick size
        (TRAILING_STOP_QUOTE_DEVIATION_NOT_MULTIPLE_OF_TICK_SIZE). The send status of these refusals is
        undocumented: `invalidPrice` (ccxt InvalidOrder).
        """
        if order.stop_price is not None:
            return "invalidPrice", "ORDER_CANNOT_HAVE_TRIGGER_PRICE"
        if order.limit_price is not None:
            return "invalidPrice", "INVALID_PRICE"
        reason = self._deviation_error(order.trailing_deviation, order.trailing_unit, inst)
        return None if reason is None else ("invalidPrice", reason)

    def _deviation_error(self, deviation: Decimal | None, unit: str | None, inst: Instrument) -> str | None:
        """The OrderError for a trailing deviation that Kraken refuses, or None (see `_trailing_refusal`)."""
        if deviation is None or unit not in TRAILING_UNITS:
            return "INVALID_PRICE"
        if unit == "PERCENT" or self.trailing_range == "both":
            if deviation < TRAILING_MIN:
                return "TRAILING_STOP_MAX_DEVIATION_TOO_SMALL"
            if deviation > TRAILING_MAX:
                return "TRAILING_STOP_MAX_DEVIATION_TOO_LARGE"
        if unit == "PERCENT" and deviation != deviation.quantize(Decimal(1).scaleb(-TRAILING_PERCENT_PLACES)):
            return "TRAILING_STOP_PERCENT_DEVIATION_EXCEEDS_MAX_DECIMAL_PLACES"
        if unit == "QUOTE_CURRENCY" and (deviation <= 0 or deviation % inst.tick_size != 0):
            return "TRAILING_STOP_QUOTE_DEVIATION_NOT_MULTIPLE_OF_TICK_SIZE"
        return None

    def _trail_price(self, order: Order, quote: Quote) -> Decimal:
        """A trailing stop's trigger price for the current signal price: the deviation below it (sell) or above it
        (buy), rounded to the tick towards the signal so that it is "never more than" the deviation away (send-order:
        "the trigger price will never be more then 10% below the trigger signal")."""
        assert order.symbol is not None and order.trailing_deviation is not None
        signal = quote.signal_price(order.trigger_signal or "last")
        distance = order.trailing_deviation
        if order.trailing_unit == "PERCENT":
            distance = signal * order.trailing_deviation / 100
        tick = self.instruments[order.symbol].tick_size
        if order.side == "sell":
            return max(tick, ceil_tick(signal - distance, tick))
        return floor_tick(signal + distance, tick)

    def _validate_status(self, order: Order, params: Params, signal_raw: object) -> str | None:
        """Kraken's rejection status for an order request's fields, or None."""
        if order.order_type not in ORDER_TYPES:
            return "invalidOrderType"
        if order.side not in ("buy", "sell"):
            return "invalidSide"
        if order.cli_ord_id is not None:
            if len(order.cli_ord_id) > MAX_CLI_ORD_ID:
                return "clientOrderIdTooLong"
            # Kraken refuses a cliOrdId only while an OPEN order carries it: error list CLIENT_ORDER_ID_IN_USE
            # "Client order ID specified currently being used in an open order"
            # (https://support.kraken.com/hc/en-us/articles/derivatives-trading-interface-error-messages) and the
            # client-order-id guide: "uniqueness across open orders" (https://docs.kraken.com/api/docs/guides/spot-clordid).
            # "history" (any earlier order) and "none" (no check at all) are switches for tests and soaks.
            same = self.cli_ids.get(order.cli_ord_id) or []
            scope = self.cli_ord_id_scope
            if (scope == "history" and any(o.state != REJECTED for o in same)) or (
                scope == "open" and any(o.working for o in same)
            ):
                return "clientOrderIdAlreadyExist"
        inst = self.instruments.get(order.symbol or "")
        if inst is None:
            return "invalidArgument"
        if order.symbol in self.suspended:
            return "marketSuspended"
        if order.size is None or not inst.is_valid_size(order.size):
            return "invalidSize"
        needs_limit = order.order_type in ("lmt", "post", "ioc")
        if needs_limit and order.limit_price is None:
            return "invalidPrice"
        if order.order_type == "mkt":
            order.limit_price = None
        if order.limit_price is not None and not inst.is_valid_price(order.limit_price):
            return "invalidPrice"
        if order.is_trigger:
            if not order.is_trailing and (order.stop_price is None or not inst.is_valid_price(order.stop_price)):
                return "invalidPrice"
            signal = TRIGGER_SIGNALS.get(str(signal_raw or "last").strip().lower())
            if signal is None:
                return "invalidArgument"
            order.trigger_signal = signal
        else:
            order.stop_price = None
        if abs(self.position(inst.symbol) + order.sign * order.size) > inst.max_position_size and not order.reduce_only:
            return "maxPositionViolation"
        return None

    def _reject(
        self, order: Order, status: str, now: int, events: bool, reason: str | None = None
    ) -> dict[str, object]:
        """Record a rejected order and build its sendStatus (history gets an OrderRejected for a known market)."""
        order.state = REJECTED
        order.status = status
        order.reason = reason or status
        order.closed_ms = now
        self._record(order)
        if order.symbol in self.instruments and order.side in ("buy", "sell"):
            self._history(order, now, "OrderRejected", reason=order.reason.lower(),
                          orderError=order_error(status, order.reason) or "", algoId="", origin="Api")
        logger.debug("simulator: order {} rejected: {}", order.order_id, status)
        out: dict[str, object] = {"status": status, "receivedTime": iso(now), "orderEvents": []}
        if events:
            out["order_id"] = order.order_id
            out["orderEvents"] = [
                {"type": "REJECT", "uid": order.order_id, "order": order.event_json(), "reason": reason,
                 "reducedQuantity": None}
            ]
        if order.cli_ord_id is not None:
            out["cliOrdId"] = order.cli_ord_id
        return out

    def _clamp_reduce_only(self, order: Order) -> Decimal | None:
        """For reduce-only orders, the quantity they may still trade (None if not reduce-only)."""
        if not order.reduce_only or order.symbol is None:
            return None
        pos = self.position(order.symbol)
        if pos == 0 or (pos > 0) == (order.sign > 0):
            return ZERO
        return min(order.remaining, abs(pos))

    def _crosses(self, order: Order, quote: Quote) -> bool:
        """True if a limit order would trade immediately at the current bid/ask."""
        if order.limit_price is None:
            return True
        return order.limit_price >= quote.ask if order.side == "buy" else order.limit_price <= quote.bid

    # -- the finite book -------------------------------------------------------------
    def level_size(self, symbol: str) -> Decimal:
        """The size of the best level of the simulated book (level i holds (i + 1) times it)."""
        return Decimal(self.instruments[symbol].impact_mid_size) * BOOK_LEVEL_FACTOR

    def _taken_at(self, symbol: str, book_side: str, tick_ms: int) -> dict[Decimal, Decimal]:
        """Quantity already taken this tick from each price of one side (`bids` or `asks`); resets every tick."""
        key = f"{symbol}:{book_side}"
        entry = self._taken.get(key)
        if entry is None or entry[0] != tick_ms:
            entry = self._taken[key] = (tick_ms, {})
        return entry[1]

    def book(self, symbol: str) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """The liquidity left this tick: bids (best first) and asks (best first) as (price, size)."""
        quote = self.market.quote(symbol)
        tick = self.instruments[symbol].tick_size
        base = self.level_size(symbol)
        sides: list[list[tuple[Decimal, Decimal]]] = []
        for book_side, best, step in (("bids", quote.bid, -tick), ("asks", quote.ask, tick)):
            taken = self._taken_at(symbol, book_side, quote.time_ms)
            levels = []
            for i in range(BOOK_LEVELS):
                price = best + step * i
                size = base * (i + 1) - taken.get(price, ZERO)
                if price > 0 and size > 0:
                    levels.append((price, size))
            sides.append(levels)
        return sides[0], sides[1]

    def _plan_take(self, order: Order, quote: Quote, bound: Decimal | None,
                   qty: Decimal) -> list[tuple[Decimal, Decimal]]:
        """The (price, quantity) fills a taker order gets: the book's levels within `bound`, best first."""
        assert order.symbol is not None
        if self.market_fill == "touch":  # the old, kinder model: everything at the touch
            return [(quote.ask if order.side == "buy" else quote.bid, qty)] if qty > 0 else []
        bids, asks = self.book(order.symbol)
        levels = asks if order.side == "buy" else bids
        plan = []
        left = qty
        for price, size in levels:
            if left <= 0:
                break
            if bound is not None and (price > bound if order.side == "buy" else price < bound):
                break
            take = min(left, size)
            plan.append((price, take))
            left -= take
        return plan

    def _take(self, order: Order, plan: list[tuple[Decimal, Decimal]], liquidity: str, now: int,
              history: bool = True) -> list[dict[str, object]]:
        """Execute a taking plan: one fill (and with `history` one OrderUpdated) per level; the EXECUTION events."""
        assert order.symbol is not None
        events: list[dict[str, object]] = []
        book_side = "asks" if order.side == "buy" else "bids"
        for price, qty in plan:
            if self.market_fill == "book":
                taken = self._taken_at(order.symbol, book_side, self.market.quote(order.symbol).time_ms)
                taken[price] = taken.get(price, ZERO) + qty
            prior = order.event_json()
            old_hist = order.history_json(self.account_uid)
            fill = self._execute(order, qty, price, liquidity, now)
            if history:
                self._history(order, now, "OrderUpdated", old=old_hist,
                              reason="full_fill" if order.remaining <= 0 else "partial_fill",
                              reducedQuantity="", algoId="", origin="Api")
            events.append({"type": "EXECUTION", "executionId": fill.fill_id, "price": float(fill.price),
                           "amount": float(fill.size), "orderPriorEdit": None, "orderPriorExecution": prior,
                           "takerReducedQuantity": None})
        return events

    def _place_active(self, order: Order, quote: Quote, now: int, events: bool,
                      reason: str = "new_user_order") -> dict[str, object]:
        """Place a non-trigger order (or the order a fired trigger becomes): take liquidity from the book, rest the
        remainder, or cancel it (IoC)."""
        assert order.symbol is not None
        kind = order.engine_type if order.is_trigger else order.order_type
        if kind == "mkt":
            kind = "ioc"
        reduced: Decimal | None = None
        allowed = self._clamp_reduce_only(order)
        if allowed is not None:
            if allowed == 0:
                return self._reject(order, "wouldNotReducePosition", now, events, "WOULD_NOT_REDUCE_POSITION")
            if allowed < order.remaining:
                reduced = order.remaining - allowed
                order.size = order.filled + allowed
        crosses = self._crosses(order, quote)
        if kind == "post" and crosses:
            return self._reject(order, "postWouldExecute", now, events, "POST_WOULD_EXECUTE")
        if kind == "ioc" and not crosses:
            return self._reject(order, "iocWouldNotExecute", now, events, "IOC_WOULD_NOT_EXECUTE")
        price = (quote.ask if order.side == "buy" else quote.bid) if crosses else (order.limit_price or quote.mark)
        if not order.reduce_only:
            needed = self._required_margin(order.symbol, order.side or "buy", order.remaining, price)
            if needed > self.available_margin():
                return self._reject(order, "insufficientAvailableFunds", now, events=False)
        bound = order.limit_price
        if order.limit_price is None:  # a market order (or a triggered stop without limit): 1% protection
            collar = quote.mark * (1 + MARKET_COLLAR) if order.side == "buy" else quote.mark * (1 - MARKET_COLLAR)
            tick = self.instruments[order.symbol].tick_size
            order.collar_price = (collar / tick).to_integral_value() * tick
            bound = order.collar_price
        plan = self._plan_take(order, quote, bound, order.remaining) if crosses else []
        if kind == "ioc" and not plan:  # nothing left in the book within the protection
            return self._reject(order, "iocWouldNotExecute", now, events, "IOC_WOULD_NOT_EXECUTE")
        order.status = "placed"
        self._record(order)
        out: dict[str, object] = {"order_id": order.order_id, "status": "placed", "receivedTime": iso(now)}
        if order.cli_ord_id is not None:
            out["cliOrdId"] = order.cli_ord_id
        # ccxt's recorded Kraken traffic: an order that executed on placement has ONE OrderPlaced whose snapshot
        # already carries the fill ("quantity": "0", "filled": "0.1"); no OrderUpdated for the immediate fills.
        order_events = self._take(order, plan, "taker", now, history=False)
        self._history(order, now, "OrderPlaced", reason=reason, reducedQuantity=text(reduced) or "",
                      algoId="", origin="Api")
        if order_events and reduced is not None:
            order_events[0]["takerReducedQuantity"] = float(reduced)
        if order.remaining > 0:
            if kind == "ioc":  # an IoC / market remainder never rests
                self._cancel(order, now, IOC_REMAINDER_REASON)
                order_events.append(self._cancel_event(order, False))
            else:
                order.state = OPEN
                self.working[order.symbol][order.order_id] = order
                if not order_events:
                    order_events.append({"type": "PLACE", "uid": order.order_id, "order": order.event_json(),
                                         "reducedQuantity": None if reduced is None else float(reduced)})
        out["orderEvents"] = order_events
        return out

    def _place_trigger(self, order: Order, quote: Quote, now: int) -> dict[str, object]:
        """Accept a stop, take-profit or trailing-stop order and start watching its trigger price (a trailing stop's
        starts at its deviation from the signal price)."""
        assert order.symbol is not None
        if order.is_trailing:
            order.stop_price = self._trail_price(order, quote)
        order.state = UNTRIGGERED
        order.status = "placed"
        self._record(order)
        self.working[order.symbol][order.order_id] = order
        self._trigger_history(order, now, "OrderTriggerPlaced", reason="new_user_order", algoId="", origin="Api")
        out: dict[str, object] = {
            "order_id": order.order_id,
            "status": "placed",
            "receivedTime": iso(now),
            "orderEvents": [{"type": "PLACE", "orderTrigger": order.trigger_event_json()}],
        }
        if order.cli_ord_id is not None:
            out["cliOrdId"] = order.cli_ord_id
        if order.symbol not in self.suspended:
            self._match_book(order.symbol, quote, now)
        return out

    # -- matching -------------------------------------------------------------------
    def _match_book(self, symbol: str, quote: Quote, time_ms: int) -> None:
        """Fire triggers and fill resting limit orders that the current prices reach."""
        for order in list(self.working[symbol].values()):
            if order.state == UNTRIGGERED:
                if order.is_trailing:
                    self._trail(order, quote, time_ms)
                price = quote.signal_price(order.trigger_signal or "last")
                assert order.stop_price is not None
                fired = price >= order.stop_price if order.trigger_side == "above" else price <= order.stop_price
                if fired:
                    self._fire_trigger(order, quote, time_ms)
            elif order.state == OPEN:
                assert order.limit_price is not None
                reached = quote.ask <= order.limit_price if order.side == "buy" else quote.bid >= order.limit_price
                if not reached:
                    continue
                allowed = self._clamp_reduce_only(order)
                if allowed is not None and allowed == 0:
                    self._cancel(order, time_ms, "would_not_reduce_position")
                    continue
                qty = order.remaining if allowed is None else allowed
                if self.resting_fill == "partial":
                    # Not documented by Kraken (it depends on other traders): at most one book level's size trades
                    # per tick, so a large resting order fills in several parts (the harsher reading).
                    qty = min(qty, self.level_size(symbol))
                old = order.history_json(self.account_uid)
                self._execute(order, qty, order.limit_price, "maker", time_ms)
                if allowed is not None and qty >= allowed and order.remaining > 0:
                    order.size = order.filled  # reduce-only leftover (position closed) ends with the fill
                    order.state = FILLED
                    order.closed_ms = time_ms
                    self.working[symbol].pop(order.order_id, None)
                reason = "full_fill" if order.state == FILLED else "partial_fill"
                self._history(order, time_ms, "OrderUpdated", old=old, reason=reason, reducedQuantity="",
                              algoId="", origin="Api")

    def _trail(self, order: Order, quote: Quote, time_ms: int) -> None:
        """Move a trailing stop's trigger price after a favourable move of its signal (never back): send-order's
        trailingStopMaxDeviation "Is the maximum distance the trailing stop's trigger price may trail behind the
        requested trigger signal. It defines the threshold at which the trigger price updates." Each move is an
        OrderTriggerUpdated (reason `trailing_stop_price_updated`, orders/status updateReason
        TRAILING_STOP_PRICE_UPDATED; the history reason string is our choice)."""
        assert order.stop_price is not None
        price = self._trail_price(order, quote)
        if price > order.stop_price if order.side == "sell" else price < order.stop_price:
            old = order.history_trigger_json(self.account_uid, self.account_id)
            order.stop_price = price
            order.last_update_ms = time_ms
            self.revision += 1
            self._trigger_history(order, time_ms, "OrderTriggerUpdated", old=old,
                                  reason="trailing_stop_price_updated", algoId="", origin="Api")

    def _fire_trigger(self, order: Order, quote: Quote, time_ms: int) -> None:
        """Turn a triggered stop / take-profit / trailing stop into a limit or market order. It goes through the
        finite book as any order (rule 6): without a limit it is an IoC with 1% protection whose remainder is
        cancelled; a reduce-only one is cut to the position or refused (`wouldNotReducePosition`), never opening or
        reversing a position; a refused one shows TRIGGER_ACTIVATION_FAILURE in orders/status."""
        assert order.symbol is not None
        self.working[order.symbol].pop(order.order_id, None)
        order.state = "pending"  # between trigger and placement: neither untriggered nor placed yet
        order.triggered_ms = time_ms
        order.last_update_ms = time_ms
        self._trigger_history(order, time_ms, "OrderTriggerActivated")
        result = self._place_active(order, quote, time_ms, events=True, reason=TRIGGERED_REASON)
        if order.state == REJECTED:
            order.activation_failed = True
            logger.debug("simulator: triggered order {} rejected: {}", order.order_id, result.get("status"))

    def _execute(self, order: Order, qty: Decimal, price: Decimal, liquidity: str, time_ms: int) -> Fill:
        """Fill `qty` of an order at `price`: position, PnL, fees and order state."""
        assert order.symbol is not None and order.side is not None
        signed = qty if order.side == "buy" else -qty
        pos = self.positions.setdefault(order.symbol, Position(order.symbol))
        old_size, old_avg = pos.size, pos.avg_price
        exact = pos.apply(signed, price, time_ms)
        # Booked to 1e-8 USD so that the balance is exactly the sum of the account log's entries (Kraken's recorded
        # cash legs show 4 decimals; the finer step is ours): realized PnL towards the account's loss, the fee to the
        # nearest step. A resting order that is hit pays maker, one that takes liquidity taker (takerAfterEdit too).
        realized = exact.quantize(AMOUNT_STEP, rounding=ROUND_FLOOR)
        pos.realized_pnl += realized - exact
        rate = self.maker_fee if liquidity == "maker" else self.taker_fee
        fee = (qty * price * rate).quantize(AMOUNT_STEP, rounding=ROUND_HALF_UP)
        old_balance = self.balance
        self.balance += realized - fee
        self.fees_paid += fee
        order.filled += qty
        order.last_update_ms = time_ms
        if order.remaining <= 0:
            order.state = FILLED
            order.closed_ms = time_ms
            self.working[order.symbol].pop(order.order_id, None)
        fill = Fill(
            fill_id=self._new_id(),
            order_id=order.order_id,
            cli_ord_id=order.cli_ord_id,
            symbol=order.symbol,
            side=order.side,
            size=qty,
            price=price,
            time_ms=time_ms,
            fill_type=liquidity,
            fee=fee,
            realized_pnl=realized,
        )
        self.fills.append(fill)
        mark = self.market.quote(order.symbol).mark
        legs = dict(contract=order.symbol.lower(), execution=fill.fill_id, trade_price=price, mark_price=mark,
                    old_average_entry_price=old_avg if old_size else None,
                    new_average_entry_price=pos.avg_price if pos.size else None)
        self.account_log.add(time_ms, order.symbol.lower(), TRADE, old_size, pos.size, **legs)
        self.account_log.add(time_ms, "usd", TRADE, old_balance, self.balance, realized_pnl=realized, fee=fee, **legs)
        if self.reduce_only_orphans == "cancel":
            self._cancel_orphans(order.symbol, time_ms)
        logger.debug("simulator: fill {} {} {} @ {} ({})", order.symbol, order.side, fmt(qty), fmt(price), liquidity)
        for listener in self.listeners:
            listener(fill)
        return fill

    def _cancel_orphans(self, symbol: str, time_ms: int) -> None:
        """With `reduce_only_orphans="cancel"` only: cancel the untriggered reduce-only orders of a market that can no
        longer reduce its position (flat, or on their own side). Kraken documents no such cancellation, so by default
        (`"stay"`, the harsher reading) they stay until cancelled or fired (and then are refused or cut)."""
        for other in list(self.working[symbol].values()):
            if other.state == UNTRIGGERED and other.reduce_only and self._clamp_reduce_only(other) == 0:
                self._cancel(other, time_ms, "would_not_reduce_position")

    # -- cancel / edit -------------------------------------------------------------------
    def _find(self, params: Params, id_key: str) -> Order | None:
        """The order named by `order_id`/`orderId` or `cliOrdId` in a request."""
        order_id = params.get(id_key)
        if order_id is not None:
            return self.orders.get(str(order_id))
        cli = params.get("cliOrdId")
        if cli is not None:
            return self._by_cli(str(cli))
        return None

    def _cancel(self, order: Order, time_ms: int, reason: str) -> None:
        """Take a working order off the book."""
        assert order.symbol is not None
        self.working[order.symbol].pop(order.order_id, None)
        was_trigger = order.state == UNTRIGGERED
        order.state = CANCELLED
        order.reason = reason
        order.closed_ms = time_ms
        order.last_update_ms = time_ms
        if was_trigger:
            self._trigger_history(order, time_ms, "OrderTriggerCancelled", reason=reason, algoId="", origin="Api")
        else:
            self._history(order, time_ms, "OrderCancelled", reason=reason, algoId="", origin="Api")

    def _cancel_event(self, order: Order, was_trigger: bool) -> dict[str, object]:
        """The CANCEL order event for a cancelled order."""
        if was_trigger:
            return {"uid": order.order_id, "orderTrigger": order.trigger_event_json(), "type": "CANCEL"}
        return {"uid": order.order_id, "order": order.event_json(), "type": "CANCEL"}

    def cancel_order(self, params: Params, process_before_ms: int | None = None) -> dict[str, object]:
        """Cancel one order by `order_id` or `cliOrdId`; returns Kraken's `cancelStatus`."""
        with self.lock:
            now = self.sync()
            if self.too_late(process_before_ms, now):
                out: dict[str, object] = {"status": TOO_LATE, "receivedTime": iso(now), "orderEvents": []}
            else:
                out = self._cancel_one(params, now, "order_id")
            self.note_request("cancelorder", "cancel", params, out, now)
            return out

    def _cancel_one(self, params: Params, now: int, id_key: str) -> dict[str, object]:
        """Cancel one order at `now`."""
        order = self._find(params, id_key)
        out: dict[str, object] = {"receivedTime": iso(now)}
        if order is None or order.state == REJECTED:
            out.update(status="notFound", orderEvents=[])
            return out
        out["order_id"] = order.order_id
        if order.cli_ord_id is not None:
            out["cliOrdId"] = order.cli_ord_id
        if order.state == FILLED:
            out.update(status="filled", orderEvents=[])
            return out
        if order.state == CANCELLED:
            out.update(status="notFound", orderEvents=[])
            return out
        was_trigger = order.state == UNTRIGGERED
        self._cancel(order, now, "cancelled_by_user")
        out.update(status="cancelled", orderEvents=[self._cancel_event(order, was_trigger)])
        return out

    def cancel_all(self, symbol: str | None) -> dict[str, object]:
        """Cancel every working order (of one market if given); returns Kraken's `cancelStatus`."""
        with self.lock:
            now = self.sync()
            books = [self.working.get(symbol, {})] if symbol else list(self.working.values())
            victims = [o for book in books for o in list(book.values())]
            events = []
            cancelled = []
            for order in victims:
                was_trigger = order.state == UNTRIGGERED
                self._cancel(order, now, "cancelled_by_user")
                events.append(self._cancel_event(order, was_trigger))
                entry: dict[str, object] = {"order_id": order.order_id}
                if order.cli_ord_id is not None:
                    entry["cliOrdId"] = order.cli_ord_id
                cancelled.append(entry)
            return {
                "receivedTime": iso(now),
                "cancelOnly": symbol or "all",
                "status": "cancelled" if victims else "noOrdersToCancel",
                "cancelledOrders": cancelled,
                "orderEvents": events,
            }

    def cancel_all_after(self, timeout_s: int) -> dict[str, object]:
        """Arm (or with 0, disarm) the dead man's switch; returns Kraken's `status`."""
        with self.lock:
            now = self.sync()
            self.dead_man_ms = now + timeout_s * 1000 if timeout_s > 0 else None
            self.revision += 1
            return {"currentTime": iso(now), "triggerTime": iso(self.dead_man_ms) if self.dead_man_ms else "0"}

    def edit_order(self, params: Params, process_before_ms: int | None = None) -> dict[str, object]:
        """Change size / limit price / stop price of a working order; returns Kraken's `editStatus`."""
        with self.lock:
            now = self.sync()
            if self.too_late(process_before_ms, now):
                out: dict[str, object] = {"status": TOO_LATE, "receivedTime": iso(now), "orderEvents": []}
            else:
                out = self._edit(params, now, "orderId")
            self.note_request("editorder", "edit", params, out, now)
            return out

    def _edit(self, params: Params, now: int, id_key: str) -> dict[str, object]:
        """Edit one order at `now` (https://docs.kraken.com/api-reference/order-management/edit-order).

        `size` is read by `qtyMode` (default RELATIVE: the open size becomes `size`; ABSOLUTE: the total including
        past fills, which must stay above what filled). An untriggered stop / take-profit must carry `stopPrice`
        ("Required if old orderType is stp"; take_profit too, the harsher reading) and a stop-limit its `limitPrice`
        ("for stp orders, limitPrice is also required"), unless `edit_requires_stop_price` is off. A trailing stop
        refuses both prices (`cannotEditTriggerPriceOfTrailingStop`, `cannotEditLimitPriceOfTrailingStop`); sending
        its trailing parameters (changed or not) recalculates its trigger price. A refused edit leaves the order as
        it was and is recorded as OrderEditRejected / OrderTriggerEditRejected.
        """
        order = self._find(params, id_key)
        out: dict[str, object] = {"receivedTime": iso(now)}
        if order is None or not order.working:
            out.update(status="orderForEditNotFound", orderEvents=[])
            return out
        assert order.symbol is not None
        out["orderId"] = order.order_id
        if order.cli_ord_id is not None:
            out["cliOrdId"] = order.cli_ord_id
        was_trigger = order.state == UNTRIGGERED
        attempt = dataclasses.replace(order, raw=dict(order.raw))
        status, recalc = self._edit_refusal(order, attempt, params)
        if status is None and recalc:
            attempt.stop_price = self._trail_price(attempt, self.market.quote(order.symbol))
        if status is None and not order.reduce_only and attempt.remaining > order.remaining:
            price = attempt.limit_price or attempt.stop_price or self.market.quote(order.symbol).mark
            more = attempt.remaining - order.remaining
            needed = self._required_margin(order.symbol, order.side or "buy", more, price)
            if needed > self.available_margin():
                status = "insufficientAvailableFunds"
        if status is not None:
            error = EDIT_ERRORS.get(status, "")
            if was_trigger:
                self._trigger_history(order, now, "OrderTriggerEditRejected",
                                      attempted=attempt.history_trigger_json(self.account_uid, self.account_id),
                                      reason=status, orderError=error)
            elif status != "invalidArgument":
                self.order_history.append(HistoryEvent(self._new_id(), now, "OrderEditRejected", {
                    "oldOrder": order.history_json(self.account_uid),
                    "attemptedOrder": attempt.history_json(self.account_uid), "orderError": error}, order.symbol))
            out.update(status=status, orderEvents=[])
            return out
        old = order.trigger_event_json() if was_trigger else order.event_json()
        old_hist = (order.history_trigger_json(self.account_uid, self.account_id) if was_trigger
                    else order.history_json(self.account_uid))
        order.size, order.limit_price, order.stop_price = attempt.size, attempt.limit_price, attempt.stop_price
        order.trailing_deviation, order.trailing_unit = attempt.trailing_deviation, attempt.trailing_unit
        order.last_update_ms = now
        self.revision += 1
        new = order.trigger_event_json() if was_trigger else order.event_json()
        events: list[dict[str, object]] = [{"type": "EDIT", "old": old, "new": new, "reducedQuantity": None}]
        if was_trigger:
            self._trigger_history(order, now, "OrderTriggerUpdated", old=old_hist, reason="edited_by_user",
                                  algoId="", origin="Api")
        else:
            self._history(order, now, "OrderUpdated", old=old_hist, reason="edited_by_user", reducedQuantity="",
                          algoId="", origin="Api")
        quote = self.market.quote(order.symbol)
        if order.symbol not in self.suspended:
            if not was_trigger and self._crosses(order, quote) and order.order_type != "post":
                plan = self._plan_take(order, quote, order.limit_price, order.remaining)
                events.extend(self._take(order, plan, "takerAfterEdit", now))
            else:
                self._match_book(order.symbol, quote, now)
        out.update(status="edited", orderEvents=events)
        return out

    def _edit_refusal(self, order: Order, attempt: Order, params: Params) -> tuple[str | None, bool]:
        """Apply an edit's parameters to `attempt` (a copy of `order`); the editStatus that refuses it (or None) and
        whether a trailing stop's trigger price must be recalculated."""
        assert order.symbol is not None
        inst = self.instruments[order.symbol]
        untriggered = order.state == UNTRIGGERED
        mode = str(params.get("qtyMode") or self.edit_qty_mode).strip().upper()
        if mode not in QTY_MODES:
            return "invalidArgument", False
        if params.get("size") is not None:
            size = parse_decimal(params.get("size"))
            if size is None or not inst.is_valid_size(size):
                return "invalidSize", False
            total = order.filled + size if mode == "RELATIVE" else size
            if total <= order.filled:  # ABSOLUTE at or below what filled: nothing would stay open (harsher reading)
                return "invalidSize", False
            attempt.size = total
        stop_raw, limit_raw = params.get("stopPrice"), params.get("limitPrice")
        if stop_raw is not None:
            if not untriggered:
                return "orderForEditNotAStop", False
            if order.is_trailing:
                return "cannotEditTriggerPriceOfTrailingStop", False
            attempt.stop_price = parse_decimal(stop_raw)
            if attempt.stop_price is None or not inst.is_valid_price(attempt.stop_price):
                return "invalidPrice", False
        if limit_raw is not None:
            if untriggered and order.is_trailing:
                return "cannotEditLimitPriceOfTrailingStop", False
            attempt.limit_price = parse_decimal(limit_raw)
            if attempt.limit_price is None or not inst.is_valid_price(attempt.limit_price):
                return "invalidPrice", False
        if untriggered and not order.is_trailing and self.edit_requires_stop_price:
            if stop_raw is None or (order.limit_price is not None and limit_raw is None):
                return "invalidPrice", False
        deviation_raw, unit_raw = params.get("trailingStopMaxDeviation"), params.get("trailingStopDeviationUnit")
        if not (untriggered and order.is_trailing) or (deviation_raw is None and unit_raw is None):
            return None, False  # "Only relevant for trailing stop orders": ignored on the others
        if deviation_raw is not None:
            attempt.trailing_deviation = parse_decimal(deviation_raw)
        if unit_raw is not None:
            attempt.trailing_unit = str(unit_raw).strip().upper()
        if attempt.trailing_deviation is None or attempt.trailing_unit not in TRAILING_UNITS:
            return "invalidArgument", False
        if self._deviation_error(attempt.trailing_deviation, attempt.trailing_unit, inst) is not None:
            return "invalidPrice", False
        return None, True

    def batch(self, instructions: Iterable[Params], process_before_ms: int | None = None) -> list[dict[str, object]]:
        """Run batchorder instructions (send / edit / cancel) in order; returns `batchStatus`.

        Kraken documents `ProcessBefore` for the whole batch request, not per instruction: a batch processed
        after it has every instruction answered `wouldProcessAfterSpecifiedTime` and none applied. A
        `processBefore` inside an instruction is not documented and is ignored (the harsher reading).
        """
        with self.lock:
            now = self.sync()
            late = self.too_late(process_before_ms, now)
            self.batch_seq += 1
            self.request_context["batch"] = self.batch_seq  # the admin record names the request of each instruction
            results: list[dict[str, object]] = []
            for item in instructions:
                if not isinstance(item, Mapping):
                    results.append({"status": "invalidArgument", "orderEvents": []})
                    continue
                kind = str(item.get("order", "")).lower()
                result = self._batch_one(item, kind, now, late)
                if kind in ("send", "edit", "cancel"):
                    self.note_request("batchorder", kind, item, result, now)
                results.append(result)
            return results

    def _batch_one(self, item: Params, kind: str, now: int, late: bool) -> dict[str, object]:
        """One batch instruction's status entry."""
        if late and kind in ("send", "edit", "cancel"):
            late_entry: dict[str, object] = {"status": TOO_LATE, "orderEvents": []}
            if kind == "send":
                late_entry.update(order_tag=item.get("order_tag"), dateTimeReceived=iso(now))
            if item.get("cliOrdId") is not None:
                late_entry["cliOrdId"] = str(item.get("cliOrdId"))
            return late_entry
        if kind == "send":
            status = self._send(item, now, "batchorder")
            entry: dict[str, object] = {"status": status["status"], "order_tag": item.get("order_tag"),
                                        "dateTimeReceived": status["receivedTime"],
                                        "orderEvents": status.get("orderEvents", [])}
            if "order_id" in status:
                entry["order_id"] = status["order_id"]
            if "cliOrdId" in status:
                entry["cliOrdId"] = status["cliOrdId"]
            return entry
        if kind == "cancel":
            status = self._cancel_one(item, now, "order_id")
            status.pop("receivedTime", None)
            return status
        if kind == "edit":
            status = self._edit(item, now, "order_id")
            status.pop("receivedTime", None)
            if "orderId" in status:
                status["order_id"] = status.pop("orderId")
            return status
        return {"status": "invalidArgument", "orderEvents": []}

    # -- queries -------------------------------------------------------------------
    def open_orders(self) -> list[Order]:
        """Working orders (resting and untriggered), newest first: get-open-orders "The list is sorted descending by
        receivedTime"."""
        with self.lock:
            self.sync()
            oldest_first = sorted((o for book in self.working.values() for o in book.values()),
                                  key=lambda o: o.received_ms)
            return oldest_first[::-1]

    def orders_status(self, order_ids: list[str], cli_ord_ids: list[str], window_ms: int = 5_000) -> list[Order]:
        """Orders that are working or closed within `window_ms` (Kraken's 5 s), optionally filtered by ids.

        Kraken: "Returns information on specified orders which are open or were filled/cancelled in the last
        5 seconds" (https://docs.kraken.com/api/docs/futures-api/trading/get-order-status). A cliOrdId that
        several orders carried (it is unique only among open orders) returns every one of them still inside
        that window, rejected ones included (undocumented; the harsher reading).
        """
        with self.lock:
            now = self.sync()
            if order_ids or cli_ord_ids:
                wanted: list[Order | None] = [self.orders.get(i) for i in order_ids]
                for cli in cli_ord_ids:
                    wanted.extend(self.cli_ids.get(cli) or [])
                candidates = [o for o in dict.fromkeys(wanted) if o is not None]
            else:
                candidates = list(self.orders.values())
            return [
                o
                for o in candidates
                if o.working or (o.closed_ms is not None and now - o.closed_ms < window_ms)
            ]

    def recent_fills(self, last_fill_time_ms: int | None, limit: int = 100) -> list[Fill]:
        """Newest fills first, at most `limit`, before `last_fill_time_ms` if given."""
        with self.lock:
            self.sync()
            fills = self.fills  # in time order (appended as they happen)
            end = len(fills) if last_fill_time_ms is None else bisect.bisect_left(
                fills, last_fill_time_ms, key=lambda f: f.time_ms)
            return fills[max(0, end - limit):end][::-1]

    def open_positions(self) -> list[dict[str, object]]:
        """Non-zero positions in Kraken's `openPositions` shape."""
        with self.lock:
            self.sync()
            return [p.to_json(self.market.quote(s).mark) for s, p in sorted(self.positions.items()) if p.size]

    def accounts(self) -> dict[str, object]:
        """The `accounts` map: the flex (multi-collateral) account and an empty cash account."""
        with self.lock:
            self.sync()
            unrealized = self.unrealized()
            im, mm, orders_im = self.margin()
            equity = self.balance + unrealized
            available = equity - im - orders_im
            free = max(ZERO, min(self.balance, available))
            q = Decimal("1e-8")
            balance_text = fmt(self.balance.quantize(q))
            flex = {
                "currencies": {
                    "USD": {
                        "quantity": balance_text,
                        "value": balance_text,
                        "collateral": balance_text,
                        "available": fmt(free.quantize(q)),
                    }
                },
                "initialMargin": fmt(im.quantize(q)),
                "initialMarginWithOrders": fmt((im + orders_im).quantize(q)),
                "maintenanceMargin": fmt(mm.quantize(q)),
                "balanceValue": balance_text,
                "portfolioValue": fmt(equity.quantize(q)),
                "collateralValue": balance_text,
                "pnl": fmt(unrealized.quantize(q)),
                "unrealizedFunding": "0",
                "totalUnrealized": fmt(unrealized.quantize(q)),
                "totalUnrealizedAsMargin": fmt(unrealized.quantize(q)),
                "availableMargin": fmt(available.quantize(q)),
                "marginEquity": fmt(equity.quantize(q)),
                "type": "multiCollateralMarginAccount",
            }
            cash = {"balances": {"usd": "0", "xbt": "0", "eth": "0", "usdt": "0"}, "type": "cashAccount"}
            return {"flex": flex, "cash": cash}

    def history(self, which: str, params: Params) -> dict[str, object]:
        """`/history/v2/orders`, `/triggers` or `/executions`, paged by time as Kraken documents it; ValueError on bad
        input.

        Kraken (https://docs.kraken.com/api/docs/futures-api/history/get-order-events and get-execution-events):
        `since` / `before` in epoch ms, `sort` asc|desc (default desc), `count` (upper bound "determined by a global
        limit"), an opaque `continuation_token` (valid with the same sort) and `len` = number of elements returned.
        ccxt's recorded tokens are base64 of "<timestamp>/<sequence>"; ours name the first element of the next page
        the same way. Harsher readings (undocumented): events are published `history_lag_ms` after they happen, a
        page holds at most `history_page_max` elements (also the default count), and `since` is inclusive, `before`
        exclusive. The executions feed lists every fill of the account as one `Execution` event (`_execution_json`).
        """
        with self.lock:
            now = self.sync()
            since = whole_param(params.get("since"), "since")
            before = whole_param(params.get("before"), "before")
            tradeable = params.get("tradeable")
            desc = str(params.get("sort") or "desc").lower() != "asc"
            count_raw = params.get("count")
            count = self.history_page_max
            if count_raw not in (None, ""):
                wanted = parse_decimal(count_raw)
                if wanted is None or wanted < 1 or wanted != wanted.to_integral_value():
                    raise ValueError("count")
                count = min(int(wanted), self.history_page_max)
            token = params.get("continuation_token") or params.get("continuationToken")
            start_seq = None if not token else _decode_token(str(token))
            visible_until = now - self.history_lag_ms
            items: list[tuple[int, str | None]]
            if which == "executions":
                items = [(f.time_ms, f.symbol) for f in self.fills]
            else:
                events = self.order_history if which == "orders" else self.trigger_history
                items = [(e.time_ms, e.symbol) for e in events]
            selected = [
                seq
                for seq, (time_ms, symbol) in enumerate(items)
                if time_ms <= visible_until
                and (since is None or time_ms >= since)
                and (before is None or time_ms < before)
                and (tradeable is None or symbol == str(tradeable).upper())
                and (start_seq is None or (seq <= start_seq if desc else seq >= start_seq))
            ]
            if desc:
                selected.reverse()
            page = selected[:count]
            if which == "executions":
                elements = self._execution_elements(page)
            else:
                elements = [events[seq].to_json() for seq in page]
            out: dict[str, object] = {
                "accountUid": self.account_uid,
                "len": str(len(page)),
                "elements": elements,
                "serverTime": iso(now),
            }
            if len(selected) > count:
                seq = selected[count]
                out["continuationToken"] = base64.b64encode(f"{items[seq][0]}/{seq}".encode()).decode()
            return out

    def account_log_page(self, params: Params, infos: list[str]) -> dict[str, object]:
        """`GET /api/history/v3/account-log` (README rule 17); ValueError naming a bad parameter."""
        from simulator.account_log import response

        with self.lock:
            now = self.sync()
            entries = self.account_log.query(params, infos, now - self.history_lag_ms, self.account_log_page_max)
            return response(self.account_uid, entries, now)

    def _execution_elements(self, seqs: list[int]) -> list[dict[str, object]]:
        """The fills at these positions of `self.fills` as execution events, in the order asked.

        Shape of Kraken's documented example (get-execution-events): element {uid, timestamp, event: {Execution:
        {execution: {uid, makerOrder, takerOrder, timestamp, quantity, price, markPrice, limitFilled, usdValue,
        makerOrderData / takerOrderData {fee, positionSize}}, takerReducedQuantity}}}; each order snapshot {uid,
        accountUid, clientId, tradeable, direction (Buy/Sell), quantity, filled, timestamp, limitPrice, orderType,
        reduceOnly, lastUpdateTimestamp}. Our choices (undocumented): the execution `uid` is the fill's `fill_id` of
        /fills (Kraken does not say whether the two ids are equal, so the bot never relies on it); the other side is
        the simulated market's order (its own uid, `MARKET_ACCOUNT_UID`, no clientId); the account's snapshot shows
        the order as it was after this execution (`filled` includes it, `quantity` is what was left, as the order
        history's snapshots); times are epoch-ms strings as in ccxt's recorded history traffic; markPrice is the fill
        price (the simulator keeps no mark per fill).
        """
        wanted = set(seqs)
        filled_after: dict[int, Decimal] = {}
        running: dict[str, Decimal] = {}
        last = max(seqs, default=-1)
        for seq, fill in enumerate(self.fills[: last + 1]):
            running[fill.order_id] = running.get(fill.order_id, ZERO) + fill.size
            if seq in wanted:
                filled_after[seq] = running[fill.order_id]
        out: list[dict[str, object]] = []
        for seq in seqs:
            fill = self.fills[seq]
            order = self.orders.get(fill.order_id)
            stamp = str(fill.time_ms)
            ours: dict[str, object]
            if order is not None:
                ours = order.history_json(self.account_uid)
                size = order.size if order.size is not None else filled_after[seq]
                ours["filled"] = text(filled_after[seq])
                ours["quantity"] = text(max(ZERO, size - filled_after[seq]))
                ours["lastUpdateTimestamp"] = stamp
            else:  # not expected: every fill belongs to an order the account placed
                ours = {"uid": fill.order_id, "accountUid": self.account_uid, "tradeable": fill.symbol,
                        "direction": "Buy" if fill.side == "buy" else "Sell", "quantity": "0",
                        "filled": text(filled_after[seq]), "timestamp": stamp, "limitPrice": "",
                        "orderType": "IoC", "clientId": fill.cli_ord_id or "", "reduceOnly": False,
                        "lastUpdateTimestamp": stamp}
            market = {
                "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"sim-market-order/{fill.fill_id}")),
                "accountUid": MARKET_ACCOUNT_UID,
                "tradeable": fill.symbol,
                "direction": "Sell" if fill.side == "buy" else "Buy",
                "quantity": "0",
                "filled": text(fill.size),
                "timestamp": stamp,
                "limitPrice": text(fill.price),
                "orderType": "Limit" if fill.fill_type == "taker" else "IoC",
                "reduceOnly": False,
                "lastUpdateTimestamp": stamp,
            }
            taker = fill.fill_type != "maker"
            data = {"fee": text(fill.fee), "positionSize": ""}
            execution: dict[str, object] = {
                "uid": fill.fill_id,
                "makerOrder": market if taker else ours,
                "takerOrder": ours if taker else market,
                "timestamp": stamp,
                "quantity": text(fill.size),
                "price": text(fill.price),
                "markPrice": text(fill.price),
                "limitFilled": not taker,
                "usdValue": text((fill.size * fill.price).quantize(Decimal("0.01"))),
                "takerOrderData" if taker else "makerOrderData": data,
            }
            out.append({
                "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"sim-execution-event/{fill.fill_id}")),
                "timestamp": stamp,
                "event": {"Execution": {"execution": execution, "takerReducedQuantity": ""}},
            })
        return out

    # -- admin -----------------------------------------------------------------------
    def set_suspended(self, symbol: str, suspended: bool) -> None:
        """Suspend or resume a market."""
        with self.lock:
            self.sync()
            if suspended:
                self.suspended.add(symbol)
            else:
                self.suspended.discard(symbol)

    def set_price(self, symbol: str, price: float, mark_premium: float | None = None) -> Quote:
        """Move a market's fair price (and optionally the mark premium) now, then match."""
        with self.lock:
            now = self.sync()
            self.revision += 1
            path = self.market.paths[symbol]
            path.set_fair(price, now)
            if mark_premium is not None:
                path.set_mark_premium(mark_premium, now)
            quote = self.market.quote(symbol)
            if symbol not in self.suspended and self.working[symbol]:
                self._match_book(symbol, quote, now)
            return quote

    # -- state file ------------------------------------------------------------------
    def account_state(self) -> dict[str, object]:
        """The account's scalar state, id counters, client-id index and book order, for the state file."""
        return {
            "account_uid": self.account_uid,
            "account_id": self.account_id,
            "initial_balance": str(self.initial_balance),
            "balance": str(self.balance),
            "fees_paid": str(self.fees_paid),
            "funding_paid": str(self.funding_paid),
            "funding_hour": self.funding_hour,
            "ids_drawn": self.ids_drawn,
            "dead_man_ms": self.dead_man_ms,
            "cli_ids": {cli: [o.order_id for o in same] for cli, same in self.cli_ids.items()},
            "working": {symbol: list(book) for symbol, book in self.working.items() if book},
            "positions": [p.to_state() for _, p in sorted(self.positions.items())],
        }

    def restore_state(
        self,
        account: Mapping[str, Any],
        orders: list[Order],
        fills: list[Fill],
        order_history: list[HistoryEvent],
        trigger_history: list[HistoryEvent],
        order_requests: list[dict[str, object]] | None = None,
        account_log: AccountLog | None = None,
    ) -> None:
        """Carry on from a saved account; ValueError if it does not fit the configured markets."""
        by_id = {o.order_id: o for o in orders}
        if len(by_id) != len(orders):
            raise ValueError("duplicate order ids")
        positions = [Position.from_state(p) for p in account["positions"]]
        missing = sorted({p.symbol for p in positions if p.size and p.symbol not in self.instruments})
        working: dict[str, dict[str, Order]] = {s: {} for s in self.instruments}
        for symbol, ids in dict(account["working"]).items():
            if symbol not in self.instruments:
                missing.append(symbol)
                continue
            for order_id in ids:
                order = by_id[str(order_id)]
                if not order.working or order.symbol != symbol:
                    raise ValueError(f"order {order_id} is listed as working but is {order.state}")
                working[symbol][order.order_id] = order
        if missing:
            raise ValueError(f"positions or working orders in markets not configured: {', '.join(sorted(missing))}")
        cli_ids: dict[str, list[Order]] = {}
        for cli, ids in dict(account["cli_ids"]).items():
            cli_ids[str(cli)] = [by_id[str(i)] for i in (ids if isinstance(ids, list) else [ids])]
        ids_drawn = int(account["ids_drawn"])
        dead_man = account["dead_man_ms"]
        self.account_uid = str(account["account_uid"])
        self.account_id = str(account["account_id"])
        initial, balance, fees = (dec_load_req(account[k]) for k in ("initial_balance", "balance", "fees_paid"))
        self.initial_balance, self.balance, self.fees_paid = initial, balance, fees
        self.orders = by_id
        self.cli_ids = cli_ids
        self.working = working
        self.fills = fills
        self.positions = {p.symbol: p for p in positions}
        self.order_history = order_history
        self.trigger_history = trigger_history
        self.order_requests = list(order_requests or [])
        self.account_log = account_log or AccountLog()
        self.funding_paid = dec_load_req(account.get("funding_paid", "0"))
        if account.get("funding_hour") is not None:
            self.funding_hour = int(account["funding_hour"])
        self.batch_seq = max((int(cast(int, r.get("batch") or 0)) for r in self.order_requests), default=0)
        self.dead_man_ms = None if dead_man is None else int(dead_man)
        self.ids_drawn = ids_drawn
        self._ids = random.Random(stable_seed(self.seed, "ids", "resume", ids_drawn))
        self.revision += 1

    def dump(self) -> dict[str, object]:
        """Every order ever received, fills, positions and balances."""
        with self.lock:
            now = self.sync()
            im, mm, orders_im = self.margin()
            unrealized = self.unrealized()
            return {
                "now": now,
                "orders": [o.dump() for o in self.orders.values()],
                "fills": [f.dump() for f in self.fills],
                "positions": [
                    {
                        "symbol": s,
                        "size": fmt(p.size),
                        "avgPrice": fmt(p.avg_price),
                        "realizedPnl": fmt(p.realized_pnl),
                        "unrealizedPnl": fmt(p.unrealized(self.market.quote(s).mark)),
                    }
                    for s, p in sorted(self.positions.items())
                    if p.size or p.realized_pnl
                ],
                "balances": {
                    "USD": fmt(self.balance),
                    "fees": fmt(self.fees_paid),
                    "funding": fmt(self.funding_paid),
                    "unrealizedPnl": fmt(unrealized),
                    "initialMargin": fmt(im),
                    "maintenanceMargin": fmt(mm),
                    "ordersMargin": fmt(orders_im),
                    "availableMargin": fmt(self.balance + unrealized - im - orders_im),
                },
                "suspended": sorted(self.suspended),
            }
