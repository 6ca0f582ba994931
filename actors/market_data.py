"""The market-data actor: public candles on its own client; each tick, every newly closed candle."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pykka
from loguru import logger

from actors.timers import ActorTimers
from messages import Candle, Candles, Ping, Tick, now_ms, timeframe_ms
from messages._base import Message


class SendHistory(Message):
    """Ask the market-data actor to send a symbol's recent closed candles again (after a restart)."""

    symbol: str


class CandleFeed:
    """Fetches OHLCV and hands out each closed candle once. The newest candle returned is still forming.

    `clock` is the exchange's time in epoch ms (the simulator's own clock in paper mode, which may run
    faster than the wall clock); the request window is computed from it, not from ccxt's local clock.
    """

    def __init__(
        self,
        exchange: Any,
        symbols: list[str],
        timeframe: str,
        history: int,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.exchange = exchange
        self.clock = clock
        self.symbols = symbols
        self.timeframe = timeframe
        self.tf_ms = timeframe_ms(timeframe)
        self.history_length = history
        self.last_closed: dict[str, int] = {}

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
        to_s = (self.clock() + self.tf_ms) // 1000  # a little ahead: the exchange answers up to its own now
        rows = self.exchange.fetch_ohlcv(symbol, self.timeframe, since, None, {"to": to_s})
        if not isinstance(rows, list):
            raise ValueError(f"unreadable OHLCV for {symbol}: {str(rows)[:200]}")
        candles = [self._candle(symbol, row) for row in rows]
        candles.sort(key=lambda c: c.open_time)
        return candles[:-1]  # the newest is still forming

    def _candle(self, symbol: str, row: Any) -> Candle:
        if not isinstance(row, (list, tuple)) or len(row) < 5 or any(v is None for v in row[:5]):
            raise ValueError(f"unreadable OHLCV row for {symbol}: {str(row)[:200]}")
        return Candle(
            symbol=symbol,
            timeframe=self.timeframe,
            open_time=int(row[0]),
            open=Decimal(str(row[1])),
            high=Decimal(str(row[2])),
            low=Decimal(str(row[3])),
            close=Decimal(str(row[4])),
            volume=Decimal(str(row[5])) if len(row) > 5 and row[5] is not None else Decimal(0),
        )


class MarketDataActor(pykka.ThreadingActor):
    """Polls candles every tick and tells them to the portfolio, which routes them to symbol actors."""

    def __init__(self, feed: CandleFeed, target: pykka.ActorRef[Any], tick_interval_s: float) -> None:
        super().__init__()
        self.feed = feed
        self.target = target
        self.tick_interval_s = tick_interval_s
        self.timers: ActorTimers | None = None
        self._failing: set[str] = set()

    def on_start(self) -> None:
        self.timers = ActorTimers("market-data")
        self.timers.every(self.tick_interval_s, self.actor_ref, Tick(name="candles"), first_in=0)

    def on_stop(self) -> None:
        if self.timers:
            self.timers.stop()

    def on_receive(self, message: Any) -> Any:
        match message:
            case Tick():
                try:
                    self.feed.refresh_clock()
                except Exception as exc:
                    self._warn_once("clock", f"exchange time unavailable: {type(exc).__name__}: {exc}")
                    return None
                self._failing.discard("clock")
                for symbol in self.feed.symbols:
                    self._deliver(symbol, self.feed.poll)
            case Ping():
                return True
            case SendHistory():
                self._deliver(message.symbol, self.feed.history)
            case _:
                logger.error("market data: unexpected message {}", type(message).__name__)
        return None

    def _warn_once(self, key: str, text: str) -> None:
        if key not in self._failing:
            logger.warning("market data: {}", text)
            self._failing.add(key)

    def _deliver(self, symbol: str, fetch: Any) -> None:
        try:
            candles = fetch(symbol)
        except Exception as exc:
            self._warn_once(symbol, f"candles for {symbol} unavailable: {type(exc).__name__}: {exc}")
            return
        if symbol in self._failing:
            self._failing.discard(symbol)
            logger.info("market data: candles for {} available again", symbol)
        if candles is not None and candles.candles:
            try:
                self.target.tell(candles)
            except pykka.ActorDeadError:
                pass
