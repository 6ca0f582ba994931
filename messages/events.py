"""Events: every decision and rejection, with a typed reason, for the event log."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from messages._base import Message, now_ms


class Reason(StrEnum):
    """Why a signal was not traded or an order did not go as planned.

    Stored by value (the `reason` columns of the `event`, `order` and `intent` tables); events are read back strictly
    (Reason(row.reason)), so a value that code has ever written must stay, or old rows stop being readable.
    STRATEGY_ERROR was removed because nothing ever wrote it (a strategy that raises kills its symbol actor:
    ACTOR_DIED, then a restart).
    """

    DUPLICATE_INTENT = "DUPLICATE_INTENT"  # L1: the same signal was seen before
    POSITION_OPEN = "POSITION_OPEN"  # L3: a position is open and pyramiding is off
    NO_POSITION = "NO_POSITION"  # an exit with nothing to exit
    ORDER_PENDING = "ORDER_PENDING"  # L5: our own order for this symbol is still in flight
    ORDER_UNRESOLVED = "ORDER_UNRESOLVED"  # an order with unknown outcome blocks this side
    EXCHANGE_ORDER_OPEN = "EXCHANGE_ORDER_OPEN"  # L4: an order rests on the exchange for symbol+side
    RISK_LIMIT = "RISK_LIMIT"  # portfolio-wide limits
    RISK_UNAVAILABLE = "RISK_UNAVAILABLE"  # the portfolio did not answer in time
    PAUSED = "PAUSED"
    HALTED = "HALTED"
    NOT_READY = "NOT_READY"  # no position sync (reconciliation) yet since start
    SIZE_TOO_SMALL = "SIZE_TOO_SMALL"
    PERSISTENCE_UNAVAILABLE = "PERSISTENCE_UNAVAILABLE"  # the intent could not be claimed durably
    EXCHANGE_UNAVAILABLE = "EXCHANGE_UNAVAILABLE"  # the exchange could not be reached for a check
    EXCHANGE_REJECTED = "EXCHANGE_REJECTED"  # the exchange refused the order
    OUTCOME_UNKNOWN = "OUTCOME_UNKNOWN"  # time-out, dropped connection, 5xx around a send
    NOT_PLACED = "NOT_PLACED"  # an unknown outcome proven absent and not re-sent (too old, too many sends)
    EXTERNAL_ORDER = "EXTERNAL_ORDER"  # an order placed outside this system, adopted at reconciliation
    CANCELED_BY_TIMEOUT = "CANCELED_BY_TIMEOUT"  # an unfilled limit order past its time-out
    EXCHANGE_MISMATCH = "EXCHANGE_MISMATCH"  # an exchange answer contradicts what we know: entries refused
    BLOCKED = "BLOCKED"  # the fate of one of our orders cannot be decided: `resolve SYMBOL` after checking
    GIVEN_UP = "GIVEN_UP"  # an operator's `resolve` gave up on an undecided order
    BAD_MARKET_DATA = "BAD_MARKET_DATA"  # a candle or ticker that is not a finite, consistent price: dropped
    BAD_SIGNAL = "BAD_SIGNAL"  # a strategy's signal that does not validate (e.g. a stop above a long's entry)
    INSUFFICIENT_MARGIN = "INSUFFICIENT_MARGIN"  # an entry's initial margin exceeds the account's available margin
    MARGIN_UNKNOWN = "MARGIN_UNKNOWN"  # the available margin has not been read (or not lately): entries refused


class EventKind(StrEnum):
    """What happened.

    Stored by value in the `event` table and read back strictly (EventKind(row.kind)): a value that code has ever
    written must stay. SIGNAL and ORDER_SUBMITTED were removed because nothing ever wrote them (a traded signal
    shows as INTENT_CLAIMED, an order's states as ORDER_UPDATE).
    """

    SIGNAL_REJECTED = "SIGNAL_REJECTED"
    INTENT_CLAIMED = "INTENT_CLAIMED"
    ORDER_UPDATE = "ORDER_UPDATE"
    POSITION_SYNC_FAILED = "POSITION_SYNC_FAILED"
    CONTROL = "CONTROL"
    ACTOR_DIED = "ACTOR_DIED"
    ACTOR_RESTARTED = "ACTOR_RESTARTED"
    SYMBOL_HALTED = "SYMBOL_HALTED"
    SYSTEM = "SYSTEM"  # about the system rather than one decision: e.g. bad market data, a failed write
    RECONCILED = "RECONCILED"
    RECONCILE_FAILED = "RECONCILE_FAILED"
    RECONCILE_MISMATCH = "RECONCILE_MISMATCH"
    PROTECTION = "PROTECTION"  # a stop-loss or take-profit placed, resized, filled ("closed by stop"), refused


class Event(Message):
    """One entry of the append-only event log."""

    kind: EventKind
    symbol: str | None = None
    reason: Reason | None = None
    intent_hash: str | None = None
    detail: str = ""
    time: int = Field(default_factory=now_ms)
