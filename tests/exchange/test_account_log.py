"""Kraken's account log (fees, funding) and accounts margin parsed at the edge; the log paged by entry id and
costed as Kraken's rate-limit guide says."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from loguru import logger

from exchange.budget import CostBudget, account_log_cost
from exchange.private_api import PrivateApi
from exchange.reports import UnreadableAnswer, parse_account_log, parse_accounts_margin
from tests.exchange.test_batch import peers_dir

SYMBOLS = {"PF_XBTUSD": "BTC/USD:USD", "PF_DOGEUSD": "DOGE/USD:USD", "PF_XRPUSD": "XRP/USD:USD"}


def symbol_of(market_id: str) -> str | None:
    return SYMBOLS.get(market_id.upper())


def entry(entry_id: Any, info: str = "futures trade", **fields: Any) -> dict[str, Any]:
    """One account-log entry in Kraken's documented shape (get-account-log)."""
    base: dict[str, Any] = {
        "id": entry_id, "date": "2026-08-11T19:55:24.251Z", "asset": "usd", "info": info, "booking_uid": "b",
        "margin_account": "flex", "old_balance": 10, "new_balance": 9.9, "contract": "pf_xbtusd",
        "execution": None, "fee": None, "funding_rate": None, "realized_funding": None, "realized_pnl": None,
        "trade_price": None, "mark_price": None,
    }
    return {**base, **fields}


def test_the_recorded_answer_gives_the_trade_fee_and_the_funding_payment() -> None:
    peers = peers_dir()  # ../shared/peers/ccxt-krakenfutures beside the checkout, or KRAKEN_PEERS_DIR
    if not (peers / "response.json").is_file():
        pytest.skip(f"ccxt's recorded Kraken traffic not found at {peers}/response.json (set KRAKEN_PEERS_DIR to the "
                    "ccxt-krakenfutures folder)")
    cases = json.loads((peers / "response.json").read_text())["methods"]["fetchLedger"]
    page = parse_account_log(cases[0]["httpResponse"], symbol_of)
    [trade_fee] = page.fees  # the position leg (asset == contract, fee null) and the conversion are not fees
    assert (trade_fee.entry_id, trade_fee.execution, trade_fee.symbol) == (9, "a59b8e24-89d8-4553-a084-b2de96dba5d3",
                                                                          "DOGE/USD:USD")
    assert (trade_fee.fee, trade_fee.currency) == (Decimal("0.0035"), "USD")
    [payment] = page.funding
    assert (payment.entry_id, payment.symbol, payment.amount) == (2, "XRP/USD:USD", Decimal("0.0116"))
    assert payment.time_ms == 1786377600000
    assert page.skipped == [] and sorted(page.ids) == [1, 2, 6, 7, 9]


def test_garbage_entries_are_skipped_with_their_reason_never_guessed() -> None:
    answer = {"accountUid": "u", "logs": [
        entry(1, execution="x1", fee="0.01"),  # good
        entry(2, execution="x2", fee="abc"),  # fee not a number
        entry(3, execution=None, fee="0.01"),  # a fee without its execution: whose?
        entry(4, execution="x4", fee="0.01", date="yesterday"),
        entry("five", execution="x5", fee="0.01"),  # no readable id
        "not an object",
        entry(6, info="funding rate change", realized_funding="NaN"),
        entry(7, info="funding rate change", realized_funding="-0.02", contract=None),
        entry(8, info="funding rate change", realized_funding="-0.02", funding_rate="0.00001"),  # good
        entry(9, execution="x9", fee=True),
    ]}
    page = parse_account_log(answer, symbol_of)
    assert [(f.entry_id, f.fee) for f in page.fees] == [(1, Decimal("0.01"))]
    assert [(p.entry_id, p.amount) for p in page.funding] == [(8, Decimal("-0.02"))]
    assert len(page.skipped) == 8
    assert any("entry 2" in s and "fee" in s for s in page.skipped)
    assert any("entry 3" in s and "execution" in s for s in page.skipped)
    assert any("entry 4" in s and "date" in s for s in page.skipped)
    assert any("readable id" in s for s in page.skipped)
    assert any("entry 7" in s and "contract" in s for s in page.skipped)


@pytest.mark.parametrize("answer", [None, [], {"logs": "x"}, {"accountUid": "u"}, {"result": "error", "logs": []}])
def test_an_answer_without_a_logs_list_is_not_an_empty_log(answer: Any) -> None:
    with pytest.raises(UnreadableAnswer):
        parse_account_log(answer, symbol_of)


def test_accounts_margin_reads_the_flex_available_margin() -> None:
    answer = {"result": "success", "accounts": {"flex": {"availableMargin": "123.45", "initialMargin": "10",
                                                         "portfolioValue": "140"}, "cash": {}}}
    report = parse_accounts_margin(answer)
    assert (report.available, report.initial, report.portfolio_value) == (Decimal("123.45"), Decimal(10),
                                                                          Decimal(140))
    for bad in ({"result": "success", "accounts": {"cash": {}}},
                {"result": "success", "accounts": {"flex": {"availableMargin": None}}},
                {"result": "error", "accounts": {"flex": {"availableMargin": "1"}}}):
        with pytest.raises(UnreadableAnswer):
            parse_accounts_margin(bad)


@pytest.mark.parametrize(("count", "tokens"), [(1, 1), (25, 1), (26, 2), (50, 2), (500, 3), (1000, 3), (1001, 6),
                                               (5000, 6), (5001, 10), (None, 3)])
def test_the_account_log_costs_by_count_as_krakens_guide_says(count: int | None, tokens: int) -> None:
    assert account_log_cost(count) == tokens


class LogExchange:
    """Just Kraken's account log: `from` (inclusive, our harsher reading of an undocumented bound), sort, count."""

    def __init__(self, entries: list[dict[str, Any]]) -> None:
        self.entries = entries
        self.asked: list[dict[str, Any]] = []
        self.markets_by_id = {mid: {"symbol": s} for mid, s in SYMBOLS.items()}

    def historyGetAccountLog(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802 - ccxt's name
        self.asked.append(dict(params))
        rows = [e for e in self.entries if "from" not in params or e["id"] >= params["from"]]
        rows = [e for e in rows if "since" not in params or params["since"] <= 1786477679088]
        return {"accountUid": "u", "logs": sorted(rows, key=lambda e: e["id"])[: params["count"]]}


def test_the_log_is_paged_by_entry_id_until_a_short_page_each_entry_once() -> None:
    entries = [entry(n, execution=f"x{n}", fee="0.01") for n in range(1, 1201)]
    exchange = LogExchange(entries)
    budget = CostBudget()
    before = budget.history.available()
    page = PrivateApi(exchange, budget).account_log(from_id=1)
    assert [f.entry_id for f in page.fees] == list(range(1, 1201))
    assert exchange.asked[0] == {"sort": "asc", "from": 1, "count": 25}
    assert all(a["count"] == 500 for a in exchange.asked[1:]) and len(exchange.asked) == 4
    spent = before - budget.history.available()
    assert 1 + 3 * 3 - 0.5 < spent < 1 + 3 * 3 + 0.5  # 25 entries cost 1 token, 500 cost 3


def test_a_log_search_that_stalls_raises_instead_of_reading_as_complete() -> None:
    class Stuck(LogExchange):
        def historyGetAccountLog(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
            self.asked.append(dict(params))
            return {"logs": [entry(7, execution="x7", fee="0.01")] * params["count"]}

    with pytest.raises(UnreadableAnswer, match="stalls"):
        PrivateApi(Stuck([])).account_log(from_id=7)


def test_skipped_entries_are_logged_by_the_gateway_reader() -> None:
    from actors.account_money import AccountMoney

    recorded: list[Any] = []
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(str(m)), level="WARNING")
    try:
        exchange = LogExchange([entry(1, execution="x1", fee="zz"), entry(2, execution="x2", fee="0.5")])
        money = AccountMoney(PrivateApi(exchange), record=recorded.append, route=lambda m: None,
                             exchange_now=lambda: 1786477679088)
        assert money.read_log(force=True)
    finally:
        logger.remove(sink)
    assert [f.execution for f in recorded[0].fees] == ["x2"]
    assert any("skipped" in m and "entry 1" in m for m in messages)
    assert money.cursor == 2
