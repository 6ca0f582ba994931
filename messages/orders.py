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

# The one table of allowed state transitions, shared by gateway, symbol and store: a report whose
# move is not listed here is stale or repeated and changes nothing.
_S = OrderState
TRANSITIONS: dict[OrderState, frozenset[OrderState]] = {
    _S.INITIALIZED: frozenset({_S.SUBMITTED, _S.UNKNOWN, _S.ACCEPTED, _S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELED,
                               _S.REJECTED}),
    _S.SUBMITTED: frozenset({_S.UNKNOWN, _S.ACCEPTED, _S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELED, _S.REJECTED}),
    # proven absent and re-sent (SUBMITTED again), or found
    _S.UNKNOWN: frozenset({_S.SUBMITTED, _S.ACCEPTED, _S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELED, _S.REJECTED}),
    _S.ACCEPTED: frozenset({_S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELED}),
    _S.PARTIALLY_FILLED: frozenset({_S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELED}),
    _S.FILLED: frozenset(),
    _S.CANCELED: frozenset({_S.CANCELED}),  # a fill that the cancel answer did not show yet
    # A rejection is final only when proven: an order found on the exchange later is taken back as ours.
    _S.REJECTED: frozenset({_S.ACCEPTED, _S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELED}),
}


def is_advance(current: OrderState, new: OrderState, *, filled_before: Decimal | None = None,
               filled_after: Decimal | None = None) -> bool:
    """True when the table allows `current` -> `new`; a move to the same state needs more filled."""
    if new not in TRANSITIONS[current]:
        return False
    if new is current:
        return filled_before is not None and filled_after is not None and filled_after > filled_before
    return True


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
    order_type: str = "market"  # "market", "limit", or protective: "stop", "trailing_stop", "take_profit"
    limit_price: Decimal | None = None
    trigger_price: Decimal | None = None  # a protective order's stop price
    trigger_signal: str | None = None  # the price Kraken watches for it: "mark", "index" or "last"
    trailing_pct: Decimal | None = None  # a trailing stop-loss's distance behind the best price, in percent
    stop_loss: Decimal | None = None  # an entry's own protective levels, from its signal (the strategy)
    take_profit: Decimal | None = None
    created_at: int = Field(default_factory=now_ms)
    # Set when the claim itself records the first send (SUBMITTED in the claim's transaction): the exchange
    # time of the claim and the processBefore every copy of the first send carries (exchange epoch ms).
    sent_at: int | None = None
    process_before: int | None = None

    @property
    def is_entry(self) -> bool:
        """True when this intent opens or adds to a position."""
        return not self.reduce_only

    @property
    def is_protective(self) -> bool:
        """True for a stop-loss or take-profit protecting a position (a reduce-only trigger order)."""
        return self.kind.is_protective


class PlaceOrder(Message):
    """Gateway command: check the exchange for open orders, then place this intent's order."""

    intent: OrderIntent


class PlaceOrders(Message):
    """Gateway command from the persistence: the intents one commit claimed, to be placed like PlaceOrder each."""

    intents: tuple[OrderIntent, ...]


class CancelOrder(Message):
    """Gateway command: cancel one order of ours (flatten replaces a resting exit this way)."""

    symbol: str
    client_order_id: str


class ResizeOrder(Message):
    """Gateway command: set the size of one of our resting protective orders (editorder), e.g. to the position
    after more of its entry filled. Idempotent: the same size twice changes nothing."""

    symbol: str
    client_order_id: str
    amount: Decimal = Field(gt=0)


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
    sent_at: int | None = None  # exchange ms of the latest send (SUBMITTED reports)
    process_before: int | None = None  # the latest send's processBefore, exchange ms: no copy executes after it
    sends: int | None = None  # sends of this intent so far (SUBMITTED reports)
    seq: int = 0  # the gateway's report sequence number; later reports have larger numbers
    time: int = Field(default_factory=now_ms)
