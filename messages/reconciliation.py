"""Reconciliation with the exchange: the command, what the exchange holds, and the report."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field

from messages._base import Message, now_ms
from messages.orders import Side
from messages.positions import PositionsSnapshot
from messages.records import IntentRecord


class Reconcile(Message):
    """Gateway command: check these unfinished intents, read open orders and positions, adopt strangers."""

    intents: tuple[IntentRecord, ...] = ()
    reason: str = "timer"


class ExchangeOrder(Message):
    """An order resting on the exchange, ours or not."""

    symbol: str
    side: Side
    exchange_order_id: str
    client_order_id: str | None = None
    amount: Decimal | None = None
    filled: Decimal = Decimal(0)
    price: Decimal | None = None
    reduce_only: bool = False
    ours: bool = False


class ReconciliationReport(Message):
    """What a reconciliation found; `ok` False means nothing may be trusted (and nothing trades)."""

    ok: bool
    reason: str = "timer"
    detail: str = ""
    snapshot: PositionsSnapshot | None = None
    open_orders: tuple[ExchangeOrder, ...] = ()
    adopted: tuple[ExchangeOrder, ...] = ()  # open orders placed outside this system, seen for the first time
    unresolved: int = 0  # our orders whose outcome is still being resolved
    as_of: int = Field(default_factory=now_ms)


class OpenOrdersSync(Message):
    """The portfolio's push of one symbol's orders resting on the exchange."""

    symbol: str
    orders: tuple[ExchangeOrder, ...]


class NotReady(Message):
    """The portfolio tells symbols why they may not trade yet (reconciliation failed)."""

    detail: str


class GetInFlight(Message):
    """Ask the gateway how many of our orders are being sent or resolved right now."""


class OrderBlocked(Message):
    """The gateway cannot decide what became of one of our orders: the symbol shows BLOCKED and why.

    `detail` says what was tried and what frees it (`resolve SYMBOL`, after checking the exchange);
    an empty detail means the order is decided again (the block is lifted).
    """

    symbol: str
    client_order_id: str
    detail: str = ""


class ExchangeMismatch(Message):
    """An exchange answer contradicts what we know for certain: the symbol refuses entries while it lasts.

    `key` names the contradiction (e.g. `openorders:<order id>`, `fills:<cliOrdId>`); an empty
    `detail` says that contradiction is gone (a consistent view returned).
    """

    symbol: str
    key: str
    detail: str = ""
