"""An in-process exchange with ccxt's method names and return shapes, for unit tests of single actors.

End-to-end tests use the real ccxt client against the simulator instead.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ccxt


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


@dataclass
class FakeOrder:
    """An order the fake exchange holds."""

    id: str
    client_order_id: str | None
    symbol: str
    side: str
    type: str
    amount: float
    price: float | None
    reduce_only: bool
    status: str = "open"
    filled: float = 0.0
    average: float | None = None
    timestamp: int = field(default_factory=lambda: int(time.time() * 1000))

    def as_ccxt(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "clientOrderId": self.client_order_id,
            "symbol": self.symbol,
            "side": self.side,
            "type": self.type,
            "amount": self.amount,
            "price": self.price,
            "reduceOnly": self.reduce_only,
            "status": self.status,
            "filled": self.filled,
            "remaining": self.amount - self.filled,
            "average": self.average,
            "timestamp": self.timestamp,
            "trades": [],
            "info": {},
        }


class FakeExchange:
    """Thread-safe, ccxt-shaped exchange: market orders fill at once, limit orders rest; positions net."""

    def __init__(self, symbols: dict[str, tuple[str, float, float, float]] | None = None) -> None:
        spec = symbols or DEFAULT_SYMBOLS
        self.markets = {s: ccxt_market(s, ex_id, step, tick) for s, (ex_id, step, tick, _) in spec.items()}
        self.prices = {s: price for s, (_, _, _, price) in spec.items()}
        self.orders: dict[str, FakeOrder] = {}
        self.positions: dict[str, float] = {}  # signed contracts
        self.entry: dict[str, float] = {}
        self.create_calls: list[dict[str, Any]] = []  # every create_order call, in order
        self.trades: list[dict[str, Any]] = []
        self.ohlcv: dict[str, list[list[float]]] = {}
        # hooks: called at the start of a method; may block or raise
        self.before_create: Callable[[dict[str, Any]], None] | None = None
        self.fail_open_orders: BaseException | None = None
        self.fail_positions: BaseException | None = None
        self.create_response: Callable[[dict[str, Any]], Any] | None = None  # replaces the response
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)

    # --- ccxt unified API --------------------------------------------------------------------

    def load_markets(self, reload: bool = False) -> dict[str, Any]:
        return self.markets

    def create_order(
        self, symbol: str, type: str, side: str, amount: float, price: float | None = None, params: dict | None = None
    ) -> dict[str, Any]:
        params = dict(params or {})
        call = {"symbol": symbol, "type": type, "side": side, "amount": amount, "price": price, "params": params}
        with self._lock:
            self.create_calls.append(call)
            self._changed.notify_all()
        if self.before_create is not None:
            self.before_create(call)
        with self._lock:
            if symbol not in self.markets:
                raise ccxt.BadSymbol(f"krakenfutures does not have market symbol {symbol}")
            cid = params.get("clientOrderId")
            if cid is not None and any(o.client_order_id == cid for o in self.orders.values()):
                raise ccxt.DuplicateOrderId("krakenfutures: createOrder failed due to clientOrderIdAlreadyExist")
            reduce_only = bool(params.get("reduceOnly"))
            signed = amount if side == "buy" else -amount
            current = self.positions.get(symbol, 0.0)
            if reduce_only and (current == 0 or (current > 0) == (signed > 0)):
                raise ccxt.ExchangeError("krakenfutures: createOrder failed due to wouldNotReducePosition")
            order = FakeOrder(
                id=f"fake-{next(self._ids)}",
                client_order_id=cid,
                symbol=symbol,
                side=side,
                type=type,
                amount=amount,
                price=price,
                reduce_only=reduce_only,
            )
            self.orders[order.id] = order
            trades = []
            if type == "market":
                if reduce_only:
                    signed = max(-abs(current), min(abs(current), signed))
                    order.amount = order.filled = abs(signed)
                self._fill(order, abs(signed), self.prices[symbol])
                trades = [dict(self.trades[-1])]
            self._changed.notify_all()
            response = order.as_ccxt()
            response["trades"] = trades
        if self.create_response is not None:
            return self.create_response(response)
        return response

    def create_orders(self, orders: list[dict[str, Any]], params: dict | None = None) -> list[dict[str, Any]]:
        results = []
        for index, order in enumerate(orders):
            try:
                response = self.create_order(order["symbol"], order["type"], order["side"], order["amount"],
                                             order.get("price"), order.get("params"))
            except ccxt.BaseError as exc:
                status = str(exc).rsplit("due to ", 1)[-1] if "due to" in str(exc) else "invalidArgument"
                response = {"id": None, "status": "rejected",
                            "info": {"status": status, "cliOrdId": (order.get("params") or {}).get("clientOrderId")}}
            response = dict(response)
            response["info"] = {**response.get("info", {}), "order_tag": index}
            results.append(response)
        return results

    def fetch_orders(self, symbol: str | None = None, since: Any = None, limit: Any = None, params: dict | None = None) -> list[dict[str, Any]]:
        """orders/status by client order ids (every order, open or closed, is visible here)."""
        wanted = (params or {}).get("cliOrdIds") or []
        wanted = [wanted] if isinstance(wanted, str) else list(wanted)
        with self._lock:
            return [o.as_ccxt() for o in self.orders.values() if o.client_order_id in wanted]

    def fetch_my_trades(self, symbol: str | None = None, since: Any = None, limit: Any = None, params: Any = None) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(t) for t in self.trades]

    def fetch_closed_orders(self, symbol: str | None = None, since: Any = None, limit: Any = None, params: Any = None) -> list[dict[str, Any]]:
        with self._lock:
            return [o.as_ccxt() for o in self.orders.values() if o.status != "open"]

    def fetch_open_orders(self, symbol: str | None = None, since: Any = None, limit: Any = None, params: Any = None) -> list[dict[str, Any]]:
        if self.fail_open_orders is not None:
            raise self.fail_open_orders
        with self._lock:
            return [
                o.as_ccxt()
                for o in self.orders.values()
                if o.status == "open" and (symbol is None or o.symbol == symbol)
            ]

    def fetch_positions(self, symbols: Any = None, params: Any = None) -> list[dict[str, Any]]:
        if self.fail_positions is not None:
            raise self.fail_positions
        with self._lock:
            return [
                {
                    "symbol": s,
                    "side": "long" if c > 0 else "short",
                    "contracts": abs(c),
                    "entryPrice": self.entry.get(s),
                    "unrealizedPnl": 0.0,
                }
                for s, c in self.positions.items()
                if c != 0
            ]

    def cancel_order(self, id: str | None, symbol: str | None = None, params: Any = None) -> dict[str, Any]:
        with self._lock:
            order = self.orders.get(id or "")
            if order is None or order.status != "open":
                raise ccxt.OrderNotFound(f"order {id} not found")
            order.status = "canceled"
            self._changed.notify_all()
            return order.as_ccxt()

    def fetch_ohlcv(self, symbol: str, timeframe: str = "1m", since: Any = None, limit: Any = None, params: Any = None) -> list[list[float]]:
        with self._lock:
            rows = list(self.ohlcv.get(symbol, []))
        if since is not None:
            rows = [r for r in rows if r[0] >= since]
        return rows

    # --- test helpers ------------------------------------------------------------------------

    def _fill(self, order: FakeOrder, amount: float, price: float) -> None:
        signed = amount if order.side == "buy" else -amount
        current = self.positions.get(order.symbol, 0.0)
        new = current + signed
        if current == 0 or (current > 0) == (signed > 0):
            total = abs(current) + amount
            self.entry[order.symbol] = ((self.entry.get(order.symbol) or price) * abs(current) + price * amount) / total
        self.positions[order.symbol] = round(new, 12)
        if self.positions[order.symbol] == 0:
            self.entry.pop(order.symbol, None)
        order.filled = amount
        order.average = price
        order.status = "closed"
        self.trades.append({"id": f"t-{order.id}", "order": order.id, "symbol": order.symbol, "side": order.side,
                            "amount": amount, "price": price, "info": {"cliOrdId": order.client_order_id}})

    def fill_resting(self, order_id: str, price: float | None = None) -> None:
        """Fill a resting limit order now (as if the market reached it)."""
        with self._lock:
            order = self.orders[order_id]
            self._fill(order, order.amount, price if price is not None else order.price or self.prices[order.symbol])

    def place_external(self, symbol: str, side: str, amount: float, price: float) -> FakeOrder:
        """An order placed outside the system (e.g. by hand in the web UI): a resting limit order."""
        with self._lock:
            order = FakeOrder(id=f"ext-{next(self._ids)}", client_order_id=None, symbol=symbol, side=side,
                              type="limit", amount=amount, price=price, reduce_only=False)
            self.orders[order.id] = order
            return order

    def set_position(self, symbol: str, contracts: float, entry: float) -> None:
        """Open (or set) a position directly, as if filled earlier."""
        with self._lock:
            self.positions[symbol] = contracts
            self.entry[symbol] = entry

    def wait_for_create_calls(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until at least `count` create_order calls arrived."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self.create_calls) >= count, timeout)

    def placed_orders(self) -> list[FakeOrder]:
        """Orders the exchange accepted (every one that got an id)."""
        with self._lock:
            return list(self.orders.values())
