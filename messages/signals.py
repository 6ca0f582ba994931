"""Trading signals produced by strategies."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from messages._base import Message


class SignalKind(StrEnum):
    """What a strategy asks for: enter long, enter short, or exit the position."""

    ENTER_LONG = "ENTER_LONG"
    ENTER_SHORT = "ENTER_SHORT"
    EXIT = "EXIT"

    @property
    def is_entry(self) -> bool:
        """True for the two entry kinds."""
        return self is not SignalKind.EXIT


class Signal(Message):
    """A strategy's decision on the candle that opened at `candle_time` (epoch ms)."""

    symbol: str
    kind: SignalKind
    candle_time: int
    price: Decimal  # the close of the signal candle
    strategy: str = ""
    note: str = ""
