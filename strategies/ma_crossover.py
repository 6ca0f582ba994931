"""Moving-average crossover: enter on a cross of the fast over the slow average, exit on the cross back."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from pydantic import Field, model_validator

from messages.market import Candle
from messages.positions import PositionSide
from messages.signals import SignalKind
from strategies.base import Strategy, StrategyParams


class MovingAverageCrossoverParams(StrategyParams):
    """fast and slow: the two simple-moving-average lengths in candles; shorts: also trade short."""

    fast: int = Field(default=5, ge=1, le=10_000)
    slow: int = Field(default=20, ge=2, le=10_000)
    shorts: bool = True

    @model_validator(mode="after")
    def _fast_below_slow(self) -> MovingAverageCrossoverParams:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be smaller than slow ({self.slow})")
        return self


def _sma(closes: Sequence[Decimal], length: int) -> Decimal:
    return sum(closes[-length:], Decimal(0)) / length


class MovingAverageCrossover(Strategy):
    """Long when the fast SMA crosses above the slow one, short when it crosses below; exit on the cross back."""

    name = "ma_crossover"
    Params = MovingAverageCrossoverParams
    params: MovingAverageCrossoverParams

    @property
    def warmup(self) -> int:
        return self.params.slow + 1

    def decide(self, candles: Sequence[Candle], position: PositionSide) -> SignalKind | None:
        if len(candles) < self.warmup:
            return None
        window = candles if isinstance(candles, (list, tuple)) else list(candles)  # a deque cannot be sliced
        closes = [c.close for c in window[-(self.params.slow + 1):]]  # all that the averages below read
        fast_now, slow_now = _sma(closes, self.params.fast), _sma(closes, self.params.slow)
        fast_before, slow_before = _sma(closes[:-1], self.params.fast), _sma(closes[:-1], self.params.slow)
        crossed_up = fast_before <= slow_before and fast_now > slow_now
        crossed_down = fast_before >= slow_before and fast_now < slow_now
        if position is PositionSide.LONG and fast_now < slow_now:
            return SignalKind.EXIT
        if position is PositionSide.SHORT and fast_now > slow_now:
            return SignalKind.EXIT
        if position is PositionSide.FLAT:
            if crossed_up:
                return SignalKind.ENTER_LONG
            if crossed_down and self.params.shorts:
                return SignalKind.ENTER_SHORT
        return None
