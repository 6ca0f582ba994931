"""Faults around sendorder and batchorder: each intent yields exactly one order on the simulator.

The simulator injects the fault into the next request; the gateway marks the order UNKNOWN (or
REJECTED when the exchange's answer proves it was not placed), resolves it by client order id and
re-sends only what is proven absent. The count comes from the simulator's record of every order.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from messages import LoadOpenIntents, SignalKind, client_order_id_for, intent_hash
from tests.conftest import make_config
from tests.e2e.conftest import BTC, ETH, placed, quiet, ready, signal

T0 = 1_800_000_000_000

FAULTS = {
    "timeout before acceptance": ("timeout", 0),
    "accept-then-drop": ("accept_then_drop", 0),
    "accept-then-timeout": ("accept_then_timeout", 2500),
    "accept-then-503": ("accept_then_unavailable", 0),
    "5xx (503 unavailable)": ("unavailable", 0),
    "5xx (500)": ("http_500", 0),
    "HTTP 429": ("http_429", 0),
    "apiLimitExceeded": ("api_limit", 0),
    "connection reset": ("reset", 0),
    "slow answer, accepted after the client gave up": ("latency", 2500),
}


def cid(symbol: str = BTC, t: int = T0) -> str:
    return client_order_id_for(intent_hash(symbol, t, SignalKind.ENTER_LONG, Decimal(100)))


@pytest.mark.parametrize("fault", list(FAULTS))
def test_each_fault_on_sendorder_yields_exactly_one_order(sim, live_system, fault: str) -> None:
    kind, delay_ms = FAULTS[fault]
    system = ready(live_system())
    sim.admin.schedule_fault(kind, endpoint="sendorder", count=1, delay_ms=delay_ms)
    system.symbol_actors()[BTC].tell(signal())
    quiet(system, timeout=30)
    orders = placed(sim, cid())
    assert len(orders) == 1, f"{fault}: {len(orders)} orders for one intent"
    assert sim.admin.state()["faults"]["injected"].get(kind) == 1  # the fault did happen
    assert system.persistence.ask(LoadOpenIntents(), timeout=5) == []  # resolved: nothing left unknown
    assert system.status().symbols[0].pending_orders == ()


@pytest.mark.parametrize("kind", ["accept_then_drop", "unavailable"])
def test_a_fault_on_batchorder_yields_exactly_one_order_per_intent(sim, live_system, kind: str) -> None:
    system = ready(live_system(config=make_config(trading={"symbols": [BTC, ETH]})))
    sim.admin.schedule_fault(kind, endpoint="batchorder", count=1)
    refs = system.symbol_actors()
    refs[BTC].tell(signal(BTC))
    refs[ETH].tell(signal(ETH, price="3000"))
    quiet(system, timeout=30)
    assert len(placed(sim, cid(BTC))) == 1 and len(placed(sim, cid(ETH))) == 1


@pytest.mark.timeout(180)
def test_faults_everywhere_for_a_while_still_one_order_per_intent(sim, live_system) -> None:
    system = ready(live_system(config=make_config(trading={"symbols": [BTC, ETH], "pyramiding": True},
                                                  risk={"max_total_notional": 100_000})))
    sim.admin.set_faults(unavailable=0.15, http_429=0.05, reset=0.05, accept_then_drop=0.2, api_limit=0.05)
    refs = system.symbol_actors()
    for i in range(6):
        refs[BTC].tell(signal(BTC, t=T0 + i * 60_000))
        refs[ETH].tell(signal(ETH, t=T0 + i * 60_000, price="3000"))
        quiet(system, timeout=60)
    sim.admin.clear_faults()
    quiet(system, timeout=60)
    ours = [o for o in sim.admin.state()["orders"] if o["status"] == "placed"]
    by_cid: dict[str, int] = {}
    for order in ours:
        by_cid[order["cliOrdId"]] = by_cid.get(order["cliOrdId"], 0) + 1
    assert by_cid and max(by_cid.values()) == 1
    expected = {cid(s, T0 + i * 60_000) for s in (BTC, ETH) for i in range(6)}
    assert set(by_cid) <= expected
    assert system.persistence.ask(LoadOpenIntents(), timeout=5) == []  # every intent reached a final state
