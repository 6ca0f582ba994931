"""A fake Kraken Futures exchange for tests: the project's simulator, in process, on a free loopback port.

It is not a look-alike: it is `simulator/` itself, the exchange paper mode trades on, following Kraken's
documented rules (simulator/README.md: sizes and ticks, reduce-only, cliOrdId reuse, processBefore, post-only,
trigger orders, fees, rate budgets, history lag...). By default its clock is stepped (time moves only when the
test says so) and its prices are still (volatility 0): a price moves only when the test sets it, so a candle
closes exactly where the test put it.

    with simulated_exchange() as kraken:
        kraken.set_price("BTC/USD:USD", 50_000)
        kraken.close_candle("BTC/USD:USD", 51_000)      # the 1m candle now open closes at 51000
        client = kraken.client()                         # the real ccxt.krakenfutures client, pointed at it
        client.create_order("BTC/USD:USD", "market", "buy", 0.01)
        assert kraken.position("BTC/USD:USD") == Decimal("0.01")
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from messages import timeframe_ms
from simulator import SimulatorHandle, resolve_symbol, start_simulator

DEFAULTS: dict[str, Any] = {"clock": "stepped", "seed": 7, "rate_limit": False, "volatility": 0.0,
                            "history_days": 0.1}


class SimulatedExchange:
    """The simulator with helpers to set prices, close candles, and read orders, fills and positions."""

    def __init__(self, handle: SimulatorHandle) -> None:
        self.handle = handle
        self.admin = handle.admin  # every admin control: faults, suspend, reset... (simulator/admin.py)

    @classmethod
    def start(cls, **overrides: Any) -> SimulatedExchange:
        """Start one (simulator.SimulatorConfig fields override DEFAULTS, e.g. rate_limit=True, clock="real")."""
        return cls(start_simulator(**{**DEFAULTS, **overrides}))

    def stop(self) -> None:
        """Stop it and free its port (idempotent)."""
        self.handle.stop()

    def __enter__(self) -> SimulatedExchange:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- where it is -------------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:PORT"""
        return self.handle.base_url

    @property
    def api_key(self) -> str:
        """The API key it accepts."""
        return self.handle.api_key

    @property
    def api_secret(self) -> str:
        """The API secret it accepts."""
        return self.handle.api_secret

    def client(self, **options: Any) -> Any:
        """A real ccxt.krakenfutures client pointed at it with its keys."""
        return self.handle.client(**options)

    # --- time and prices ---------------------------------------------------------------------------------------

    def now_ms(self) -> int:
        """The exchange's time, epoch ms."""
        return int(self.admin.now()["now"])

    def step(self, seconds: float) -> int:
        """Move the stepped clock forward (resting orders and triggers react on the way); return the new time."""
        return int(self.admin.step(seconds=seconds)["now"])

    def set_price(self, symbol: str, price: float | int | str | Decimal) -> None:
        """Jump `symbol`'s price (trade, mark and index) to `price` now; resting orders and triggers react."""
        self.admin.set_price(symbol, price=float(price))

    def last_price(self, symbol: str) -> Decimal:
        """The market's last trade price."""
        return Decimal(str(self.admin.quote(symbol)["last"]))

    def close_candle(self, symbol: str, price: float | int | str | Decimal, timeframe: str = "1m",
                     after_s: float = 0.0) -> int:
        """Set the price, then step to the end of the candle now open (plus `after_s`), so that candle closes
        at `price`; return its open time (epoch ms)."""
        self.set_price(symbol, price)
        length = timeframe_ms(timeframe)
        now = self.now_ms()
        opened = now - now % length
        self.admin.step(ms=opened + length - now + after_s * 1000)
        return opened

    # --- what happened -----------------------------------------------------------------------------------------

    def orders(self, symbol: str | None = None) -> list[dict[str, Any]]:
        """Every order the exchange placed (not the requests it refused), oldest first: order_id, cliOrdId,
        state, symbol (Kraken's, e.g. PF_XBTUSD), side, orderType, size, filled, limitPrice, reduceOnly, ..."""
        wanted = None if symbol is None else resolve_symbol(symbol)
        return [o for o in self.admin.orders()
                if o["status"] == "placed" and (wanted is None or str(o["symbol"]).upper() == wanted)]

    def order_requests(self, symbol: str | None = None) -> list[dict[str, Any]]:
        """Every order instruction received (placed or refused, with Kraken's status string), oldest first."""
        return self.admin.order_requests(symbol=symbol)

    def fills(self, symbol: str | None = None) -> list[dict[str, Any]]:
        """Every fill, oldest first: fill_id, order_id, cliOrdId, symbol, side, size, price, fee, realizedPnl..."""
        wanted = None if symbol is None else resolve_symbol(symbol)
        fills = self.admin.state()["fills"]
        return [f for f in fills if wanted is None or str(f["symbol"]).upper() == wanted]

    def position(self, symbol: str) -> Decimal:
        """The signed position size (contracts; negative for a short)."""
        return Decimal(self.admin.position(symbol))

    def positions(self) -> dict[str, Decimal]:
        """Every open position, by Kraken symbol, signed."""
        return {p["symbol"]: Decimal(p["size"]) for p in self.admin.state()["positions"] if Decimal(p["size"])}

    def balance(self) -> Decimal:
        """The account's USD balance (realized PnL and fees included)."""
        return Decimal(self.admin.state()["balances"]["USD"])


@contextmanager
def simulated_exchange(**overrides: Any) -> Iterator[SimulatedExchange]:
    """A SimulatedExchange for the length of the block (see SimulatedExchange.start for the overrides)."""
    exchange = SimulatedExchange.start(**overrides)
    try:
        yield exchange
    finally:
        exchange.stop()
