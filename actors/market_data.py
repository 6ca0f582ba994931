"""The market-data actor: public candles on its own clients; at each candle close, every closed candle at once.

A candle close is one step: the actor fetches only when a candle can have closed on the exchange's clock (plus a
short publication delay), fetches every symbol concurrently (a bounded pool, one ccxt client per worker thread),
tells each symbol's Candles the moment its answer is parsed, and never starts a check while the last one runs.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import ccxt
import pykka
import requests
from loguru import logger

from actors.timers import ActorTimers
from messages import (
    Candle,
    Candles,
    ConnectMarketData,
    Event,
    EventKind,
    GetMarketDataStats,
    Ping,
    Reason,
    SendHistory,
    Tick,
    now_ms,
    timeframe_ms,
)
from messages.market import candle_problem

if TYPE_CHECKING:  # for the types of the references only (they import this module)
    from actors.persistence import PersistenceActor
    from actors.portfolio import PortfolioActor

# The actor's own timer sends CLOSE_TICK: fetch only what a candle close on the exchange clock made due.
# POLL_TICK (the old meaning of a "candles" tick; tests and operators) polls every symbol now.
CLOSE_TICK = "candle-close"
POLL_TICK = "candles"

# Kraken documents no cost and no budget for public endpoints ("Public endpoints have no cost and are therefore
# not included in any rate-limit budget"; docs.kraken.com/api/docs/guides/futures-rate-limits), and nothing for
# the charts API; an undocumented per-IP limit (Cloudflare) may still apply. So the bound is a conservative
# choice, not a documented one: at most 10 chart requests in flight, i.e. 100 symbols in ~10 round trips.
DEFAULT_CONCURRENCY = 10


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


def clone_client(exchange: Any) -> Any:
    """A ccxt client for one worker thread: the same settings and markets, its own HTTP session.

    ccxt's sync clients are not safe to share between threads (each request clears and uses the one
    `requests.Session` and writes `last_http_response` and friends), so every worker gets a shallow copy with
    its own session; ccxt's request building, error mapping and parsing stay in the path. Anything that is not
    a ccxt client (a test fake) is shared as it is.
    """
    if not isinstance(exchange, ccxt.Exchange):
        return exchange
    clone = copy.copy(exchange)
    session = requests.Session()
    session.trust_env = getattr(exchange, "requests_trust_env", session.trust_env)
    clone.session = session
    clone.last_http_response = clone.last_json_response = clone.last_response_headers = None
    clone.last_request_headers = clone.last_request_body = clone.last_request_url = None
    return clone


class CandleFeed:
    """Fetches OHLCV and hands out each closed candle once. The newest candle returned is still forming.

    `clock` is the exchange's time in epoch ms (the simulator's own clock in paper mode, which may run
    faster than the wall clock); the request window is computed from it, not from ccxt's local clock.
    Rows that are not sane candles (see `parse_candle`), not increasing in time, or from the future are
    dropped and handed to `refused` (once per symbol, time and reason); the good rows carry on.
    `fetch_each` runs one fetch per symbol on up to `concurrency` threads, each with its own client
    (`clone_client`); a symbol is never fetched by two threads at once.
    """

    def __init__(
        self,
        exchange: Any,
        symbols: list[str],
        timeframe: str,
        history: int,
        clock: Callable[[], int] = now_ms,
        refused: Callable[[RefusedRow], None] | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        client_factory: Callable[[Any], Any] = clone_client,
    ) -> None:
        self.exchange = exchange
        self.clock = clock
        self.symbols = symbols
        self.timeframe = timeframe
        self.tf_ms = timeframe_ms(timeframe)
        self.history_length = history
        self.last_closed: dict[str, int] = {}
        self.refused = refused
        self.concurrency = max(1, int(concurrency))
        self._client_factory = client_factory
        self._reported: dict[str, set[tuple[int | None, str]]] = {}
        self._local = threading.local()
        self._lock = threading.Lock()
        self._clients: list[Any] = []
        self._pool: ThreadPoolExecutor | None = None
        self._requests = 0

    @property
    def requests(self) -> int:
        """OHLCV requests made so far (every thread)."""
        return self._requests

    def refresh_clock(self) -> None:
        """Read the exchange's time (when the clock can): the cheap check before deciding whether to fetch."""
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

    def fetch_each(
        self, symbols: Sequence[str], fetch: Callable[[str], Candles | None] | None = None
    ) -> Iterator[tuple[str, Candles | None | Exception]]:
        """Run `fetch` (default: `poll`) for every symbol, at most `concurrency` at a time; yield each outcome
        (the Candles, None, or the exception it raised) as soon as it is there, in the order they finish."""
        fetch = fetch or self.poll
        unique = list(dict.fromkeys(symbols))
        if len(unique) <= 1 or self.concurrency == 1:
            for symbol in unique:
                yield symbol, self._attempt(fetch, symbol)
            return
        pool = self._executor()
        waiting = iter(unique)
        running: dict[Future[Candles | None | Exception], str] = {}
        for symbol in waiting:  # never more queued than running: a closed pool or a stop leaves nothing behind
            running[pool.submit(self._attempt, fetch, symbol)] = symbol
            if len(running) >= self.concurrency:
                break
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                symbol = running.pop(future)
                following = next(waiting, None)
                if following is not None:
                    running[pool.submit(self._attempt, fetch, following)] = following
                yield symbol, future.result()

    def close(self) -> None:
        """Stop the worker threads and close their clients' sessions."""
        with self._lock:
            pool, self._pool = self._pool, None
            clients, self._clients = self._clients, []
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        for client in clients:
            if client is not self.exchange and isinstance(client, ccxt.Exchange):
                try:
                    client.close()
                except Exception:  # noqa: BLE001 - closing a session must not fail a stop
                    pass

    def _attempt(self, fetch: Callable[[str], Candles | None], symbol: str) -> Candles | None | Exception:
        try:
            return fetch(symbol)
        except Exception as exc:  # noqa: BLE001 - handed to the caller, which reports it
            return exc

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="market-data-fetch")
            return self._pool

    def _client(self) -> Any:
        """This thread's client (made on first use)."""
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._client_factory(self.exchange)
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def _closed(self, symbol: str, since: int) -> list[Candle]:
        now = self.clock()
        to_s = (now + self.tf_ms) // 1000  # a little ahead: the exchange answers up to its own now
        client = self._client()
        with self._lock:
            self._requests += 1
        rows = client.fetch_ohlcv(symbol, self.timeframe, since, None, {"to": to_s})
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


@dataclass(frozen=True)
class CloseSettings:
    """When to fetch after a candle close, and how to retry one the exchange has not published yet.

    Times are exchange milliseconds (a paper simulator's clock may run faster than the wall clock).
    """

    publication_delay_ms: int = 1_000  # fetch this long after the close: the exchange publishes the candle
    retry_initial_ms: int = 500  # a closed candle not there yet: ask again after this, doubling each time
    retry_max: int = 5  # ... at most this often per close (0.5+1+2+4+8 s), then wait for the next close
    failure_backoff_max_ms: int = 30_000  # an unreachable exchange: retried with back-off up to this, unbounded


@dataclass
class _Pending:
    target: int  # the open time of the candle this symbol still waits for
    attempts: int = 0
    at: int | None = None  # exchange ms of the next attempt; None: given up until the next close


class CloseSchedule:
    """Which symbols need a fetch at an exchange time, and when the next one is due (plain logic, no threads)."""

    def __init__(self, tf_ms: int, settings: CloseSettings | None = None) -> None:
        self.tf_ms = tf_ms
        self.settings = settings or CloseSettings()
        self._pending: dict[str, _Pending] = {}

    def newest_closed(self, now_ms: int) -> int:
        """Open time of the newest candle that has closed (and been published) at `now_ms`."""
        published = now_ms - self.settings.publication_delay_ms
        return (published // self.tf_ms) * self.tf_ms - self.tf_ms

    def next_close(self, now_ms: int) -> int:
        """Exchange time of the first fetch after the next close (the close plus the publication delay)."""
        published = now_ms - self.settings.publication_delay_ms
        return (published // self.tf_ms + 1) * self.tf_ms + self.settings.publication_delay_ms

    def due(self, symbols: Sequence[str], have: Mapping[str, int], now_ms: int) -> list[str]:
        """The symbols to fetch now: missing the newest closed candle and not waiting out a back-off."""
        target = self.newest_closed(now_ms)
        due: list[str] = []
        for symbol in symbols:
            last = have.get(symbol)
            if last is not None and last >= target:
                self._pending.pop(symbol, None)
                continue
            pending = self._pending.get(symbol)
            if pending is None or pending.target != target or (pending.at is not None and pending.at <= now_ms):
                due.append(symbol)
        return due

    def record(self, symbol: str, target: int, last: int | None, failed: bool, now_ms: int) -> str | None:
        """Note one fetch for the close whose newest candle is `target`; say why it is retried (or None)."""
        if not failed and last is not None and last >= target:
            self._pending.pop(symbol, None)
            return None
        pending = self._pending.get(symbol)
        if pending is None or pending.target != target:
            pending = self._pending[symbol] = _Pending(target)
        pending.attempts += 1
        backoff = self.settings.retry_initial_ms * 2 ** min(pending.attempts - 1, 20)
        if failed or last is None:  # no answer, or no candle at all yet: keep trying, capped
            pending.at = now_ms + min(backoff, self.settings.failure_backoff_max_ms)
            return "failed"
        if pending.attempts <= self.settings.retry_max:
            pending.at = now_ms + backoff
            return "not published yet"
        pending.at = None
        return "given up until the next close"

    def wake_at(self, now_ms: int) -> int:
        """Exchange time of the next check: the next close, or an earlier retry."""
        wake = self.next_close(now_ms)
        target = self.newest_closed(now_ms)
        for pending in self._pending.values():
            if pending.at is not None and pending.target == target:
                wake = min(wake, pending.at)
        return wake

    def waiting(self) -> int:
        """Symbols with a retry scheduled."""
        return sum(1 for p in self._pending.values() if p.at is not None)


@dataclass(frozen=True)
class MarketDataStats:
    """What the market-data actor did: checks, fetch rounds, skipped ticks, the last round's timing."""

    checks: int  # close checks handled (each: one exchange-clock read)
    skipped_ticks: int  # timer ticks dropped because a check was still queued or running
    rounds: int  # fetch rounds (each: one concurrent fetch of the symbols due)
    ohlcv_requests: int
    last_round_symbols: int
    last_round_s: float | None  # from the round's start to its last outcome (local seconds)
    last_close_lag_ms: int | None  # exchange time from the candle close to the round's last Candles told
    retries_waiting: int


@dataclass
class _TickGate:
    """Tells the timer's ticks to the actor only while none is queued or running: the mailbox never grows."""

    actor: pykka.ActorRef[Any]
    busy: threading.Event = field(default_factory=threading.Event)
    skipped: int = 0

    def tell(self, message: Any) -> None:
        if self.busy.is_set():
            self.skipped += 1
            logger.debug("market data: tick skipped, the last check is still running ({} skipped)", self.skipped)
            return
        self.busy.set()
        try:
            self.actor.tell(message)
        except BaseException:
            self.busy.clear()
            raise


class MarketDataActor(pykka.ThreadingActor):
    """Fetches candles when a candle can have closed and tells them to the portfolio, which routes them on.

    Every `tick_interval_s` (and at the exact moment a close is due) a check reads the exchange's clock (one
    public tickers request) and fetches only the symbols whose newest closed candle is missing: between
    closes no OHLCV request is made. A round fetches its symbols concurrently (`CandleFeed.fetch_each`) and
    then tells every symbol's Candles together: the burst of one close reaches the symbols, the claims and the
    gateway at once (one commit, one open-order check, one batchorder per `batch_max`). A tick that comes while
    a check is queued or running is skipped (counted), so a slow exchange never grows the mailbox. Bad market
    data never stops it: refused rows and unreadable answers are logged and told to `events` (the persistence
    actor) as events; the good rows carry on.
    """

    def __init__(self, feed: CandleFeed, target: pykka.ActorRef[PortfolioActor], tick_interval_s: float,
                 events: pykka.ActorRef[PersistenceActor] | None = None,
                 settings: CloseSettings | None = None) -> None:
        super().__init__()
        self.feed = feed
        self.target = target
        self.events = events
        self.tick_interval_s = tick_interval_s
        self.schedule = CloseSchedule(feed.tf_ms, settings)
        self.timers: ActorTimers | None = None
        self._gate = _TickGate(self.actor_ref)
        self._wakeup: Any = None
        self._failing: set[str] = set()
        self._checks = 0
        self._rounds = 0
        self._last_round: tuple[int, float | None, int | None] = (0, None, None)
        if feed.refused is None:
            feed.refused = self._refused

    def on_start(self) -> None:
        # it owns this relation: the portfolio learns where a restarted symbol's history comes from before any close
        self.target.tell(ConnectMarketData(market_data=self.actor_ref))
        self.timers = ActorTimers("market-data")
        self.timers.every(self.tick_interval_s, self._gate, Tick(name=CLOSE_TICK), first_in=0)  # type: ignore[arg-type]

    def on_stop(self) -> None:
        if self.timers:
            self.timers.stop()
        self.feed.close()

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        """Report the death to the wiring: a core actor never dies silently."""
        if self.timers:
            self.timers.stop()
        self.feed.close()
        from actors.system import report_core_failure

        report_core_failure(self, exception_value)

    def on_receive(self, message: Any) -> Any:
        match message:
            case Tick(name=name):
                try:
                    self._check(every_symbol=name != CLOSE_TICK)
                finally:
                    if name == CLOSE_TICK:
                        self._gate.busy.clear()
            case Ping():
                return True
            case SendHistory():
                self._deliver(message.symbol, self.feed.history)
            case GetMarketDataStats():
                return self.stats()
            case _:
                logger.error("market data: unexpected message {}", type(message).__name__)
        return None

    def stats(self) -> MarketDataStats:
        """The counters so far."""
        symbols, seconds, lag = self._last_round
        return MarketDataStats(checks=self._checks, skipped_ticks=self._gate.skipped, rounds=self._rounds,
                               ohlcv_requests=self.feed.requests, last_round_symbols=symbols, last_round_s=seconds,
                               last_close_lag_ms=lag, retries_waiting=self.schedule.waiting())

    # --- one check: the exchange's clock, then the symbols due --------------------------------------

    def _check(self, every_symbol: bool) -> None:
        self._checks += 1
        try:
            self.feed.refresh_clock()
            now = self.feed.clock()
        except Exception as exc:  # noqa: BLE001 - the exchange's clock may fail in any way
            self._failed("clock", f"exchange time unavailable: {type(exc).__name__}: {exc}",
                         Reason.EXCHANGE_UNAVAILABLE)
            return  # the next tick asks again
        self._recovered("clock", "exchange time available again")
        symbols = list(self.feed.symbols) if every_symbol else self.schedule.due(
            self.feed.symbols, self.feed.last_closed, now)
        if symbols:
            now = self._round(symbols, now)
        self._plan(now)

    def _round(self, symbols: list[str], now: int) -> int:
        """Fetch `symbols` concurrently, then hand every symbol's closed candles on at once (one burst: the
        symbols decide together, their claims share a commit and their orders one open-order check and batch);
        return the exchange time after."""
        target = self.schedule.newest_closed(now)
        started = time.monotonic()
        last_told: int | None = None
        retried: dict[str, list[str]] = {}
        fetched: list[Candles] = []
        for symbol, outcome in self.feed.fetch_each(symbols):
            failed = isinstance(outcome, Exception)
            if isinstance(outcome, Exception):
                self._report_fetch_failure(symbol, outcome)
            else:
                self._recovered(symbol, f"candles for {symbol} available again")
                if outcome is not None and outcome.candles:
                    fetched.append(outcome)
            why = self.schedule.record(symbol, target, self.feed.last_closed.get(symbol), failed, self.feed.clock())
            if why is not None and not failed:
                retried.setdefault(why, []).append(symbol)
        for candles in fetched:
            if self._tell(candles):
                last_told = self.feed.clock()
        self._rounds += 1
        lag = None if last_told is None else last_told - (target + self.feed.tf_ms)
        self._last_round = (len(symbols), time.monotonic() - started, lag)
        logger.debug("market data: fetched {} symbols in {:.3f}s (close lag {} ms)", len(symbols),
                     self._last_round[1], lag)
        for why, names in retried.items():
            logger.info("market data: the candle closed at {} is {} for {}", target + self.feed.tf_ms, why,
                        ", ".join(names))
        return self.feed.clock()

    def _plan(self, now: int) -> None:
        """Wake up exactly when the next close (or retry) is due, not only at the next periodic tick."""
        if self.timers is None:
            return
        rate = float(getattr(self.feed.clock, "rate", 1.0) or 1.0)
        delay_s = max(0.0, (self.schedule.wake_at(now) - now) / 1000 / rate) + 0.005
        if self._wakeup is not None:
            self._wakeup.cancelled = True  # one pending wake-up at a time
        self._wakeup = self.timers.after(delay_s, self._gate, Tick(name=CLOSE_TICK))  # type: ignore[arg-type]

    # --- reporting --------------------------------------------------------------------------------

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

    def _report_fetch_failure(self, symbol: str, exc: Exception) -> None:
        unreadable = isinstance(exc, (BadMarketData, ValueError, TypeError, KeyError, IndexError,
                                      ccxt.BadResponse, ccxt.NullResponse))
        reason = BAD_DATA if unreadable else Reason.EXCHANGE_UNAVAILABLE
        what = "unreadable" if unreadable else "unavailable"
        self._failed(symbol, f"candles for {symbol} {what}: {type(exc).__name__}: {str(exc)[:300]}", reason, symbol)

    def _tell(self, candles: Candles) -> bool:
        try:
            self.target.tell(candles)
        except pykka.ActorDeadError:
            return False
        return True

    def _deliver(self, symbol: str, fetch: Callable[[str], Candles | None]) -> None:
        try:
            candles = fetch(symbol)
        except Exception as exc:  # noqa: BLE001 - bad input never stops the feed
            self._report_fetch_failure(symbol, exc)
            return
        self._recovered(symbol, f"candles for {symbol} available again")
        if candles is not None and candles.candles:
            self._tell(candles)
