"""Seeded random-walk prices per market, the bid/ask around them, and candles built from the path."""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import Any

from simulator.instruments import Instrument

MINUTE_MS = 60_000
DAY_MS = 86_400_000
HISTORY_CHUNK_MINUTES = 1440
INTERVALS_MS: dict[str, int] = {
    "1m": MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": 60 * MINUTE_MS,
    "4h": 240 * MINUTE_MS,
    "12h": 720 * MINUTE_MS,
    "1d": DAY_MS,
    "1w": 7 * DAY_MS,
}
# Weekly candles start on Mondays (1970-01-05 was a Monday; the epoch was a Thursday).
WEEK_OFFSET_MS = 4 * DAY_MS
PRICE_KINDS = ("trade", "mark", "spot")
MAX_CANDLES = 2000


def fmt(value: Decimal) -> str:
    """Plain decimal notation without exponent or trailing zeros."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def to_decimal(value: float) -> Decimal:
    """Shortest exact-looking Decimal for a float."""
    return Decimal(repr(value))


def floor_tick(value: float | Decimal, tick: Decimal) -> Decimal:
    """Largest multiple of `tick` not above `value`."""
    d = value if isinstance(value, Decimal) else to_decimal(value)
    return (d / tick).to_integral_value(ROUND_FLOOR) * tick


def ceil_tick(value: float | Decimal, tick: Decimal) -> Decimal:
    """Smallest multiple of `tick` not below `value`."""
    d = value if isinstance(value, Decimal) else to_decimal(value)
    return (d / tick).to_integral_value(ROUND_CEILING) * tick


def round_tick(value: float | Decimal, tick: Decimal) -> Decimal:
    """Nearest multiple of `tick`."""
    d = value if isinstance(value, Decimal) else to_decimal(value)
    return (d / tick).to_integral_value(ROUND_HALF_EVEN) * tick


def stable_seed(*parts: object) -> int:
    """A process-independent integer seed from the given parts."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big")


@dataclass(frozen=True, slots=True)
class Tick:
    """One step of a market's price path."""

    symbol: str
    time_ms: int
    fair: float
    mark: float


@dataclass(frozen=True, slots=True)
class Quote:
    """A market's current prices, rounded to its tick size where Kraken rounds them."""

    symbol: str
    time_ms: int
    bid: Decimal
    ask: Decimal
    last: Decimal
    mark: Decimal
    index: Decimal

    def signal_price(self, signal: str) -> Decimal:
        """The price a trigger order watches: `last`, `mark` or `index`."""
        if signal == "mark":
            return self.mark
        if signal == "index":
            return self.index
        return self.last


class Bar:
    """One minute of trade, mark and spot (index) prices plus traded volume."""

    __slots__ = ("t", "o", "h", "l", "c", "mo", "mh", "ml", "mc", "so", "sh", "sl", "sc", "vol")

    def __init__(self, t: int, trade: float, mark: float, spot: float) -> None:
        self.t = t
        self.o = self.h = self.l = self.c = trade
        self.mo = self.mh = self.ml = self.mc = mark
        self.so = self.sh = self.sl = self.sc = spot
        self.vol = 0.0

    def update(self, trade: float, mark: float, spot: float, volume: float) -> None:
        """Fold one more tick into the bar."""
        self.c = trade
        if trade > self.h:
            self.h = trade
        if trade < self.l:
            self.l = trade
        self.mc = mark
        if mark > self.mh:
            self.mh = mark
        if mark < self.ml:
            self.ml = mark
        self.sc = spot
        if spot > self.sh:
            self.sh = spot
        if spot < self.sl:
            self.sl = spot
        self.vol += volume

    def to_state(self) -> list[float]:
        """The bar as a flat list: time, trade OHLC, mark OHLC, spot OHLC, volume."""
        return [self.t, self.o, self.h, self.l, self.c, self.mo, self.mh, self.ml, self.mc,
                self.so, self.sh, self.sl, self.sc, self.vol]

    @classmethod
    def from_state(cls, row: Sequence[Any]) -> Bar:
        """A bar back from `to_state`; ValueError on a malformed row."""
        if len(row) != 14:
            raise ValueError(f"a bar has 14 numbers, got {len(row)}")
        values = [float(v) for v in row[1:]]
        if not all(math.isfinite(v) for v in values):
            raise ValueError("a bar holds a non-finite number")
        bar = cls(int(row[0]), values[0], values[4], values[8])
        (bar.o, bar.h, bar.l, bar.c, bar.mo, bar.mh, bar.ml, bar.mc,
         bar.so, bar.sh, bar.sl, bar.sc, bar.vol) = values
        return bar

    def ohlc(self, kind: str) -> tuple[float, float, float, float]:
        """Open, high, low, close for `trade`, `mark` or `spot`."""
        if kind == "mark":
            return self.mo, self.mh, self.ml, self.mc
        if kind == "spot":
            return self.so, self.sh, self.sl, self.sc
        return self.o, self.h, self.l, self.c


class PricePath:
    """One market's seeded random walk (fair price), mark premium and minute bars."""

    def __init__(
        self,
        instrument: Instrument,
        seed: int,
        genesis_ms: int,
        tick_ms: int,
        volatility: float,
        spread: float,
        history_minutes: int,
    ) -> None:
        self.instrument = instrument
        self.tick_ms = tick_ms
        self.spread = spread
        self.genesis_ms = genesis_ms
        self.history_start_ms = genesis_ms - history_minutes * MINUTE_MS
        daily = volatility * instrument.volatility_factor
        self._tick_sigma = daily * math.sqrt(tick_ms / DAY_MS)
        self._minute_sigma = daily * math.sqrt(MINUTE_MS / DAY_MS)
        self._rng = random.Random(stable_seed(seed, instrument.symbol, "live"))
        self._hist_rng = random.Random(stable_seed(seed, instrument.symbol, "history"))
        self._premium_theta = 0.01
        self._premium_sigma = 0.0001 * math.sqrt(max(tick_ms, 1) / 1000)
        self._volume_scale = float(instrument.impact_mid_size) * 0.2
        start = instrument.initial_price * math.exp(self._rng.gauss(0.0, 0.05))
        self.fair = start
        self.premium = 0.0
        self.last_tick_ms = genesis_ms
        self.bars: dict[int, Bar] = {}
        self._seed = seed
        self._hist_oldest_ms = genesis_ms
        self._hist_oldest_open = start
        self.newest_minute = genesis_ms - genesis_ms % MINUTE_MS
        self._apply(genesis_ms, 0.0)

    # -- live path -------------------------------------------------------------
    def _trade_price(self, fair: float) -> float:
        """The last-trade price: fair rounded to the tick size."""
        tick = float(self.instrument.tick_size)
        return max(round(fair / tick) * tick, tick)

    def _apply(self, time_ms: int, volume: float) -> Tick:
        """Record the current fair/mark at `time_ms` into its minute bar."""
        mark = self.fair * (1.0 + self.premium)
        trade = self._trade_price(self.fair)
        minute = time_ms - time_ms % MINUTE_MS
        bar = self.bars.get(minute)
        if bar is None:
            bar = Bar(minute, trade, mark, self.fair)
            bar.vol = volume
            self.bars[minute] = bar
            self.newest_minute = max(self.newest_minute, minute)
        else:
            bar.update(trade, mark, self.fair, volume)
        return Tick(self.instrument.symbol, time_ms, self.fair, mark)

    def step(self) -> Tick:
        """Advance the walk by one tick and return it."""
        rng = self._rng
        self.fair *= math.exp(self._tick_sigma * rng.gauss(0.0, 1.0))
        self.premium = self.premium * (1.0 - self._premium_theta) + self._premium_sigma * rng.gauss(0.0, 1.0)
        volume = rng.random() * self._volume_scale
        self.last_tick_ms += self.tick_ms
        return self._apply(self.last_tick_ms, volume)

    def set_fair(self, price: float, time_ms: int) -> Tick:
        """Jump the walk to `price` at `time_ms` (the walk continues from there)."""
        if price <= 0:
            raise ValueError("price must be positive")
        self.fair = price
        self.premium = 0.0
        return self._apply(max(time_ms, self.last_tick_ms), 0.0)

    def set_mark_premium(self, premium: float, time_ms: int) -> Tick:
        """Set the mark price's relative premium over the fair price."""
        self.premium = premium
        return self._apply(max(time_ms, self.last_tick_ms), 0.0)

    def quote(self) -> Quote:
        """Current bid, ask, last, mark and index prices."""
        tick = self.instrument.tick_size
        fair = to_decimal(self.fair)
        half = fair * to_decimal(self.spread) / 2
        bid = floor_tick(fair - half, tick)
        ask = ceil_tick(fair + half, tick)
        if bid <= 0:
            bid = tick
        if ask <= bid:
            ask = bid + tick
        last = round_tick(fair, tick)
        if last <= 0:
            last = tick
        mark = to_decimal(self.fair * (1.0 + self.premium))
        return Quote(self.instrument.symbol, self.last_tick_ms, bid, ask, last, mark, fair)

    # -- state file ---------------------------------------------------------------
    def state_header(self) -> dict[str, object]:
        """The walk's scalar state (everything but the bars) for the state file."""
        return {
            "fair": self.fair,
            "premium": self.premium,
            "last_tick_ms": self.last_tick_ms,
            "genesis_ms": self.genesis_ms,
            "history_start_ms": self.history_start_ms,
        }

    def state_minutes(self, keep_minutes: int) -> range:
        """Minute starts of the bars a state file keeps: the newest one and `keep_minutes` before it."""
        first = max(self.newest_minute - keep_minutes * MINUTE_MS, self._hist_oldest_ms)
        return range(first, self.newest_minute + MINUTE_MS, MINUTE_MS)

    @property
    def final_before_ms(self) -> int:
        """Bars of minutes before this one can no longer change."""
        return self.last_tick_ms - self.last_tick_ms % MINUTE_MS

    def restore_state(self, header: Mapping[str, Any], bars: Sequence[Sequence[Any]]) -> None:
        """Continue from a saved walk: prices, tick time and the kept bars; older bars are regenerated.

        The random streams restart from seeds derived from the saved tick time, so a given seed and
        state file always lead to the same future path.
        """
        fair, premium = float(header["fair"]), float(header["premium"])
        if not (math.isfinite(fair) and fair > 0 and math.isfinite(premium)):
            raise ValueError(f"bad saved price for {self.instrument.symbol}")
        restored = {bar.t: bar for bar in (Bar.from_state(row) for row in bars)}
        if not restored:
            raise ValueError(f"no saved bars for {self.instrument.symbol}")
        self.fair, self.premium = fair, premium
        self.last_tick_ms = int(header["last_tick_ms"])
        self.genesis_ms = int(header["genesis_ms"])
        self.history_start_ms = int(header["history_start_ms"])
        self.bars = restored
        oldest = min(restored)
        self._hist_oldest_ms = oldest
        self._hist_oldest_open = restored[oldest].so
        self.newest_minute = max(restored)
        symbol = self.instrument.symbol
        self._rng = random.Random(stable_seed(self._seed, symbol, "live", "resume", self.last_tick_ms))
        self._hist_rng = random.Random(stable_seed(self._seed, symbol, "history", "resume", oldest))

    # -- history before genesis -----------------------------------------------
    def ensure_history(self, from_ms: int) -> None:
        """Generate minute bars backwards from genesis down to `from_ms` (bounded by the history cap)."""
        target = max(from_ms - from_ms % MINUTE_MS, self.history_start_ms)
        rng = self._hist_rng
        sigma = self._minute_sigma
        while self._hist_oldest_ms > target:
            chunk_end = self._hist_oldest_ms
            chunk_start = max(chunk_end - HISTORY_CHUNK_MINUTES * MINUTE_MS, self.history_start_ms)
            close = self._hist_oldest_open
            t = chunk_end - MINUTE_MS
            while t >= chunk_start:
                open_ = close / math.exp(sigma * rng.gauss(0.0, 1.0))
                wick_up = math.exp(abs(rng.gauss(0.0, 1.0)) * sigma * 0.5)
                wick_down = math.exp(-abs(rng.gauss(0.0, 1.0)) * sigma * 0.5)
                premium = rng.gauss(0.0, 0.0005)
                high, low = max(open_, close) * wick_up, min(open_, close) * wick_down
                bar = Bar(t, self._trade_price(open_), open_ * (1 + premium), open_)
                bar.update(self._trade_price(high), high * (1 + premium), high, 0.0)
                bar.update(self._trade_price(low), low * (1 + premium), low, 0.0)
                bar.update(self._trade_price(close), close * (1 + premium), close, 0.0)
                bar.vol = rng.random() * self._volume_scale * 60
                self.bars[t] = bar
                close = open_
                t -= MINUTE_MS
            self._hist_oldest_ms = chunk_start
            self._hist_oldest_open = close

    # -- candles ---------------------------------------------------------------
    def candles(self, kind: str, interval_ms: int, from_ms: int, to_ms: int) -> tuple[list[dict[str, object]], bool]:
        """Candles of `kind` whose start lies in [from_ms, to_ms], and whether more were cut off."""
        self.ensure_history(from_ms)
        offset = WEEK_OFFSET_MS if interval_ms == INTERVALS_MS["1w"] else 0
        first_bucket = from_ms - (from_ms - offset) % interval_ms
        if first_bucket < from_ms:
            first_bucket += interval_ms
        lo = max(first_bucket, self._hist_oldest_ms - (self._hist_oldest_ms - offset) % interval_ms)
        hi = min(to_ms, self.last_tick_ms)
        tick = self.instrument.tick_size
        result: list[dict[str, object]] = []
        more = False
        bucket = lo if lo >= first_bucket else first_bucket
        while bucket <= hi:
            o = h = low = c = None
            vol = 0.0
            minute = bucket
            end = min(bucket + interval_ms, self.last_tick_ms + 1)
            while minute < end:
                bar = self.bars.get(minute)
                if bar is not None:
                    bo, bh, bl, bc = bar.ohlc(kind)
                    if o is None:
                        o, h, low = bo, bh, bl
                    else:
                        h = max(h, bh)  # type: ignore[type-var]
                        low = min(low, bl)  # type: ignore[type-var]
                    c = bc
                    vol += bar.vol
                minute += MINUTE_MS
            if o is not None:
                if len(result) >= MAX_CANDLES:
                    more = True
                    break
                result.append(self._candle(bucket, kind, (o, h, low, c), vol, tick))  # type: ignore[arg-type]
            bucket += interval_ms
        return result, more

    def _candle(
        self, t: int, kind: str, ohlc: tuple[float, float, float, float], vol: float, tick: Decimal
    ) -> dict[str, object]:
        """One candle in Kraken's charts format."""
        if kind == "trade":
            values = [fmt(round_tick(v, tick)) for v in ohlc]
            volume: object = fmt(floor_tick(vol, self.instrument.size_step))
        else:
            values = [fmt(to_decimal(v)) for v in ohlc]
            volume = 0
        return {"time": t, "open": values[0], "high": values[1], "low": values[2], "close": values[3], "volume": volume}

    def stats_24h(self) -> tuple[float, float, float, float]:
        """Open, high, low and traded volume over the last 24 hours of trade prices."""
        now = self.last_tick_ms
        start = now - DAY_MS
        self.ensure_history(start)
        minute = start - start % MINUTE_MS
        o = h = low = None
        vol = 0.0
        while minute <= now:
            bar = self.bars.get(minute)
            if bar is not None:
                if o is None:
                    o, h, low = bar.o, bar.h, bar.l
                else:
                    h, low = max(h, bar.h), min(low, bar.l)  # type: ignore[type-var]
                vol += bar.vol
            minute += MINUTE_MS
        if o is None:
            o = h = low = self._trade_price(self.fair)
        return o, h, low, vol  # type: ignore[return-value]


class MarketData:
    """All markets' price paths, advanced together on one tick grid."""

    def __init__(
        self,
        instruments: dict[str, Instrument],
        seed: int,
        start_ms: int,
        tick_ms: int = 1000,
        volatility: float = 0.03,
        spread: float = 0.0002,
        history_days: float = 7.0,
    ) -> None:
        if tick_ms <= 0:
            raise ValueError("tick_ms must be positive")
        self.tick_ms = tick_ms
        self.genesis_ms = start_ms - start_ms % MINUTE_MS
        self._seed = seed
        self._volatility = volatility
        self._spread = spread
        self._history_minutes = int(history_days * 1440)
        self.paths: dict[str, PricePath] = {
            symbol: self._new_path(inst, self.genesis_ms) for symbol, inst in instruments.items()
        }
        self.now_ms = self.genesis_ms
        self._stats_cache: dict[str, tuple[int, tuple[float, float, float, float]]] = {}

    def _new_path(self, instrument: Instrument, genesis_ms: int) -> PricePath:
        """A fresh walk for one market starting at `genesis_ms`."""
        return PricePath(instrument, self._seed, genesis_ms, self.tick_ms, self._volatility, self._spread,
                         self._history_minutes)

    @property
    def last_tick_ms(self) -> int:
        """Time of the newest tick (every market shares the tick grid)."""
        first = next(iter(self.paths.values()), None)
        return self.now_ms if first is None else first.last_tick_ms

    def restore_state(self, now_ms: int, last_tick_ms: int, paths: Mapping[str, Any]) -> None:
        """Continue saved walks; a configured market missing from the save starts fresh at the saved tick."""
        for symbol, path in list(self.paths.items()):
            saved = paths.get(symbol)
            if saved is None:
                fresh = self._new_path(path.instrument, last_tick_ms - last_tick_ms % MINUTE_MS)
                fresh.last_tick_ms = last_tick_ms
                self.paths[symbol] = fresh
                continue
            path.restore_state(saved["walk"], saved["bars"])
            if path.last_tick_ms != last_tick_ms:
                raise ValueError(f"{symbol} is off the saved tick grid")
        self.now_ms = max(now_ms, last_tick_ms)
        self._stats_cache.clear()

    def advance_to(self, time_ms: int) -> Iterator[int]:
        """Step every market up to `time_ms`, yielding each tick time after all markets moved to it."""
        if self.paths:
            first = next(iter(self.paths.values()))
            while first.last_tick_ms + self.tick_ms <= time_ms:
                for path in self.paths.values():
                    path.step()
                yield first.last_tick_ms
        self.now_ms = max(self.now_ms, time_ms)

    def quote(self, symbol: str) -> Quote:
        """Current prices of one market."""
        return self.paths[symbol].quote()

    def stats_24h(self, symbol: str) -> tuple[float, float, float, float]:
        """24-hour open, high, low and volume, cached per minute."""
        path = self.paths[symbol]
        minute = path.last_tick_ms - path.last_tick_ms % MINUTE_MS
        cached = self._stats_cache.get(symbol)
        if cached is None or cached[0] != minute:
            cached = (minute, path.stats_24h())
            self._stats_cache[symbol] = cached
        return cached[1]

    def candles(
        self, symbol: str, kind: str, interval: str, from_ms: int | None, to_ms: int | None
    ) -> tuple[list[dict[str, object]], bool]:
        """Candles for a market, price kind (`trade`, `mark`, `spot`) and interval name."""
        interval_ms = INTERVALS_MS[interval]
        end = self.now_ms if to_ms is None else to_ms
        start = end - MAX_CANDLES * interval_ms if from_ms is None else from_ms
        return self.paths[symbol].candles(kind, interval_ms, start, end)
