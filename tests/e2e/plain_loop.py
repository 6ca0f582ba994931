"""An independent backtest: a plain loop over the candles with the same strategy and the documented exchange rules.

Nothing of the trading system runs here (no actors, no simulator, no ccxt, no database): the rules are written
down again from simulator/README.md and the backtest README, so a backtest through the actors that agrees with
this loop to the cent agrees with the data, not with itself:

- a signal on the candle that closed at T is a market order that fills at T, at the next candle's open (the last
  candle's close when none follows), on the touch: a buy at the ask = ceil_tick(p + p * spread / 2), a sell at the
  bid = floor_tick(p - p * spread / 2) (orders here are far below the book's first level);
- size: order_notional / signal candle's close, rounded down to the market's amount step; exits close it all;
- taker fee: price x amount x taker rate, rounded half up to 1e-8 USD;
- funding at every hour boundary h (the tick at h applied first): a position of size s pays
  s x (rate x mark).quantize(1e-12), rounded towards the account's loss at 1e-8; mark = the price at h.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_UP, Decimal

from messages.market import Candle
from messages.positions import PositionSide
from messages.signals import SignalKind
from strategies.base import Strategy

HOUR_MS = 3_600_000
CENT8 = Decimal("1e-8")


@dataclass
class LoopFill:
    """One fill of the plain loop."""

    time_ms: int
    side: str
    amount: Decimal
    price: Decimal
    fee: Decimal


@dataclass
class LoopResult:
    """The plain loop's trades and money for one symbol."""

    fills: list[LoopFill] = field(default_factory=list)
    gross: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    funding: Decimal = Decimal(0)

    @property
    def net(self) -> Decimal:
        """Realized PnL net of fees and funding."""
        return self.gross - self.fees + self.funding


def _ceil(value: Decimal, tick: Decimal) -> Decimal:
    return (value / tick).to_integral_value(ROUND_CEILING) * tick


def _floor(value: Decimal, tick: Decimal) -> Decimal:
    return (value / tick).to_integral_value(ROUND_FLOOR) * tick


def plain_loop(candles: Sequence[Candle], strategy: Strategy, *, notional: Decimal, tick: Decimal,
               amount_step: Decimal, spread: Decimal, taker_fee: Decimal, funding_rate: Decimal,
               timeframe_ms: int) -> LoopResult:
    """Run `strategy` over `candles` as described in the module docstring."""
    result = LoopResult()
    size = Decimal(0)  # signed contracts
    entry = Decimal(0)
    window: list[Candle] = []
    quarter = timeframe_ms // 4
    prices = {t: p for candle in candles for t, p in _ticks(candle, timeframe_ms)}
    closing = {candle.open_time + timeframe_ms: candle for candle in candles}
    first, last_close = candles[0].open_time, candles[-1].open_time + timeframe_ms
    funding_hour = first // HOUR_MS
    price_now = candles[0].open
    for tick_ms in range(first, last_close + 1, quarter):
        price_now = prices.get(tick_ms, price_now)  # between candles (a gap) the price stands still
        while tick_ms // HOUR_MS > funding_hour:
            funding_hour += 1
            result.funding += _funding(size, funding_rate, price_now)
        candle = closing.get(tick_ms)
        if candle is None:
            continue
        window.append(candle)
        side = PositionSide.LONG if size > 0 else PositionSide.SHORT if size < 0 else PositionSide.FLAT
        kind = strategy.decide(window, side)
        if kind in (SignalKind.ENTER_LONG, SignalKind.ENTER_SHORT) and size == 0:
            amount = (notional / candle.close / amount_step).to_integral_value(ROUND_DOWN) * amount_step
            if amount <= 0:
                continue
            buy = kind is SignalKind.ENTER_LONG
        elif kind is SignalKind.EXIT and size != 0:
            buy, amount = size < 0, abs(size)
        else:
            continue
        price = _ceil(price_now + price_now * spread / 2, tick) if buy else \
            _floor(price_now - price_now * spread / 2, tick)
        fee = (amount * price * taker_fee).quantize(CENT8, rounding=ROUND_HALF_UP)
        result.fills.append(LoopFill(tick_ms, "buy" if buy else "sell", amount, price, fee))
        result.fees += fee
        if kind is SignalKind.EXIT:
            result.gross += (price - entry) * size
            size = Decimal(0)
        else:
            size, entry = (amount if buy else -amount), price
    return result


def _ticks(candle: Candle, timeframe_ms: int) -> list[tuple[int, Decimal]]:
    """The candle's replayed ticks: open, extremes (low first on an up candle), close, a quarter apart."""
    quarter = timeframe_ms // 4
    inner = (candle.low, candle.high) if candle.close >= candle.open else (candle.high, candle.low)
    prices = (candle.open, *inner, candle.close)
    return [(candle.open_time + i * quarter, p) for i, p in enumerate(prices)]


def _funding(size: Decimal, rate: Decimal, mark: Decimal) -> Decimal:
    """One hour's funding of a position (received +, paid -)."""
    if size == 0:
        return Decimal(0)
    absolute = (rate * mark).quantize(Decimal("1e-12"))
    return (-size * absolute).quantize(CENT8, rounding=ROUND_FLOOR)
