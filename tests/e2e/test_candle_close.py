"""A candle close as one step, through the real ccxt client against the simulator (stepped clock).

Between closes the market-data actor reads only the exchange's clock (one public tickers request per check) and
makes no OHLCV request; right after a close (plus the publication delay) one round fetches every symbol, and
every symbol actor has its closed candle when that round is done. Requests are counted in the simulator's own
request log, so nothing here trusts the bot's counters alone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from actors import TradingSystem
from actors.market_data import MarketDataStats
from messages import Candle, GetMarketDataStats, GetStatus, PositionSide, SignalKind
from simulator import SimulatorHandle, start_simulator
from simulator.instruments import INSTRUMENTS
from strategies import Strategy
from strategies.base import StrategyParams
from tests.conftest import make_config
from tests.e2e.conftest import build_live_system, ready
from tests.helpers import wait_until

pytestmark = pytest.mark.timeout(180)

MINUTE = 60_000
EXTRA = 92  # synthetic markets (PF_X001USD ...) beside the simulator's real ones: 100 symbols in all
SYMBOLS = sorted(i.unified_symbol for i in INSTRUMENTS.values()) + [f"X{n:03d}/USD:USD" for n in range(1, EXTRA + 1)]
START = 1_780_000_000_000 - 1_780_000_000_000 % MINUTE + 20_000  # 20 s into a minute


class Watching(Strategy):
    """Never trades; notes when each symbol actor first saw each candle (local monotonic time)."""

    name = "watching"
    Params = StrategyParams
    seen: dict[tuple[str, int], float] = {}  # noqa: RUF012 - reset per test
    lock = threading.Lock()

    def __init__(self, symbol: str) -> None:
        super().__init__(StrategyParams())
        self.symbol = symbol

    @property
    def warmup(self) -> int:
        return 1

    def decide(self, candles: Sequence[Candle], position: PositionSide) -> SignalKind | None:
        with Watching.lock:
            Watching.seen.setdefault((self.symbol, candles[-1].open_time), time.monotonic())
        return None


@pytest.fixture
def stepped() -> Iterator[SimulatorHandle]:
    handle = start_simulator(clock="stepped", seed=3, rate_limit=True, start_time_ms=START, history_days=0.05,
                             volatility=0.0001, extra_markets=EXTRA)
    yield handle
    handle.stop()


def chart_requests(sim: SimulatorHandle) -> int:
    return sum(1 for r in list(sim.simulator.requests) if r.get("endpoint") == "charts")


def ticker_requests(sim: SimulatorHandle) -> int:
    return sum(1 for r in list(sim.simulator.requests) if r.get("endpoint") == "tickers")


def stats(system: TradingSystem) -> MarketDataStats:
    assert system.market_data is not None
    result = system.market_data.ask(GetMarketDataStats(), timeout=10)
    assert isinstance(result, MarketDataStats)
    return result


def newest(system: TradingSystem) -> dict[str, int | None]:
    return {s: ref.ask(GetStatus(), timeout=5).last_candle_time for s, ref in system.symbol_actors().items()}


def checks_pass(system: TradingSystem, count: int = 3) -> None:
    """Wait until the market-data actor has made `count` more checks (each: the exchange's clock read)."""
    start = stats(system).checks
    wait_until(lambda: stats(system).checks >= start + count, timeout=10, message=f"{count} more checks")


def test_at_a_close_every_symbol_gets_its_candle_in_one_round_and_between_closes_no_ohlcv_request(
        stepped: SimulatorHandle, sqlite_url: str) -> None:
    Watching.seen = {}
    config = make_config(trading={"symbols": SYMBOLS})
    system = build_live_system(stepped, config, sqlite_url, candles=True, market_data_interval_s=0.05,
                               strategy_factory=Watching)
    try:
        ready(system)
        assert len(system.symbol_actors()) == 100
        warm = START - START % MINUTE - MINUTE  # at START (20 s in) the newest closed candle
        wait_until(lambda: all(t == warm for t in newest(system).values()), timeout=20,
                   message="every symbol warmed up")
        warmed = chart_requests(stepped)
        assert warmed == len(SYMBOLS)  # the warm-up: one request per symbol
        assert stats(system).rounds == 1

        # between closes: checks keep coming, each a tickers request, and not one OHLCV request
        tickers = ticker_requests(stepped)
        for seconds in (10, 10, 10, 10.5):  # up to 0.5 s after the close: before the publication delay
            stepped.admin.step(seconds=seconds)
            checks_pass(system)
        assert chart_requests(stepped) == warmed
        assert ticker_requests(stepped) > tickers
        assert all(t == warm for t in newest(system).values())

        # the close plus the publication delay: one round, every symbol has its closed candle
        closed = warm + MINUTE
        stepped.admin.step(seconds=1.0)
        stepped_at = time.monotonic()
        wait_until(lambda: all(t == closed for t in newest(system).values()), timeout=10,
                   message="every symbol got the closed candle")
        assert chart_requests(stepped) == warmed + len(SYMBOLS)  # one request per symbol: one round
        after = stats(system)
        assert after.rounds == 2 and after.last_round_symbols == len(SYMBOLS)
        last_seen = max(Watching.seen[(s, closed)] for s in SYMBOLS)
        print(f"\n{len(SYMBOLS)} symbols: round {after.last_round_s * 1000:.1f} ms, close to last Candles told "
              f"{after.last_close_lag_ms} ms exchange time, step to last symbol actor deciding "
              f"{(last_seen - stepped_at) * 1000:.1f} ms (includes up to one check interval)")

        # and quiet again until the next close
        for seconds in (15, 15):
            stepped.admin.step(seconds=seconds)
            checks_pass(system)
        assert chart_requests(stepped) == warmed + len(SYMBOLS)
    finally:
        system.stop()


def test_a_restarted_symbol_actor_gets_its_history_again(stepped: SimulatorHandle, sqlite_url: str) -> None:
    """SendHistory (the restart path) still goes to the exchange and back to the new symbol actor."""
    Watching.seen = {}
    symbol = SYMBOLS[0]
    config = make_config(trading={"symbols": [symbol]}, supervision={"max_restarts": 3})
    system = build_live_system(stepped, config, sqlite_url, candles=True, market_data_interval_s=0.05,
                               strategy_factory=Watching)
    try:
        ready(system)
        first = system.symbol_actors()[symbol]
        wait_until(lambda: first.ask(GetStatus(), timeout=5).last_candle_time is not None, message="warm-up")
        before = chart_requests(stepped)
        first.tell("an unexpected message")  # the symbol actor dies; the portfolio starts a new one
        second: Any = wait_until(lambda: (r := system.symbol_actors()[symbol]) is not None and r != first and r,
                                 timeout=10, message="restarted")
        wait_until(lambda: second.ask(GetStatus(), timeout=5).last_candle_time is not None, timeout=10,
                   message="the restarted actor got the history")
        assert chart_requests(stepped) == before + 1
    finally:
        system.stop()
