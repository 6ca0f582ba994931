"""Order intents, order commands and order results."""

from __future__ import annotations

import hashlib
import uuid
from decimal import Decimal
from enum import StrEnum

from pydantic import Field

from messages._base import Message, now_ms
from messages.signals import SignalKind


class Side(StrEnum):
    """The side of an order, as ccxt spells it."""

    BUY = "buy"
    SELL = "sell"


class OrderState(StrEnum):
    """The states an order (and the intent behind it) moves through."""

    INITIALIZED = "INITIALIZED"  # intent claimed, not yet handed to the exchange
    SUBMITTED = "SUBMITTED"  # the request is leaving (or has left) for the exchange
    ACCEPTED = "ACCEPTED"  # the exchange holds the order
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"  # never placed: refused by a guard or by the exchange
    UNKNOWN = "UNKNOWN"  # sent, outcome not known: never re-sent on a guess

    @property
    def is_final(self) -> bool:
        """True when nothing more can happen to the order."""
        return self in FINAL_STATES


FINAL_STATES = frozenset({OrderState.FILLED, OrderState.CANCELED, OrderState.REJECTED})

# States whose outcome on the exchange is not known; the intent blocks its side until resolved.
UNRESOLVED_STATES = frozenset({OrderState.INITIALIZED, OrderState.SUBMITTED, OrderState.UNKNOWN})

# Where a state may go next; anything else is ignored as stale.
_STATE_RANK: dict[OrderState, int] = {
    OrderState.INITIALIZED: 0,
    OrderState.SUBMITTED: 1,
    OrderState.UNKNOWN: 2,
    OrderState.ACCEPTED: 3,
    OrderState.PARTIALLY_FILLED: 4,
    OrderState.FILLED: 5,
    OrderState.CANCELED: 5,
    OrderState.REJECTED: 5,
}


def is_advance(current: OrderState, new: OrderState) -> bool:
    """True when moving from `current` to `new` is progress; stale or repeated reports are not."""
    if current.is_final:
        return False
    if new is current:
        return new is OrderState.PARTIALLY_FILLED  # another partial fill
    if current is OrderState.UNKNOWN and new is OrderState.SUBMITTED:
        return True  # proven absent, re-sent with the same client order id
    return _STATE_RANK[new] > _STATE_RANK[current]


def intent_hash(symbol: str, candle_time: int, kind: SignalKind, notional: Decimal | str) -> str:
    """Return the intent hash: SHA-256 of symbol, signal candle time, signal kind and notional."""
    notional_text = notional if isinstance(notional, str) else format(Decimal(notional).normalize(), "f")
    key = f"{symbol}|{candle_time}|{kind.value}|{notional_text}"
    return hashlib.sha256(key.encode()).hexdigest()


def client_order_id_for(hash_hex: str) -> str:
    """Return the deterministic client order id (a UUID string, 36 chars) for an intent hash."""
    return str(uuid.UUID(hex=hash_hex[:32]))


class OrderIntent(Message):
    """One signal turned into an order to place: its hash and client order id say who it is."""

    intent_hash: str = Field(min_length=64, max_length=64)
    client_order_id: str = Field(min_length=1, max_length=100)
    symbol: str
    kind: SignalKind
    side: Side
    candle_time: int
    notional: Decimal
    amount: Decimal = Field(gt=0)
    price: Decimal  # reference price (signal close) for sizing, limits and risk
    reduce_only: bool = False
    order_type: str = "market"  # "market" or "limit"
    limit_price: Decimal | None = None
    created_at: int = Field(default_factory=now_ms)

    @property
    def is_entry(self) -> bool:
        """True when this intent opens or adds to a position."""
        return not self.reduce_only


class PlaceOrder(Message):
    """Gateway command: check the exchange for open orders, then place this intent's order."""

    intent: OrderIntent


class CancelOrder(Message):
    """Gateway command: cancel an order of ours by exchange id or client order id."""

    symbol: str
    exchange_order_id: str | None = None
    client_order_id: str | None = None


class Fill(Message):
    """One execution of an order."""

    fill_id: str
    symbol: str
    side: Side
    amount: Decimal
    price: Decimal
    fee: Decimal = Decimal(0)
    exchange_order_id: str | None = None
    client_order_id: str | None = None
    time: int = Field(default_factory=now_ms)


class OrderUpdate(Message):
    """What became of an order: the gateway's report, routed to persistence, portfolio and symbol."""

    intent_hash: str | None  # None for an order not placed by this system (EXTERNAL)
    client_order_id: str | None
    symbol: str
    side: Side
    state: OrderState
    reduce_only: bool = False
    exchange_order_id: str | None = None
    amount: Decimal | None = None
    filled: Decimal = Decimal(0)
    average_price: Decimal | None = None
    fills: tuple[Fill, ...] = ()
    reason: str | None = None  # a Reason code when rejected or unknown
    detail: str = ""
    seq: int = 0  # the gateway's report sequence number; later reports have larger numbers
    time: int = Field(default_factory=now_ms)
