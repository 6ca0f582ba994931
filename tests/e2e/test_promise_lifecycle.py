"""The promise through an order's whole life: late claims, orders that leave the book unseen, lost rejections,
hidden and partial fills, failing lookups after a restart (issue cases 5-10).

Every test runs a TradingSystem on the real ccxt client against the simulator with its strict defaults (Kraken's
rate budget, processBefore honoured, the finite book, partial resting fills, a 3 s history lag, orders/status for
5 s); where an answer must be hidden or broken, the client goes through the corrupting proxy. Counts of orders come
from the simulator's record of every order request (`sim.admin.order_requests`), final states and fills from the
database, positions from the simulator's own account. Every test ends with `check_promise(...) == []`.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from actors import TradingSystem
from actors.risk import RiskBook
from messages import ClaimIntent, Flatten, QueryEvents, Reason, SignalKind, SymbolState
from persistence import StorageError, Store, open_database
from simulator import SimulatorHandle
from tests.conftest import make_config
from tests.e2e.conftest import (
    BTC,
    SOL,
    ccxt_client,
    quiet,
    ready,
    signal,
)
from tests.e2e.promise import check_promise
from tests.helpers import wait_until

T0 = 1_800_000_000_000
MINUTE = 60_000
LIMIT_AWAY = {"order_type": "limit", "limit_offset_bps": 1000}  # buys 10% under, sells 10% over: they rest
SOL_RISK = {"max_notional_per_order": 100_000, "max_total_notional": 100_000}
STATUS_WINDOW_MS = 5000  # orders/status forgets a closed order after this (simulator rule 3, Kraken's docs)


# --- reading the database and the simulator ---------------------------------------------------------------

def stored(database_url: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Intents, orders and fills as the database holds them now (a connection of its own)."""
    store = Store(open_database(database_url))
    store.database.connect(reuse_if_open=True)
    try:
        return list(store.models.Intent.select().order_by(store.models.Intent.id).dicts()), store.orders(), \
            store.fills()
    finally:
        store.close()


def intents(database_url: str) -> list[dict[str, Any]]:
    return stored(database_url)[0]


def intent_for(database_url: str, candle_time: int, kind: SignalKind = SignalKind.ENTER_LONG) -> dict[str, Any] | None:
    """The stored intent of the signal with this candle time (and kind), if any."""
    rows = [r for r in intents(database_url) if r["candle_time"] == candle_time and r["kind"] == kind.value]
    assert len(rows) <= 1
    return rows[0] if rows else None


def state_of(database_url: str, candle_time: int, kind: SignalKind = SignalKind.ENTER_LONG) -> str | None:
    row = intent_for(database_url, candle_time, kind)
    return row["status"] if row else None


def stored_fills(database_url: str, cid: str) -> list[dict[str, Any]]:
    return [f for f in stored(database_url)[2] if f["client_order_id"] == cid]


def sends(sim: SimulatorHandle, cid: str) -> list[dict[str, Any]]:
    """Every send of this client order id the exchange processed (placed or refused), oldest first."""
    return sim.admin.order_requests(cli_ord_id=cid, kind="send")


def placed_sends(sim: SimulatorHandle, cid: str) -> list[dict[str, Any]]:
    return [r for r in sends(sim, cid) if r["status"] == "placed"]


def exchange_fills(sim: SimulatorHandle, cid: str) -> list[dict[str, Any]]:
    """The simulator's fills of every order that carried this client order id."""
    state = sim.admin.state()
    ids = {o["order_id"] for o in state["orders"] if o["cliOrdId"] == cid}
    return [f for f in state["fills"] if f["order_id"] in ids]


def position(sim: SimulatorHandle, symbol: str) -> Decimal:
    return Decimal(sim.admin.position(symbol))


def events(system: TradingSystem, **filters: Any) -> list[Any]:
    return system.persistence.ask(QueryEvents(**filters), timeout=5)


def order_states(system: TradingSystem, cid: str) -> list[str]:
    """The states the database recorded for one order, in order (ORDER_UPDATE events)."""
    rows = system.persistence.ask(QueryEvents(kind="ORDER_UPDATE"), timeout=5)
    return [e.detail.split()[0] for e in sorted(rows, key=lambda e: e.time) if f"cliOrdId={cid}" in e.detail]


def assert_fills_stored_once(sim: SimulatorHandle, database_url: str, cid: str) -> Decimal:
    """Every exchange fill of the order is in the database exactly once, and nothing else is; the filled sum."""
    on_exchange = exchange_fills(sim, cid)
    in_db = stored_fills(database_url, cid)
    assert on_exchange, "the order has no fill on the exchange"
    assert sorted(f["fill_id"] for f in in_db) == sorted(f["fill_id"] for f in on_exchange)
    total = sum((Decimal(str(f["size"])) for f in on_exchange), Decimal(0))
    assert sum((Decimal(f["amount"]) for f in in_db), Decimal(0)) == total
    return total


def symbol_row(system: TradingSystem, symbol: str = BTC) -> Any:
    return next(r for r in system.status().symbols if r.symbol == symbol)


def stranger(sim: SimulatorHandle) -> Any:
    """Someone else on the account (web UI, another bot): a second ccxt client with the same keys."""
    client = ccxt_client(sim)
    client.load_markets()
    return client


# --- a trading system whose private client goes through the corrupting proxy ------------------------------



# --- case 5 -----------------------------------------------------------------------------------------------

ASK_TIMEOUT_S = 2.0
SLOW_COMMIT_S = 3.0  # longer than the claim's ask time-out, shorter than the core-actor heartbeat (2 x ask time-out)


def slow_first_claim(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """The first batch holding a claim commits SLOW_COMMIT_S late (a slow disk); the event is set once it has."""
    original = Store.apply_batch
    committed = threading.Event()
    slowed: list[bool] = []

    def apply_batch(self: Store, items: Any) -> Any:
        if not slowed and any(isinstance(item, ClaimIntent) for item in items):
            slowed.append(True)
            time.sleep(SLOW_COMMIT_S)  # the persistence actor's own thread: the claim's answer comes too late
            result = original(self, items)
            committed.set()
            return result
        return original(self, items)

    monkeypatch.setattr(Store, "apply_batch", apply_batch)
    return committed


def _enter_and_fill(system: TradingSystem, sim: SimulatorHandle, database_url: str, t: int) -> dict[str, Any]:
    system.symbol_actors()[BTC].tell(signal(t=t))
    wait_until(lambda: state_of(database_url, t) == "FILLED", timeout=15, message=f"the entry of {t} FILLED")
    row = intent_for(database_url, t)
    assert row is not None
    return row


@pytest.mark.timeout(60)
def test_claim_answered_too_late_commits_but_ends_not_placed_and_is_never_sent(sim, live_system, sqlite_url,
                                                                               monkeypatch) -> None:
    """Case 5: the claim's commit takes 3 s, its answer times out after 2 s: the symbol reports
    PERSISTENCE_UNAVAILABLE ("not stored, not sent"), but the claim commits later. It ends REJECTED/NOT_PLACED in
    the database (never INITIALIZED forever) and nothing is ever sent for it; a later signal enters (one
    position), another is refused POSITION_OPEN; after a restart reconciliation sends nothing for the late claim.
    The previous design left it INITIALIZED; the restart's reconciliation proved it absent and sent it without a
    position or open-order check: a second position with pyramiding off."""
    committed = slow_first_claim(monkeypatch)
    system = ready(live_system(ask_timeout_s=ASK_TIMEOUT_S))
    system.symbol_actors()[BTC].tell(signal(t=T0))
    wait_until(lambda: events(system, reason=Reason.PERSISTENCE_UNAVAILABLE.value), timeout=10,
               message="the claim reported PERSISTENCE_UNAVAILABLE")
    assert committed.wait(10), "the slow claim never committed"
    wait_until(lambda: state_of(sqlite_url, T0) == "REJECTED", timeout=10, message="the late claim given up")
    late = intent_for(sqlite_url, T0)
    assert late is not None and late["reason"] == Reason.NOT_PLACED.value
    assert late["exchange_order_id"] is None and late["sends"] <= 1  # at most the send its claim recorded
    cid = late["client_order_id"]
    assert sends(sim, cid) == []

    entry = _enter_and_fill(system, sim, sqlite_url, T0 + MINUTE)  # the symbol trades on: one entry
    assert len(placed_sends(sim, entry["client_order_id"])) == 1
    system.symbol_actors()[BTC].tell(signal(t=T0 + 2 * MINUTE))
    wait_until(lambda: events(system, reason=Reason.POSITION_OPEN.value), timeout=10, message="POSITION_OPEN")
    quiet(system)
    system.stop()

    second = ready(live_system(ask_timeout_s=ASK_TIMEOUT_S))
    quiet(second)
    assert sends(sim, cid) == []  # reconciliation after the restart sent nothing for the late claim
    late = intent_for(sqlite_url, T0)
    assert late is not None and (late["status"], late["reason"]) == ("REJECTED", Reason.NOT_PLACED.value)
    assert position(sim, BTC) == Decimal(entry["amount"])
    assert [r["client_order_id"] for r in intents(sqlite_url)] == [cid, entry["client_order_id"]]
    assert check_promise(sim, sqlite_url, second.status()) == []


@pytest.mark.timeout(60)
def test_late_claim_left_initialized_by_a_lost_abandon_is_not_placed_after_restart_no_second_position(
        sim, live_system, sqlite_url, monkeypatch) -> None:
    """Case 5 (the abandon is lost too): the late claim commits and the write that gives it up fails, so the
    database holds it INITIALIZED with no send recorded. A later signal enters and fills. After a restart the
    recovered intent is NOT_PLACED without any send (every send is recorded before it leaves), so the position
    stays one entry. The previous design proved it absent at the restart and sent it without L3/L4: a second
    position with pyramiding off."""
    committed = slow_first_claim(monkeypatch)
    original_abandon = Store.abandon_intent
    lost: list[str] = []

    def abandon_fails_once(self: Store, intent_hash: str, detail: str, **kwargs: Any) -> bool:
        if not lost:
            lost.append(intent_hash)
            raise StorageError("disk I/O error (test)")
        return original_abandon(self, intent_hash, detail, **kwargs)

    monkeypatch.setattr(Store, "abandon_intent", abandon_fails_once)
    system = ready(live_system(ask_timeout_s=ASK_TIMEOUT_S))
    system.symbol_actors()[BTC].tell(signal(t=T0))
    wait_until(lambda: events(system, reason=Reason.PERSISTENCE_UNAVAILABLE.value), timeout=10,
               message="the claim reported PERSISTENCE_UNAVAILABLE")
    assert committed.wait(10), "the slow claim never committed"
    wait_until(lambda: lost, timeout=10, message="the abandon write failed")
    late = intent_for(sqlite_url, T0)
    # left as its claim wrote it: INITIALIZED, or SUBMITTED by the claim alone (processBefore claimed with it)
    assert late is not None and late["status"] in ("INITIALIZED", "SUBMITTED") and late["exchange_order_id"] is None
    cid = late["client_order_id"]

    entry = _enter_and_fill(system, sim, sqlite_url, T0 + MINUTE)
    quiet(system)
    system.stop()
    assert sends(sim, cid) == []

    second = ready(live_system(ask_timeout_s=ASK_TIMEOUT_S))
    wait_until(lambda: state_of(sqlite_url, T0) == "REJECTED", timeout=10, message="the recovered claim decided")
    second.symbol_actors()[BTC].tell(signal(t=T0 + 2 * MINUTE))  # a later signal: the open entry blocks it
    wait_until(lambda: events(second, reason=Reason.POSITION_OPEN.value), timeout=10, message="POSITION_OPEN")
    quiet(second)
    late = intent_for(sqlite_url, T0)
    assert late is not None and (late["status"], late["reason"]) == ("REJECTED", Reason.NOT_PLACED.value)
    assert late["sends"] <= 1 and sends(sim, cid) == []  # the exchange never got it (the claim's own record only)
    assert position(sim, BTC) == Decimal(entry["amount"])
    assert len(placed_sends(sim, entry["client_order_id"])) == 1
    assert check_promise(sim, sqlite_url, second.status()) == []


# --- case 6 -----------------------------------------------------------------------------------------------

def _cancel_while_stopped(sim: SimulatorHandle, system: TradingSystem, order_id: str, symbol: str = BTC) -> None:
    """Stop the bot, let someone else cancel its order, and wait until orders/status has forgotten it."""
    system.stop()
    stranger(sim).cancel_order(order_id, symbol)
    cancelled_at = sim.admin.now()["now"]
    wait_until(lambda: sim.admin.now()["now"] > cancelled_at + STATUS_WINDOW_MS + 500, timeout=10,
               message="orders/status forgot the cancelled order")


@pytest.mark.timeout(60)
def test_resting_entry_cancelled_while_the_bot_is_down_ends_canceled_and_the_next_entry_goes_out(
        sim, live_system, sqlite_url) -> None:
    """Case 6: a resting limit entry (ACCEPTED) is cancelled by someone else while the bot is stopped; the bot
    restarts more than 5 s later, so orders/status no longer lists it. The recovered order is looked up in the
    order history: CANCELED, filled 0, the symbol not blocked, nothing pending, and a later entry goes out. The
    previous design looked it up once in orders/status, found nothing and kept it ACCEPTED forever: every entry
    refused ORDER_PENDING, only a database edit freed it."""
    config = make_config(trading=LIMIT_AWAY)
    first = ready(live_system(config=config))
    first.symbol_actors()[BTC].tell(signal(t=T0))
    wait_until(lambda: state_of(sqlite_url, T0) == "ACCEPTED", timeout=10, message="the limit entry resting")
    cid = intent_for(sqlite_url, T0)["client_order_id"]
    [order] = placed_sends(sim, cid)
    _cancel_while_stopped(sim, first, order["order_id"])
    assert state_of(sqlite_url, T0) == "ACCEPTED"  # the database still says it rests

    second = ready(live_system(config=config))
    wait_until(lambda: state_of(sqlite_url, T0) == "CANCELED", timeout=20, message="found CANCELED in the history")
    quiet(second)
    row = intent_for(sqlite_url, T0)
    assert Decimal(row["filled"]) == 0 and row["sends"] == 1 and row["exchange_order_id"] == order["order_id"]
    status = symbol_row(second)
    assert status.pending_orders == () and status.state is SymbolState.TRADING and status.blocked == ""

    second.symbol_actors()[BTC].tell(signal(t=T0 + MINUTE))
    wait_until(lambda: state_of(sqlite_url, T0 + MINUTE) == "ACCEPTED", timeout=10, message="the next entry rests")
    quiet(second)
    assert len(placed_sends(sim, intent_for(sqlite_url, T0 + MINUTE)["client_order_id"])) == 1
    assert events(second, reason=Reason.ORDER_PENDING.value) == []
    assert len(sends(sim, cid)) == 1
    assert check_promise(sim, sqlite_url, second.status()) == []


@pytest.mark.timeout(75)
def test_resting_exit_cancelled_while_the_bot_is_down_ends_canceled_then_exit_and_flatten_work(
        sim, live_system, sqlite_url) -> None:
    """Case 6 (reduce-only exit): with order_type limit, the exit of a position rests (reduce-only sell 10% over
    the market); someone else cancels it while the bot is stopped; the bot restarts after orders/status forgot
    it. The exit ends CANCELED from the history; a later exit goes out (and rests); `flatten` answers that it
    cancels that resting exit and a market exit follows, and the position ends flat with one order per intent.
    The previous design kept the cancelled exit ACCEPTED forever: every later exit refused, and `flatten`
    answered "flatten sent" while sending nothing."""
    stranger(sim).create_order(BTC, "market", "buy", 0.002)  # the position to exit (opened by hand)
    config = make_config(trading=LIMIT_AWAY)
    first = ready(live_system(config=config))
    first.symbol_actors()[BTC].tell(signal(t=T0, kind=SignalKind.EXIT))
    wait_until(lambda: state_of(sqlite_url, T0, SignalKind.EXIT) == "ACCEPTED", timeout=10,
               message="the limit exit resting")
    exit_row = intent_for(sqlite_url, T0, SignalKind.EXIT)
    cid = exit_row["client_order_id"]
    assert exit_row["reduce_only"] and exit_row["order_type"] == "limit"
    [order] = placed_sends(sim, cid)
    _cancel_while_stopped(sim, first, order["order_id"])

    second = ready(live_system(config=config))
    wait_until(lambda: state_of(sqlite_url, T0, SignalKind.EXIT) == "CANCELED", timeout=20,
               message="the exit found CANCELED")
    quiet(second)
    assert symbol_row(second).pending_orders == ()
    assert position(sim, BTC) == Decimal("0.002")

    second.symbol_actors()[BTC].tell(signal(t=T0 + MINUTE, kind=SignalKind.EXIT))
    wait_until(lambda: state_of(sqlite_url, T0 + MINUTE, SignalKind.EXIT) == "ACCEPTED", timeout=10,
               message="a later exit resting")
    later = intent_for(sqlite_url, T0 + MINUTE, SignalKind.EXIT)["client_order_id"]
    reply = second.control(Flatten(symbol=BTC))
    assert reply.ok, reply.detail
    assert f"cancelling resting exit {later}" in reply.detail and "market exit follows" in reply.detail
    wait_until(lambda: position(sim, BTC) == 0, timeout=15, message="flat after flatten")
    quiet(second)
    assert state_of(sqlite_url, T0 + MINUTE, SignalKind.EXIT) == "CANCELED"
    flatten = [r for r in intents(sqlite_url) if r["client_order_id"] not in (cid, later)]
    assert [(r["status"], r["order_type"], r["reduce_only"]) for r in flatten] == [("FILLED", "market", True)]
    for row in intents(sqlite_url):
        assert len(placed_sends(sim, row["client_order_id"])) == 1
    assert symbol_row(second).pending_orders == ()
    assert second.control(Flatten(symbol=BTC)).detail.count("nothing to flatten") == 1
    assert check_promise(sim, sqlite_url, second.status()) == []


# --- case 7 -----------------------------------------------------------------------------------------------

HUGE = {"order_notional": 6_000_000}  # 2% initial margin of 6M USD is more than the account's 100k
HUGE_RISK = {"max_notional_per_order": 10_000_000, "max_total_notional": 10_000_000}


@pytest.mark.timeout(45)
def test_rejected_entry_whose_answer_was_lost_is_decided_rejected_and_the_symbol_trades_on(
        sim, live_system, sqlite_url, monkeypatch) -> None:
    """Case 7: an entry too large for the margin is rejected by the exchange (insufficientAvailableFunds), but its
    answer is lost (accept_then_drop). After the window the search finds it REJECTED (orders/status `REJECTED`,
    upper case, or the history's OrderRejected): the intent ends REJECTED (EXCHANGE_REJECTED), sent once, nothing
    pending, the symbol not blocked; a later signal (priced so that its size fits the margin) goes out and
    fills. The previous design mapped the unmapped upper-case REJECTED to ACCEPTED: stuck forever."""
    # the exchange's refusal is this case: the local margin check (which refuses such an entry before the send)
    # is off, as when the margin falls between its last read and the send
    monkeypatch.setattr(RiskBook, "_margin_denial", lambda self, request: None)
    config = make_config(trading=HUGE, risk=HUGE_RISK)
    system = ready(live_system(config=config))
    sim.admin.schedule_fault("accept_then_drop", endpoint="sendorder", count=1)
    system.symbol_actors()[BTC].tell(signal(t=T0))
    wait_until(lambda: state_of(sqlite_url, T0) == "UNKNOWN", timeout=10, message="the answer lost")
    cid = intent_for(sqlite_url, T0)["client_order_id"]
    assert [r["status"] for r in sends(sim, cid)] == ["insufficientAvailableFunds"]
    assert [o["state"] for o in sim.admin.orders(cid)] == ["rejected"]
    wait_until(lambda: state_of(sqlite_url, T0) == "REJECTED", timeout=20, message="decided REJECTED")
    quiet(system)
    row = intent_for(sqlite_url, T0)
    assert row["reason"] == Reason.EXCHANGE_REJECTED.value and row["sends"] == 1
    assert len(sends(sim, cid)) == 1 and placed_sends(sim, cid) == []
    status = symbol_row(system)
    assert status.pending_orders == () and status.state is SymbolState.TRADING and status.blocked == ""

    system.symbol_actors()[BTC].tell(signal(t=T0 + MINUTE, price="60000000"))  # 0.1 BTC: fits the margin
    wait_until(lambda: state_of(sqlite_url, T0 + MINUTE) in ("FILLED", "CANCELED"), timeout=15,
               message="the next entry decided")
    quiet(system)
    later = intent_for(sqlite_url, T0 + MINUTE)
    assert later["status"] == "FILLED" and len(placed_sends(sim, later["client_order_id"])) == 1
    assert position(sim, BTC) == Decimal(later["amount"])
    assert check_promise(sim, sqlite_url, system.status()) == []


# --- cases 8 and 9: partial fills of a resting SOL limit buy (15 SOL at 144; 5 SOL trade per tick) -------------

def _resting_sol_entry(start: Callable[..., TradingSystem], database_url: str,
                       **trading: Any) -> tuple[TradingSystem, str]:
    config = make_config(trading={"symbols": [SOL], "order_notional": 2400, **LIMIT_AWAY, **trading}, risk=SOL_RISK)
    system = ready(start(config=config))
    system.symbol_actors()[SOL].tell(signal(SOL, t=T0, price="160"))
    wait_until(lambda: state_of(database_url, T0) == "ACCEPTED", timeout=10, message="the limit entry resting")
    return system, intent_for(database_url, T0)["client_order_id"]


def _partial_fill(sim: SimulatorHandle, cid: str) -> None:
    """Drive the price through the resting buy for one tick, then back: a partial fill."""
    back = float(sim.admin.quote(SOL)["last"])
    sim.admin.set_price(SOL, 140.0)
    wait_until(lambda: exchange_fills(sim, cid), timeout=5, message="a partial fill")
    sim.admin.set_price(SOL, back)
    filled = sum(Decimal(str(f["size"])) for f in exchange_fills(sim, cid))
    assert 0 < filled < 15, f"filled {filled}: not a partial fill"


def hide_fills_of(order_ids: set[str], until: Callable[[], bool]) -> Callable[[Any], Any]:
    """A proxy transform: `fills` and `openorders` answers show nothing of these orders' fills until `until()`."""
    def change(doc: Any) -> Any:
        if until() or not isinstance(doc, dict):
            return None
        if isinstance(doc.get("fills"), list):
            return {**doc, "fills": [f for f in doc["fills"] if f.get("order_id") not in order_ids]}
        if isinstance(doc.get("openOrders"), list):
            orders = []
            for o in doc["openOrders"]:
                if o.get("order_id") in order_ids:
                    size = Decimal(str(o["unfilledSize"])) + Decimal(str(o.get("filledSize") or 0))
                    o = {**o, "filledSize": "0", "unfilledSize": str(size), "status": "untouched"}
                orders.append(o)
            return {**doc, "openOrders": orders}
        return None
    return change


@pytest.mark.timeout(45)
def test_partial_fill_hidden_until_the_timeout_cancel_ends_canceled_with_it_and_blocks_the_next_entry(
        sim, proxied_system, proxy, sqlite_url) -> None:
    """Case 8: a resting limit entry is partly filled, but neither `fills` nor `openorders` shows it to the bot
    (the corrupting proxy hides it) until the limit time-out cancel: the fill lands between the last fills poll
    and the cancel. The cancel answer and the fills read after it give the partial amount: CANCELED with the
    partial amount, the fill stored once, the position equal to it, and the next entry refused POSITION_OPEN
    (pyramiding off). The previous design reported the cancel with the old filled amount (0): the fill was lost
    and the next entry went out."""
    cancelled = threading.Event()
    system, cid = _resting_sol_entry(proxied_system, sqlite_url, limit_timeout_s=4)
    [order] = placed_sends(sim, cid)
    rule_fills = proxy.transform("fills", hide_fills_of({order["order_id"]}, cancelled.is_set), times=None)
    rule_open = proxy.transform("openorders", hide_fills_of({order["order_id"]}, cancelled.is_set), times=None)
    proxy.transform("cancelorder", lambda doc: cancelled.set(), times=None)  # flags the cancel, changes nothing
    _partial_fill(sim, cid)
    wait_until(lambda: rule_fills.applied >= 2 and rule_open.applied >= 2, timeout=5,
               message="the bot polled while the fill was hidden")
    assert state_of(sqlite_url, T0) == "ACCEPTED"  # the bot has not seen the fill
    wait_until(lambda: state_of(sqlite_url, T0) == "CANCELED", timeout=15, message="cancelled at its time-out")
    assert cancelled.is_set()  # the bot saw the fill only from the cancel on
    quiet(system)

    row = intent_for(sqlite_url, T0)
    filled = assert_fills_stored_once(sim, sqlite_url, cid)
    assert Decimal(row["filled"]) == filled and row["reason"] == Reason.CANCELED_BY_TIMEOUT.value
    assert [o["state"] for o in sim.admin.orders(cid)] == ["cancelled"]
    assert position(sim, SOL) == filled
    system.symbol_actors()[SOL].tell(signal(SOL, t=T0 + MINUTE, price="160"))
    wait_until(lambda: events(system, reason=Reason.POSITION_OPEN.value), timeout=10, message="POSITION_OPEN")
    quiet(system)
    assert intent_for(sqlite_url, T0 + MINUTE) is None and len(sends(sim, cid)) == 1
    assert check_promise(sim, sqlite_url, system.status()) == []


@pytest.mark.timeout(60)
def test_partially_filled_order_cancelled_by_someone_else_ends_canceled_and_a_restart_counts_its_fills_once(
        sim, live_system, sqlite_url) -> None:
    """Case 9: a resting limit entry is partly filled and then cancelled by someone else: it ends CANCELED with the
    partial amount (not PARTIALLY_FILLED forever), every fill stored once; after a restart the fills are not
    counted twice: the database's fills equal the exchange's, the symbol's position equals the exchange's, and an
    entry is refused POSITION_OPEN. The previous design re-reported it PARTIALLY_FILLED on every poll and, not
    persisting fill ids, counted its fills twice after a restart."""
    system, cid = _resting_sol_entry(live_system, sqlite_url)
    _partial_fill(sim, cid)
    wait_until(lambda: state_of(sqlite_url, T0) == "PARTIALLY_FILLED", timeout=10, message="the bot saw the fill")
    [order] = placed_sends(sim, cid)
    stranger(sim).cancel_order(order["order_id"], SOL)
    wait_until(lambda: state_of(sqlite_url, T0) == "CANCELED", timeout=15, message="found CANCELED")
    quiet(system)
    filled = assert_fills_stored_once(sim, sqlite_url, cid)
    row = intent_for(sqlite_url, T0)
    assert Decimal(row["filled"]) == filled and row["sends"] == 1
    states = order_states(system, cid)
    assert states[-1] == "CANCELED" and states.count("CANCELED") == 1
    fills_before = sorted(f["fill_id"] for f in stored(sqlite_url)[2])
    system.stop()

    second = ready(live_system(config=system.config))
    quiet(second)
    assert sorted(f["fill_id"] for f in stored(sqlite_url)[2]) == fills_before
    assert_fills_stored_once(sim, sqlite_url, cid)
    assert intent_for(sqlite_url, T0)["status"] == "CANCELED"
    wait_until(lambda: (p := symbol_row(second, SOL).position) is not None and p.contracts == filled, timeout=10,
               message="the symbol's position equals the exchange's")
    assert position(sim, SOL) == filled
    second.symbol_actors()[SOL].tell(signal(SOL, t=T0 + MINUTE, price="160"))
    wait_until(lambda: events(second, reason=Reason.POSITION_OPEN.value), timeout=10, message="POSITION_OPEN")
    quiet(second)
    assert symbol_row(second, SOL).position.contracts == filled
    assert check_promise(sim, sqlite_url, second.status()) == []


# --- case 10 ----------------------------------------------------------------------------------------------

def failing_and_timed(times: list[float]) -> Callable[[Any], Any]:
    """A proxy transform: every answer becomes `success` without its list (unreadable); each time is recorded."""
    def change(doc: Any) -> Any:
        times.append(time.monotonic())
        return {"result": "success", "serverTime": doc.get("serverTime") if isinstance(doc, dict) else None}
    return change


def _stopped_while_unknown(sim: SimulatorHandle, live_system: Callable[..., TradingSystem], database_url: str) -> str:
    """An entry at T0 whose answer is lost (it fills on the exchange); the bot stops while its outcome is unknown.
    Returns the intent's client order id."""
    first = ready(live_system())
    sim.admin.schedule_fault("accept_then_drop", endpoint="sendorder", count=1)
    first.symbol_actors()[BTC].tell(signal(t=T0))
    wait_until(lambda: state_of(database_url, T0) == "UNKNOWN", timeout=10, message="the send's outcome unknown")
    first.stop()
    return intent_for(database_url, T0)["client_order_id"]


@pytest.mark.timeout(60)
def test_recovered_intent_whose_first_lookups_fail_is_looked_up_again_with_backoff_and_resolved(
        sim, live_system, proxied_system, proxy, sqlite_url) -> None:
    """Case 10: an entry's answer is lost (it filled) and the bot stops while its outcome is unknown. After the
    restart orders/status answers are unreadable (the proxy) for the first three lookups: the recovered intent is
    looked up again with growing pauses, status shows why it waits (and, after three failed lookups, BLOCKED with
    the reason and the way out); once orders/status answers again it is found FILLED, never re-sent, its fill
    stored, the symbol trading. The previous design tried the lookup once after a restart and never again."""
    cid = _stopped_while_unknown(sim, live_system, sqlite_url)
    assert len(placed_sends(sim, cid)) == 1 and exchange_fills(sim, cid)  # it filled on the exchange

    failed: list[float] = []
    rule = proxy.transform("orders/status", failing_and_timed(failed), times=None)
    second = ready(proxied_system())
    waiting = symbol_row(second)
    assert waiting.state is SymbolState.BLOCKED and cid in waiting.blocked  # a reason while it waits
    wait_until(lambda: len(failed) >= 3, timeout=20, message="three failed lookups")
    wait_until(lambda: "resolve" in symbol_row(second).blocked, timeout=5, message="BLOCKED with the way out")
    blocked = symbol_row(second)
    assert blocked.state is SymbolState.BLOCKED and cid in blocked.blocked
    assert state_of(sqlite_url, T0) == "UNKNOWN" and len(sends(sim, cid)) == 1
    gaps = [b - a for a, b in itertools.pairwise(failed[:3])]
    assert gaps[0] >= 1.5 and gaps[1] >= gaps[0] + 1.0, f"no back-off between lookups: {gaps}"
    rule.clear()

    wait_until(lambda: state_of(sqlite_url, T0) == "FILLED", timeout=20, message="found FILLED")
    quiet(second)
    row = intent_for(sqlite_url, T0)
    assert row["sends"] == 1 and len(sends(sim, cid)) == 1
    assert_fills_stored_once(sim, sqlite_url, cid)
    assert position(sim, BTC) == Decimal(row["amount"])
    status = symbol_row(second)
    assert status.pending_orders == () and "search failed" not in status.blocked  # the lookup block is lifted
    assert check_promise(sim, sqlite_url, second.status()) == []


@pytest.mark.timeout(45)
def test_recovered_intent_that_filled_before_the_restart_counts_its_fill_once_in_the_symbols_position(
        sim, live_system, sqlite_url) -> None:
    """Case 10 (found while testing it; also case 3's restart): an entry's answer is lost, it fills, the bot stops
    while its outcome is unknown. The restart's reconciliation reads the position (which holds the fill); the
    recovered intent is then found FILLED. Its fill must count once: the symbol's position equals the exchange's,
    the symbol is not BLOCKED by a made-up mismatch, and a later entry is refused POSITION_OPEN with the real
    position. Today the symbol counts the fill twice (0.0028 for 0.0014 on the exchange) and blocks."""
    cid = _stopped_while_unknown(sim, live_system, sqlite_url)
    amount = Decimal(intent_for(sqlite_url, T0)["amount"])
    assert position(sim, BTC) == amount  # filled before the restart

    second = ready(live_system())
    wait_until(lambda: state_of(sqlite_url, T0) == "FILLED", timeout=20, message="found FILLED")
    quiet(second)
    second.symbol_actors()[BTC].tell(signal(t=T0 + MINUTE))
    wait_until(lambda: events(second, reason=Reason.POSITION_OPEN.value), timeout=10, message="POSITION_OPEN")
    quiet(second)
    assert len(sends(sim, cid)) == 1
    [refusal] = events(second, reason=Reason.POSITION_OPEN.value)
    assert f"position {amount} is open" in refusal.detail
    assert events(second, reason=Reason.EXCHANGE_MISMATCH.value) == []
    status = symbol_row(second)
    assert status.state is SymbolState.TRADING and status.blocked == ""
    assert check_promise(sim, sqlite_url, second.status()) == []


@pytest.mark.timeout(45)
def test_partial_fill_hidden_past_the_cancel_is_collected_later_and_stored(sim, proxied_system, proxy,
                                                                           sqlite_url) -> None:
    """Case 8 (the fills endpoint lags longer): the partial fill stays hidden from `fills` and `openorders` for
    8 s after the time-out cancel, longer than the gateway's fills look-back (skew + history lag). The cancel
    answer gives the partial amount (CANCELED with it, the next entry refused POSITION_OPEN); the fill itself is
    collected once `fills` shows it, from the order's own send time, and stored once. The previous design lost the
    fill and let the next entry out."""
    cancel_seen: list[float] = []
    system, cid = _resting_sol_entry(proxied_system, sqlite_url, limit_timeout_s=4)
    [order] = placed_sends(sim, cid)

    def hidden() -> bool:
        return not cancel_seen or time.monotonic() < cancel_seen[0] + 8.0

    rule_fills = proxy.transform("fills", hide_fills_of({order["order_id"]}, lambda: not hidden()), times=None)
    proxy.transform("openorders", hide_fills_of({order["order_id"]}, lambda: not hidden()), times=None)
    proxy.transform("cancelorder", lambda doc: cancel_seen.append(time.monotonic()), times=None)
    _partial_fill(sim, cid)
    wait_until(lambda: state_of(sqlite_url, T0) == "CANCELED", timeout=15, message="cancelled at its time-out")
    filled = sum(Decimal(str(f["size"])) for f in exchange_fills(sim, cid))
    row = intent_for(sqlite_url, T0)
    assert Decimal(row["filled"]) == filled and row["reason"] == Reason.CANCELED_BY_TIMEOUT.value
    assert stored_fills(sqlite_url, cid) == []  # still hidden
    system.symbol_actors()[SOL].tell(signal(SOL, t=T0 + MINUTE, price="160"))
    wait_until(lambda: events(system, reason=Reason.POSITION_OPEN.value), timeout=10, message="POSITION_OPEN")
    wait_until(lambda: not hidden(), timeout=15, message="the fills endpoint shows the fill again")
    applied = rule_fills.applied
    wait_until(lambda: stored_fills(sqlite_url, cid), timeout=6, message="the late fill collected")
    quiet(system)
    assert applied > 0
    assert assert_fills_stored_once(sim, sqlite_url, cid) == filled
    assert intent_for(sqlite_url, T0)["status"] == "CANCELED" and position(sim, SOL) == filled
    assert intent_for(sqlite_url, T0 + MINUTE) is None and len(sends(sim, cid)) == 1
    assert check_promise(sim, sqlite_url, system.status()) == []
