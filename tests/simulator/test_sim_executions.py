"""The execution history (history/v2/executions) through the real ccxt client: every fill as an Execution event in
Kraken's documented shape (get-execution-events), published after history_lag_ms, paged like the order history."""

from __future__ import annotations

from typing import Any

import ccxt
import pytest

from simulator import SimulatorHandle
from simulator.engine import MARKET_ACCOUNT_UID

pytestmark = pytest.mark.timeout(60)


def now(sim: SimulatorHandle) -> int:
    return sim.admin.now()["now"]


def burst(client: ccxt.krakenfutures, count: int, tag: str) -> None:
    """`count` LTC market buys of 1 in batchorders of at most 100: on a stepped clock all in one millisecond."""
    sends = [{"order": "send", "order_tag": str(i), "orderType": "mkt", "symbol": "PF_LTCUSD", "side": "buy",
              "size": 1, "cliOrdId": f"{tag}-{i}"} for i in range(count)]
    for start in range(0, count, 100):
        client.privatePostBatchorder({"batchOrder": sends[start:start + 100]})


def all_pages(client: ccxt.krakenfutures, **params: Any) -> list[dict[str, Any]]:
    elements, asked = [], dict(params)
    while True:
        page = client.historyGetExecutions(asked)
        assert int(page["len"]) == len(page["elements"])
        elements.extend(page["elements"])
        if "continuationToken" not in page:
            return elements
        asked = {**params, "continuation_token": page["continuationToken"]}


def test_every_fill_is_an_execution_event_published_after_the_lag(sim: SimulatorHandle,
                                                                   client: ccxt.krakenfutures) -> None:
    start = now(sim)
    burst(client, 150, "b")
    assert client.historyGetExecutions({"since": start})["elements"] == []  # not published yet
    sim.admin.step(ms=sim.config.history_lag_ms - 1)
    assert client.historyGetExecutions({"since": start})["elements"] == []
    sim.admin.step(ms=1)
    elements = all_pages(client, since=start, sort="asc")
    fills = sim.admin.state()["fills"]  # every fill (a market order may take several book levels)
    assert len(fills) >= 150 and len(elements) == len(fills) and len({e["uid"] for e in elements}) == len(fills)
    account = client.historyGetExecutions({"count": 1})["accountUid"]
    by_id = {f["fill_id"]: f for f in fills}
    assert set(by_id) == {e["event"]["Execution"]["execution"]["uid"] for e in elements}
    for element in elements:
        execution = element["event"]["Execution"]["execution"]
        ours, market = execution["takerOrder"], execution["makerOrder"]  # market orders take
        assert ours["accountUid"] == account and market["accountUid"] == MARKET_ACCOUNT_UID != account
        assert ours["clientId"].startswith("b-") and ours["tradeable"] == "PF_LTCUSD" and ours["direction"] == "Buy"
        assert market["direction"] == "Sell" and "clientId" not in market
        assert element["timestamp"] == execution["timestamp"] == str(start)  # one millisecond for all
        fill = by_id[execution["uid"]]  # the simulator's choice: the execution uid is the fill_id
        assert (fill["order_id"], fill["cliOrdId"]) == (ours["uid"], ours["clientId"])
        assert float(fill["size"]) == float(execution["quantity"]) and float(fill["price"]) == float(execution["price"])


def test_execution_pages_hold_at_most_history_page_max_and_page_by_token_both_ways(
        sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    start = now(sim)
    burst(client, 120, "p")
    sim.admin.step(ms=10)
    later = now(sim)
    client.create_order("BTC/USD:USD", "market", "buy", 0.001, None, {"clientOrderId": "late"})
    sim.admin.step(ms=sim.config.history_lag_ms + 1)
    page = client.historyGetExecutions({"since": start, "count": 500})
    assert int(page["len"]) == sim.config.history_page_max == 100 and "continuationToken" in page  # capped
    newest_first = all_pages(client, since=start, count=7)  # desc by default
    oldest_first = all_pages(client, since=start, sort="asc", count=7)
    count = len(sim.admin.state()["fills"])
    assert len(newest_first) == count and [e["uid"] for e in newest_first] == [e["uid"] for e in reversed(oldest_first)]
    assert newest_first[0]["event"]["Execution"]["execution"]["takerOrder"]["clientId"] == "late"
    before = all_pages(client, since=start, before=later, sort="asc")
    assert len(before) == count - 1 and all(int(e["timestamp"]) < later for e in before)
    assert [e["timestamp"] for e in all_pages(client, since=later)] == [str(later)]
    assert all_pages(client, tradeable="PF_XBTUSD")[0]["event"]["Execution"]["execution"]["uid"]
    assert len(all_pages(client, tradeable="PF_XBTUSD")) == 1
    with pytest.raises(ccxt.BadRequest):
        client.historyGetExecutions({"continuation_token": "not-a-token"})
    with pytest.raises(ccxt.BadRequest):
        client.historyGetExecutions({"since": "yesterday"})


def test_a_resting_orders_fill_shows_the_account_on_the_maker_side(sim: SimulatorHandle,
                                                                   client: ccxt.krakenfutures) -> None:
    start = now(sim)
    bid = float(sim.admin.quote("ETH/USD:USD")["bid"])  # type: ignore[arg-type]
    order = client.create_order("ETH/USD:USD", "limit", "buy", 0.1, round(bid - 30, 1), {"clientOrderId": "rest"})
    sim.admin.set_price("ETH/USD:USD", bid - 60)
    sim.admin.step(ms=sim.config.history_lag_ms + 1)
    [element] = all_pages(client, since=start)
    execution = element["event"]["Execution"]["execution"]
    assert execution["makerOrder"]["uid"] == order["id"] and execution["makerOrder"]["clientId"] == "rest"
    assert execution["takerOrder"]["accountUid"] == MARKET_ACCOUNT_UID and execution["limitFilled"] is True
    assert execution["makerOrder"]["filled"] == "0.1" and execution["makerOrder"]["quantity"] == "0"
