"""Control messages on a system trading through ccxt against the simulator."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

from messages import (
    CancelOrders,
    EventKind,
    Flatten,
    GetStatus,
    Halt,
    Pause,
    QueryEvents,
    Reason,
    Resume,
    SignalKind,
    SymbolState,
    Unhalt,
)
from tests.conftest import make_config
from tests.e2e.conftest import BTC, ETH, SOL, ccxt_client, placed, quiet, ready, signal
from tests.helpers import wait_until

T0 = 1_800_000_000_000
THREE = make_config(trading={"symbols": [BTC, ETH, SOL]})


def open_positions(sim) -> dict[str, Decimal]:
    return {p["symbol"]: Decimal(p["size"]) for p in sim.admin.state()["positions"] if Decimal(p["size"]) != 0}


def entry_all(system, t: int) -> None:
    refs = system.symbol_actors()
    refs[BTC].tell(signal(BTC, t=t))
    refs[ETH].tell(signal(ETH, t=t, price="3000"))
    refs[SOL].tell(signal(SOL, t=t, price="150"))


def test_pause_one_symbol_others_keep_trading_survives_restart_resume_restores(sim, live_system, sqlite_url) -> None:
    system = ready(live_system(config=THREE, database_url=sqlite_url))
    assert system.control(Pause(symbol=BTC, source="test")).ok
    entry_all(system, T0)
    quiet(system)
    assert sorted(o["symbol"] for o in placed(sim)) == ["PF_ETHUSD", "PF_SOLUSD"]
    system.stop()
    again = ready(live_system(config=THREE, database_url=sqlite_url))
    assert {r.symbol: r.state for r in again.status().symbols}[BTC] is SymbolState.PAUSED
    again.symbol_actors()[BTC].tell(signal(BTC, t=T0 + 60_000))
    quiet(again)
    assert [o for o in placed(sim) if o["symbol"] == "PF_XBTUSD"] == []
    assert again.control(Resume(symbol=BTC, source="test")).ok
    again.symbol_actors()[BTC].tell(signal(BTC, t=T0 + 120_000))
    quiet(again)
    assert len([o for o in placed(sim) if o["symbol"] == "PF_XBTUSD"]) == 1


def test_halt_blocks_entries_everywhere_while_exits_and_cancels_go_through(sim, live_system) -> None:
    client = ccxt_client(sim)
    client.load_markets()
    system = ready(live_system(config=make_config(trading={"symbols": [BTC, ETH, SOL], "order_type": "limit",
                                                           "limit_offset_bps": 1000})))
    refs = system.symbol_actors()
    refs[ETH].tell(signal(ETH, t=T0, price="3000"))  # a resting limit order, to be cancelled while halted
    quiet(system)
    client.create_order(SOL, "market", "buy", 1.0)  # a position, to be exited while halted
    system.gateway.tell(__import__("messages").SyncPositions(reason="test"))
    wait_until(lambda: (r := refs[SOL].ask(GetStatus(), timeout=5)).position is not None and r.position.is_open)
    reply = system.control(Halt(source="test", reason="news"))
    assert reply.ok and set(reply.symbols) == {BTC, ETH, SOL}
    refs[BTC].tell(signal(BTC, t=T0 + 60_000))
    quiet(system)
    assert [o for o in placed(sim) if o["symbol"] == "PF_XBTUSD"] == []
    assert system.control(CancelOrders(source="test")).ok
    assert [o for o in sim.admin.state()["orders"] if o["state"] == "open"] == []
    refs[SOL].tell(signal(SOL, t=T0 + 60_000, kind=SignalKind.EXIT, price="150"))
    quiet(system)
    exits = [o for o in placed(sim) if o["symbol"] == "PF_SOLUSD" and o["cliOrdId"]]
    assert len(exits) == 1 and exits[0]["reduceOnly"] is True  # the exit went out (a limit order, as configured)
    rows = {r.symbol: r for r in system.status().symbols}
    assert all(r.state is SymbolState.HALTED for r in rows.values())
    assert system.control(Unhalt(source="test")).ok
    refs[BTC].tell(signal(BTC, t=T0 + 120_000))
    quiet(system)
    assert len([o for o in placed(sim) if o["symbol"] == "PF_XBTUSD"]) == 1


def test_flatten_all_leaves_no_position_and_cancel_all_no_open_order(sim, live_system) -> None:
    client = ccxt_client(sim)
    client.load_markets()
    system = ready(live_system(config=make_config(trading={"symbols": [BTC, ETH, SOL], "pyramiding": True})))
    entry_all(system, T0)
    quiet(system)
    client.create_order(ETH, "market", "buy", 0.02)  # and some more, by hand
    bid = float(client.fetch_ticker(BTC)["bid"])
    client.create_order(BTC, "limit", "buy", 0.001, bid * 0.8)  # an order resting by hand
    system.control(Pause(source="test"))  # flatten works even when paused
    system.gateway.tell(__import__("messages").SyncPositions(reason="test"))
    quiet(system)
    wait_until(lambda: len([r for r in system.status().symbols if r.position and r.position.is_open]) == 3)
    assert len(open_positions(sim)) == 3
    assert system.control(Flatten(source="test")).ok
    quiet(system)
    assert open_positions(sim) == {}
    assert system.control(CancelOrders(source="test")).ok
    assert [o for o in sim.admin.state()["orders"] if o["state"] == "open"] == []
    details = [e.detail for e in system.persistence.ask(QueryEvents(kind=EventKind.CONTROL.value), timeout=5)]
    assert any("flatten" in d and "by test" in d for d in details) and any("cancel" in d for d in details)


def test_control_takes_effect_within_a_second_while_an_order_is_in_flight(sim, live_system) -> None:
    # processBefore 5 s ahead: the 1.2 s delay is within it, so the exchange still places the order
    system = ready(live_system(config=THREE, gateway_overrides={"process_before_s": 5.0}))
    sim.admin.schedule_fault("latency", endpoint="sendorder", count=1, delay_ms=1200)
    refs = system.symbol_actors()
    refs[BTC].tell(signal(BTC, t=T0))
    wait_until(lambda: any(r["endpoint"] == "sendorder" for r in sim.admin.state()["requests"]) or
               sim.admin.state()["faults"]["injected"].get("latency"), message="the send is under way")
    started = time.monotonic()
    reply = system.control(Pause(symbol=BTC, source="test"))
    row = refs[BTC].ask(GetStatus(), timeout=1)
    elapsed = time.monotonic() - started
    assert reply.ok and row.state is SymbolState.PAUSED and elapsed < 1.0
    assert row.pending_orders and row.pending_orders[0].state.value in ("INITIALIZED", "SUBMITTED")
    quiet(system)
    assert len(placed(sim)) == 1  # the order in flight completed; nothing else
    assert threading.active_count() > 0


def test_unknown_symbol_in_a_control_message_changes_nothing(sim, live_system) -> None:
    system = ready(live_system())
    for message in (Pause(symbol="DOGE/USD:USD"), Flatten(symbol="DOGE/USD:USD"), CancelOrders(symbol="DOGE/USD:USD")):
        reply = system.control(message)
        assert not reply.ok and "unknown symbol 'DOGE/USD:USD'" in reply.detail
    assert system.persistence.ask(QueryEvents(kind=EventKind.CONTROL.value), timeout=5) == []
    assert Reason  # the imports are the vocabulary of these tests
