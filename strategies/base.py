"""The strategy interface: closed candles in, a signal kind or nothing out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from messages.market import Candle
from messages.positions import PositionSide
from messages.signals import SignalKind


class StrategyParams(BaseModel):
    """A strategy's parameters: validated, frozen, no unknown keys."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)  # `fast = true` or "5" is an error


class Strategy(ABC):
    """Decides, on each newly closed candle, whether to enter long, enter short, exit, or do nothing."""

    name: ClassVar[str]
    Params: ClassVar[type[StrategyParams]]

    def __init__(self, params: StrategyParams) -> None:
        self.params = params

    @property
    @abstractmethod
    def warmup(self) -> int:
        """How many closed candles the strategy needs before it can signal."""

    @abstractmethod
    def decide(self, candles: Sequence[Candle], position: PositionSide) -> SignalKind | None:
        """Return the signal for the newest candle in `candles` (oldest first), given the position."""

    def levels(self, candles: Sequence[Candle], kind: SignalKind) -> tuple[Decimal | None, Decimal | None]:
        """An entry's own stop-loss and take-profit prices, (None, None) to use [protection]'s distances.

        Called right after `decide` returned an entry; a level on the wrong side of the entry (the signal
        candle's close) refuses the signal (BAD_SIGNAL), it is never traded with a guessed stop."""
        return None, None

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Strategy:
        """Validate `params` and build the strategy (raises pydantic.ValidationError)."""
        return cls(cls.Params.model_validate(params))
