"""The market-data actor: public candles on its own client; each tick, every newly closed candle."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import ccxt
import pykka
from loguru import logger

from actors.timers import ActorTimers
from messages import (
    Candle,
    Candles,
    Event,
    EventKind,
    Ping,
    Reason,
    Tick,
    now_ms,
    timeframe_ms,
)
from messages._base import Message
from messages.market import candle_problem


class SendHistory(Message):
    """Ask the market-data actor to send a symbol's recent closed candles again (after a restart)."""

    symbol: str


# The reason for a refused candle: BAD_MARKET_DATA once messages/events.py has it, else the nearest one.
BAD_DATA = getattr(Reason, "BAD_MARKET_DATA", Reason.EXCHANGE_UNAVAILABLE)
MAX_REMEMBERED_PROBLEMS = 10_000  # per symbol: a refused row is reported once, not at every poll


class BadMarketData(ValueError):
    """An OHLCV answer or row that is not usable market data."""


@dataclass(frozen=True)
class RefusedRow:
    """One OHLCV row the feed dropped, and why."""

    symbol: str
    detail: str
    open_time: int | None = None


def _number(value: Any, name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise BadMarketData(f"{name} is not a number ({str(value)[:40]})")
    try:
        return Decimal(str(value))
    except ArithmeticError:
        raise BadMarketData(f"{name} is not a number ({str(value)[:40]})") from None


def parse_candle(symbol: str, timeframe: str, row: Any) -> Candle:
    """Turn one ccxt OHLCV row into a Candle; BadMarketData says why it is not a sane one."""
    if not isinstance(row, (list, tuple)) or len(row) < 5:
        raise BadMarketData(f"not an OHLCV row: {str(row)[:100]}")
    stamp = row[0]
    if isinstance(stamp, bool) or not isinstance(stamp, (int, float)) or not math.isfinite(stamp) or abs(stamp) > 2**62:
        raise BadMarketData(f"time is not a number ({str(stamp)[:40]})")
    if stamp != int(stamp):
        raise BadMarketData(f"time {stamp} is not a whole millisecond")
    open_, high, low, close = (_number(row[i], name) for i, name in enumerate(("open", "high", "low", "close"), 1))
    volume = _number(row[5], "volume") if len(row) > 5 and row[5] is not None else Decimal(0)
    problem = candle_problem(timeframe, int(stamp), open_, high, low, close, volume)
    if problem is not None:
        raise BadMarketData(problem)
    return Candle(symbol=symbol, timeframe=timeframe, open_time=int(stamp), open=open_, high=high, low=low,
                  close=close, volume=volume)


class CandleFeed:
    """Fetches OHLCV and hands out each closed candle once. The newest candle returned is still forming.

    `clock` is the exchange's time in epoch ms (the simulator's own clock in paper mode, which may run
    faster than the wall clock); the request window is computed from it, not from ccxt's local clock.
    Rows that are not sane candles (see `parse_candle`), not increasing in time, or from the future are
    dropped and handed to `refused` (once per symbol, time and reason); the good rows carry on.
    """

    def __init__(
        self,
        exchange: Any,
        symbols: list[str],
        timeframe: str,
        history: int,
        clock: Callable[[], int] = now_ms,
        refused: Callable[[RefusedRow], None] | None = None,
    ) -> None:
        self.exchange = exchange
        self.clock = clock
        self.symbols = symbols
        self.timeframe = timeframe
        self.tf_ms = timeframe_ms(timeframe)
        self.history_length = history
        self.last_closed: dict[str, int] = {}
        self.refused = refused
        self._reported: dict[str, set[tuple[int | None, str]]] = {}

    def refresh_clock(self) -> None:
        """Read the exchange's time once per round of polls (when the clock can)."""
        refresh = getattr(self.clock, "refresh", None)
        if refresh is not None:
            refresh()

    def history(self, symbol: str) -> Candles:
        """The last `history` closed candles (for warm-up; never traded on)."""
        since = self.clock() - (self.history_length + 1) * self.tf_ms
        candles = self._closed(symbol, since=since)[-self.history_length :]
        if candles:
            self.last_closed[symbol] = max(self.last_closed.get(symbol, 0), candles[-1].open_time)
        return Candles(symbol=symbol, candles=tuple(candles), live=False)

    def poll(self, symbol: str) -> Candles | None:
        """Candles that closed since the last poll, or None."""
        last = self.last_closed.get(symbol)
        if last is None:
            return self.history(symbol)
        candles = [c for c in self._closed(symbol, since=last + self.tf_ms) if c.open_time > last]
        if not candles:
            return None
        self.last_closed[symbol] = candles[-1].open_time
        return Candles(symbol=symbol, candles=tuple(candles), live=True)

    def _closed(self, symbol: str, since: int) -> list[Candle]:
        now = self.clock()
        to_s = (now + self.tf_ms) // 1000  # a little ahead: the exchange answers up to its own now
        rows = self.exchange.fetch_ohlcv(symbol, self.timeframe, since, None, {"to": to_s})
        if not isinstance(rows, list):
            raise BadMarketData(f"unreadable OHLCV answer for {symbol}: {str(rows)[:200]}")
        candles: list[Candle] = []
        newest_is_good = False
        for row in rows:
            newest_is_good = False
            try:
                candle = parse_candle(symbol, self.timeframe, row)
            except BadMarketData as exc:
                self._refuse(symbol, str(exc), row)
                continue
            if candles and candle.open_time <= candles[-1].open_time:
                self._refuse(symbol, f"time does not increase (after {candles[-1].open_time})", row)
                continue
            if candle.open_time > now + self.tf_ms:
                self._refuse(symbol, "time is in the future", row, f" (exchange time {now})")
                continue
            candles.append(candle)
            newest_is_good = True
        # The newest row is still forming; if it was refused, every candle kept has closed.
        return candles[:-1] if newest_is_good else candles

    def _refuse(self, symbol: str, problem: str, row: Any, context: str = "") -> None:
        """Report a dropped row once per symbol, row time and problem (the same row comes back at later polls)."""
        stamp = row[0] if isinstance(row, (list, tuple)) and row and type(row[0]) is int else None
        seen = self._reported.setdefault(symbol, set())
        if (stamp, problem) in seen:
            return
        if len(seen) >= MAX_REMEMBERED_PROBLEMS:
            seen.clear()
        seen.add((stamp, problem))
        if self.refused is not None:
            self.refused(RefusedRow(symbol=symbol, detail=f"{problem}{context}: {str(row)[:120]}", open_time=stamp))


class MarketDataActor(pykka.ThreadingActor):
    """Polls candles every tick and tells them to the portfolio, which routes them to symbol actors.

    Bad market data never stops it: refused rows and unreadable answers are logged and told to `events`
    (the persistence actor) as events; the good rows carry on.
    """

    def __init__(self, feed: CandleFeed, target: pykka.ActorRef[Any], tick_interval_s: float,
                 events: pykka.ActorRef[Any] | None = None) -> None:
        super().__init__()
        self.feed = feed
        self.target = target
        self.events = events
        self.tick_interval_s = tick_interval_s
        self.timers: ActorTimers | None = None
        self._failing: set[str] = set()
        if feed.refused is None:
            feed.refused = self._refused

    def on_start(self) -> None:
        self.timers = ActorTimers("market-data")
        self.timers.every(self.tick_interval_s, self.actor_ref, Tick(name="candles"), first_in=0)

    def on_stop(self) -> None:
        if self.timers:
            self.timers.stop()

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        """Report the death to the wiring: a core actor never dies silently."""
        if self.timers:
            self.timers.stop()
        from actors.system import report_core_failure

        report_core_failure(self, exception_value)

    def on_receive(self, message: Any) -> Any:
        match message:
            case Tick():
                try:
                    self.feed.refresh_clock()
                except Exception as exc:  # noqa: BLE001 - the exchange's clock may fail in any way
                    self._failed("clock", f"exchange time unavailable: {type(exc).__name__}: {exc}",
                                 Reason.EXCHANGE_UNAVAILABLE)
                    return None
                self._recovered("clock", "exchange time available again")
                for symbol in self.feed.symbols:
                    self._deliver(symbol, self.feed.poll)
            case Ping():
                return True
            case SendHistory():
                self._deliver(message.symbol, self.feed.history)
            case _:
                logger.error("market data: unexpected message {}", type(message).__name__)
        return None

    def _refused(self, row: RefusedRow) -> None:
        logger.warning("market data: {} candle refused: {}", row.symbol, row.detail)
        self._record(Event(kind=EventKind.SYSTEM, symbol=row.symbol, reason=BAD_DATA,
                           detail=f"candle refused: {row.detail}"))

    def _record(self, event: Event) -> None:
        if self.events is None:
            return
        try:
            self.events.tell(event)
        except pykka.ActorDeadError:
            pass

    def _failed(self, key: str, text: str, reason: Reason, symbol: str | None = None) -> None:
        """Warn and record an event on the first failure of a streak (not at every tick)."""
        if key in self._failing:
            return
        self._failing.add(key)
        logger.warning("market data: {}", text)
        self._record(Event(kind=EventKind.SYSTEM, symbol=symbol, reason=reason, detail=f"market data: {text}"))

    def _recovered(self, key: str, text: str) -> None:
        if key in self._failing:
            self._failing.discard(key)
            logger.info("market data: {}", text)

    def _deliver(self, symbol: str, fetch: Any) -> None:
        try:
            candles = fetch(symbol)
        except Exception as exc:  # noqa: BLE001 - bad input never stops the feed
            unreadable = isinstance(exc, (BadMarketData, ValueError, TypeError, KeyError, IndexError,
                                          ccxt.BadResponse, ccxt.NullResponse))
            reason = BAD_DATA if unreadable else Reason.EXCHANGE_UNAVAILABLE
            what = "unreadable" if unreadable else "unavailable"
            self._failed(symbol, f"candles for {symbol} {what}: {type(exc).__name__}: {str(exc)[:300]}", reason,
                         symbol)
            return
        self._recovered(symbol, f"candles for {symbol} available again")
        if candles is not None and candles.candles:
            try:
                self.target.tell(candles)
            except pykka.ActorDeadError:
                pass
