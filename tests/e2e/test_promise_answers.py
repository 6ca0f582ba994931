"""The promise end to end when the exchange's answers cannot be trusted, and for a symbol halted after crashes.

The real ccxt client drives the simulator's Kraken API; for the untrusted answers (issue cases 16, 17, 18)
the corrupting proxy sits between ccxt and the simulator and rewrites chosen answers, while a second ccxt
client (straight to the simulator) is "someone else on the account". Case 13 runs without the proxy. Every
count of orders comes from the simulator's own record; every test ends with `check_promise(...) == []`.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pykka
import pytest

from actors import TradingSystem
from messages import (
    EventKind,
    Flatten,
    GetStatus,
    QueryEvents,
    Reason,
    Resolve,
    SignalKind,
    SymbolState,
    Unhalt,
    client_order_id_for,
    intent_hash,
)
from persistence import Store, open_database
from simulator import SimulatorHandle
from tests.conftest import make_config
from tests.e2e.conftest import (
    BTC,
    ccxt_client,
    placed,
    quiet,
    ready,
    signal,
)
from tests.e2e.corrupting_proxy import (
    CorruptingProxy,
    drop_open_order,
    drop_position,
    reject_placed,
    repeat_fill,
)
from tests.e2e.promise import check_promise, largest_positions, placed_per_intent
from tests.helpers import wait_until

pytestmark = pytest.mark.timeout(60)

T0 = 1_800_000_000_000
MINUTE = 60_000
XBT = "PF_XBTUSD"


# --- helpers -------------------------------------------------------------------------------------


def cid_of(t: int = T0, kind: SignalKind = SignalKind.ENTER_LONG, notional: int = 100) -> str:
    return client_order_id_for(intent_hash(BTC, t, kind, Decimal(notional)))


def events(system: TradingSystem, **filters: Any) -> list[Any]:
    assert system.persistence is not None
    return system.persistence.ask(QueryEvents(**filters), timeout=5)


def mismatches(system: TradingSystem) -> list[Any]:
    return events(system, kind=EventKind.RECONCILE_MISMATCH.value, reason=Reason.EXCHANGE_MISMATCH.value)


def refusals(system: TradingSystem, t: int) -> list[Any]:
    """The stored refusals (signal or order) of the entry signal of candle `t`."""
    hash_hex = intent_hash(BTC, t, SignalKind.ENTER_LONG, Decimal(100))
    return [e for e in events(system) if e.intent_hash == hash_hex and e.reason is not None]


def intent_row(database_url: str, cid: str) -> dict[str, Any]:
    store = Store(open_database(database_url))
    store.database.connect(reuse_if_open=True)
    try:
        return store.models.Intent.select().where(store.models.Intent.client_order_id == cid).dicts().get()
    finally:
        store.close()


def stored_fill_ids(database_url: str, cid: str) -> set[str]:
    store = Store(open_database(database_url))
    store.database.connect(reuse_if_open=True)
    try:
        return {f["fill_id"] for f in store.fills() if f["client_order_id"] == cid}
    finally:
        store.close()


def exchange_fill_ids(sim: SimulatorHandle, cid: str) -> set[str]:
    state = sim.admin.state()
    orders = {o["order_id"] for o in state["orders"] if o.get("cliOrdId") == cid}
    return {f["fill_id"] for f in state["fills"] if f["order_id"] in orders}


def btc_position(sim: SimulatorHandle) -> Decimal:
    """The simulator's signed BTC position."""
    return sum((Decimal(str(p["size"])) for p in sim.admin.state()["positions"] if p["symbol"] == XBT), Decimal(0))


def row(system: TradingSystem) -> Any:
    return next(r for r in system.status().symbols if r.symbol == BTC)


def live_actor(system: TradingSystem) -> Any:
    """BTC's current symbol actor if it is alive, else None. pykka stops a failed actor before its on_failure
    tells the portfolio (SymbolDied), so for a few ms after a crash the portfolio still lists the dead ref."""
    ref = system.symbol_actors()[BTC]
    return ref if ref is not None and ref.is_alive() else None


def actor_row(system: TradingSystem) -> Any:
    """The status row of BTC's live symbol actor; None while there is none (restarting, or just died)."""
    ref = live_actor(system)
    if ref is None:
        return None
    try:
        return ref.ask(GetStatus(), timeout=5)
    except pykka.ActorDeadError:
        return None


def send(system: TradingSystem, t: int) -> None:
    system.symbol_actors()[BTC].tell(signal(t=t))


def resting_buy(sim: SimulatorHandle, fraction: float = 0.8) -> dict[str, Any]:
    """A limit buy far below the market, placed by someone else on the account (a second ccxt client)."""
    client = ccxt_client(sim)
    client.load_markets()
    bid = float(client.fetch_ticker(BTC)["bid"])
    return client.create_order(BTC, "limit", "buy", 0.001, round(bid * fraction), {"clientOrderId": "web-ui-1"})


def empty_open_orders(doc: Any) -> Any:
    """`openorders`: a well-formed answer that lists nothing (while orders rest)."""
    if not isinstance(doc, dict) or not doc.get("openOrders"):
        return None
    doc["openOrders"] = []
    return doc


ProxiedStart = Callable[..., TradingSystem]




# --- case 13: a symbol halted after repeated crashes still follows orders and flattens -------------


@pytest.mark.timeout(60)
def test_a_symbol_halted_after_repeated_crashes_still_flattens_and_unhalt_brings_the_strategy_back(
    sim: SimulatorHandle, live_system: Any, sqlite_url: str
) -> None:
    """Case 13. Enter, then the BTC actor dies twice (max_restarts 1): halted, it keeps an actor with its
    strategy off, which still refuses entries, follows its position and flattens it for real (the simulator's
    position is flat, the exit intent FILLED, the reply says "flatten sent"). `unhalt` brings the strategy
    back and the next entry goes out once. Before: a halted symbol had no actor, so no exit could go out and
    `flatten` answered ok while the position stayed open."""
    system = ready(live_system(config=make_config(supervision={"max_restarts": 1})))
    send(system, T0)
    quiet(system)
    entry = Decimal(str(placed(sim, cid_of(T0))[0]["size"]))
    wait_until(lambda: (r := actor_row(system)) is not None and r.position is not None and r.position.is_open,
               message="the entry's position synced")
    for crash in range(2):
        ref = wait_until(lambda: live_actor(system), message=f"a live actor before crash {crash + 1}")
        ref.tell("an unexpected message")  # a bug in a handler: the actor dies
        wait_until(lambda ref=ref: not ref.is_alive(), message=f"crash {crash + 1}")
    halted = wait_until(lambda: (r := actor_row(system)) is not None and r.strategy_off and r.position is not None
                        and r.position.is_open and r, timeout=10, message="halted, strategy off, position known")
    assert halted.halted and halted.state is SymbolState.HALTED and "halted after 2 crashes" in halted.halt_reason
    assert row(system).state is SymbolState.HALTED
    send(system, T0 + MINUTE)  # an entry while halted: refused
    quiet(system)
    assert placed(sim, cid_of(T0 + MINUTE)) == []
    assert [e.reason for e in refusals(system, T0 + MINUTE)] == [Reason.HALTED]

    reply = system.control(Flatten(symbol=BTC, source="test"))
    assert reply.ok and "flatten sent" in reply.detail, reply.detail
    quiet(system)
    assert btc_position(sim) == 0
    exits = [o for o in placed(sim) if o["reduceOnly"]]
    assert len(exits) == 1 and Decimal(str(exits[0]["size"])) == entry
    exit_row = intent_row(sqlite_url, exits[0]["cliOrdId"])
    assert exit_row["status"] == "FILLED" and Decimal(exit_row["filled"]) == entry

    assert system.control(Unhalt(symbol=BTC, source="test")).ok
    back = wait_until(lambda: (r := actor_row(system)) is not None and not r.strategy_off
                      and r.state is SymbolState.TRADING and r, timeout=10, message="strategy back on")
    assert not back.halted and back.position is not None and not back.position.is_open
    send(system, T0 + 2 * MINUTE)
    quiet(system)
    assert len(placed(sim, cid_of(T0 + 2 * MINUTE))) == 1
    assert check_promise(sim, sqlite_url, system.status()) == []


# --- case 16: openorders answers that cannot be read, or that lie, with fail-closed -----------------


@pytest.mark.parametrize("corruption", ["empty_body", "html_page", "success_without_list"])
def test_an_unreadable_open_orders_answer_refuses_the_entry_fail_closed_with_the_reason_stored(
    sim: SimulatorHandle, proxy: CorruptingProxy, proxied_system: ProxiedStart, sqlite_url: str, corruption: str
) -> None:
    """Case 16. Someone else rests a buy order after the start (only the gateway's check before the send can
    see it); every `openorders` answer is an empty body, an HTML page with status 200, or `success` without
    the list. With open_order_check "fail-closed" the entry is not sent: the intent is REJECTED with reason
    EXCHANGE_UNAVAILABLE and the event says "fail-closed". Once the answers are readable again, the next
    entry is refused because of that resting order. Before: such answers were read as "no open orders", the
    entry went out next to the external order, and no reason was logged."""
    system = ready(proxied_system(config=make_config(exchange={"open_order_check": "fail-closed"})))
    resting_buy(sim)
    rule = getattr(proxy, corruption)("openorders", times=None)
    send(system, T0)
    quiet(system)
    assert rule.applied >= 1
    assert placed(sim, cid_of(T0)) == [] and sim.admin.order_requests(cli_ord_id=cid_of(T0)) == []
    stored = intent_row(sqlite_url, cid_of(T0))
    assert stored["status"] == "REJECTED" and stored["reason"] == Reason.EXCHANGE_UNAVAILABLE.value
    refused = refusals(system, T0)
    assert [e.reason for e in refused] == [Reason.EXCHANGE_UNAVAILABLE]
    assert "fail-closed" in refused[0].detail
    rule.clear()
    send(system, T0 + MINUTE)
    quiet(system)
    assert placed(sim, cid_of(T0 + MINUTE)) == []
    again = refusals(system, T0 + MINUTE)
    assert [e.reason for e in again] == [Reason.EXCHANGE_ORDER_OPEN] and "web-ui-1" in again[0].detail
    assert [o["cliOrdId"] for o in sim.admin.state()["orders"] if o["state"] == "open"] == ["web-ui-1"]
    assert check_promise(sim, sqlite_url, system.status()) == []


def test_an_empty_open_orders_list_while_an_adopted_order_rests_is_a_lie_and_refuses_entries(
    sim: SimulatorHandle, proxy: CorruptingProxy, proxied_system: ProxiedStart, sqlite_url: str
) -> None:
    """Case 16, the lie. An external buy rests before the start and is adopted at reconciliation; then every
    `openorders` answer is a well-formed EMPTY list. The timer reconciliation checks the adopted order
    through orders/status (still open): a mismatch event, and the entry signal that follows is refused with
    EXCHANGE_MISMATCH (the symbol's view of external orders was just emptied by the lying answer). Before:
    the empty list was believed, the external order forgotten, and the entry went out."""
    resting_buy(sim)
    config = make_config(exchange={"open_order_check": "fail-closed", "reconcile_interval_s": 1})
    system = ready(proxied_system(config=config))
    assert [o.ours for o in row(system).exchange_orders] == [False]  # adopted
    rule = proxy.transform("openorders", empty_open_orders, times=None)
    found = wait_until(lambda: [e for e in mismatches(system) if "web-ui-1" in e.detail], timeout=10,
                       message="the lie noticed at the timer reconciliation")
    assert "omits" in found[0].detail
    wait_until(lambda: actor_row(system).exchange_orders == (), timeout=10, message="the lie reached the symbol")
    send(system, T0)
    quiet(system)
    assert rule.applied >= 1
    assert placed(sim, cid_of(T0)) == [] and sim.admin.order_requests(cli_ord_id=cid_of(T0)) == []
    refused = refusals(system, T0)
    assert [e.reason for e in refused] == [Reason.EXCHANGE_MISMATCH] and "web-ui-1" in refused[0].detail
    status = row(system)
    assert status.state is SymbolState.BLOCKED and f"resolve {BTC}" in status.blocked
    rule.clear()  # the answers are true again; the operator checked the exchange and resolves
    reply = system.control(Resolve(symbol=BTC, source="test"))
    assert reply.ok and "cleared openorders:" in reply.detail
    wait_until(lambda: row(system).state is SymbolState.TRADING, timeout=10, message="resolve freed the symbol")
    wait_until(lambda: [o.client_order_id for o in actor_row(system).exchange_orders] == ["web-ui-1"], timeout=10,
               message="the resting order re-adopted at the next reconciliation")
    send(system, T0 + MINUTE)
    quiet(system)
    assert placed(sim, cid_of(T0 + MINUTE)) == []
    assert [e.reason for e in refusals(system, T0 + MINUTE)] == [Reason.EXCHANGE_ORDER_OPEN]
    assert check_promise(sim, sqlite_url, system.status()) == []


def test_once_open_orders_lists_the_adopted_order_again_the_view_is_consistent_without_resolve(
    sim: SimulatorHandle, proxy: CorruptingProxy, proxied_system: ProxiedStart, sqlite_url: str
) -> None:
    """Case 16/17, the way back. The lie of an empty list about an adopted external order is noticed (a
    mismatch); when the answers list the order again, the next reconciliation must find the view consistent
    (an event "consistent again") and the symbol must stop showing BLOCKED without an operator. Before: the
    lie was believed in the first place."""
    external = resting_buy(sim)
    config = make_config(exchange={"open_order_check": "fail-closed", "reconcile_interval_s": 1})
    system = ready(proxied_system(config=config))
    rule = proxy.transform("openorders", empty_open_orders, times=None)
    wait_until(lambda: [e for e in mismatches(system) if "web-ui-1" in e.detail], timeout=10,
               message="the lie noticed")
    rule.clear()
    wait_until(lambda: any(e.detail == f"consistent again: openorders:{external['id']}" for e in events(system)),
               timeout=8, message="the view found consistent again")
    wait_until(lambda: row(system).state is SymbolState.TRADING, timeout=5, message="no longer BLOCKED")
    assert check_promise(sim, sqlite_url, system.status()) == []


# --- case 17: lists that silently omit what we know is open -----------------------------------------


def test_open_orders_omitting_our_resting_order_is_a_mismatch_that_refuses_entries_until_it_is_listed_again(
    sim: SimulatorHandle, proxy: CorruptingProxy, proxied_system: ProxiedStart, sqlite_url: str
) -> None:
    """Case 17, open orders. Our limit entry rests (10% below the market); every `openorders` answer then
    omits it. The gateway checks it through orders/status (still open): a mismatch event, the intent stays
    ACCEPTED in the database (not taken for cancelled), a new entry is refused EXCHANGE_MISMATCH and status
    shows BLOCKED with `resolve`. When the answers list it again, the view is consistent: the mismatch is
    cleared (an event says so) and the symbol is no longer BLOCKED. Before: the omitted order was believed
    gone and entries stacked."""
    config = make_config(trading={"order_type": "limit", "limit_offset_bps": 1000, "limit_timeout_s": 600})
    system = ready(proxied_system(config=config))
    send(system, T0)
    quiet(system)
    ours = cid_of(T0)
    assert [o["state"] for o in sim.admin.state()["orders"] if o.get("cliOrdId") == ours] == ["open"]
    rule = proxy.transform("openorders", drop_open_order(ours), times=None)
    found = wait_until(lambda: [e for e in mismatches(system) if ours in e.detail], timeout=10,
                       message="the omission noticed")
    assert "openorders does not list it" in found[0].detail or "omits" in found[0].detail
    send(system, T0 + MINUTE)
    quiet(system)
    assert rule.applied >= 1
    assert intent_row(sqlite_url, ours)["status"] == "ACCEPTED"
    assert placed_per_intent(sim) == {ours: 1}
    assert [e.reason for e in refusals(system, T0 + MINUTE)] == [Reason.EXCHANGE_MISMATCH]
    blocked = row(system)
    assert blocked.state is SymbolState.BLOCKED and f"resolve {BTC}" in blocked.blocked
    rule.clear()
    wait_until(lambda: events(system, kind=EventKind.RECONCILE_MISMATCH.value) and any(
        e.detail == f"consistent again: openorders:{ours}" for e in events(system)), timeout=10,
        message="a consistent view again")
    wait_until(lambda: row(system).state is SymbolState.TRADING, timeout=5, message="no longer BLOCKED")
    assert intent_row(sqlite_url, ours)["status"] == "ACCEPTED"
    assert check_promise(sim, sqlite_url, system.status()) == []


@pytest.mark.timeout(60)
def test_positions_omitting_our_open_position_never_let_a_second_entry_through(
    sim: SimulatorHandle, proxy: CorruptingProxy, proxied_system: ProxiedStart, sqlite_url: str
) -> None:
    """Case 17, positions. After our entry filled, every `openpositions` answer omits the position while our
    own fills say it is open. Three entry signals over time (positions synced between them) leave the
    position at exactly one entry, a mismatch event is stored, status shows BLOCKED with the reason and
    `resolve`; once the answers show the position again, the view is consistent and BLOCKED is gone.
    Before: the flat answer was believed and each signal entered again: 3.0x one entry."""
    config = make_config(trading={"position_sync_interval_s": 0.5})
    system = ready(proxied_system(config=config))
    send(system, T0)
    quiet(system)
    entry = Decimal(str(placed(sim, cid_of(T0))[0]["size"]))
    wait_until(lambda: (r := actor_row(system)).position is not None and r.position.is_open,
               message="the entry's position synced")
    rule = proxy.transform("openpositions", drop_position(XBT), times=None)
    found = wait_until(lambda: mismatches(system), timeout=10, message="the flat answer noticed")
    assert "the exchange shows position 0" in found[0].detail
    for i in (1, 2, 3):
        seen = rule.applied
        rule.wait(seen + 1, timeout=10)  # a lying sync between the signals
        send(system, T0 + i * MINUTE)
        quiet(system)
        assert placed(sim, cid_of(T0 + i * MINUTE)) == []
        assert [e.reason for e in refusals(system, T0 + i * MINUTE)] == [Reason.POSITION_OPEN]
    assert btc_position(sim) == entry and largest_positions(sim)[XBT] == entry
    status = row(system)
    assert status.state is SymbolState.BLOCKED and "the exchange shows position 0" in status.blocked
    assert f"kraken-actors resolve {BTC}" in status.blocked
    assert status.position is not None and status.position.contracts == entry  # the lie was not booked
    rule.clear()
    wait_until(lambda: row(system).state is SymbolState.TRADING, timeout=10, message="consistent view again")
    assert len(placed(sim)) == 1
    assert check_promise(sim, sqlite_url, system.status()) == []


# --- case 18: a fill repeated under a new id; a placed order answered as rejected ---------------------


def test_a_fill_repeated_under_a_new_fill_id_is_not_booked_and_is_a_mismatch(
    sim: SimulatorHandle, proxy: CorruptingProxy, proxied_system: ProxiedStart, sqlite_url: str
) -> None:
    """Case 18, fills. The first three `fills` answers after our entry carry a copy of its fill under a new
    fill id: fills beyond the order's size, a mismatch event, nothing booked from them; once the answers are
    true again the real fill alone is booked (the database's fills equal the exchange's), the mismatch is
    cleared and the intent is FILLED with one entry. Before: the twin was booked, a position the exchange
    never had."""
    rule = proxy.transform("fills", repeat_fill(), times=3)
    system = ready(proxied_system())
    send(system, T0)
    quiet(system)
    ours = cid_of(T0)
    assert rule.applied == 3
    found = [e for e in mismatches(system) if ours in e.detail]
    assert found and "more than its size" in found[0].detail
    assert any(e.detail == f"consistent again: fills:{ours}" for e in events(system))
    assert stored_fill_ids(sqlite_url, ours) == exchange_fill_ids(sim, ours) != set()
    entry = Decimal(str(placed(sim, ours)[0]["size"]))
    stored = intent_row(sqlite_url, ours)
    assert stored["status"] == "FILLED" and Decimal(stored["filled"]) == entry
    assert btc_position(sim) == entry
    assert check_promise(sim, sqlite_url, system.status()) == []


@pytest.mark.timeout(60)
def test_a_placed_order_answered_as_rejected_is_taken_back_as_ours_and_nothing_enters_again(
    sim: SimulatorHandle, proxy: CorruptingProxy, proxied_system: ProxiedStart, sqlite_url: str
) -> None:
    """Case 18, a lying rejection. Our market entry is placed and fills, but the answer says
    insufficientAvailableFunds. After the processBefore window the rejection is checked against the history
    and the order taken back as ours: the intent ends FILLED with its fills, the position is one entry, and
    the next signals, once the take-back is known, send nothing. Before: it was booked REJECTED forever
    while it filled, and the next signal entered a second time."""
    rule = proxy.transform("sendorder", reject_placed(), times=1)
    system = ready(proxied_system())
    send(system, T0)
    ours = cid_of(T0)
    rule.wait(1)
    wait_until(lambda: intent_row(sqlite_url, ours)["status"] == "FILLED", timeout=20,
               message="the rejection checked against the history and the order taken back")
    quiet(system)
    for i in (1, 2):
        send(system, T0 + i * MINUTE)
        quiet(system)
    entry = Decimal(str(placed(sim, ours)[0]["size"]))
    stored = intent_row(sqlite_url, ours)
    assert stored["status"] == "FILLED" and Decimal(stored["filled"]) == entry
    assert stored_fill_ids(sqlite_url, ours) == exchange_fill_ids(sim, ours) != set()
    assert placed_per_intent(sim) == {ours: 1}
    assert btc_position(sim) == entry
    for i in (1, 2):
        assert [e.reason for e in refusals(system, T0 + i * MINUTE)] == [Reason.POSITION_OPEN]
    assert check_promise(sim, sqlite_url, system.status()) == []


@pytest.mark.timeout(60)
def test_a_signal_while_a_lying_rejection_is_being_checked_does_not_enter_a_second_time(
    sim: SimulatorHandle, proxy: CorruptingProxy, proxied_system: ProxiedStart, sqlite_url: str
) -> None:
    """Case 18, the window. Our market entry is placed and fills, but the answer says
    insufficientAvailableFunds; a second entry signal arrives a moment later, while the rejection still
    waits for its processBefore window to be checked (the fill is already in `fills` and booked). With
    pyramiding off it must not enter: the account ends at one entry. Before (and see the marker): the
    REJECTED answer was believed at once, so the next signal entered again (2.0x one entry)."""
    rule = proxy.transform("sendorder", reject_placed(), times=1)
    system = ready(proxied_system())
    send(system, T0)
    ours = cid_of(T0)
    rule.wait(1)
    wait_until(lambda: exchange_fill_ids(sim, ours) and stored_fill_ids(sqlite_url, ours), timeout=10,
               message="the fill of the 'rejected' order booked")
    # its booked fill reaches the symbol (a position sync follows a booked fill) while it is still REJECTED
    wait_until(lambda: (r := actor_row(system)).position is not None and r.position.is_open, timeout=5,
               message="the symbol knows the position of the 'rejected' order")
    assert intent_row(sqlite_url, ours)["status"] == "REJECTED"  # still inside the window
    send(system, T0 + MINUTE)
    quiet(system)
    wait_until(lambda: intent_row(sqlite_url, ours)["status"] == "FILLED", timeout=20, message="taken back")
    quiet(system)
    entry = Decimal(str(placed(sim, ours)[0]["size"]))
    assert placed(sim, cid_of(T0 + MINUTE)) == []
    assert [e.reason for e in refusals(system, T0 + MINUTE)] == [Reason.POSITION_OPEN]
    assert largest_positions(sim)[XBT] == entry
    assert check_promise(sim, sqlite_url, system.status()) == []
