"""DeadMansSwitch against a fake Kraken that keeps the dead man's switch by Kraken's rules, through PrivateApi.

Kraken's rules (dead-mans-switch docs, and the spot page of the same endpoint): a timeout in seconds starts a
countdown that cancels *all* orders when it runs out; every new request pushes it back; a timeout of 0 disarms;
once it has fired it stays disarmed until a new non-zero timeout arrives. The answer is
`{"result": "success", "status": {"currentTime": ISO, "triggerTime": ISO or "0"}}`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import ccxt
import pytest
from loguru import logger

from actors.heartbeat import DeadMansSwitch
from exchange.budget import CostBudget
from exchange.private_api import PrivateApi, iso_ms

START_MS = 1_800_000_000_000


class FakeKraken:
    """Kraken's cancelallordersafter, on a clock the test moves; orders are just ids that rest until cancelled."""

    def __init__(self) -> None:
        self.now_ms = START_MS
        self.trigger_ms: int | None = None
        self.orders: set[str] = {"entry", "stop-loss", "take-profit"}
        self.cancelled_by_switch: list[str] = []
        self.requests: list[dict[str, Any]] = []
        self.fail: list[Exception] = []  # raised instead of answering, the request never arrives
        self.lose: list[Exception] = []  # the request is processed, then its answer is lost
        self.garbage: list[Any] = []  # answered with this instead of Kraken's answer

    def advance(self, seconds: float) -> None:
        self.now_ms += int(seconds * 1000)
        self._fire_if_due()

    def _fire_if_due(self) -> None:
        if self.trigger_ms is not None and self.now_ms >= self.trigger_ms:
            self.cancelled_by_switch.extend(sorted(self.orders))
            self.orders.clear()
            self.trigger_ms = None  # disarmed until a new non-zero timeout

    def privatePostCancelallordersafter(self, params: dict[str, Any]) -> Any:  # noqa: N802 - ccxt's name
        self.requests.append(dict(params))
        if self.fail:
            raise self.fail.pop(0)
        self._fire_if_due()
        timeout = int(params["timeout"])
        self.trigger_ms = self.now_ms + timeout * 1000 if timeout > 0 else None
        if self.lose:
            raise self.lose.pop(0)
        if self.garbage:
            return self.garbage.pop(0)
        return {"result": "success", "serverTime": iso_ms(self.now_ms),
                "status": {"currentTime": iso_ms(self.now_ms),
                           "triggerTime": iso_ms(self.trigger_ms) if self.trigger_ms else "0"}}


class Clock:
    """Our clock, in seconds, moved with the fake's."""

    def __init__(self, kraken: FakeKraken) -> None:
        self.kraken = kraken

    def __call__(self) -> float:
        return self.kraken.now_ms / 1000


@pytest.fixture
def kraken() -> FakeKraken:
    return FakeKraken()


@pytest.fixture
def warnings() -> Iterator[list[str]]:
    """Every loguru message at WARNING and up during the test."""
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(message.record["message"]), level="WARNING")
    yield lines
    logger.remove(sink)


def switch(kraken: FakeKraken, timeout_s: int = 60, **kwargs: Any) -> DeadMansSwitch:
    return DeadMansSwitch(PrivateApi(kraken), timeout_s, Clock(kraken), **kwargs)


def test_a_beat_arms_the_switch_and_status_shows_it(kraken: FakeKraken) -> None:
    dms = switch(kraken)
    assert dms.status().armed is False and dms.status().last_beat_at is None
    assert dms.beat() is None
    status = dms.status()
    assert kraken.requests == [{"timeout": 60}]
    assert status.armed and status.trigger_ms == START_MS + 60_000 == kraken.trigger_ms
    assert status.last_beat_at == START_MS / 1000 and status.failures_in_row == 0 and status.last_error is None
    assert dms.seconds_left() == 60


def test_beats_within_the_timeout_keep_every_order(kraken: FakeKraken, warnings: list[str]) -> None:
    dms = switch(kraken)
    for _ in range(10):  # 200 s of heartbeats every 20 s: each pushes the countdown back
        assert dms.beat() is None
        kraken.advance(20)
    assert kraken.orders == {"entry", "stop-loss", "take-profit"} and kraken.cancelled_by_switch == []
    assert dms.status().trigger_ms == START_MS + 180_000 + 60_000
    assert warnings == []


def test_silence_past_the_timeout_cancels_everything_and_the_next_beat_says_so(
        kraken: FakeKraken, warnings: list[str]) -> None:
    dms = switch(kraken)
    dms.beat()
    kraken.advance(59)
    assert kraken.orders  # not yet
    kraken.advance(1)
    assert kraken.orders == set() and kraken.cancelled_by_switch == ["entry", "stop-loss", "take-profit"]
    assert kraken.trigger_ms is None  # Kraken waits disarmed
    line = dms.beat()
    assert line is not None and "ran out at" in line and "stops and take-profits included" in line
    assert "Re-armed" in line and warnings == [line]
    status = dms.status()
    assert status.fired_at_ms == START_MS + 60_000 and status.armed and kraken.trigger_ms == kraken.now_ms + 60_000


def test_a_network_error_never_raises_and_names_the_consequence(kraken: FakeKraken, warnings: list[str]) -> None:
    dms = switch(kraken)
    dms.beat()
    kraken.advance(20)
    kraken.fail = [ccxt.RequestTimeout("timed out"), ccxt.NetworkError("connection reset")]
    first = dms.beat()
    assert first == ("dead man's switch: heartbeat failed (RequestTimeout: timed out), 1 in a row; if no heartbeat "
                     "reaches Kraken within 40 s it cancels every order, stops and take-profits included")
    kraken.advance(20)
    second = dms.beat()
    assert second is not None and "2 in a row" in second and "within 20 s" in second
    assert warnings == [first, second]
    status = dms.status()
    assert status.failures_in_row == 2 and status.last_error == "NetworkError: connection reset"
    assert status.trigger_ms == START_MS + 60_000  # the last one Kraken answered
    assert dms.beat() is None  # the next tick is the retry
    assert dms.status().failures_in_row == 0 and dms.status().last_error is None
    assert kraken.orders == {"entry", "stop-loss", "take-profit"}


def test_kraken_refusing_or_garbage_is_a_failed_beat_too(kraken: FakeKraken, warnings: list[str]) -> None:
    dms = switch(kraken)
    kraken.fail = [ccxt.PermissionDenied("apiKey lacks the cancel permission")]
    line = dms.beat()
    assert line is not None and "PermissionDenied" in line
    assert "the switch is not armed: nothing cancels the orders if the bot goes silent" in line
    kraken.garbage = [{"result": "success", "status": "armed"}]
    line = dms.beat()
    assert line is not None and "UnreadableAnswer" in line and "no status object" in line
    assert dms.status().failures_in_row == 2 and not dms.status().armed
    assert len(warnings) == 2


def test_a_countdown_due_while_beats_failed_is_told_as_possibly_fired(kraken: FakeKraken) -> None:
    dms = switch(kraken)
    dms.beat()
    kraken.advance(20)
    kraken.lose = [ccxt.RequestTimeout("answer lost")]  # Kraken pushed the countdown back; we never heard
    line = dms.beat()
    assert line is not None and "within 40 s" in line
    kraken.advance(45)  # past the trigger time we know of, not the one Kraken has
    assert dms.seconds_left() == pytest.approx(-5)
    line = dms.beat()
    assert line is not None and "unless one whose answer was lost reached it" in line
    assert kraken.orders  # it had not fired: the lost heartbeat had pushed it back


def test_a_beat_failing_after_the_countdown_ran_out_says_it_may_have_fired(kraken: FakeKraken) -> None:
    dms = switch(kraken)
    dms.beat()
    kraken.advance(70)
    kraken.fail = [ccxt.NetworkError("down")]
    line = dms.beat()
    assert line is not None and "was due 10 s ago" in line and "stops and take-profits included" in line


def test_disarm_sends_zero_and_nothing_is_cancelled_afterwards(kraken: FakeKraken) -> None:
    dms = switch(kraken)
    dms.beat()
    assert dms.disarm() is None
    assert kraken.requests[-1] == {"timeout": 0} and kraken.trigger_ms is None
    assert not dms.status().armed and dms.status().trigger_ms is None and dms.seconds_left() is None
    kraken.advance(3600)
    assert kraken.orders == {"entry", "stop-loss", "take-profit"}
    assert dms.beat() is None and dms.status().fired_at_ms is None  # re-armed, nothing had fired


def test_a_failed_disarm_warns_that_the_switch_still_runs(kraken: FakeKraken, warnings: list[str]) -> None:
    dms = switch(kraken)
    dms.beat()
    kraken.advance(10)
    kraken.fail = [ccxt.ExchangeNotAvailable("maintenance")]
    line = dms.disarm()
    assert line is not None and line.startswith("dead man's switch: disarming failed (ExchangeNotAvailable")
    assert "within 50 s it cancels every order" in line and warnings == [line]
    assert kraken.trigger_ms == START_MS + 60_000


def test_an_accelerated_paper_clock_gets_a_timeout_scaled_to_the_same_real_window(kraken: FakeKraken) -> None:
    dms = DeadMansSwitch(PrivateApi(kraken), 60, lambda: 0.0, clock_rate=60)
    assert dms.beat() is None
    assert kraken.requests == [{"timeout": 3600}]  # an hour of the paper clock: a minute of ours
    assert dms.seconds_left() == 60


def test_each_beat_spends_krakens_cost_for_the_endpoint(kraken: FakeKraken) -> None:
    budget = CostBudget(margin=1.0, clock=lambda: 0.0)  # a frozen clock: nothing refills
    dms = DeadMansSwitch(PrivateApi(kraken, budget), 60, Clock(kraken))
    dms.beat()
    dms.beat()
    assert budget.derivatives.available() == 500 - 2 * 25  # cancelallordersafter costs 25 (Derivatives Rate Limits)


def test_bad_arguments_are_refused(kraken: FakeKraken) -> None:
    with pytest.raises(ValueError, match="0 means no switch"):
        switch(kraken, timeout_s=0)
    with pytest.raises(ValueError, match="clock_rate"):
        switch(kraken, clock_rate=0)
