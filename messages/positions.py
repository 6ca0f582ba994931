"""Positions as the exchange reports them, and the syncs the portfolio pushes."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from pydantic import Field

from messages._base import Message, now_ms


class PositionSide(StrEnum):
    """The direction of a position."""

    LONG = "long"
    SHORT = "short"
    FLAT = "flat"


class Position(Message):
    """A position in one market: side, size in contracts (>= 0) and average entry price."""

    symbol: str
    side: PositionSide
    contracts: Decimal = Field(ge=0)
    entry_price: Decimal | None = None
    unrealized_pnl: Decimal | None = None

    @property
    def is_open(self) -> bool:
        """True when the position holds contracts."""
        return self.side is not PositionSide.FLAT and self.contracts > 0

    @property
    def signed_contracts(self) -> Decimal:
        """Contracts, negative for a short."""
        return -self.contracts if self.side is PositionSide.SHORT else self.contracts

    @classmethod
    def flat(cls, symbol: str) -> Position:
        """A flat position in `symbol`."""
        return cls(symbol=symbol, side=PositionSide.FLAT, contracts=Decimal(0))


class SyncPositions(Message):
    """Gateway command: fetch positions and report them to the portfolio."""

    reason: str = "timer"


class PositionsSnapshot(Message):
    """Every open position on the account, fetched by the gateway after report `seq`."""

    positions: tuple[Position, ...]
    seq: int
    as_of: int = Field(default_factory=now_ms)
    exchange_time: int | None = None  # exchange ms before which every fill is surely included (clock skew allowed)


class PositionsUnavailable(Message):
    """The gateway could not read positions: a failure, never to be taken for "flat"."""

    reason: str
    detail: str = ""
    seq: int = 0


class PositionSync(Message):
    """The portfolio's push of one symbol's position, as of gateway report `seq`."""

    position: Position
    seq: int
    as_of: int = Field(default_factory=now_ms)
    exchange_time: int | None = None  # fills the exchange timed before this are in `position`
