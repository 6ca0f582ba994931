"""Candle files: Kraken-charts-layout CSV and Parquet read into the bot's own Candle values, written back, and made.

A data folder holds one file per market and timeframe, `<DATA_DIR>/<Kraken market id>_<timeframe>.<csv|parquet>`,
e.g. `data/PF_XBTUSD_1m.csv` for ccxt's `BTC/USD:USD`. Both formats have the columns of Kraken's charts API
(`GET /api/charts/v1/trade/{symbol}/{resolution}`): `time` (the candle's open, epoch milliseconds UTC) and `open`,
`high`, `low`, `close`, `volume`. The CSV's first line is exactly `time,open,high,low,close,volume`, prices as the
plain decimal text Kraken gives (`"65000.5"`); they are read with Decimal from the text, never through a float.

Every file is checked whole when read: a bad row is a `CandleFileError` naming the file, the line (CSV) or row
(Parquet), the column, what is wrong and how to fix it. Missing candles (gaps) are allowed and counted.
"""

from __future__ import annotations

import csv
import importlib
import itertools
import math
import os
import random
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

from messages.market import Candle, candle_problem, timeframe_ms
from simulator.instruments import INSTRUMENTS, Instrument, resolve_symbol, synthetic_instrument
from simulator.prices import to_decimal

COLUMNS: tuple[str, ...] = ("time", "open", "high", "low", "close", "volume")
PRICE_COLUMNS: tuple[str, ...] = COLUMNS[1:]  # open, high, low, close and volume: decimals
FORMATS: tuple[str, ...] = ("csv", "parquet")
SUFFIXES: dict[str, str] = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}

_DECIMAL_TEXT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_WHOLE_MS = re.compile(r"\d+")
_KRAKEN_LINEAR = re.compile(r"PF_([A-Z0-9]+)USD")
_UNIFIED_LINEAR = re.compile(r"([A-Z0-9]+)/USD:USD")
_SECONDS_NOT_MS = 10**11  # an epoch below this read as milliseconds is before 1973: it is seconds


class CandleFileError(ValueError):
    """A candle file that is missing or not usable; the message names the file, the place, the problem and the fix."""


# -- symbols and file names ----------------------------------------------------------------------------------------


def market_id(symbol: str) -> str:
    """Kraken's market id (`PF_XBTUSD`) of ccxt's unified symbol (`BTC/USD:USD`) or of a Kraken id itself.

    The simulator's instruments (and its synthetic `PF_X001USD` markets) map as it does; any other linear
    perpetual follows Kraken's rule `PF_<BASE>USD` <-> `<BASE>/USD:USD` (XBT is ccxt's BTC)."""
    known = resolve_symbol(symbol)
    if known is not None:
        return known
    name = symbol.strip()
    if _KRAKEN_LINEAR.fullmatch(name.upper()):
        return name.upper()
    match = _UNIFIED_LINEAR.fullmatch(name)
    if match:
        base = match.group(1)
        return f"PF_{'XBT' if base == 'BTC' else base}USD"
    raise ValueError(f"unknown market {symbol!r}: give ccxt's unified symbol like BTC/USD:USD or Kraken's id like "
                     "PF_XBTUSD (linear perpetuals only)")


def unified_symbol(symbol: str) -> str:
    """ccxt's unified symbol (`BTC/USD:USD`) of a Kraken id (`PF_XBTUSD`) or of a unified symbol itself."""
    kraken = market_id(symbol)
    base = _KRAKEN_LINEAR.fullmatch(kraken)
    assert base is not None  # market_id only returns PF_<BASE>USD
    return f"{'BTC' if base.group(1) == 'XBT' else base.group(1)}/USD:USD"


def instrument_of(symbol: str) -> Instrument:
    """The simulator's instrument (tick size, size step) of a market; ValueError for a market it does not list."""
    kraken = market_id(symbol)
    if kraken in INSTRUMENTS:
        return INSTRUMENTS[kraken]
    synthetic = re.fullmatch(r"PF_X(\d{3})USD", kraken)
    if synthetic and synthetic.group(1) != "000":
        return synthetic_instrument(int(synthetic.group(1)))
    raise ValueError(f"the simulator lists no market {symbol!r} ({kraken}); use one of "
                     f"{', '.join(i.unified_symbol for i in INSTRUMENTS.values())} or a synthetic X001/USD:USD")


def data_path(data_dir: str | Path, symbol: str, timeframe: str, fmt: str = "csv") -> Path:
    """The candle file of a market and timeframe in a data folder: `<data_dir>/<Kraken id>_<timeframe>.<fmt>`."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown candle file format {fmt!r}; use one of {', '.join(FORMATS)}")
    timeframe_ms(timeframe)  # a known timeframe, else ValueError
    return Path(data_dir) / f"{market_id(symbol)}_{timeframe}.{fmt}"


def download_command(symbol: str, timeframe: str, data_dir: str | Path, fmt: str = "csv") -> str:
    """The `kraken-actors download` command line that makes a market's candle file in `data_dir`."""
    fmt_flag = "" if fmt == "csv" else f" --format {fmt}"
    return (f"kraken-actors download --symbols {unified_symbol(symbol)} --timeframe {timeframe} "
            f"--from YYYY-MM-DD --to YYYY-MM-DD --data {data_dir}{fmt_flag}")


def find_candle_file(path_or_dir: str | Path, symbol: str, timeframe: str) -> Path:
    """The candle file to read: an explicit `.csv`/`.parquet` file, or the market's file in a data folder.

    A folder holding both a CSV and a Parquet file of the market is refused (which one is meant is not clear)."""
    path = Path(path_or_dir)
    if path.is_file() and path.suffix.lower() not in SUFFIXES:
        raise CandleFileError(f"{path}: not a candle file name; candle files end in .csv or .parquet")
    if path.is_dir() or path.suffix.lower() not in SUFFIXES:
        candidates = [data_path(path, symbol, timeframe, fmt) for fmt in FORMATS]
        present = [p for p in candidates if p.is_file()]
        if len(present) > 1:
            raise CandleFileError(f"{present[0]} and {present[1]} both hold {unified_symbol(symbol)} {timeframe} "
                                  "candles; remove one, or give the file to read instead of the folder")
        if not present:
            raise CandleFileError(f"{candidates[0]}: no {unified_symbol(symbol)} {timeframe} candle file (nor "
                                  f"{candidates[1].name}) in {path}; make it with "
                                  f"`{download_command(symbol, timeframe, path)}`")
        return present[0]
    if not path.is_file():
        fmt = SUFFIXES[path.suffix.lower()]
        made = data_path(path.parent, symbol, timeframe, fmt)
        raise CandleFileError(f"{path}: no such candle file; make it with "
                              f"`{download_command(symbol, timeframe, path.parent, fmt)}`"
                              + ("" if made.name == path.name else f" (it writes {made.name})"))
    return path


# -- reading ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CandleSeries:
    """A market's candles read from one file, in time order, with the missing candles between the first and last.

    `missing` counts candles absent between the first and the last kept one; `gaps` counts the runs of them."""

    symbol: str
    timeframe: str
    path: Path
    candles: tuple[Candle, ...]
    missing: int
    gaps: int

    @property
    def first_ms(self) -> int | None:
        """The first candle's open time, or None for no candles."""
        return self.candles[0].open_time if self.candles else None

    @property
    def last_ms(self) -> int | None:
        """The last candle's open time, or None for no candles."""
        return self.candles[-1].open_time if self.candles else None


@dataclass(frozen=True)
class _Row:
    """One raw row of a file, parsed to numbers, with where it came from (`line 7`, `row 6`)."""

    place: str
    time: int
    values: tuple[Decimal, Decimal, Decimal, Decimal, Decimal]


def read_candle_series(
    path_or_dir: str | Path, symbol: str, timeframe: str, start_ms: int | None = None, end_ms: int | None = None
) -> CandleSeries:
    """Read and check a market's whole candle file; keep the candles whose open time lies in [start_ms, end_ms).

    `path_or_dir` is a `.csv`/`.parquet` file or a data folder (see `data_path`); `symbol` is ccxt's unified symbol
    (or Kraken's id) and names the Candles. Raises CandleFileError for a missing or bad file."""
    tf_ms = timeframe_ms(timeframe)
    if start_ms is not None and end_ms is not None and end_ms <= start_ms:
        raise ValueError(f"the end {end_ms} is not after the start {start_ms}")
    unified = unified_symbol(symbol)
    path = find_candle_file(path_or_dir, unified, timeframe)
    rows = _read_parquet(path) if SUFFIXES.get(path.suffix.lower()) == "parquet" else _read_csv(path)
    candles: list[Candle] = []
    previous: _Row | None = None
    for row in rows:
        candle = _candle(path, unified, timeframe, row)
        if previous is not None and row.time <= previous.time:
            what = "repeats" if row.time == previous.time else "is before"
            raise CandleFileError(f"{path}: {row.place}, column time: {row.time} {what} the time {previous.time} of "
                                  f"{previous.place}; times must increase: keep one candle per time, in time order")
        previous = row
        if (start_ms is None or candle.open_time >= start_ms) and (end_ms is None or candle.open_time < end_ms):
            candles.append(candle)
    missing = gaps = 0
    for before, after in itertools.pairwise(candles):
        skipped = (after.open_time - before.open_time) // tf_ms - 1
        if skipped:
            missing += skipped
            gaps += 1
    return CandleSeries(symbol=unified, timeframe=timeframe, path=path, candles=tuple(candles), missing=missing,
                        gaps=gaps)


def load_candles(
    path_or_dir: str | Path, symbol: str, timeframe: str, start_ms: int | None = None, end_ms: int | None = None
) -> tuple[Candle, ...]:
    """A market's candles from its file, in time order, open time in [start_ms, end_ms); see `read_candle_series`."""
    return read_candle_series(path_or_dir, symbol, timeframe, start_ms, end_ms).candles


def _candle(path: Path, symbol: str, timeframe: str, row: _Row) -> Candle:
    """The Candle of one parsed row, or CandleFileError saying why it is not a sane one."""
    open_, high, low, close, volume = row.values
    problem = candle_problem(timeframe, row.time, open_, high, low, close, volume)
    if problem is not None:
        if "aligned" in problem:
            hint = " (it looks like seconds: Kraken's charts give milliseconds)" if row.time < _SECONDS_NOT_MS else ""
            raise CandleFileError(f"{path}: {row.place}, column time: {problem}{hint}; a {timeframe} candle's time is "
                                  f"its open in epoch milliseconds, a multiple of {timeframe_ms(timeframe)}")
        column = next((c for c in PRICE_COLUMNS if problem.startswith(c)), "open/high/low/close")
        raise CandleFileError(f"{path}: {row.place}, column {column}: not a sane candle: {problem}; fix or remove "
                              "the row (high must be >= open, close and low; low > 0; volume >= 0)")
    return Candle(symbol=symbol, timeframe=timeframe, open_time=row.time, open=open_, high=high, low=low,
                  close=close, volume=volume)


def _decimal_text(path: Path, place: str, column: str, text: str) -> Decimal:
    """A decimal from its text, exactly; CandleFileError for anything else (nan, inf, words, empty)."""
    cleaned = text.strip()
    if not _DECIMAL_TEXT.fullmatch(cleaned):
        shown = repr(text[:40]) if text.strip() else "empty"
        raise CandleFileError(f"{path}: {place}, column {column}: {shown} is not a decimal number; write it as "
                              "plain decimal text like 65000.5")
    return Decimal(cleaned)


def _read_csv(path: Path) -> Iterator[_Row]:
    """The rows of a Kraken-charts-layout CSV file (header `time,open,high,low,close,volume`)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise CandleFileError(f"{path}: line 1: the file is empty; its first line must be the header "
                                      f"{','.join(COLUMNS)}")
            if [cell.strip() for cell in header] != list(COLUMNS):
                raise CandleFileError(f"{path}: line 1: the header is {','.join(header)!r}, not "
                                      f"{','.join(COLUMNS)!r}; make the first line exactly {','.join(COLUMNS)} "
                                      "(Kraken's charts fields, in that order)")
            for cells in reader:
                place = f"line {reader.line_num}"
                if not cells or all(not cell.strip() for cell in cells):
                    continue
                if len(cells) != len(COLUMNS):
                    raise CandleFileError(f"{path}: {place}: {len(cells)} fields, not {len(COLUMNS)}; each line "
                                          f"holds {','.join(COLUMNS)}")
                stamp = cells[0].strip()
                if not _WHOLE_MS.fullmatch(stamp):
                    raise CandleFileError(f"{path}: {place}, column time: {cells[0][:40]!r} is not a whole number of "
                                          "epoch milliseconds; write the candle's open time like 1700000040000")
                o, h, lo, c, v = (_decimal_text(path, place, column, cell)
                                  for column, cell in zip(PRICE_COLUMNS, cells[1:], strict=True))
                yield _Row(place=place, time=int(stamp), values=(o, h, lo, c, v))
    except FileNotFoundError:
        raise CandleFileError(f"{path}: no such candle file") from None
    except UnicodeDecodeError as exc:
        raise CandleFileError(f"{path}: not UTF-8 text (byte {exc.start}); a candle CSV is plain text") from None
    except csv.Error as exc:
        raise CandleFileError(f"{path}: not readable as CSV ({exc}); write one candle per line, fields separated by "
                              "commas") from None


def _arrow() -> tuple[Any, Any]:
    """pyarrow and pyarrow.parquet, imported on first use (they ship no type information; a CSV run never needs
    them)."""
    return importlib.import_module("pyarrow"), importlib.import_module("pyarrow.parquet")


def _read_parquet(path: Path) -> list[_Row]:
    """The rows of a Parquet candle file: int64 ms or timestamp `time`; string, decimal or float64 prices."""
    pa, pq = _arrow()
    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise CandleFileError(f"{path}: no such candle file") from None
    except (pa.ArrowException, OSError) as exc:
        raise CandleFileError(f"{path}: not a readable Parquet file ({str(exc)[:200]}); write it with "
                              "backtest.data.write_candles_parquet or pyarrow") from None
    names = list(table.column_names)
    absent = [c for c in COLUMNS if c not in names]
    extra = [c for c in names if c not in COLUMNS]
    if absent or extra:
        said = "; ".join(part for part in (f"missing column(s) {', '.join(absent)}" if absent else "",
                                           f"unknown column(s) {', '.join(extra)}" if extra else "") if part)
        raise CandleFileError(f"{path}: the columns are {', '.join(names) or 'none'}: {said}; the columns must be "
                              f"exactly {', '.join(COLUMNS)}")
    times = _parquet_times(path, table.column("time"))
    prices = [_parquet_decimals(path, column, table.column(column)) for column in PRICE_COLUMNS]
    return [_Row(place=f"row {n}", time=stamp, values=(o, h, lo, c, v))
            for n, (stamp, o, h, lo, c, v) in enumerate(zip(times, *prices, strict=True), 1)]


def _parquet_times(path: Path, column: Any) -> list[int]:
    """The `time` column as epoch ms: an integer column in ms, or a timestamp column of any unit (UTC)."""
    pa, _ = _arrow()
    kind = column.type
    if pa.types.is_timestamp(kind):
        per_ms = {"s": None, "ms": 1, "us": 1_000, "ns": 1_000_000}[kind.unit]
        raw = column.cast(pa.int64()).to_pylist()
    elif pa.types.is_integer(kind):
        per_ms, raw = 1, column.to_pylist()
    else:
        raise CandleFileError(f"{path}: column time has type {kind}; store the open time as int64 epoch milliseconds "
                              "or as a timestamp")
    times: list[int] = []
    for n, value in enumerate(raw, 1):
        if value is None:
            raise CandleFileError(f"{path}: row {n}, column time: empty (null); every candle needs its open time")
        if per_ms is None:
            times.append(value * 1000)
        elif value % per_ms:
            raise CandleFileError(f"{path}: row {n}, column time: {value} {kind.unit} is not a whole millisecond; "
                                  "a candle opens on a whole minute")
        else:
            times.append(value // per_ms)
    return times


def _parquet_decimals(path: Path, name: str, column: Any) -> list[Decimal]:
    """A price or volume column as Decimals: strings and decimals exactly, float64 by its shortest repr."""
    pa, _ = _arrow()
    kind = column.type
    if pa.types.is_dictionary(kind):  # pandas' categoricals: the values themselves
        column = column.cast(kind.value_type)
        kind = column.type
    values = column.to_pylist()
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        convert: Any = None
    elif pa.types.is_decimal(kind) or pa.types.is_integer(kind):
        convert = Decimal
    elif kind == pa.float64():
        convert = to_decimal
    else:
        raise CandleFileError(f"{path}: column {name} has type {kind}; store it as string (exact, like Kraken's "
                              "text), decimal128 (exact) or float64")
    result: list[Decimal] = []
    for n, value in enumerate(values, 1):
        place = f"row {n}"
        if value is None:
            raise CandleFileError(f"{path}: {place}, column {name}: empty (null); every candle needs all of "
                                  f"{', '.join(PRICE_COLUMNS)}")
        number = _decimal_text(path, place, name, value) if convert is None else convert(value)
        if not number.is_finite():
            raise CandleFileError(f"{path}: {place}, column {name}: {value} is not a finite number; write the "
                                  "candle's real value")
        result.append(number)
    return result


# -- writing ---------------------------------------------------------------------------------------------------------


def _plain(value: Decimal) -> str:
    """A decimal as plain text without an exponent, as Kraken writes prices (`0.0000000001`, `1000`)."""
    return format(value, "f")


def _checked(candles: Sequence[Candle]) -> Sequence[Candle]:
    """The candles, if they are one market's and timeframe's in increasing time (what a file can hold)."""
    for before, after in itertools.pairwise(candles):
        if (after.symbol, after.timeframe) != (before.symbol, before.timeframe):
            raise ValueError(f"one file holds one market and timeframe: {before.symbol} {before.timeframe} and "
                             f"{after.symbol} {after.timeframe} mixed")
        if after.open_time <= before.open_time:
            raise ValueError(f"candles must be in increasing time: {after.open_time} after {before.open_time}")
    return candles


def _atomic_write(path: Path, write: Any) -> Path:
    """Call `write(temporary path)`, then rename it over `path` (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def write_candles_csv(path: str | Path, candles: Iterable[Candle]) -> Path:
    """Write one market's candles as a Kraken-charts-layout CSV file (atomically); return its path."""
    rows = _checked(list(candles))

    def write(temporary: Path) -> None:
        with temporary.open("w", newline="", encoding="utf-8") as handle:
            out = csv.writer(handle, lineterminator="\n")
            out.writerow(COLUMNS)
            out.writerows((c.open_time, _plain(c.open), _plain(c.high), _plain(c.low), _plain(c.close),
                           _plain(c.volume)) for c in rows)

    return _atomic_write(Path(path), write)


def write_candles_parquet(path: str | Path, candles: Iterable[Candle]) -> Path:
    """Write one market's candles as a Parquet file (atomically): time int64 ms, prices as exact decimal strings."""
    pa, pq = _arrow()
    rows = _checked(list(candles))
    columns: dict[str, Any] = {"time": pa.array([c.open_time for c in rows], type=pa.int64())}
    for name in PRICE_COLUMNS:
        columns[name] = pa.array([_plain(getattr(c, name)) for c in rows], type=pa.string())
    table = pa.table(columns)
    return _atomic_write(Path(path), lambda temporary: pq.write_table(table, temporary))


def write_candles(path: str | Path, candles: Iterable[Candle]) -> Path:
    """Write candles as CSV or Parquet, by the file's suffix (`.csv`, `.parquet`)."""
    fmt = SUFFIXES.get(Path(path).suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: name a candle file .csv or .parquet")
    return write_candles_csv(path, candles) if fmt == "csv" else write_candles_parquet(path, candles)


# -- synthetic candles ----------------------------------------------------------------------------------------------

_ONE_MINUTE_VOLATILITY = 0.0007  # a 1m log-return's standard deviation before the market's volatility factor
_CANDLE_NOTIONAL_USD = 50_000.0  # the typical traded value of a 1m candle


def synthetic_candles(
    symbol: str,
    timeframe: str,
    start_ms: int,
    count: int,
    seed: int = 0,
    start_price: Decimal | str | None = None,
) -> tuple[Candle, ...]:
    """`count` realistic-looking candles from `start_ms` on: a seeded random walk, the same for the same arguments.

    Prices are on the market's tick (simulator.instruments); each candle opens at the previous close; volatility
    wanders slowly; `start_price` defaults to the instrument's initial price."""
    tf_ms = timeframe_ms(timeframe)
    if start_ms < 0 or start_ms % tf_ms:
        raise ValueError(f"start {start_ms} is not aligned to {timeframe} (a multiple of {tf_ms} ms)")
    if count < 0:
        raise ValueError(f"count must be >= 0, not {count}")
    instrument = instrument_of(symbol)
    unified = instrument.unified_symbol
    tick, step = instrument.tick_size, instrument.size_step
    rng = random.Random(f"synthetic-candles:{seed}:{instrument.symbol}:{timeframe}")
    sigma = _ONE_MINUTE_VOLATILITY * math.sqrt(tf_ms / 60_000) * instrument.volatility_factor
    first = Decimal(start_price) if start_price is not None else Decimal(repr(instrument.initial_price))
    open_ = max(tick, first.quantize(tick))
    regime = 0.0  # log of the volatility multiplier, mean-reverting
    candles: list[Candle] = []
    for n in range(count):
        regime = 0.98 * regime + rng.gauss(0.0, 0.08)
        candle_sigma = sigma * math.exp(max(-1.5, min(1.5, regime)))
        price = float(open_)
        change = rng.gauss(0.0, candle_sigma)
        close = max(tick, Decimal(repr(price * math.exp(change))).quantize(tick))
        top, bottom = max(open_, close), min(open_, close)
        high = Decimal(repr(float(top) * math.exp(abs(rng.gauss(0.0, candle_sigma * 0.6))))).quantize(
            tick, rounding=ROUND_CEILING)
        low = Decimal(repr(float(bottom) * math.exp(-abs(rng.gauss(0.0, candle_sigma * 0.6))))).quantize(
            tick, rounding=ROUND_FLOOR)
        high, low = max(high, top), min(max(low, tick), bottom)
        activity = math.exp(rng.gauss(0.0, 0.5)) * (1.0 + abs(change) / max(candle_sigma, 1e-12))
        volume = Decimal(repr(_CANDLE_NOTIONAL_USD * tf_ms / 60_000 * activity / price)).quantize(step)
        candles.append(Candle(symbol=unified, timeframe=timeframe, open_time=start_ms + n * tf_ms, open=open_,
                              high=high, low=low, close=close, volume=max(volume, Decimal(0))))
        open_ = close
    return tuple(candles)
