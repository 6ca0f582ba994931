"""Fault injection through the real ccxt client: rate budget, drops, time-outs, 5xx, 429, resets, latency."""

from __future__ import annotations

import time

import ccxt
import pytest

from simulator import AdminClient, SimulatorHandle

BTC = "BTC/USD:USD"


def placed(sim: SimulatorHandle, cli_ord_id: str) -> list[dict[str, object]]:
    """Orders the exchange received with this client order id."""
    return [o for o in sim.admin.state()["orders"] if o["cliOrdId"] == cli_ord_id]


def far_limit(sim: SimulatorHandle) -> float:
    """A buy price that rests in the book."""
    return float(sim.admin.quote(BTC)["bid"]) - 1000  # type: ignore[arg-type]


def test_derivatives_budget_exceeded_is_rate_limit_exceeded(limited_sim: SimulatorHandle) -> None:
    client = limited_sim.client()
    client.load_markets()
    price = far_limit(limited_sim)
    for _ in range(50):  # 50 x sendorder (10) = the whole 500-unit budget
        client.create_order(BTC, "limit", "buy", 0.001, price)
    with pytest.raises(ccxt.RateLimitExceeded):
        client.create_order(BTC, "limit", "buy", 0.001, price)
    with pytest.raises(ccxt.RateLimitExceeded):
        client.fetch_open_orders()  # 2 units, still nothing left
    client.fetch_ticker(BTC)  # public endpoints cost nothing
    limited_sim.admin.step(seconds=0.2)  # 500 per 10 s refills 10 units in 200 ms
    client.create_order(BTC, "limit", "buy", 0.001, price)
    assert len(limited_sim.admin.state()["orders"]) == 51


def test_history_budget_is_separate(limited_sim: SimulatorHandle) -> None:
    client = limited_sim.client()
    client.load_markets()
    for _ in range(100):
        client.fetch_closed_orders()
    with pytest.raises(ccxt.RateLimitExceeded):
        client.fetch_canceled_orders()
    client.fetch_open_orders()  # the /derivatives budget is untouched
    limited_sim.admin.set_rate_limit(False)
    client.fetch_closed_orders()


def test_accept_then_drop_places_the_order_and_breaks_the_connection(
    sim: SimulatorHandle, client: ccxt.krakenfutures
) -> None:
    sim.admin.schedule_fault("accept_then_drop", endpoint="sendorder")
    with pytest.raises(ccxt.NetworkError):
        client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "lost-1"})
    [status] = client.fetch_orders(params={"cliOrdIds": "lost-1"})
    assert status["clientOrderId"] == "lost-1" and status["status"] == "closed" and status["filled"] == 0.01
    assert [p["contracts"] for p in client.fetch_positions()] == [0.01]
    # Kraken refuses a reused cliOrdId only while the first order is OPEN: re-sending after a filled market
    # order places a second one, so a re-send is never a safety net
    again = client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "lost-1"})
    assert again["id"] != status["id"]
    assert [o["status"] for o in placed(sim, "lost-1")] == ["placed", "placed"]
    assert [p["contracts"] for p in client.fetch_positions()] == [0.02]


def test_accept_then_timeout_is_request_timeout(sim: SimulatorHandle) -> None:
    client = sim.client(timeout_ms=300)
    client.load_markets()
    sim.admin.schedule_fault("accept_then_timeout", endpoint="sendorder", delay_ms=2_000)
    price = far_limit(sim)
    with pytest.raises(ccxt.RequestTimeout):
        client.create_order(BTC, "limit", "buy", 0.01, price, {"clientOrderId": "slow-1"})
    [status] = client.fetch_orders(params={"cliOrdIds": "slow-1"})
    assert status["status"] == "open"
    assert [o["id"] for o in client.fetch_open_orders()] == [status["id"]]


def test_timeout_before_acceptance_places_nothing(sim: SimulatorHandle) -> None:
    client = sim.client(timeout_ms=300)
    client.load_markets()
    sim.admin.schedule_fault("timeout", endpoint="sendorder", delay_ms=2_000)
    with pytest.raises(ccxt.RequestTimeout):
        client.create_order(BTC, "limit", "buy", 0.01, far_limit(sim), {"clientOrderId": "never-1"})
    assert client.fetch_orders(params={"cliOrdIds": "never-1"}) == []
    assert sim.admin.orders(cli_ord_id="never-1") == []  # not even received as an order
    assert sim.admin.state()["faults"]["injected"] == {"timeout": 1}


def test_accept_then_drop_on_batchorder(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    sim.admin.schedule_fault("accept_then_drop", endpoint="batchorder")
    price = far_limit(sim)
    with pytest.raises(ccxt.NetworkError):
        client.create_orders([
            {"symbol": BTC, "type": "limit", "side": "buy", "amount": 0.01, "price": price,
             "params": {"clientOrderId": "b-1"}},
            {"symbol": BTC, "type": "limit", "side": "buy", "amount": 0.01, "price": price - 1,
             "params": {"clientOrderId": "b-2"}},
        ])
    found = client.fetch_orders(params={"orderIds": [], "cliOrdIds": ["b-1", "b-2"]})
    assert sorted(o["clientOrderId"] for o in found) == ["b-1", "b-2"]


def test_unavailable_and_500_do_not_place(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    sim.admin.schedule_fault("unavailable")
    with pytest.raises(ccxt.ExchangeNotAvailable):
        client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "u-1"})
    sim.admin.schedule_fault("http_500")
    with pytest.raises(ccxt.ExchangeNotAvailable):
        client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "u-2"})
    assert placed(sim, "u-1") == [] and placed(sim, "u-2") == []
    sim.admin.schedule_fault("accept_then_unavailable")
    with pytest.raises(ccxt.ExchangeNotAvailable):
        client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "u-3"})
    assert [o["status"] for o in placed(sim, "u-3")] == ["placed"]


def test_http_429_and_api_limit(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    sim.admin.schedule_fault("http_429", endpoint="accounts")
    # A non-JSON 429 goes through ccxt's httpExceptions (RateLimitExceeded); both are NetworkErrors.
    with pytest.raises((ccxt.DDoSProtection, ccxt.RateLimitExceeded)):
        client.fetch_balance()
    sim.admin.schedule_fault("api_limit", endpoint="sendorder")
    with pytest.raises(ccxt.RateLimitExceeded):
        client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "l-1"})
    assert placed(sim, "l-1") == []
    assert client.fetch_balance()["USD"]["total"] == 100_000


def test_connection_reset_is_network_error(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    sim.admin.schedule_fault("reset", endpoint="sendorder")
    with pytest.raises(ccxt.NetworkError):
        client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "r-1"})
    assert placed(sim, "r-1") == []
    client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "r-1"})
    assert len(placed(sim, "r-1")) == 1


def test_latency_is_added(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    started = time.perf_counter()
    client.fetch_balance()
    fast = time.perf_counter() - started
    sim.admin.set_faults(latency_ms=250)
    started = time.perf_counter()
    client.fetch_balance()
    slow = time.perf_counter() - started
    assert slow >= 0.25 and fast < slow
    sim.admin.schedule_fault("latency", endpoint="accounts", delay_ms=300)
    started = time.perf_counter()
    client.fetch_balance()
    assert time.perf_counter() - started >= 0.55


def test_probabilistic_faults_by_endpoint(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    sim.admin.set_faults(reset=1.0, endpoints=["accounts"])
    with pytest.raises(ccxt.NetworkError):
        client.fetch_balance()
    client.fetch_ticker(BTC)
    sim.admin.set_faults(reset=0.0, unavailable=1.0)
    with pytest.raises(ccxt.ExchangeNotAvailable):
        client.fetch_balance()
    sim.admin.clear_faults()
    assert client.fetch_balance()["USD"]["total"] == 100_000
    injected = sim.admin.state()["faults"]["injected"]
    assert injected == {"reset": 1, "unavailable": 1}


def test_admin_client_over_http(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    admin = AdminClient(sim.base_url)
    start = admin.now()["now"]
    assert admin.step(seconds=2)["now"] == start + 2000
    admin.set_price(BTC, 40_000)
    q = admin.quote("PF_XBTUSD")
    assert float(q["bid"]) <= 40_000 <= float(q["ask"])  # type: ignore[arg-type]
    admin.set_price("PF_XBTUSD", move_pct=10)
    assert 43_000 < float(admin.quote(BTC)["last"]) < 45_000  # type: ignore[arg-type]
    admin.schedule_fault("accept_then_drop")
    with pytest.raises(ccxt.NetworkError):
        client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "adm-1"})
    [order] = admin.orders("adm-1")
    assert order["status"] == "placed" and order["size"] == "0.01"
    admin.suspend(BTC)
    with pytest.raises(ccxt.ExchangeNotAvailable):
        client.create_order(BTC, "market", "buy", 0.01)
    admin.suspend(BTC, False)
    state = admin.state()
    assert state["positions"][0]["symbol"] == "PF_XBTUSD"
    assert admin.reset()["now"] >= start
    assert admin.state()["orders"] == []
    with pytest.raises(Exception, match="400"):
        admin.set_price("NOPE/USD:USD", 1)
    with pytest.raises(Exception, match="400"):
        admin.schedule_fault("meteor")


def test_stopped_simulator_stops_serving_open_connections() -> None:
    from simulator import start_simulator

    sim = start_simulator(clock="stepped", rate_limit=False)
    client = sim.client(timeout_ms=2_000)
    client.load_markets()
    client.fetch_balance()  # the keep-alive connection is open now
    sim.stop()
    with pytest.raises(ccxt.NetworkError):
        client.fetch_balance()


def test_faults_given_at_start_apply() -> None:
    from simulator import FaultConfig, start_simulator

    with start_simulator(clock="stepped", rate_limit=False,
                         faults=FaultConfig(suspended=["PF_ETHUSD"], unavailable=1.0, endpoints=["accounts"])) as sim:
        client = sim.client()
        client.load_markets()
        with pytest.raises(ccxt.ExchangeNotAvailable):
            client.fetch_balance()
        with pytest.raises(ccxt.ExchangeNotAvailable):
            client.create_order("ETH/USD:USD", "market", "buy", 0.1)
        assert client.create_order(BTC, "market", "buy", 0.001)["status"] == "closed"


def test_dead_man_switch_through_ccxt(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    client.create_order(BTC, "limit", "buy", 0.01, far_limit(sim))
    client.cancel_all_orders_after(10_000)
    sim.admin.step(seconds=9)
    assert len(client.fetch_open_orders()) == 1
    sim.admin.step(seconds=2)
    assert client.fetch_open_orders() == []
