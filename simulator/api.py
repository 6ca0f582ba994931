"""Kraken Futures REST API semantics: routing, authentication, cost budget, parameters and JSON shapes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, unquote_plus

from loguru import logger

from exchange.budget import account_log_cost
from simulator.auth import Authenticator
from simulator.engine import Exchange
from simulator.instruments import FEE_SCHEDULE_LINEAR, FEE_SCHEDULE_PGB, resolve_symbol
from simulator.orders import TRAILING_UNITS, iso, parse_decimal, trailing_argument_error
from simulator.prices import INTERVALS_MS, PRICE_KINDS, fmt
from simulator.ratelimit import HISTORY_COSTS, RateLimiter, derivatives_cost

DERIVATIVES_PREFIX = "/derivatives/api/v3/"
CHARTS_PREFIX = "/api/charts/v1/"
HISTORY_PREFIX = "/api/history/v2/"
# account-log: "GET https://futures.kraken.com/api/history/v3/account-log" (ccxt: historyGetAccountLog, version v3)
ACCOUNT_LOG_PATH = "/api/history/v3/account-log"

PUBLIC_GET = frozenset({"instruments", "tickers", "orderbook", "feeschedules"})
PRIVATE_GET = frozenset({"accounts", "openpositions", "openorders", "fills", "orders/status", "feeschedules/volumes"})
PRIVATE_POST = frozenset(
    {"sendorder", "editorder", "cancelorder", "cancelallorders", "cancelallordersafter", "batchorder", "orders/status"}
)
HISTORY_GET = frozenset({"orders", "triggers", "executions"})
ORDER_ENTRY = ("/sendorder", "/batchorder", "/editorder", "/cancelorder")


@dataclass(frozen=True)
class Route:
    """Where a request goes: its endpoint name (used for costs and faults) and API family."""

    endpoint: str
    family: str  # public | private | charts | history | unknown
    allowed_methods: frozenset[str] = frozenset({"GET"})
    args: tuple[str, ...] = ()


@dataclass
class ApiResponse:
    """An HTTP status and a JSON body."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> bytes:
        """The body as compact UTF-8 JSON (an EncodedItems value is spliced in as the array it already is)."""
        spliced = {k: v for k, v in self.body.items() if isinstance(v, EncodedItems)}
        if not spliced:
            return json.dumps(self.body, separators=(",", ":"), default=str).encode()
        rest = json.dumps({k: v for k, v in self.body.items() if k not in spliced}, separators=(",", ":"), default=str)
        arrays = "".join(f",{json.dumps(k)}:[{','.join(v.items)}]" for k, v in spliced.items())
        return (rest[:-1] + arrays + "}").encode() if rest != "{}" else ("{" + arrays[1:] + "}").encode()


@dataclass(frozen=True)
class EncodedItems:
    """A JSON array whose items are already encoded JSON texts (a fill's text is built once, not per answer)."""

    items: tuple[str, ...]


def route(method: str, path: str) -> Route:
    """Map an HTTP method and path (without query) to a route."""
    if path.startswith(DERIVATIVES_PREFIX):
        name = path[len(DERIVATIVES_PREFIX):].strip("/")
        if name.startswith("tickers/") and name.count("/") == 1:
            return Route("tickers/{symbol}", "public", args=(name.split("/", 1)[1],))
        if name in PUBLIC_GET:
            return Route(name, "public")
        if name == "orders/status":
            return Route(name, "private", frozenset({"GET", "POST"}))
        if name in PRIVATE_GET:
            return Route(name, "private")
        if name in PRIVATE_POST:
            return Route(name, "private", frozenset({"POST"}))
    elif path.startswith(CHARTS_PREFIX):
        parts = path[len(CHARTS_PREFIX):].strip("/").split("/")
        if len(parts) == 3:
            return Route("charts", "charts", args=tuple(parts))
    elif path.rstrip("/") == ACCOUNT_LOG_PATH:
        return Route("history/account-log", "history")
    elif path.startswith(HISTORY_PREFIX):
        name = path[len(HISTORY_PREFIX):].strip("/")
        if name in HISTORY_GET:
            return Route(f"history/{name}", "history")
    return Route("", "unknown", frozenset({"GET", "POST", "PUT", "DELETE"}))


def parse_params(query: str, body: str, form_body: bool) -> dict[str, list[str]]:
    """Query-string parameters merged with form-encoded body parameters."""
    params = parse_qs(query, keep_blank_values=True)
    if form_body and body:
        for key, values in parse_qs(body, keep_blank_values=True).items():
            params.setdefault(key, []).extend(values)
    return params


def split_batch_body(body: str) -> tuple[str, str | None]:
    """A batchorder body without, and the value of, a trailing `&ProcessBefore=` form field (Kraken's docs)."""
    for name in ("&ProcessBefore=", "&processBefore="):
        at = body.rfind(name)
        if at >= 0:
            return body[:at], unquote_plus(body[at + len(name):])
    return body, None


def parse_batch(body: str, query_params: Mapping[str, list[str]]) -> list[Any] | None:
    """The `batchOrder` list from a batchorder body (`json=...`, raw or URL-encoded); None if malformed."""
    raw: str | None = None
    body = split_batch_body(body)[0]
    if body.startswith("json="):
        raw = body[len("json="):]
    elif "json" in query_params:
        raw = query_params["json"][0]
    if raw is None:
        return None
    for candidate in (raw, unquote_plus(raw)):
        try:
            data = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(data, dict) and isinstance(data.get("batchOrder"), list):
            batch: list[Any] = data["batchOrder"]
            return batch
        return None
    return None


def parse_iso_ms(value: str) -> int | None:
    """Epoch ms of an ISO-8601 time such as `2024-02-06T22:24:34.849Z`; None if unparsable."""
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        return None
    return int(dt.timestamp() * 1000)


class KrakenApi:
    """Turns one HTTP request into one Kraken Futures response; no sockets involved."""

    def __init__(
        self,
        exchange: Exchange,
        authenticator: Authenticator,
        limiter: RateLimiter,
        status_window_ms: int = 5_000,
        batch_max_instructions: int = 100,
    ) -> None:
        self.exchange = exchange
        self.auth = authenticator
        self.limiter = limiter
        self.status_window_ms = status_window_ms
        self.batch_max_instructions = batch_max_instructions

    # -- helpers -----------------------------------------------------------------
    def _ok(self, **payload: Any) -> ApiResponse:
        """A success response with Kraken's envelope."""
        return ApiResponse(200, {"result": "success", **payload, "serverTime": iso(self.exchange.now())})

    def error(self, error: str, status: int = 200) -> ApiResponse:
        """An error response in Kraken's shape."""
        return ApiResponse(status, {"result": "error", "serverTime": iso(self.exchange.now()), "error": error})

    def handle(self, method: str, path: str, query: str, body: str, headers: Mapping[str, str],
               context: Mapping[str, object] | None = None) -> ApiResponse:
        """Serve one request; never raises. `context` (receipt time, fault) goes into the order request record."""
        try:
            if not path.rstrip("/").endswith(ORDER_ENTRY):
                return self._handle(method, path, query, body, headers)
            with self.exchange.lock:  # the order request record reads the context; order entry is serial anyway
                self.exchange.request_context = dict(context or {})
                try:
                    return self._handle(method, path, query, body, headers)
                finally:
                    self.exchange.request_context = {}
        except Exception:  # noqa: BLE001 - the server must keep serving whatever the input
            logger.exception("simulator: unexpected error serving {} {}", method, path)
            return self.error("unknownError", 500)

    def _handle(self, method: str, path: str, query: str, body: str, headers: Mapping[str, str]) -> ApiResponse:
        """Route, authenticate, charge and dispatch."""
        r = route(method, path)
        if r.family == "unknown":
            return self.error("notFound", 404)
        if method not in r.allowed_methods:
            return self.error("methodNotAllowed", 405)
        params = parse_params(query, body, form_body=r.endpoint != "batchorder")
        if r.family in ("private", "history"):
            failure = self.auth.check(headers, path, (query, body))
            if failure is not None:
                return self.error(failure, 401 if failure == "authenticationError" else 200)
        if r.family == "public":
            return self._public(r, params)
        if r.family == "charts":
            return self._charts(r, params)
        if r.family == "history":
            name = r.endpoint.split("/", 1)[1]
            cost = HISTORY_COSTS.get(name, 1)
            if name == "account-log":  # costed by `count` (Kraken's futures rate-limit guide, exchange/budget.py)
                raw_count = parse_decimal(_first(params, "count"))
                cost = account_log_cost(int(raw_count) if raw_count is not None and raw_count >= 1 else None)
            if not self.limiter.allow("history", cost, self.exchange.now()):
                return self.error("apiLimitExceeded")
            try:
                if name == "account-log":
                    return ApiResponse(200, self.exchange.account_log_page(_single(params), params.get("info", [])))
                return ApiResponse(200, self.exchange.history(name, _single(params)))
            except ValueError:
                return self.error("invalidArgument", 400)
        return self._private(r, params, body)

    # -- public --------------------------------------------------------------------
    def _public(self, r: Route, params: Mapping[str, list[str]]) -> ApiResponse:
        """Instruments, tickers, order book and fee schedules."""
        ex = self.exchange
        if r.endpoint == "instruments":
            return self._ok(instruments=[i.to_json() for i in ex.instruments.values()])
        if r.endpoint == "tickers":
            ex.sync()
            return self._ok(tickers=[self._ticker(s) for s in ex.instruments])
        if r.endpoint == "tickers/{symbol}":
            symbol = resolve_symbol(r.args[0])
            if symbol is None or symbol not in ex.instruments:
                return self.error("contractNotFound", 404)
            ex.sync()
            return self._ok(ticker=self._ticker(symbol))
        if r.endpoint == "orderbook":
            symbol = resolve_symbol(_first(params, "symbol") or "")
            if symbol is None or symbol not in ex.instruments:
                return self.error("contractNotFound", 404)
            ex.sync()
            return self._ok(orderBook=self._orderbook(symbol))
        schedules = [
            {"uid": uid, "name": name, "tiers": [{"makerFee": 0.02, "takerFee": 0.05, "usdVolume": 0}]}
            for uid, name in ((FEE_SCHEDULE_PGB, "PGB Fee Schedule"), (FEE_SCHEDULE_LINEAR, "MTF Linear Rebate Fees"))
        ]
        return self._ok(feeSchedules=schedules)

    def _ticker(self, symbol: str) -> dict[str, object]:
        """One market's ticker in Kraken's shape."""
        ex = self.exchange
        with ex.lock:
            quote = ex.market.quote(symbol)
            inst = ex.instruments[symbol]
            o, h, low, vol = ex.market.stats_24h(symbol)
        open24 = Decimal(repr(o))
        depth = ex.level_size(symbol)
        change = (quote.last - open24) / open24 * 100 if open24 else Decimal(0)
        volume = Decimal(repr(vol)).quantize(inst.size_step) if vol else Decimal(0)
        return {
            "tag": "perpetual",
            "pair": inst.pair,
            "symbol": symbol,
            "markPrice": fmt(quote.mark),
            "bid": fmt(quote.bid),
            "bidSize": fmt(depth),
            "ask": fmt(quote.ask),
            "askSize": fmt(depth),
            "vol24h": fmt(volume),
            "volumeQuote": fmt((volume * quote.last).quantize(Decimal("0.01"))),
            "openInterest": fmt(depth * 1000),
            "open24h": fmt(Decimal(repr(o))),
            "high24h": fmt(Decimal(repr(h))),
            "low24h": fmt(Decimal(repr(low))),
            "last": fmt(quote.last),
            "lastTime": iso(quote.time_ms),
            "lastSize": fmt(inst.size_step if inst.size_step >= 1 else Decimal(inst.impact_mid_size)),
            "fundingRate": fmt(ex.absolute_funding_rate(symbol)),
            "fundingRatePrediction": fmt(ex.absolute_funding_rate(symbol)),
            "suspended": symbol in ex.suspended,
            "indexPrice": fmt(quote.index),
            "postOnly": False,
            "change24h": fmt(change.quantize(Decimal("0.01"))),
        }

    def _orderbook(self, symbol: str) -> dict[str, object]:
        """The finite ten-level book the matcher uses, minus what was taken from it this tick."""
        with self.exchange.lock:
            bids, asks = self.exchange.book(symbol)
        return {"bids": [[float(p), float(q)] for p, q in bids], "asks": [[float(p), float(q)] for p, q in asks]}

    def _charts(self, r: Route, params: Mapping[str, list[str]]) -> ApiResponse:
        """OHLC candles for `trade`, `mark` or `spot` prices."""
        kind, symbol_raw, interval = r.args
        ex = self.exchange
        symbol = resolve_symbol(symbol_raw)
        if kind not in PRICE_KINDS:
            return self.error("invalidArgument: tick_type", 400)
        if symbol is None or symbol not in ex.instruments:
            return self.error("invalidArgument: symbol", 400)
        if interval not in INTERVALS_MS:
            return self.error("invalidArgument: resolution", 400)
        bounds: list[int | None] = []
        for key in ("from", "to"):
            value = _first(params, key)
            if value is None or value == "":
                bounds.append(None)
                continue
            seconds = parse_decimal(value)
            if seconds is None or seconds < 0 or seconds > 10**11:
                return self.error(f"invalidArgument: {key}", 400)
            bounds.append(int(seconds * 1000))
        with ex.lock:
            ex.sync()
            candles, more = ex.market.candles(symbol, kind, interval, bounds[0], bounds[1])
        return ApiResponse(200, {"candles": candles, "more_candles": more})

    # -- private --------------------------------------------------------------------
    def _private(self, r: Route, params: Mapping[str, list[str]], body: str) -> ApiResponse:
        """Account and order endpoints, charged against the /derivatives budget."""
        ex = self.exchange
        single = _single(params)
        batch: list[Any] | None = None
        if r.endpoint == "batchorder":
            batch = parse_batch(body, params)
        cost = derivatives_cost(r.endpoint, single, len(batch) if batch else 0)
        if not self.limiter.allow("derivatives", cost, ex.now()):
            return self.error("apiLimitExceeded")
        e = r.endpoint
        process_before: int | None = None
        if e in ("sendorder", "batchorder", "editorder", "cancelorder"):
            raw_before = single.get("processBefore")
            if e == "batchorder":  # documented as a form field of the request, `ProcessBefore`
                raw_before = split_batch_body(body)[1] or single.get("ProcessBefore") or raw_before
            if raw_before is not None:
                process_before = parse_iso_ms(raw_before)
                if process_before is None:
                    return self.error("invalidArgument", 400)
                ex.request_context["process_before"] = raw_before
        if e == "sendorder":
            # a trailing_stop without its documented required parameters is refused as a request (Kraken's generic
            # `requiredArgumentMissing` / `invalidArgument` errors, ccxt BadRequest); inside a batchorder the
            # instruction's status says it (ccxt's recorded batch answer shows `requiredArgumentMissing` there)
            argument_error = trailing_argument_error(single)
            if argument_error is not None:
                ex.note_request("sendorder", "send", single, {"status": argument_error}, ex.now())
                return self.error(argument_error, 400)
            return self._ok(sendStatus=ex.send_order(single, process_before_ms=process_before))
        if e == "batchorder":
            if batch is None:
                return self.error("Json Parse Error", 400)
            if len(batch) > self.batch_max_instructions:  # no maximum documented: refused whole (harsher reading)
                return self.error(f"invalidArgument: batchOrder holds {len(batch)} instructions, more than "
                                  f"{self.batch_max_instructions}", 400)
            return self._ok(batchStatus=ex.batch(batch, process_before))
        if e == "editorder":
            if "orderId" not in single and "cliOrdId" not in single:
                return self.error("requiredArgumentMissing", 400)
            if _bad_edit_arguments(single):
                return self.error("invalidArgument", 400)
            return self._ok(editStatus=ex.edit_order(single, process_before))
        if e == "cancelorder":
            if "order_id" not in single and "cliOrdId" not in single:
                return self.error("requiredArgumentMissing", 400)
            return self._ok(cancelStatus=ex.cancel_order(single, process_before))
        if e == "cancelallorders":
            symbol_raw = single.get("symbol")
            symbol = None
            if symbol_raw:
                symbol = resolve_symbol(symbol_raw)
                if symbol is None:
                    return self.error("contractNotFound", 400)
            return self._ok(cancelStatus=ex.cancel_all(symbol))
        if e == "cancelallordersafter":
            timeout = parse_decimal(single.get("timeout"))
            if timeout is None or timeout < 0:
                return self.error("requiredArgumentMissing", 400)
            return self._ok(status=ex.cancel_all_after(int(timeout)))
        if e == "openorders":
            return self._ok(openOrders=[o.open_order_json() for o in ex.open_orders()])
        if e == "orders/status":
            order_ids = params.get("orderIds", [])
            cli_ids = params.get("cliOrdIds", [])
            if not all(_is_uuid(i) for i in order_ids):
                return self.error("invalidArgument: orderIds", 400)
            found = ex.orders_status(order_ids, cli_ids, self.status_window_ms)
            return self._ok(orders=[o.status_json() for o in found])
        if e == "fills":
            last = single.get("lastFillTime")
            last_ms = None
            if last:
                last_ms = parse_iso_ms(last)
                if last_ms is None:
                    return self.error("invalidArgument: lastFillTime", 400)
            return self._ok(fills=EncodedItems(tuple(f.json_text for f in ex.recent_fills(last_ms))))
        if e == "openpositions":
            return self._ok(openPositions=ex.open_positions())
        if e == "accounts":
            return self._ok(accounts=ex.accounts())
        if e == "feeschedules/volumes":
            with ex.lock:
                volume = sum((f.size * f.price for f in ex.fills), Decimal(0))
            return self._ok(volumesByFeeSchedule={FEE_SCHEDULE_LINEAR: float(volume), FEE_SCHEDULE_PGB: float(volume)})
        return self.error("notFound", 404)


def _bad_edit_arguments(params: Mapping[str, str]) -> bool:
    """True when an editorder's enum or number arguments are not of their documented form (edit-order: qtyMode
    ABSOLUTE|RELATIVE, trailingStopDeviationUnit PERCENT|QUOTE_CURRENCY, trailingStopMaxDeviation a number)."""
    mode, unit, deviation = params.get("qtyMode"), params.get("trailingStopDeviationUnit"), \
        params.get("trailingStopMaxDeviation")
    return ((mode is not None and mode.strip().upper() not in ("ABSOLUTE", "RELATIVE"))
            or (unit is not None and unit.strip().upper() not in TRAILING_UNITS)
            or (deviation is not None and parse_decimal(deviation) is None))


def _is_uuid(value: str) -> bool:
    """True for a canonical UUID string (Kraken's order ids)."""
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


def _first(params: Mapping[str, list[str]], key: str) -> str | None:
    """First value of a parameter."""
    values = params.get(key)
    return values[0] if values else None


def _single(params: Mapping[str, list[str]]) -> dict[str, str]:
    """Parameters with their first value only."""
    return {k: v[0] for k, v in params.items() if v}
