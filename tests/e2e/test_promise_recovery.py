"""The promise across lost answers, held requests, restarts, strangers and partial fills (issue cases 1-4, 14, 15).

Every test runs a TradingSystem on the real ccxt client against the simulator with its strict defaults
(Kraken's rate budget, processBefore honoured, the finite book, partial resting fills, a 3 s history lag,
orders/status for 5 s). Counts of orders come from the simulator's record of every order request it
processed (`sim.admin.order_requests`), final states and fills from the database, positions from the
simulator's own account. Every test ends with `check_promise(...) == []`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from messages import EventKind, QueryEvents, Reason, SymbolState
from persistence import Store, open_database
from tests.conftest import make_config
from tests.e2e.conftest import BTC, FAST_WINDOWS, SOL, ccxt_client, quiet, ready, signal
from tests.e2e.promise import check_promise
from tests.helpers import wait_until

T0 = 1_800_000_000_000
# Markets "someone else" trades to bury our fill under 100+ newer fills (10 fills per full-side market order).
OTHER_MARKETS = ["ETH/USD:USD", "SOL/USD:USD", "LTC/USD:USD", "XRP/USD:USD", "DOGE/USD:USD", "FTM/USD:USD"]
WINDOW_MS = int((FAST_WINDOWS["clock_skew_s"] + FAST_WINDOWS["history_lag_s"]) * 1000)  # after processBefore
LIMIT_BELOW = {"order_type": "limit", "limit_offset_bps": 1000}  # a buy 10% under the market: it rests


# --- reading the database and the simulator ---------------------------------------------------------------

def stored(database_url: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Intents, orders and fills as the database holds them now (a connection of its own)."""
    store = Store(open_database(database_url))
    store.database.connect(reuse_if_open=True)
    try:
        return list(store.models.Intent.select().dicts()), store.orders(), store.fills()
    finally:
        store.close()


def only_intent(database_url: str) -> dict[str, Any]:
    intents = stored(database_url)[0]
    assert len(intents) == 1, f"expected one intent, found {len(intents)}"
    return intents[0]


def intent_state(database_url: str) -> str | None:
    intents = stored(database_url)[0]
    return intents[0]["status"] if intents else None


def stored_fills(database_url: str, cid: str) -> list[dict[str, Any]]:
    return [f for f in stored(database_url)[2] if f["client_order_id"] == cid]


def sends(sim: Any, cid: str) -> list[dict[str, Any]]:
    """Every send of this client order id the exchange processed (placed or refused), oldest first."""
    return sim.admin.order_requests(cli_ord_id=cid, kind="send")


def placed_sends(sim: Any, cid: str) -> list[dict[str, Any]]:
    return [r for r in sends(sim, cid) if r["status"] == "placed"]


def exchange_fills(sim: Any, cid: str) -> list[dict[str, Any]]:
    """The simulator's fills of every order that carried this client order id."""
    state = sim.admin.state()
    ids = {o["order_id"] for o in state["orders"] if o["cliOrdId"] == cid}
    return [f for f in state["fills"] if f["order_id"] in ids]


def position(sim: Any, symbol: str) -> Decimal:
    return Decimal(sim.admin.position(symbol))


def order_states(system: Any, cid: str) -> list[str]:
    """The states the database recorded for one order, in order (ORDER_UPDATE events)."""
    rows = system.persistence.ask(QueryEvents(kind=EventKind.ORDER_UPDATE.value), timeout=5)
    return [e.detail.split()[0] for e in rows if f"cliOrdId={cid}" in e.detail]


def events(system: Any, **filters: Any) -> list[Any]:
    return system.persistence.ask(QueryEvents(**filters), timeout=5)


def assert_fills_stored_once(sim: Any, database_url: str, cid: str) -> list[dict[str, Any]]:
    """Every exchange fill of the order is in the database exactly once, and nothing else is."""
    on_exchange = exchange_fills(sim, cid)
    in_db = stored_fills(database_url, cid)
    assert on_exchange, "the order has no fill on the exchange"
    assert sorted(f["fill_id"] for f in in_db) == sorted(f["fill_id"] for f in on_exchange)
    assert sum(Decimal(f["amount"]) for f in in_db) == sum(Decimal(f["size"]) for f in on_exchange)
    return on_exchange


def bury_under_fills(sim: Any, markets: list[str]) -> int:
    """Someone else on the account: a market buy and a market sell of each market's whole side (10 fills each)."""
    client = ccxt_client(sim)
    client.load_markets()
    before = len(sim.admin.state()["fills"])
    for market in markets:
        for side, book_side in (("buy", "asks"), ("sell", "bids")):
            book = client.fetch_order_book(market)
            client.create_order(market, "market", side, sum(level[1] for level in book[book_side]))
    return len(sim.admin.state()["fills"]) - before


# --- case 1 -----------------------------------------------------------------------------------------------

@pytest.mark.timeout(45)
def test_lost_answer_of_a_filled_entry_buried_under_100_fills_is_found_not_resent(sim, live_system,
                                                                                  sqlite_url) -> None:
    """Case 1: the entry's answer is lost (accept_then_drop), it fills at once, and before its window passes
    120 newer fills of someone else's orders land on the account, so our fill is no longer on the first page
    of `fills`. The previous design read one page, called the order "proven absent" and re-sent it: two
    entries. Now the fills are paged back to the send: one order, the intent FILLED with its fill stored,
    the position one entry."""
    system = ready(live_system())
    sim.admin.schedule_fault("accept_then_drop", endpoint="sendorder", count=1)
    system.symbol_actors()[BTC].tell(signal())
    wait_until(lambda: intent_state(sqlite_url) == "UNKNOWN", timeout=10, message="the send's outcome unknown")
    intent = only_intent(sqlite_url)
    cid = intent["client_order_id"]
    assert len(placed_sends(sim, cid)) == 1  # it was placed and filled on the exchange
    ours = exchange_fills(sim, cid)
    assert ours and intent["process_before"] is not None
    buried = bury_under_fills(sim, OTHER_MARKETS)
    assert buried >= 100
    assert sim.admin.now()["now"] < intent["process_before"] + WINDOW_MS, "the fills landed after the window"
    newest = sorted(sim.admin.state()["fills"], key=lambda f: f["time"], reverse=True)[:100]
    assert not {f["fill_id"] for f in ours} & {f["fill_id"] for f in newest}  # off the first fills page

    wait_until(lambda: intent_state(sqlite_url) == "FILLED", timeout=20, message="the intent decided FILLED")
    quiet(system)
    assert len(sends(sim, cid)) == 1 and len(placed_sends(sim, cid)) == 1
    intent = only_intent(sqlite_url)
    assert intent["status"] == "FILLED" and Decimal(intent["filled"]) == Decimal(intent["amount"])
    assert intent["sends"] == 1
    assert_fills_stored_once(sim, sqlite_url, cid)
    assert position(sim, BTC) == Decimal(intent["amount"])
    assert check_promise(sim, sqlite_url, system.status()) == []


# --- case 2 -----------------------------------------------------------------------------------------------

@pytest.mark.timeout(45)
def test_send_held_past_process_before_is_refused_by_the_exchange_and_resent_once(sim, live_system,
                                                                                   sqlite_url) -> None:
    """Case 2: the exchange holds the sendorder (`late`) for 8 s, far past its processBefore (1 s) and past the
    bot's whole window (5 s). The bot decides after the window: proven absent, re-sent once (placed, filled);
    a next signal is refused POSITION_OPEN; then the held request is processed and refused
    (wouldProcessAfterSpecifiedTime). The previous design sent without processBefore: the held copy filled
    after the re-send, a position of 2.00x one entry, the DB saying REJECTED with the fill missing."""
    system = ready(live_system())
    sim.admin.schedule_fault("late", endpoint="sendorder", count=1, delay_ms=500, late_ms=8000)
    system.symbol_actors()[BTC].tell(signal())
    wait_until(lambda: len(placed_sends(sim, only_intent(sqlite_url)["client_order_id"])) == 1
               if stored(sqlite_url)[0] else False, timeout=20, message="the re-send placed")
    cid = only_intent(sqlite_url)["client_order_id"]
    assert sim.admin.state()["late_pending"] == 1  # the first copy is still held inside the exchange
    wait_until(lambda: intent_state(sqlite_url) == "FILLED", timeout=10, message="the re-send filled")
    system.symbol_actors()[BTC].tell(signal(t=T0 + 60_000))  # the next signal: one entry is open already
    wait_until(lambda: events(system, reason=Reason.POSITION_OPEN.value), timeout=10, message="POSITION_OPEN")

    wait_until(lambda: len(sends(sim, cid)) == 2, timeout=15, message="the held request processed")
    rows = sends(sim, cid)
    assert [(r["fault"], r["status"]) for r in rows] == [(None, "placed"), ("late", "wouldProcessAfterSpecifiedTime")]
    assert rows[1]["order_id"] is None and rows[1]["received"] < rows[0]["received"]
    quiet(system)
    intent = only_intent(sqlite_url)
    assert intent["status"] == "FILLED" and intent["sends"] == 2
    assert_fills_stored_once(sim, sqlite_url, cid)
    assert position(sim, BTC) == Decimal(intent["amount"])
    assert len(stored(sqlite_url)[0]) == 1  # the next signal never became an intent
    assert check_promise(sim, sqlite_url, system.status()) == []


@pytest.mark.timeout(45)
def test_send_held_but_processed_within_process_before_is_found_never_resent(sim, live_system,
                                                                             sqlite_url) -> None:
    """Case 2 (variant): the held sendorder is processed 2 s after receipt, after the client gave up (1.5 s)
    but within its processBefore (3 s): it fills. The bot waits for the window and finds it; it never
    re-sends. The previous design re-sent after a short grace and had two entries."""
    system = ready(live_system(gateway_overrides={"process_before_s": 3.0}))
    sim.admin.schedule_fault("late", endpoint="sendorder", count=1, delay_ms=2500, late_ms=2000)
    system.symbol_actors()[BTC].tell(signal())
    wait_until(lambda: intent_state(sqlite_url) == "UNKNOWN", timeout=10, message="the send's outcome unknown")
    cid = only_intent(sqlite_url)["client_order_id"]
    wait_until(lambda: sends(sim, cid), timeout=10, message="the held request processed")
    assert intent_state(sqlite_url) == "UNKNOWN"  # processed while the bot still waits for its window
    wait_until(lambda: intent_state(sqlite_url) == "FILLED", timeout=20, message="found and FILLED")
    quiet(system)
    rows = sends(sim, cid)
    assert [(r["fault"], r["status"]) for r in rows] == [("late", "placed")]
    intent = only_intent(sqlite_url)
    assert intent["status"] == "FILLED" and intent["sends"] == 1
    assert_fills_stored_once(sim, sqlite_url, cid)
    assert position(sim, BTC) == Decimal(intent["amount"])
    assert check_promise(sim, sqlite_url, system.status()) == []


@pytest.mark.timeout(60)
def test_held_resting_limit_order_is_followed_as_ours_never_adopted_as_external(sim, live_system,
                                                                                sqlite_url) -> None:
    """Case 2 (resting limit): the held limit order is placed late (within processBefore) and rests. The bot
    finds it open with our client order id (a reconciliation or the search after the window) and follows it as
    ours; reconciliations that run while it rests list it as ours, never EXTERNAL; its limit time-out cancels it
    (CANCELED_BY_TIMEOUT), and it is never re-sent. The previous design had marked it NOT_PLACED and then
    adopted its own order as EXTERNAL."""
    config = make_config(trading={**LIMIT_BELOW, "limit_timeout_s": 4}, exchange={"reconcile_interval_s": 1})
    system = ready(live_system(config=config, gateway_overrides={"process_before_s": 3.0}))
    sim.admin.schedule_fault("late", endpoint="sendorder", count=1, delay_ms=2500, late_ms=2000)
    system.symbol_actors()[BTC].tell(signal())
    wait_until(lambda: intent_state(sqlite_url) == "UNKNOWN", timeout=10, message="the send's outcome unknown")
    cid = only_intent(sqlite_url)["client_order_id"]
    wait_until(lambda: intent_state(sqlite_url) == "ACCEPTED", timeout=20, message="found resting, ACCEPTED")
    found_at = sim.admin.now()["now"]

    def reconciles_since() -> int:
        return len([r for r in sim.admin.state()["requests"]
                    if r["endpoint"] == "openpositions" and r["time"] > found_at])

    wait_until(lambda: reconciles_since() >= 2, timeout=10, message="two reconciliations while it rests")
    resting = [o for o in sim.admin.state()["orders"] if o["state"] == "open"]
    assert [o["cliOrdId"] for o in resting] == [cid]  # it still rests: the reconciliations saw it
    row = system.status().symbols[0]
    assert [(o.client_order_id, o.ours) for o in row.exchange_orders] == [(cid, True)]
    assert events(system, reason=Reason.EXTERNAL_ORDER.value) == []

    wait_until(lambda: intent_state(sqlite_url) == "CANCELED", timeout=15, message="cancelled at its time-out")
    quiet(system)
    assert [(r["fault"], r["status"]) for r in sends(sim, cid)] == [("late", "placed")]
    intent = only_intent(sqlite_url)
    assert intent["status"] == "CANCELED" and intent["reason"] == Reason.CANCELED_BY_TIMEOUT.value
    assert intent["sends"] == 1 and Decimal(intent["filled"]) == 0
    assert [o["origin"] for o in stored(sqlite_url)[1]] == ["OURS"]
    assert events(system, reason=Reason.EXTERNAL_ORDER.value) == []
    assert check_promise(sim, sqlite_url, system.status()) == []


# --- case 3 -----------------------------------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_restart_while_a_send_is_unknown_waits_for_the_window_and_finds_the_late_fill(sim, live_system,
                                                                                      sqlite_url) -> None:
    """Case 3: the send is held (processed 3 s after receipt, within its 4 s processBefore); the bot stops while
    its outcome is unknown. The send time and processBefore are in the database; the new process waits for the
    window (processBefore + skew + lag) instead of deciding "absent" at once, the held request fills late and
    is found: one order. The previous design stored no send time, skipped the grace after a restart, marked it
    NOT_PLACED 2.6 s after the send and let the held request fill afterwards."""
    process_before_s = 4.0
    overrides = {"process_before_s": process_before_s}
    first = ready(live_system(gateway_overrides=overrides))
    sim.admin.schedule_fault("late", endpoint="sendorder", count=1, delay_ms=2500, late_ms=3000)
    first.symbol_actors()[BTC].tell(signal())
    wait_until(lambda: intent_state(sqlite_url) == "UNKNOWN", timeout=10, message="the send's outcome unknown")
    first.stop()
    intent = only_intent(sqlite_url)
    cid = intent["client_order_id"]
    assert intent["sent_at"] is not None and intent["sends"] == 1
    assert intent["process_before"] - intent["sent_at"] == int(process_before_s * 1000)
    assert sim.admin.state()["late_pending"] == 1 and sends(sim, cid) == []  # still held: nothing decided yet

    second = ready(live_system(gateway_overrides=overrides))
    restarted_at = sim.admin.now()["now"]
    wait_until(lambda: sends(sim, cid), timeout=10, message="the held request processed")
    held = sends(sim, cid)[0]
    assert held["time"] > restarted_at  # it filled after the new process had recovered the intent
    assert intent_state(sqlite_url) == "UNKNOWN"  # the new process still waits for the window
    wait_until(lambda: intent_state(sqlite_url) == "FILLED", timeout=20, message="found and FILLED")
    quiet(second)
    assert [(r["fault"], r["status"]) for r in sends(sim, cid)] == [("late", "placed")]
    intent = only_intent(sqlite_url)
    assert intent["status"] == "FILLED" and intent["sends"] == 1
    assert_fills_stored_once(sim, sqlite_url, cid)
    assert position(sim, BTC) == Decimal(intent["amount"])
    assert check_promise(sim, sqlite_url, second.status()) == []


# --- case 4 -----------------------------------------------------------------------------------------------

@pytest.mark.timeout(45)
def test_order_cancelled_by_someone_else_with_its_answer_lost_is_canceled_never_resent(sim, live_system,
                                                                                       sqlite_url) -> None:
    """Case 4: a resting limit entry is placed but its answer is lost (accept_then_drop); someone else on the
    account (a second ccxt client: web UI, another bot) cancels it before the bot looks. The bot's search after
    the window finds it in the order history (or orders/status) as cancelled: CANCELED, never re-sent. The
    previous design found no open order and no fill, called it "proven absent" and re-sent it: a second live
    order for one signal."""
    system = ready(live_system(config=make_config(trading=LIMIT_BELOW)))
    sim.admin.schedule_fault("accept_then_drop", endpoint="sendorder", count=1)
    system.symbol_actors()[BTC].tell(signal())
    wait_until(lambda: intent_state(sqlite_url) == "UNKNOWN", timeout=10, message="the send's outcome unknown")
    cid = only_intent(sqlite_url)["client_order_id"]
    [order] = placed_sends(sim, cid)
    other = ccxt_client(sim)
    other.load_markets()
    other.cancel_order(order["order_id"], BTC)
    assert [o["state"] for o in sim.admin.orders(cid)] == ["cancelled"]
    assert intent_state(sqlite_url) == "UNKNOWN"  # cancelled before the bot looked

    wait_until(lambda: intent_state(sqlite_url) == "CANCELED", timeout=20, message="found CANCELED")
    quiet(system)
    assert len(sends(sim, cid)) == 1 and len(placed_sends(sim, cid)) == 1
    assert [o for o in sim.admin.state()["orders"] if o["state"] == "open"] == []
    intent = only_intent(sqlite_url)
    assert intent["status"] == "CANCELED" and intent["sends"] == 1 and Decimal(intent["filled"]) == 0
    assert intent["exchange_order_id"] == order["order_id"]
    row = system.status().symbols[0]
    assert row.pending_orders == () and row.state is not SymbolState.BLOCKED
    assert check_promise(sim, sqlite_url, system.status()) == []


# --- case 14 ----------------------------------------------------------------------------------------------

@pytest.mark.timeout(45)
def test_limit_intent_recovered_after_restart_is_resent_as_limit_at_its_price(sim, live_system,
                                                                              sqlite_url) -> None:
    """Case 14: a limit entry's first sendorder times out and is never processed; the system stops before it
    decides. After the restart the recovered intent is proven absent after its window and re-sent once as a
    LIMIT order at its own limit price (the simulator's request record says `lmt` and the price). The previous
    design did not store the limit price and re-sent a recovered limit intent as a market order."""
    config = make_config(trading=LIMIT_BELOW)
    first = ready(live_system(config=config))
    sim.admin.schedule_fault("timeout", endpoint="sendorder", count=1, delay_ms=2000)
    first.symbol_actors()[BTC].tell(signal())
    wait_until(lambda: intent_state(sqlite_url) == "UNKNOWN", timeout=10, message="the send's outcome unknown")
    first.stop()
    intent = only_intent(sqlite_url)
    cid = intent["client_order_id"]
    assert intent["order_type"] == "limit" and intent["limit_price"] == "63000"
    assert sends(sim, cid) == []  # the timed-out request never reached the matcher

    second = ready(live_system(config=config))
    wait_until(lambda: placed_sends(sim, cid), timeout=20, message="the recovered intent re-sent")
    quiet(second)
    [row] = sends(sim, cid)
    assert row["orderType"] == "lmt" and Decimal(row["limitPrice"]) == Decimal(intent["limit_price"])
    assert Decimal(row["size"]) == Decimal(intent["amount"]) and row["status"] == "placed"
    assert [o["state"] for o in sim.admin.orders(cid)] == ["open"]  # resting at its limit, not filled at market
    intent = only_intent(sqlite_url)
    assert intent["status"] == "ACCEPTED" and intent["sends"] == 2
    assert position(sim, BTC) == 0
    assert check_promise(sim, sqlite_url, second.status()) == []


# --- case 15 ----------------------------------------------------------------------------------------------

PARTIAL_RISK = {"max_notional_per_order": 100_000, "max_total_notional": 100_000}


@pytest.mark.timeout(45)
def test_market_entry_larger_than_the_book_fills_partially_and_ends_canceled(sim, live_system,
                                                                             sqlite_url) -> None:
    """Case 15: a market entry of 375 SOL against a book side of 275 SOL (within the 1% protection) fills one
    fill per level and the remainder is cancelled (IoC). The intent ends CANCELED with the 275 filled, every
    fill stored once, the position equal to the fills, nothing re-sent. The previous simulator filled every
    market order in full at the touch, so this path never ran."""
    config = make_config(trading={"symbols": [SOL], "order_notional": 60_000}, risk=PARTIAL_RISK)
    system = ready(live_system(config=config))
    ask_side = sum(Decimal(str(level[1])) for level in ccxt_client(sim, private=False).fetch_order_book(SOL)["asks"])
    system.symbol_actors()[SOL].tell(signal(SOL, price="160"))
    wait_until(lambda: intent_state(sqlite_url) == "CANCELED", timeout=15, message="the intent CANCELED")
    quiet(system)
    intent = only_intent(sqlite_url)
    cid = intent["client_order_id"]
    assert Decimal(intent["amount"]) == 375 and ask_side == 275
    assert [(r["status"], Decimal(r["filled"])) for r in sends(sim, cid)] == [("placed", Decimal(275))]
    fills = assert_fills_stored_once(sim, sqlite_url, cid)
    assert len(fills) == 10  # one per book level
    assert Decimal(intent["filled"]) == 275 and intent["sends"] == 1
    assert position(sim, SOL) == 275
    system.symbol_actors()[SOL].tell(signal(SOL, t=T0 + 60_000, price="160"))  # L3 counts the partial entry
    wait_until(lambda: events(system, reason=Reason.POSITION_OPEN.value), timeout=10, message="POSITION_OPEN")
    quiet(system)
    assert len(sim.admin.order_requests(kind="send")) == 1 and len(stored(sqlite_url)[0]) == 1
    assert check_promise(sim, sqlite_url, system.status()) == []


@pytest.mark.timeout(45)
def test_partially_filled_canceled_entry_shows_its_position_in_status(sim, live_system, sqlite_url) -> None:
    """Case 15: after the market entry larger than the book ends CANCELED with 275 of 375 filled, status shows
    the position of 275 the exchange holds (a position sync follows the fills, as it does after FILLED)."""
    config = make_config(trading={"symbols": [SOL], "order_notional": 60_000}, risk=PARTIAL_RISK)
    system = ready(live_system(config=config))
    system.symbol_actors()[SOL].tell(signal(SOL, price="160"))
    wait_until(lambda: intent_state(sqlite_url) == "CANCELED", timeout=15, message="the intent CANCELED")
    quiet(system)
    assert position(sim, SOL) == 275
    wait_until(lambda: (p := system.status().symbols[0].position) is not None and p.contracts == 275,
               timeout=5, message="the symbol's position synced to the fills")
    assert system.status().open_positions == 1


def _limit_sol(live_system: Any, **trading: Any) -> Any:
    config = make_config(trading={"symbols": [SOL], "order_notional": 2400, **LIMIT_BELOW, **trading},
                         risk=PARTIAL_RISK)
    return ready(live_system(config=config))


@pytest.mark.timeout(45)
def test_resting_limit_fills_over_several_ticks_partially_then_filled(sim, live_system, sqlite_url) -> None:
    """Case 15: a resting limit buy of 15 SOL at 144 fills at most 5 SOL (one best level) per tick once the price
    is driven under it: PARTIALLY_FILLED, then FILLED, three fills each stored once, the position 15. The previous
    simulator filled resting orders in full at once, so the partial path never ran."""
    system = _limit_sol(live_system)
    system.symbol_actors()[SOL].tell(signal(SOL, price="160"))
    wait_until(lambda: intent_state(sqlite_url) == "ACCEPTED", timeout=10, message="the limit order resting")
    cid = only_intent(sqlite_url)["client_order_id"]
    assert exchange_fills(sim, cid) == []
    sim.admin.set_price(SOL, 140.0)
    wait_until(lambda: intent_state(sqlite_url) == "FILLED", timeout=15, message="the intent FILLED")
    quiet(system)
    intent = only_intent(sqlite_url)
    assert Decimal(intent["amount"]) == 15 and Decimal(intent["filled"]) == 15 and intent["limit_price"] == "144"
    fills = assert_fills_stored_once(sim, sqlite_url, cid)
    assert [(Decimal(f["size"]), Decimal(f["price"])) for f in fills] == [(Decimal(5), Decimal(144))] * 3
    states = order_states(system, cid)
    assert "PARTIALLY_FILLED" in states and states[-1] == "FILLED"
    assert states.index("PARTIALLY_FILLED") < states.index("FILLED")
    assert len(sends(sim, cid)) == 1 and position(sim, SOL) == 15
    assert check_promise(sim, sqlite_url, system.status()) == []


@pytest.mark.timeout(45)
def test_resting_limit_partly_filled_is_canceled_at_its_timeout_with_the_partial_amount(sim, live_system,
                                                                                        sqlite_url) -> None:
    """Case 15 (with case 8's race): the price crosses the resting limit for a tick or two and goes back; at its
    time-out the bot cancels it: CANCELED with exactly the partial amount the exchange filled, every fill stored
    once, the position equal to the fills, nothing re-sent."""
    system = _limit_sol(live_system, limit_timeout_s=4)
    system.symbol_actors()[SOL].tell(signal(SOL, price="160"))
    wait_until(lambda: intent_state(sqlite_url) == "ACCEPTED", timeout=10, message="the limit order resting")
    cid = only_intent(sqlite_url)["client_order_id"]
    back = float(sim.admin.quote(SOL)["last"])
    sim.admin.set_price(SOL, 140.0)
    wait_until(lambda: exchange_fills(sim, cid), timeout=5, message="a first partial fill")
    sim.admin.set_price(SOL, back)
    wait_until(lambda: intent_state(sqlite_url) == "CANCELED", timeout=15, message="cancelled at its time-out")
    quiet(system)
    intent = only_intent(sqlite_url)
    fills = assert_fills_stored_once(sim, sqlite_url, cid)
    filled = sum(Decimal(f["size"]) for f in fills)
    assert 0 < filled < 15
    assert Decimal(intent["filled"]) == filled and intent["reason"] == Reason.CANCELED_BY_TIMEOUT.value
    assert "PARTIALLY_FILLED" in order_states(system, cid)
    assert [o["state"] for o in sim.admin.orders(cid)] == ["cancelled"]
    assert len(sends(sim, cid)) == 1 and position(sim, SOL) == filled
    assert check_promise(sim, sqlite_url, system.status()) == []
