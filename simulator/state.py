"""The paper account's state file: loaded on start, saved atomically as JSON (periodically, after order requests,
on stop).

File format (version 2; version 1 files are still read), one JSON object:

- `format` ("kraken-futures-simulator-state"), `version` (1), `saved_at` (wall clock, ISO-8601, for people);
- `config`: the settings the state was made with (seed, tick, markets, ...; never API keys), informational;
- `clock`: `{"now": ms}`, the simulated time a restart continues from;
- `account`: uid/id, initial balance, balance, fees, funding paid and the last funding hour, id counter,
  dead man's switch, the client-order-id index
  (`cli_ids`: id -> the ids of every order that carried it, oldest first; version 1 held one id), the books
  (`working`: symbol -> order ids in matching order), `positions`;
- `market`: `now`, `last_tick_ms` and per market `walk` (fair price, mark premium, tick time, genesis) and
  `bars` (the last `state_bar_minutes` minute bars as `[t, o, h, l, c, mark o/h/l/c, spot o/h/l/c, volume]`);
- `orders` (every order ever received, in arrival order, partially filled working ones with their `filled`), `fills`,
  `order_history` and `trigger_history` (every event, including those still inside the publication lag: the lag
  is applied when the history is read), `order_requests` (the admin record of every order instruction),
  `account_log` (every account-log entry, exact decimals; absent in older files: an empty log).

Decimals are exact strings; floats round-trip through JSON. Closed orders, fills, history events and finished
bars never change, so each is encoded once and its text reused by later saves.

Not kept (they start afresh from the configuration): API keys, faults and suspended markets, rate-limit
budgets, the HTTP request log, requests held by a `late` fault (lost, as if never received) and the liquidity
taken from the book this tick (the book refills every tick anyway). After a reload the price walks continue
from the saved prices with random streams seeded from the seed and the saved tick time (same seed + same
file = same future), and candles older than the kept bars are regenerated. `PATH.lock` (an advisory lock)
keeps a second simulator off a file in use.
Admin `reset` overwrites the file with the fresh account at once; to start afresh while stopped, delete the file.
An unreadable, corrupt or other-version file is an error at start (StateFileError naming the file) and is left
untouched.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from loguru import logger

from simulator.account_log import AccountLog, LogEntry
from simulator.clock import wall_ms
from simulator.engine import Exchange, HistoryEvent
from simulator.orders import Fill, Order, iso
from simulator.prices import MINUTE_MS

STATE_FORMAT = "kraken-futures-simulator-state"
STATE_VERSION = 2
READABLE_VERSIONS = (1, 2)
STATE_CHANGING_ENDPOINTS = frozenset(
    {"sendorder", "batchorder", "editorder", "cancelorder", "cancelallorders", "cancelallordersafter"}
)
SLOW_SAVE_S = 0.25


class StateFileError(RuntimeError):
    """A state file that cannot be read, understood or written; the message names the file."""


def _dumps(value: object) -> str:
    """Compact JSON text of one value (anything unexpected as a string, as the API answers it)."""
    return json.dumps(value, separators=(",", ":"), default=str)


def _encode(value: object) -> bytes:
    """Compact JSON of one value as UTF-8 bytes."""
    return _dumps(value).encode()


def _order_key(order: Order) -> tuple[object, ...]:
    """The fields that change while an order works; equal keys mean an unchanged order."""
    return (order.state, order.status, order.filled, order.size, order.limit_price, order.stop_price,
            order.last_update_ms, order.triggered_ms, order.closed_ms, order.reason)


def read_state(path: Path) -> dict[str, Any] | None:
    """The saved state, or None if the file does not exist; StateFileError if unreadable, corrupt or incompatible."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateFileError(f"cannot read simulator state file {path}: {exc}") from exc
    try:
        data = json.loads(raw)
    except ValueError as exc:  # includes UnicodeDecodeError and JSONDecodeError
        raise StateFileError(
            f"simulator state file {path} is corrupt (not valid JSON: {exc}); fix or move it away to start afresh"
        ) from exc
    if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
        raise StateFileError(f"{path} is not a simulator state file (no format {STATE_FORMAT!r})")
    version = data.get("version")
    if version not in READABLE_VERSIONS:
        raise StateFileError(
            f"simulator state file {path} has version {version!r}; this simulator reads version {STATE_VERSION}"
        )
    return data


def apply_state(path: Path, data: Mapping[str, Any], exchange: Exchange) -> None:
    """Load a read state file into a freshly built exchange (and its market); StateFileError if it does not fit."""
    try:
        market_state = data["market"]
        exchange.market.restore_state(int(market_state["now"]), int(market_state["last_tick_ms"]),
                                      dict(market_state["paths"]))
        exchange.restore_state(
            data["account"],
            [Order.from_state(o) for o in data["orders"]],
            [Fill.from_state(f) for f in data["fills"]],
            [HistoryEvent.from_state(e) for e in data["order_history"]],
            [HistoryEvent.from_state(e) for e in data["trigger_history"]],
            [dict(r) for r in data.get("order_requests", [])],
            AccountLog([LogEntry.from_state(e) for e in data.get("account_log", [])]),
        )
    except (KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
        detail = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
        raise StateFileError(f"simulator state file {path} cannot be loaded: {detail}") from exc


class StateEncoder:
    """Builds the state file text, reusing the encoded text of entries that can no longer change."""

    def __init__(self, keep_minutes: int) -> None:
        self.keep_minutes = keep_minutes
        self._exchange: Exchange | None = None
        self._orders: dict[str, tuple[tuple[object, ...] | None, bytes]] = {}
        self._fills: list[bytes] = []
        self._order_history: list[bytes] = []
        self._trigger_history: list[bytes] = []
        self._order_requests: list[bytes] = []
        self._account_log: list[bytes] = []
        self._bars: dict[str, dict[int, bytes]] = {}
        self._bar_floor: dict[str, int] = {}

    def _bind(self, exchange: Exchange) -> None:
        """Drop every cache when the exchange was rebuilt (start, reset)."""
        if exchange is not self._exchange:
            self._exchange = exchange
            self._orders.clear()
            self._fills.clear()
            self._order_history.clear()
            self._trigger_history.clear()
            self._order_requests.clear()
            self._account_log.clear()
            self._bars.clear()
            self._bar_floor.clear()

    @staticmethod
    def _extend(cache: list[bytes], items: list[Any]) -> list[bytes]:
        """Encode the entries of an append-only list that are not cached yet."""
        if len(cache) > len(items):
            cache.clear()
        cache.extend(_encode(item.to_state()) for item in items[len(cache):])
        return cache

    @staticmethod
    def _extend_plain(cache: list[bytes], items: list[dict[str, object]]) -> list[bytes]:
        """Encode the plain (already JSON-able) entries of an append-only list that are not cached yet."""
        if len(cache) > len(items):
            cache.clear()
        cache.extend(_encode(item) for item in items[len(cache):])
        return cache

    def _encode_orders(self, exchange: Exchange) -> list[bytes]:
        """Every order; closed ones (which never change) and unchanged working ones from the cache."""
        out = []
        cache = self._orders
        for order in exchange.orders.values():
            entry = cache.get(order.order_id)
            if entry is not None and entry[0] is None:
                out.append(entry[1])
                continue
            key = _order_key(order) if order.working else None
            if entry is None or entry[0] != key:
                entry = cache[order.order_id] = (key, _encode(order.to_state()))
            out.append(entry[1])
        return out

    def _path_bars(self, symbol: str, exchange: Exchange) -> list[bytes]:
        """One market's kept minute bars; finished ones from the cache."""
        path = exchange.market.paths[symbol]
        minutes = path.state_minutes(self.keep_minutes)
        cache = self._bars.setdefault(symbol, {})
        floor = self._bar_floor.get(symbol, minutes.start)
        if minutes.start > floor:  # forget bars that fell out of the window
            if (minutes.start - floor) // MINUTE_MS > len(cache):
                self._bars[symbol] = cache = {m: t for m, t in cache.items() if m >= minutes.start}
            else:
                for minute in range(floor, minutes.start, MINUTE_MS):
                    cache.pop(minute, None)
        self._bar_floor[symbol] = minutes.start
        final_before = path.final_before_ms
        rows = []
        for minute in minutes:
            text = cache.get(minute)
            if text is None:
                bar = path.bars.get(minute)
                if bar is None:
                    continue
                text = _encode(bar.to_state())
                if minute < final_before:
                    cache[minute] = text
            rows.append(text)
        return rows

    def encode(self, exchange: Exchange, now_ms: int, config: Mapping[str, object]) -> list[bytes]:
        """The file's bytes in pieces; call with the exchange lock held, the market synced to `now_ms`."""
        self._bind(exchange)
        market = exchange.market
        head = (
            f'{{"format":{_dumps(STATE_FORMAT)},"version":{STATE_VERSION},"saved_at":{_dumps(iso(wall_ms()))},\n'
            f'"config":{_dumps(dict(config))},\n'
            f'"clock":{_dumps({"now": now_ms})},\n'
            f'"account":{_dumps(exchange.account_state())},\n'
            f'"market":{{"now":{market.now_ms},"last_tick_ms":{market.last_tick_ms},"paths":{{'
        )
        parts = [head.encode()]
        for i, (symbol, path) in enumerate(market.paths.items()):
            walk = f'{"," if i else ""}\n{_dumps(symbol)}:{{"walk":{_dumps(path.state_header())},"bars":[\n'
            parts.append(walk.encode())
            parts.append(b",\n".join(self._path_bars(symbol, exchange)))
            parts.append(b"]}")
        parts.append(b"}},\n")
        sections = (
            (b"orders", self._encode_orders(exchange)),
            (b"fills", self._extend(self._fills, exchange.fills)),
            (b"order_history", self._extend(self._order_history, exchange.order_history)),
            (b"trigger_history", self._extend(self._trigger_history, exchange.trigger_history)),
            (b"order_requests", self._extend_plain(self._order_requests, exchange.order_requests)),
            (b"account_log", self._extend(self._account_log, exchange.account_log.entries)),
        )
        for i, (name, entries) in enumerate(sections):
            parts.append((b",\n" if i else b"") + b'"' + name + b'":[\n')
            parts.append(b",\n".join(entries))
            parts.append(b"]")
        parts.append(b"}\n")
        return parts


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data`: temp file in the same folder, fsync, rename, fsync the folder."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


class StateStore:
    """One simulator's state file: loading, saving when something changed, and the background saver thread.

    Saves happen on `close()`, every `interval_s` while anything changed (the clock included), and from
    `after_change()` (state-changing order requests) before the request is answered, unless another
    request saved less than `gap_s` ago: then the saver thread saves once that gap has passed.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        source: Callable[[], Exchange],
        config: Mapping[str, object],
        interval_s: float = 2.0,
        gap_s: float = 0.5,
        keep_minutes: int = 1440,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self.interval_s = interval_s
        self.gap_s = gap_s
        self.lock = threading.RLock()  # held while saving; hold it to rebuild the exchange without a save between
        self.saves = 0
        self.last_save_s = 0.0
        self.last_size = 0
        self._source = source
        self._config = dict(config)
        self._encoder = StateEncoder(keep_minutes)
        self._monotonic = monotonic
        self._cond = threading.Condition()
        self._saved: tuple[int, int, int] | None = None
        self._last_request_save = -float("inf")
        self._pending_due: float | None = None
        self._stopping = False
        self._closed = False
        self._failing = False
        self._thread: threading.Thread | None = None
        self._lock_fd: int | None = None

    # -- loading ------------------------------------------------------------------------
    def open(self) -> dict[str, Any] | None:
        """Claim the file for this simulator (`PATH.lock`) and read it; None if there is no file yet.

        StateFileError if another simulator uses the file, or it cannot be read or used.
        """
        self._claim()
        try:
            return self.load()
        except BaseException:
            self._release()
            raise

    def load(self) -> dict[str, Any] | None:
        """The saved state, None if there is no file yet; StateFileError if it cannot be used."""
        return read_state(self.path)

    def _claim(self) -> None:
        """Hold an exclusive advisory lock on `PATH.lock` so two simulators never share one account."""
        if sys.platform == "win32" or self._lock_fd is not None:
            return
        import fcntl

        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StateFileError(f"cannot use simulator state file {self.path}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise StateFileError(f"simulator state file {self.path} is in use by another simulator") from exc
        self._lock_fd = fd

    def _release(self) -> None:
        """Give up the advisory lock."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = None

    # -- saving -------------------------------------------------------------------------
    def save(self, force: bool = False) -> bool:
        """Write the state if it changed since the last save (always with `force`); StateFileError on failure."""
        with self.lock:
            if self._closed:
                return False
            exchange = self._source()
            with exchange.lock:
                now = exchange.sync()
                signature = (id(exchange), exchange.revision, now)
                if not force and signature == self._saved:
                    return False
                started = time.perf_counter()
                parts = self._encoder.encode(exchange, now, self._config)
            data = b"".join(parts)
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                write_atomically(self.path, data)
            except OSError as exc:
                raise StateFileError(f"cannot write simulator state file {self.path}: {exc}") from exc
            elapsed = time.perf_counter() - started
            self._saved = signature
            with self._cond:
                self.saves += 1
                self._cond.notify_all()
            self.last_save_s = elapsed
            self.last_size = len(data)
            if elapsed > SLOW_SAVE_S:
                logger.warning("simulator: saving {} took {:.0f} ms ({} bytes)", self.path, elapsed * 1000, len(data))
            else:
                logger.trace("simulator: saved {} in {:.1f} ms ({} bytes)", self.path, elapsed * 1000, len(data))
            return True

    def _save_logged(self) -> None:
        """Save, logging (not raising) a failure; used where nobody could handle the error."""
        try:
            self.save()
        except StateFileError as exc:
            if not self._failing:
                logger.error("simulator: {} (will retry)", exc)
            self._failing = True
            return
        except Exception:  # noqa: BLE001 - the saver must survive
            logger.exception("simulator: saving {} failed", self.path)
            return
        if self._failing:
            logger.info("simulator: saving {} works again", self.path)
            self._failing = False

    def after_change(self) -> None:
        """A state-changing request was served: save now, or within `gap_s` if a request saved recently."""
        now = self._monotonic()
        with self._cond:
            due = self._last_request_save + self.gap_s
            if now < due:
                if self._pending_due is None:
                    self._pending_due = due
                    self._cond.notify()
                return
            self._last_request_save = now
        self._save_logged()

    # -- background saver ---------------------------------------------------------------------
    def start(self) -> None:
        """Start the saver thread (periodic and deferred saves)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="kraken-simulator-state", daemon=True)
            self._thread.start()

    def _next_due(self, now: float, next_periodic: float) -> tuple[bool, float]:
        """Whether a save is due at `now`, and the periodic deadline after it; call with the condition held."""
        due = False
        if self._pending_due is not None and now >= self._pending_due:
            self._pending_due = None
            self._last_request_save = now
            due = True
        if now >= next_periodic:
            next_periodic = now + self.interval_s
            due = True
        return due, next_periodic

    def _run(self) -> None:
        """Save when a deferred or periodic save is due, until `close()`."""
        next_periodic = self._monotonic() + self.interval_s
        while True:
            with self._cond:
                if self._stopping:
                    return
                now = self._monotonic()
                due, next_periodic = self._next_due(now, next_periodic)
                if not due:
                    deadline = next_periodic if self._pending_due is None else min(next_periodic, self._pending_due)
                    self._cond.wait(max(deadline - now, 0.001))
                    continue
            self._save_logged()

    def wait_for_saves(self, count: int, timeout_s: float) -> bool:
        """Block until `count` saves happened in all (False after `timeout_s`); for tests and tools."""
        with self._cond:
            return self._cond.wait_for(lambda: self.saves >= count, timeout_s)

    def close(self, save: bool = True) -> None:
        """Stop the saver thread, save a last time (unless `save` is False), refuse later saves (idempotent)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._closed:
            return
        if save:
            self._save_logged()
        with self.lock:
            self._closed = True
        self._release()
