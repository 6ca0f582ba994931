"""Portfolio-wide risk reservations."""

from __future__ import annotations

from decimal import Decimal

from messages._base import Message


class RiskRequest(Message):
    """A symbol asks the portfolio to reserve room for an entry order."""

    symbol: str
    intent_hash: str
    notional: Decimal


class RiskDecision(Message):
    """The portfolio's answer to a RiskRequest."""

    granted: bool
    reason: str | None = None
    detail: str = ""


class RiskRelease(Message):
    """A symbol gives back a reservation whose order will not be sent."""

    symbol: str
    intent_hash: str
