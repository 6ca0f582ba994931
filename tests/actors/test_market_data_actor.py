"""The market-data actor alone: the fake exchange's candles, a recording target."""

from __future__ import annotations

from decimal import Decimal

from actors.market_data import CandleFeed, MarketDataActor, SendHistory
from messages import Candles
from tests.fakes import FakeExchange
from tests.helpers import start_recorder

BTC = "BTC/USD:USD"
MINUTE = 60_000
T0 = 1_800_000_000_000


def rows(start: int, count: int) -> list[list[float]]:
    return [[start + i * MINUTE, 100 + i, 101 + i, 99 + i, 100.5 + i, 10] for i in range(count)]


def test_history_then_each_closed_candle_exactly_once() -> None:
    exchange = FakeExchange()
    exchange.ohlcv[BTC] = rows(T0, 10)  # the 10th is still forming
    now = [T0 + 10 * MINUTE]
    feed = CandleFeed(exchange, [BTC], "1m", history=5, clock=lambda: now[0])
    history = feed.history(BTC)
    assert not history.live and [c.open_time for c in history.candles] == [T0 + i * MINUTE for i in range(4, 9)]
    assert feed.poll(BTC) is None  # nothing new has closed
    exchange.ohlcv[BTC] = rows(T0, 13)
    live = feed.poll(BTC)
    assert live.live and [c.open_time for c in live.candles] == [T0 + 9 * MINUTE, T0 + 10 * MINUTE, T0 + 11 * MINUTE]
    assert live.candles[-1].close == Decimal("111.5")
    assert feed.poll(BTC) is None


def test_market_data_actor_sends_history_on_start_and_on_request() -> None:
    exchange = FakeExchange()
    exchange.ohlcv[BTC] = rows(T0, 30)
    target, inbox = start_recorder()
    feed = CandleFeed(exchange, [BTC], "1m", history=20, clock=lambda: T0 + 30 * MINUTE)
    actor = MarketDataActor.start(feed, target, tick_interval_s=3600)
    first = inbox.wait_for(Candles)[0]
    assert not first.live and len(first.candles) == 20
    actor.tell(SendHistory(symbol=BTC))
    assert len(inbox.wait_for(Candles, 2)) == 2


def test_market_data_keeps_running_when_the_exchange_returns_garbage() -> None:
    exchange = FakeExchange()
    exchange.fetch_ohlcv = lambda *a, **k: {"error": "unavailable"}
    target, inbox = start_recorder()
    feed = CandleFeed(exchange, [BTC], "1m", history=5)
    actor = MarketDataActor.start(feed, target, tick_interval_s=3600)
    actor.tell(SendHistory(symbol=BTC))
    exchange.fetch_ohlcv = lambda *a, **k: [[T0, None, 1, 1, 1, 1]]
    actor.tell(SendHistory(symbol=BTC))
    exchange.ohlcv[BTC] = rows(T0, 3)
    del exchange.fetch_ohlcv  # back to the working method
    actor.tell(SendHistory(symbol=BTC))
    assert len(inbox.wait_for(Candles)[0].candles) == 2
