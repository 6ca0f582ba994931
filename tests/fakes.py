"""An in-process Kraken Futures account speaking the raw endpoints the gateway calls through ccxt.

The gateway calls ccxt's implicit endpoints (`privateGetOpenorders`, `privatePostSendorder`, ...) and
parses Kraken's raw answers; this fake answers those same calls with Kraken's shapes, so unit tests of
single actors run the gateway's real parsing. End-to-end tests use the real ccxt client against the
simulator instead.

It is never kinder than Kraken (docs: https://docs.kraken.com/api/docs/futures-api/trading/...):
- a `cliOrdId` is refused (`clientOrderIdAlreadyExist`) only while an order carrying it is OPEN
  (send-order errors); a filled, cancelled or rejected order's id is taken again;
- `processBefore` is honoured on the fake's own clock: a request handled at or after it is not
  placed (`wouldProcessAfterSpecifiedTime`, send-order docs), and leaves no trace;
- orders/status shows open orders and closed ones for 5 s only (get-order-status docs);
- fills: the newest 100, older ones only by `lastFillTime` paging (get-fills docs);
- the order history (history/v2/orders) has OrderPlaced / OrderUpdated (fills) / OrderCancelled /
  OrderRejected events with `clientId` and `filled`; an order that executes on placement has ONE
  OrderPlaced whose snapshot already carries the fill, `quantity` being what is left (ccxt's
  recorded Kraken traffic); events show only after `history_lag_ms`;
- the execution history (history/v2/executions) lists every fill as an `Execution` event in Kraken's documented
  shape (get-execution-events), exactly as the simulator serves it: the account's order (`accountUid`
  "fake-account", `clientId`) on the taker side of a market fill and the maker side of a resting one, the market's
  order on the other; published after `history_lag_ms`; `since` inclusive, `before` exclusive, `sort` (desc by
  default), `count` capped by `history_page_max` (100), base64 "<ms>/<seq>" continuation tokens. The execution
  `uid` is the fill's `fill_id` (the simulator's choice) unless `execution_ids_equal_fill_ids` is False (Kraken
  does not document that the two ids are equal);
- a market order is an IoC: it fills in full at the fake's price unless a test sets a finite
  `depth` for its market, and what is left is cancelled;
- a reduce-only order that would not reduce the position is rejected (`wouldNotReducePosition`);
  one larger than the position is cut to it;
- batchorder (send-batch-order docs) takes `batchOrder` instructions (`order: "send"` with an `order_tag`,
  `order: "cancel"`) and the request-level `ProcessBefore` (a form field beside `json=`; here the request dict's
  `ProcessBefore` key, which exchange.client.KrakenFutures turns into that field): a batch handled at or after
  it places nothing and answers every instruction `wouldProcessAfterSpecifiedTime`; a `processBefore` inside an
  instruction is ignored (undocumented there: the harsher reading, as the simulator); a malformed ProcessBefore
  or a batch of more than `batch_max_instructions` (100, the simulator's harsher reading of an undocumented
  limit) is refused whole (`invalidArgument`, ccxt BadRequest), nothing placed. Each element of `batchStatus`
  carries the instruction's `order_tag` (and `cliOrdId` when it has one).
"""

from __future__ import annotations

import base64
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from typing import Any

import ccxt

STATUS_WINDOW_MS = 5_000  # orders/status shows a closed order this long (Kraken: "the last 5 seconds")
FILLS_PAGE = 100  # fills returns the newest 100
TOO_LATE = "wouldProcessAfterSpecifiedTime"


def wall_ms() -> int:
    """The wall clock in epoch ms."""
    return time.time_ns() // 1_000_000


def iso(ms: int) -> str:
    """Epoch ms as Kraken's ISO-8601 text."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_iso(text: Any) -> int:
    """Kraken's ISO-8601 text as epoch ms (a bad one raises ccxt.BadRequest, as Kraken's invalidArgument)."""
    try:
        return int(datetime.fromisoformat(str(text)).timestamp() * 1000)
    except ValueError:
        raise ccxt.BadRequest(f"krakenfutures invalidArgument: {text!r} is not a time") from None


class TestClock:
    """A clock a test moves by hand: `seconds()` is monotonic time for the gateway, `clock()` epoch ms for both."""

    __test__ = False

    def __init__(self, start_ms: int | None = None) -> None:
        self.ms = start_ms if start_ms is not None else wall_ms()
        self._start = self.ms
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            return self.ms

    def seconds(self) -> float:
        """Monotonic seconds (1000 at the start)."""
        with self._lock:
            return 1000.0 + (self.ms - self._start) / 1000

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        with self._lock:
            self.ms += int(seconds * 1000)


def ccxt_market(symbol: str, exchange_id: str, amount_step: float, price_tick: float) -> dict[str, Any]:
    """A ccxt market dict as krakenfutures lists a linear perpetual."""
    base, rest = symbol.split("/")
    quote, settle = rest.split(":")
    return {
        "id": exchange_id,
        "symbol": symbol,
        "base": base,
        "quote": quote,
        "settle": settle,
        "type": "swap",
        "swap": True,
        "linear": True,
        "contract": True,
        "contractSize": 1.0,
        "precision": {"amount": amount_step, "price": price_tick},
        "limits": {"amount": {"min": amount_step, "max": None}},
    }


DEFAULT_SYMBOLS = {
    "BTC/USD:USD": ("PF_XBTUSD", 0.0001, 1.0, 50_000.0),
    "ETH/USD:USD": ("PF_ETHUSD", 0.001, 0.1, 3_000.0),
    "SOL/USD:USD": ("PF_SOLUSD", 0.01, 0.01, 150.0),
    "XRP/USD:USD": ("PF_XRPUSD", 1.0, 0.0001, 0.6),
    "LTC/USD:USD": ("PF_LTCUSD", 0.01, 0.01, 80.0),
    "DOGE/USD:USD": ("PF_DOGEUSD", 1.0, 0.000001, 0.1),
    "ADA/USD:USD": ("PF_ADAUSD", 1.0, 0.000001, 0.4),
    "DOT/USD:USD": ("PF_DOTUSD", 0.1, 0.001, 6.0),
    "LINK/USD:USD": ("PF_LINKUSD", 0.1, 0.001, 14.0),
    "AVAX/USD:USD": ("PF_AVAXUSD", 0.1, 0.001, 30.0),
    "ATOM/USD:USD": ("PF_ATOMUSD", 0.1, 0.001, 8.0),
    "UNI/USD:USD": ("PF_UNIUSD", 0.1, 0.001, 7.0),
}


def _num(value: float) -> str:
    return format(Decimal(str(value)).normalize(), "f")


@dataclass
class FakeOrder:
    """An order the fake exchange holds."""

    id: str
    client_order_id: str | None
    symbol: str  # unified
    market_id: str
    side: str
    type: str  # Kraken's orderType: lmt or mkt
    amount: float
    price: float | None
    reduce_only: bool
    received_ms: int
    status: str = "open"  # open, filled, canceled, rejected
    filled: float = 0.0
    closed_ms: int | None = None
    reason: str = "new_user_order"

    @property
    def remaining(self) -> float:
        return round(self.amount - self.filled, 12)

    def history_json(self) -> dict[str, Any]:
        """The order snapshot of a history event (`quantity` is what is left, as Kraken's traffic shows)."""
        return {"uid": self.id, "tradeable": self.market_id, "direction": "Buy" if self.side == "buy" else "Sell",
                "quantity": _num(self.remaining if self.status != "rejected" else self.amount),
                "filled": _num(self.filled), "timestamp": str(self.received_ms),
                "limitPrice": _num(self.price) if self.price is not None else "",
                "orderType": "Limit" if self.type == "lmt" else "IoC", "clientId": self.client_order_id or "",
                "reduceOnly": self.reduce_only, "lastUpdateTimestamp": str(self.closed_ms or self.received_ms)}

    def event_json(self) -> dict[str, Any]:
        """The order in a sendorder/cancelorder order event."""
        return {"orderId": self.id, "cliOrdId": self.client_order_id, "type": self.type, "symbol": self.market_id,
                "side": self.side, "quantity": self.amount, "filled": self.filled, "limitPrice": self.price,
                "reduceOnly": self.reduce_only, "timestamp": iso(self.received_ms)}


class FakeExchange:
    """Thread-safe Kraken Futures account with the raw endpoints; market orders fill, limit orders rest."""

    def __init__(self, symbols: dict[str, tuple[str, float, float, float]] | None = None,
                 clock: Callable[[], int] | None = None) -> None:
        spec = symbols or DEFAULT_SYMBOLS
        self.now_ms: Callable[[], int] = clock or wall_ms
        self.markets = {s: ccxt_market(s, ex_id, step, tick) for s, (ex_id, step, tick, _) in spec.items()}
        self.markets_by_id = {m["id"]: [m] for m in self.markets.values()}  # ccxt v4 shape
        self.prices = {s: price for s, (_, _, _, price) in spec.items()}
        self.depth: dict[str, float] = {}  # symbol -> the most one market order can fill (default: all)
        self.history_lag_ms = 0  # history events (orders, executions) show this long after they happen
        self.history_page_max = 100  # most elements one executions page holds (the simulator's default)
        self.execution_ids_equal_fill_ids = True  # the simulator's choice; False: each execution has its own uid
        self.orders: dict[str, FakeOrder] = {}  # every order that got an id, rejected ones too
        self._with_cid: dict[str, list[FakeOrder]] = {}  # orders by the cliOrdId they carried
        self.fills: list[dict[str, Any]] = []  # Kraken's fill records, oldest first
        self.history: list[tuple[int, dict[str, Any]]] = []  # (time ms, history element), oldest first
        self.positions: dict[str, float] = {}  # signed contracts
        self.entry: dict[str, float] = {}
        self.create_calls: list[dict[str, Any]] = []  # every order request (sendorder, batch send), in order
        self.ohlcv: dict[str, list[list[float]]] = {}
        # hooks: before_create is called with the call record before the exchange handles it (may block or
        # raise: the request never arrived); create_response replaces the raw sendorder answer (may raise:
        # the order was handled, the answer lost)
        self.before_create: Callable[[dict[str, Any]], None] | None = None
        self.create_response: Callable[[dict[str, Any]], Any] | None = None
        self.batch_calls: list[dict[str, Any]] = []  # every batchorder request as received (its send
        # instructions are in create_calls too, each with "endpoint": "batchorder")
        self.batch_max_instructions = 100
        self.batch_response: Callable[[dict[str, Any]], Any] | None = None  # replaces the raw batchorder answer
        self.fail_open_orders: BaseException | None = None
        self.fail_positions: BaseException | None = None
        self.fail: dict[str, BaseException] = {}  # endpoint (fills, history, orders/status, cancelorder) -> error
        self.calls: list[str] = []  # every endpoint called, in order
        # the flex account's availableMargin the accounts endpoint reports (get-accounts); a test lowers it to see
        # an entry refused for margin
        self.available_margin = "1000000"
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)

    # --- ccxt surface ------------------------------------------------------------------------

    def load_markets(self, reload: bool = False) -> dict[str, Any]:
        return self.markets

    def market(self, symbol: str) -> dict[str, Any]:
        if symbol in self.markets:
            return self.markets[symbol]
        found = self.markets_by_id.get(symbol)
        if found:
            return found[0]
        raise ccxt.BadSymbol(f"krakenfutures does not have market symbol {symbol}")

    def create_order_request(self, symbol: str, type: str, side: str, amount: float, price: float | None = None,
                             params: dict | None = None) -> dict[str, Any]:
        """What ccxt's krakenfutures.create_order_request builds for market and limit orders."""
        market = self.market(symbol)
        params = dict(params or {})
        step = Decimal(str(market["precision"]["amount"]))
        tick = Decimal(str(market["precision"]["price"]))
        size = (Decimal(str(amount)) / step).to_integral_value(ROUND_DOWN) * step
        request: dict[str, Any] = {"symbol": market["id"], "side": side, "size": _num(float(size))}
        cid = params.pop("clientOrderId", None) or params.pop("cliOrdId", None)
        if cid is not None:
            request["cliOrdId"] = cid
        if params.pop("reduceOnly", None) is True:
            request["reduceOnly"] = True
        request["orderType"] = {"limit": "lmt", "market": "mkt"}[type]
        if type == "limit":
            if price is None:
                raise ccxt.ArgumentsRequired("krakenfutures createOrder() requires a price argument for lmt orders")
            request["limitPrice"] = _num(float((Decimal(str(price)) / tick).to_integral_value(ROUND_HALF_EVEN) * tick))
        request.update(params)  # processBefore and the rest pass through
        return request

    def fetch_ohlcv(self, symbol: str, timeframe: str = "1m", since: Any = None, limit: Any = None,
                    params: Any = None) -> list[list[float]]:
        with self._lock:
            rows = list(self.ohlcv.get(symbol, []))
        if since is not None:
            rows = [r for r in rows if r[0] >= since]
        return rows

    # --- raw private endpoints ---------------------------------------------------------------

    def _enter(self, endpoint: str, error: BaseException | None = None) -> None:
        with self._lock:
            self.calls.append(endpoint)
        error = error or self.fail.get(endpoint)
        if error is not None:
            raise error

    def _answer(self, now: int, **fields: Any) -> dict[str, Any]:
        return {"result": "success", **fields, "serverTime": iso(now)}

    def privateGetOpenorders(self, params: dict | None = None) -> dict[str, Any]:
        self._enter("openorders", self.fail_open_orders)
        with self._lock:
            now = self.now_ms()
            rows = [{"order_id": o.id, **({"cliOrdId": o.client_order_id} if o.client_order_id else {}),
                     "symbol": o.market_id, "side": o.side, "orderType": o.type,
                     **({"limitPrice": _num(o.price)} if o.price is not None else {}),
                     "unfilledSize": _num(o.remaining), "filledSize": _num(o.filled), "reduceOnly": o.reduce_only,
                     "receivedTime": iso(o.received_ms), "lastUpdateTime": iso(o.received_ms),
                     "status": "untouched" if o.filled == 0 else "partiallyFilled"}
                    for o in self.orders.values() if o.status == "open"]
            return self._answer(now, openOrders=rows)

    def privateGetAccounts(self, params: dict | None = None) -> dict[str, Any]:
        """accounts: the flex (multi-collateral) account with its availableMargin (get-accounts docs)."""
        self._enter("accounts")
        return self._answer(self.now_ms(), accounts={"flex": {"type": "multiCollateralMarginAccount",
                                                              "availableMargin": self.available_margin},
                                                     "cash": {"type": "cashAccount", "balances": {}}})

    def privateGetOpenpositions(self, params: dict | None = None) -> dict[str, Any]:
        self._enter("openpositions", self.fail_positions)
        with self._lock:
            rows = [{"side": "long" if c > 0 else "short", "symbol": self.markets[s]["id"],
                     "price": _num(self.entry.get(s) or self.prices[s]), "fillTime": iso(self.now_ms()),
                     "size": _num(abs(c)), "unrealizedPnl": 0.0}
                    for s, c in self.positions.items() if c != 0]
            return self._answer(self.now_ms(), openPositions=rows)

    def privateGetFills(self, params: dict | None = None) -> dict[str, Any]:
        self._enter("fills")
        params = params or {}
        with self._lock:
            rows = self.fills
            if params.get("lastFillTime") is not None:
                before = parse_iso(params["lastFillTime"])
                rows = [f for f in rows if f["_ms"] < before]
            newest = sorted(rows, key=lambda f: f["_ms"], reverse=True)[:FILLS_PAGE]
            return self._answer(self.now_ms(), fills=[{k: v for k, v in f.items() if k != "_ms"} for f in newest])

    def privateGetOrdersStatus(self, params: dict | None = None) -> dict[str, Any]:
        self._enter("orders/status")
        params = params or {}
        ids = set(params.get("orderIds") or [])
        cids = set(params.get("cliOrdIds") or [])
        with self._lock:
            now = self.now_ms()
            rows = []
            for o in self.orders.values():
                if o.id not in ids and (o.client_order_id is None or o.client_order_id not in cids):
                    continue
                if o.status != "open" and (o.closed_ms is None or now - o.closed_ms >= STATUS_WINDOW_MS):
                    continue  # closed more than 5 s ago: forgotten here
                status = {"open": "ENTERED_BOOK", "filled": "FULLY_EXECUTED", "canceled": "CANCELLED",
                          "rejected": "REJECTED"}[o.status]
                rows.append({"order": {"type": "ORDER", "orderId": o.id, "cliOrdId": o.client_order_id,
                                       "symbol": o.market_id, "side": o.side, "quantity": o.amount,
                                       "filled": o.filled, "limitPrice": o.price, "reduceOnly": o.reduce_only,
                                       "timestamp": iso(o.received_ms),
                                       "lastUpdateTimestamp": iso(o.closed_ms or o.received_ms)},
                             "status": status, "updateReason": o.reason if o.status != "rejected" else None,
                             "error": o.reason if o.status == "rejected" else None})
            return self._answer(now, orders=rows)

    def historyGetOrders(self, params: dict | None = None) -> dict[str, Any]:
        self._enter("history")
        params = params or {}
        size = int(params.get("count") or 500)
        with self._lock:
            now = self.now_ms()
            visible = [e for t, e in self.history if t + self.history_lag_ms <= now
                       and t >= int(params.get("since") or 0)]
            if params.get("sort", "desc") != "asc":
                visible.reverse()
            token = params.get("continuation_token")
            start = int(base64.b64decode(token).decode()) if token else 0
            page = visible[start:start + size]
            out: dict[str, Any] = {"accountUid": "fake-account", "len": str(len(page)), "elements": page}
            if start + size < len(visible):
                out["continuationToken"] = base64.b64encode(str(start + size).encode()).decode()
            return out

    def historyGetExecutions(self, params: dict | None = None) -> dict[str, Any]:
        """history/v2/executions as the simulator serves it (simulator.engine.Exchange.history)."""
        self._enter("executions")
        params = params or {}
        with self._lock:
            now = self.now_ms()
            since = int(params["since"]) if params.get("since") not in (None, "") else None
            before = int(params["before"]) if params.get("before") not in (None, "") else None
            desc = str(params.get("sort") or "desc").lower() != "asc"
            count = min(int(params.get("count") or self.history_page_max), self.history_page_max)
            token = params.get("continuation_token")
            start = int(base64.b64decode(token).decode().split("/", 1)[1]) if token else None
            selected = [seq for seq, f in enumerate(self.fills)
                        if f["_ms"] + self.history_lag_ms <= now and (since is None or f["_ms"] >= since)
                        and (before is None or f["_ms"] < before)
                        and (start is None or (seq <= start if desc else seq >= start))]
            if desc:
                selected.reverse()
            page = selected[:count]
            out: dict[str, Any] = {"accountUid": "fake-account", "len": str(len(page)),
                                   "elements": [self._execution(self.fills[seq]) for seq in page],
                                   "serverTime": iso(now)}
            if len(selected) > count:
                seq = selected[count]
                out["continuationToken"] = base64.b64encode(f"{self.fills[seq]['_ms']}/{seq}".encode()).decode()
            return out

    def _execution(self, fill: dict[str, Any]) -> dict[str, Any]:
        order = self.orders[fill["order_id"]]
        stamp = str(fill["_ms"])
        ours = {**order.history_json(), "accountUid": "fake-account", "lastUpdateTimestamp": stamp}
        market = {"uid": f"market-{fill['fill_id']}", "accountUid": "market-account", "tradeable": fill["symbol"],
                  "direction": "Sell" if fill["side"] == "buy" else "Buy", "quantity": "0", "filled": fill["size"],
                  "timestamp": stamp, "limitPrice": fill["price"], "orderType": "Limit", "reduceOnly": False,
                  "lastUpdateTimestamp": stamp}
        taker = fill["fillType"] == "taker"
        uid = fill["fill_id"] if self.execution_ids_equal_fill_ids else f"exec-{fill['fill_id']}"
        execution = {"uid": uid, "makerOrder": market if taker else ours, "takerOrder": ours if taker else market,
                     "timestamp": stamp, "quantity": fill["size"], "price": fill["price"], "markPrice": fill["price"],
                     "limitFilled": not taker, "usdValue": _num(float(fill["size"]) * float(fill["price"]))}
        return {"uid": f"event-{fill['fill_id']}", "timestamp": stamp,
                "event": {"Execution": {"execution": execution, "takerReducedQuantity": ""}}}

    def privatePostSendorder(self, request: dict[str, Any]) -> dict[str, Any]:
        call = self._call(request)
        with self._lock:
            self.calls.append("sendorder")
            self.create_calls.append(call)
            self._changed.notify_all()
        if self.before_create is not None:
            self.before_create(call)
        error = self.fail.get("sendorder")
        if error is not None:
            raise error
        with self._lock:
            now = self.now_ms()
            status = self._send(request, now)
            self._changed.notify_all()
        answer = self._answer(now, sendStatus=status)
        if self.create_response is not None:
            return self.create_response(answer)
        return answer

    def privatePostBatchorder(self, request: dict[str, Any]) -> dict[str, Any]:
        """batchorder: the instructions in order, all refused when the request's ProcessBefore has passed."""
        instructions = request.get("batchOrder")
        before = request.get("ProcessBefore")
        sends = [self._call(i, "batchorder", before) for i in instructions or [] if isinstance(i, dict)
                 and str(i.get("order", "")).lower() == "send"]
        with self._lock:
            self.calls.append("batchorder")
            self.batch_calls.append(dict(request))
            self.create_calls.extend(sends)
            self._changed.notify_all()
        if self.before_create is not None:
            for call in sends:
                self.before_create(call)  # may block or raise: the request never arrived
        error = self.fail.get("batchorder")
        if error is not None:
            raise error
        if not isinstance(instructions, list):
            raise ccxt.BadRequest("krakenfutures {\"result\":\"error\",\"error\":\"invalidArgument: batchOrder\"}")
        if len(instructions) > self.batch_max_instructions:
            raise ccxt.BadRequest(f"krakenfutures invalidArgument: batchOrder holds {len(instructions)} instructions, "
                                  f"more than {self.batch_max_instructions}")
        deadline = parse_iso(before) if before is not None else None
        with self._lock:
            now = self.now_ms()
            statuses = [self._batch_one(item, now, deadline is not None and now >= deadline) for item in instructions]
            self._changed.notify_all()
        answer = self._answer(now, batchStatus=statuses)
        if self.batch_response is not None:
            return self.batch_response(answer)
        return answer

    def _batch_one(self, item: Any, now: int, late: bool) -> dict[str, Any]:
        if not isinstance(item, dict):
            return {"status": "invalidArgument", "orderEvents": []}
        kind = str(item.get("order", "")).lower()
        cid = item.get("cliOrdId")
        if kind not in ("send", "cancel"):
            return {"status": "invalidArgument", "orderEvents": []}
        if late:  # processed at or after the request's ProcessBefore: nothing applied, no trace
            entry: dict[str, Any] = {"status": TOO_LATE, "orderEvents": []}
            if kind == "send":
                entry.update(order_tag=item.get("order_tag"), dateTimeReceived=iso(now))
            if cid is not None:
                entry["cliOrdId"] = cid
            return entry
        if kind == "cancel":
            return self._cancel(item, now)
        # a processBefore inside an instruction is not documented: ignored (the harsher reading)
        status = self._send({k: v for k, v in item.items() if k not in ("order", "order_tag", "processBefore")}, now)
        entry = {"status": status["status"], "order_tag": item.get("order_tag"),
                 "dateTimeReceived": status["receivedTime"], "orderEvents": status.get("orderEvents", [])}
        for key in ("order_id", "cliOrdId"):
            if key in status:
                entry[key] = status[key]
        return entry

    def privatePostCancelorder(self, params: dict[str, Any]) -> dict[str, Any]:
        self._enter("cancelorder")
        with self._lock:
            answer = self._cancel(params, self.now_ms())
            return self._answer(self.now_ms(), cancelStatus=answer)

    def _cancel(self, params: dict[str, Any], now: int) -> dict[str, Any]:
        with self._lock:
            order = self.orders.get(str(params.get("order_id") or ""))
            if order is None and params.get("cliOrdId"):
                order = next((o for o in self.orders.values() if o.client_order_id == params["cliOrdId"]
                              and o.status == "open"), None)
            if order is None or order.status in ("rejected", "canceled"):
                return {"status": "notFound", "receivedTime": iso(now), "orderEvents": []}
            if order.status == "filled":
                return {"status": "filled", "order_id": order.id, "receivedTime": iso(now), "orderEvents": []}
            self._close(order, "canceled", now, "cancelled_by_user")
            self._changed.notify_all()
            return {"status": "cancelled", "order_id": order.id, "receivedTime": iso(now),
                    "orderEvents": [{"uid": order.id, "order": order.event_json(), "type": "CANCEL"}]}

    # --- the engine -------------------------------------------------------------------------

    def _call(self, request: dict[str, Any], endpoint: str = "sendorder", batch_before: Any = None) -> dict[str, Any]:
        """One order request as tests read it (a sendorder, or one send instruction of a batchorder, whose
        processBefore is the request's): the raw request plus its fields in unified terms."""
        market = self.markets_by_id.get(str(request.get("symbol")))
        return {
            "endpoint": endpoint,
            "order_tag": request.get("order_tag"),
            "request": dict(request),
            "symbol": market[0]["symbol"] if market else request.get("symbol"),
            "side": request.get("side"),
            "type": {"mkt": "market", "lmt": "limit"}.get(str(request.get("orderType")), request.get("orderType")),
            "amount": float(request.get("size") or 0),
            "price": float(request["limitPrice"]) if request.get("limitPrice") is not None else None,
            "cliOrdId": request.get("cliOrdId"),
            "reduceOnly": request.get("reduceOnly") is True,
            "processBefore": request.get("processBefore") if endpoint == "sendorder" else batch_before,
        }

    def _event(self, order: FakeOrder, now: int, name: str, reason: str, old: dict[str, Any] | None = None) -> None:
        payload: dict[str, Any] = ({"oldOrder": old, "newOrder": order.history_json()} if old is not None
                                   else {"order": order.history_json()})
        payload.update(reason=reason, algoId="", origin="Api")
        self.history.append((now, {"uid": f"ev-{next(self._ids)}", "timestamp": str(now), "event": {name: payload}}))

    def _new_order(self, request: dict[str, Any], market: dict[str, Any], now: int, amount: float) -> FakeOrder:
        price = request.get("limitPrice")
        order = FakeOrder(id=f"fake-{next(self._ids)}", client_order_id=request.get("cliOrdId"),
                          symbol=market["symbol"], market_id=market["id"], side=str(request.get("side")),
                          type=str(request.get("orderType")), amount=amount,
                          price=float(price) if price is not None else None,
                          reduce_only=request.get("reduceOnly") in (True, "true"), received_ms=now)
        self._add(order)
        return order

    def _add(self, order: FakeOrder) -> None:
        self.orders[order.id] = order
        if order.client_order_id is not None:  # the cliOrdId check looks only at orders that carried the id
            self._with_cid.setdefault(order.client_order_id, []).append(order)

    def _reject(self, order: FakeOrder, status: str, now: int) -> dict[str, Any]:
        order.status, order.closed_ms, order.reason = "rejected", now, status
        self._event(order, now, "OrderRejected", status)
        return {"status": status, "order_id": order.id, "cliOrdId": order.client_order_id,
                "receivedTime": iso(now), "orderEvents": [{"type": "REJECT", "uid": order.id,
                                                           "order": order.event_json(), "reason": status}]}

    def _send(self, request: dict[str, Any], now: int) -> dict[str, Any]:
        cid = request.get("cliOrdId")
        plain = {"receivedTime": iso(now), "orderEvents": [], **({"cliOrdId": cid} if cid else {})}
        if request.get("processBefore") is not None and now >= parse_iso(request["processBefore"]):
            return {"status": TOO_LATE, **plain}  # not processed: no order, no trace
        market = self.markets_by_id.get(str(request.get("symbol")))
        if not market or request.get("side") not in ("buy", "sell") or request.get("orderType") not in ("mkt", "lmt"):
            return {"status": "invalidArgument", **plain}
        try:
            amount = float(request.get("size"))
        except (TypeError, ValueError):
            return {"status": "invalidSize", **plain}
        if not amount > 0:
            return {"status": "invalidSize", **plain}
        if cid is not None and any(o.status == "open" for o in self._with_cid.get(cid, ())):
            return {"status": "clientOrderIdAlreadyExist", **plain}
        order = self._new_order(request, market[0], now, amount)
        symbol = order.symbol
        signed = amount if order.side == "buy" else -amount
        current = self.positions.get(symbol, 0.0)
        if order.reduce_only:
            if current == 0 or (current > 0) == (signed > 0):
                return self._reject(order, "wouldNotReducePosition", now)
            order.amount = min(amount, abs(current))  # Kraken cuts a reduce-only order to the position
        out = {"status": "placed", "order_id": order.id, "receivedTime": iso(now), **({"cliOrdId": cid} if cid else {})}
        events: list[dict[str, Any]] = []
        if order.type == "mkt":
            take = min(order.amount, self.depth.get(symbol, float("inf")))
            if take <= 0:
                return self._reject(order, "iocWouldNotExecute", now)
            fill = self._fill(order, take, self.prices[symbol], now)
            events.append({"type": "EXECUTION", "executionId": fill["fill_id"], "price": fill["price"],
                           "amount": fill["size"], "orderPriorEdit": None, "orderPriorExecution": order.event_json()})
            self._event(order, now, "OrderPlaced", "new_user_order")  # one event, already carrying the fill
            if order.remaining > 0:  # an IoC remainder never rests
                self._close(order, "canceled", now, "ioc_would_not_execute_reason")
                events.append({"type": "CANCEL", "uid": order.id, "order": order.event_json()})
            else:
                order.status, order.closed_ms, order.reason = "filled", now, "full_fill"
        else:
            self._event(order, now, "OrderPlaced", "new_user_order")
            events.append({"type": "PLACE", "uid": order.id, "order": order.event_json()})
        out["orderEvents"] = events
        return out

    def _close(self, order: FakeOrder, status: str, now: int, reason: str) -> None:
        order.status, order.closed_ms, order.reason = status, now, reason
        if status == "canceled":
            self._event(order, now, "OrderCancelled", reason)

    def _fill(self, order: FakeOrder, amount: float, price: float, now: int) -> dict[str, Any]:
        symbol = order.symbol
        signed = amount if order.side == "buy" else -amount
        current = self.positions.get(symbol, 0.0)
        if current == 0 or (current > 0) == (signed > 0):
            total = abs(current) + amount
            self.entry[symbol] = ((self.entry.get(symbol) or price) * abs(current) + price * amount) / total
        self.positions[symbol] = round(current + signed, 12)
        if self.positions[symbol] == 0:
            self.entry.pop(symbol, None)
        order.filled = round(order.filled + amount, 12)
        fill = {"fill_id": f"fill-{next(self._ids)}", "symbol": order.market_id, "side": order.side,
                "order_id": order.id, **({"cliOrdId": order.client_order_id} if order.client_order_id else {}),
                "size": _num(amount), "price": _num(price), "fillTime": iso(now),
                "fillType": "taker" if order.type == "mkt" else "maker", "_ms": now}
        self.fills.append(fill)
        return fill

    # --- test helpers ------------------------------------------------------------------------

    def fill_resting(self, order_id: str, price: float | None = None, amount: float | None = None) -> None:
        """Fill a resting limit order now, in full or by `amount` (as if the market reached it)."""
        with self._lock:
            now = self.now_ms()
            order = self.orders[order_id]
            assert order.status == "open", f"{order_id} is {order.status}"
            old = order.history_json()
            take = min(order.remaining, amount if amount is not None else order.remaining)
            self._fill(order, take, price if price is not None else order.price or self.prices[order.symbol], now)
            if order.remaining <= 0:
                order.status, order.closed_ms, order.reason = "filled", now, "full_fill"
            self._event(order, now, "OrderUpdated", "full_fill" if order.remaining <= 0 else "partial_fill", old)
            self._changed.notify_all()

    def cancel_outside(self, order_id: str) -> None:
        """Cancel a resting order as someone else would (the web UI, the dead man's switch)."""
        with self._lock:
            order = self.orders[order_id]
            assert order.status == "open", f"{order_id} is {order.status}"
            self._close(order, "canceled", self.now_ms(), "cancelled_by_user")
            self._changed.notify_all()

    def place_external(self, symbol: str, side: str, amount: float, price: float,
                       client_order_id: str | None = None) -> FakeOrder:
        """An order placed outside the system (e.g. by hand in the web UI): a resting limit order."""
        with self._lock:
            now = self.now_ms()
            market = self.markets[symbol]
            order = FakeOrder(id=f"ext-{next(self._ids)}", client_order_id=client_order_id, symbol=symbol,
                              market_id=market["id"], side=side, type="lmt", amount=amount, price=price,
                              reduce_only=False, received_ms=now)
            self._add(order)
            self._event(order, now, "OrderPlaced", "new_user_order")
            return order

    def set_position(self, symbol: str, contracts: float, entry: float) -> None:
        """Open (or set) a position directly, as if filled earlier."""
        with self._lock:
            self.positions[symbol] = contracts
            self.entry[symbol] = entry

    def wait_for_create_calls(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until at least `count` order requests (sendorders and batch send instructions) arrived."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self.create_calls) >= count, timeout)

    def placed_orders(self) -> list[FakeOrder]:
        """Orders the exchange placed (rejected ones are not listed)."""
        with self._lock:
            return [o for o in self.orders.values() if o.status != "rejected"]
