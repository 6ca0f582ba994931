"""Money the exchange books beside the fills: trade fees and funding from Kraken's account log, available margin."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field

from messages._base import Message, now_ms


class TradeFee(Message):
    """The fee of one execution (an account-log entry): applied to the fill whose fill_id is `execution`."""

    entry_id: int  # the account-log entry id: each entry is counted once
    execution: str
    symbol: str
    fee: Decimal  # paid (positive: a cost)
    currency: str
    time: int


class FundingPayment(Message):
    """One funding payment (an account-log entry)."""

    entry_id: int
    symbol: str
    amount: Decimal  # received (+) or paid (-)
    currency: str
    rate: Decimal | None = None
    time: int


class AccountLogEntries(Message):
    """The gateway's newly read fee and funding entries, for persistence (told; idempotent by entry id)."""

    fees: tuple[TradeFee, ...] = ()
    funding: tuple[FundingPayment, ...] = ()


class AccountMargin(Message):
    """The account's available margin as the exchange reported it (the gateway to the portfolio)."""

    available: Decimal
    initial: Decimal | None = None
    portfolio_value: Decimal | None = None
    read_at: int = Field(default_factory=now_ms)


class GetAccountLogCursor(Message):
    """Ask persistence for the newest account-log entry id it has stored (None: none yet)."""


class QueryMoney(Message):
    """Ask persistence for the PnL totals per symbol (Store.pnl_totals: gross, fees, funding, net, ...)."""
