"""Trigger orders exactly as Kraken's, end to end through the real ccxt client against a running simulator.

Stop-loss, take-profit and trailing stops placed with ccxt's own parameters (stopLossPrice, takeProfitPrice,
triggerPrice, triggerSignal, reduceOnly, clientOrderId), listed by fetch_open_orders with Kraken's fields, fired by
the mark and filled through the finite book, edited and cancelled through ccxt; reduce-only triggers that never open
a position; the dead man's switch cancelling resting and trigger orders. Every switch added for them is shown from
both sides. The clock is stepped: prices move only when a test moves them, so nothing waits or sleeps.
"""

from __future__ import annotations

import json
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

import ccxt
import pytest

from simulator import SimulatorHandle
from simulator.orders import Order
from tests.simulator.conftest import boot

BTC, ETH, LTC = "BTC/USD:USD", "ETH/USD:USD", "LTC/USD:USD"
LTC_SIDE = 412.5  # the whole displayed side of LTC's book: 7.5 * (1 + 2 + ... + 10)

pytestmark = pytest.mark.timeout(30)




def price(sim: SimulatorHandle, symbol: str, kind: str = "mark") -> float:
    """One of a market's current prices (bid, ask, last, mark, index)."""
    return float(sim.admin.quote(symbol)[kind])  # type: ignore[arg-type]


def publish(sim: SimulatorHandle) -> None:
    """Step past the history's publication lag."""
    sim.admin.step(ms=sim.config.history_lag_ms + 1)


def trigger_events(client: ccxt.krakenfutures) -> list[tuple[str, dict[str, Any]]]:
    """Every published trigger-history event, oldest first, as (name, payload)."""
    elements = client.history_get_triggers({"sort": "asc"})["elements"]
    return [next(iter(e["event"].items())) for e in elements]


def order_events(client: ccxt.krakenfutures) -> list[tuple[str, dict[str, Any]]]:
    """Every published order-history event, oldest first, as (name, payload)."""
    elements = client.history_get_orders({"sort": "asc"})["elements"]
    return [next(iter(e["event"].items())) for e in elements]


def long_btc(sim: SimulatorHandle, client: ccxt.krakenfutures, amount: float = 0.04) -> None:
    """Open a long BTC position within the best level, then let a second pass (distinct fill times)."""
    client.create_order(BTC, "market", "buy", amount)
    sim.admin.step(seconds=1)


# -- stop-loss and take-profit through ccxt ------------------------------------------------------------
def test_stop_loss_is_listed_with_kraken_fields_fires_on_the_mark_and_closes_through_the_book(
        sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    long_btc(sim, client)
    stop = int(price(sim, BTC) * 0.97)
    placed = client.create_order(BTC, "market", "sell", 0.04, None, {
        "stopLossPrice": stop, "triggerSignal": "mark", "reduceOnly": True, "clientOrderId": "sl-1"})
    assert placed["status"] == "open" and placed["triggerPrice"] == stop and placed["reduceOnly"] is True
    assert placed["clientOrderId"] == "sl-1" and placed["amount"] == 0.04
    [listed] = client.fetch_open_orders(BTC)
    assert listed["id"] == placed["id"] and listed["type"] == "stop" and listed["status"] == "open"
    assert listed["triggerPrice"] == listed["stopPrice"] == stop and listed["reduceOnly"] is True
    assert listed["clientOrderId"] == "sl-1"
    assert (listed["amount"], listed["filled"], listed["remaining"]) == (0.04, 0.0, 0.04)
    assert listed["info"]["triggerSignal"] == "mark" and "limitPrice" not in listed["info"]  # a stop-market
    status = client.fetch_order(placed["id"])
    assert status["status"] == "open" and status["triggerPrice"] == stop and status["clientOrderId"] == "sl-1"
    assert status["info"]["status"] == "TRIGGER_PLACED" and status["info"]["order"]["type"] == "TRIGGER_ORDER"
    assert status["info"]["order"]["priceTriggerOptions"] == {
        "triggerPrice": stop, "triggerSide": "TRIGGER_BELOW", "triggerSignal": "MARK_PRICE", "triggerTime": None}

    # the last price falls through the stop but the mark (its signal) stays above it: nothing fires
    sim.admin.set_price(BTC, stop * 0.99, mark_premium=0.05)
    assert price(sim, BTC, "last") < stop < price(sim, BTC)
    assert [o["id"] for o in client.fetch_open_orders()] == [placed["id"]]
    # the mark crosses: the stop fires as a market order with 1% protection and closes the position
    sim.admin.set_price(BTC, stop * 0.995, mark_premium=0.0)
    mark = price(sim, BTC)
    assert client.fetch_positions() == [] and client.fetch_open_orders() == []
    sell = [t for t in client.fetch_my_trades(BTC) if t["order"] == placed["id"]]
    assert sum(t["amount"] for t in sell) == pytest.approx(0.04)
    assert all(mark * 0.99 <= t["price"] <= mark and t["takerOrMaker"] == "taker" for t in sell)
    done = client.fetch_order(placed["id"])
    assert done["status"] == "closed" and done["filled"] == 0.04
    assert done["info"]["status"] == "FULLY_EXECUTED" and done["info"]["updateReason"] == "STOP_ORDER_TRIGGERED"
    assert done["info"]["order"]["priceTriggerOptions"]["triggerTime"] is not None
    publish(sim)
    assert [name for name, _ in trigger_events(client)] == ["OrderTriggerPlaced", "OrderTriggerActivated"]
    assert placed["id"] in {o["id"] for o in client.fetch_closed_orders(params={"trigger": True})}
    placed_event = [p for name, p in order_events(client) if name == "OrderPlaced"][-1]
    assert placed_event["reason"] == "stop_order_triggered" and placed_event["order"]["uid"] == placed["id"]


def test_take_profit_on_the_mark_closes_the_position(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    long_btc(sim, client, 0.02)
    target = int(price(sim, BTC) * 1.03)
    placed = client.create_order(BTC, "market", "sell", 0.02, None, {
        "takeProfitPrice": target, "triggerSignal": "mark", "reduceOnly": True, "clientOrderId": "tp-1"})
    [listed] = client.fetch_open_orders()
    assert listed["type"] == "take_profit" and listed["triggerPrice"] == target and listed["reduceOnly"] is True
    assert listed["clientOrderId"] == "tp-1" and listed["amount"] == 0.02
    status = client.fetch_order(placed["id"])["info"]["order"]["priceTriggerOptions"]
    assert status["triggerSide"] == "TRIGGER_ABOVE"
    sim.admin.set_price(BTC, target * 0.995)
    assert len(client.fetch_open_orders()) == 1
    sim.admin.set_price(BTC, target * 1.005)
    assert client.fetch_positions() == [] and client.fetch_open_orders() == []


def test_trigger_price_entry_on_the_index_is_a_stop_on_kraken_spot_price(
        sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    level = int(price(sim, BTC, "index") * 1.02)
    placed = client.create_order(BTC, "market", "buy", 0.01, None, {"triggerPrice": level, "triggerSignal": "index"})
    assert placed["reduceOnly"] is False
    [listed] = client.fetch_open_orders()
    assert listed["type"] == "stop" and listed["info"]["triggerSignal"] == "spot"  # openorders: mark, last, spot
    options = client.fetch_order(placed["id"])["info"]["order"]["priceTriggerOptions"]
    assert options["triggerSignal"] == "SPOT_PRICE" and options["triggerSide"] == "TRIGGER_ABOVE"
    sim.admin.set_price(BTC, level * 1.005)
    assert client.fetch_positions()[0]["contracts"] == 0.01


def test_open_orders_are_newest_first_and_plain_orders_have_no_trigger_options(
        sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    bid = price(sim, BTC, "bid")
    first = client.create_order(BTC, "limit", "buy", 0.01, bid - 300)
    sim.admin.step(ms=10)
    second = client.create_order(BTC, "market", "buy", 0.01, None, {"triggerPrice": int(bid * 1.05)})
    raw = client.privateGetOpenorders()["openOrders"]  # ccxt re-sorts its parsed list oldest first
    assert [o["order_id"] for o in raw] == [second["id"], first["id"]]  # "sorted descending by receivedTime"
    plain = client.fetch_order(first["id"])["info"]["order"]
    assert "priceTriggerOptions" in plain and plain["priceTriggerOptions"] is None and plain["type"] == "ORDER"


# -- the finite book -------------------------------------------------------------------------------------------
def test_a_fired_stop_walks_the_book_and_the_rest_is_cancelled(sim: SimulatorHandle,
                                                                client: ccxt.krakenfutures) -> None:
    client.create_order(LTC, "market", "buy", 400)
    sim.admin.step(seconds=1)
    client.create_order(LTC, "market", "buy", 100)
    sim.admin.step(seconds=1)
    assert client.fetch_positions()[0]["contracts"] == 500
    stop = round(price(sim, LTC) * 0.97, 2)
    placed = client.create_order(LTC, "market", "sell", 500, None, {"stopLossPrice": stop, "triggerSignal": "mark"})
    sim.admin.set_price(LTC, stop * 0.99)
    fills = [t for t in client.fetch_my_trades(LTC) if t["order"] == placed["id"]]
    assert len(fills) == 10 and sum(t["amount"] for t in fills) == pytest.approx(LTC_SIDE)  # one fill per level
    prices = [t["price"] for t in fills]
    assert len(set(prices)) == 10 and max(prices) - min(prices) > 0  # slippage: each level worse than the last
    [position] = client.fetch_positions()
    assert position["side"] == "long" and position["contracts"] == pytest.approx(500 - LTC_SIDE)
    assert client.fetch_open_orders() == []  # the remainder never rests
    status = client.fetch_order(placed["id"])
    assert status["status"] == "canceled" and status["filled"] == LTC_SIDE
    publish(sim)
    cancelled = [p for name, p in order_events(client) if name == "OrderCancelled"]
    assert cancelled[-1]["order"]["uid"] == placed["id"] and cancelled[-1]["reason"] == "ioc_would_not_execute_reason"


def test_a_fired_stop_limit_rests_at_its_limit(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    long_btc(sim, client, 0.02)
    mark = price(sim, BTC)
    stop, limit = int(mark * 0.97), int(mark * 0.96)
    placed = client.create_order(BTC, "limit", "sell", 0.02, limit, {"stopLossPrice": stop, "triggerSignal": "mark"})
    [listed] = client.fetch_open_orders()
    assert listed["type"] == "stop" and float(listed["info"]["limitPrice"]) == limit
    sim.admin.set_price(BTC, limit * 0.98)  # the price gaps through the stop and the limit
    [resting] = client.fetch_open_orders()
    assert resting["id"] == placed["id"] and resting["type"] == "limit"
    assert float(resting["info"]["limitPrice"]) == limit
    assert "stopPrice" not in resting["info"] and client.fetch_positions()[0]["contracts"] == 0.02
    assert client.fetch_order(placed["id"])["info"]["status"] == "ENTERED_BOOK"
    sim.admin.set_price(BTC, limit * 1.01)  # back above the limit: it fills there, as maker
    assert client.fetch_positions() == []
    [fill] = [t for t in client.fetch_my_trades(BTC) if t["order"] == placed["id"]]
    assert fill["price"] == limit and fill["takerOrMaker"] == "maker"


# -- reduce-only triggers ----------------------------------------------------------------------------------------
def test_reduce_only_trigger_with_no_position_never_opens_one(sim: SimulatorHandle,
                                                              client: ccxt.krakenfutures) -> None:
    stop = int(price(sim, BTC) * 0.97)
    placed = client.create_order(BTC, "market", "sell", 0.02, None, {"stopLossPrice": stop, "triggerSignal": "mark",
                                                                      "clientOrderId": "orphan"})
    assert placed["status"] == "open"  # accepted although there is nothing to reduce (checked when it fires)
    sim.admin.set_price(BTC, stop * 0.99)
    assert client.fetch_positions() == [] and client.fetch_open_orders() == []
    status = client.fetch_order(placed["id"])["info"]
    assert status["status"] == "TRIGGER_ACTIVATION_FAILURE" and status["error"] == "WOULD_NOT_REDUCE_POSITION"
    publish(sim)
    [rejected] = [p for name, p in order_events(client) if name == "OrderRejected"]
    assert rejected["order"]["clientId"] == "orphan" and rejected["reason"] == "would_not_reduce_position"
    assert rejected["orderError"] == "WOULD_NOT_REDUCE_POSITION"


def test_reduce_only_trigger_larger_than_the_position_is_cut_to_it(sim: SimulatorHandle,
                                                                   client: ccxt.krakenfutures) -> None:
    long_btc(sim, client, 0.01)
    stop = int(price(sim, BTC) * 0.97)
    placed = client.create_order(BTC, "market", "sell", 0.03, None, {"stopLossPrice": stop})
    sim.admin.set_price(BTC, stop * 0.99)
    assert client.fetch_positions() == []  # flat, never short
    assert sum(t["amount"] for t in client.fetch_my_trades(BTC) if t["order"] == placed["id"]) == 0.01


def test_untriggered_reduce_only_order_stays_when_its_position_closes(sim: SimulatorHandle,
                                                                      client: ccxt.krakenfutures) -> None:
    long_btc(sim, client, 0.02)
    stop = int(price(sim, BTC) * 0.97)
    placed = client.create_order(BTC, "market", "sell", 0.02, None, {"stopLossPrice": stop})
    client.create_order(BTC, "market", "sell", 0.02, None, {"reduceOnly": True})  # the position closes
    assert client.fetch_positions() == []
    assert [o["id"] for o in client.fetch_open_orders()] == [placed["id"]]  # the stop is still there
    sim.admin.set_price(BTC, stop * 0.99)
    assert client.fetch_positions() == []  # and when it fires it is refused, never opening a short
    assert client.fetch_order(placed["id"])["info"]["status"] == "TRIGGER_ACTIVATION_FAILURE"


@pytest.mark.parametrize("switched", [{"reduce_only_orphans": "cancel"}], indirect=True)
def test_reduce_only_orphans_cancel_switch(switched: tuple[SimulatorHandle, ccxt.krakenfutures]) -> None:
    sim, client = switched
    long_btc(sim, client, 0.02)
    stop = int(price(sim, BTC) * 0.97)
    placed = client.create_order(BTC, "market", "sell", 0.02, None, {"stopLossPrice": stop})
    client.create_order(BTC, "market", "sell", 0.02, None, {"reduceOnly": True})
    assert client.fetch_open_orders() == []
    assert client.fetch_order(placed["id"])["info"]["updateReason"] == "WOULD_NOT_REDUCE_POSITION"
    publish(sim)
    assert trigger_events(client)[-1][0] == "OrderTriggerCancelled"
    assert trigger_events(client)[-1][1]["reason"] == "would_not_reduce_position"


# -- edit ----------------------------------------------------------------------------------------------------------
def test_edit_resizes_and_moves_a_stop_through_ccxt(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    long_btc(sim, client, 0.04)
    mark = price(sim, BTC)
    stop = int(mark * 0.97)
    placed = client.create_order(BTC, "market", "sell", 0.02, None, {"stopLossPrice": stop, "triggerSignal": "mark",
                                                                      "clientOrderId": "sl-e"})
    moved = stop - 500
    edited = client.edit_order(placed["id"], BTC, "market", "sell", 0.04, None, {"stopPrice": moved})
    assert edited["id"] == placed["id"] and edited["status"] == "open" and edited["triggerPrice"] == moved
    [listed] = client.fetch_open_orders()
    assert listed["amount"] == 0.04 and listed["triggerPrice"] == moved and listed["clientOrderId"] == "sl-e"
    assert client.fetch_order(placed["id"])["info"]["updateReason"] == "EDITED_BY_USER"
    # by cliOrdId, with Kraken's own parameters
    by_cli = client.privatePostEditorder({"cliOrdId": "sl-e", "size": "0.03", "stopPrice": str(moved - 100)})
    assert by_cli["editStatus"]["status"] == "edited" and by_cli["editStatus"]["orderId"] == placed["id"]
    # edit-order: stopPrice is "Required if old orderType is stp": a size alone is refused, nothing changes
    alone = client.privatePostEditorder({"orderId": placed["id"], "size": "0.01"})["editStatus"]
    assert alone["status"] == "invalidPrice"
    # ccxt sends triggerPrice as it is: not Kraken's parameter, so the stop price is missing and the edit refused
    with pytest.raises(ccxt.InvalidOrder):
        client.edit_order(placed["id"], BTC, "market", "sell", 0.03, None, {"triggerPrice": moved - 300})
    [listed] = client.fetch_open_orders()
    assert listed["amount"] == 0.03 and listed["triggerPrice"] == moved - 100
    # the stop fires at its new price, not the old one
    sim.admin.set_price(BTC, (stop + moved) / 2)
    assert client.fetch_positions()[0]["contracts"] == 0.04
    sim.admin.set_price(BTC, (moved - 100) * 0.995)
    assert client.fetch_positions()[0]["contracts"] == pytest.approx(0.01)
    publish(sim)
    names = [(name, p.get("reason")) for name, p in trigger_events(client)]
    assert names == [("OrderTriggerPlaced", "new_user_order"), ("OrderTriggerUpdated", "edited_by_user"),
                     ("OrderTriggerUpdated", "edited_by_user"), ("OrderTriggerEditRejected", "invalidPrice"),
                     ("OrderTriggerEditRejected", "invalidPrice"), ("OrderTriggerActivated", None)]
    updated = [p for name, p in trigger_events(client) if name == "OrderTriggerUpdated"][0]
    assert updated["oldOrderTrigger"]["triggerOptions"]["triggerPrice"] == str(stop)
    assert updated["newOrderTrigger"]["triggerOptions"]["triggerPrice"] == str(moved)
    assert updated["newOrderTrigger"]["quantity"] == "0.04"
    rejected = [p for name, p in trigger_events(client) if name == "OrderTriggerEditRejected"][0]
    assert rejected["orderError"] == "INVALID_PRICE" and rejected["attemptedOrderTrigger"]["quantity"] == "0.01"
    assert rejected["oldOrderTrigger"]["quantity"] == "0.03"


def test_edit_of_a_stop_limit_needs_both_prices(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    long_btc(sim, client, 0.02)
    mark = price(sim, BTC)
    stop, limit = int(mark * 0.97), int(mark * 0.96)
    placed = client.create_order(BTC, "limit", "sell", 0.02, limit, {"stopLossPrice": stop})
    only_stop = client.privatePostEditorder({"orderId": placed["id"], "stopPrice": str(stop - 10)})["editStatus"]
    assert only_stop["status"] == "invalidPrice"  # "for stp orders, limitPrice is also required"
    client.edit_order(placed["id"], BTC, "limit", "sell", 0.02, limit - 10, {"stopPrice": stop - 10})
    [listed] = client.fetch_open_orders()
    assert listed["triggerPrice"] == stop - 10 and float(listed["info"]["limitPrice"]) == limit - 10
    sim.admin.set_price(BTC, (limit - 10) * 0.98)  # it fires and rests as a limit: a stopPrice is refused now
    assert client.fetch_open_orders()[0]["type"] == "limit"
    with pytest.raises(ccxt.InvalidOrder, match="orderForEditNotAStop"):
        client.edit_order(placed["id"], BTC, "limit", "sell", 0.02, limit - 10, {"stopPrice": stop - 20})


@pytest.mark.parametrize("switched", [{"edit_requires_stop_price": False}], indirect=True)
def test_edit_requires_stop_price_switch_off(switched: tuple[SimulatorHandle, ccxt.krakenfutures]) -> None:
    sim, client = switched
    long_btc(sim, client, 0.04)
    stop = int(price(sim, BTC) * 0.97)
    placed = client.create_order(BTC, "market", "sell", 0.02, None, {"stopLossPrice": stop})
    alone = client.privatePostEditorder({"orderId": placed["id"], "size": "0.04"})["editStatus"]
    assert alone["status"] == "edited"
    [listed] = client.fetch_open_orders()
    assert listed["amount"] == 0.04 and listed["triggerPrice"] == stop


def _partly_filled_eth_order(sim: SimulatorHandle, client: ccxt.krakenfutures) -> str:
    """A resting ETH buy of 1.0 of which 0.45 (one book level) filled."""
    limit = round(price(sim, ETH, "bid") - 30, 1)
    order = client.create_order(ETH, "limit", "buy", 1.0, limit)
    sim.admin.set_price(ETH, limit - 30)
    sim.admin.set_price(ETH, limit + 30)  # back above the limit: it rests again, nothing crosses
    assert client.fetch_order(order["id"])["filled"] == 0.45
    return str(order["id"])


def test_edit_size_is_the_open_size_by_default_and_the_total_with_qty_mode_absolute(
        sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    order_id = _partly_filled_eth_order(sim, client)
    edit = client.privatePostEditorder
    assert edit({"orderId": order_id, "size": "0.2"})["editStatus"]["status"] == "edited"  # RELATIVE: open 0.2
    [listed] = client.fetch_open_orders()
    assert (listed["filled"], listed["remaining"], listed["amount"]) == (0.45, 0.2, 0.65)
    for below_or_at_filled in ("0.4", "0.45"):  # ABSOLUTE: the total, which must stay above what filled
        answer = edit({"orderId": order_id, "size": below_or_at_filled, "qtyMode": "ABSOLUTE"})["editStatus"]
        assert answer["status"] == "invalidSize"
    assert edit({"orderId": order_id, "size": "0.9", "qtyMode": "ABSOLUTE"})["editStatus"]["status"] == "edited"
    assert client.fetch_open_orders()[0]["remaining"] == pytest.approx(0.45)
    with pytest.raises(ccxt.BadRequest):
        edit({"orderId": order_id, "size": "0.9", "qtyMode": "TOTAL"})


@pytest.mark.parametrize("switched", [{"edit_qty_mode": "ABSOLUTE"}], indirect=True)
def test_edit_qty_mode_absolute_switch(switched: tuple[SimulatorHandle, ccxt.krakenfutures]) -> None:
    sim, client = switched
    order_id = _partly_filled_eth_order(sim, client)
    assert client.privatePostEditorder({"orderId": order_id, "size": "0.2"})["editStatus"]["status"] == "invalidSize"
    assert client.privatePostEditorder({"orderId": order_id, "size": "0.2", "qtyMode": "RELATIVE"})[
        "editStatus"]["status"] == "edited"


# -- cancel ----------------------------------------------------------------------------------------------------------
def test_cancel_trigger_orders_through_ccxt(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    long_btc(sim, client, 0.02)
    mark = price(sim, BTC)
    stop = client.create_order(BTC, "market", "sell", 0.02, None, {"stopLossPrice": int(mark * 0.97),
                                                                    "clientOrderId": "c-sl"})
    client.create_order(BTC, "market", "sell", 0.02, None, {"takeProfitPrice": int(mark * 1.03),
                                                            "clientOrderId": "c-tp"})
    cancelled = client.cancel_order(stop["id"])
    assert cancelled["id"] == stop["id"] and cancelled["status"] == "canceled" and cancelled["clientOrderId"] == "c-sl"
    with pytest.raises(ccxt.OrderNotFound):
        client.cancel_order(stop["id"])
    assert [o["clientOrderId"] for o in client.fetch_open_orders()] == ["c-tp"]
    [by_cli] = client.cancel_orders([], BTC, {"clientOrderIds": ["c-tp"]})
    assert by_cli["status"] == "canceled"
    assert client.fetch_open_orders() == [] and client.fetch_positions()[0]["contracts"] == 0.02
    assert client.fetch_order(stop["id"])["info"]["updateReason"] == "CANCELLED_BY_USER"
    publish(sim)
    assert [p["reason"] for name, p in trigger_events(client) if name == "OrderTriggerCancelled"] == [
        "cancelled_by_user", "cancelled_by_user"]
    assert stop["id"] in {o["id"] for o in client.fetch_canceled_orders(params={"trigger": True})}


# -- trailing stops ----------------------------------------------------------------------------------------------------
def _trailing(deviation: float, unit: str, **extra: Any) -> dict[str, Any]:
    """ccxt params for a Kraken trailing stop (ccxt passes orderType and the trailing fields through)."""
    return {"orderType": "trailing_stop", "trailingStopMaxDeviation": deviation, "trailingStopDeviationUnit": unit,
            "triggerSignal": "mark", "reduceOnly": True, **extra}


def test_trailing_stop_follows_the_mark_up_and_fires_on_the_reversal(sim: SimulatorHandle,
                                                                     client: ccxt.krakenfutures) -> None:
    long_btc(sim, client, 0.04)
    start = 60_000.0
    sim.admin.set_price(BTC, start)
    placed = client.create_order(BTC, "market", "sell", 0.04, None, _trailing(2, "PERCENT", clientOrderId="tr-1"))
    assert placed["triggerPrice"] == 58_800 and placed["reduceOnly"] is True and placed["clientOrderId"] == "tr-1"
    [listed] = client.fetch_open_orders()
    assert listed["type"] == "trailing_stop" and listed["triggerPrice"] == 58_800 and listed["amount"] == 0.04
    sim.admin.set_price(BTC, 65_000.0)  # up: the trigger follows, 2% under the mark
    assert client.fetch_open_orders()[0]["triggerPrice"] == 63_700
    assert client.fetch_order(placed["id"])["info"]["updateReason"] == "TRAILING_STOP_PRICE_UPDATED"
    sim.admin.set_price(BTC, 64_000.0)  # down, but less than 2%: the trigger never moves back
    assert client.fetch_open_orders()[0]["triggerPrice"] == 63_700 and client.fetch_positions()
    sim.admin.set_price(BTC, 63_600.0)  # the reversal reaches it: it fires and closes the position
    assert client.fetch_positions() == [] and client.fetch_open_orders() == []
    assert client.fetch_order(placed["id"])["info"]["order"]["priceTriggerOptions"]["triggerPrice"] == 63_700
    publish(sim)
    events = trigger_events(client)
    assert [name for name, _ in events] == ["OrderTriggerPlaced", "OrderTriggerUpdated", "OrderTriggerActivated"]
    assert events[0][1]["order"]["trailingStopOptions"] == {"maxDeviation": "2", "unit": "Percent"}
    assert events[1][1]["reason"] == "trailing_stop_price_updated"
    assert events[1][1]["oldOrderTrigger"]["triggerOptions"]["triggerPrice"] == "58800"
    assert events[1][1]["newOrderTrigger"]["triggerOptions"]["triggerPrice"] == "63700"


def test_buy_trailing_stop_in_quote_currency_follows_down(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    client.create_order(ETH, "market", "sell", 0.4)
    sim.admin.step(seconds=1)
    sim.admin.set_price(ETH, 3_000.0)
    placed = client.create_order(ETH, "market", "buy", 0.4, None, _trailing(30, "QUOTE_CURRENCY"))
    assert placed["triggerPrice"] == 3_030
    sim.admin.set_price(ETH, 2_900.0)
    assert client.fetch_open_orders()[0]["triggerPrice"] == 2_930
    sim.admin.set_price(ETH, 2_925.0)
    assert client.fetch_positions()[0]["side"] == "short"
    sim.admin.set_price(ETH, 2_935.0)
    assert client.fetch_positions() == []


def test_trailing_stop_rounds_towards_the_signal(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    long_btc(sim, client, 0.01)
    sim.admin.set_price(BTC, 60_123.0)
    placed = client.create_order(BTC, "market", "sell", 0.01, None, _trailing(1.5, "PERCENT"))
    exact = Decimal("60123") * Decimal("0.985")
    assert placed["triggerPrice"] == float(exact.to_integral_value(ROUND_CEILING))  # never more than 1.5% below
    client.cancel_order(placed["id"])
    bought = client.create_order(BTC, "market", "buy", 0.01, None, _trailing(1.5, "PERCENT", reduceOnly=False))
    assert bought["triggerPrice"] == float((Decimal("60123") * Decimal("1.015")).to_integral_value(ROUND_FLOOR))


def test_trailing_stop_is_validated_as_documented(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    long_btc(sim, client, 0.01)
    with pytest.raises(ccxt.BadRequest, match="requiredArgumentMissing"):
        client.create_order(BTC, "market", "sell", 0.01, None, {"orderType": "trailing_stop",
                                                                "trailingStopMaxDeviation": 2})
    with pytest.raises(ccxt.BadRequest, match="invalidArgument"):
        client.create_order(BTC, "market", "sell", 0.01, None, _trailing(2, "BASIS_POINTS"))
    refused = {
        "TRAILING_STOP_MAX_DEVIATION_TOO_LARGE": _trailing(60, "PERCENT", clientOrderId="big"),
        "TRAILING_STOP_MAX_DEVIATION_TOO_SMALL": _trailing(0.05, "PERCENT", clientOrderId="small"),
        "TRAILING_STOP_PERCENT_DEVIATION_EXCEEDS_MAX_DECIMAL_PLACES": _trailing(1.25, "PERCENT", clientOrderId="dp"),
        "TRAILING_STOP_QUOTE_DEVIATION_NOT_MULTIPLE_OF_TICK_SIZE": _trailing(10.5, "QUOTE_CURRENCY",
                                                                             clientOrderId="tick"),
        # the documented range (>= 0.1, <= 50) binds QUOTE_CURRENCY too by default
        "TRAILING_STOP_MAX_DEVIATION_TOO_LARGE ": _trailing(100, "QUOTE_CURRENCY", clientOrderId="usd"),
        "ORDER_CANNOT_HAVE_TRIGGER_PRICE": _trailing(2, "PERCENT", stopPrice=50_000, clientOrderId="stop"),
    }
    for params in refused.values():
        with pytest.raises(ccxt.InvalidOrder, match="invalidPrice"):
            client.create_order(BTC, "market", "sell", 0.01, None, params)
    with pytest.raises(ccxt.InvalidOrder, match="invalidPrice"):  # "If placing a trailing_stop ... leave undefined"
        client.create_order(BTC, "limit", "sell", 0.01, 50_000, _trailing(2, "PERCENT", clientOrderId="limit"))
    assert client.fetch_open_orders() == []
    errors = {o["order"]["cliOrdId"]: o["error"] for o in client.privateGetOrdersStatus()["orders"]}
    for error, params in refused.items():
        assert errors[params["clientOrderId"]] == error.strip()
    assert errors["limit"] == "INVALID_PRICE"
    # inside a batchorder the instruction answers the argument error (ccxt's recorded batch form), nothing placed
    [answer] = client.create_orders([{"symbol": BTC, "type": "market", "side": "sell", "amount": 0.01,
                                      "params": {"orderType": "trailing_stop", "trailingStopMaxDeviation": 2}}])
    assert answer["status"] == "rejected" and answer["info"]["status"] == "requiredArgumentMissing"
    assert client.fetch_open_orders() == []


@pytest.mark.parametrize("switched", [{"trailing_range": "percent"}], indirect=True)
def test_trailing_range_percent_switch(switched: tuple[SimulatorHandle, ccxt.krakenfutures]) -> None:
    sim, client = switched
    long_btc(sim, client, 0.01)
    sim.admin.set_price(BTC, 60_000.0)
    placed = client.create_order(BTC, "market", "sell", 0.01, None, _trailing(1_000, "QUOTE_CURRENCY"))
    assert placed["triggerPrice"] == 59_000
    with pytest.raises(ccxt.InvalidOrder):
        client.create_order(BTC, "market", "sell", 0.01, None, _trailing(60, "PERCENT"))


def test_trailing_stop_edits(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    long_btc(sim, client, 0.02)
    sim.admin.set_price(BTC, 60_000.0)
    placed = client.create_order(BTC, "market", "sell", 0.01, None, _trailing(2, "PERCENT"))
    edit = client.privatePostEditorder
    assert edit({"orderId": placed["id"], "stopPrice": "59000"})["editStatus"]["status"] == \
        "cannotEditTriggerPriceOfTrailingStop"
    assert edit({"orderId": placed["id"], "limitPrice": "59000"})["editStatus"]["status"] == \
        "cannotEditLimitPriceOfTrailingStop"
    assert edit({"orderId": placed["id"], "size": "0.02"})["editStatus"]["status"] == "edited"  # no price needed
    sim.admin.set_price(BTC, 59_500.0)  # below the peak: the trigger stays at 58,800
    assert client.fetch_open_orders()[0]["triggerPrice"] == 58_800
    # "if the trailingStopMaxDeviation and trailingStopDeviationUnit parameters are sent unchanged, the system will
    # recalculate a new stop price": from the mark now
    same = edit({"orderId": placed["id"], "trailingStopMaxDeviation": "2", "trailingStopDeviationUnit": "PERCENT"})
    assert same["editStatus"]["status"] == "edited"
    assert client.fetch_open_orders()[0]["triggerPrice"] == 58_310
    tighter = edit({"orderId": placed["id"], "trailingStopMaxDeviation": "1", "trailingStopDeviationUnit": "PERCENT"})
    assert tighter["editStatus"]["status"] == "edited" and client.fetch_open_orders()[0]["triggerPrice"] == 58_905
    assert edit({"orderId": placed["id"], "trailingStopMaxDeviation": "70"})["editStatus"]["status"] == "invalidPrice"
    with pytest.raises(ccxt.BadRequest):
        edit({"orderId": placed["id"], "trailingStopDeviationUnit": "BPS"})
    [listed] = client.fetch_open_orders()
    assert listed["amount"] == 0.02 and listed["triggerPrice"] == 58_905


# -- dead man's switch ------------------------------------------------------------------------------------------------
def test_dead_man_switch_cancels_resting_and_trigger_orders_when_the_heartbeat_stops(
        sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    long_btc(sim, client, 0.02)
    mark = price(sim, BTC)
    resting = client.create_order(BTC, "limit", "buy", 0.01, int(price(sim, BTC, "bid") - 500))
    stop = client.create_order(BTC, "market", "sell", 0.02, None, {"stopLossPrice": int(mark * 0.97)})
    target = client.create_order(BTC, "market", "sell", 0.02, None, {"takeProfitPrice": int(mark * 1.03)})
    armed = client.cancel_all_orders_after(10_000)  # ccxt takes ms and sends seconds
    assert armed["result"] == "success" and set(armed["status"]) == {"currentTime", "triggerTime"}
    assert client.parse8601(armed["status"]["triggerTime"]) - client.parse8601(armed["status"]["currentTime"]) == 10_000
    for _ in range(3):  # the heartbeat: every 8 s, a new 10 s timeout
        sim.admin.step(seconds=8)
        client.cancel_all_orders_after(10_000)
    assert len(client.fetch_open_orders()) == 3
    sim.admin.step(seconds=9)  # the heartbeat stops
    assert len(client.fetch_open_orders()) == 3
    sim.admin.step(seconds=1)
    assert client.fetch_open_orders() == []
    assert client.fetch_positions()[0]["contracts"] == 0.02  # it cancels orders, it closes nothing
    for order in (resting, stop, target):
        status = client.fetch_order(order["id"])
        assert status["status"] == "canceled" and status["info"]["updateReason"] == "DEAD_MAN_SWITCH"
    publish(sim)
    assert [p["reason"] for name, p in order_events(client) if name == "OrderCancelled"] == ["dead_man_switch"]
    assert [p["reason"] for name, p in trigger_events(client) if name == "OrderTriggerCancelled"] == [
        "dead_man_switch", "dead_man_switch"]
    # after firing it stays off until a new non-zero timeout
    again = client.create_order(BTC, "limit", "buy", 0.01, int(price(sim, BTC, "bid") - 500))
    sim.admin.step(seconds=30)
    assert [o["id"] for o in client.fetch_open_orders()] == [again["id"]]


def test_dead_man_switch_timeout_zero_disables_it(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    resting = client.create_order(BTC, "limit", "buy", 0.01, int(price(sim, BTC, "bid") - 500))
    client.cancel_all_orders_after(5_000)
    off = client.cancel_all_orders_after(0)
    assert off["status"]["triggerTime"] == "0"
    sim.admin.step(seconds=10)
    assert [o["id"] for o in client.fetch_open_orders()] == [resting["id"]]


@pytest.mark.parametrize("switched", [{"dead_man_scope": "resting"}], indirect=True)
def test_dead_man_scope_resting_spares_trigger_orders(switched: tuple[SimulatorHandle, ccxt.krakenfutures]) -> None:
    sim, client = switched
    long_btc(sim, client, 0.02)
    client.create_order(BTC, "limit", "buy", 0.01, int(price(sim, BTC, "bid") - 500))
    stop = client.create_order(BTC, "market", "sell", 0.02, None, {"stopLossPrice": int(price(sim, BTC) * 0.97)})
    client.cancel_all_orders_after(5_000)
    sim.admin.step(seconds=6)
    assert [o["id"] for o in client.fetch_open_orders()] == [stop["id"]]


# -- state file ----------------------------------------------------------------------------------------------------
def test_a_trailing_stop_survives_a_restart_and_keeps_trailing(tmp_path: Path) -> None:
    settings: dict[str, Any] = {"state_file": str(tmp_path / "exchange.json"), "start_time_ms": 1_780_000_000_000,
                                "api_key": "paper-key", "api_secret": "c2VjcmV0LXNpbXVsYXRvci1rZXk="}
    with boot(**settings) as first:
        client = first.client(timeout_ms=5_000)
        client.load_markets()
        long_btc(first, client, 0.02)
        first.admin.set_price(BTC, 60_000.0)
        placed = client.create_order(BTC, "market", "sell", 0.02, None, _trailing(2, "PERCENT"))
        first.admin.set_price(BTC, 62_000.0)
    with boot(**settings) as second:
        client = second.client(timeout_ms=5_000)
        client.load_markets()
        [listed] = client.fetch_open_orders()
        assert listed["id"] == placed["id"] and listed["type"] == "trailing_stop" and listed["triggerPrice"] == 60_760
        second.admin.set_price(BTC, 65_000.0)
        assert client.fetch_open_orders()[0]["triggerPrice"] == 63_700
        second.admin.set_price(BTC, 63_000.0)
        assert client.fetch_positions() == []


def test_orders_from_a_state_file_without_the_trigger_fields_still_load() -> None:
    order = Order(order_id="o", cli_ord_id=None, symbol="PF_XBTUSD", side="sell", order_type="trailing_stop",
                  size=Decimal("1"), limit_price=None, stop_price=Decimal("100"), trigger_signal="mark",
                  reduce_only=True, received_ms=1, source="sendorder", trailing_deviation=Decimal("2.5"),
                  trailing_unit="PERCENT", activation_failed=True)
    again = Order.from_state(json.loads(json.dumps(order.to_state())))
    assert (again.trailing_deviation, again.trailing_unit, again.activation_failed) == (Decimal("2.5"), "PERCENT",
                                                                                         True)
    older = {k: v for k, v in order.to_state().items()
             if k not in ("trailing_deviation", "trailing_unit", "activation_failed")}
    loaded = Order.from_state(older)
    assert loaded.trailing_deviation is None and loaded.trailing_unit is None and loaded.activation_failed is False


def test_a_relative_limit_is_refused_not_placed_as_a_stop_market(sim: SimulatorHandle,
                                                                  client: ccxt.krakenfutures) -> None:
    with pytest.raises(ccxt.BadRequest, match="invalidArgument"):
        client.create_order(BTC, "market", "sell", 0.01, None, {
            "stopLossPrice": int(price(sim, BTC) * 0.97), "limitPriceOffsetValue": -10,
            "limitPriceOffsetUnit": "QUOTE_CURRENCY"})
    assert client.fetch_open_orders() == []
