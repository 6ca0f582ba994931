"""The risk book's running totals: always what a full recount says, and a reserve that does not grow with the book."""

from __future__ import annotations

import random
import time
from decimal import Decimal

import pytest

from actors.risk import RiskBook, RiskLimits
from messages import OrderState, OrderUpdate, Position, PositionSide, PositionsSnapshot, RiskRequest, Side

pytestmark = pytest.mark.timeout(60)


def recount(risk: RiskBook) -> tuple[set[str], Decimal]:
    """The open symbols and total notional summed from scratch (the oracle: the old O(n) computation)."""
    symbols = {s for s, p in risk.positions.items() if p.is_open}
    symbols.update(risk.provisional)
    symbols.update(symbol for symbol, _ in risk.reservations.values())
    total = sum((p.contracts * p.entry_price for p in risk.positions.values() if p.is_open and p.entry_price),
                Decimal(0))
    total += sum((n for _, n in risk.provisional.values()), Decimal(0))
    total += sum((n for _, n in risk.reservations.values()), Decimal(0))
    return symbols, total


def test_running_totals_match_a_full_recount_through_random_books() -> None:
    rng = random.Random(7)
    risk = RiskBook(limits=RiskLimits(6, Decimal(500), Decimal(2000)), markets={})
    symbols = [f"S{i}" for i in range(10)]
    seq = 0
    for step in range(3000):
        seq += 1
        action = rng.random()
        if action < 0.4:
            risk.reserve(RiskRequest(symbol=rng.choice(symbols), intent_hash=f"{rng.randrange(60):064d}",
                                     notional=Decimal(rng.randrange(1, 600))))
        elif action < 0.55 and risk.reservations:
            risk.release(rng.choice(list(risk.reservations)))
        elif action < 0.8 and risk.reservations:
            intent_hash = rng.choice(list(risk.reservations))
            symbol, _ = risk.reservations[intent_hash]
            state = rng.choice([OrderState.PARTIALLY_FILLED, OrderState.FILLED, OrderState.CANCELED,
                                OrderState.REJECTED])
            risk.on_order_update(OrderUpdate(intent_hash=intent_hash, client_order_id="x", symbol=symbol,
                                             side=Side.BUY, state=state, seq=seq,
                                             filled=Decimal(0) if state is OrderState.REJECTED else Decimal(1)))
        else:
            positions = tuple(Position(symbol=s, side=rng.choice([PositionSide.LONG, PositionSide.SHORT]),
                                       contracts=Decimal(rng.randrange(1, 5)),
                                       entry_price=Decimal(rng.randrange(1, 90)))
                              for s in rng.sample(symbols, rng.randrange(0, 4)))
            risk.on_snapshot(PositionsSnapshot(positions=positions, seq=seq - rng.randrange(0, 3)))
        symbols_now, total_now = recount(risk)
        assert risk.open_symbols() == symbols_now, f"step {step}"
        assert risk.open_count() == len(symbols_now)
        assert risk.total_notional() == total_now, f"step {step}"


def test_a_reserve_costs_the_same_with_300_positions_as_with_none() -> None:
    def per_reserve(positions: int) -> float:
        risk = RiskBook(limits=RiskLimits(10_000, Decimal(10**9), Decimal(10**12)), markets={})
        risk.on_snapshot(PositionsSnapshot(seq=1, positions=tuple(
            Position(symbol=f"P{i}", side=PositionSide.LONG, contracts=Decimal(1), entry_price=Decimal(100))
            for i in range(positions))))
        for i in range(positions):  # as many reservations in flight too
            risk.reserve(RiskRequest(symbol=f"R{i}", intent_hash=f"{i:064d}", notional=Decimal(10)))
        started = time.perf_counter()
        for i in range(2000):
            risk.reserve(RiskRequest(symbol=f"N{i}", intent_hash=f"n{i:063d}", notional=Decimal(10)))
        return (time.perf_counter() - started) / 2000

    empty, full = min(per_reserve(0) for _ in range(3)), min(per_reserve(300) for _ in range(3))
    assert full < empty * 3 + 20e-6, (f"a reserve took {full * 1e6:.0f} µs with 300 positions, "
                                      f"{empty * 1e6:.0f} µs empty")
