"""Download Kraken's charts (closed candles only) through a real ccxt client into the data folder's candle files."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ccxt
from loguru import logger

from actors.market_data import BadMarketData, parse_candle
from backtest.data import CandleFileError, data_path, load_candles, unified_symbol, write_candles
from backtest.progress import progress_bar
from exchange.clock import ServerClock
from messages.market import Candle, timeframe_ms

MAX_CANDLES_PER_REQUEST = 2000  # Kraken's charts answer at most 2000 candles (ccxt's krakenfutures fetch_ohlcv)
NETWORK_RETRIES = 3  # a request that fails on the network is tried again this often, after 1, 2, 4 s


class DownloadError(RuntimeError):
    """A download that cannot go on: the exchange failed or answered a candle that is not usable."""


def iso(ms: int) -> str:
    """Epoch milliseconds as a readable UTC time, e.g. 2024-01-02T03:04:00Z."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fetch(client: Any, symbol: str, timeframe: str, since: int, to_ms: int, sleep: Callable[[float], None]) -> Any:
    """One charts request for candles opening in [since, to_ms), retried on network failures."""
    # ccxt caps `to` at the local clock; the window's own end is given so the exchange's clock decides
    params = {"to": (to_ms - 1) // 1000}
    for attempt in range(NETWORK_RETRIES + 1):
        try:
            return client.fetch_ohlcv(symbol, timeframe, since=since, limit=MAX_CANDLES_PER_REQUEST, params=params)
        except ccxt.NetworkError as exc:
            if attempt == NETWORK_RETRIES:
                raise DownloadError(f"{symbol} {timeframe}: the exchange did not answer for candles from {iso(since)} "
                                    f"after {NETWORK_RETRIES + 1} tries ({type(exc).__name__}: {str(exc)[:200]}); "
                                    "try again later") from exc
            logger.debug("download {} {}: {} from {}; again in {} s", symbol, timeframe, type(exc).__name__,
                         iso(since), 2**attempt)
            sleep(2**attempt)
        except ccxt.BaseError as exc:
            raise DownloadError(f"{symbol} {timeframe}: the exchange refused the candles from {iso(since)} "
                                f"({type(exc).__name__}: {str(exc)[:200]})") from exc
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def download_candles(
    client: Any,
    symbol: str,
    timeframe: str,
    start_ms: int,
    end_ms: int,
    *,
    progress: bool = True,
    exchange_now_ms: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[Candle, ...]:
    """The closed candles of a market opening in [start_ms, end_ms), fetched through a ccxt client page by page.

    Pages of at most 2000 candles go forward from `start_ms` (rounded up to the timeframe) until `end_ms` or the
    candle still forming at the exchange's time (`exchange_now_ms`, else read from its tickers' serverTime), which
    is left out. Every row is parsed once with `parse_candle`; a row that is not a sane candle, or out of time order,
    raises DownloadError naming the symbol and the time. Gaps (times without a candle) stay gaps. Prices come as
    ccxt parses them (float), written as their shortest decimal text. `progress`: a tqdm bar on a terminal."""
    unified = unified_symbol(symbol)
    tf_ms = timeframe_ms(timeframe)
    if timeframe == "1w":
        raise ValueError("1w: Kraken's weekly candles open on Mondays, and a Candle's week is aligned to the epoch "
                         "(a Thursday); download 1d candles instead")
    if end_ms <= start_ms:
        raise ValueError(f"the end {iso(end_ms)} is not after the start {iso(start_ms)}")
    now = _exchange_time(client, unified) if exchange_now_ms is None else exchange_now_ms
    first = -(-start_ms // tf_ms) * tf_ms
    forming = now // tf_ms * tf_ms  # the open time of the candle still forming at the exchange's time
    stop = min(end_ms, forming)
    expected = max(0, -(-(stop - first) // tf_ms))
    candles: list[Candle] = []
    cursor = first
    with progress_bar(expected, f"{unified} {timeframe}", "candle", progress, unit_scale=True) as bar:
        while cursor < stop:
            window_end = min(stop, cursor + MAX_CANDLES_PER_REQUEST * tf_ms)
            rows = _fetch(client, unified, timeframe, cursor, window_end, sleep)
            if not isinstance(rows, list):
                raise DownloadError(f"{unified} {timeframe}: an unreadable charts answer for candles from "
                                    f"{iso(cursor)}: {str(rows)[:200]}")
            page = [candle for candle in (_parse(unified, timeframe, row) for row in rows)
                    if cursor <= candle.open_time < window_end]
            for candle in page:
                if candles and candle.open_time <= candles[-1].open_time:
                    raise DownloadError(f"{unified} {timeframe}: the exchange's candle at {iso(candle.open_time)} "
                                        f"({candle.open_time}) does not come after {iso(candles[-1].open_time)}; "
                                        "download again (an answer out of time order)")
                candles.append(candle)
            # the next page starts after this one's last candle: an answer cut short (by a cap below 2000, or a
            # candle not published yet) loses nothing; an empty window is skipped whole (a gap in the market)
            advanced = page[-1].open_time + tf_ms if page else window_end
            bar.update((advanced - cursor) // tf_ms)
            cursor = advanced
    return tuple(candles)


def _exchange_time(client: Any, symbol: str) -> int:
    """The exchange's time (its tickers' serverTime): which candle is still forming there."""
    try:
        return ServerClock(client).refresh()
    except (ccxt.BaseError, ValueError) as exc:
        raise DownloadError(f"{symbol}: could not read the exchange's time ({type(exc).__name__}: "
                            f"{str(exc)[:200]}); try again later") from exc


def _parse(symbol: str, timeframe: str, row: Any) -> Candle:
    """One ccxt OHLCV row as a Candle; DownloadError naming the symbol and the row's time if it is not a sane one."""
    try:
        return parse_candle(symbol, timeframe, row)
    except BadMarketData as exc:
        stamp = row[0] if isinstance(row, (list, tuple)) and row and isinstance(row[0], int) else None
        when = f"at {iso(stamp)} ({stamp})" if stamp is not None else f"{str(row)[:80]}"
        raise DownloadError(f"{symbol} {timeframe}: the exchange's candle {when} is not usable: {exc}; nothing was "
                            "written (download again later, or choose a range without it)") from None


def download_to_files(
    client: Any,
    symbols: Iterable[str],
    timeframe: str,
    start_ms: int,
    end_ms: int,
    data_dir: str | Path,
    fmt: str = "csv",
    progress: bool = True,
) -> list[Path]:
    """Download each market's closed candles in [start_ms, end_ms) into `<data_dir>/<Kraken id>_<timeframe>.<fmt>`.

    An existing file of that name is merged: its candles are kept, the downloaded ones at other times added (it
    must read cleanly, else CandleFileError). One file per symbol; returns their paths in the symbols' order.
    A symbol without any closed candle in the range (and no file) is a DownloadError; files written before stay."""
    paths: list[Path] = []
    for symbol in dict.fromkeys(unified_symbol(s) for s in symbols):
        path = data_path(data_dir, symbol, timeframe, fmt)
        existing = load_candles(path, symbol, timeframe) if path.is_file() else ()
        fetched = download_candles(client, symbol, timeframe, start_ms, end_ms, progress=progress)
        if not fetched and not existing:
            raise DownloadError(f"{symbol} {timeframe}: the exchange has no closed candles from {iso(start_ms)} to "
                                f"{iso(end_ms)}; choose a range it has (nothing written to {path})")
        merged = {c.open_time: c for c in fetched}
        merged.update({c.open_time: c for c in existing})
        write_candles(path, [merged[t] for t in sorted(merged)])
        paths.append(path)
    return paths


__all__ = ["MAX_CANDLES_PER_REQUEST", "CandleFileError", "DownloadError", "download_candles", "download_to_files",
           "iso"]
