"""Kraken's raw private answers parsed at the edge: good answers read, anything unreadable refused whole."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from exchange.reports import (
    ExchangeStatus,
    UnreadableAnswer,
    parse_cancel_status,
    parse_executions,
    parse_fills,
    parse_history,
    parse_open_orders,
    parse_order_status,
    parse_positions,
    parse_send_status,
)
from messages import PositionSide, Side
from tests.exchange.test_batch import peers_dir

PEERS = peers_dir()  # ../shared/peers/ccxt-krakenfutures beside the checkout, or KRAKEN_PEERS_DIR
SYMBOLS = {"PF_XBTUSD": "BTC/USD:USD", "PF_LTCUSD": "LTC/USD:USD", "PF_ETHUSD": "ETH/USD:USD"}


def symbol_of(market_id: str) -> str | None:
    return SYMBOLS.get(market_id)


def recorded(method: str, description: str) -> Any:
    """Kraken's raw answer from ccxt's recorded traffic (skipped when the folder is absent)."""
    if not (PEERS / "response.json").is_file():
        pytest.skip(f"ccxt's recorded Kraken traffic is not here ({PEERS}/response.json)")
    cases = json.loads((PEERS / "response.json").read_text())["methods"][method]
    return next(c["httpResponse"] for c in cases if c["description"] == description)


# --- good answers -------------------------------------------------------------------------

def test_recorded_open_orders_are_read() -> None:
    [order] = parse_open_orders(recorded("fetchOpenOrders", "open order"), symbol_of)
    assert order.exchange_order_id == "a02a5141-5156-4f62-a992-0f879b5fc989" and order.client_order_id is None
    assert (order.symbol, order.side, order.unfilled, order.filled) == ("LTC/USD:USD", Side.BUY, Decimal("0.1"), 0)
    assert order.price == Decimal(50) and order.reduce_only is False and order.order_type == "lmt"
    assert order.received_ms == 1761036123057  # microseconds in the text are cut to ms


def test_recorded_fills_are_read_newest_first_with_unlisted_markets_kept_by_id() -> None:
    fills = parse_fills(recorded("fetchMyTrades", "user trades"), symbol_of)
    assert [f.symbol for f in fills] == ["LTC/USD:USD", "PF_FTMUSD"]
    assert fills[0].amount == Decimal("0.1") and fills[0].price == Decimal("68.54") and fills[0].side is Side.BUY
    assert fills[0].time_ms > fills[1].time_ms and fills[0].client_order_id is None


def test_recorded_positions_are_read() -> None:
    [position] = parse_positions(recorded("fetchPositions", "open positions, regression test for #29710 (must not "
                                                            "silently return [] when openPositions is present)"),
                                 symbol_of)
    assert position.symbol == "LTC/USD:USD" and position.side is PositionSide.LONG
    assert position.contracts == Decimal("0.1") and position.entry_price == Decimal("68.54")


def test_recorded_history_pages_are_read_with_their_continuation_token() -> None:
    events, token = parse_history(recorded("fetchClosedOrders", "swap closed order"), symbol_of)
    assert token == "MTc2MTAzNjAzNjUwNy80MjUxNzI3NDA3NjM="
    [placed] = events
    assert placed.name == "OrderPlaced" and placed.status is ExchangeStatus.OPEN and placed.side is Side.BUY
    assert placed.client_order_id is None and placed.time_ms == 1761036123057
    events, token = parse_history(recorded("fetchClosedOrders", "fetch closed orders including filled limit order"),
                                  symbol_of)
    [update] = events  # an OrderUpdated carries oldOrder/newOrder: the new snapshot is read
    assert token is None and update.status is None and update.filled == Decimal("0.001")
    assert update.symbol == "ETH/USD:USD" and update.reason == "full_fill"


def test_recorded_trigger_history_says_nothing_final_of_an_order_placed_rests_activated_goes_on() -> None:
    """Kraken's real /history/v2/triggers (ccxt's recording): a trigger order placed rests (OPEN); once activated
    it goes on as an order in the order history (no status here); neither is an end."""
    events, _ = parse_history(recorded("fetchClosedOrders", "fetchClosed trigger orders"), symbol_of)
    assert events and {e.name for e in events} == {"OrderTriggerPlaced", "OrderTriggerActivated"}
    assert all(e.status is (ExchangeStatus.OPEN if e.name == "OrderTriggerPlaced" else None) for e in events)


STATUS_ANSWER = {"result": "success", "orders": [
    {"order": {"type": "ORDER", "orderId": "o-1", "cliOrdId": "c-1", "symbol": "PF_XBTUSD", "side": "buy",
               "quantity": 0.002, "filled": 0.002}, "status": "FULLY_EXECUTED", "updateReason": "full_fill",
     "error": None},
    {"order": {"orderId": "o-2", "cliOrdId": None, "symbol": "PF_XBTUSD", "side": "sell", "quantity": 1,
               "filled": 0}, "status": "entered_book", "updateReason": None, "error": None},
    {"order": {"orderId": "o-3", "symbol": "PF_XBTUSD", "side": "sell", "quantity": 1, "filled": 0},
     "status": "REJECTED", "updateReason": None, "error": "wouldNotReducePosition"},
]}


def test_order_status_is_read_case_insensitively() -> None:
    reports = parse_order_status(STATUS_ANSWER, symbol_of)
    assert [r.status for r in reports] == [ExchangeStatus.FILLED, ExchangeStatus.OPEN, ExchangeStatus.REJECTED]
    assert reports[0].filled == Decimal("0.002") and reports[0].client_order_id == "c-1"
    assert reports[2].reason == "wouldNotReducePosition" and reports[1].symbol == "BTC/USD:USD"


def test_send_status_reads_executions_and_the_ioc_remainder() -> None:
    report = parse_send_status({"status": "placed", "order_id": "o-1", "cliOrdId": "c-1", "orderEvents": [
        {"type": "EXECUTION", "executionId": "e-1", "price": 50_000, "amount": 0.0005},
        {"type": "CANCEL", "uid": "o-1", "order": {}}]}, "sendorder")
    assert report.placed and not report.not_placed and report.exchange_order_id == "o-1"
    assert report.filled == Decimal("0.0005") and report.cancelled
    assert report.executions == (("e-1", Decimal("0.0005"), Decimal(50_000)),)


@pytest.mark.parametrize("status", ["wouldNotReducePosition", "insufficientAvailableFunds", "invalidSize",
                                    "iocWouldNotExecute", "postWouldExecute", "marketSuspended"])
def test_send_statuses_that_prove_nothing_was_placed(status: str) -> None:
    report = parse_send_status({"status": status, "orderEvents": []}, "sendorder")
    assert report.not_placed and not report.placed and not report.duplicate_id


def test_a_duplicate_id_status_is_neither_placed_nor_not_placed() -> None:
    report = parse_send_status({"status": "clientOrderIdAlreadyExist", "orderEvents": []}, "sendorder")
    assert report.duplicate_id and not report.placed and not report.not_placed


def test_an_unknown_send_status_proves_nothing() -> None:
    report = parse_send_status({"status": "somethingNew", "orderEvents": []}, "sendorder")
    assert not report.placed and not report.not_placed


def test_a_request_processed_after_process_before_is_not_placed() -> None:
    assert parse_send_status({"status": "wouldProcessAfterSpecifiedTime", "orderEvents": []}, "sendorder").not_placed


def test_cancel_status_reads_the_filled_amount_at_the_cancel() -> None:
    status, filled = parse_cancel_status({"result": "success", "cancelStatus": {"status": "cancelled", "orderEvents": [
        {"type": "CANCEL", "order": {"orderId": "o-1", "filled": "0.0005"}}]}})
    assert status == "cancelled" and filled == Decimal("0.0005")
    assert parse_cancel_status({"result": "success", "cancelStatus": {"status": "notFound"}}) == ("notFound", None)


def test_a_flat_position_is_not_listed() -> None:
    answer = {"result": "success", "openPositions": [{"symbol": "PF_XBTUSD", "side": "long", "size": "0"}]}
    assert parse_positions(answer, symbol_of) == []


# --- unreadable answers: each parser refuses them whole -------------------------------------

OPEN_ORDER = {"order_id": "o-1", "cliOrdId": "c-1", "symbol": "PF_XBTUSD", "side": "buy", "orderType": "lmt",
              "limitPrice": "49000", "unfilledSize": "0.002", "filledSize": "0", "reduceOnly": False,
              "receivedTime": "2024-02-08T12:44:12.892Z"}
FILL = {"fill_id": "f-1", "order_id": "o-1", "cliOrdId": "c-1", "symbol": "PF_XBTUSD", "side": "buy",
        "size": "0.002", "price": "50000", "fillTime": "2024-02-08T12:44:12.892Z"}
POSITION = {"symbol": "PF_XBTUSD", "side": "long", "size": "0.002", "price": "50000", "unrealizedPnl": "-1.5"}
STATUS = STATUS_ANSWER["orders"][0]
EVENT = {"uid": "ev-1", "timestamp": "1707331402406", "event": {"OrderPlaced": {"order": {
    "uid": "o-1", "clientId": "c-1", "tradeable": "PF_XBTUSD", "direction": "Buy", "quantity": "0",
    "filled": "0.002"}, "reason": "new_user_order"}}}


def with_field(item: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    copy = json.loads(json.dumps(item))
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return copy


def success(key: str, *items: Any) -> dict[str, Any]:
    return {"result": "success", key: list(items)}


def history(*items: Any) -> dict[str, Any]:
    return {"elements": list(items)}


PARSERS = {
    "openorders": (lambda a: parse_open_orders(a, symbol_of), "openOrders", OPEN_ORDER, success),
    "fills": (lambda a: parse_fills(a, symbol_of), "fills", FILL, success),
    "openpositions": (lambda a: parse_positions(a, symbol_of), "openPositions", POSITION, success),
    "orders/status": (lambda a: parse_order_status(a, symbol_of), "orders", STATUS, success),
    "history": (lambda a: parse_history(a, symbol_of), "elements", EVENT, lambda key, *items: history(*items)),
}

BAD_ITEMS: dict[str, list[tuple[tuple[str, ...], Any]]] = {
    "openorders": [(("unfilledSize",), "NaN"), (("unfilledSize",), "-0.002"), (("unfilledSize",), None),
                   (("filledSize",), "Infinity"), (("side",), "long"), (("symbol",), 42), (("order_id",), ""),
                   (("receivedTime",), "yesterday"), (("limitPrice",), "cheap"), (("unfilledSize",), True)],
    "fills": [(("size",), "0"), (("size",), "-1"), (("price",), "NaN"), (("price",), 0), (("fillTime",), None),
              (("side",), "Buy!"), (("fill_id",), None), (("order_id",), 7), (("size",), [1])],
    "openpositions": [(("size",), "lots"), (("size",), "-1"), (("size",), "NaN"), (("side",), "sideways"),
                      (("side",), None), (("symbol",), None), (("price",), "-5"), (("unrealizedPnl",), "NaN")],
    "orders/status": [(("status",), "SOMETHING_NEW"), (("status",), None), (("order",), None),
                      (("order", "filled"), "-0.1"), (("order", "filled"), "NaN"), (("order", "side"), "up"),
                      (("order", "orderId"), None)],
    "history": [(("timestamp",), "soon"), (("uid",), None), (("event",), "OrderPlaced"),
                (("event", "OrderPlaced", "order", "filled"), "-1"),
                (("event", "OrderPlaced", "order", "filled"), "NaN"),
                (("event", "OrderPlaced", "order", "quantity"), "Infinity"),
                (("event", "OrderPlaced", "order", "uid"), None),
                (("event", "OrderPlaced", "order", "tradeable"), None),
                (("event", "OrderPlaced"), "placed")],
}


@pytest.mark.parametrize("endpoint", list(PARSERS))
def test_each_parser_reads_its_good_answer(endpoint: str) -> None:
    parse, key, item, wrap = PARSERS[endpoint]
    result = parse(wrap(key, item))
    assert len(result[0] if endpoint == "history" else result) == 1


@pytest.mark.parametrize("endpoint", list(PARSERS))
@pytest.mark.parametrize("answer", [
    None, "", "<!DOCTYPE html><html><body>502 Bad Gateway</body></html>", [], 42,
    {"result": "success"}, {"result": "error", "error": "apiLimitExceeded"}, {},
], ids=["none", "empty", "html", "list", "number", "success-without-list", "error", "empty-object"])
def test_each_parser_refuses_an_answer_without_its_list(endpoint: str, answer: Any) -> None:
    parse = PARSERS[endpoint][0]
    with pytest.raises(UnreadableAnswer):
        parse(answer)


@pytest.mark.parametrize("endpoint", list(PARSERS))
@pytest.mark.parametrize("shape", ["list-is-text", "list-is-object", "element-is-text", "element-is-list",
                                   "result-not-success"])
def test_each_parser_refuses_wrong_types(endpoint: str, shape: str) -> None:
    parse, key, item, wrap = PARSERS[endpoint]
    good = wrap(key, item)
    bad = {"list-is-text": {**good, key: "[]"}, "list-is-object": {**good, key: {"0": item}},
           "element-is-text": {**good, key: [json.dumps(item)]}, "element-is-list": {**good, key: [[item]]},
           "result-not-success": {**good, "result": "maybe"}}[shape]
    if endpoint == "history" and shape == "result-not-success":
        pytest.skip("history/v2 answers carry no result field")
    with pytest.raises(UnreadableAnswer):
        parse(bad)


@pytest.mark.parametrize(("endpoint", "path", "value"),
                         [(e, p, v) for e, cases in BAD_ITEMS.items() for p, v in cases])
def test_each_parser_refuses_an_unreadable_element_and_never_keeps_the_rest(endpoint: str, path: tuple[str, ...],
                                                                          value: Any) -> None:
    parse, key, item, wrap = PARSERS[endpoint]
    with pytest.raises(UnreadableAnswer):
        parse(wrap(key, item, with_field(item, path, value)))  # one good element, one bad: the whole answer fails


@pytest.mark.parametrize("status", [None, "", "<html>", {"status": ""}, {"status": None}, {"status": 3},
                                    {"status": "placed", "orderEvents": "EXECUTION"},
                                    {"status": "placed", "orderEvents": [{"type": "EXECUTION", "executionId": "e",
                                                                          "price": "NaN", "amount": "1"}]},
                                    {"status": "placed", "orderEvents": [{"type": "EXECUTION", "executionId": "e",
                                                                          "price": "1", "amount": "-1"}]},
                                    {"status": "placed", "orderEvents": [{"type": "EXECUTION", "price": "1",
                                                                          "amount": "1"}]},
                                    {"status": "placed", "orderEvents": ["EXECUTION"]}])
def test_send_status_refuses_unreadable_answers(status: Any) -> None:
    with pytest.raises(UnreadableAnswer):
        parse_send_status(status, "sendorder")


@pytest.mark.parametrize("answer", [None, "", "<html>", [], {"result": "success"},
                                    {"result": "success", "cancelStatus": "cancelled"},
                                    {"result": "success", "cancelStatus": {"status": ""}},
                                    {"result": "success", "cancelStatus": {"status": "cancelled", "orderEvents": [
                                        {"type": "CANCEL", "order": {"filled": "NaN"}}]}},
                                    {"result": "success", "cancelStatus": {"status": "cancelled", "orderEvents": [
                                        "CANCEL"]}}])
def test_cancel_status_refuses_unreadable_answers(answer: Any) -> None:
    with pytest.raises(UnreadableAnswer):
        parse_cancel_status(answer)


@pytest.mark.parametrize("snapshot", [None, {}])
def test_an_order_event_without_its_snapshot_is_unreadable(snapshot: Any) -> None:
    with pytest.raises(UnreadableAnswer):
        parse_history(history(with_field(EVENT, ("event", "OrderPlaced", "order"), snapshot)), symbol_of)


# --- history/v2/executions -------------------------------------------------------------------

ACCOUNT = "2ceb1d31-f619-457b-870c-fd4ddbb10d45"


def kraken_execution_example() -> dict[str, Any]:
    """Kraken's documented example answer of GET /api/history/v2|v3/executions (get-execution-events; the docs'
    placeholder values: one uid everywhere, both orders carrying the answer's accountUid)."""
    order = {"accountUid": ACCOUNT, "clientId": "string", "direction": "Buy", "filled": "1234.56789",
             "lastUpdateTimestamp": 1604937694000, "limitPrice": "1234.56789", "orderType": "Limit",
             "quantity": "1234.56789", "reduceOnly": False, "spotData": "string", "timestamp": 1604937694000,
             "tradeable": "string", "uid": ACCOUNT}
    return {
        "accountUid": ACCOUNT, "continuationToken": "c3RyaW5n",
        "elements": [{"event": {"Execution": {"execution": {
            "limitFilled": False, "makerOrder": dict(order), "makerOrderData": {"fee": "1234.56789",
                                                                               "positionSize": "1234.56789"},
            "markPrice": "1234.56789", "oldTakerOrder": dict(order), "price": "1234.56789", "quantity": "1234.56789",
            "takerOrder": dict(order), "takerOrderData": {"fee": "1234.56789", "positionSize": "1234.56789"},
            "timestamp": 1604937694000, "uid": ACCOUNT, "usdValue": "1234.56789"},
            "takerReducedQuantity": "string"}}, "timestamp": 1604937694000, "uid": "string"}],
        "len": 0, "serverTime": "2022-03-31T20:38:53.677Z"}


def test_kraken_documented_execution_example_reads_the_accounts_side() -> None:
    answer = kraken_execution_example()
    execution = answer["elements"][0]["event"]["Execution"]["execution"]
    execution["makerOrder"]["accountUid"] = "another-account"  # the docs' placeholder: both sides are "ours"
    execution["takerOrder"].update(tradeable="PF_XBTUSD", uid="order-1", clientId="cid-1", direction="Sell")
    fills, token = parse_executions(answer, symbol_of)
    assert token == "c3RyaW5n"
    [fill] = fills
    assert (fill.fill_id, fill.exchange_order_id, fill.client_order_id, fill.symbol, fill.side) == (
        ACCOUNT, "order-1", "cid-1", "BTC/USD:USD", Side.SELL)
    assert (fill.amount, fill.price, fill.time_ms) == (Decimal("1234.56789"), Decimal("1234.56789"), 1604937694000)


def test_an_execution_whose_side_cannot_be_told_is_unreadable() -> None:
    with pytest.raises(UnreadableAnswer, match="2 orders of account"):  # the raw example: both sides the account's
        parse_executions(kraken_execution_example(), symbol_of)
    answer = kraken_execution_example()
    for key in ("makerOrder", "takerOrder"):
        answer["elements"][0]["event"]["Execution"]["execution"][key]["accountUid"] = "another-account"
    with pytest.raises(UnreadableAnswer, match="0 orders of account"):
        parse_executions(answer, symbol_of)


def simulator_execution_answer() -> dict[str, Any]:
    """What the simulator serves for one market buy (recorded from simulator.engine, ids shortened)."""
    stamp = "1796171137422"
    return {"accountUid": "acc-1", "len": "1", "serverTime": "2026-12-02T00:25:41.422Z", "elements": [{
        "uid": "ev-1", "timestamp": stamp, "event": {"Execution": {"execution": {
            "uid": "fill-1",
            "makerOrder": {"uid": "mkt-1", "accountUid": "00000000-0000-4000-8000-000000000000",
                           "tradeable": "PF_XBTUSD", "direction": "Sell", "quantity": "0", "filled": "0.01",
                           "timestamp": stamp, "limitPrice": "66349", "orderType": "Limit", "reduceOnly": False,
                           "lastUpdateTimestamp": stamp},
            "takerOrder": {"uid": "order-1", "accountUid": "acc-1", "tradeable": "PF_XBTUSD", "direction": "Buy",
                           "quantity": "0", "filled": "0.01", "timestamp": stamp, "limitPrice": "66999",
                           "orderType": "IoC", "clientId": "abc-1", "reduceOnly": False,
                           "lastUpdateTimestamp": stamp},
            "timestamp": stamp, "quantity": "0.01", "price": "66349", "markPrice": "66349", "limitFilled": False,
            "usdValue": "663.49", "takerOrderData": {"fee": "0.331745", "positionSize": ""}},
            "takerReducedQuantity": ""}}}]}


def test_simulator_execution_shape_reads_into_a_fill_report() -> None:
    fills, token = parse_executions(simulator_execution_answer(), symbol_of)
    assert token is None
    [fill] = fills
    assert (fill.fill_id, fill.exchange_order_id, fill.client_order_id, fill.symbol, fill.side, fill.amount,
            fill.price, fill.time_ms) == ("fill-1", "order-1", "abc-1", "BTC/USD:USD", Side.BUY, Decimal("0.01"),
                                          Decimal("66349"), 1796171137422)


def _damage(path: list[str], value: Any) -> dict[str, Any]:
    answer = simulator_execution_answer()
    target: Any = answer["elements"][0]["event"]["Execution"]["execution"]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return answer


@pytest.mark.parametrize("answer", [
    None, [], {"elements": None, "accountUid": "acc-1"}, {"elements": []},
    {"accountUid": "acc-1", "elements": ["x"]},
    {"accountUid": "acc-1", "elements": [{"event": {"Execution": {}, "Other": {}}}]},
    _damage(["quantity"], "-1"), _damage(["quantity"], "0"), _damage(["price"], "NaN"), _damage(["uid"], ""),
    _damage(["takerOrder", "direction"], "Up"), _damage(["takerOrder", "uid"], None),
    _damage(["takerOrder", "tradeable"], None), _damage(["timestamp"], "soon"),
    _damage(["takerOrder"], "not an object"),
], ids=lambda a: str(a)[:40])
def test_unreadable_execution_answers_are_refused_whole(answer: Any) -> None:
    with pytest.raises(UnreadableAnswer):
        parse_executions(answer, symbol_of)


def test_events_other_than_executions_are_skipped() -> None:
    answer = simulator_execution_answer()
    answer["elements"].append({"uid": "x", "timestamp": "1", "event": {"SomethingElse": {"foo": 1}}})
    assert len(parse_executions(answer, symbol_of)[0]) == 1
