"""Downloading Kraken's charts end to end: the real ccxt client against the simulator, into candle files."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import ccxt
import pytest

from actors.market_data import parse_candle
from backtest.data import data_path, load_candles, synthetic_candles, write_candles_csv
from backtest.download import MAX_CANDLES_PER_REQUEST, DownloadError, download_candles, download_to_files
from messages.market import Candle
from simulator import SimulatorHandle, start_simulator

MINUTE = 60_000
HOUR = 60 * MINUTE
T0 = 1_735_689_600_000  # 2025-01-01T00:00:00Z
NOW = T0 + 30_000  # the simulator's clock: the T0 candle is still forming
SYMBOL = "BTC/USD:USD"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorHandle]:
    """A stepped simulator at NOW serving a week of generated history before it."""
    with start_simulator(clock="stepped", start_time_ms=NOW, symbols=[SYMBOL, "ETH/USD:USD"]) as handle:
        yield handle


@pytest.fixture
def client(sim: SimulatorHandle) -> Iterator[Any]:
    """A real ccxt.krakenfutures client on the simulator."""
    exchange = sim.client()
    yield exchange
    exchange.close()


def charts(client: Any, symbol: str, since: int, until: int, page: int = 500) -> list[Candle]:
    """The candles opening in [since, until), read directly with `client.fetch_ohlcv` in small pages."""
    candles: list[Candle] = []
    for start in range(since, until, page * MINUTE):
        end = min(until, start + page * MINUTE)
        rows = client.fetch_ohlcv(symbol, "1m", since=start, limit=page, params={"to": (end - 1) // 1000})
        candles.extend(c for c in (parse_candle(symbol, "1m", row) for row in rows) if start <= c.open_time < end)
    return candles


class CountingClient:
    """The real client, counting (and optionally changing) each fetch_ohlcv answer."""

    def __init__(self, client: Any, change: Any = None, failures: int = 0) -> None:
        self.client = client
        self.change = change
        self.failures = failures
        self.windows: list[tuple[int, int]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def fetch_ohlcv(self, symbol: str, timeframe: str, since: int, limit: int, params: dict[str, Any]) -> Any:
        """Delegate to ccxt, after `failures` network errors."""
        if self.failures:
            self.failures -= 1
            raise ccxt.NetworkError("krakenfutures connection reset")
        self.windows.append((since, params["to"] * 1000))
        rows = self.client.fetch_ohlcv(symbol, timeframe, since=since, limit=limit, params=params)
        return self.change(rows) if self.change else rows


def test_downloaded_candles_equal_what_fetch_ohlcv_gives(client: Any) -> None:
    candles = download_candles(client, SYMBOL, "1m", T0 - 3 * HOUR, T0 - HOUR, progress=False)
    assert len(candles) == 120
    assert [c.open_time for c in candles] == list(range(T0 - 3 * HOUR, T0 - HOUR, MINUTE))
    assert list(candles) == charts(client, SYMBOL, T0 - 3 * HOUR, T0 - HOUR)


@pytest.mark.timeout(120)
def test_paging_goes_across_more_than_2000_candles(client: Any) -> None:
    spy = CountingClient(client)
    start = T0 - 3 * 24 * HOUR + 17 * MINUTE
    candles = download_candles(spy, SYMBOL, "1m", start, T0, progress=False)
    assert len(candles) == (T0 - start) // MINUTE == 4303 > 2 * MAX_CANDLES_PER_REQUEST
    assert [c.open_time for c in candles] == list(range(start, T0, MINUTE))  # none lost, none twice at page edges
    assert len(spy.windows) == 3
    assert all(to - since < MAX_CANDLES_PER_REQUEST * MINUTE for since, to in spy.windows)
    assert list(candles) == charts(client, SYMBOL, start, T0)


def test_the_candle_still_forming_is_left_out(client: Any) -> None:
    rows = client.fetch_ohlcv(SYMBOL, "1m", since=T0 - 2 * MINUTE, limit=10, params={"to": NOW // 1000 + 60})
    assert rows[-1][0] == T0  # the exchange shows the forming candle ...
    candles = download_candles(client, SYMBOL, "1m", T0 - 10 * MINUTE, T0 + HOUR, progress=False)
    assert candles[-1].open_time == T0 - MINUTE  # ... the download stops at the last closed one
    assert len(candles) == 10


def test_a_start_between_candles_begins_at_the_next_candle(client: Any) -> None:
    candles = download_candles(client, SYMBOL, "1m", T0 - 5 * MINUTE + 1, T0 - 2 * MINUTE, progress=False)
    assert [c.open_time for c in candles] == [T0 - 4 * MINUTE, T0 - 3 * MINUTE]


def test_hourly_candles_download_too(client: Any) -> None:
    candles = download_candles(client, "PF_ETHUSD", "1h", T0 - 24 * HOUR, T0 + HOUR, progress=False)
    assert [c.open_time for c in candles] == list(range(T0 - 24 * HOUR, T0, HOUR))
    assert all(c.symbol == "ETH/USD:USD" and c.timeframe == "1h" for c in candles)


def test_progress_false_prints_nothing(client: Any, capfd: pytest.CaptureFixture[str]) -> None:
    capfd.readouterr()
    download_candles(client, SYMBOL, "1m", T0 - HOUR, T0, progress=False)
    assert capfd.readouterr() == ("", "")


def test_no_bar_when_stderr_is_not_a_terminal(client: Any, capfd: pytest.CaptureFixture[str]) -> None:
    capfd.readouterr()
    download_candles(client, SYMBOL, "1m", T0 - HOUR, T0, progress=True)
    assert capfd.readouterr() == ("", "")


def test_a_progress_bar_counts_the_candles_on_a_terminal(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    download_candles(client, SYMBOL, "1m", T0 - 50 * HOUR, T0, progress=True)
    shown = terminal.getvalue()
    assert "BTC/USD:USD 1m" in shown and "100%" in shown and "3.00k/3.00k" in shown


def test_a_garbage_row_is_an_error_naming_the_symbol_and_time(client: Any) -> None:
    def corrupt(rows: list[list[Any]]) -> list[list[Any]]:
        rows[3] = [rows[3][0], rows[3][1], rows[3][4] * 0.5, rows[3][3], rows[3][4], rows[3][5]]  # high below close
        return rows

    with pytest.raises(DownloadError) as caught:
        download_candles(CountingClient(client, corrupt), SYMBOL, "1m", T0 - HOUR, T0, progress=False)
    message = str(caught.value)
    assert "BTC/USD:USD 1m" in message
    assert f"at 2024-12-31T23:03:00Z ({T0 - HOUR + 3 * MINUTE})" in message and "high" in message


def test_an_answer_out_of_time_order_is_an_error(client: Any) -> None:
    with pytest.raises(DownloadError, match="does not come after"):
        download_candles(CountingClient(client, lambda rows: rows[::-1]), SYMBOL, "1m", T0 - HOUR, T0,
                         progress=False)


def test_network_failures_are_retried_then_reported(client: Any) -> None:
    waits: list[float] = []
    flaky = CountingClient(client, failures=2)
    candles = download_candles(flaky, SYMBOL, "1m", T0 - HOUR, T0, progress=False, sleep=waits.append)
    assert len(candles) == 60 and waits == [1, 2]
    with pytest.raises(DownloadError, match="did not answer for candles from 2024-12-31T23:00:00Z after 4 tries"):
        download_candles(CountingClient(client, failures=10), SYMBOL, "1m", T0 - HOUR, T0, progress=False,
                         sleep=waits.append)


def test_a_bad_request_or_a_refusal_by_the_exchange_is_reported(client: Any) -> None:
    with pytest.raises(ValueError, match="not after the start"):
        download_candles(client, SYMBOL, "1m", T0, T0 - HOUR, progress=False)
    with pytest.raises(ValueError, match="weekly candles open on Mondays"):
        download_candles(client, SYMBOL, "1w", T0 - 10 * 7 * 24 * HOUR, T0, progress=False)
    with pytest.raises(DownloadError, match="refused the candles"):
        download_candles(client, "PF_ADAUSD", "1m", T0 - HOUR, T0, progress=False)  # not listed there


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_download_to_files_writes_one_file_per_symbol_readable_back(client: Any, tmp_path: Path, fmt: str) -> None:
    paths = download_to_files(client, [SYMBOL, "PF_ETHUSD", SYMBOL], "1m", T0 - 2 * HOUR, T0 + HOUR, tmp_path, fmt,
                              progress=False)
    assert paths == [data_path(tmp_path, SYMBOL, "1m", fmt), data_path(tmp_path, "ETH/USD:USD", "1m", fmt)]
    for symbol, path in zip([SYMBOL, "ETH/USD:USD"], paths, strict=True):
        assert list(load_candles(tmp_path, symbol, "1m")) == charts(client, symbol, T0 - 2 * HOUR, T0)
        assert path.name == f"{'PF_XBTUSD' if symbol == SYMBOL else 'PF_ETHUSD'}_1m.{fmt}"


def test_download_to_files_merges_with_the_file_there(client: Any, tmp_path: Path) -> None:
    path = data_path(tmp_path, SYMBOL, "1m")
    earlier = synthetic_candles(SYMBOL, "1m", T0 - 5 * HOUR, 3, seed=1, start_price=Decimal("1000"))
    overlapping = synthetic_candles(SYMBOL, "1m", T0 - HOUR, 2, seed=2, start_price=Decimal("2000"))
    write_candles_csv(path, earlier + overlapping)
    download_to_files(client, [SYMBOL], "1m", T0 - HOUR, T0, tmp_path, progress=False)
    merged = load_candles(path, SYMBOL, "1m")
    fetched = charts(client, SYMBOL, T0 - HOUR, T0)
    assert merged == earlier + overlapping + tuple(fetched[2:])  # the file's candles kept, the rest added
    assert len({c.open_time for c in merged}) == len(merged) == 3 + 60
    download_to_files(client, [SYMBOL], "1m", T0 - 2 * HOUR, T0, tmp_path, progress=False)  # again, wider
    again = load_candles(path, SYMBOL, "1m")
    assert again[3:63] == tuple(charts(client, SYMBOL, T0 - 2 * HOUR, T0 - HOUR))
    assert again[:3] == earlier and again[63:] == merged[3:]


def test_an_unreachable_exchange_is_a_download_error() -> None:
    closed = start_simulator(clock="stepped", start_time_ms=NOW, symbols=[SYMBOL])
    client = closed.client(timeout=2_000)
    closed.stop()
    with pytest.raises(DownloadError, match="could not read the exchange's time"):
        download_candles(client, SYMBOL, "1m", T0 - HOUR, T0, progress=False)


def test_a_range_without_closed_candles_writes_no_file(client: Any, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="no closed candles from 2025-01-01T00:00:00Z"):
        download_to_files(client, [SYMBOL], "1m", T0, T0 + HOUR, tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []
