"""Portfolio risk bookkeeping and the restart policy as plain classes."""

from __future__ import annotations

from decimal import Decimal

from actors.risk import RiskBook, RiskLimits
from actors.supervision import RestartPolicy
from messages import OrderState, OrderUpdate, Position, PositionSide, PositionsSnapshot, RiskRequest, Side

MARKETS = {}


def book(slots: int = 2, per_order: int = 500, total: int = 1000) -> RiskBook:
    return RiskBook(limits=RiskLimits(slots, Decimal(per_order), Decimal(total)), markets=MARKETS)


def req(symbol: str, h: str, notional: int = 100) -> RiskRequest:
    return RiskRequest(symbol=symbol, intent_hash=h * 64, notional=Decimal(notional))


def test_slots_count_positions_reservations_and_unsynced_fills() -> None:
    risk = book(slots=2)
    risk.on_snapshot(PositionsSnapshot(positions=(Position(symbol="A", side=PositionSide.LONG, contracts=Decimal(1),
                                                           entry_price=Decimal(100)),), seq=1))
    assert risk.reserve(req("B", "b")).granted
    assert not risk.reserve(req("C", "c")).granted
    assert risk.reserve(req("A", "a")).granted  # A already holds its slot (pyramiding decides elsewhere)
    risk.on_order_update(OrderUpdate(intent_hash="b" * 64, client_order_id="x", symbol="B", side=Side.BUY,
                                     state=OrderState.FILLED, filled=Decimal(1), seq=2))
    assert "b" * 64 not in risk.reservations and "B" in risk.open_symbols()  # filled, not yet synced
    risk.on_snapshot(PositionsSnapshot(positions=(), seq=3))  # both closed since
    assert risk.open_symbols() == {"A"}  # A's reservation is still in flight


def test_rejected_orders_release_their_reservation() -> None:
    risk = book(slots=1)
    assert risk.reserve(req("A", "a")).granted
    risk.on_order_update(OrderUpdate(intent_hash="a" * 64, client_order_id="x", symbol="A", side=Side.BUY,
                                     state=OrderState.REJECTED, seq=1))
    assert risk.reserve(req("B", "b")).granted


def test_unknown_orders_keep_their_reservation() -> None:
    risk = book(slots=1)
    risk.reserve(req("A", "a"))
    risk.on_order_update(OrderUpdate(intent_hash="a" * 64, client_order_id="x", symbol="A", side=Side.BUY,
                                     state=OrderState.UNKNOWN, seq=1))
    assert not risk.reserve(req("B", "b")).granted


def test_notional_limits() -> None:
    risk = book(slots=10, per_order=500, total=1000)
    assert "max_notional_per_order" in risk.reserve(req("A", "a", 600)).detail
    assert risk.reserve(req("A", "a", 500)).granted
    assert risk.reserve(req("B", "b", 500)).granted
    assert "max_total_notional" in risk.reserve(req("C", "c", 1)).detail


def test_restart_policy_backs_off_and_halts() -> None:
    now = [0.0]
    policy = RestartPolicy(max_restarts=3, window_s=60, backoff_initial_s=1, backoff_max_s=3, clock=lambda: now[0])
    assert [policy.on_death("A") for _ in range(3)] == [1, 2, 3]
    assert policy.on_death("A") is None  # a 4th death within the window
    now[0] = 1000.0
    assert policy.on_death("A") == 1  # the window has passed
    assert policy.restarts("A") == 4
