"""Trading signals produced by strategies."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

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
