"""Control messages from outside (pause, resume, status) and the status reports they return."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import Field, model_validator

from messages._base import Message, now_ms
from messages.orders import OrderState, Side
from messages.positions import Position
from messages.reconciliation import ExchangeOrder


class Pause(Message):
    """Stop new orders for one symbol, or for all when `symbol` is None; orders and positions stay."""

    symbol: str | None = None
    source: str = "operator"


class Resume(Message):
    """Undo a Pause for one symbol, or for all when `symbol` is None."""

    symbol: str | None = None
    source: str = "operator"


class Halt(Message):
    """Exits only: no new entries for one symbol, or for all when `symbol` is None."""

    symbol: str | None = None
    reason: str = ""
    source: str = "operator"


class Unhalt(Message):
    """Lift a Halt for one symbol, or for all when `symbol` is None."""

    symbol: str | None = None
    source: str = "operator"


class CancelOrders(Message):
    """Cancel every open order on the exchange for one traded symbol, or for every traded symbol when `symbol` is
    None: ours and any other order resting there (placed outside this system). Symbols this system does not trade
    are left alone. The gateway does it (OrderGateway.cancel_open)."""

    symbol: str | None = None
    source: str = "operator"
    pause: bool = False  # pause the symbol(s) first (durably, as Pause does), so no new entry follows the cancel


class Flatten(Message):
    """Close positions with reduce-only market orders, for one symbol or all when `symbol` is None."""

    symbol: str | None = None
    source: str = "operator"
    pause: bool = False  # pause the symbol(s) first (durably, as Pause does), so no new entry follows the flatten


class Resolve(Message):
    """An operator's word that the exchange was checked: unblock a BLOCKED symbol (see status for why).

    The symbol takes the exchange's current view (positions, open orders) as true again and
    gives up on orders it could not prove either way (they are marked NOT_PLACED, with the
    operator's name, and looked up again if they ever appear).
    """

    symbol: str
    source: str = "operator"


class Shutdown(Message):
    """Stop the running system cleanly (as Ctrl-C does); with `cancel_orders`, every open order on the traded symbols
    is cancelled first; with `flatten`, positions are closed (reduce-only market) and every open order cancelled."""

    source: str = "operator"
    cancel_orders: bool = False
    flatten: bool = False


class BeginStop(Message):
    """To the gateway: a stop has begun, nothing new is sent from now on (no order, no resize); cancels still go.
    With `allow_flatten`, reduce-only market exits still go (`stop --flatten` closes positions with them)."""

    allow_flatten: bool = False


class ReadHoldings(Message):
    """Ask the gateway what rests on the exchange now: open orders (ours by kind, and external) and positions."""


class HeldOrder(Message):
    """One order resting on the exchange, as a stop reports it; `kind`: entry, exit, stop-loss, take-profit, or
    external (not placed by this system)."""

    symbol: str
    kind: str
    side: Side
    amount: Decimal
    client_order_id: str | None = None
    exchange_order_id: str = ""
    price: Decimal | None = None


class Holdings(Message):
    """What rests on the exchange, read fresh: open orders and open positions; `problem`: what could not be read."""

    orders: tuple[HeldOrder, ...] = ()
    positions: tuple[Position, ...] = ()
    problem: str = ""


class GetStatus(Message):
    """Ask an actor for its status report."""


class ControlCode(StrEnum):
    """What a control command came to, in one word; the control endpoint maps it to an HTTP status in one place
    (control/commands.py `reply_status`)."""

    DONE = "done"
    NOTHING_TO_DO = "nothing to do"  # e.g. flatten with every position already flat: done, nothing sent
    UNKNOWN_SYMBOL = "unknown symbol"
    REFUSED = "refused"


class ControlReply(Message):
    """The answer to a control message: what was done, or why nothing was. `code` follows `ok` unless given."""

    ok: bool
    detail: str = ""
    symbols: tuple[str, ...] = ()
    code: ControlCode = ControlCode.DONE

    @model_validator(mode="before")
    @classmethod
    def _code_from_ok(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("code") is None:
            return {**data, "code": ControlCode.DONE if data.get("ok") else ControlCode.REFUSED}
        return data

    @classmethod
    def unknown_symbol(cls, symbol: str, traded: Iterable[str]) -> ControlReply:
        """The one refusal of a symbol this system does not trade."""
        return cls(ok=False, code=ControlCode.UNKNOWN_SYMBOL,
                   detail=f"unknown symbol {symbol!r}; this system trades {', '.join(sorted(traded))}")


class SymbolState(StrEnum):
    """What a symbol actor is doing, as status shows it."""

    SYNCING = "SYNCING"  # waiting for its first position sync since start
    TRADING = "TRADING"
    PAUSED = "PAUSED"
    BLOCKED = "BLOCKED"  # an order with unknown outcome blocks new entries
    HALTED = "HALTED"  # stopped after too many crashes (or by an operator)
    RESTARTING = "RESTARTING"


class PendingOrderView(Message):
    """An order of ours that is not final, as status shows it."""

    client_order_id: str
    side: Side
    state: OrderState
    reduce_only: bool
    amount: Decimal
    filled: Decimal = Decimal(0)
    exchange_order_id: str | None = None


class ProtectionView(Message):
    """One protective order of a position, as status shows it."""

    kind: str  # "STOP_LOSS" or "TAKE_PROFIT"
    client_order_id: str
    side: Side
    amount: Decimal
    trigger_price: Decimal | None
    trigger_signal: str | None
    state: OrderState


class SymbolStatus(Message):
    """One symbol actor's status."""

    symbol: str
    state: SymbolState
    paused: bool = False
    halted: bool = False
    halt_reason: str = ""
    position: Position | None = None
    pending_orders: tuple[PendingOrderView, ...] = ()
    last_candle_time: int | None = None
    last_signal: str | None = None
    last_outcome: str | None = None
    rejections: dict[str, int] = Field(default_factory=dict)
    restarts: int = 0
    last_price: Decimal | None = None  # close of the last candle
    unrealized_pnl: Decimal | None = None
    realized_pnl: Decimal | None = None  # from this system's fills, fees included
    exchange_orders: tuple[ExchangeOrder, ...] = ()  # resting on the exchange at the last reconciliation
    not_ready: str = ""  # why the symbol may not trade yet (SYNCING)
    blocked: str = ""  # why entries are refused (BLOCKED) and which command frees it
    strategy_off: bool = False  # halted after crashes: the strategy is off, exits and flatten still work
    protection_enabled: bool = False  # [protection] enabled: stop-loss / take-profit orders rest on the exchange
    protection: tuple[ProtectionView, ...] = ()
    protection_problem: str = ""  # why the position is not protected as configured ('' when it is, or is flat)


class PortfolioStatus(Message):
    """The portfolio's view: symbol states, risk use and restarts."""

    symbols: tuple[SymbolStatus, ...]
    open_positions: int
    reserved_slots: int
    max_open_positions: int
    total_notional: Decimal
    max_total_notional: Decimal
    reconciled: bool = False
    realized_pnl: Decimal | None = None
    unrealized_pnl: Decimal | None = None
    as_of: int = Field(default_factory=now_ms)
    # Money (issue 13): realized PnL before fees and funding, fees paid, funding received (+) / paid (-), and net =
    # gross - fees + funding, in total and per symbol (`money`: symbol -> {gross, fees, funding, net}, from the
    # writer's totals); `margin`: the account's available margin as the exchange last reported it (accounts, flex
    # availableMargin; None: not read yet, entries are refused)
    gross_pnl: Decimal | None = None
    fees: Decimal | None = None
    funding: Decimal | None = None
    net_pnl: Decimal | None = None
    money: dict[str, dict[str, Decimal]] = Field(default_factory=dict)
    margin: Decimal | None = None


class ReportKind(StrEnum):
    """The operator's read-only reports (`trades`, `orders`, `pnl`, `why`, `markets` on the command line)."""

    TRADES = "trades"
    ORDERS = "orders"
    PNL = "pnl"
    WHY = "why"
    MARKETS = "markets"


class ReportQuery(Message):
    """Ask the running system for one report; the persistence actor answers all but `markets` from the database
    (persistence/queries.py), the system answers `markets` from the exchange's listing. Nothing changes."""

    report: ReportKind
    symbol: str | None = None  # only this market (`why` needs one)
    since: int | None = None  # epoch ms: only rows at or after it
    limit: int = Field(default=50, ge=1, le=10_000)
    open_only: bool = False  # orders: only those not final
    by: str = "symbol"  # pnl: "symbol" or "day" (UTC)


class ReportReply(Message):
    """A report's answer: rows of plain values (Decimal, aware UTC datetime, str, bool, None) and, for pnl, the
    total; or why there is none (`ok` False, `code` UNKNOWN_SYMBOL or REFUSED, `detail` says it)."""

    ok: bool = True
    code: ControlCode = ControlCode.DONE
    detail: str = ""
    rows: tuple[dict[str, Any], ...] = ()
    total: dict[str, Any] | None = None
    extra: dict[str, Any] = Field(default_factory=dict)  # report-specific facts, e.g. pnl's `by`, the traded symbols
