"""Repeated refusals, collapsed for the console: the same refusal of the same signal kind, candle after candle,
is logged once, then once more with its count when it changes or ends (`BTC/USD:USD EXIT not traded: PAUSED
(×16 in 16 s)`), and while it goes on at most once a minute. The event log still records every one.

A plain class: the symbol trader feeds it its decisions and logs the lines it returns; no threads, no clock of
its own (times are the caller's epoch milliseconds).
"""

from __future__ import annotations

from dataclasses import dataclass

REPORT_EVERY_MS = 60_000  # a refusal that goes on is counted on the console at most this often


@dataclass
class _Streak:
    reason: str
    count: int
    first_ms: int
    last_ms: int
    reported_count: int  # how many the console has been told of
    reported_ms: int


class RefusalLog:
    """One symbol's refusal streaks, one per signal kind: what to log, and what to keep quiet."""

    def __init__(self, symbol: str, report_every_ms: int = REPORT_EVERY_MS) -> None:
        self.symbol = symbol
        self.report_every_ms = report_every_ms
        self._streaks: dict[str, _Streak] = {}

    def refused(self, kind: str, reason: str, detail: str, now_ms: int) -> list[str]:
        """A signal of `kind` was refused for `reason`: the lines to log (none for a repeat that is quiet)."""
        streak = self._streaks.get(kind)
        if streak is not None and streak.reason == reason:
            streak.count += 1
            streak.last_ms = now_ms
            if now_ms - streak.reported_ms >= self.report_every_ms:
                streak.reported_count, streak.reported_ms = streak.count, now_ms
                return [self._summary(kind, streak, goes_on=True)]
            return []
        lines = self.decided(kind, now_ms)  # a different refusal ends the last one
        self._streaks[kind] = _Streak(reason=reason, count=1, first_ms=now_ms, last_ms=now_ms, reported_count=1,
                                      reported_ms=now_ms)
        suffix = f" ({detail})" if detail else ""
        return [*lines, f"{self.symbol} {kind} not traded: {reason}{suffix}"]

    def decided(self, kind: str, now_ms: int) -> list[str]:
        """A signal of `kind` was decided otherwise (sent): its streak ends; the count line if there were repeats."""
        streak = self._streaks.pop(kind, None)
        return [self._summary(kind, streak)] if streak is not None and streak.count > streak.reported_count else []

    def end_all(self) -> list[str]:
        """The conditions changed (resumed, unhalted, ready) or the actor stops: every streak ends."""
        lines = [self._summary(kind, streak) for kind, streak in self._streaks.items()
                 if streak.count > streak.reported_count]
        self._streaks.clear()
        return lines

    def _summary(self, kind: str, streak: _Streak, goes_on: bool = False) -> str:
        seconds = round((streak.last_ms - streak.first_ms) / 1000)
        more = ", goes on" if goes_on else ""
        return f"{self.symbol} {kind} not traded: {streak.reason} (×{streak.count} in {seconds} s{more})"
