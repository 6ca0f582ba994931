"""The simulator charges money as Kraken does: maker/taker fees, hourly funding, the account log and its invariant
(balance change == sum(realized_pnl) - sum(fee) + sum(realized_funding)), kept across restarts (README rules 17-19)."""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import ccxt
import pytest

from simulator import start_simulator
from simulator.clock import SteppedClock
from simulator.engine import HOUR_MS, Exchange
from simulator.instruments import INSTRUMENTS
from simulator.prices import MarketData
from tests.simulator.conftest import boot

pytestmark = pytest.mark.timeout(60)

START = 1_780_000_000_000 - 1_780_000_000_000 % HOUR_MS + 60_000  # one minute past an hour
BTC = "BTC/USD:USD"


def make_exchange(funding_rate: str | None = "0", balance: str = "100000") -> tuple[Exchange, SteppedClock]:
    """A stepped-clock exchange over all markets (history lag 0 so the log reads at once)."""
    clock = SteppedClock(START)
    market = MarketData(INSTRUMENTS, 3, START)
    rate = None if funding_rate is None else Decimal(funding_rate)
    return Exchange(market, clock, INSTRUMENTS, Decimal(balance), seed=3, history_lag_ms=0, funding_rate=rate), clock


def order(ex: Exchange, **params: str) -> dict[str, object]:
    """Send one order (BTC market buy of 0.01 unless told)."""
    return ex.send_order({"orderType": "mkt", "symbol": "PF_XBTUSD", "side": "buy", "size": "0.01", **params})


def logs(ex: Exchange, **params: object) -> list[dict[str, Any]]:
    """The account-log entries the endpoint would answer, oldest first unless sorted otherwise."""
    infos = params.pop("info", [])
    page = ex.account_log_page({"sort": "asc", **params}, [str(i) for i in infos] if isinstance(infos, list)
                               else [str(infos)])
    return page["logs"]  # type: ignore[return-value]


def dec(value: object) -> Decimal:
    """A JSON number back as the Decimal it was printed from."""
    return Decimal(str(value))


def log_sums(entries: list[dict[str, Any]]) -> Decimal:
    """sum(realized_pnl) - sum(fee) + sum(realized_funding) over the USD (cash) entries."""
    total = Decimal(0)
    for e in entries:
        if e["asset"] != "usd":
            continue
        total += dec(e["realized_pnl"] or 0) - dec(e["fee"] or 0) + dec(e["realized_funding"] or 0)
    return total


# -- fees -------------------------------------------------------------------------------------
def test_a_market_order_pays_the_taker_fee_and_writes_a_position_and_a_cash_entry() -> None:
    ex, _ = make_exchange()
    order(ex)
    fill = ex.fills[-1]
    fee = fill.size * fill.price * Decimal("0.0005")
    assert ex.balance == Decimal(100000) - fee
    position_leg, cash_leg = logs(ex)
    assert position_leg["asset"] == "pf_xbtusd" and position_leg["info"] == "futures trade"
    assert (position_leg["old_balance"], dec(position_leg["new_balance"])) == (0, Decimal("0.01"))
    assert cash_leg["asset"] == "usd" and cash_leg["contract"] == "pf_xbtusd" and cash_leg["margin_account"] == "flex"
    assert dec(cash_leg["fee"]) == fee and cash_leg["realized_pnl"] == 0
    assert dec(cash_leg["old_balance"]) == 100000 and dec(cash_leg["new_balance"]) == ex.balance
    assert cash_leg["execution"] == position_leg["execution"] == fill.fill_id  # the fill id /fills shows
    assert dec(cash_leg["trade_price"]) == fill.price and cash_leg["old_average_entry_price"] is None
    assert (position_leg["id"], cash_leg["id"]) == (1, 2)
    for key in ("id", "date", "asset", "info", "booking_uid", "margin_account", "old_balance", "new_balance",
                "old_average_entry_price", "new_average_entry_price", "trade_price", "mark_price", "realized_pnl",
                "fee", "execution", "collateral", "funding_rate", "realized_funding", "conversion_spread_percentage",
                "liquidation_fee", "contract"):
        assert key in cash_leg


def test_a_resting_limit_order_that_is_hit_pays_the_maker_fee() -> None:
    ex, _ = make_exchange()
    limit = ex.market.quote("PF_XBTUSD").bid - 500
    order(ex, orderType="lmt", limitPrice=str(limit))
    ex.set_price("PF_XBTUSD", float(limit) - 100)
    fill = ex.fills[-1]
    assert fill.fill_type == "maker"
    assert dec(logs(ex)[-1]["fee"]) == Decimal("0.01") * limit * Decimal("0.0002")


def test_closing_a_position_books_its_realized_pnl_net_of_the_fee() -> None:
    ex, _ = make_exchange()
    order(ex)
    entry = ex.fills[-1].price
    ex.set_price("PF_XBTUSD", float(entry) + 1000)
    order(ex, side="sell")
    exit_fill = ex.fills[-1]
    cash = logs(ex)[-1]
    assert dec(cash["realized_pnl"]) == Decimal("0.01") * (exit_fill.price - entry)
    assert dec(cash["new_balance"]) - dec(cash["old_balance"]) == dec(cash["realized_pnl"]) - dec(cash["fee"])
    assert dec(logs(ex)[-2]["new_balance"]) == 0 and logs(ex)[-2]["new_average_entry_price"] is None


# -- funding ----------------------------------------------------------------------------------
def test_a_long_pays_a_positive_funding_rate_at_the_hour_boundary() -> None:
    ex, clock = make_exchange(funding_rate="0.0001")
    order(ex)
    clock.advance(HOUR_MS - 120_000)  # still before the boundary: nothing
    ex.sync()
    assert not logs(ex, info="funding rate change")
    clock.advance(120_000)
    ex.sync()
    (funding,) = logs(ex, info="funding rate change")
    mark = dec(funding["mark_price"])
    assert dec(funding["funding_rate"]) == (Decimal("0.0001") * mark).quantize(Decimal("1e-12"))
    assert dec(funding["realized_funding"]) == (-Decimal("0.01") * dec(funding["funding_rate"])).quantize(
        Decimal("1e-8"), rounding="ROUND_FLOOR")
    assert dec(funding["realized_funding"]) < 0
    assert funding["date"].endswith(":00:00.000Z") and funding["fee"] is None and funding["asset"] == "usd"
    assert dec(funding["new_balance"]) - dec(funding["old_balance"]) == dec(funding["realized_funding"])
    assert ex.balance == dec(funding["new_balance"])


def test_a_short_receives_a_positive_funding_rate() -> None:
    ex, clock = make_exchange(funding_rate="0.0001")
    order(ex, side="sell")
    clock.advance(HOUR_MS)
    ex.sync()
    (funding,) = logs(ex, info=["funding rate change"])
    assert dec(funding["realized_funding"]) > 0


def test_funding_rate_zero_charges_nothing_and_flat_accounts_pay_nothing() -> None:
    ex, clock = make_exchange(funding_rate="0")
    order(ex)
    clock.advance(3 * HOUR_MS)
    ex.sync()
    assert not logs(ex, info="funding rate change")
    flat, flat_clock = make_exchange(funding_rate="0.0001")
    flat_clock.advance(3 * HOUR_MS)
    flat.sync()
    assert not logs(flat)


def test_the_default_rate_follows_the_mark_premium_and_is_capped() -> None:
    ex, _ = make_exchange(funding_rate=None)
    ex.set_price("PF_XBTUSD", 60000.0, mark_premium=0.0024)
    assert ex.relative_funding_rate("PF_XBTUSD") == Decimal("0.0001")  # 0.24 % / 24
    ex.set_price("PF_XBTUSD", 60000.0, mark_premium=-0.5)
    assert ex.relative_funding_rate("PF_XBTUSD") == Decimal("-0.0025")  # maxRelativeFundingRate


# -- the invariant ------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_balance_change_equals_realized_pnl_minus_fees_plus_funding_to_the_cent(seed: int) -> None:
    ex, clock = make_exchange(funding_rate=None)
    rng = random.Random(seed)
    symbols = ("PF_XBTUSD", "PF_ETHUSD", "PF_LTCUSD")
    sizes = {"PF_XBTUSD": "0.01", "PF_ETHUSD": "0.2", "PF_LTCUSD": "5"}
    for _ in range(40):
        symbol = rng.choice(symbols)
        quote = ex.market.quote(symbol)
        if rng.random() < 0.5:
            order(ex, symbol=symbol, side=rng.choice(("buy", "sell")), size=sizes[symbol])
        else:
            side = rng.choice(("buy", "sell"))
            tick = INSTRUMENTS[symbol].tick_size
            limit = quote.bid - 3 * tick if side == "buy" else quote.ask + 3 * tick
            order(ex, symbol=symbol, side=side, size=sizes[symbol], orderType="lmt", limitPrice=str(limit))
        clock.advance(rng.randrange(60_000, 2 * HOUR_MS))
        ex.sync()
    entries = logs(ex, count=500)
    assert any(e["info"] == "funding rate change" for e in entries)
    assert any(e["info"] == "futures trade" and dec(e["realized_pnl"] or 0) != 0 for e in entries)
    assert ex.balance - Decimal(100000) == log_sums(entries)  # exact, not only to the cent
    cash = [e for e in entries if e["asset"] == "usd"]
    assert all(dec(a["new_balance"]) == dec(b["old_balance"]) for a, b in zip(cash, cash[1:], strict=False))


# -- the endpoint's parameters -----------------------------------------------------------------------
def test_the_query_pages_by_id_and_time_sorts_filters_and_refuses_bad_input() -> None:
    ex, clock = make_exchange(funding_rate="0.0001")
    order(ex)
    clock.advance(HOUR_MS)
    ex.sync()
    order(ex, side="sell")
    every = logs(ex)
    assert [e["id"] for e in every] == [1, 2, 3, 4, 5]
    newest_first: Any = ex.account_log_page({}, [])["logs"]
    assert [e["id"] for e in newest_first] == [5, 4, 3, 2, 1]
    assert [e["id"] for e in logs(ex, **{"from": 2, "to": 3})] == [2, 3]
    assert [e["id"] for e in logs(ex, count=2)] == [1, 2]
    assert [e["info"] for e in logs(ex, info="funding rate change")] == ["funding rate change"]
    funding_ms = START - START % HOUR_MS + HOUR_MS
    assert [e["id"] for e in logs(ex, since=funding_ms)] == [3, 4, 5]
    assert [e["id"] for e in logs(ex, before=funding_ms)] == [1, 2]
    for bad in ({"info": "no such type"}, {"sort": "up"}, {"count": 0}, {"from": "x"}, {"since": -1}):
        with pytest.raises(ValueError):
            logs(ex, **bad)


def test_entries_are_published_after_the_history_lag() -> None:
    clock = SteppedClock(START)
    ex = Exchange(MarketData(INSTRUMENTS, 3, START), clock, INSTRUMENTS, Decimal(100000), history_lag_ms=3000)
    order(ex)
    assert ex.account_log_page({}, [])["logs"] == []
    clock.advance(3000)
    assert len(ex.account_log_page({}, [])["logs"]) == 2  # type: ignore[arg-type]


# -- end to end through ccxt -----------------------------------------------------------------------
def test_ccxt_reads_the_account_log_and_the_balance_agrees(tmp_path: Path) -> None:
    state = tmp_path / "exchange.json"
    handle = boot(funding_rate=0.0001, state_file=str(state))
    try:
        client = handle.client(timeout_ms=5_000)
        client.load_markets()
        client.create_order(BTC, "market", "buy", 0.02)
        bid = float(handle.admin.quote(BTC)["bid"])  # type: ignore[arg-type]
        client.create_order(BTC, "limit", "sell", 0.01, bid + 40)
        handle.admin.step(seconds=3700)  # past an hour boundary: funding; the resting sell may be hit
        client.create_order(BTC, "market", "sell", 0.01, None, {"reduceOnly": True})
        handle.admin.step(seconds=4)  # past the publication lag
        answer = client.history_get_account_log({"sort": "asc", "count": 100})
        entries = answer["logs"]
        assert answer["accountUid"] and entries
        infos = {e["info"] for e in entries}
        assert infos >= {"futures trade", "funding rate change"}
        executions = {e["execution"] for e in entries if e["info"] == "futures trade"}
        assert executions == {t["id"] for t in client.fetch_my_trades()}
        total = Decimal(str(client.fetch_balance()["USD"]["total"]))
        assert total - Decimal(100000) == log_sums(entries)
        ledger = client.fetch_ledger()  # ccxt's own reading of the same endpoint
        assert {e["referenceId"] for e in ledger if e["type"] == "trade"} == executions
        funding = client.fetch_funding_history(BTC)
        assert funding and all(f["amount"] < 0 for f in funding)
    finally:
        handle.stop()
    again = start_simulator(clock="stepped", seed=7, rate_limit=False, funding_rate=0.0001, state_file=str(state))
    try:
        client = again.client(timeout_ms=5_000)
        assert client.history_get_account_log({"sort": "asc", "count": 100})["logs"] == entries
        assert Decimal(str(client.fetch_balance()["USD"]["total"])) == total
    finally:
        again.stop()


def test_an_order_whose_margin_exceeds_the_available_margin_is_refused() -> None:
    handle = boot(initial_balance=1000.0)
    try:
        client = handle.client(timeout_ms=5_000)
        client.load_markets()
        with pytest.raises(ccxt.InsufficientFunds):
            client.create_order(BTC, "market", "buy", 1)  # ~65k USD notional: 1.3k initial margin
        flex = client.private_get_accounts()["accounts"]["flex"]
        assert Decimal(flex["availableMargin"]) == Decimal(1000) and Decimal(flex["initialMargin"]) == 0
        client.create_order(BTC, "market", "buy", 0.01)
        flex = client.private_get_accounts()["accounts"]["flex"]
        assert 0 < Decimal(flex["availableMargin"]) < Decimal(1000) - Decimal(flex["initialMargin"]) + 1
    finally:
        handle.stop()
