"""What persistence stores and hands back: intent and control records, claims, bootstraps."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any, ClassVar, Literal

from messages._base import Message
from messages.events import Event
from messages.orders import OrderIntent, OrderState, OrderUpdate, Side
from messages.risk import RiskDecision, RiskRequest
from messages.signals import SignalKind


class IntentRecord(Message):
    """A stored intent and the state of its order."""

    intent_hash: str
    client_order_id: str
    symbol: str
    kind: SignalKind
    side: Side
    candle_time: int
    reduce_only: bool
    amount: Decimal
    price: Decimal
    notional: Decimal
    order_type: str
    limit_price: Decimal | None = None
    trigger_price: Decimal | None = None
    trigger_signal: str | None = None
    trailing_pct: Decimal | None = None
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    state: OrderState
    filled: Decimal = Decimal(0)
    exchange_order_id: str | None = None
    reason: str | None = None
    created_at: int
    updated_at: int
    sent_at: int | None = None  # exchange ms of the latest send; None: never sent
    process_before: int | None = None  # the latest send's processBefore (exchange ms)
    sends: int = 0
    fill_ids: frozenset[str] = frozenset()  # fills already stored for this order: never counted twice
    fills_booked: Decimal = Decimal(0)  # the amount of those fills
    schema_v1: bool = False  # stored before sends recorded processBefore: a send's window is unknown

    # The fields an OrderIntent shares with its record: the one mapping between the two.
    INTENT_FIELDS: ClassVar[tuple[str, ...]] = (
        "intent_hash", "client_order_id", "symbol", "kind", "side", "candle_time", "notional", "amount", "price",
        "reduce_only", "order_type", "limit_price", "trigger_price", "trigger_signal", "trailing_pct", "stop_loss",
        "take_profit", "created_at",
    )

    def to_intent(self) -> OrderIntent:
        """The intent as it was claimed (to resolve or re-send it with the same client order id)."""
        return OrderIntent(**{name: getattr(self, name) for name in self.INTENT_FIELDS})


class ControlRecord(Message):
    """A symbol's durable control state."""

    symbol: str
    paused: bool = False
    halted: bool = False
    reason: str = ""
    source: str = ""
    updated_at: int = 0


class Handover:
    """Who decides what happens to a claimed intent once its claim commits: taken once, by one side only.

    The persistence takes it right after the commit to hand the order to the gateway; a symbol that stopped waiting
    for the answer takes it to give the claim up. Whoever takes it first decides; the other sees it is taken. So a
    claim whose answer comes too late is never sent, and one that was sent is never given up.
    """

    __slots__ = ("_lock", "by", "reserved")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by = ""  # "persistence" (handed to the gateway) or "symbol" (given up)
        self.reserved = False  # the portfolio reserved its risk and passed the claim on (said by a give-up)

    def take(self, by: str) -> bool:
        """Take the decision; False if the other side has it."""
        if not self._lock.acquire(blocking=False):
            return False
        self.by = by
        return True

    @property
    def given_up(self) -> bool:
        """The waiting symbol gave the claim up."""
        return self.by == "symbol"


class ClaimIntent(Message):
    """Persistence command: claim this intent durably, or say it was claimed before; then hand it to `place`.

    Sent by tell with `reply` (a pykka future the sender waits on), so that claims arriving together share one
    commit; the reply is set only after that commit. An entry carries `risk`: it goes to the portfolio first, which
    reserves the room and passes the claim on (or answers the refusal), so the symbol waits once. With `place` (the
    gateway) and `handover`, the persistence hands every claimed intent of one commit to the gateway in one
    PlaceOrders, unless the symbol already gave the claim up.
    """

    intent: OrderIntent
    event: Event | None = None
    reply: Any = None
    risk: RiskRequest | None = None
    place: Any = None
    handover: Any = None


class ClaimResult(Message):
    """The answer to ClaimIntent: claimed (and handed to the gateway), claimed before, or refused by risk."""

    claimed: bool
    existing_state: OrderState | None = None
    handed: bool = False  # the persistence told the gateway to place it
    refused: RiskDecision | None = None  # the portfolio's refusal: nothing was reserved or claimed


class RecordSends(Message):
    """Persistence command from the gateway: store these SUBMITTED reports durably, then set `reply`.

    A send leaves only after its processBefore is on disk, so a restart always knows the latest
    moment at which any copy of the order could still execute.
    """

    updates: tuple[OrderUpdate, ...]
    reply: Any = None


class AbandonIntent(Message):
    """Persistence command: an intent whose claim answer came too late is given up (never sent)."""

    intent_hash: str
    detail: str = ""
    # The send its claim recorded (sent_at, processBefore in the claim's transaction): that row is abandoned too,
    # since the give-up took the Handover first and the intent was never handed to the gateway.
    claimed_sent_at: int | None = None


class FindIntents(Message):
    """Persistence query: the stored intents with these client order ids (final ones too)."""

    client_order_ids: tuple[str, ...]


class SetControl(Message):
    """Persistence command: store a symbol's control state (None leaves a flag as it is)."""

    symbol: str
    paused: bool | None = None
    halted: bool | None = None
    reason: str = ""
    source: str = ""


class LoadSymbol(Message):
    """Persistence query: what a (re)starting symbol actor needs to know."""

    symbol: str
    since: int  # epoch ms: intents created after this are remembered (the retention window)


class SymbolBootstrap(Message):
    """A symbol actor's durable state: remembered intent hashes, unfinished intents, control state."""

    symbol: str
    recent_hashes: frozenset[str]
    open_intents: tuple[IntentRecord, ...]
    control: ControlRecord
    last_entry: IntentRecord | None = None  # the newest entry that filled: the position protective orders guard


class LoadOpenIntents(Message):
    """Persistence query: every intent whose order is not final (for risk reservations).

    `with_unbooked` adds final intents whose stored fills fall short of their filled amount (filled
    at once, killed before the fills were read): reconciliation books them.
    """

    with_unbooked: bool = False


class PurgeIntents(Message):
    """Persistence command: delete final intents created before `before` (epoch ms)."""

    before: int


class ArchiveHistory(Message):
    """Persistence command (tell): move final orders, fills and events older than `before` to gzip files, then delete.

    Nothing that is not final is touched (see Store.archive). Rows go to
    `folder/<table>-<before>.jsonl.gz`, fsynced before they are deleted.
    """

    before: int  # epoch ms: rows older than this may go
    folder: str  # where the archive files are written (created if missing)
    tables: tuple[Literal["orders", "fills", "events"], ...] = ("orders", "fills", "events")


class QueryEvents(Message):
    """Persistence query: the newest events, optionally for one symbol, kind or reason."""

    symbol: str | None = None
    kind: str | None = None
    reason: str | None = None
    limit: int = 1000


class QueryPnl(Message):
    """Persistence query: realized PnL per symbol from this system's fills."""


class Flush(Message):
    """An actor's own reminder to write (or send) what it has gathered."""
