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


class ClaimGivenUp(Message):
    """A symbol stopped waiting for its claim's answer (and took its Handover): release and abandon.

    Sent the way its claim went (an entry's through the portfolio, which releases the reservation and passes an
    AbandonIntent on), so it always arrives after the claim it gives up.
    """

    symbol: str
    intent_hash: str
    detail: str = ""
    sent_at: int | None = None  # the send the claim itself recorded (its processBefore's start), if it did
