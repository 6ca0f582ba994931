"""batchorder at the edge: ccxt's request plus the request-level ProcessBefore, signed; batchStatus parsed by order_tag.

The recorded ccxt request for batchorder is read from ccxt's static request tests in
`../shared/peers/ccxt-krakenfutures/request.json` (KRAKEN_PEERS_DIR overrides; skipped, saying so, when absent).
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import ccxt
import pytest

from exchange.budget import CostBudget
from exchange.client import KrakenFutures, make_kraken_client
from exchange.clock import ServerClock
from exchange.private_api import PrivateApi, iso_ms
from exchange.reports import UnreadableAnswer, parse_batch_status
from messages import OrderIntent, Side, SignalKind, client_order_id_for, intent_hash
from simulator import SimulatorHandle, start_simulator
from simulator.auth import generate_credentials, sign
from tests.fakes import FakeExchange, TestClock

BTC, ETH, SOL = "BTC/USD:USD", "ETH/USD:USD", "SOL/USD:USD"


def peers_dir() -> Path:
    override = os.environ.get("KRAKEN_PEERS_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2].parent / "shared" / "peers" / "ccxt-krakenfutures"


def recorded(method: str) -> list[dict[str, Any]]:
    path = peers_dir() / "request.json"
    if not path.is_file():
        pytest.skip(f"ccxt's recorded Kraken requests not found at {path} (set KRAKEN_PEERS_DIR to the "
                    "ccxt-krakenfutures folder)")
    return list(json.loads(path.read_text())["methods"][method])


def intent(symbol: str = BTC, amount: str = "0.002", t: int = 1) -> OrderIntent:
    h = intent_hash(symbol, t, SignalKind.ENTER_LONG, Decimal(100))
    return OrderIntent(intent_hash=h, client_order_id=client_order_id_for(h), symbol=symbol,
                       kind=SignalKind.ENTER_LONG, side=Side.BUY, candle_time=t, notional=Decimal(100),
                       amount=Decimal(amount), price=Decimal(50_000))


class Captured:
    """Stands in for ccxt's HTTP layer: records what the real client would send, answers `answer`."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.requests: list[dict[str, Any]] = []

    def __call__(self, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        self.requests.append({"url": url, "method": method, "headers": dict(headers or {}), "body": body})
        return self.answer


def offline_client(base: str = "https://futures.kraken.com") -> tuple[KrakenFutures, str]:
    key, secret = generate_credentials()
    client = make_kraken_client(base, key, secret)
    assert isinstance(client, KrakenFutures) and isinstance(client, ccxt.krakenfutures)
    return client, secret


# --- the request -----------------------------------------------------------------------------

def test_without_process_before_the_body_is_exactly_ccxts_recorded_batchorder() -> None:
    case = recorded("cancelOrders")[0]
    client, _ = offline_client()
    markets = peers_dir() / "markets.json"
    client.set_markets(json.loads(markets.read_text()))
    client.fetch = Captured({"result": "success", "batchStatus": [], "serverTime": "2024-01-01T00:00:00.000Z"})
    client.cancel_orders(*case["input"])
    sent = client.fetch.requests[0]
    assert sent["url"] == case["url"] and sent["body"] == case["output"]


def test_process_before_goes_as_a_form_field_after_ccxts_json_and_the_signature_covers_it() -> None:
    case = recorded("cancelOrders")[0]
    client, secret = offline_client()
    client.fetch = Captured({"result": "success", "batchStatus": [], "serverTime": "2024-01-01T00:00:00.000Z"})
    payload = json.loads(case["output"][len("json="):])
    client.privatePostBatchorder({**payload, "ProcessBefore": "2024-02-06T22:24:34.849Z"})
    sent = client.fetch.requests[0]
    assert sent["url"] == case["url"]
    assert sent["body"] == case["output"] + "&ProcessBefore=2024-02-06T22:24:34.849Z"
    # Kraken's Authent over the body as sent, endpoint path /api/v3/batchorder (what the simulator checks)
    assert sent["headers"]["Authent"] == sign(secret, "/api/v3/batchorder", sent["body"])
    assert sent["headers"]["Content-Type"] == "application/x-www-form-urlencoded"


def test_other_requests_are_signed_by_ccxt_unchanged() -> None:
    client, _ = offline_client()
    plain = ccxt.krakenfutures({"apiKey": client.apiKey, "secret": client.secret})
    plain.urls["api"] = client.urls["api"]
    params = {"orderIds": ["a", "b"]}
    assert client.sign("orders/status", ["private"], "POST", params) == \
        plain.sign("orders/status", ["private"], "POST", params)
    batch = {"batchOrder": [{"order": "cancel", "order_id": "x"}]}
    assert client.sign("batchorder", ["private"], "POST", batch) == plain.sign("batchorder", ["private"], "POST", batch)


def test_a_malformed_process_before_is_refused_before_anything_is_sent() -> None:
    client, _ = offline_client()
    client.fetch = Captured({})
    with pytest.raises(ccxt.ArgumentsRequired):
        client.privatePostBatchorder({"batchOrder": [], "ProcessBefore": "tomorrow&x=1"})
    assert client.fetch.requests == []


def test_send_batch_builds_each_instruction_with_ccxt_and_spends_nine_plus_the_batch_size() -> None:
    client, _ = offline_client()
    recorded("createOrder")
    client.set_markets(json.loads((peers_dir() / "markets.json").read_text()))
    intents = [intent(BTC, "0.002"), intent("ETH/USD:USD", "0.03")]
    answer = {"result": "success", "serverTime": "2024-01-01T00:00:00.000Z", "batchStatus": [
        {"status": "placed", "order_tag": "2", "order_id": "o-2", "cliOrdId": intents[1].client_order_id,
         "dateTimeReceived": "2024-01-01T00:00:00.000Z", "orderEvents": []},
        {"status": "insufficientAvailableFunds", "order_tag": "1", "cliOrdId": intents[0].client_order_id,
         "dateTimeReceived": "2024-01-01T00:00:00.000Z", "orderEvents": []}]}
    client.fetch = Captured(answer)
    clock = [100.0]
    budget = CostBudget(margin=1.0, clock=lambda: clock[0])
    reports = PrivateApi(client, budget).send_batch(intents, 1_800_000_000_000)
    assert [(r.order_tag, r.status) for r in reports] == [("1", "insufficientAvailableFunds"), ("2", "placed")]
    assert budget.derivatives.available() == pytest.approx(500 - (9 + 2))
    body = client.fetch.requests[0]["body"]
    json_part, before = body.split("&ProcessBefore=")
    assert before == iso_ms(1_800_000_000_000)
    instructions = json.loads(json_part[len("json="):])["batchOrder"]
    assert [i["order"] for i in instructions] == ["send", "send"]
    assert [i["order_tag"] for i in instructions] == ["1", "2"]
    assert [i["cliOrdId"] for i in instructions] == [i.client_order_id for i in intents]
    assert all("processBefore" not in i for i in instructions)  # not documented per instruction
    assert instructions[0]["symbol"] == "PF_XBTUSD" and instructions[0]["orderType"] == "mkt"


# --- the answer ------------------------------------------------------------------------------

EXPECTED = [("1", "cid-a"), ("2", "cid-b")]


def element(tag: str | None, cid: str | None, status: str = "placed", order_id: str | None = "o") -> dict[str, Any]:
    out: dict[str, Any] = {"status": status, "dateTimeReceived": "2024-01-01T00:00:00.000Z", "orderEvents": []}
    if tag is not None:
        out["order_tag"] = tag
    if cid is not None:
        out["cliOrdId"] = cid
    if order_id is not None:
        out["order_id"] = order_id
    return out


def answer(*elements: dict[str, Any]) -> dict[str, Any]:
    return {"result": "success", "serverTime": "2024-01-01T00:00:00.000Z", "batchStatus": list(elements)}


def test_elements_are_matched_by_order_tag_in_any_order() -> None:
    reports = parse_batch_status(answer(element("2", "cid-b", order_id="o-b"), element("1", "cid-a", order_id="o-a")),
                                 EXPECTED)
    assert [(r.order_tag, r.exchange_order_id) for r in reports] == [("1", "o-a"), ("2", "o-b")]


def test_an_element_without_tag_is_matched_by_its_cliordid() -> None:
    reports = parse_batch_status(answer(element(None, "cid-b"), element("1", "cid-a")), EXPECTED)
    assert [r.client_order_id for r in reports] == ["cid-a", "cid-b"]


@pytest.mark.parametrize("elements, why", [
    ((element("1", "cid-a"),), "a missing element (count mismatch)"),
    ((element("1", "cid-a"), element("2", "cid-b"), element("3", None)), "an extra element"),
    ((element("1", "cid-a"), element("9", "cid-b")), "an element answering no instruction"),
    ((element("1", "cid-a"), element("1", "cid-a")), "two elements for one instruction"),
    ((element("1", "cid-b"), element("2", "cid-a")), "a cliOrdId contradicting its tag"),
    ((element("1", "cid-a"), element(None, None)), "an element naming nothing"),
    ((element("1", "cid-a"), {"order_tag": "2"}), "an element without status"),
])
def test_an_answer_that_does_not_account_for_every_instruction_once_is_unreadable(elements: Any, why: str) -> None:
    with pytest.raises(UnreadableAnswer):
        parse_batch_status(answer(*elements), EXPECTED)


@pytest.mark.parametrize("raw", [
    {"result": "error", "error": "invalidArgument", "serverTime": "2024-01-01T00:00:00.000Z"},
    {"result": "success", "serverTime": "2024-01-01T00:00:00.000Z"},
    {"result": "success", "batchStatus": {"1": {}}},
    "garbage",
])
def test_anything_but_a_batchstatus_list_is_unreadable(raw: Any) -> None:
    with pytest.raises(UnreadableAnswer):
        parse_batch_status(raw, EXPECTED)


@pytest.fixture
def sim() -> Any:
    handle = start_simulator(seed=5, rate_limit=True, volatility=0.0001)
    yield handle
    handle.stop()


def test_the_simulators_batchstatus_parses_into_one_report_per_instruction(sim: SimulatorHandle) -> None:
    client = make_kraken_client(sim.base_url, sim.api_key, sim.api_secret)
    client.load_markets()
    api = PrivateApi(client)
    intents = [intent(BTC, "0.002"), intent(ETH, "0.03"), intent(SOL, "1")]
    now = ServerClock(client).refresh()
    reports = api.send_batch(intents, now + 5_000)
    assert [r.client_order_id for r in reports] == [i.client_order_id for i in intents]
    assert all(r.placed and r.exchange_order_id and r.filled > 0 for r in reports)
    rows = sim.admin.order_requests(kind="send")
    assert [r["endpoint"] for r in rows] == ["batchorder"] * 3 and len({r["batch"] for r in rows}) == 1
    assert {r["processBefore"] for r in rows} == {iso_ms(now + 5_000)}
    late = api.send_batch([intent(BTC, "0.002", t=2), intent(ETH, "0.03", t=2)], now - 1)
    assert [r.status for r in late] == ["wouldProcessAfterSpecifiedTime"] * 2 and all(r.not_placed for r in late)
    assert [r.client_order_id for r in late] == [intent(BTC, t=2).client_order_id, intent(ETH, t=2).client_order_id]


def test_the_fake_answers_batchorder_as_the_simulator_does() -> None:
    clock = TestClock(start_ms=1_800_000_000_000)
    exchange = FakeExchange(clock=clock)
    api = PrivateApi(exchange)
    intents = [intent(BTC, "0.002"), intent(ETH, "0.03")]
    reports = api.send_batch(intents, clock() + 5_000)
    assert all(r.placed and r.filled > 0 for r in reports) and len(exchange.placed_orders()) == 2
    late = api.send_batch([intent(BTC, t=3), intent(ETH, "0.03", t=3)], clock())  # at processBefore: too late
    assert [r.status for r in late] == ["wouldProcessAfterSpecifiedTime"] * 2 and len(exchange.placed_orders()) == 2
    exchange.batch_max_instructions = 1
    with pytest.raises(ccxt.BadRequest):
        api.send_batch([intent(BTC, t=4), intent(ETH, "0.03", t=4)], clock() + 5_000)
    assert len(exchange.placed_orders()) == 2
    with pytest.raises(ccxt.BadRequest):
        exchange.privatePostBatchorder({"batchOrder": [], "ProcessBefore": "not a time"})
