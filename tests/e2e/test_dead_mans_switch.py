"""The dead man's switch end to end: DeadMansSwitch through PrivateApi and the real ccxt client, on the simulator.

The simulator's clock is stepped by hand, so "the bot goes silent for longer than the timeout" is a clock step, not
a sleep: heartbeats within the timeout keep every order; silence past it cancels every order, the protective stop
too, and the position stays open without it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from actors.heartbeat import DeadMansSwitch
from exchange import make_kraken_client
from exchange.budget import CostBudget
from exchange.private_api import PrivateApi
from exchange.reports import ExchangeStatus
from simulator import SimulatorHandle, start_simulator

pytestmark = pytest.mark.timeout(60)

BTC = "BTC/USD:USD"
TIMEOUT_S = 60
INTERVAL_S = 20


@pytest.fixture
def stepped() -> Iterator[SimulatorHandle]:
    """A simulator whose clock moves only when the test steps it; Kraken's cost budget on."""
    handle = start_simulator(clock="stepped", seed=5, rate_limit=True)
    try:
        yield handle
    finally:
        handle.stop()


def sim_seconds(sim: SimulatorHandle) -> float:
    return sim.admin.now()["now"] / 1000


def test_heartbeats_keep_the_orders_and_silence_past_the_timeout_cancels_every_one(stepped: SimulatorHandle) -> None:
    sim = stepped
    client: Any = make_kraken_client(sim.base_url, sim.api_key, sim.api_secret, timeout_ms=5_000)
    client.load_markets()
    api = PrivateApi(client, CostBudget())
    bid = float(sim.admin.quote(BTC)["bid"])  # type: ignore[arg-type]
    client.create_order(BTC, "market", "buy", 0.01)  # a position, and its protective stop on the exchange
    client.create_order(BTC, "market", "sell", 0.01, None,
                        {"stopLossPrice": round(bid * 0.9), "reduceOnly": True, "clientOrderId": "stop-1"})
    client.create_order(BTC, "limit", "buy", 0.01, round(bid - 1000), {"clientOrderId": "rest-1"})
    resting = {o.client_order_id for o in api.open_orders()}
    assert resting == {"stop-1", "rest-1"}

    switch = DeadMansSwitch(api, timeout_s=TIMEOUT_S, clock=lambda: sim_seconds(sim))
    for _ in range(5):  # 100 s of heartbeats every 20 s, more than the timeout in all
        assert switch.beat() is None
        assert switch.status().trigger_ms == sim.admin.now()["now"] + TIMEOUT_S * 1000
        sim.admin.step(seconds=INTERVAL_S)
    assert {o.client_order_id for o in api.open_orders()} == resting
    assert switch.beat() is None
    last_trigger = switch.status().trigger_ms
    assert last_trigger is not None

    sim.admin.step(seconds=TIMEOUT_S - 1)  # silent, not yet for the whole timeout
    assert {o.client_order_id for o in api.open_orders()} == resting
    sim.admin.step(seconds=2)  # past it: Kraken cancels every order
    assert api.open_orders() == []
    statuses = {s.client_order_id: s for s in api.order_status(client_order_ids=["stop-1", "rest-1"])}
    by_switch = (ExchangeStatus.CANCELLED, "DEAD_MAN_SWITCH")
    assert {cid: (s.status, s.reason) for cid, s in statuses.items()} == {"stop-1": by_switch, "rest-1": by_switch}
    sim.admin.step(ms=sim.config.history_lag_ms + 1)  # the order history publishes late
    cancelled = {e.client_order_id: e.reason for e in api.history_since(last_trigger - TIMEOUT_S * 1000)
                 if e.status is ExchangeStatus.CANCELLED}
    assert cancelled == {"rest-1": "dead_man_switch"}  # a trigger order's events are in the trigger history
    assert [p.symbol for p in api.positions()] == [BTC]  # the position stays, now without its stop

    line = switch.beat()  # the next heartbeat tells, and re-arms
    assert line is not None and "ran out" in line and "stops and take-profits included" in line
    assert switch.status().fired_at_ms == last_trigger and switch.status().armed


def test_disarmed_the_orders_outlive_any_silence(stepped: SimulatorHandle) -> None:
    sim = stepped
    client: Any = make_kraken_client(sim.base_url, sim.api_key, sim.api_secret, timeout_ms=5_000)
    client.load_markets()
    api = PrivateApi(client, CostBudget())
    client.create_order(BTC, "limit", "buy", 0.01, round(float(sim.admin.quote(BTC)["bid"]) - 1000))  # type: ignore[arg-type]
    switch = DeadMansSwitch(api, timeout_s=TIMEOUT_S, clock=lambda: sim_seconds(sim))
    assert switch.beat() is None
    assert switch.disarm() is None
    sim.admin.step(seconds=TIMEOUT_S * 3)
    assert len(api.open_orders()) == 1
