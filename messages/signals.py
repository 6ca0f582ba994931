"""Trading signals produced by strategies."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from pydantic import model_validator

from messages._base import Message


class SignalKind(StrEnum):
    """What an intent is for: a strategy's enter long, enter short or exit; or one of the protective orders the
    symbol places after an entry fills (a stop-loss, a take-profit: reduce-only trigger orders on the exchange)."""

    ENTER_LONG = "ENTER_LONG"
    ENTER_SHORT = "ENTER_SHORT"
    EXIT = "EXIT"
    STOP_LOSS = "STOP_LOSS"
    TAKE_PROFIT = "TAKE_PROFIT"

    @property
    def is_entry(self) -> bool:
        """True for the two entry kinds."""
        return self is SignalKind.ENTER_LONG or self is SignalKind.ENTER_SHORT

    @property
    def is_protective(self) -> bool:
        """True for a stop-loss or take-profit order protecting a position."""
        return self is SignalKind.STOP_LOSS or self is SignalKind.TAKE_PROFIT


class Signal(Message):
    """A strategy's decision on the candle that opened at `candle_time` (epoch ms)."""

    symbol: str
    kind: SignalKind
    candle_time: int
    price: Decimal  # the close of the signal candle
    strategy: str = ""
    note: str = ""
    # An entry's own protective levels (absolute prices), given by the strategy; None: [protection]'s distances
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None

    @model_validator(mode="after")
    def _levels_fit_the_entry(self) -> Signal:
        if self.stop_loss is None and self.take_profit is None:
            return self
        if not self.kind.is_entry:
            raise ValueError(f"{self.kind.value}: only an entry carries stop-loss / take-profit levels")
        long = self.kind is SignalKind.ENTER_LONG
        for name, level, below in (("stop_loss", self.stop_loss, long), ("take_profit", self.take_profit, not long)):
            if level is None:
                continue
            if not level.is_finite() or level <= 0:
                raise ValueError(f"{name} {level} is not a positive price")
            if (level >= self.price) if below else (level <= self.price):
                side = "below" if below else "above"
                raise ValueError(f"{name} {level} must be {side} the entry price {self.price} for {self.kind.value}")
        return self
