"""A burst of 100 market orders in one batchorder, filled in one millisecond, end to end: running actors, the real
ccxt client, the simulator with 100 synthetic markets. The fills endpoint cannot page through that millisecond
(it returns 100 fills per page, older ones only strictly before a time); the gateway reads that millisecond from
the execution history (history/v2/executions) once it has settled, and every fill is in the database exactly once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from actors import TradingSystem, gateway_settings_for
from exchange import load_market_specs, make_kraken_client
from exchange.budget import CostBudget
from exchange.clock import ServerClock
from messages import OrderState, SignalKind, client_order_id_for, intent_hash
from persistence import Store, open_database
from simulator import SimulatorHandle, start_simulator
from tests.conftest import make_config
from tests.e2e.conftest import FAST_WINDOWS, quiet, ready, signal
from tests.helpers import wait_until

COUNT = 100
SYMBOLS = [f"X{n:03d}/USD:USD" for n in range(1, COUNT + 1)]
T0 = 1_800_000_000_000

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def sim() -> Iterator[SimulatorHandle]:
    """The e2e simulator (real time, Kraken's rate budget on) with 100 synthetic markets beside the real ones."""
    handle = start_simulator(seed=11, rate_limit=True, volatility=0.0001, extra_markets=COUNT,
                             initial_balance=10_000_000.0)
    yield handle
    handle.stop()


@pytest.fixture
def burst_system(sim: SimulatorHandle, sqlite_url: str) -> Iterator[TradingSystem]:
    """build_live_system's wiring with a 10 s client time-out: with 108 markets a `tickers` answer (the exchange
    clock's read) takes longer than the e2e clients' 1.5 s on a loaded machine."""
    public = make_kraken_client(sim.base_url, timeout_ms=10_000)
    private = make_kraken_client(sim.base_url, sim.api_key, sim.api_secret, timeout_ms=10_000)
    private.load_markets()
    config = make_config(trading={"symbols": SYMBOLS},
                         risk={"max_open_positions": COUNT, "max_notional_per_order": 1000,
                               "max_total_notional": 1_000_000})
    system = TradingSystem(
        config=config, database_url=sqlite_url, private_exchange=private, public_exchange=None,
        markets=load_market_specs(public, SYMBOLS), candle_clock=ServerClock(public, rate=1.0),
        budget=CostBudget(),
        gateway_settings=gateway_settings_for(config, poll_interval_s=0.1, gather_s=0.3, gather_max_s=1.0,
                                              **FAST_WINDOWS)).start()
    yield system
    system.stop()


def cid_of(symbol: str) -> str:
    return client_order_id_for(intent_hash(symbol, T0, SignalKind.ENTER_LONG, Decimal(100)))


def database(url: str) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    store = Store(open_database(url))
    store.database.connect(reuse_if_open=True)
    try:
        return ({row["client_order_id"]: row for row in store.models.Intent.select().dicts()},
                list(store.models.Fill.select().dicts()))
    finally:
        store.close()


def test_a_batch_of_100_market_orders_filled_in_one_millisecond_books_every_fill_once(sim, burst_system,
                                                                                      sqlite_url) -> None:
    system = ready(burst_system)
    for symbol in SYMBOLS:
        price = str(sim.admin.quote(symbol)["last"])
        system.symbol_actors()[symbol].tell(signal(symbol, t=T0, price=price))
    cids = {cid_of(s) for s in SYMBOLS}
    wait_until(lambda: len([r for r in sim.admin.order_requests(kind="send") if r["cliOrdId"] in cids]) == COUNT,
               timeout=60, message="every order sent")
    sends = [r for r in sim.admin.order_requests(kind="send") if r["cliOrdId"] in cids]
    assert {r["endpoint"] for r in sends} == {"batchorder"} and len({r["batch"] for r in sends}) == 1
    assert all(r["status"] == "placed" for r in sends)
    ours = [f for f in sim.admin.state()["fills"] if f.get("cliOrdId") in cids]
    assert len(ours) >= COUNT and len({f["time"] for f in ours}) == 1  # one millisecond: fills cannot page it

    def all_booked() -> bool:
        return len([f for f in database(sqlite_url)[1] if f["client_order_id"] in cids]) >= len(ours)

    wait_until(all_booked, timeout=60, message="every fill of the burst booked")
    quiet(system)
    intents, fills = database(sqlite_url)
    booked = [f for f in fills if f["client_order_id"] in cids]
    assert sorted(f["fill_id"] for f in booked) == sorted(f["fill_id"] for f in ours)  # each once, none missing
    assert Counter(f["fill_id"] for f in booked).most_common(1)[0][1] == 1
    for fill in ours:  # booked as the exchange made it
        row = next(f for f in booked if f["fill_id"] == fill["fill_id"])
        assert (row["exchange_order_id"], Decimal(row["amount"]), Decimal(row["price"])) == (
            fill["order_id"], Decimal(fill["size"]), Decimal(fill["price"]))
    assert all(intents[cid]["status"] == OrderState.FILLED.value for cid in cids)
    executions = [r for r in sim.simulator.requests if "/api/history/v2/executions" in str(r.get("target", ""))]
    assert executions  # the burst's millisecond came from the execution history
