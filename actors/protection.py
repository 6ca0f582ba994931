"""Protective orders: a stop-loss and a take-profit that rest on the exchange for every position the bot opened.

Plain values and functions (no actor, no exchange): what the symbol actor's trader uses to decide which protective
orders a position needs, at what trigger price, under which deterministic intent hash.

Why this is safe under faults (the same rules as any order, DESIGN.md's guard layers):
- A protective order is an intent like any other: claimed durably under a unique hash before it is sent, sent with
  processBefore, its fate proven (never guessed) by the gateway. Its hash is derived from the entry that opened the
  position, its kind and a generation number, so retries, restarts and a second actor all compute the same hash and
  the database's unique index lets only one of them through.
- A new generation is claimed only once the previous one is proven final (filled, cancelled, rejected): the symbol
  keeps every protective order it has not seen end, so at most one stop-loss and one take-profit exist per position.
- They are reduce-only: whatever races with them (a strategy exit, a flatten, the other protective order), the
  exchange never lets them open or reverse a position.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from messages import SignalKind

PROTECTIVE_KINDS = (SignalKind.STOP_LOSS, SignalKind.TAKE_PROFIT)
ORDER_TYPE_OF = {SignalKind.STOP_LOSS: "stop", SignalKind.TAKE_PROFIT: "take_profit"}
LABEL_OF = {SignalKind.STOP_LOSS: "stop-loss", SignalKind.TAKE_PROFIT: "take-profit"}


@dataclass(frozen=True)
class ProtectionSettings:
    """The `[protection]` section as the symbol trader uses it."""

    enabled: bool = False
    stop_loss_pct: Decimal | None = None
    stop_loss_abs: Decimal | None = None
    take_profit_pct: Decimal | None = None
    take_profit_abs: Decimal | None = None
    trigger_signal: str = "mark"
    trailing_stop_pct: Decimal | None = None  # the stop-loss trails the best price by this percent (Kraken's
    # trailing_stop) instead of resting at a fixed price
    retry_ms: int = 2_000  # a cancel or a claim not effective yet is asked again after this (wall ms): well inside
    # one reconciliation interval, the longest a protective order may outlive its position
    max_refusals: int = 5  # refusals of one kind for one position before the symbol stops asking and says so

    @classmethod
    def from_config(cls, config: object) -> ProtectionSettings:
        """From a configuration.ProtectionConfig (typed loosely: the actors layer does not import configuration)."""
        return cls(**{name: getattr(config, name) for name in (
            "enabled", "stop_loss_pct", "stop_loss_abs", "take_profit_pct", "take_profit_abs", "trigger_signal",
            "trailing_stop_pct")})

    def distance(self, kind: SignalKind, entry: Decimal) -> Decimal | None:
        """How far from `entry` this kind triggers; None when it is not configured."""
        pct, absolute = ((self.stop_loss_pct, self.stop_loss_abs) if kind is SignalKind.STOP_LOSS
                         else (self.take_profit_pct, self.take_profit_abs))
        if kind is SignalKind.STOP_LOSS and self.trailing_stop_pct is not None:
            pct = self.trailing_stop_pct  # where it starts: it moves up (a long's) with the price from there
        if absolute is not None:
            return absolute
        return None if pct is None else entry * pct / Decimal(100)

    @property
    def kinds(self) -> tuple[SignalKind, ...]:
        """The protective kinds configured (none when protection is off)."""
        if not self.enabled:
            return ()
        return tuple(k for k in PROTECTIVE_KINDS if self.distance(k, Decimal(1)) is not None)


def protective_hash(anchor_hash: str, kind: SignalKind, generation: int) -> str:
    """The intent hash of the `generation`-th protective order of this kind for the position opened by the entry
    `anchor_hash`: the same inputs always give the same hash, so only one claim of it can ever succeed."""
    return hashlib.sha256(f"protect|{anchor_hash}|{kind.value}|{generation}".encode()).hexdigest()


def trigger_price(kind: SignalKind, long: bool, entry: Decimal, distance: Decimal, tick: Decimal) -> Decimal | None:
    """Where a protective order of a long (or short) position triggers, on the market's price grid, rounded away
    from the entry (a stop never tighter, a take-profit never nearer than configured); None if it would be <= 0."""
    below = (kind is SignalKind.STOP_LOSS) == long  # a long's stop and a short's take-profit sit below the entry
    raw = entry - distance if below else entry + distance
    steps = (raw / tick).to_integral_value(rounding=ROUND_FLOOR if below else ROUND_CEILING)
    price = steps * tick
    return price if price > 0 else None
