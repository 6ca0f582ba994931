"""ccxt's recorded Kraken Futures requests and responses, replayed against the simulator.

The fixtures live outside the project (shared/peers/ccxt-krakenfutures, or KRAKEN_PEERS_DIR) and are
read, never copied. Every recorded order-entry URL must be accepted and parsed, and every served
endpoint's response must carry every field of the real recorded response.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlparse

import ccxt
import pytest

from simulator import SimulatorHandle, sign

# Recorded responses of endpoints the simulator does not serve (ledger and public trade history).
NOT_SERVED = {"fetchLedger", "fetchTrades"}
# Dict-valued fields whose keys are data (ids), not field names.
MAP_PATHS = {".volumesByFeeSchedule"}
# `status` inside history orders is not sent by Kraken: ccxt writes it into the parsed dict
# (innerOrder['status'] = ...) and two older recordings captured that mutation; the newer
# recordings of the same events have no `status`.
ARTIFACTS = {".elements[].event.OrderPlaced.order.status"}


def peers_dir() -> Path:
    """Folder of ccxt's recorded Kraken Futures fixtures (overridable by KRAKEN_PEERS_DIR)."""
    override = os.environ.get("KRAKEN_PEERS_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2].parent / "shared" / "peers" / "ccxt-krakenfutures"


def load(name: str) -> dict[str, Any]:
    """One fixture file, or skip when the peers folder is absent."""
    path: Path = peers_dir() / name
    if not path.is_file():
        pytest.skip(f"ccxt fixtures not found at {path} (set KRAKEN_PEERS_DIR to the ccxt-krakenfutures folder)")
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def key_paths(value: Any, prefix: str = "") -> set[str]:
    """Every key path in a JSON value; list items merge under `[]`."""
    paths: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}.{key}"
            paths.add(path)
            if path not in MAP_PATHS:
                paths |= key_paths(item, path)
    elif isinstance(value, list):
        for item in value:
            paths |= key_paths(item, prefix + "[]")
    return paths


def signed_request(sim: SimulatorHandle, url: str, method: str, body: str | None) -> dict[str, Any]:
    """Replay a recorded URL (host swapped for the simulator's) with Kraken's signature."""
    parsed = urlparse(url)
    endpoint = parsed.path[len("/derivatives"):] if parsed.path.startswith("/derivatives/") else parsed.path
    post_data = body if body is not None else parsed.query
    headers = {"APIKey": sim.api_key, "Authent": sign(sim.api_secret, endpoint, post_data)}
    target = sim.base_url + parsed.path + (f"?{parsed.query}" if parsed.query else "")
    data = body.encode() if body is not None else (b"" if method == "POST" else None)
    request = urllib.request.Request(target, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())  # type: ignore[no-any-return]


def order_cases() -> list[tuple[str, dict[str, Any]]]:
    """Recorded createOrder / cancelOrder / cancelOrders cases (empty when fixtures are absent)."""
    path = peers_dir() / "request.json"
    if not path.is_file():
        return []
    methods = json.loads(path.read_text())["methods"]
    return [(m, c) for m in ("createOrder", "cancelOrder", "cancelOrders") for c in methods.get(m, [])]


@pytest.mark.parametrize(("method", "case"), order_cases() or [("missing", {})],
                         ids=lambda v: v if isinstance(v, str) else v.get("description", v.get("method", "case")))
def test_recorded_order_requests_are_accepted_and_parsed(sim: SimulatorHandle, method: str,
                                                         case: dict[str, Any]) -> None:
    load("request.json")
    if method == "cancelOrders":
        answer = signed_request(sim, case["url"], "POST", case["output"])
        assert answer["result"] == "success", answer
        batch = json.loads(case["output"][len("json="):])["batchOrder"]
        assert [s["status"] for s in answer["batchStatus"]] == ["notFound"] * len(batch)
        return
    answer = signed_request(sim, case["url"], "POST", None)
    assert answer["result"] == "success", answer
    query = dict(parse_qsl(urlparse(case["url"]).query))
    if method == "cancelOrder":
        assert answer["cancelStatus"]["status"] == "notFound"  # an id this account never had
        return
    status = answer["sendStatus"]["status"]
    assert status in ("placed", "wouldNotReducePosition"), answer
    [order] = sim.admin.state()["orders"]
    assert order["symbol"] == query["symbol"] and order["side"] == query["side"]
    assert order["orderType"] == query["orderType"]
    assert Decimal(order["size"]) == Decimal(query["size"])
    for field, key in (("limitPrice", "limitPrice"), ("stopPrice", "stopPrice"), ("cliOrdId", "cliOrdId"),
                       ("triggerSignal", "triggerSignal")):
        if key in query:
            expected = query[key]
            got = order[field]
            assert got is not None and (got == expected or Decimal(got) == Decimal(expected)), (field, got)
    assert order["reduceOnly"] is (query.get("reduceOnly") == "true")


def test_recorded_read_requests_are_served(sim: SimulatorHandle) -> None:
    methods = load("request.json")["methods"]
    served_prefixes = ("/api/charts/v1/", "/api/history/v2/", "/derivatives/api/v3/")
    unserved = ("/withdrawal", "/transfer", "/leveragepreferences", "/cancelallordersafter", "/history?",
                "/account-log", "/executions")
    replayed = 0
    for name, cases in methods.items():
        if name in ("createOrder", "cancelOrder", "cancelOrders"):
            continue
        for case in cases:
            url = case["url"]
            path = urlparse(url).path
            if not path.startswith(served_prefixes) or any(u in url for u in unserved):
                continue
            answer = signed_request(sim, url, "GET", None)
            assert answer.get("result", "success") == "success", (url, answer)
            replayed += 1
    assert replayed >= 10


def _scenario(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    """Trades that produce every event type the recordings show."""
    ltc = float(sim.admin.quote("LTC/USD:USD")["bid"])  # type: ignore[arg-type]
    client.create_order("LTC/USD:USD", "market", "buy", 0.1)  # fill, position, OrderPlaced (filled)
    client.create_order("LTC/USD:USD", "limit", "buy", 0.1, round(ltc - 5, 2))  # resting LTC order
    client.create_order("LTC/USD:USD", "limit", "buy", 0.1, round(ltc - 6, 2))
    eth = float(sim.admin.quote("ETH/USD:USD")["bid"])  # type: ignore[arg-type]
    client.create_order("ETH/USD:USD", "limit", "buy", 0.01, round(eth - 20, 1))
    sim.admin.step(seconds=1)
    sim.admin.set_price("ETH/USD:USD", eth - 30)  # OrderUpdated full_fill
    mark = float(sim.admin.quote("ETH/USD:USD")["mark"])  # type: ignore[arg-type]
    client.create_order("ETH/USD:USD", "market", "buy", 0.01, None,
                        {"triggerPrice": round(mark * 1.01, 1), "triggerSignal": "mark"})
    cancelled = client.create_order("ETH/USD:USD", "limit", "sell", 0.01, round(mark * 0.9, 1),
                                    {"triggerPrice": round(mark * 0.9, 1), "triggerSignal": "mark"})
    sim.admin.step(seconds=1)
    sim.admin.set_price("ETH/USD:USD", mark * 1.02)  # OrderTriggerActivated
    client.cancel_order(cancelled["id"])  # OrderTriggerCancelled
    sim.admin.step(ms=sim.config.history_lag_ms + 1000)  # past the history's publication lag


def test_responses_carry_every_recorded_field(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    recorded = load("response.json")["methods"]
    client.enableLastJsonResponse = True
    _scenario(sim, client)
    compared = 0
    for name, cases in recorded.items():
        if name in NOT_SERVED:
            continue
        for case in cases:
            args = case["input"]
            mine: dict[str, Any] = {}
            getattr(client, {"fetchMyTrades": "fetch_my_trades", "fetchPositions": "fetch_positions",
                             "fetchClosedOrders": "fetch_closed_orders", "fetchOpenOrders": "fetch_open_orders",
                             "fetchCanceledOrders": "fetch_canceled_orders", "fetchFundingRates": "fetch_funding_rates",
                             "fetchTradingFees": "fetch_trading_fees"}[name])(*args)
            mine.update(client.last_json_response)
            if name == "fetchTradingFees":  # one recorded body stands for the public and the private call
                client.public_get_feeschedules()
                mine.update(client.last_json_response)
            missing = key_paths(case["httpResponse"]) - key_paths(mine) - ARTIFACTS
            assert not missing, (name, case.get("description"), sorted(missing))
            compared += 1
    assert compared >= 12


def test_key_paths_merge_list_items_and_skip_maps() -> None:
    paths = key_paths({"a": [{"b": 1}, {"c": {"d": 2}}], "volumesByFeeSchedule": {"uid-1": 3}})
    assert paths == {".a", ".a[].b", ".a[].c", ".a[].c.d", ".volumesByFeeSchedule"}
