"""A refusal repeated every candle is logged once, then once with its count; the event log keeps every one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from loguru import logger

from actors.refusal_log import RefusalLog
from messages import EventKind, Reason, SignalKind
from tests.actors.test_symbol_trader import BTC, T0, make_trader, sig
from tests.helpers import FakePorts

pytestmark = pytest.mark.timeout(10)


def test_the_same_refusal_is_logged_once_then_its_count_when_it_ends() -> None:
    log = RefusalLog(BTC)
    lines = [line for n in range(16) for line in log.refused("EXIT", "PAUSED", "symbol is paused", T0 + n * 1000)]
    assert lines == [f"{BTC} EXIT not traded: PAUSED (symbol is paused)"]
    assert log.decided("EXIT", T0 + 16_000) == [f"{BTC} EXIT not traded: PAUSED (×16 in 15 s)"]
    assert log.decided("EXIT", T0 + 17_000) == []  # nothing left to tell


def test_a_different_reason_ends_the_streak_with_its_count_and_is_logged() -> None:
    log = RefusalLog(BTC)
    log.refused("EXIT", "PAUSED", "", T0)
    log.refused("EXIT", "PAUSED", "", T0 + 1000)
    assert log.refused("EXIT", "HALTED", "operator", T0 + 2000) == [
        f"{BTC} EXIT not traded: PAUSED (×2 in 1 s)",
        f"{BTC} EXIT not traded: HALTED (operator)",
    ]


def test_kinds_have_their_own_streaks_so_interleaved_refusals_still_collapse() -> None:
    log = RefusalLog(BTC)
    lines = []
    for n in range(5):
        lines += log.refused("ENTER_LONG", "POSITION_OPEN", "position 0.002 is open", T0 + n * 1000)
        lines += log.refused("EXIT", "PAUSED", "symbol is paused", T0 + n * 1000)
    assert len(lines) == 2
    assert log.end_all() == [f"{BTC} ENTER_LONG not traded: POSITION_OPEN (×5 in 4 s)",
                             f"{BTC} EXIT not traded: PAUSED (×5 in 4 s)"]


def test_a_single_refusal_has_no_count_line() -> None:
    log = RefusalLog(BTC)
    assert len(log.refused("EXIT", "PAUSED", "", T0)) == 1
    assert log.decided("EXIT", T0 + 1000) == []
    assert log.end_all() == []


def test_a_refusal_that_goes_on_is_counted_at_most_once_a_minute() -> None:
    log = RefusalLog(BTC, report_every_ms=60_000)
    lines = [line for n in range(150) for line in log.refused("EXIT", "PAUSED", "", T0 + n * 1000)]
    assert lines == [f"{BTC} EXIT not traded: PAUSED", f"{BTC} EXIT not traded: PAUSED (×61 in 60 s, goes on)",
                     f"{BTC} EXIT not traded: PAUSED (×121 in 120 s, goes on)"]
    assert log.end_all() == [f"{BTC} EXIT not traded: PAUSED (×150 in 149 s)"]


@pytest.fixture
def console() -> Iterator[list[str]]:
    lines: list[str] = []
    handler = logger.add(lambda message: lines.append(message.record["message"]), level="INFO")
    yield lines
    logger.remove(handler)


def test_a_paused_symbol_logs_a_refused_exit_once_records_each_and_counts_them_on_resume(
    console: list[str],
) -> None:
    ports = FakePorts()
    now = [T0]
    trader = make_trader(ports)
    trader.clock = lambda: now[0]
    trader.set_paused(True)
    for n in range(16):
        now[0] = T0 + n * 1000
        assert trader.on_signal(sig(SignalKind.EXIT, t=T0 + n * 60_000)).reason is Reason.PAUSED
    refused = [line for line in console if "not traded" in line]
    assert refused == [f"{BTC} EXIT not traded: PAUSED (symbol is paused)"]
    rejected_events = [e for e in ports.events if e.kind is EventKind.SIGNAL_REJECTED]
    assert len(rejected_events) == 16  # the database still has every one
    trader.set_paused(False)
    assert [line for line in console if "not traded" in line][-1] == f"{BTC} EXIT not traded: PAUSED (×16 in 15 s)"
    assert trader.rejections["PAUSED"] == 16
