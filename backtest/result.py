"""What a backtest produced, as plain values: the input of the report, the plot and `--json`."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True)
class FillRecord:
    """One fill the bot booked (from its own database), in exchange time."""

    time_ms: int
    symbol: str
    side: str  # "buy" | "sell"
    amount: Decimal  # contracts, > 0
    price: Decimal
    fee: Decimal  # USD, >= 0 (a cost)
    kind: str  # "entry", "exit", "stop-loss", "take-profit", "external"
    client_order_id: str | None = None


@dataclass(frozen=True)
class FundingRecord:
    """One funding payment the bot booked; `amount` is signed: negative paid, positive received (USD)."""

    time_ms: int
    symbol: str
    amount: Decimal


@dataclass(frozen=True)
class EquityPoint:
    """The paper account at one candle close: balance + unrealized PnL (USD), and the gross open notional."""

    time_ms: int
    equity: Decimal
    exposure: Decimal  # sum of |position| x mark over the symbols, USD


@dataclass(frozen=True)
class BacktestResult:
    """Everything the report needs; every time is the exchange's (the data's), never the wall clock's."""

    symbols: tuple[str, ...]
    timeframe: str
    start_ms: int  # first candle's open time
    end_ms: int  # last candle's close time (open + timeframe)
    strategy: str
    params: dict[str, object]
    seed: int
    initial_balance: Decimal
    final_balance: Decimal  # the exchange account's balance at the end (fees and funding included)
    fills: tuple[FillRecord, ...]
    funding: tuple[FundingRecord, ...]
    equity: tuple[EquityPoint, ...]  # one point per step, oldest first
    rejections: dict[str, int]  # reason code -> count of signals refused for it (DUPLICATE_INTENT, RISK_LIMIT, ...)
    candle_steps: int  # candles delivered (all symbols)
    complete: bool  # False when interrupted (Ctrl-C): the report covers what ran
    open_positions: dict[str, Decimal] = field(default_factory=dict)  # symbol -> contracts still open at the end
    # the bot's own books (Store.pnl_totals, what `kraken-actors pnl` shows): symbol -> gross, fees, funding, net
    pnl: dict[str, dict[str, Decimal]] = field(default_factory=dict)
