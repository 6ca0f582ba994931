"""The backtest report: round trips from hand-made fills, PnL net of fees and funding, drawdown, ratios, JSON, text."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from decimal import Decimal

import pytest

from backtest.report import (
    BacktestReport,
    ReportInputError,
    cents,
    max_drawdown,
    plain,
    round_trips,
    sharpe_ratio,
    sortino_ratio,
    step_returns,
)
from backtest.result import BacktestResult, EquityPoint, FillRecord, FundingRecord

D = Decimal
H = 3_600_000  # one hour in ms
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
BTC = "BTC/USD:USD"
ETH = "ETH/USD:USD"


def fill(hour: int, side: str, amount: str, price: str, fee: str = "0", symbol: str = BTC,
         kind: str = "entry") -> FillRecord:
    """A fill `hour` hours after T0."""
    return FillRecord(T0 + hour * H, symbol, side, D(amount), D(price), D(fee), kind)


def funding(hour: int, amount: str, symbol: str = BTC) -> FundingRecord:
    """A funding record `hour` hours after T0."""
    return FundingRecord(T0 + hour * H, symbol, D(amount))


def curve(*equities: str, exposures: tuple[str, ...] | None = None) -> tuple[EquityPoint, ...]:
    """Equity points one hour apart from T0."""
    shown = exposures or ("0",) * len(equities)
    return tuple(EquityPoint(T0 + i * H, D(e), D(x)) for i, (e, x) in enumerate(zip(equities, shown, strict=True)))


def result(**changes: object) -> BacktestResult:
    """A small result: BTC long 1 @ 100 -> 110 and ETH short 2 @ 50 -> 45, with fees and funding."""
    base = BacktestResult(
        symbols=(BTC, ETH), timeframe="1h", start_ms=T0, end_ms=T0 + 6 * H, strategy="sma_cross",
        params={"fast": 3, "slow": 5, "size": D("0.50")}, seed=42,
        initial_balance=D(1000), final_balance=D("1019.37"),
        fills=(fill(1, "buy", "1", "100", "0.05"), fill(2, "sell", "2", "50", "0.04", ETH),
               fill(3, "sell", "1", "110", "0.06", kind="exit"), fill(4, "buy", "2", "45", "0.03", ETH, kind="exit")),
        funding=(funding(2, "-0.20"), funding(3, "0.05", ETH), funding(5, "-0.30")),
        equity=curve("1000", "1002", "1010", "1005", "1019.67", "1019.37"),
        rejections={"RISK_LIMIT": 2, "DUPLICATE_INTENT": 5, "MAX_POSITIONS": 1},
        candle_steps=12, complete=True, open_positions={})
    return replace(base, **changes)  # type: ignore[arg-type]


def test_a_long_round_trip_has_gross_fees_funding_and_net() -> None:
    trips = round_trips([fill(1, "buy", "2", "100", "0.10"), fill(4, "sell", "2", "105", "0.12")],
                        [funding(0, "-9"), funding(2, "-0.25"), funding(4, "0.05"), funding(5, "-9"),
                         funding(3, "-9", ETH)])
    assert len(trips) == 1
    trip = trips[0]
    assert (trip.symbol, trip.side, trip.amount) == (BTC, "long", D(2))
    assert (trip.entry_time_ms, trip.exit_time_ms, trip.duration_ms) == (T0 + H, T0 + 4 * H, 3 * H)
    assert (trip.entry_price, trip.exit_price) == (D(100), D(105))
    assert trip.gross_pnl == D(10)
    assert trip.fees == D("0.22")
    assert trip.funding == D("-0.20")  # only its symbol's records in (entry, exit]: -0.25 + 0.05
    assert trip.net_pnl == D("9.58")


def test_a_short_round_trip_earns_when_the_price_falls() -> None:
    trip, = round_trips([fill(1, "sell", "3", "50", "0.03"), fill(2, "buy", "3", "40", "0.03")])
    assert trip.side == "short"
    assert trip.gross_pnl == D(30)
    assert trip.net_pnl == D("29.94")


def test_a_fill_crossing_through_zero_is_split_with_its_fee_pro_rata() -> None:
    trips = round_trips([fill(1, "buy", "1", "100", "0.10"), fill(2, "sell", "3", "110", "0.30"),
                         fill(3, "buy", "2", "105", "0.20")])
    long, short = trips
    assert (long.side, long.amount, long.exit_time_ms) == ("long", D(1), T0 + 2 * H)
    assert long.fees == D("0.20")  # 0.10 + a third of 0.30
    assert long.net_pnl == D("9.80")
    assert (short.side, short.amount, short.entry_time_ms, short.entry_price) == ("short", D(2), T0 + 2 * H, D(110))
    assert short.fees == D("0.40")  # two thirds of 0.30 + 0.20
    assert short.gross_pnl == D(10)
    assert short.net_pnl == D("9.60")
    assert long.fees + short.fees == D("0.60")  # the split loses no fee


def test_partial_exits_close_the_trade_only_at_zero_with_average_prices() -> None:
    trips = round_trips([fill(1, "buy", "1", "100"), fill(2, "buy", "1", "110"),
                         fill(3, "sell", "0.5", "120"), fill(4, "sell", "1.5", "100")])
    trip, = trips
    assert (trip.amount, trip.entry_price, trip.exit_price) == (D(2), D(105), D(105))
    assert trip.exit_time_ms == T0 + 4 * H
    assert trip.gross_pnl == D(0)
    assert trip.fills == 4


def test_a_position_open_at_the_end_is_no_round_trip() -> None:
    trips = round_trips([fill(1, "buy", "1", "100"), fill(2, "sell", "1", "101"), fill(3, "buy", "1", "102"),
                         fill(0, "sell", "1", "10", symbol=ETH)])
    assert [(t.symbol, t.entry_time_ms) for t in trips] == [(BTC, T0 + H)]


def test_round_trips_pair_each_symbol_on_its_own_and_sort_by_entry_time() -> None:
    trips = round_trips([fill(2, "buy", "1", "100"), fill(1, "sell", "1", "10", symbol=ETH),
                         fill(3, "buy", "1", "9", symbol=ETH), fill(5, "sell", "1", "90"),
                         fill(6, "sell", "1", "9", symbol=ETH), fill(9, "buy", "1", "8", symbol=ETH),
                         fill(7, "buy", "1", "90"), fill(8, "sell", "1", "91")])
    assert [(t.symbol, t.side, (t.entry_time_ms - T0) // H, t.gross_pnl) for t in trips] == [
        (ETH, "short", 1, D(1)), (BTC, "long", 2, D(-10)), (ETH, "short", 6, D(1)), (BTC, "long", 7, D(1))]


def test_fills_out_of_time_order_are_paired_in_time_order() -> None:
    trip, = round_trips([fill(2, "sell", "1", "110"), fill(1, "buy", "1", "100")])
    assert (trip.side, trip.gross_pnl) == ("long", D(10))


@pytest.mark.parametrize(("bad", "named"), [
    (replace(fill(1, "buy", "1", "100"), side="long"), "side is 'long'"),
    (replace(fill(1, "buy", "1", "100"), amount=D(0)), "amount 0 is not positive"),
    (replace(fill(1, "buy", "1", "100"), price=D("NaN")), "price"),
])
def test_an_unreadable_fill_raises_a_clear_report_input_error(bad: FillRecord, named: str) -> None:
    with pytest.raises(ReportInputError, match=re.escape(named)) as caught:
        round_trips([bad])
    assert "fill #0" in str(caught.value)


def test_report_pnl_is_net_of_fees_and_funding_to_the_cent() -> None:
    report = BacktestReport.from_result(result())
    assert len(report.trades) == 2
    btc, eth = report.trades
    assert (btc.gross_pnl, btc.fees, btc.funding, btc.net_pnl) == (D(10), D("0.11"), D("-0.20"), D("9.69"))
    assert (eth.gross_pnl, eth.fees, eth.funding, eth.net_pnl) == (D(10), D("0.07"), D("0.05"), D("9.98"))
    assert report.realized_gross == D(20)
    assert report.fees == D("0.18")
    assert report.funding == D("-0.45")  # the record at hour 5 falls after every trade and still counts
    assert report.net_pnl == D("19.37")
    assert report.balance_change == D("19.37")
    assert (report.wins, report.losses, report.win_rate) == (2, 0, D(1))
    summary = dict(report.to_dict())
    assert summary["pnl"] == {"realized_gross": "20", "fees": "0.18", "funding": "-0.45", "net": "19.37"}


def test_report_counts_partial_exits_of_a_position_still_open() -> None:
    report = BacktestReport.from_result(result(
        fills=(fill(1, "buy", "2", "100", "0.10"), fill(2, "sell", "1", "112", "0.05")),
        funding=(funding(2, "-0.01"),), open_positions={BTC: D(1)}))
    assert report.trades == ()
    assert report.realized_gross == D(12)
    assert report.net_pnl == D("11.84")
    assert report.win_rate is None
    assert report.to_dict()["open_positions"] == {BTC: "1"}


def test_wins_and_losses_count_by_net_pnl() -> None:
    report = BacktestReport.from_result(result(fills=(
        fill(1, "buy", "1", "100", "0.5"), fill(2, "sell", "1", "100.4", "0.5"),  # gross up, net down: a loss
        fill(3, "buy", "1", "100"), fill(4, "sell", "1", "101"),
        fill(5, "buy", "1", "100"), fill(6, "sell", "1", "100")), funding=()))
    assert (report.wins, report.losses, len(report.trades)) == (1, 1, 3)
    assert report.win_rate == D("0.333333")


def test_max_drawdown_on_a_hand_made_curve() -> None:
    points = curve("1000", "1200", "900", "1100", "1300", "1040", "1400")
    drawdown = max_drawdown(points)
    assert drawdown is not None
    assert drawdown.usd == D(300)  # 1200 -> 900 (the 1300 -> 1040 fall is 260)
    assert drawdown.percent == D(25)
    assert (drawdown.peak_time_ms, drawdown.trough_time_ms) == (T0 + H, T0 + 2 * H)


def test_max_drawdown_of_a_rising_curve_is_zero_and_of_none_is_none() -> None:
    drawdown = max_drawdown(curve("100", "101", "102"))
    assert drawdown is not None and (drawdown.usd, drawdown.percent) == (D(0), D(0))
    assert max_drawdown(()) is None


def test_sharpe_and_sortino_match_a_hand_computation() -> None:
    points = curve("100", "110", "99", "108.9", "107.811")
    returns = step_returns(points)
    assert returns == pytest.approx([0.1, -0.1, 0.1, -0.01])
    mean = (0.1 - 0.1 + 0.1 - 0.01) / 4  # 0.0225
    sample_sd = math.sqrt(((0.1 - mean) ** 2 * 2 + (-0.1 - mean) ** 2 + (-0.01 - mean) ** 2) / 3)
    downside_sd = math.sqrt((0.1 ** 2 + 0.01 ** 2) / 4)
    per_year = 365 * 24  # 1h steps
    assert sharpe_ratio(returns, D(per_year)) == pytest.approx(mean / sample_sd * math.sqrt(per_year))
    assert sortino_ratio(returns, D(per_year)) == pytest.approx(mean / downside_sd * math.sqrt(per_year))
    report = BacktestReport.from_result(result(equity=points))
    assert report.sharpe == pytest.approx(mean / sample_sd * math.sqrt(per_year))
    assert report.to_dict()["sharpe"] == round(mean / sample_sd * math.sqrt(per_year), 6)


def test_the_annualization_follows_the_timeframe() -> None:
    points = curve("100", "110", "99", "108.9")
    hourly = BacktestReport.from_result(result(equity=points, timeframe="1h")).sharpe
    minutely = BacktestReport.from_result(result(equity=points, timeframe="1m")).sharpe
    assert hourly is not None and minutely is not None
    assert minutely / hourly == pytest.approx(math.sqrt(60))


@pytest.mark.parametrize("equities", [(), ("100",), ("100", "101"), ("100", "100", "100"), ("100", "0", "5")])
def test_sharpe_is_none_when_undefined(equities: tuple[str, ...]) -> None:
    report = BacktestReport.from_result(result(equity=curve(*equities)))
    assert report.sharpe is None
    data = json.loads(report.to_json())
    assert data["sharpe"] is None and data["sortino"] is None


def test_sortino_is_none_when_no_step_lost() -> None:
    report = BacktestReport.from_result(result(equity=curve("100", "101", "103", "104")))
    assert report.sharpe is not None
    assert report.sortino is None


def test_no_equity_points_give_nulls_not_errors() -> None:
    data = json.loads(BacktestReport.from_result(result(equity=())).to_json())
    assert data["max_drawdown"] is None
    assert data["exposure"] == {"fraction": None, "average_usd": None}


def test_exposure_is_the_fraction_in_the_market_and_the_average_usd() -> None:
    points = curve("100", "100", "100", "100", exposures=("0", "50", "150", "0"))
    report = BacktestReport.from_result(result(equity=points))
    assert report.exposure_fraction == D("0.5")
    assert report.average_exposure == D(50)


def test_json_is_byte_identical_for_equal_inputs_and_has_no_wall_clock() -> None:
    first = BacktestReport.from_result(result()).to_json()
    second = BacktestReport.from_result(result()).to_json()
    assert first == second
    data = json.loads(first)
    assert first == json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False)
    years = set(re.findall(r'"(\d{4})-\d\d-\d\dT', first))
    assert years == {"2024"}  # every time is the data's (2024), none the wall clock's
    assert data["period"] == {"start": {"ms": T0, "utc": "2024-01-01T00:00:00.000Z"},
                              "end": {"ms": T0 + 6 * H, "utc": "2024-01-01T06:00:00.000Z"}}
    assert data["round_trips"][0]["entry"]["time"] == {"ms": T0 + H, "utc": "2024-01-01T01:00:00.000Z"}


def test_json_keys_and_decimals_are_plain() -> None:
    data = json.loads(BacktestReport.from_result(result()).to_json())
    assert set(data) == {"status", "complete", "strategy", "params", "seed", "symbols", "timeframe", "period",
                         "candle_steps", "equity_points", "balance", "pnl", "trades", "max_drawdown", "exposure",
                         "sharpe", "sortino", "rejections", "open_positions", "round_trips"}
    assert data["params"] == {"fast": 3, "slow": 5, "size": "0.5"}
    assert data["balance"] == {"initial": "1000", "final": "1019.37", "change": "19.37"}
    assert data["max_drawdown"]["usd"] == "5"
    assert (data["seed"], data["candle_steps"], data["status"]) == (42, 12, "complete")


def test_plain_decimals_have_no_exponent_and_zero_stays_zero() -> None:
    assert plain(D("1E+3")) == "1000"
    assert plain(D("0.000000010")) == "0.00000001"
    assert plain(D("0E-8")) == "0"
    assert plain(D("-0")) == "0"
    assert cents(D("-0.001")) == "0.00"
    assert cents(D("2.345")) == "2.35"


def test_rejections_are_sorted_by_reason() -> None:
    report = BacktestReport.from_result(result())
    assert report.rejections == [("DUPLICATE_INTENT", 5), ("MAX_POSITIONS", 1), ("RISK_LIMIT", 2)]
    text = report.to_text()
    assert "rejections:   DUPLICATE_INTENT 5, MAX_POSITIONS 1, RISK_LIMIT 2" in text
    assert list(json.loads(report.to_json())["rejections"]) == ["DUPLICATE_INTENT", "MAX_POSITIONS", "RISK_LIMIT"]


def test_an_interrupted_run_says_partial_report() -> None:
    report = BacktestReport.from_result(result(complete=False))
    assert json.loads(report.to_json())["status"] == "interrupted: partial report"
    assert report.to_text().splitlines()[0] == "Backtest report (interrupted: partial report)"


def test_text_has_the_summary_and_the_trade_table_in_cents() -> None:
    text = BacktestReport.from_result(result()).to_text()
    for expected in ("period:       2024-01-01 00:00 to 2024-01-01 06:00 UTC", "sma_cross (fast=3, size=0.5, slow=5)",
                     "net PnL:      19.37 USD (gross 20.00, fees -0.18, funding -0.45)",
                     "trades:       2: 2 won, 0 lost, win rate 100.00%",
                     "max drawdown: 5.00 USD (0.50%), peak 2024-01-01 02:00, trough 2024-01-01 03:00",
                     "Sharpe:", "Sortino:", "exposure:"):
        assert expected in text
    table = text[text.index("entry time (UTC)"):].splitlines()
    assert table[0].split() == ["entry", "time", "(UTC)", "symbol", "side", "amount", "entry", "exit", "net", "USD"]
    assert table[2].split() == ["2024-01-01", "01:00", BTC, "long", "1", "100", "110", "9.69"]
    assert table[3].split() == ["2024-01-01", "02:00", ETH, "short", "2", "50", "45", "9.98"]


@pytest.mark.parametrize("width", [40, 60, 80, 100, 140])
def test_every_text_line_fits_the_width(width: int) -> None:
    symbols = tuple(f"COIN{i}/USD:USD" for i in range(12))
    text = BacktestReport.from_result(result(symbols=symbols)).to_text(width)
    assert max(len(line) for line in text.splitlines()) <= width
    assert "9.69" in text and "9.98" in text


def test_a_too_narrow_text_width_is_refused() -> None:
    with pytest.raises(ReportInputError, match="too narrow"):
        BacktestReport.from_result(result()).to_text(10)


def test_an_unknown_timeframe_raises_a_report_input_error() -> None:
    with pytest.raises(ReportInputError, match="timeframe"):
        BacktestReport.from_result(result(timeframe="7m"))
