"""batchorder limits and synthetic markets: the refusal of a batch over `batch_max_instructions`, `extra_markets`."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import ccxt
import pytest

from exchange.private_api import iso_ms
from simulator import SimulatorConfig, SimulatorHandle, resolve_symbol
from simulator.instruments import synthetic_instrument, synthetic_markets
from tests.simulator.conftest import boot

pytestmark = pytest.mark.timeout(60)


def sends(count: int, prefix: str) -> list[dict[str, Any]]:
    return [{"order": "send", "order_tag": str(n + 1), "orderType": "mkt", "symbol": "PF_XBTUSD", "side": "buy",
             "size": "0.001", "cliOrdId": f"{prefix}-{n}"} for n in range(count)]


def test_the_default_limit_is_100_instructions() -> None:
    assert SimulatorConfig().batch_max_instructions == 100 and SimulatorConfig().extra_markets == 0


@pytest.mark.parametrize("switched", [{"batch_max_instructions": 3}], indirect=True)
def test_a_batch_over_the_limit_is_refused_whole_with_an_error_and_places_nothing(
        switched: tuple[SimulatorHandle, ccxt.krakenfutures]) -> None:
    sim, client = switched
    before = iso_ms(sim.admin.now()["now"] + 5_000)
    with pytest.raises(ccxt.BadRequest, match="invalidArgument"):
        client.privatePostBatchorder({"batchOrder": sends(4, "big"), "ProcessBefore": before})
    assert sim.admin.order_requests() == [] and sim.admin.orders() == []
    answer = client.privatePostBatchorder({"batchOrder": sends(3, "ok"), "ProcessBefore": before})
    assert [s["status"] for s in answer["batchStatus"]] == ["placed"] * 3
    rows = sim.admin.order_requests()
    assert len(rows) == 3 and {r["batch"] for r in rows} == {1} and {r["processBefore"] for r in rows} == {before}


def test_each_batch_request_has_its_own_number_in_the_request_record(sim: SimulatorHandle,
                                                                     client: ccxt.krakenfutures) -> None:
    before = iso_ms(sim.admin.now()["now"] + 5_000)
    client.privatePostBatchorder({"batchOrder": sends(2, "a"), "ProcessBefore": before})
    client.privatePostBatchorder({"batchOrder": sends(2, "b"), "ProcessBefore": before})
    client.create_order("BTC/USD:USD", "market", "buy", 0.001)
    assert [r["batch"] for r in sim.admin.order_requests()] == [1, 1, 2, 2, None]


def test_extra_markets_are_listed_priced_and_tradeable_through_ccxt() -> None:
    sim = boot(extra_markets=12)
    try:
        client = sim.client(timeout_ms=5_000)
        markets = client.load_markets()
        assert len(markets) == 8 + 12 and markets["X012/USD:USD"]["id"] == "PF_X012USD"
        assert "X013/USD:USD" not in markets
        ticker = client.fetch_ticker("X007/USD:USD")
        assert 5 <= ticker["last"] <= 210
        book = client.fetch_order_book("X007/USD:USD")
        assert len(book["bids"]) == 10 and book["bids"][0][0] < book["asks"][0][0]
        assert book["bids"][0][0] * book["bids"][0][1] > 1_000  # a 100-1000 USD order fills at the best level
        order = client.create_order("X007/USD:USD", "market", "buy", 2.0, None, {"clientOrderId": "x7"})
        assert order["id"] and sim.admin.order_requests()[0]["symbol"] == "PF_X007USD"
        candles = client.fetch_ohlcv("X007/USD:USD", "1m", limit=5)
        assert candles and all(c[4] > 0 for c in candles)
    finally:
        sim.stop()


def test_without_extra_markets_nothing_changes_and_synthetic_ids_are_unknown(sim: SimulatorHandle,
                                                                             client: ccxt.krakenfutures) -> None:
    assert len(client.markets) == 8 and "X001/USD:USD" not in client.markets
    answer = client.privatePostSendorder({"orderType": "mkt", "symbol": "PF_X001USD", "side": "buy", "size": "1"})
    assert answer["sendStatus"]["status"] == "invalidArgument"
    with pytest.raises(ValueError, match="unknown market"):
        boot(symbols=["PF_X001USD"])


def test_synthetic_instruments_are_sane_and_resolve_both_ways() -> None:
    markets = synthetic_markets(300)
    assert list(markets)[:2] == ["PF_X001USD", "PF_X002USD"] and list(markets)[-1] == "PF_X300USD"
    for inst in markets.values():
        assert 5 <= inst.initial_price <= 210 and inst.size_step == Decimal("0.1")
        assert Decimal(inst.impact_mid_size) * 5 * Decimal(repr(inst.initial_price)) >= 1_000
    assert resolve_symbol("X042/USD:USD") == resolve_symbol("pf_x042usd") == "PF_X042USD"
    assert resolve_symbol("PF_X000USD") is None and resolve_symbol("X000/USD:USD") is None
    assert synthetic_instrument(42).unified_symbol == "X042/USD:USD"
    chosen = boot(symbols=["PF_X002USD", "BTC/USD:USD"], extra_markets=5)
    try:
        assert sorted(chosen.simulator.instruments) == ["PF_X002USD", "PF_XBTUSD"]
    finally:
        chosen.stop()
