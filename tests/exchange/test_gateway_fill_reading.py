"""The gateway's fill reading when the fills endpoint cannot page: a burst of 150 market orders filled in one
millisecond (two batchorders) is booked from the execution history once it has settled, every fill exactly once,
and the fills of other milliseconds at once from the fills endpoint."""

from __future__ import annotations

from decimal import Decimal

import pytest

from actors.gateway import GatewaySettings, OrderGateway
from messages import OrderIntent, OrderState, OrderUpdate, Side, SignalKind, client_order_id_for, intent_hash
from tests.fakes import FakeExchange, TestClock

COUNT = 150


def symbols(count: int) -> dict[str, tuple[str, float, float, float]]:
    return {f"X{i:03d}/USD:USD": (f"PF_X{i:03d}USD", 0.1, 0.001, 10.0) for i in range(count)}


def intent(symbol: str, t: int = 1) -> OrderIntent:
    h = intent_hash(symbol, t, SignalKind.ENTER_LONG, Decimal(100))
    return OrderIntent(intent_hash=h, client_order_id=client_order_id_for(h), symbol=symbol,
                       kind=SignalKind.ENTER_LONG, side=Side.BUY, candle_time=t, notional=Decimal(100),
                       amount=Decimal(10), price=Decimal(10))


def setup(equal_ids: bool = True) -> tuple[FakeExchange, OrderGateway, list[OrderUpdate], TestClock]:
    clock = TestClock()
    exchange = FakeExchange(symbols(COUNT), clock=clock)
    exchange.history_lag_ms = 3_000  # the simulator's default publication lag
    exchange.execution_ids_equal_fill_ids = equal_ids
    reports: list[OrderUpdate] = []
    gateway = OrderGateway(exchange, settings=GatewaySettings(), report=reports.append, clock=clock.seconds,
                           exchange_clock=clock)
    return exchange, gateway, reports, clock


def booked(reports: list[OrderUpdate]) -> list[str]:
    return [fill.fill_id for report in reports for fill in report.fills]


@pytest.mark.parametrize("equal_ids", [True, False])
def test_150_fills_in_one_millisecond_are_each_booked_exactly_once(equal_ids: bool) -> None:
    exchange, gateway, reports, clock = setup(equal_ids)
    gateway.place_all([intent(s) for s in symbols(COUNT)])
    assert exchange.calls.count("batchorder") == 2 and len(exchange.fills) == COUNT
    assert len({f["_ms"] for f in exchange.fills}) == 1  # one millisecond for all
    assert {r.state for r in reports if r.state is not OrderState.SUBMITTED} == {OrderState.FILLED}
    for _ in range(5):  # the history has not settled that far yet: nothing booked, nothing fails
        clock.advance(1)
        gateway.poll()
    assert booked(reports) == [] and "executions" not in exchange.calls
    assert gateway.in_flight() == COUNT  # filled, fills still to book
    clock.advance(GatewaySettings().clock_skew_s + GatewaySettings().history_lag_s)
    gateway.poll()
    ids = booked(reports)
    assert len(ids) == COUNT and len(set(ids)) == COUNT  # every fill once
    assert gateway.in_flight() == 0 and not gateway.watch
    per_order = {r.client_order_id: sum(f.amount for f in r.fills) for r in reports if r.fills}
    assert per_order == {intent(s).client_order_id: Decimal(10) for s in symbols(COUNT)}
    if equal_ids:
        assert set(ids) == {f["fill_id"] for f in exchange.fills}
    for _ in range(3):
        clock.advance(5)
        gateway.poll()
    assert len(booked(reports)) == COUNT  # nothing booked twice later


def test_fills_outside_the_burst_millisecond_are_booked_at_once() -> None:
    exchange, gateway, reports, clock = setup(equal_ids=False)
    gateway.place_all([intent(s) for s in list(symbols(COUNT))[:120]])
    clock.advance(0.01)
    later = [intent(s, t=2) for s in list(symbols(COUNT))[120:]]
    gateway.place_all(later)  # 30 orders in another millisecond: the fills endpoint pages them
    clock.advance(1)
    gateway.poll()
    assert sorted(booked(reports)) == sorted(f["fill_id"] for f in exchange.fills[120:])
    clock.advance(8)
    gateway.poll()
    ids = booked(reports)
    assert len(ids) == COUNT and len(set(ids)) == COUNT
    assert {f["fill_id"] for f in exchange.fills[120:]} <= set(ids)  # the fills endpoint's ids for those
    assert not set(ids) & {f["fill_id"] for f in exchange.fills[:120]}  # the execution history's for the burst
