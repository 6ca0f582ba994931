"""The bot's side of Kraken's dead man's switch (cancelallordersafter): heartbeats that push its countdown back.

Kraken cancels *every* order of the account when its countdown runs out (resting entries, exits, and the
exchange-side stop-loss and take-profit orders alike), then stays disarmed until a new non-zero timeout arrives;
a timeout of 0 disarms it (dead-mans-switch docs: "a call every 15 to 20 seconds ... a timeout of 60 seconds").
`DeadMansSwitch` is the plain logic, no threads: its owner (the gateway actor) calls `beat()` on a timer every
`protection.heartbeat_interval_s` and shows `status()`. A failed heartbeat never raises: it is logged with what
it risks, counted, and the next tick is the retry.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import ccxt
from loguru import logger

from exchange.private_api import iso_ms
from exchange.reports import DeadMansSwitchStatus, UnreadableAnswer

CONSEQUENCE = "it cancels every order, stops and take-profits included"


class CancelAllAfter(Protocol):
    """What the switch needs of the exchange: PrivateApi.cancel_all_after."""

    def cancel_all_after(self, timeout_s: int) -> DeadMansSwitchStatus: ...


@dataclass(frozen=True)
class HeartbeatStatus:
    """The switch as the status report shows it."""

    timeout_s: int  # seconds (ours) without a heartbeat after which Kraken cancels every order
    armed: bool  # Kraken's last answer showed a countdown
    last_beat_at: float | None  # our clock (the switch's `clock`) when Kraken last answered a heartbeat
    trigger_ms: int | None  # when Kraken cancels every order (its clock), as its last answer said
    failures_in_row: int  # calls that failed since the last answered one
    last_error: str | None  # why the latest call failed (None once one succeeds)
    fired_at_ms: int | None  # when Kraken's countdown last ran out (its clock), as seen at the next heartbeat


class DeadMansSwitch:
    """Arms and pushes back Kraken's dead man's switch; `disarm` turns it off. No threads, never raises for ccxt.

    `timeout_s` is how long (our seconds) the bot may stay silent before Kraken cancels everything; `clock_rate`
    (exchange seconds per our second, >1 on an accelerated paper simulator) scales the timeout Kraken is sent so
    that the window is the same in real time. `clock` is ours, in seconds (time.time by default).
    """

    def __init__(self, api: CancelAllAfter, timeout_s: int, clock: Callable[[], float] = time.time, *,
                 clock_rate: float = 1.0) -> None:
        if timeout_s < 1:
            raise ValueError(f"timeout_s must be at least 1 s (0 means no switch: do not build one), got {timeout_s}")
        if clock_rate <= 0:
            raise ValueError(f"clock_rate must be > 0, got {clock_rate}")
        self.api = api
        self.timeout_s = int(timeout_s)
        self.clock = clock
        self.clock_rate = clock_rate
        self.exchange_timeout_s = max(1, round(timeout_s * clock_rate))  # what Kraken is sent, on its clock
        self._last: DeadMansSwitchStatus | None = None  # Kraken's latest answer
        self._last_at: float | None = None  # our clock when it came
        self._failures = 0
        self._error: str | None = None
        self._lost_since_answer = False  # a call failed after the latest answer: it may have reached Kraken
        self._fired_at_ms: int | None = None

    def beat(self) -> str | None:
        """Arm the switch or push its countdown back; None when Kraken answered as asked, else the warning logged
        (a failed call, or a countdown that ran out since the previous heartbeat)."""
        try:
            status = self.api.cancel_all_after(self.exchange_timeout_s)
        except (ccxt.BaseError, UnreadableAnswer) as exc:
            return self._failed("heartbeat", exc)
        fired = self._fired_before(status)
        was_armed = self._last is not None and self._last.armed
        self._answered(status)
        if fired:
            return fired
        if was_armed:
            logger.debug("dead man's switch: heartbeat; Kraken cancels every order at {} unless another one "
                         "reaches it", iso_ms(status.trigger_ms or 0))
        else:
            logger.info("dead man's switch armed: if no heartbeat reaches Kraken within {} s {} (next due at {})",
                        self.timeout_s, CONSEQUENCE, iso_ms(status.trigger_ms or 0))
        return None

    def disarm(self) -> str | None:
        """Turn the switch off (timeout 0); None when Kraken confirmed it, else the warning logged."""
        try:
            status = self.api.cancel_all_after(0)
        except (ccxt.BaseError, UnreadableAnswer) as exc:
            return self._failed("disarming", exc)
        self._answered(status)
        logger.info("dead man's switch disarmed: Kraken cancels nothing on a timer now")
        return None

    def status(self) -> HeartbeatStatus:
        """Last heartbeat, Kraken's trigger time, failures in a row."""
        last = self._last
        return HeartbeatStatus(
            timeout_s=self.timeout_s, armed=bool(last and last.armed), last_beat_at=self._last_at,
            trigger_ms=last.trigger_ms if last else None, failures_in_row=self._failures, last_error=self._error,
            fired_at_ms=self._fired_at_ms,
        )

    def seconds_left(self) -> float | None:
        """Our seconds until Kraken's countdown runs out, from its latest answer (None: not armed as far as known)."""
        last, at = self._last, self._last_at
        if last is None or last.trigger_ms is None or at is None:
            return None
        exchange_left_ms = last.trigger_ms - last.current_ms - (self.clock() - at) * 1000 * self.clock_rate
        return exchange_left_ms / 1000 / self.clock_rate

    # --- internals ----------------------------------------------------------------------

    def _answered(self, status: DeadMansSwitchStatus) -> None:
        self._last, self._last_at = status, self.clock()
        self._failures, self._error, self._lost_since_answer = 0, None, False

    def _fired_before(self, status: DeadMansSwitchStatus) -> str | None:
        """The warning when Kraken's clock has passed the trigger time of the previous answer: the countdown ran
        out (Kraken cancels everything, then waits disarmed) before this heartbeat reached it."""
        previous = self._last
        if previous is None or previous.trigger_ms is None or status.current_ms < previous.trigger_ms:
            return None
        self._fired_at_ms = previous.trigger_ms
        if self._lost_since_answer:  # a heartbeat whose answer was lost may have pushed the countdown back
            line = (f"dead man's switch: Kraken's countdown was due at {iso_ms(previous.trigger_ms)} and no heartbeat "
                    f"was answered before it: unless one whose answer was lost reached it, {CONSEQUENCE}; the order "
                    "history tells (reason dead_man_switch). Re-armed")
        else:
            line = (f"dead man's switch: Kraken's countdown ran out at {iso_ms(previous.trigger_ms)} before a "
                    f"heartbeat reached it: {CONSEQUENCE}. Re-armed")
        logger.warning(line)
        return line

    def _failed(self, what: str, exc: Exception) -> str:
        self._failures += 1
        self._lost_since_answer = True
        self._error = f"{type(exc).__name__}: {str(exc)[:200]}"
        left = self.seconds_left()
        if left is None:
            risk = ("the switch is not armed: nothing cancels the orders if the bot goes silent" if what == "heartbeat"
                    else "if it is armed, " + CONSEQUENCE + " when its countdown runs out")
        elif left > 0:
            risk = f"if no heartbeat reaches Kraken within {left:.0f} s {CONSEQUENCE}"
        else:
            risk = (f"Kraken's countdown was due {-left:.0f} s ago: unless a heartbeat whose answer was lost pushed "
                    f"it back, {CONSEQUENCE}")
        line = f"dead man's switch: {what} failed ({self._error}), {self._failures} in a row; {risk}"
        logger.warning(line)
        return line


__all__ = ["DeadMansSwitch", "HeartbeatStatus"]
