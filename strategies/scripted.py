"""A deterministic strategy for tests and soak runs: its signals are a pure function of the candle time.

Let k = candle open time // timeframe length (the candle's index since the epoch). With `period` P,
`hold` H and `offset` O, and phase = (k + O) mod P:
- phase == 0: an entry; long when (k + O) // P is even, short when odd (with `sides = "alternate"`),
  always long (`"long"`) or always short (`"short"`);
- phase == H: an exit;
- otherwise nothing.
The position is ignored: the guards decide what is traded. Same candles, same signals, every run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import Field, model_validator

from messages.market import Candle, timeframe_ms
from messages.positions import PositionSide
from messages.signals import SignalKind
from strategies.base import Strategy, StrategyParams


class ScriptedParams(StrategyParams):
    """period: candles per cycle; hold: candles from entry to exit; offset: shifts the cycle; sides."""

    period: int = Field(default=4, ge=2, le=100_000)
    hold: int = Field(default=2, ge=1, le=100_000)
    offset: int = Field(default=0, ge=0, le=100_000)
    sides: Literal["alternate", "long", "short"] = "alternate"

    @model_validator(mode="after")
    def _hold_within_period(self) -> ScriptedParams:
        if self.hold >= self.period:
            raise ValueError(f"hold ({self.hold}) must be smaller than period ({self.period})")
        return self


def scripted_signal(candle_time: int, timeframe: str, params: ScriptedParams) -> SignalKind | None:
    """Return the scripted signal for the candle that opened at `candle_time` (epoch ms)."""
    index = candle_time // timeframe_ms(timeframe) + params.offset
    phase = index % params.period
    if phase == params.hold:
        return SignalKind.EXIT
    if phase != 0:
        return None
    if params.sides == "long":
        return SignalKind.ENTER_LONG
    if params.sides == "short":
        return SignalKind.ENTER_SHORT
    return SignalKind.ENTER_LONG if (index // params.period) % 2 == 0 else SignalKind.ENTER_SHORT


class ScriptedStrategy(Strategy):
    """Signals that depend only on the candle time; see the module docstring for the rule."""

    name = "scripted"
    Params = ScriptedParams
    params: ScriptedParams

    @property
    def warmup(self) -> int:
        return 1

    def decide(self, candles: Sequence[Candle], position: PositionSide) -> SignalKind | None:
        if not candles:
            return None
        newest = candles[-1]
        return scripted_signal(newest.open_time, newest.timeframe, self.params)
