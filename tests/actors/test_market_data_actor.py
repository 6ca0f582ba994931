"""The market-data actor alone (the fake exchange's candles, a recording target), and bad market data refused at
the edge."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pydantic
import pytest

from actors.market_data import (
    BAD_DATA,
    CLOSE_TICK,
    BadMarketData,
    CandleFeed,
    CloseSchedule,
    CloseSettings,
    MarketDataActor,
    MarketDataStats,
    RefusedRow,
    clone_client,
    parse_candle,
)
from messages import (
    Candle,
    Candles,
    Event,
    GetMarketDataStats,
    GetStatus,
    Ping,
    PositionSide,
    QueryEvents,
    SendHistory,
    SignalKind,
    Tick,
)
from strategies import Strategy
from strategies.base import StrategyParams
from tests.conftest import StartSystem, make_config, settle
from tests.fakes import FakeExchange
from tests.helpers import start_recorder, wait_until

pytestmark = pytest.mark.timeout(60)

BTC = "BTC/USD:USD"
MINUTE = 60_000
T0 = 1_800_000_000_000


def rows(start: int, count: int) -> list[list[Any]]:
    return [[start + i * MINUTE, 100 + i, 101 + i, 99 + i, 100.5 + i, 10] for i in range(count)]


def clock_at(t: int) -> Any:
    return lambda: t


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
    feed = CandleFeed(exchange, [BTC], "1m", history=20, clock=clock_at(T0 + 30 * MINUTE))
    actor = MarketDataActor.start(feed, target, tick_interval_s=3600)
    first = inbox.wait_for(Candles)[0]
    assert not first.live and len(first.candles) == 20
    actor.tell(SendHistory(symbol=BTC))
    assert len(inbox.wait_for(Candles, 2)) == 2


# --- the edge: one row -----------------------------------------------------------------------

GOOD = [T0, 100, 101, 99, 100.5, 10]
BAD_ROWS = {
    "negative price": [T0, -100, -99, -101, -100.5, 10],
    "zero low": [T0, 1, 2, 0, 1, 10],
    "NaN open": [T0, float("nan"), 101, 99, 100, 10],
    "infinite high": [T0, 100, float("inf"), 99, 100, 10],
    "NaN volume": [T0, 100, 101, 99, 100, float("nan")],
    "negative volume": [T0, 100, 101, 99, 100, -1],
    "high below close": [T0, 100, 100.5, 99, 101, 10],
    "high below open": [T0, 102, 101, 99, 100, 10],
    "low above open": [T0, 98, 101, 99, 100, 10],
    "low above close": [T0, 100, 101, 99.5, 99, 10],
    "high below low": [T0, 100, 98, 102, 100, 10],
    "unaligned time": [T0 + 1, 100, 101, 99, 100.5, 10],
    "negative time": [-MINUTE, 100, 101, 99, 100.5, 10],
    "NaN time": [float("nan"), 100, 101, 99, 100.5, 10],
    "fractional time": [T0 + 0.5, 100, 101, 99, 100.5, 10],
    "time as text": [str(T0), 100, 101, 99, 100.5, 10],
    "price as junk text": [T0, "abc", 101, 99, 100.5, 10],
    "price missing": [T0, None, 101, 99, 100.5, 10],
    "price a bool": [T0, True, 101, 99, 100.5, 10],
    "price a dict": [T0, {"p": 1}, 101, 99, 100.5, 10],
    "short row": [T0, 100, 101, 99],
    "not a row": "<html>",
    "a dict": {"time": T0},
    "None": None,
}


def test_a_sane_row_becomes_a_candle() -> None:
    candle = parse_candle(BTC, "1m", GOOD)
    assert (candle.open_time, candle.open, candle.high, candle.low, candle.close, candle.volume) == (
        T0, Decimal(100), Decimal(101), Decimal(99), Decimal("100.5"), Decimal(10))
    assert parse_candle(BTC, "1m", GOOD[:5]).volume == 0  # ccxt may leave the volume out
    flat = parse_candle(BTC, "1m", [T0, 5, 5, 5, 5, 0])  # a candle without trades is still sane
    assert flat.low == flat.high == 5


@pytest.mark.parametrize("name", sorted(BAD_ROWS))
def test_a_row_that_is_not_a_sane_candle_is_refused(name: str) -> None:
    with pytest.raises(BadMarketData):
        parse_candle(BTC, "1m", BAD_ROWS[name])


@pytest.mark.parametrize("values", [
    {"open": Decimal(-1), "high": Decimal(1), "low": Decimal(-2), "close": Decimal(1)},
    {"open": Decimal(10), "high": Decimal(9), "low": Decimal(8), "close": Decimal(9)},
    {"open": Decimal(10), "high": Decimal(12), "low": Decimal(11), "close": Decimal(11)},
    {"open": Decimal(10), "high": Decimal(12), "low": Decimal(9), "close": Decimal(11), "volume": Decimal(-1)},
    {"open": Decimal("NaN"), "high": Decimal(12), "low": Decimal(9), "close": Decimal(11)},
    {"open": Decimal(10), "high": Decimal(12), "low": Decimal(9), "close": Decimal(11), "open_time": T0 + 7},
    {"open": Decimal(10), "high": Decimal(12), "low": Decimal(9), "close": Decimal(11), "timeframe": "7m"},
])
def test_the_candle_message_itself_cannot_hold_an_insane_candle(values: dict[str, Any]) -> None:
    fields: dict[str, Any] = {"symbol": BTC, "timeframe": "1m", "open_time": T0, **values}
    with pytest.raises(pydantic.ValidationError):
        Candle(**fields)


# --- the edge: an answer with good and bad rows -----------------------------------------------


def refusals() -> tuple[list[RefusedRow], Any]:
    seen: list[RefusedRow] = []
    return seen, seen.append


def test_bad_rows_are_dropped_reported_once_and_the_good_rows_carry_on() -> None:
    exchange = FakeExchange()
    good = rows(T0, 8)
    negative = [T0 + 2 * MINUTE, -100, -99, -101, -100.5, 10]
    # T0+2m insane; T0+3m twice; then T0+2m (sane) out of order; T0+5m still forming
    answer = [good[0], good[1], negative, good[3], list(good[3]), good[2], good[4], good[5]]
    exchange.ohlcv[BTC] = answer
    seen, report = refusals()
    feed = CandleFeed(exchange, [BTC], "1m", history=10, clock=clock_at(T0 + 6 * MINUTE), refused=report)
    history = feed.history(BTC)
    assert [c.open_time for c in history.candles] == [T0, T0 + MINUTE, T0 + 3 * MINUTE, T0 + 4 * MINUTE]
    assert [(r.open_time, r.detail.split(":")[0]) for r in seen] == [
        (T0 + 2 * MINUTE, "low -101 is not positive"),
        (T0 + 3 * MINUTE, "time does not increase (after 1800000180000)"),
        (T0 + 2 * MINUTE, "time does not increase (after 1800000180000)"),
    ]
    exchange.ohlcv[BTC] = [*answer, good[6], good[7]]
    live = feed.poll(BTC)
    assert live is not None and [c.open_time for c in live.candles] == [T0 + 5 * MINUTE, T0 + 6 * MINUTE]
    feed.history(BTC)  # the same bad rows again: not reported again
    assert len(seen) == 3


def test_a_refused_newest_row_does_not_hold_back_the_last_closed_candle() -> None:
    exchange = FakeExchange()
    exchange.ohlcv[BTC] = [*rows(T0, 3), [T0 + 3 * MINUTE, 100, 99, 101, 100, 1]]  # the forming row is insane
    seen, report = refusals()
    feed = CandleFeed(exchange, [BTC], "1m", history=10, clock=clock_at(T0 + 3 * MINUTE), refused=report)
    assert [c.open_time for c in feed.history(BTC).candles] == [T0, T0 + MINUTE, T0 + 2 * MINUTE]
    assert len(seen) == 1


def test_a_candle_from_the_future_is_refused_and_does_not_block_the_feed() -> None:
    exchange = FakeExchange()
    future = [T0 + 1000 * MINUTE, 100, 101, 99, 100, 1]
    exchange.ohlcv[BTC] = [*rows(T0, 3), future]
    seen, report = refusals()
    now = [T0 + 3 * MINUTE]
    feed = CandleFeed(exchange, [BTC], "1m", history=10, clock=lambda: now[0], refused=report)
    assert [c.open_time for c in feed.history(BTC).candles] == [T0, T0 + MINUTE, T0 + 2 * MINUTE]
    assert [r.detail.split(":")[0] for r in seen] == ["time is in the future (exchange time 1800000180000)"]
    exchange.ohlcv[BTC] = [*rows(T0, 5), future]
    now[0] = T0 + 5 * MINUTE
    live = feed.poll(BTC)
    assert live is not None and [c.open_time for c in live.candles] == [T0 + 3 * MINUTE, T0 + 4 * MINUTE]


# --- the actor keeps running, and says what it refused ------------------------------------------


def test_market_data_keeps_running_and_records_events_when_the_exchange_returns_garbage() -> None:
    exchange = FakeExchange()
    events, event_inbox = start_recorder()
    target, inbox = start_recorder()
    feed = CandleFeed(exchange, [BTC], "1m", history=5, clock=clock_at(T0 + 3 * MINUTE))
    actor = MarketDataActor.start(feed, target, tick_interval_s=3600, events=events)
    actor.ask(Ping(), timeout=5)
    exchange.fetch_ohlcv = lambda *a, **k: {"error": "unavailable"}  # not a list
    actor.tell(SendHistory(symbol=BTC))
    [first] = event_inbox.wait_for(Event)
    assert first.reason is BAD_DATA and first.symbol == BTC and "unreadable OHLCV answer" in first.detail
    exchange.fetch_ohlcv = lambda *a, **k: "<!DOCTYPE html><html>cloudflare</html>"
    actor.tell(SendHistory(symbol=BTC))  # the same failure streak: no second event
    exchange.fetch_ohlcv = lambda *a, **k: [[T0, None, 1, 1, 1, 1], [T0 + MINUTE, -5, -4, -6, -5, 1]]
    actor.tell(SendHistory(symbol=BTC))
    refused = event_inbox.wait_for(Event, 3)[1:]
    assert [e.reason for e in refused] == [BAD_DATA, BAD_DATA]
    assert "open is not a number" in refused[0].detail and "not positive" in refused[1].detail
    exchange.ohlcv[BTC] = rows(T0, 3)
    del exchange.fetch_ohlcv  # back to the working method
    actor.tell(SendHistory(symbol=BTC))
    assert [c.open_time for c in inbox.wait_for(Candles)[0].candles] == [T0, T0 + MINUTE]
    assert actor.ask(Ping(), timeout=5) is True
    assert all(len(m.candles) for m in inbox.received(Candles))  # nothing empty, nothing bad was sent on


def test_an_exchange_error_is_an_unavailable_event_and_not_a_death() -> None:
    import ccxt

    exchange = FakeExchange()
    events, event_inbox = start_recorder()
    target, _ = start_recorder()

    def down(*args: Any, **kwargs: Any) -> Any:
        raise ccxt.ExchangeNotAvailable("krakenfutures 503")

    exchange.fetch_ohlcv = down
    feed = CandleFeed(exchange, [BTC], "1m", history=5, clock=clock_at(T0 + 3 * MINUTE))
    actor = MarketDataActor.start(feed, target, tick_interval_s=3600, events=events)
    actor.tell(Tick(name="candles"))
    [event] = event_inbox.wait_for(Event)
    assert event.reason.value == "EXCHANGE_UNAVAILABLE" and "ExchangeNotAvailable" in event.detail
    assert actor.ask(Ping(), timeout=5) is True


# --- through the running system: the symbol actor never sees the bad candle ------------------------

BAD_TIMES = {T0 + 5 * MINUTE, T0 + 6 * MINUTE, T0 + 7 * MINUTE}


class EnterOnBadCandles(Strategy):
    """Enters long whenever the newest candle is one of the bad ones (as a strategy would on a wild price)."""

    name = "enter-on-bad"
    Params = StrategyParams
    seen: list[int] = []  # noqa: RUF012 - one list per test, reset in the test

    @property
    def warmup(self) -> int:
        return 1

    def decide(self, candles: Sequence[Candle], position: PositionSide) -> SignalKind | None:
        EnterOnBadCandles.seen.extend(c.open_time for c in candles)  # the whole window it decides on
        return SignalKind.ENTER_LONG if candles[-1].open_time in BAD_TIMES else None


def test_negative_nan_and_inconsistent_candles_never_reach_the_symbol_actor(start_system: StartSystem) -> None:
    EnterOnBadCandles.seen = []
    exchange = FakeExchange()
    exchange.ohlcv[BTC] = rows(T0, 5)
    now = [T0 + 5 * MINUTE]
    system = start_system(exchange, public_exchange=exchange, candle_clock=lambda: now[0],
                          strategy_factory=lambda symbol: EnterOnBadCandles(StrategyParams()),
                          market_data_interval_s=3600, config=make_config())
    assert system.market_data is not None
    system.market_data.ask(Ping(), timeout=5)  # the first tick (history) has been handled
    [before] = system.symbol_actors().values()
    negative = [T0 + 5 * MINUTE, -70_000, -69_000, -71_000, -70_500, 3]
    exchange.ohlcv[BTC] = [*rows(T0, 5), negative, *rows(T0 + 6 * MINUTE, 1)]  # the bad one is the newest closed
    now[0] = T0 + 6 * MINUTE
    system.market_data.tell(Tick(name="candles"))
    system.market_data.ask(Ping(), timeout=5)
    settle(system)
    exchange.ohlcv[BTC] = [
        *rows(T0, 5),
        negative,
        [T0 + 6 * MINUTE, float("nan"), 101, 99, 100, 3],  # NaN
        [T0 + 7 * MINUTE, 100, 90, 110, 100, 3],  # high below low
        *rows(T0 + 8 * MINUTE, 2),  # a good closed candle, then the forming one
    ]
    now[0] = T0 + 9 * MINUTE
    system.market_data.tell(Tick(name="candles"))
    system.market_data.ask(Ping(), timeout=5)
    settle(system)
    [after] = system.symbol_actors().values()
    assert after is before and after.is_alive()  # the same actor: it did not die and was not restarted
    assert after.ask(GetStatus(), timeout=5).restarts == 0
    assert T0 + 8 * MINUTE in EnterOnBadCandles.seen  # the feed carried on with the good rows
    assert not BAD_TIMES & set(EnterOnBadCandles.seen)  # no signal could come from a bad candle
    assert exchange.create_calls == []
    assert system.persistence is not None
    recorded = system.persistence.ask(QueryEvents(symbol=BTC, reason=BAD_DATA.value), timeout=5)
    assert len(recorded) == 3
    assert all("candle refused" in e.detail for e in recorded)
    assert system.market_data.is_alive()



# --- a candle close as one step: fetch when a candle can have closed, all symbols at once --------------

SECOND = 1_000
SYMBOLS = [f"S{i:02d}/USD:USD" for i in range(20)]


class ExchangeClock:
    """The exchange's time as a test sets it; counts the reads that would be a tickers request."""

    rate = 1.0

    def __init__(self, t: int) -> None:
        self.t = t
        self.refreshes = 0

    def refresh(self) -> int:
        self.refreshes += 1
        return self.t

    def __call__(self) -> int:
        return self.t


class CountingExchange(FakeExchange):
    """Counts OHLCV requests and how many are in flight at once; `gate` (if set) holds every request."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[str] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.gate: threading.Event | None = None
        self.hold: dict[str, threading.Event] = {}
        self._count = threading.Lock()

    def fetch_ohlcv(self, symbol: str, *args: Any, **kwargs: Any) -> list[list[float]]:
        with self._count:
            self.requests.append(symbol)
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            for event in (self.gate, self.hold.get(symbol)):
                if event is not None:
                    assert event.wait(20), "a held request was never released"
            return super().fetch_ohlcv(symbol, *args, **kwargs)
        finally:
            with self._count:
                self.in_flight -= 1


class Probe(MarketDataActor):
    """The market-data actor, reachable from the test's thread (its counters are plain ints)."""

    started: list[Probe] = []  # noqa: RUF012 - one per test, reset in the test

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        Probe.started.append(self)


def exchange_with(symbols: list[str], count: int) -> CountingExchange:
    exchange = CountingExchange()
    for symbol in symbols:
        exchange.ohlcv[symbol] = rows(T0, count)
    return exchange


def add_candle(exchange: FakeExchange, symbols: list[str]) -> None:
    for symbol in symbols:
        last = exchange.ohlcv[symbol][-1][0]
        exchange.ohlcv[symbol] = [*exchange.ohlcv[symbol], rows(last + MINUTE, 1)[0]]


def stats(actor: Any) -> MarketDataStats:
    result = actor.ask(GetMarketDataStats(), timeout=5)
    assert isinstance(result, MarketDataStats)
    return result


def test_the_schedule_knows_when_a_candle_can_have_closed() -> None:
    schedule = CloseSchedule(MINUTE, CloseSettings(publication_delay_ms=SECOND))
    close = T0 + 10 * MINUTE
    assert schedule.newest_closed(close) == T0 + 8 * MINUTE  # T0+9m's candle closed, but is not published yet
    assert schedule.newest_closed(close + SECOND) == T0 + 9 * MINUTE
    assert schedule.next_close(close) == close + SECOND
    assert schedule.next_close(close + SECOND) == close + MINUTE + SECOND
    have = {BTC: T0 + 8 * MINUTE}
    assert schedule.due([BTC], have, close + 999) == []  # between closes: nothing to fetch
    assert schedule.due([BTC], have, close + SECOND) == [BTC]
    assert schedule.due(["NEW"], have, close) == ["NEW"]  # no history yet: always due


def test_a_candle_not_published_yet_is_asked_again_with_back_off_and_not_forever() -> None:
    settings = CloseSettings(publication_delay_ms=SECOND, retry_initial_ms=500, retry_max=3)
    schedule = CloseSchedule(MINUTE, settings)
    now = T0 + 10 * MINUTE + SECOND
    target = T0 + 9 * MINUTE
    have = {BTC: T0 + 8 * MINUTE}
    waits = []
    for _ in range(3):
        assert schedule.due([BTC], have, now) == [BTC]
        assert schedule.record(BTC, target, have[BTC], failed=False, now_ms=now) == "not published yet"
        wake = schedule.wake_at(now)
        assert schedule.due([BTC], have, wake - 1) == []  # waiting out the back-off
        waits.append(wake - now)
        now = wake
    assert waits == [500, 1000, 2000]
    assert schedule.record(BTC, target, have[BTC], failed=False, now_ms=now) == "given up until the next close"
    assert schedule.due([BTC], have, now + 30 * SECOND) == []
    assert schedule.wake_at(now) == T0 + 11 * MINUTE + SECOND  # the next close
    assert schedule.due([BTC], have, T0 + 11 * MINUTE + SECOND) == [BTC]  # a new close: asked again
    have[BTC] = T0 + 10 * MINUTE
    assert schedule.record(BTC, T0 + 10 * MINUTE, have[BTC], False, T0 + 11 * MINUTE + SECOND) is None
    assert schedule.waiting() == 0
    # an unreachable exchange is retried until it answers (capped back-off, no limit on attempts)
    for _ in range(10):
        assert schedule.record("ETH/USD:USD", T0, None, failed=True, now_ms=T0 + MINUTE) == "failed"
    assert schedule.wake_at(T0 + MINUTE) <= T0 + MINUTE + settings.failure_backoff_max_ms


def test_between_closes_no_ohlcv_request_and_one_round_right_after_a_close() -> None:
    exchange = exchange_with(SYMBOLS, 11)  # T0 .. T0+10m; the last one is forming
    clock = ExchangeClock(T0 + 10 * MINUTE + 20 * SECOND)
    target, inbox = start_recorder()
    feed = CandleFeed(exchange, SYMBOLS, "1m", history=5, clock=clock, concurrency=5)
    actor = MarketDataActor.start(feed, target, tick_interval_s=3600,
                                  settings=CloseSettings(publication_delay_ms=SECOND))
    history = inbox.wait_for(Candles, len(SYMBOLS))
    assert {c.symbol for c in history} == set(SYMBOLS) and not any(c.live for c in history)
    assert len(exchange.requests) == len(SYMBOLS)  # the warm-up: one request per symbol
    for t in (30 * SECOND, 45 * SECOND, 59 * SECOND, MINUTE, MINUTE + 999):  # up to the close + publication delay
        clock.t = T0 + 10 * MINUTE + t
        actor.tell(Tick(name=CLOSE_TICK))
    assert actor.ask(Ping(), timeout=5)
    assert len(exchange.requests) == len(SYMBOLS)  # five checks, each only a read of the exchange's clock
    assert clock.refreshes >= 6
    add_candle(exchange, SYMBOLS)  # T0+11m is forming: T0+10m has closed
    clock.t = T0 + 11 * MINUTE + SECOND
    actor.tell(Tick(name=CLOSE_TICK))
    live = inbox.wait_for(Candles, 2 * len(SYMBOLS))[len(SYMBOLS):]
    assert sorted(c.symbol for c in live) == sorted(SYMBOLS)  # every symbol, once, in one round
    assert all(c.live and [x.open_time for x in c.candles] == [T0 + 10 * MINUTE] for c in live)
    assert len(exchange.requests) == 2 * len(SYMBOLS)
    clock.t += 10 * SECOND
    actor.tell(Tick(name=CLOSE_TICK))
    after = stats(actor)
    assert len(exchange.requests) == 2 * len(SYMBOLS)  # the close was handled: nothing due until the next
    assert after.rounds == 2 and after.last_round_symbols == len(SYMBOLS) and after.ohlcv_requests == 40
    assert after.last_close_lag_ms == SECOND  # on the exchange clock: told at close + publication delay
    actor.stop()


def test_a_round_is_concurrent_within_the_bound_and_hands_every_symbols_candles_on_together() -> None:
    exchange = exchange_with(SYMBOLS, 11)
    exchange.gate = threading.Event()
    slow = SYMBOLS[0]
    exchange.hold[slow] = threading.Event()
    target, inbox = start_recorder()
    feed = CandleFeed(exchange, SYMBOLS, "1m", history=5, clock=ExchangeClock(T0 + 10 * MINUTE + 20 * SECOND),
                      concurrency=4)
    actor = MarketDataActor.start(feed, target, tick_interval_s=3600)
    wait_until(lambda: exchange.in_flight == 4, message="four requests in flight")
    assert len(exchange.requests) == 4  # the bound: no fifth request while four are in flight
    exchange.gate.set()
    wait_until(lambda: len(exchange.requests) == len(SYMBOLS) and exchange.in_flight == 1,
               message="every request but the slow one answered")
    assert inbox.received(Candles) == []  # one burst: nobody is told while a symbol of the round is still out
    exchange.hold[slow].set()
    told = inbox.wait_for(Candles, len(SYMBOLS))
    assert {c.symbol for c in told} == set(SYMBOLS)
    assert exchange.most_in_flight == 4 and len(exchange.requests) == len(SYMBOLS)
    actor.stop()


def test_a_slow_round_skips_ticks_and_the_mailbox_never_grows() -> None:
    Probe.started = []
    exchange = exchange_with(SYMBOLS, 11)
    exchange.gate = threading.Event()
    target, inbox = start_recorder()
    clock = ExchangeClock(T0 + 10 * MINUTE + 20 * SECOND)
    feed = CandleFeed(exchange, SYMBOLS, "1m", history=5, clock=clock, concurrency=5)
    actor = Probe.start(feed, target, tick_interval_s=0.005)  # a tick every 5 ms, the round takes far longer
    [probe] = Probe.started
    deepest = 0

    def many_skipped() -> bool:
        nonlocal deepest
        deepest = max(deepest, actor.actor_inbox.qsize())
        return probe.stats().skipped_ticks >= 30

    wait_until(many_skipped, timeout=10, message="ticks skipped while the round runs")
    assert deepest <= 1  # at most the one check that is running... and never a queue of them
    assert len(exchange.requests) == 5 and probe.stats().rounds == 0
    exchange.gate.set()
    inbox.wait_for(Candles, len(SYMBOLS))
    checks = stats(actor).checks
    wait_until(lambda: stats(actor).checks >= checks + 5, message="more checks after the round")
    after = stats(actor)
    assert after.rounds == 1 and len(exchange.requests) == len(SYMBOLS)  # skipped ticks did not queue rounds
    assert actor.actor_inbox.qsize() <= 1
    actor.stop()


def test_a_closed_candle_published_late_is_fetched_again_soon() -> None:
    exchange = exchange_with([BTC], 11)
    clock = ExchangeClock(T0 + 10 * MINUTE + 20 * SECOND)
    target, inbox = start_recorder()
    feed = CandleFeed(exchange, [BTC], "1m", history=5, clock=clock)
    actor = MarketDataActor.start(feed, target, tick_interval_s=3600,
                                  settings=CloseSettings(publication_delay_ms=SECOND, retry_initial_ms=500))
    inbox.wait_for(Candles)
    clock.t = T0 + 11 * MINUTE + SECOND  # closed, but the exchange still shows T0+10m as its newest (forming) row
    actor.tell(Tick(name=CLOSE_TICK))
    assert stats(actor).retries_waiting == 1 and len(exchange.requests) == 2
    clock.t += 400
    actor.tell(Tick(name=CLOSE_TICK))
    assert len(exchange.requests) == 2 and stats(actor).rounds == 2  # within the back-off: not asked again
    add_candle(exchange, [BTC])
    clock.t += 100
    actor.tell(Tick(name=CLOSE_TICK))  # the back-off is over
    [_, live] = inbox.wait_for(Candles, 2)
    assert live.live and [c.open_time for c in live.candles] == [T0 + 10 * MINUTE]
    assert len(exchange.requests) == 3 and stats(actor).retries_waiting == 0
    actor.stop()


def test_the_retry_wakes_the_actor_by_itself() -> None:
    """No tick needed: the actor sets its own timer for the next retry (and for the next close)."""
    import time

    start, began = T0 + 11 * MINUTE + SECOND, time.monotonic()  # T0+10m has closed; not published yet

    def running() -> int:
        return start + int((time.monotonic() - began) * 1000)

    exchange = exchange_with([BTC], 10)
    target, inbox = start_recorder()
    feed = CandleFeed(exchange, [BTC], "1m", history=5, clock=running)
    actor = MarketDataActor.start(feed, target, tick_interval_s=3600,
                                  settings=CloseSettings(publication_delay_ms=SECOND, retry_initial_ms=50))
    [history] = inbox.wait_for(Candles)
    assert history.candles[-1].open_time == T0 + 8 * MINUTE  # T0+9m is the newest row: taken as forming
    wait_until(lambda: len(exchange.requests) >= 2, message="a retry on the actor's own timer")
    add_candle(exchange, [BTC])
    add_candle(exchange, [BTC])
    live = inbox.wait_for(Candles, 2, timeout=10)[1]
    assert [c.open_time for c in live.candles] == [T0 + 9 * MINUTE, T0 + 10 * MINUTE]
    assert stats(actor).retries_waiting == 0
    actor.stop()


def test_each_worker_thread_gets_its_own_ccxt_client() -> None:
    from exchange import make_kraken_client

    public = make_kraken_client("http://127.0.0.1:9")
    clone = clone_client(public)
    assert clone is not public and clone.session is not public.session
    assert clone.urls == public.urls and clone.timeout == public.timeout
    fake = FakeExchange()
    assert clone_client(fake) is fake  # a fake is shared as it is
    clone.close()
