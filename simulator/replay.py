"""History as the simulator's price path: each market replays given candles, exactly as given, on a stepped clock.

A candle of timeframe `tf` that opens at `t` becomes four prices, a quarter of the timeframe apart:

    t: open    t + tf/4: first extreme    t + tf/2: second extreme    t + 3tf/4: close

The simulator ticks at those quarter points, or every hour when they lie further apart (4h candles and longer), the
price standing still between them, so every hour boundary's funding meets the price that stood then.

The extremes come low first when the candle closed at or above its open (open -> low -> high -> close), high
first otherwise (open -> high -> low -> close): the usual reading of a bar whose inner path is unknown. A resting
order whose price lies inside the candle's range therefore trades during that candle, and a market order sent after
the close (at `t + tf`) meets the next candle's open tick: no order ever sees a price it could not have had. The
bid and ask sit the configured spread apart around that price and the book is the engine's finite one (levels
of the market's impact size), so a large order walks it as live. Between candles of a gap the price stands still.
The mark and index prices equal the replayed price (the charts files hold trade prices only): funding comes from
the simulator's fixed `funding_rate`, which a backtest sets (simulator/README.md, "Replay of history").

The candles endpoint serves the given candles unchanged (same strings) for the data's timeframe, and whole-candle
aggregates of them for longer ones (weeks open on Mondays, as Kraken's); nothing finer exists. The candle still
forming holds only what was replayed of it so far (its open, the extremes and close reached, a share of the volume):
the endpoint never shows a price the clock has not reached.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any, Protocol

from simulator.instruments import Instrument
from simulator.prices import INTERVALS_MS, MINUTE_MS, WEEK_OFFSET_MS, Bar, MarketData, PricePath, fmt

TICKS_PER_CANDLE = 4
HOUR_MS = 3_600_000
VOLUME_STEP = Decimal("1e-8")  # a forming candle's share of its volume, rounded down


class ReplayCandle(Protocol):
    """The candle fields a replay reads (messages.market.Candle has them)."""

    @property
    def open_time(self) -> int: ...
    @property
    def open(self) -> Decimal: ...
    @property
    def high(self) -> Decimal: ...
    @property
    def low(self) -> Decimal: ...
    @property
    def close(self) -> Decimal: ...
    @property
    def volume(self) -> Decimal: ...


def tick_prices(candle: ReplayCandle) -> tuple[float, float, float, float]:
    """The four prices one candle is replayed as: open, the two extremes in path order, close."""
    o, first, second, c = _decimal_ticks(candle)
    return float(o), float(first), float(second), float(c)


class ReplayPath(PricePath):
    """One market's price path read from candles instead of drawn at random."""

    def __init__(self, instrument: Instrument, candles: Sequence[ReplayCandle], timeframe_ms: int,
                 spread: float, start_ms: int | None = None) -> None:
        if not candles:
            raise ValueError(f"no candles to replay for {instrument.symbol}")
        if timeframe_ms % TICKS_PER_CANDLE or timeframe_ms < MINUTE_MS:
            raise ValueError(f"a replay needs a timeframe of whole minutes, not {timeframe_ms} ms")
        self.instrument = instrument
        self.timeframe_ms = timeframe_ms
        self.quarter_ms = timeframe_ms // TICKS_PER_CANDLE
        self.tick_ms = replay_tick_ms(timeframe_ms)
        self.spread = spread
        self.by_open: dict[int, ReplayCandle] = {c.open_time: c for c in candles}
        self._prices: dict[int, tuple[float, float, float, float]] = {}  # a candle's tick prices, made once
        self.first_open = min(self.by_open)
        self.last_open = max(self.by_open)
        first = self.by_open[self.first_open]
        self.genesis_ms = self.first_open
        self.history_start_ms = self.first_open
        self.fair = float(first.open)
        self.premium = 0.0
        start = self.first_open if start_ms is None else min(start_ms, self.first_open)
        self.last_tick_ms = start  # a market whose data starts later stands at its first open until then
        self.bars: dict[int, Bar] = {}
        self._hist_oldest_ms = start
        self._hist_oldest_open = self.fair
        self.newest_minute = start - start % MINUTE_MS
        self._apply_tick(start)

    def _price_at(self, time_ms: int) -> float | None:
        """The replayed price of the tick at `time_ms`, or None between candles (a gap)."""
        offset = time_ms % self.timeframe_ms
        prices = self._prices.get(time_ms - offset)
        if prices is None:
            candle = self.by_open.get(time_ms - offset)
            if candle is None:
                return None
            prices = self._prices[candle.open_time] = tick_prices(candle)
        return prices[offset // self.quarter_ms]

    def _apply_tick(self, time_ms: int) -> None:
        price = self._price_at(time_ms)
        if price is not None:
            self.fair = price
        candle = self.by_open.get(time_ms - time_ms % self.timeframe_ms)
        volume = float(candle.volume) * self.tick_ms / self.timeframe_ms if candle is not None else 0.0
        self._apply(time_ms, volume)

    def step(self) -> Any:
        """Advance to the next tick of the replay."""
        self.last_tick_ms += self.tick_ms
        self._apply_tick(self.last_tick_ms)

    def set_fair(self, price: float, time_ms: int) -> Any:
        """A replay's prices are the data's: refused."""
        raise ValueError("a replayed market's price is the data's; it cannot be set")

    def ensure_history(self, from_ms: int) -> None:
        """Nothing before the data exists."""

    def restore_state(self, header: Mapping[str, Any], bars: Sequence[Sequence[Any]]) -> None:
        """A replay is never resumed from a state file."""
        raise ValueError("a replay does not resume from a state file")

    def candles(self, kind: str, interval_ms: int, from_ms: int, to_ms: int) -> tuple[list[dict[str, object]], bool]:
        """The given candles (any price kind: the data has one) that opened in [from_ms, to_ms] by now; for a longer
        interval, aggregates of whole given candles. Returns (candles, more)."""
        if interval_ms % self.timeframe_ms:
            return [], False
        offset = WEEK_OFFSET_MS if interval_ms == INTERVALS_MS["1w"] else 0  # Kraken's weeks open on Mondays
        now = self.last_tick_ms
        newest = min(to_ms, now)
        result: list[dict[str, object]] = []
        start = max(from_ms, self.first_open)
        bucket = start - (start - offset) % interval_ms
        if bucket < from_ms:
            bucket += interval_ms
        while bucket <= newest and len(result) < 2000:
            group = [self._as_of(self.by_open[t], now)
                     for t in range(bucket, min(bucket + interval_ms, now + 1), self.timeframe_ms) if t in self.by_open]
            if group:
                result.append(_candle_json(bucket, group, kind))
            bucket += interval_ms
        return result, bucket <= newest

    def _as_of(self, candle: ReplayCandle, now_ms: int) -> ReplayCandle:
        """The candle as far as the replay has reached at `now_ms`: whole once closed; while forming, only the
        ticks replayed so far (no look-ahead: its high, low, close and volume are those of the path up to now)."""
        if candle.open_time + self.timeframe_ms <= now_ms:
            return candle
        quarters = min(TICKS_PER_CANDLE, (now_ms - candle.open_time) // self.quarter_ms + 1)
        seen = _decimal_ticks(candle)[:quarters]
        ticks_done = (now_ms - candle.open_time) // self.tick_ms + 1
        volume = (candle.volume * ticks_done / (self.timeframe_ms // self.tick_ms)).quantize(VOLUME_STEP, ROUND_DOWN)
        return _Partial(candle.open_time, seen[0], max(seen), min(seen), seen[-1], volume)


@dataclass(frozen=True)
class _Partial:
    """A forming candle as replayed so far."""

    open_time: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


def _decimal_ticks(candle: ReplayCandle) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """tick_prices in the candle's own decimals."""
    up = candle.close >= candle.open
    return (candle.open, candle.low, candle.high, candle.close) if up else \
        (candle.open, candle.high, candle.low, candle.close)


def replay_tick_ms(timeframe_ms: int) -> int:
    """The replay's tick: a quarter of the timeframe, at most an hour (so funding meets every hour boundary at the
    price that stood then; between quarter points the price stands still)."""
    quarter = timeframe_ms // TICKS_PER_CANDLE
    return quarter if quarter <= HOUR_MS else math.gcd(quarter, HOUR_MS)


def _candle_json(time_ms: int, group: list[ReplayCandle], kind: str) -> dict[str, object]:
    """One candle in Kraken's charts format from consecutive given candles (one: its own strings)."""
    high = max(c.high for c in group)
    low = min(c.low for c in group)
    if kind != "trade":
        volume: object = 0
    elif len(group) == 1:
        volume = _text(group[0].volume)
    else:
        volume = fmt(sum((c.volume for c in group), Decimal(0)))
    return {"time": time_ms, "open": _text(group[0].open), "high": _text(high), "low": _text(low),
            "close": _text(group[-1].close), "volume": volume}


def _text(value: Decimal) -> str:
    """A price as given (a Decimal keeps the data's digits)."""
    return format(value, "f")


class ReplayMarketData(MarketData):
    """Every replayed market on one tick grid (a quarter of the data's timeframe)."""

    def __init__(self, instruments: dict[str, Instrument], candles: Mapping[str, Sequence[ReplayCandle]],
                 timeframe_ms: int, spread: float) -> None:
        missing = sorted(set(instruments) - set(candles))
        if missing:
            raise ValueError(f"no candles to replay for {', '.join(missing)}")
        empty = sorted(symbol for symbol in instruments if not candles[symbol])
        if empty:
            raise ValueError(f"no candles to replay for {', '.join(empty)}")
        first = min(min(c.open_time for c in candles[symbol]) for symbol in instruments)
        self.paths: dict[str, PricePath] = {  # one tick grid from the earliest candle of any market
            symbol: ReplayPath(inst, candles[symbol], timeframe_ms, spread, start_ms=first)
            for symbol, inst in instruments.items()
        }
        self.tick_ms = replay_tick_ms(timeframe_ms)
        self.genesis_ms = first
        self.now_ms = first
        self._stats_cache: dict[str, tuple[int, tuple[float, float, float, float]]] = {}
