"""Market values: candles, timeframes and a market's trading rules."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

from pydantic import Field

from messages._base import Message

TIMEFRAME_MS: dict[str, int] = {
    "1m": 60_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "4h": 14_400_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
    "1w": 604_800_000,
}


def timeframe_ms(timeframe: str) -> int:
    """Return the length of a timeframe such as `1m` in milliseconds."""
    try:
        return TIMEFRAME_MS[timeframe]
    except KeyError:
        raise ValueError(f"unknown timeframe {timeframe!r}; use one of {', '.join(TIMEFRAME_MS)}") from None


class Candle(Message):
    """One OHLCV candle of a market; `open_time` in epoch milliseconds."""

    symbol: str
    timeframe: str
    open_time: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal = Decimal(0)


class MarketSpec(Message):
    """A market's trading rules as the exchange lists them."""

    symbol: str
    exchange_id: str
    amount_step: Decimal = Field(gt=0)
    price_tick: Decimal = Field(gt=0)
    min_amount: Decimal = Decimal(0)
    contract_size: Decimal = Decimal(1)

    def contracts_for_notional(self, notional: Decimal, price: Decimal) -> Decimal:
        """Return the contracts worth `notional` at `price`, rounded down to the amount step."""
        if price <= 0:
            raise ValueError(f"price must be > 0, got {price}")
        raw = notional / (price * self.contract_size)
        steps = (raw / self.amount_step).to_integral_value(rounding=ROUND_DOWN)
        return (steps * self.amount_step).normalize()

    def notional_of(self, contracts: Decimal, price: Decimal) -> Decimal:
        """Return the quote-currency notional of `contracts` at `price`."""
        return abs(contracts) * price * self.contract_size
