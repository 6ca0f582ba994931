"""Batch sends end to end: running actors, the real ccxt client (with batchorder's ProcessBefore), the simulator.

Several symbols signal at one close: one open-order check and one batchorder carry them all, with the
request-level ProcessBefore; each is placed once. A batch that the exchange holds (`late` fault) past its
ProcessBefore places nothing: the gateway, its connection dropped, decides only after the window, finds
nothing, and the intents end REJECTED / NOT_PLACED, never sent a second time.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from messages import OrderState, Reason, SignalKind, client_order_id_for, intent_hash
from persistence import Store, open_database
from tests.conftest import make_config
from tests.e2e.conftest import BTC, ETH, SOL, quiet, ready, signal
from tests.e2e.promise import check_promise
from tests.helpers import wait_until

T0 = 1_800_000_000_000
PRICES = {BTC: "65000", ETH: "3200", SOL: "150"}
SYMBOLS = [BTC, ETH, SOL]
GATHER = {"gather_s": 0.3}  # the three claims reach the gateway within this: one flush, one batch


def cid_of(symbol: str, t: int = T0) -> str:
    return client_order_id_for(intent_hash(symbol, t, SignalKind.ENTER_LONG, Decimal(100)))


def stored(database_url: str) -> dict[str, dict[str, Any]]:
    store = Store(open_database(database_url))
    store.database.connect(reuse_if_open=True)
    try:
        return {row["client_order_id"]: row for row in store.models.Intent.select().dicts()}
    finally:
        store.close()


def config() -> Any:
    return make_config(trading={"symbols": SYMBOLS}, risk={"max_open_positions": 3})


def burst(system: Any, t: int = T0) -> None:
    """Every symbol's entry at one close, told to the symbol actors back to back."""
    for symbol in SYMBOLS:
        system.symbol_actors()[symbol].tell(signal(symbol, t=t, price=PRICES[symbol]))


def test_one_close_on_several_symbols_goes_in_one_batchorder_with_processbefore(sim, live_system,
                                                                                sqlite_url) -> None:
    system = ready(live_system(config(), gateway_overrides=GATHER))
    checks_before = sum(1 for r in sim.simulator.requests if r.get("endpoint") == "openorders")
    burst(system)
    quiet(system)
    rows = sim.admin.order_requests(kind="send")
    assert sorted(r["cliOrdId"] for r in rows) == sorted(cid_of(s) for s in SYMBOLS)
    assert {r["endpoint"] for r in rows} == {"batchorder"} and len({r["batch"] for r in rows}) == 1
    assert all(r["status"] == "placed" for r in rows)  # each placed once
    [before] = {r["processBefore"] for r in rows}
    assert before is not None  # the request-level ProcessBefore reached the exchange
    intents = stored(sqlite_url)
    assert all(intents[cid_of(s)]["status"] == OrderState.FILLED.value for s in SYMBOLS)
    assert all(intents[cid_of(s)]["sends"] == 1 for s in SYMBOLS)
    # processBefore stored for each is not earlier than the one the batch carried
    for symbol in SYMBOLS:
        assert intents[cid_of(symbol)]["process_before"] is not None
    checks = sum(1 for r in sim.simulator.requests if r.get("endpoint") == "openorders")
    assert checks - checks_before >= 1  # the open-order check (and the following of orders) went too
    assert check_promise(sim, sqlite_url, system.status()) == []


def test_a_batch_held_past_its_processbefore_places_nothing_and_is_never_sent_twice(sim, live_system,
                                                                                   sqlite_url) -> None:
    # held 300 ms before the client's connection drops, processed 2.5 s after receipt: after ProcessBefore (1 s)
    sim.admin.schedule_fault("late", endpoint="batchorder", count=1, delay_ms=300, late_ms=2_500)
    system = ready(live_system(config(), gateway_overrides={**GATHER, "resend_max_age_s": 1.0}))
    burst(system)
    wait_until(lambda: all(stored(sqlite_url).get(cid_of(s), {}).get("status") == OrderState.REJECTED.value
                           for s in SYMBOLS), timeout=30, message="the held batch decided")
    quiet(system)
    rows = sim.admin.order_requests(kind="send")
    assert sorted(r["cliOrdId"] for r in rows) == sorted(cid_of(s) for s in SYMBOLS)  # one send each, no second
    assert {(r["endpoint"], r["fault"], r["status"]) for r in rows} == \
        {("batchorder", "late", "wouldProcessAfterSpecifiedTime")}
    assert [o for o in sim.admin.orders() if o["cliOrdId"] in {cid_of(s) for s in SYMBOLS}] == []
    intents = stored(sqlite_url)
    assert all(intents[cid_of(s)]["reason"] == Reason.NOT_PLACED.value for s in SYMBOLS)
    assert check_promise(sim, sqlite_url, system.status()) == []
