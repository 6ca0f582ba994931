"""Market values: candles, timeframes and a market's trading rules."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

from pydantic import Field, model_validator

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


def candle_problem(
    timeframe: str, open_time: int, open: Decimal, high: Decimal, low: Decimal, close: Decimal, volume: Decimal
) -> str | None:
    """Why these values are not one sane candle (finite, positive, self-consistent, aligned), or None."""
    values = {"open": open, "high": high, "low": low, "close": close, "volume": volume}
    for name, value in values.items():
        if not isinstance(value, Decimal) or not value.is_finite():
            return f"{name} is not a finite number ({value})"
    if low <= 0:
        return f"low {low} is not positive"
    if high < max(open, close):
        return f"high {high} is below max(open {open}, close {close})"
    if low > min(open, close):
        return f"low {low} is above min(open {open}, close {close})"
    if volume < 0:
        return f"volume {volume} is negative"
    if timeframe not in TIMEFRAME_MS:
        return f"unknown timeframe {timeframe!r}"
    if open_time < 0 or open_time % TIMEFRAME_MS[timeframe]:
        return f"open time {open_time} is not aligned to {timeframe}"
    return None


class Candle(Message):
    """One OHLCV candle of a market; `open_time` in epoch milliseconds, aligned to the timeframe.

    Only a sane candle can be built: finite prices, low > 0, low <= open, close <= high, volume >= 0.
    """

    symbol: str
    timeframe: str
    open_time: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal = Decimal(0)

    @model_validator(mode="after")
    def _sane(self) -> Candle:
        problem = candle_problem(self.timeframe, self.open_time, self.open, self.high, self.low, self.close,
                                 self.volume)
        if problem is not None:
            raise ValueError(problem)
        return self


class MarketSpec(Message):
    """A market's trading rules as the exchange lists them."""

    symbol: str
    exchange_id: str
    amount_step: Decimal = Field(gt=0)
    price_tick: Decimal = Field(gt=0)
    min_amount: Decimal = Decimal(0)
    contract_size: Decimal = Decimal(1)
    # The initial-margin schedule: (position notional from which it applies, initial margin rate), ascending
    # (Kraken's instruments `marginLevels`, numNonContractUnits / initialMargin). Empty: not listed.
    margin_levels: tuple[tuple[Decimal, Decimal], ...] = ()

    def contracts_for_notional(self, notional: Decimal, price: Decimal) -> Decimal:
        """Return the contracts worth `notional` at `price`, rounded down to the amount step."""
        if price <= 0:
            raise ValueError(f"price must be > 0, got {price}")
        raw = notional / (price * self.contract_size)
        steps = (raw / self.amount_step).to_integral_value(rounding=ROUND_DOWN)
        return (steps * self.amount_step).normalize()

    def initial_margin_rate(self, notional: Decimal) -> Decimal:
        """The initial margin rate of a position worth `notional`: the highest level it reaches; no schedule
        listed: 1 (no leverage, the harsher reading)."""
        if not self.margin_levels:
            return Decimal(1)
        reached = [rate for threshold, rate in self.margin_levels if notional >= threshold]
        return max(reached or [self.margin_levels[0][1]])

    def notional_of(self, contracts: Decimal, price: Decimal) -> Decimal:
        """Return the quote-currency notional of `contracts` at `price`."""
        return abs(contracts) * price * self.contract_size
