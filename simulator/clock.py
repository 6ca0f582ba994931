"""Simulation clocks: real time, accelerated real time, or stepped by hand."""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod


def wall_ms() -> int:
    """Current wall-clock time in epoch milliseconds."""
    return time.time_ns() // 1_000_000


class Clock(ABC):
    """A source of simulated epoch milliseconds."""

    @abstractmethod
    def now_ms(self) -> int:
        """Current simulated time in epoch milliseconds."""

    @property
    def stepped(self) -> bool:
        """True if time only moves when `advance` is called."""
        return False

    def advance(self, ms: int) -> int:
        """Move a stepped clock forward; real clocks refuse."""
        raise RuntimeError("only a stepped clock can be advanced")


class RealClock(Clock):
    """Real time from `start_ms`, running `speed` times faster than the wall clock."""

    def __init__(self, start_ms: int | None = None, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._start_ms = wall_ms() if start_ms is None else start_ms
        self._mono0 = time.monotonic_ns()
        self._speed = speed

    @property
    def speed(self) -> float:
        """How many simulated seconds pass per wall-clock second."""
        return self._speed

    def now_ms(self) -> int:
        """Start time plus accelerated elapsed monotonic time."""
        elapsed_ms = (time.monotonic_ns() - self._mono0) / 1_000_000
        return self._start_ms + int(elapsed_ms * self._speed)


class SteppedClock(Clock):
    """A clock that stands still until a test advances it."""

    def __init__(self, start_ms: int | None = None) -> None:
        self._now = wall_ms() if start_ms is None else start_ms
        self._lock = threading.Lock()

    @property
    def stepped(self) -> bool:
        """Always True."""
        return True

    def now_ms(self) -> int:
        """The current stepped time."""
        with self._lock:
            return self._now

    def advance(self, ms: int) -> int:
        """Move time forward by `ms` (>= 0) and return the new time."""
        if ms < 0:
            raise ValueError("time cannot go backwards")
        with self._lock:
            self._now += int(ms)
            return self._now
