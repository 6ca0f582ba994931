"""The backtest report: round trips, PnL net of fees and funding, drawdown, exposure, Sharpe/Sortino, as JSON and text.

Everything here is computed from a `BacktestResult` alone (exchange times, never the wall clock), so equal results give
byte-identical JSON. Money stays `Decimal`; only Sharpe and Sortino are floats (rounded to 6 decimals in the JSON).
"""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, InvalidOperation

from backtest.result import BacktestResult, EquityPoint, FillRecord, FundingRecord
from configuration.formatting import plain_decimal
from exchange.private_api import iso_ms as kraken_iso_ms
from messages.market import timeframe_ms

ZERO = Decimal(0)
CENT = Decimal("0.01")
RATIO_STEP = Decimal("0.000001")  # ratios and averages in the JSON: 6 decimals, half-even
MS_PER_YEAR = 365 * 86_400_000  # crypto trades every day of the year
INTERRUPTED = "interrupted: partial report"
MIN_TEXT_WIDTH = 40
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ReportInputError(ValueError):
    """A backtest result the report cannot read (a fill with an unknown side, a non-positive amount, ...)."""


@dataclass(frozen=True)
class RoundTrip:
    """One trade of one symbol: from the fill that took the position off 0 to the fill that brought it back."""

    symbol: str
    side: str  # "long" | "short"
    entry_time_ms: int  # first entry fill
    entry_price: Decimal  # amount-weighted average of the entry fills
    exit_time_ms: int  # the fill that brought the position back to 0
    exit_price: Decimal  # amount-weighted average of the exit fills
    amount: Decimal  # contracts entered (= contracts exited)
    gross_pnl: Decimal  # linear contracts: exit value - entry value for a long, reversed for a short
    fees: Decimal  # the fees of its fills (a fill crossing through 0 split pro rata)
    funding: Decimal  # funding of its symbol with time in (entry, exit]; negative paid, positive received
    net_pnl: Decimal  # gross - fees + funding
    fills: int  # fills (or parts of a crossing fill) it is made of

    @property
    def duration_ms(self) -> int:
        """How long the position was open, in milliseconds."""
        return self.exit_time_ms - self.entry_time_ms


class _OpenTrade:
    """A position of one symbol being built: sums of its entries and exits, and its cost basis (average cost)."""

    def __init__(self, symbol: str, direction: int, time_ms: int) -> None:
        self.symbol = symbol
        self.direction = direction  # +1 long, -1 short
        self.entry_time_ms = time_ms
        self.size = ZERO  # contracts open now, > 0
        self.basis = ZERO  # entry value of the contracts open now (average cost)
        self.entered = ZERO
        self.entry_value = ZERO
        self.exited = ZERO
        self.exit_value = ZERO
        self.fees = ZERO
        self.realized = ZERO  # gross PnL of the exits so far, at average cost
        self.fills = 0

    def add(self, amount: Decimal, price: Decimal, fee: Decimal) -> None:
        """Grow the position by `amount` contracts at `price`."""
        self.size += amount
        self.basis += amount * price
        self.entered += amount
        self.entry_value += amount * price
        self.fees += fee
        self.fills += 1

    def reduce(self, amount: Decimal, price: Decimal, fee: Decimal) -> None:
        """Shrink the position by `amount` (<= size) contracts at `price`, realizing PnL at the average cost."""
        if amount == self.size:
            cost = self.basis
        else:
            cost = self.basis * amount / self.size
        self.realized += self.direction * (amount * price - cost)
        self.basis -= cost
        self.size -= amount
        self.exited += amount
        self.exit_value += amount * price
        self.fees += fee
        self.fills += 1

    def closed(self, exit_time_ms: int, funding: Decimal) -> RoundTrip:
        """The finished round trip (call when size is 0)."""
        gross = self.direction * (self.exit_value - self.entry_value)
        return RoundTrip(
            symbol=self.symbol, side="long" if self.direction > 0 else "short",
            entry_time_ms=self.entry_time_ms, entry_price=self.entry_value / self.entered,
            exit_time_ms=exit_time_ms, exit_price=self.exit_value / self.exited, amount=self.entered,
            gross_pnl=gross, fees=self.fees, funding=funding, net_pnl=gross - self.fees + funding, fills=self.fills)


@dataclass(frozen=True)
class _Trades:
    """What pairing the fills gives: the closed round trips, and the gross PnL realized by all exits (open ones too)."""

    round_trips: tuple[RoundTrip, ...]
    realized_gross: Decimal


def _checked_fill(index: int, fill: FillRecord) -> FillRecord:
    """The fill, or ReportInputError naming it and what is wrong."""
    where = f"fill #{index} ({fill.symbol} at {fill.time_ms})"
    if fill.side not in ("buy", "sell"):
        raise ReportInputError(f"{where}: side is {fill.side!r}; it must be 'buy' or 'sell'")
    for name in ("amount", "price", "fee"):
        value = getattr(fill, name)
        if not isinstance(value, Decimal) or not value.is_finite():
            raise ReportInputError(f"{where}: {name} {value!r} is not a finite Decimal")
    if fill.amount <= 0:
        raise ReportInputError(f"{where}: amount {fill.amount} is not positive; a fill's side says its direction")
    if fill.price <= 0:
        raise ReportInputError(f"{where}: price {fill.price} is not positive")
    return fill


def _funding_between(funding: list[FundingRecord], after_ms: int, until_ms: int) -> Decimal:
    """Sum of the funding records with time in (after_ms, until_ms]."""
    return sum((f.amount for f in funding if after_ms < f.time_ms <= until_ms), ZERO)


def _pair(fills: tuple[FillRecord, ...] | list[FillRecord], funding: tuple[FundingRecord, ...] | list[FundingRecord],
          ) -> _Trades:
    """Pair the fills of each symbol into round trips (oldest first by exit time, then symbol)."""
    checked = [_checked_fill(i, f) for i, f in enumerate(fills)]
    by_symbol: dict[str, list[FillRecord]] = {}
    for fill in sorted(checked, key=lambda f: f.time_ms):  # stable: fills of one millisecond keep their order
        by_symbol.setdefault(fill.symbol, []).append(fill)
    funding_by_symbol: dict[str, list[FundingRecord]] = {}
    for record in funding:
        funding_by_symbol.setdefault(record.symbol, []).append(record)
    trips: list[RoundTrip] = []
    realized = ZERO
    for symbol in sorted(by_symbol):
        symbol_funding = funding_by_symbol.get(symbol, [])
        trade: _OpenTrade | None = None
        for fill in by_symbol[symbol]:
            direction = 1 if fill.side == "buy" else -1
            remaining, fee_left = fill.amount, fill.fee
            while remaining > 0:
                if trade is None:
                    trade = _OpenTrade(symbol, direction, fill.time_ms)
                if trade.direction == direction:
                    trade.add(remaining, fill.price, fee_left)
                    break
                part = min(remaining, trade.size)
                part_fee = fee_left if part == remaining else fill.fee * part / fill.amount
                trade.reduce(part, fill.price, part_fee)
                remaining -= part
                fee_left -= part_fee
                if trade.size == 0:
                    realized += trade.realized
                    trips.append(trade.closed(fill.time_ms,
                                              _funding_between(symbol_funding, trade.entry_time_ms, fill.time_ms)))
                    trade = None
        if trade is not None:
            realized += trade.realized
    trips.sort(key=lambda t: (t.entry_time_ms, t.exit_time_ms, t.symbol))  # as a trader reads them: by entry
    return _Trades(tuple(trips), realized)


def round_trips(fills: tuple[FillRecord, ...] | list[FillRecord],
                funding: tuple[FundingRecord, ...] | list[FundingRecord] = ()) -> list[RoundTrip]:
    """The closed trades in these fills, per symbol, sorted by entry time; a fill crossing through 0 is split.

    A trade opens when its symbol's position leaves 0 and closes when it is back at 0; a position still open after
    the last fill is no round trip. `funding` adds each symbol's funding with time in (entry, exit] to its trades.
    """
    return list(_pair(fills, funding).round_trips)


@dataclass(frozen=True)
class Drawdown:
    """The deepest fall of equity below its running peak (in USD), with that peak's and the trough's time."""

    usd: Decimal  # peak - trough, >= 0
    percent: Decimal | None  # usd / peak x 100 (6 decimals); None when the peak is not positive
    peak_time_ms: int
    trough_time_ms: int


def max_drawdown(points: tuple[EquityPoint, ...] | list[EquityPoint]) -> Drawdown | None:
    """The largest peak-to-trough fall in USD of an equity curve (the first such fall on ties); None without points."""
    if not points:
        return None
    peak = points[0]
    best = Drawdown(ZERO, ZERO if peak.equity > 0 else None, peak.time_ms, peak.time_ms)
    for point in points:
        if point.equity > peak.equity:
            peak = point
        fall = peak.equity - point.equity
        if fall > best.usd:
            percent = _ratio(fall * 100, peak.equity) if peak.equity > 0 else None
            best = Drawdown(fall, percent, peak.time_ms, point.time_ms)
    return best


def _ratio(numerator: Decimal, denominator: Decimal) -> Decimal:
    """numerator / denominator to 6 decimals, half-even."""
    return (numerator / denominator).quantize(RATIO_STEP, rounding=ROUND_HALF_EVEN)


def steps_per_year(timeframe: str) -> Decimal:
    """Candle steps in a year of `timeframe`: 365 x 86,400,000 / timeframe_ms (crypto trades every day)."""
    try:
        return Decimal(MS_PER_YEAR) / Decimal(timeframe_ms(timeframe))
    except ValueError as error:
        raise ReportInputError(f"the result's timeframe: {error}") from None


def step_returns(points: tuple[EquityPoint, ...] | list[EquityPoint]) -> list[float] | None:
    """Simple returns equity[i] / equity[i-1] - 1 of consecutive points; None when an equity is not positive."""
    returns = []
    for before, after in zip(points, points[1:], strict=False):
        if before.equity <= 0:
            return None
        returns.append(float(after.equity / before.equity - 1))
    return returns


def sharpe_ratio(returns: list[float] | None, periods_per_year: Decimal) -> float | None:
    """Annualized Sharpe of per-step returns: mean / sample standard deviation x sqrt(steps per year), risk-free 0.

    None when undefined: fewer than 2 returns, or a zero deviation.
    """
    if returns is None or len(returns) < 2:
        return None
    mean = math.fsum(returns) / len(returns)
    variance = math.fsum((r - mean) ** 2 for r in returns) / (len(returns) - 1)
    if variance <= 0:
        return None
    return mean / math.sqrt(variance) * math.sqrt(float(periods_per_year))


def sortino_ratio(returns: list[float] | None, periods_per_year: Decimal) -> float | None:
    """Annualized Sortino of per-step returns: mean / downside deviation x sqrt(steps per year), target 0.

    The downside deviation is sqrt(sum(min(r, 0)^2) / n) over all n returns. None when undefined: fewer than 2
    returns, or no step lost (zero downside deviation).
    """
    if returns is None or len(returns) < 2:
        return None
    downside = math.fsum(min(r, 0.0) ** 2 for r in returns) / len(returns)
    if downside <= 0:
        return None
    mean = math.fsum(returns) / len(returns)
    return mean / math.sqrt(downside) * math.sqrt(float(periods_per_year))


@dataclass(frozen=True)
class BacktestReport:
    """What a backtest did, for a trader (`to_text`) and for programs (`to_json`); build with `from_result`.

    Sharpe and Sortino come from the per-step simple returns of the equity curve (one point per candle step),
    annualized with sqrt(steps per year), steps per year = 365 x 86,400,000 / timeframe_ms: crypto trades every
    day, so a year has 365 days of steps. Risk-free rate 0. Either is None (JSON null) when undefined.
    """

    result: BacktestResult
    trades: tuple[RoundTrip, ...]
    wins: int  # trades with net PnL > 0
    losses: int  # trades with net PnL < 0 (a trade netting exactly 0 is neither)
    win_rate: Decimal | None  # wins / trades (6 decimals); None without trades
    realized_gross: Decimal  # gross PnL of every exit, the still-open positions' partial exits too (average cost)
    fees: Decimal  # every fill's fee
    funding: Decimal  # every funding record (open positions' too); negative paid
    net_pnl: Decimal  # realized_gross - fees + funding
    balance_change: Decimal  # final_balance - initial_balance, the exchange's own figure, to compare with net_pnl
    drawdown: Drawdown | None
    exposure_fraction: Decimal | None  # equity points with nonzero exposure / points (6 decimals)
    average_exposure: Decimal | None  # mean exposure over the points, USD (6 decimals)
    sharpe: float | None
    sortino: float | None

    @classmethod
    def from_result(cls, result: BacktestResult) -> BacktestReport:
        """The report of one backtest result."""
        paired = _pair(result.fills, result.funding)
        trades = paired.round_trips
        wins = sum(1 for t in trades if t.net_pnl > 0)
        losses = sum(1 for t in trades if t.net_pnl < 0)
        fees = sum((f.fee for f in result.fills), ZERO)
        funding = sum((f.amount for f in result.funding), ZERO)
        points = result.equity
        exposed = sum(1 for p in points if p.exposure != 0)
        returns = step_returns(points)
        per_year = steps_per_year(result.timeframe)
        return cls(
            result=result, trades=trades, wins=wins, losses=losses,
            win_rate=_ratio(Decimal(wins), Decimal(len(trades))) if trades else None,
            realized_gross=paired.realized_gross, fees=fees, funding=funding,
            net_pnl=paired.realized_gross - fees + funding,
            balance_change=result.final_balance - result.initial_balance,
            drawdown=max_drawdown(points),
            exposure_fraction=_ratio(Decimal(exposed), Decimal(len(points))) if points else None,
            average_exposure=_ratio(sum((p.exposure for p in points), ZERO), Decimal(len(points))) if points else None,
            sharpe=sharpe_ratio(returns, per_year), sortino=sortino_ratio(returns, per_year))

    @property
    def rejections(self) -> list[tuple[str, int]]:
        """(reason, count) of the refused signals, sorted by reason."""
        return sorted(self.result.rejections.items())

    @property
    def status(self) -> str:
        """`complete`, or `interrupted: partial report` when the run was stopped before the end of the data."""
        return "complete" if self.result.complete else INTERRUPTED

    def to_dict(self) -> dict[str, object]:
        """The report as JSON-ready values: decimals as plain strings, times as {ms, utc}, floats to 6 decimals."""
        r = self.result
        drawdown = self.drawdown
        return {
            "status": self.status,
            "complete": r.complete,
            "strategy": r.strategy,
            "params": _jsonable(r.params),
            "seed": r.seed,
            "symbols": list(r.symbols),
            "timeframe": r.timeframe,
            "period": {"start": _time(r.start_ms), "end": _time(r.end_ms)},
            "candle_steps": r.candle_steps,
            "equity_points": len(r.equity),
            "balance": {"initial": plain(r.initial_balance), "final": plain(r.final_balance),
                        "change": plain(self.balance_change)},
            "pnl": {"realized_gross": plain(self.realized_gross), "fees": plain(self.fees),
                    "funding": plain(self.funding), "net": plain(self.net_pnl)},
            "trades": {
                "count": len(self.trades), "wins": self.wins, "losses": self.losses,
                "win_rate": _plain_or_none(self.win_rate),
                "gross": plain(sum((t.gross_pnl for t in self.trades), ZERO)),
                "fees": plain(sum((t.fees for t in self.trades), ZERO)),
                "funding": plain(sum((t.funding for t in self.trades), ZERO)),
                "net": plain(sum((t.net_pnl for t in self.trades), ZERO)),
            },
            "max_drawdown": None if drawdown is None else {
                "usd": plain(drawdown.usd), "percent": _plain_or_none(drawdown.percent),
                "peak": _time(drawdown.peak_time_ms), "trough": _time(drawdown.trough_time_ms)},
            "exposure": {"fraction": _plain_or_none(self.exposure_fraction),
                         "average_usd": _plain_or_none(self.average_exposure)},
            "sharpe": _rounded(self.sharpe),
            "sortino": _rounded(self.sortino),
            "rejections": {reason: count for reason, count in self.rejections},
            "open_positions": {symbol: plain(amount) for symbol, amount in sorted(r.open_positions.items())},
            "round_trips": [_trip_dict(t) for t in self.trades],
        }

    def to_json(self) -> str:
        """The report as JSON: sorted keys, 2-space indent; byte-identical for equal results, no wall-clock value."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=2, ensure_ascii=False)

    def summary_rows(self) -> list[tuple[str, str]]:
        """(label, value) lines of the summary block, money to cents: what the text and the HTML page show."""
        r = self.result
        drawdown = self.drawdown
        if drawdown is None:
            drawdown_text = "-"
        else:
            percent = "" if drawdown.percent is None else f" ({cents(drawdown.percent)}%)"
            drawdown_text = (f"{cents(drawdown.usd)} USD{percent}, peak {utc_text(drawdown.peak_time_ms)}, "
                             f"trough {utc_text(drawdown.trough_time_ms)}")
        if self.exposure_fraction is None or self.average_exposure is None:
            exposure_text = "-"
        else:
            exposure_text = (f"{cents(self.exposure_fraction * 100)}% of steps in the market, "
                             f"average {cents(self.average_exposure)} USD")
        rejections = ", ".join(f"{reason} {count}" for reason, count in self.rejections) or "none"
        open_positions = ", ".join(f"{s} {plain(a)}" for s, a in sorted(r.open_positions.items())) or "none"
        win_rate = "-" if self.win_rate is None else f"{cents(self.win_rate * 100)}%"
        params = ", ".join(f"{k}={_param_text(v)}" for k, v in sorted(r.params.items()))
        rows = [
            ("status", self.status),
            ("period", f"{utc_text(r.start_ms)} to {utc_text(r.end_ms)} UTC, {r.timeframe} candles, "
                       f"{r.candle_steps} candle steps"),
            ("symbols", ", ".join(r.symbols)),
            ("strategy", f"{r.strategy} ({params})" if params else r.strategy),
            ("seed", str(r.seed)),
            ("net PnL", f"{cents(self.net_pnl)} USD (gross {cents(self.realized_gross)}, fees -{cents(self.fees)}, "
                        f"funding {cents(self.funding)})"),
            ("balance", f"{cents(r.initial_balance)} -> {cents(r.final_balance)} USD "
                        f"(change {cents(self.balance_change)})"),
            ("trades", f"{len(self.trades)}: {self.wins} won, {self.losses} lost, win rate {win_rate}"),
            ("max drawdown", drawdown_text),
            ("Sharpe", _ratio_text(self.sharpe)),
            ("Sortino", _ratio_text(self.sortino)),
            ("exposure", exposure_text),
            ("rejections", rejections),
            ("open at end", open_positions),
        ]
        return rows

    def trade_rows(self) -> list[tuple[str, str, str, str, str, str, str]]:
        """(entry time UTC, symbol, side, amount, entry, exit, net) per round trip: what the trade tables show."""
        return [(utc_text(t.entry_time_ms), t.symbol, t.side, plain(t.amount), plain(_price(t.entry_price)),
                 plain(_price(t.exit_price)), cents(t.net_pnl)) for t in self.trades]

    def to_text(self, width: int = 100) -> str:
        """The report for a trader: the summary block, then the trade table; every line fits `width` columns."""
        if width < MIN_TEXT_WIDTH:
            raise ReportInputError(f"a text width of {width} is too narrow; use at least {MIN_TEXT_WIDTH} columns")
        title = f"Backtest report{' (' + INTERRUPTED + ')' if not self.result.complete else ''}"
        lines = textwrap.wrap(title, width) + [""]
        label_width = max(len(label) for label, _ in self.summary_rows()) + 2
        for label, value in self.summary_rows():
            lines.extend(textwrap.wrap(value, width, initial_indent=f"{label}:".ljust(label_width),
                                       subsequent_indent=" " * label_width, break_on_hyphens=False) or [label])
        lines.append("")
        lines.extend(_trade_table(self.trade_rows(), width))
        return "\n".join(lines) + "\n"


TRADE_HEADER = ("entry time (UTC)", "symbol", "side", "amount", "entry", "exit", "net USD")
_RIGHT_ALIGNED = {3, 4, 5, 6}


def _trade_table(rows: Sequence[tuple[str, ...]], width: int) -> list[str]:
    """The trades as columns when they fit `width`, else one wrapped block per trade."""
    if not rows:
        return ["no round trips"]
    widths = [max(len(row[i]) for row in [TRADE_HEADER, *rows]) for i in range(len(TRADE_HEADER))]
    if sum(widths) + 2 * (len(widths) - 1) <= width:
        def line(row: tuple[str, ...]) -> str:
            cells = [c.rjust(w) if i in _RIGHT_ALIGNED else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths,
                                                                                                      strict=True))]
            return "  ".join(cells).rstrip()
        return [line(TRADE_HEADER), "  ".join("-" * w for w in widths), *(line(row) for row in rows)]
    lines = ["trades:"]
    for number, row in enumerate(rows, start=1):
        text = (f"#{number} {row[0]} {row[1]} {row[2]} {row[3]}, entry {row[4]}, exit {row[5]}, net {row[6]} USD")
        lines.extend(textwrap.wrap(text, width, subsequent_indent="    ", break_on_hyphens=False))
    return lines


def plain(value: Decimal) -> str:
    """A decimal as a plain string without exponent or trailing zeros: `0.5`, `120`, `0` (never `-0`)."""
    return plain_decimal(value)


def cents(value: Decimal) -> str:
    """A decimal rounded half-up to cents, plain: `12.35`, `-0.10`, `0.00`."""
    text = format(value.quantize(CENT, rounding=ROUND_HALF_UP), "f")
    return "0.00" if text == "-0.00" else text


def _price(value: Decimal) -> Decimal:
    """An average price to at most 8 decimals (the averages of uneven fills do not end)."""
    try:
        return value.quantize(Decimal("0.00000001"), rounding=ROUND_HALF_EVEN)
    except InvalidOperation:  # beyond 28 digits: a price this big keeps its own digits
        return value


def _plain_or_none(value: Decimal | None) -> str | None:
    """`plain` of a decimal, None stays None."""
    return None if value is None else plain(value)


def _rounded(value: float | None) -> float | None:
    """A float rounded to 6 decimals for the JSON (never -0.0; NaN and infinities as None)."""
    if value is None or not math.isfinite(value):
        return None
    rounded = round(value, 6)
    return 0.0 if rounded == 0 else rounded


def _ratio_text(value: float | None) -> str:
    """Sharpe or Sortino for people: 2 decimals, `-` when undefined."""
    rounded = _rounded(value)
    return "- (undefined)" if rounded is None else f"{rounded:.2f}"


def utc_datetime(ms: int) -> datetime:
    """Epoch milliseconds as an exact UTC datetime."""
    return _EPOCH + timedelta(milliseconds=ms)


def iso_ms(ms: int) -> str:
    """Epoch milliseconds as ISO-8601 UTC with milliseconds and Z: `2024-01-02T03:04:05.678Z` (Kraken's form)."""
    return kraken_iso_ms(ms)


def utc_text(ms: int) -> str:
    """Epoch milliseconds for people: `2024-01-02 03:04` (seconds when not 0)."""
    moment = utc_datetime(ms)
    return moment.strftime("%Y-%m-%d %H:%M" if moment.second == 0 and moment.microsecond == 0 else "%Y-%m-%d %H:%M:%S")


def _time(ms: int) -> dict[str, object]:
    """A time for the JSON: the ms integer and the ISO-8601 UTC text."""
    return {"ms": ms, "utc": iso_ms(ms)}


def _trip_dict(trip: RoundTrip) -> dict[str, object]:
    """One round trip for the JSON."""
    return {
        "symbol": trip.symbol, "side": trip.side, "amount": plain(trip.amount),
        "entry": {"time": _time(trip.entry_time_ms), "price": plain(_price(trip.entry_price))},
        "exit": {"time": _time(trip.exit_time_ms), "price": plain(_price(trip.exit_price))},
        "duration_ms": trip.duration_ms, "fills": trip.fills,
        "gross_pnl": plain(trip.gross_pnl), "fees": plain(trip.fees), "funding": plain(trip.funding),
        "net_pnl": plain(trip.net_pnl),
    }


def _jsonable(value: object) -> object:
    """Strategy parameters as JSON values: decimals as plain strings, tuples as lists, floats to 6 decimals."""
    if isinstance(value, Decimal):
        return plain(value) if value.is_finite() else str(value)
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return _rounded(value) if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value)


def _param_text(value: object) -> str:
    """A strategy parameter for people."""
    shown = _jsonable(value)
    return shown if isinstance(shown, str) else json.dumps(shown, sort_keys=True)
