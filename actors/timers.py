"""Timers for actors: pykka has none, so one small thread per owner tells messages when they are due."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pykka
from loguru import logger


@dataclass(order=True)
class _Entry:
    due: float
    order: int
    interval: float | None = field(compare=False)
    target: pykka.ActorRef[Any] = field(compare=False)
    message: Any = field(compare=False)
    cancelled: bool = field(default=False, compare=False)


class ActorTimers:
    """Tells messages to actors every N seconds or once after a delay, from one background thread."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._heap: list[_Entry] = []
        self._counter = itertools.count()
        self._wake = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=f"timers-{name}", daemon=True)
        self._thread.start()

    def every(self, interval: float, target: pykka.ActorRef[Any], message: Any,
              first_in: float | None = None) -> _Entry:
        """Tell `message` to `target` every `interval` seconds (first after `first_in`, default `interval`)."""
        if interval <= 0:
            raise ValueError(f"interval must be > 0, got {interval}")
        delay = interval if first_in is None else first_in
        return self._push(time.monotonic() + delay, interval, target, message)

    def after(self, delay: float, target: pykka.ActorRef[Any], message: Any) -> _Entry:
        """Tell `message` to `target` once, `delay` seconds from now."""
        return self._push(time.monotonic() + max(0.0, delay), None, target, message)

    def stop(self) -> None:
        """Stop the timer thread and wait for it."""
        with self._wake:
            self._stopped = True
            self._wake.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)

    def _push(self, due: float, interval: float | None, target: pykka.ActorRef[Any], message: Any) -> _Entry:
        entry = _Entry(due, next(self._counter), interval, target, message)
        with self._wake:
            heapq.heappush(self._heap, entry)
            self._wake.notify()
        return entry

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stopped and (not self._heap or self._heap[0].due > time.monotonic()):
                    timeout = self._heap[0].due - time.monotonic() if self._heap else None
                    self._wake.wait(timeout)
                if self._stopped:
                    return
                entry = heapq.heappop(self._heap)
                if entry.cancelled:
                    continue
                if entry.interval is not None:
                    entry.due = max(entry.due + entry.interval, time.monotonic())
                    entry.order = next(self._counter)
                    heapq.heappush(self._heap, entry)
            try:
                entry.target.tell(entry.message)
            except pykka.ActorDeadError:
                entry.cancelled = True
            except Exception:  # never let a timer thread die silently
                logger.exception("timer {} could not deliver {!r}", self._name, entry.message)
