"""Safe stops and clear control, end to end through the real ccxt client against the paper simulator.

`stop` says what stays on the exchange; `stop --cancel-orders` / `--flatten` leave nothing open; nothing is sent once
a stop has begun; `flatten --pause` / `cancel --pause` let no new entry follow; flatten on a flat symbol says so.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from messages import CancelOrders, ControlCode, Flatten, GetStatus, Pause, Ping, Resume, SymbolState
from messages.control import Shutdown
from persistence import Store, open_database
from tests.conftest import make_config
from tests.e2e.conftest import BTC, ETH, ccxt_client, placed, quiet, ready, signal
from tests.helpers import wait_until

pytestmark = pytest.mark.timeout(90)

T0 = 1_800_000_000_000
PROTECTED = {"enabled": True, "stop_loss_pct": 2, "take_profit_pct": 4}
RISK = {"max_notional_per_order": 20_000, "max_total_notional": 20_000}


def open_orders(sim) -> list[dict]:
    """The open orders as ccxt reads them (fetch_open_orders)."""
    return ccxt_client(sim).fetch_open_orders()


def open_positions(sim) -> list[dict]:
    return [p for p in ccxt_client(sim).fetch_positions() if float(p.get("contracts") or 0) != 0]


def protected_with_a_position_and_an_external_order(sim, live_system):
    """A system with protection on, a long BTC position (its stop-loss and take-profit resting) and one order placed
    by hand on the exchange."""
    config = make_config(protection=PROTECTED, trading={"position_sync_interval_s": 0.5}, risk=RISK)
    system = ready(live_system(config=config))
    system.symbol_actors()[BTC].tell(signal(t=T0))
    wait_until(lambda: len(open_orders(sim)) == 2, timeout=20, message="stop-loss and take-profit resting")
    client = ccxt_client(sim)
    client.load_markets()
    client.create_order(BTC, "limit", "buy", 0.001, float(client.fetch_ticker(BTC)["bid"]) * 0.8)
    quiet(system)
    return system


def test_stop_lists_the_orders_and_positions_that_stay_and_how_to_close_them(sim, live_system) -> None:
    system = protected_with_a_position_and_an_external_order(sim, live_system)
    reply = system.begin_stop(Shutdown(source="test"))
    assert reply.ok
    assert "stays on the exchange: 3 open orders (1 stop-loss, 1 take-profit, 1 external)" in reply.detail
    assert f"1 open position ({BTC} long" in reply.detail
    assert "stop --cancel-orders" in reply.detail and "stop --flatten" in reply.detail
    assert len(open_orders(sim)) == 3 and len(open_positions(sim)) == 1  # a plain stop closes nothing


def test_stop_cancel_orders_waits_for_the_cancels_and_leaves_no_order_open(sim, live_system) -> None:
    system = protected_with_a_position_and_an_external_order(sim, live_system)
    reply = system.begin_stop(Shutdown(source="test", cancel_orders=True))
    assert "cancel: 3 orders cancelled" in reply.detail, reply.detail
    assert open_orders(sim) == []  # done before the reply, not eventually
    assert "no open order; 1 open position" in reply.detail  # the position stays, and it says so
    quiet(system)
    assert open_orders(sim) == []  # nothing re-placed the protection once the stop began


def test_stop_flatten_closes_positions_and_cancels_every_order(sim, live_system) -> None:
    system = protected_with_a_position_and_an_external_order(sim, live_system)
    reply = system.begin_stop(Shutdown(source="test", flatten=True))
    assert "flatten sent" in reply.detail and "nothing stays on the exchange" in reply.detail, reply.detail
    assert open_positions(sim) == [] and open_orders(sim) == []


def test_an_intent_claimed_just_before_the_stop_is_never_sent_and_not_by_the_next_start(
    sim, live_system, sqlite_url
) -> None:
    # two symbols, a long gather: BTC's claimed order waits in the gateway for ETH's to join its batch
    config = make_config(trading={"symbols": [BTC, ETH]})
    system = ready(live_system(config=config, database_url=sqlite_url, gateway_overrides={"gather_s": 3.0,
                                                                                          "gather_max_s": 3.0}))
    btc = system.symbol_actors()[BTC]
    btc.tell(signal(t=T0))
    wait_until(lambda: btc.ask(GetStatus(), timeout=5).pending_orders, timeout=10, message="the entry claimed")
    cid = btc.ask(GetStatus(), timeout=5).pending_orders[0].client_order_id
    system.begin_stop(Shutdown(source="test"))
    system.gateway.ask(Ping(), timeout=10)  # a barrier: orders gathered before it are flushed (or held) by now
    assert placed(sim, cid) == [] and sim.admin.orders(cli_ord_id=cid) == []  # the exchange never saw it
    # ended at once, durably: the gateway knows it never sent it (nothing else can have), so nothing waits for
    # its processBefore and the next start does not send it (the default resend_max_age_s would re-send it)
    wait_until(lambda: not btc.ask(GetStatus(), timeout=5).pending_orders, timeout=10,
               message="the held entry ended")
    system.stop()
    again = ready(live_system(config=config, database_url=sqlite_url))
    assert not again.symbol_actors()[BTC].ask(GetStatus(), timeout=5).pending_orders
    quiet(again)
    assert placed(sim, cid) == [] and sim.admin.orders(cli_ord_id=cid) == []
    store = Store(open_database(sqlite_url))
    try:
        row = store.models.Intent.get(store.models.Intent.client_order_id == cid)
        assert (row.status, row.reason) == ("REJECTED", "NOT_PLACED")
    finally:
        store.close()


def test_flatten_without_pause_lets_entries_follow_and_says_so(sim, live_system) -> None:
    system = ready(live_system(config=make_config(risk=RISK)))
    btc = system.symbol_actors()[BTC]
    btc.tell(signal(t=T0))
    quiet(system)
    reply = system.control(Flatten(symbol=BTC, source="test"))
    assert "new entries may follow" in reply.detail and "--pause" in reply.detail
    quiet(system)
    before = len(placed(sim))
    btc.tell(signal(t=T0 + 60_000))  # the strategy's next entry, a second later
    quiet(system)
    assert len(placed(sim)) == before + 1  # today's behaviour: it went


def test_flatten_with_pause_pauses_first_and_no_entry_follows(sim, live_system) -> None:
    system = ready(live_system(config=make_config(risk=RISK)))
    btc = system.symbol_actors()[BTC]
    btc.tell(signal(t=T0))
    quiet(system)
    reply = system.control(Flatten(symbol=BTC, source="test", pause=True))
    assert reply.ok and reply.detail.startswith(f"paused {BTC} first"), reply.detail
    assert "new entries may follow" not in reply.detail
    quiet(system)
    assert open_positions(sim) == []
    before = len(placed(sim))
    btc.tell(signal(t=T0 + 60_000))
    quiet(system)
    assert len(placed(sim)) == before
    assert btc.ask(GetStatus(), timeout=5).state is SymbolState.PAUSED


def test_flatten_on_a_flat_symbol_says_it_is_flat(sim, live_system) -> None:
    system = ready(live_system())
    reply = system.control(Flatten(symbol=BTC, source="test", pause=True))
    assert f"nothing to flatten: {BTC} is flat" in reply.detail and "flatten sent" not in reply.detail
    assert placed(sim) == []


def test_cancel_counts_what_it_cancelled_and_says_protection_comes_back(sim, live_system) -> None:
    system = protected_with_a_position_and_an_external_order(sim, live_system)
    reply = system.control(CancelOrders(symbol=BTC, source="test", pause=True))
    assert "3 orders cancelled" in reply.detail, reply.detail
    assert "stop-loss/take-profit will be placed again while the position is open" in reply.detail
    assert "`flatten` closes it" in reply.detail
    assert Decimal(str(open_positions(sim)[0]["contracts"])) > 0


def test_pause_and_resume_say_what_was_already_so(sim, live_system) -> None:
    system = ready(live_system(config=make_config(trading={"symbols": [BTC, ETH]})))
    assert system.control(Pause(symbol=BTC, source="test")).detail == f"paused {BTC}"
    again = system.control(Pause(source="test"))
    assert again.detail == f"paused {ETH}; already paused: {BTC}"
    assert system.control(Pause(symbol=BTC, source="test")).code is ControlCode.NOTHING_TO_DO
    assert system.control(Resume(source="test")).detail == f"resumed {BTC}, {ETH}"
    assert system.control(Resume(symbol=ETH, source="test")).detail == f"already not paused: {ETH}"
