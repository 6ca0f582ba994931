"""Candle files: reading, writing, naming, the errors a bad file gives, and synthetic candles."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from backtest.data import (
    CandleFileError,
    data_path,
    load_candles,
    market_id,
    read_candle_series,
    synthetic_candles,
    unified_symbol,
    write_candles_csv,
    write_candles_parquet,
)
from messages.market import Candle, candle_problem

MINUTE = 60_000
T0 = 1_735_689_600_000  # 2025-01-01T00:00:00Z
HEADER = "time,open,high,low,close,volume\n"


def candle(t: int, o: str, h: str, low: str, c: str, v: str = "1", symbol: str = "BTC/USD:USD") -> Candle:
    """A 1m candle from text values."""
    return Candle(symbol=symbol, timeframe="1m", open_time=t, open=Decimal(o), high=Decimal(h), low=Decimal(low),
                  close=Decimal(c), volume=Decimal(v))


# Awkward decimals: many places, tiny values, trailing zeros as Kraken writes them
AWKWARD = (
    candle(T0, "65000.50000000000", "65010.1", "64990.123456789012345", "65001", "0.0001"),
    candle(T0 + MINUTE, "65001", "65001", "65001", "65001", "0"),
    candle(T0 + 2 * MINUTE, "0.0000000001", "0.0000000003", "0.0000000001", "0.0000000002", "123456789012.5"),
)


def write_text(path: Path, text: str) -> Path:
    """Write a small CSV file as given."""
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path, timeframe: str = "1m") -> str:
    """The CandleFileError message reading `path` gives."""
    with pytest.raises(CandleFileError) as caught:
        load_candles(path, "BTC/USD:USD", timeframe)
    return str(caught.value)


# -- naming ---------------------------------------------------------------------------------------------------------


def test_data_path_names_the_file_by_krakens_market_id_and_timeframe(tmp_path: Path) -> None:
    assert data_path(tmp_path, "BTC/USD:USD", "1m") == tmp_path / "PF_XBTUSD_1m.csv"
    assert data_path(tmp_path, "PF_ETHUSD", "1h", "parquet") == tmp_path / "PF_ETHUSD_1h.parquet"
    assert data_path(tmp_path, "X001/USD:USD", "5m") == tmp_path / "PF_X001USD_5m.csv"
    with pytest.raises(ValueError, match="unknown candle file format"):
        data_path(tmp_path, "BTC/USD:USD", "1m", "xlsx")
    with pytest.raises(ValueError, match="unknown timeframe"):
        data_path(tmp_path, "BTC/USD:USD", "7m")


def test_symbols_map_both_ways_as_the_simulator_and_kraken_name_them() -> None:
    assert market_id("BTC/USD:USD") == "PF_XBTUSD"
    assert market_id("pf_xbtusd") == "PF_XBTUSD"
    assert unified_symbol("PF_XBTUSD") == "BTC/USD:USD"
    assert unified_symbol("PF_SOLUSD") == "SOL/USD:USD"
    assert market_id("ADA/USD:USD") == "PF_ADAUSD"  # a Kraken market the simulator does not list
    assert unified_symbol("PF_ADAUSD") == "ADA/USD:USD"
    with pytest.raises(ValueError, match="unknown market"):
        market_id("BTC/EUR")


# -- round trips ----------------------------------------------------------------------------------------------------


def test_csv_round_trip_keeps_every_decimal_exactly(tmp_path: Path) -> None:
    path = write_candles_csv(data_path(tmp_path, "BTC/USD:USD", "1m"), AWKWARD)
    assert path.read_text().splitlines()[0] == HEADER.strip()
    assert "0.0000000001" in path.read_text()  # plain text, no exponent
    loaded = load_candles(tmp_path, "BTC/USD:USD", "1m")
    assert loaded == AWKWARD
    assert [str(c.low) for c in loaded] == ["64990.123456789012345", "65001", "1E-10"]


def test_parquet_round_trip_keeps_every_decimal_exactly(tmp_path: Path) -> None:
    path = write_candles_parquet(data_path(tmp_path, "BTC/USD:USD", "1m", "parquet"), AWKWARD)
    assert pq.read_table(path).column_names == ["time", "open", "high", "low", "close", "volume"]
    assert load_candles(tmp_path, "BTC/USD:USD", "1m") == AWKWARD
    assert load_candles(path, "BTC/USD:USD", "1m") == AWKWARD


def test_a_csv_in_krakens_charts_layout_reads_as_candles(tmp_path: Path) -> None:
    path = write_text(tmp_path / "btc.csv", HEADER + f"{T0},309.15000000000,309.15000000000,308.70000000000,"
                      "308.85000000000,0\n")
    (only,) = load_candles(path, "PF_XBTUSD", "1m")
    assert only == candle(T0, "309.15", "309.15", "308.7", "308.85", "0")
    assert only.symbol == "BTC/USD:USD"  # named by ccxt's unified symbol whichever name was given
    assert str(only.open) == "309.15000000000"


def test_parquet_accepts_timestamp_times_and_decimal_or_float_prices(tmp_path: Path) -> None:
    path = tmp_path / "mixed.parquet"
    table = pa.table({
        "time": pa.array([T0, T0 + MINUTE], type=pa.timestamp("ms", tz="UTC")),
        "open": pa.array([Decimal("65000.5"), Decimal("65001.0")], type=pa.decimal128(12, 1)),
        "high": pa.array([65010.1, 65002.0], type=pa.float64()),
        "low": pa.array(["64990.1", "65000"], type=pa.string()),
        "close": pa.array([65001.0, 65001.5], type=pa.float64()),
        "volume": pa.array([3, 0], type=pa.int64()),
    })
    pq.write_table(table, path)
    assert load_candles(path, "BTC/USD:USD", "1m") == (
        candle(T0, "65000.5", "65010.1", "64990.1", "65001", "3"),
        candle(T0 + MINUTE, "65001", "65002", "65000", "65001.5", "0"),
    )


def test_a_timestamp_column_in_nanoseconds_reads_as_milliseconds(tmp_path: Path) -> None:
    path = tmp_path / "ns.parquet"
    pq.write_table(pa.table({
        "time": pa.array([T0 * 1_000_000], type=pa.timestamp("ns")),
        **{name: pa.array(["5"]) for name in ("open", "high", "low", "close", "volume")},
    }), path)
    assert load_candles(path, "BTC/USD:USD", "1m")[0].open_time == T0


# -- filtering and gaps ---------------------------------------------------------------------------------------------


def test_filtering_keeps_open_times_in_start_inclusive_end_exclusive(tmp_path: Path) -> None:
    candles = synthetic_candles("BTC/USD:USD", "1m", T0, 10, seed=3)
    write_candles_csv(data_path(tmp_path, "BTC/USD:USD", "1m"), candles)
    kept = load_candles(tmp_path, "BTC/USD:USD", "1m", start_ms=T0 + 2 * MINUTE, end_ms=T0 + 5 * MINUTE)
    assert [c.open_time for c in kept] == [T0 + 2 * MINUTE, T0 + 3 * MINUTE, T0 + 4 * MINUTE]
    assert load_candles(tmp_path, "BTC/USD:USD", "1m", start_ms=T0 + 9 * MINUTE) == candles[9:]
    assert load_candles(tmp_path, "BTC/USD:USD", "1m", end_ms=T0 + MINUTE) == candles[:1]
    assert load_candles(tmp_path, "BTC/USD:USD", "1m", start_ms=T0 + 30 * MINUTE) == ()
    with pytest.raises(ValueError, match="not after the start"):
        load_candles(tmp_path, "BTC/USD:USD", "1m", start_ms=T0, end_ms=T0)


def test_gaps_are_allowed_and_counted(tmp_path: Path) -> None:
    candles = synthetic_candles("BTC/USD:USD", "1m", T0, 10, seed=3)
    holey = [c for i, c in enumerate(candles) if i not in (2, 3, 7)]
    write_candles_csv(data_path(tmp_path, "BTC/USD:USD", "1m"), holey)
    series = read_candle_series(tmp_path, "BTC/USD:USD", "1m")
    assert series.candles == tuple(holey)
    assert (series.missing, series.gaps) == (3, 2)
    assert (series.first_ms, series.last_ms) == (T0, T0 + 9 * MINUTE)
    assert series.path == data_path(tmp_path, "BTC/USD:USD", "1m")


# -- errors ---------------------------------------------------------------------------------------------------------


def test_a_missing_file_says_the_download_command_that_makes_it(tmp_path: Path) -> None:
    with pytest.raises(CandleFileError) as caught:
        load_candles(tmp_path, "BTC/USD:USD", "1m")
    message = str(caught.value)
    assert str(tmp_path / "PF_XBTUSD_1m.csv") in message
    assert "kraken-actors download --symbols BTC/USD:USD --timeframe 1m" in message
    assert f"--data {tmp_path}" in message
    explicit = tmp_path / "elsewhere" / "btc.parquet"
    with pytest.raises(CandleFileError, match=r"no such candle file.*kraken-actors download.*--format parquet.*"
                                              r"\(it writes PF_XBTUSD_1m\.parquet\)"):
        load_candles(explicit, "BTC/USD:USD", "1m")
    named = data_path(tmp_path, "BTC/USD:USD", "1m", "parquet")
    with pytest.raises(CandleFileError) as caught:
        load_candles(named, "BTC/USD:USD", "1m")
    assert str(caught.value).startswith(f"{named}: no such candle file") and "it writes" not in str(caught.value)


def test_both_a_csv_and_a_parquet_file_of_one_market_is_refused(tmp_path: Path) -> None:
    write_candles_csv(data_path(tmp_path, "BTC/USD:USD", "1m"), AWKWARD)
    write_candles_parquet(data_path(tmp_path, "BTC/USD:USD", "1m", "parquet"), AWKWARD)
    with pytest.raises(CandleFileError, match="both hold BTC/USD:USD 1m candles; remove one"):
        load_candles(tmp_path, "BTC/USD:USD", "1m")


@pytest.mark.parametrize("header", ["time,open,high,low,close\n", "timestamp,open,high,low,close,volume\n",
                                    "open,time,high,low,close,volume\n", f"{T0},1,1,1,1,1\n"])
def test_a_wrong_csv_header_names_the_file_line_and_the_expected_header(tmp_path: Path, header: str) -> None:
    path = write_text(tmp_path / "bad.csv", header + f"{T0},1,1,1,1,1\n")
    message = error_of(path)
    assert f"{path}: line 1: the header is" in message
    assert "make the first line exactly time,open,high,low,close,volume" in message


def test_an_empty_csv_says_the_header_it_needs(tmp_path: Path) -> None:
    message = error_of(write_text(tmp_path / "empty.csv", ""))
    assert "line 1: the file is empty" in message and "time,open,high,low,close,volume" in message


def test_a_row_with_the_wrong_number_of_fields_names_its_line(tmp_path: Path) -> None:
    path = write_text(tmp_path / "short.csv", HEADER + f"{T0},1,1,1,1,1\n{T0 + MINUTE},1,1,1\n")
    assert f"{path}: line 3: 4 fields, not 6" in error_of(path)


@pytest.mark.parametrize(("cells", "column", "shown"), [
    ("abc,1,1,1,1", "open", "'abc'"),
    ("1,1,1,nan,1", "close", "'nan'"),
    ("1,1,1,1,", "volume", "empty"),
    ("1,1e,1,1,1", "high", "'1e'"),
    ("1,1,Infinity,1,1", "low", "'Infinity'"),
])
def test_an_unparsable_number_names_line_column_and_the_fix(tmp_path: Path, cells: str, column: str,
                                                           shown: str) -> None:
    path = write_text(tmp_path / "num.csv", HEADER + f"{T0},1,1,1,1,1\n{T0 + MINUTE},{cells}\n")
    message = error_of(path)
    assert f"{path}: line 3, column {column}: {shown} is not a decimal number" in message
    assert "plain decimal text" in message


@pytest.mark.parametrize("stamp", ["12.5", "-60000", "2025-01-01", ""])
def test_an_unparsable_time_names_its_line(tmp_path: Path, stamp: str) -> None:
    path = write_text(tmp_path / "time.csv", HEADER + f"{stamp},1,1,1,1,1\n")
    message = error_of(path)
    assert f"{path}: line 2, column time:" in message and "whole number of epoch milliseconds" in message


@pytest.mark.parametrize(("cells", "column", "problem"), [
    ("100,99,98,99,1", "high", "high 99 is below max(open 100, close 99)"),
    ("100,101,100.5,100,1", "low", "low 100.5 is above min(open 100, close 100)"),
    ("0,1,0,0,1", "low", "low 0 is not positive"),
    ("100,101,99,100,-1", "volume", "volume -1 is negative"),
])
def test_an_insane_candle_names_its_line_and_the_problem(tmp_path: Path, cells: str, column: str,
                                                         problem: str) -> None:
    path = write_text(tmp_path / "insane.csv", HEADER + f"{T0},1,1,1,1,1\n{T0 + MINUTE},{cells}\n")
    message = error_of(path)
    assert f"{path}: line 3, column {column}: not a sane candle: {problem}" in message
    assert "fix or remove the row" in message


def test_a_time_not_aligned_to_the_timeframe_names_its_line(tmp_path: Path) -> None:
    path = write_text(tmp_path / "align.csv", HEADER + f"{T0},1,1,1,1,1\n{T0 + 90_000},1,1,1,1,1\n")
    message = error_of(path)
    assert f"{path}: line 3, column time: open time {T0 + 90_000} is not aligned to 1m" in message
    assert "a multiple of 60000" in message
    hourly = error_of(write_text(tmp_path / "hourly.csv", HEADER + f"{T0 + MINUTE},1,1,1,1,1\n"), "1h")
    assert "line 2, column time" in hourly and "not aligned to 1h" in hourly


def test_times_in_seconds_are_recognised_as_such(tmp_path: Path) -> None:
    path = write_text(tmp_path / "seconds.csv", HEADER + f"{T0 // 1000 + 1},1,1,1,1,1\n")
    assert "looks like seconds" in error_of(path)


@pytest.mark.parametrize(("second", "what"), [(T0, "repeats"), (T0 - MINUTE, "is before")])
def test_a_duplicate_or_decreasing_time_names_both_lines(tmp_path: Path, second: int, what: str) -> None:
    path = write_text(tmp_path / "order.csv", HEADER + f"{T0},1,1,1,1,1\n\n{second},1,1,1,1,1\n")
    message = error_of(path)
    assert f"{path}: line 4, column time: {second} {what} the time {T0} of line 2" in message
    assert "times must increase" in message


def test_a_non_utf8_csv_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes(HEADER.encode() + b"\xff\xfe,1,1,1,1,1\n")
    assert f"{path}: not UTF-8 text" in error_of(path)


def test_parquet_with_wrong_columns_names_the_missing_and_unknown_ones(tmp_path: Path) -> None:
    path = tmp_path / "cols.parquet"
    pq.write_table(pa.table({"time": [T0], "open": ["1"], "high": ["1"], "low": ["1"], "close": ["1"],
                             "vol": ["1"]}), path)
    message = error_of(path)
    assert f"{path}: the columns are" in message
    assert "missing column(s) volume" in message and "unknown column(s) vol" in message
    assert "exactly time, open, high, low, close, volume" in message


def test_parquet_bad_values_name_the_row_and_column(tmp_path: Path) -> None:
    def table(**changed: object) -> pa.Table:
        columns: dict[str, object] = {"time": pa.array([T0, T0 + MINUTE], type=pa.int64()),
                                      **{n: pa.array(["5", "5"]) for n in ("open", "high", "low", "close", "volume")}}
        columns.update(changed)
        return pa.table(columns)

    cases = [
        (table(high=pa.array(["5", "x"])), "row 2, column high: 'x' is not a decimal number"),
        (table(low=pa.array(["5", None])), "row 2, column low: empty (null)"),
        (table(time=pa.array([T0, None], type=pa.int64())), "row 2, column time: empty (null)"),
        (table(close=pa.array([5.0, float("nan")])), "row 2, column close: nan is not a finite number"),
        (table(open=pa.array([5.0, 5.0], type=pa.float32())), "column open has type float"),
        (table(time=pa.array(["a", "b"])), "column time has type string"),
        (table(time=pa.array([T0, T0 + 30_000], type=pa.int64())), "row 2, column time: open time"),
        (table(time=pa.array([T0, T0], type=pa.int64())), f"row 2, column time: {T0} repeats the time {T0} of row 1"),
        (table(high=pa.array(["5", "4"])), "row 2, column high: not a sane candle"),
    ]
    for n, (bad, expected) in enumerate(cases):
        path = tmp_path / f"bad{n}.parquet"
        pq.write_table(bad, path)
        message = error_of(path)
        assert message.startswith(f"{path}: ") and expected in message, message


def test_a_file_that_is_not_parquet_is_refused_by_name(tmp_path: Path) -> None:
    path = write_text(tmp_path / "fake.parquet", HEADER)
    assert f"{path}: not a readable Parquet file" in error_of(path)


# -- writing --------------------------------------------------------------------------------------------------------


def test_writing_is_atomic_and_refuses_what_a_file_cannot_hold(tmp_path: Path) -> None:
    path = data_path(tmp_path / "new", "BTC/USD:USD", "1m")
    write_candles_csv(path, AWKWARD)
    write_candles_csv(path, AWKWARD[:1])  # replaces the file whole
    assert load_candles(path, "BTC/USD:USD", "1m") == AWKWARD[:1]
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary file left
    with pytest.raises(ValueError, match="increasing time"):
        write_candles_csv(path, AWKWARD[::-1])
    with pytest.raises(ValueError, match="one market and timeframe"):
        write_candles_parquet(path.with_suffix(".parquet"),
                              [AWKWARD[0], candle(T0 + MINUTE, "1", "1", "1", "1", symbol="ETH/USD:USD")])
    assert load_candles(path, "BTC/USD:USD", "1m") == AWKWARD[:1]  # a refused write leaves the old file


# -- synthetic ------------------------------------------------------------------------------------------------------


def test_synthetic_candles_are_deterministic_per_seed() -> None:
    first = synthetic_candles("BTC/USD:USD", "1m", T0, 500, seed=7)
    assert first == synthetic_candles("BTC/USD:USD", "1m", T0, 500, seed=7)
    assert first != synthetic_candles("BTC/USD:USD", "1m", T0, 500, seed=8)
    assert [c.close for c in first] != [c.close for c in synthetic_candles("ETH/USD:USD", "1m", T0, 500, seed=7)]


@pytest.mark.parametrize(("symbol", "timeframe"), [("BTC/USD:USD", "1m"), ("ETH/USD:USD", "5m"),
                                                   ("PF_PEPEUSD", "1h"), ("DOGE/USD:USD", "1d"),
                                                   ("X007/USD:USD", "15m")])
def test_synthetic_candles_are_sane_on_the_tick_and_continuous(symbol: str, timeframe: str) -> None:
    from backtest.data import instrument_of
    from messages.market import timeframe_ms

    instrument = instrument_of(symbol)
    step = timeframe_ms(timeframe)
    candles = synthetic_candles(symbol, timeframe, T0, 2000, seed=1)
    assert len(candles) == 2000
    assert candles[0].open == Decimal(repr(instrument.initial_price)).quantize(instrument.tick_size)
    for n, c in enumerate(candles):
        assert c.symbol == unified_symbol(symbol) and c.timeframe == timeframe
        assert c.open_time == T0 + n * step
        assert candle_problem(timeframe, c.open_time, c.open, c.high, c.low, c.close, c.volume) is None
        assert c.high >= max(c.open, c.close) and c.low <= min(c.open, c.close) and c.low > 0
        for price in (c.open, c.high, c.low, c.close):
            assert price % instrument.tick_size == 0
        assert c.volume % instrument.size_step == 0
        if n:
            assert c.open == candles[n - 1].close
    assert len({c.close for c in candles}) > 100  # it moves
    assert any(c.high > max(c.open, c.close) for c in candles)  # with wicks


def test_synthetic_candles_start_at_the_price_given_and_refuse_a_misaligned_start() -> None:
    candles = synthetic_candles("ETH/USD:USD", "1m", T0, 3, seed=0, start_price=Decimal("2500.04"))
    assert candles[0].open == Decimal("2500.0")  # on ETH's 0.1 tick
    with pytest.raises(ValueError, match="not aligned"):
        synthetic_candles("ETH/USD:USD", "1h", T0 + MINUTE, 3)
    with pytest.raises(ValueError, match="lists no market"):
        synthetic_candles("ADA/USD:USD", "1m", T0, 3)


def test_a_file_with_another_suffix_is_not_taken_for_a_folder(tmp_path: Path) -> None:
    path = write_text(tmp_path / "candles.txt", HEADER)
    assert f"{path}: not a candle file name; candle files end in .csv or .parquet" in error_of(path)


def test_parquet_dictionary_encoded_prices_read_as_their_values(tmp_path: Path) -> None:
    path = tmp_path / "dict.parquet"
    pq.write_table(pa.table({"time": pa.array([T0], type=pa.int64()),
                             **{n: pa.array(["5.5"]).dictionary_encode() for n in ("open", "high", "low", "close")},
                             "volume": pa.array(["2"])}), path)
    assert load_candles(path, "BTC/USD:USD", "1m") == (candle(T0, "5.5", "5.5", "5.5", "5.5", "2"),)
