"""The simulator's Kraken rules, each through the real ccxt client, by default and with its switch flipped."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote as urlquote

import ccxt
import pytest

from simulator import AdminClient, SimulatorHandle, sign, start_simulator
from simulator.orders import iso
from tests.simulator.conftest import boot

BTC, ETH, LTC = "BTC/USD:USD", "ETH/USD:USD", "LTC/USD:USD"
LTC_SIDE = Decimal("412.5")  # the whole displayed side of LTC's book: 7.5 * (1 + 2 + ... + 10)

pytestmark = pytest.mark.timeout(30)




def now(sim: SimulatorHandle) -> int:
    """The simulator's clock."""
    return sim.admin.now()["now"]


def publish(sim: SimulatorHandle) -> None:
    """Step past the history's publication lag."""
    sim.admin.step(ms=sim.config.history_lag_ms + 1)


def bid(sim: SimulatorHandle, symbol: str) -> float:
    """Current best bid."""
    return float(sim.admin.quote(symbol)["bid"])  # type: ignore[arg-type]


def events(client: ccxt.krakenfutures, **params: Any) -> list[tuple[str, dict[str, Any]]]:
    """Every order-history element (one page) as (event name, payload)."""
    page = client.history_get_orders(params)
    return [next(iter(e["event"].items())) for e in page["elements"]]


def raw_post(sim: SimulatorHandle, path: str, body: str) -> dict[str, Any]:
    """A signed form POST that ccxt cannot build (batchorder's documented `ProcessBefore` field)."""
    import urllib.request

    endpoint = path[len("/derivatives"):]
    headers = {"APIKey": sim.api_key, "Authent": sign(sim.api_secret, endpoint, body),
               "Content-Type": "application/x-www-form-urlencoded"}
    request = urllib.request.Request(sim.base_url + path, data=body.encode(), method="POST", headers=headers)
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


# -- 1. cliOrdId ----------------------------------------------------------------------------------
def test_cli_ord_id_is_unique_among_open_orders_only(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "x"})
    again = client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "x"})  # filled: free
    resting = client.create_order(BTC, "limit", "buy", 0.01, bid(sim, BTC) - 100, {"clientOrderId": "x"})
    with pytest.raises(ccxt.DuplicateOrderId):
        client.create_order(BTC, "limit", "buy", 0.01, bid(sim, BTC) - 200, {"clientOrderId": "x"})
    # orders/status by the id answers every order that carried it within the window, the refused one too
    statuses = client.privateGetOrdersStatus({"cliOrdIds": "x"})["orders"]
    assert sorted(s["status"] for s in statuses) == ["ENTERED_BOOK", "FULLY_EXECUTED", "FULLY_EXECUTED", "REJECTED"]
    [refused] = [s for s in statuses if s["status"] == "REJECTED"]
    assert refused["error"] == "CLIENT_ORDER_ID_IN_USE"
    # cancel and edit by cliOrdId act on the open one
    edit = client.privatePostEditorder({"cliOrdId": "x", "size": "0.02"})["editStatus"]
    assert edit["status"] == "edited" and edit["orderId"] == resting["id"]
    cancel = client.privatePostCancelorder({"cliOrdId": "x"})["cancelStatus"]
    assert cancel["status"] == "cancelled" and cancel["order_id"] == resting["id"]
    assert again["id"] != resting["id"]


@pytest.mark.parametrize("switched", [{"cli_ord_id_scope": "history"}], indirect=True)
def test_cli_ord_id_scope_history_refuses_any_reuse(switched: tuple[SimulatorHandle, ccxt.krakenfutures]) -> None:
    _, client = switched
    client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "h"})
    with pytest.raises(ccxt.DuplicateOrderId):
        client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "h"})


@pytest.mark.parametrize("switched", [{"cli_ord_id_scope": "none"}], indirect=True)
def test_cli_ord_id_scope_none_checks_nothing(switched: tuple[SimulatorHandle, ccxt.krakenfutures]) -> None:
    sim, client = switched
    first = client.create_order(BTC, "limit", "buy", 0.01, bid(sim, BTC) - 100, {"clientOrderId": "n"})
    client.create_order(BTC, "limit", "buy", 0.01, bid(sim, BTC) - 200, {"clientOrderId": "n"})
    assert [o["clientOrderId"] for o in client.fetch_open_orders()] == ["n", "n"]
    assert client.privatePostCancelorder({"cliOrdId": "n"})["cancelStatus"]["order_id"] == first["id"]


# -- 2. processBefore ------------------------------------------------------------------------------
def test_process_before_in_the_past_places_nothing(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    past, future = iso(now(sim) - 1), iso(now(sim) + 60_000)
    late = client.privatePostSendorder({"orderType": "mkt", "symbol": "PF_XBTUSD", "side": "buy", "size": "0.01",
                                        "cliOrdId": "pb-1", "processBefore": past})["sendStatus"]
    assert late["status"] == "wouldProcessAfterSpecifiedTime" and "order_id" not in late
    assert late["orderEvents"] == [] and late["cliOrdId"] == "pb-1"
    order = client.create_order(BTC, "limit", "buy", 0.01, bid(sim, BTC) - 100, {"processBefore": past})
    assert order["id"] is None and order["info"]["status"] == "wouldProcessAfterSpecifiedTime"
    assert client.fetch_open_orders() == [] and client.fetch_positions() == [] and client.fetch_my_trades() == []
    assert client.privateGetOrdersStatus({"cliOrdIds": "pb-1"})["orders"] == []
    publish(sim)
    assert events(client) == []  # never placed, so never in the history either
    ok = client.create_order(BTC, "market", "buy", 0.01, None, {"processBefore": future})
    assert ok["filled"] == 0.01
    with pytest.raises(ccxt.BadRequest):
        client.create_order(BTC, "market", "buy", 0.01, None, {"processBefore": "soon"})
    record = sim.admin.order_requests(symbol=BTC)
    assert [(r["status"], r["processBefore"]) for r in record] == [
        ("wouldProcessAfterSpecifiedTime", past), ("wouldProcessAfterSpecifiedTime", past), ("placed", future)]


def test_process_before_on_editorder_cancelorder_and_batchorder(sim: SimulatorHandle,
                                                                client: ccxt.krakenfutures) -> None:
    resting = client.create_order(BTC, "limit", "buy", 0.01, bid(sim, BTC) - 100, {"clientOrderId": "e-1"})
    past = iso(now(sim))  # processing exactly at processBefore is too late
    edit = client.privatePostEditorder({"orderId": resting["id"], "size": "0.02", "processBefore": past})
    assert edit["editStatus"]["status"] == "wouldProcessAfterSpecifiedTime"
    cancel = client.privatePostCancelorder({"order_id": resting["id"], "processBefore": past})
    assert cancel["cancelStatus"]["status"] == "wouldProcessAfterSpecifiedTime"
    assert [o["amount"] for o in client.fetch_open_orders()] == [0.01]
    batch = json.dumps({"batchOrder": [
        {"order": "send", "order_tag": "1", "orderType": "mkt", "symbol": "PF_XBTUSD", "side": "buy", "size": 0.01},
        {"order": "cancel", "order_id": resting["id"]}]})
    late = raw_post(sim, "/derivatives/api/v3/batchorder", f"json={batch}&ProcessBefore={urlquote(past)}")
    assert [s["status"] for s in late["batchStatus"]] == ["wouldProcessAfterSpecifiedTime"] * 2
    assert len(client.fetch_open_orders()) == 1 and client.fetch_positions() == []
    # ccxt can only put processBefore inside the json (undocumented): ignored, the batch runs
    done = client.create_orders([{"symbol": BTC, "type": "market", "side": "buy", "amount": 0.01}],
                                {"processBefore": past})
    assert done[0]["status"] == "closed"


@pytest.mark.parametrize("switched", [{"honour_process_before": False}], indirect=True)
def test_process_before_switched_off_is_ignored(switched: tuple[SimulatorHandle, ccxt.krakenfutures]) -> None:
    sim, client = switched
    order = client.create_order(BTC, "market", "buy", 0.01, None, {"processBefore": iso(now(sim) - 60_000)})
    assert order["filled"] == 0.01


# -- 3. orders/status -----------------------------------------------------------------------------
def test_orders_status_values_and_five_second_window(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    with pytest.raises(ccxt.OrderImmediatelyFillable):
        client.create_order(BTC, "limit", "buy", 0.01, bid(sim, BTC) + 500, {"postOnly": True, "clientOrderId": "p"})
    partial = client.privatePostSendorder({"orderType": "mkt", "symbol": "PF_LTCUSD", "side": "buy", "size": "500",
                                           "cliOrdId": "m"})["sendStatus"]
    assert partial["status"] == "placed"
    answer = {s["order"]["cliOrdId"]: s
              for s in client.privateGetOrdersStatus({"orderIds": [], "cliOrdIds": ["p", "m"]})["orders"]}
    assert answer["p"]["status"] == "REJECTED" and answer["p"]["error"] == "POST_WOULD_EXECUTE"
    assert answer["m"]["status"] == "CANCELLED" and answer["m"]["order"]["filled"] == float(LTC_SIDE)
    sim.admin.step(ms=4_999)
    assert len(client.privateGetOrdersStatus({"orderIds": [], "cliOrdIds": ["p", "m"]})["orders"]) == 2
    sim.admin.step(ms=1)
    assert client.privateGetOrdersStatus({"orderIds": [], "cliOrdIds": ["p", "m"]})["orders"] == []


# -- 4. fills ---------------------------------------------------------------------------------------
def test_fills_newest_hundred_and_last_fill_time(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    for _ in range(105):
        client.privatePostSendorder({"orderType": "mkt", "symbol": "PF_DOGEUSD", "side": "buy", "size": "10"})
        sim.admin.step(ms=10)
    fills = client.privateGetFills()["fills"]
    assert len(fills) == 100 and fills == sorted(fills, key=lambda f: f["fillTime"], reverse=True)
    older = client.privateGetFills({"lastFillTime": fills[-1]["fillTime"]})["fills"]
    assert len(older) == 5 and all(f["fillTime"] < fills[-1]["fillTime"] for f in older)


# -- 5. order history -------------------------------------------------------------------------------
def test_history_lags_pages_by_time_and_holds_every_event(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    client.cancel_all_orders_after(5_000)  # dead man's switch (ccxt takes ms)
    start = now(sim)
    b = bid(sim, BTC)
    user = client.create_order(BTC, "limit", "buy", 0.01, b - 100, {"clientOrderId": "u"})
    client.cancel_order(user["id"])
    engine = client.create_order(BTC, "limit", "buy", 0.01, b - 200, {"clientOrderId": "dms"})
    client.privatePostSendorder({"orderType": "mkt", "symbol": "PF_LTCUSD", "side": "buy", "size": "500",
                                 "cliOrdId": "ioc"})
    with pytest.raises(ccxt.OrderNotFillable):
        client.create_order(BTC, "limit", "buy", 0.01, b - 300, {"timeInForce": "ioc", "clientOrderId": "rej"})
    resting = client.create_order(ETH, "limit", "buy", 1.0, round(bid(sim, ETH) - 30, 1), {"clientOrderId": "part"})
    sim.admin.set_price(ETH, bid(sim, ETH) - 60)  # one partial fill now (0.45 of 1.0)
    assert events(client) == []  # nothing published yet: history_lag_ms
    sim.admin.step(seconds=6)  # the dead man's switch fires; the ETH order fills further tick by tick
    publish(sim)
    seen = events(client, sort="asc", since=start)
    names = [(name, p.get("reason"), (p.get("order") or p.get("newOrder"))["clientId"]) for name, p in seen]
    assert ("OrderCancelled", "cancelled_by_user", "u") in names
    assert ("OrderCancelled", "dead_man_switch", "dms") in names, names
    assert ("OrderCancelled", "ioc_would_not_execute_reason", "ioc") in names
    assert ("OrderRejected", "ioc_would_not_execute", "rej") in names
    assert ("OrderUpdated", "partial_fill", "part") in names and ("OrderUpdated", "full_fill", "part") in names
    placed = [p["order"] for name, p in seen if name == "OrderPlaced" and p["order"]["clientId"] == "ioc"]
    assert placed[0]["filled"] == str(LTC_SIDE) and placed[0]["uid"]
    assert {p["order"]["uid"] for name, p in seen if name == "OrderCancelled"} >= {user["id"], engine["id"]}
    assert resting["id"] in {p["newOrder"]["uid"] for name, p in seen if name == "OrderUpdated"}
    # paging: count pages with a continuation token, newest first by default, same elements as one asc page
    pages, params = [], {"count": 3, "since": start}
    while True:
        page = client.history_get_orders(params)
        assert int(page["len"]) == len(page["elements"]) <= 3
        pages.extend(page["elements"])
        if "continuationToken" not in page:
            break
        params = {**params, "continuation_token": page["continuationToken"]}
    assert [e["uid"] for e in pages] == [e["uid"] for e in reversed(client.history_get_orders(
        {"sort": "asc", "since": start})["elements"])]
    stamps = [int(e["timestamp"]) for e in pages]
    assert stamps == sorted(stamps, reverse=True)
    middle = stamps[len(stamps) // 2]
    assert all(int(e["timestamp"]) < middle for e in client.history_get_orders({"before": middle})["elements"])
    with pytest.raises(ccxt.BadRequest):
        client.history_get_orders({"continuation_token": "not-a-token"})


@pytest.mark.parametrize("switched", [{"history_lag_ms": 0}], indirect=True)
def test_history_without_lag(switched: tuple[SimulatorHandle, ccxt.krakenfutures]) -> None:
    _, client = switched
    client.create_order(BTC, "market", "buy", 0.01)
    assert [name for name, _ in events(client)] == ["OrderPlaced"]


# -- 6. market orders against the finite book ----------------------------------------------------------
def test_market_order_walks_the_book_and_cancels_the_remainder(sim: SimulatorHandle,
                                                               client: ccxt.krakenfutures) -> None:
    book = client.fetch_order_book(LTC)
    assert sum(Decimal(str(a[1])) for a in book["asks"]) == LTC_SIDE and len(book["asks"]) == 10
    status = client.privatePostSendorder({"orderType": "mkt", "symbol": "PF_LTCUSD", "side": "buy",
                                          "size": "500", "cliOrdId": "big"})["sendStatus"]
    kinds = [e["type"] for e in status["orderEvents"]]
    assert kinds == ["EXECUTION"] * 10 + ["CANCEL"]
    assert [e["price"] for e in status["orderEvents"][:10]] == [a[0] for a in book["asks"]]
    assert status["orderEvents"][-1]["order"]["filled"] == float(LTC_SIDE)
    fills = [f for f in client.fetch_my_trades(LTC)]
    assert len(fills) == 10 and sum(Decimal(str(f["amount"])) for f in fills) == LTC_SIDE
    assert client.fetch_open_orders() == []  # never rests
    assert client.fetch_order_book(LTC)["asks"] == []  # taken until the next tick
    sim.admin.step(seconds=1)
    assert sum(Decimal(str(a[1])) for a in client.fetch_order_book(LTC)["asks"]) == LTC_SIDE
    ordinary = client.create_order(BTC, "market", "buy", 0.015)  # ~1000 USD fills at once
    assert ordinary["filled"] == 0.015


def test_market_order_protection_is_one_percent_from_mark(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    sim.admin.set_price(LTC, 70.0, mark_premium=-0.05)  # mark 5% under the book: no ask within 1% of mark
    with pytest.raises(ccxt.OrderNotFillable):
        client.create_order(LTC, "market", "buy", 1)
    assert client.fetch_positions() == []


@pytest.mark.parametrize("switched", [{"market_fill": "touch"}], indirect=True)
def test_market_fill_touch_fills_everything_at_the_touch(switched: tuple[SimulatorHandle, ccxt.krakenfutures]) -> None:
    sim, client = switched
    ask = float(sim.admin.quote(LTC)["ask"])  # type: ignore[arg-type]
    order = client.create_order(LTC, "market", "buy", 500)
    assert order["filled"] == 500 and order["average"] == ask


# -- 7. resting orders fill partially -----------------------------------------------------------------
def test_resting_order_fills_partially_tick_by_tick(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    limit = round(bid(sim, ETH) - 30, 1)
    order = client.create_order(ETH, "limit", "buy", 1.0, limit)
    sim.admin.set_price(ETH, limit - 30)
    [working] = client.fetch_open_orders()
    assert working["filled"] == 0.45 and working["remaining"] == 0.55
    status = client.privateGetOrdersStatus({"orderIds": [order["id"]]})["orders"][0]
    assert status["status"] == "ENTERED_BOOK" and status["updateReason"] == "PARTIAL_FILL"
    sim.admin.step(seconds=2)
    assert client.fetch_open_orders() == []
    fills = client.fetch_my_trades(ETH)
    assert [f["amount"] for f in fills] == [0.45, 0.45, 0.1] and len({f["id"] for f in fills}) == 3
    assert all(f["price"] == limit and f["takerOrMaker"] == "maker" for f in fills)


def test_reduce_only_resting_order_stops_at_the_position(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    client.create_order(ETH, "market", "buy", 0.3)
    limit = round(bid(sim, ETH) + 20, 1)
    client.create_order(ETH, "limit", "sell", 1.0, limit, {"reduceOnly": True})
    sim.admin.set_price(ETH, limit + 30)
    assert client.fetch_positions() == [] and client.fetch_open_orders() == []


@pytest.mark.parametrize("switched", [{"resting_fill": "full"}], indirect=True)
def test_resting_fill_full_fills_at_once(switched: tuple[SimulatorHandle, ccxt.krakenfutures]) -> None:
    sim, client = switched
    limit = round(bid(sim, ETH) - 30, 1)
    client.create_order(ETH, "limit", "buy", 1.0, limit)
    sim.admin.set_price(ETH, limit - 30)
    assert client.fetch_open_orders() == [] and [f["amount"] for f in client.fetch_my_trades(ETH)] == [1.0]


# -- 8. the late fault ------------------------------------------------------------------------------------
def test_late_fault_processes_after_the_client_gave_up(sim: SimulatorHandle) -> None:
    client = sim.client(timeout_ms=500)
    client.load_markets()
    sim.admin.schedule_fault("late", endpoint="sendorder", delay_ms=800, late_ms=3_000)
    with pytest.raises(ccxt.NetworkError):
        client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "late-1",
                                                                "processBefore": iso(now(sim) + 10_000)})
    assert client.fetch_positions() == [] and sim.admin.order_requests(cli_ord_id="late-1") == []
    sim.admin.step(ms=2_999)
    assert client.fetch_positions() == []
    sim.admin.step(ms=1)
    assert client.fetch_positions()[0]["contracts"] == 0.01
    [record] = sim.admin.order_requests(cli_ord_id="late-1")
    assert record["fault"] == "late" and record["status"] == "placed" and record["time"] - record["received"] == 3_000


def test_late_fault_after_process_before_is_rejected(sim: SimulatorHandle) -> None:
    client = sim.client(timeout_ms=500)
    client.load_markets()
    sim.admin.schedule_fault("late", endpoint="sendorder", delay_ms=800, late_ms=3_000)
    with pytest.raises(ccxt.NetworkError):
        client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "late-2",
                                                                "processBefore": iso(now(sim) + 2_000)})
    sim.admin.step(seconds=5)
    assert client.fetch_positions() == []
    [record] = sim.admin.order_requests(cli_ord_id="late-2")
    assert record["status"] == "wouldProcessAfterSpecifiedTime" and record["fault"] == "late"


def test_late_fault_as_a_probability_on_a_real_clock() -> None:
    with start_simulator(seed=3, rate_limit=False, advance_interval_s=0.02,
                         faults={"late": 1.0, "hold_ms": 300, "late_ms": 200}) as sim:
        client = sim.client(timeout_ms=2_000)
        client.load_markets()
        with pytest.raises(ccxt.NetworkError):
            client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "late-3"})
        sim.admin.set_faults(late=0.0)
        deadline = time.monotonic() + 5
        while not sim.admin.order_requests(cli_ord_id="late-3") and time.monotonic() < deadline:
            time.sleep(0.02)
        [record] = sim.admin.order_requests(cli_ord_id="late-3")
        assert record["status"] == "placed" and record["fault"] == "late"


# -- 9. the order request record ------------------------------------------------------------------------
def test_order_request_record_over_http(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    admin = AdminClient(sim.base_url)
    client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "i-1", "reduceOnly": False})
    client.create_orders([{"symbol": ETH, "type": "market", "side": "sell", "amount": 0.1,
                           "params": {"clientOrderId": "i-2"}}])
    resting = client.create_order(BTC, "limit", "buy", 0.01, bid(sim, BTC) - 100, {"clientOrderId": "i-3"})
    client.edit_order(resting["id"], BTC, "limit", "buy", 0.02, bid(sim, BTC) - 100)
    rows = admin.order_requests()
    assert [(r["endpoint"], r["kind"], r["cliOrdId"], r["symbol"], r["side"], r["status"]) for r in rows] == [
        ("sendorder", "send", "i-1", "PF_XBTUSD", "buy", "placed"),
        ("batchorder", "send", "i-2", "PF_ETHUSD", "sell", "placed"),
        ("sendorder", "send", "i-3", "PF_XBTUSD", "buy", "placed"),
        ("editorder", "edit", "i-3", "PF_XBTUSD", "buy", "edited"),
    ]
    assert rows[0]["size"] == "0.01" and rows[0]["reduceOnly"] is False and rows[0]["filled"] == "0.01"
    assert [r["cliOrdId"] for r in admin.order_requests(cli_ord_id="i-3")] == ["i-3", "i-3"]
    assert [r["kind"] for r in admin.order_requests(kind="send", symbol=ETH)] == ["send"]


# -- state file -----------------------------------------------------------------------------------------
def test_state_keeps_partial_fills_the_record_lagged_history_and_reused_ids(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    settings = {"state_file": str(path), "start_time_ms": 1_780_000_000_000}
    with boot(**settings) as first:
        client = first.client(timeout_ms=5_000)
        client.load_markets()
        client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "r"})
        limit = round(bid(first, ETH) - 30, 1)
        client.create_order(ETH, "limit", "buy", 1.0, limit, {"clientOrderId": "r"})
        first.admin.set_price(ETH, limit - 30)
        before = (client.fetch_open_orders(), first.admin.order_requests(),
                  len(first.simulator.exchange.order_history))
    with boot(**{**settings, "start_time_ms": None}) as second:
        client = second.client(timeout_ms=5_000)
        client.load_markets()
        assert client.fetch_open_orders() == before[0] and before[0][0]["filled"] == 0.45
        assert second.admin.order_requests() == before[1]
        statuses = client.privateGetOrdersStatus({"cliOrdIds": "r"})["orders"]
        assert [s["status"] for s in statuses] == ["FULLY_EXECUTED", "ENTERED_BOOK"]  # both orders that carried it
        with pytest.raises(ccxt.DuplicateOrderId):  # the partially filled one is still open
            client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "r"})
        assert events(client) == []  # still inside the lag after the restart
        publish(second)
        assert len(events(client)) >= before[2]
