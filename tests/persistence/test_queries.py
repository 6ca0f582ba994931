"""The reports' read-only queries (persistence/queries.py) on SQLite and PostgreSQL: trades, orders, PnL by symbol
and by UTC day, the decisions of a symbol; and the persistence actor answering them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import peewee
import pytest

from messages import (
    ClaimIntent,
    Event,
    EventKind,
    OrderIntent,
    OrderState,
    OrderUpdate,
    Reason,
    Side,
    SignalKind,
    client_order_id_for,
    intent_hash,
)
from messages.control import ControlCode, ReportKind, ReportQuery
from persistence import Store, queries
from tests.persistence.common import BTC, ETH, fill_for, update_for

DAY1 = int(datetime(2026, 12, 1, 23, 0, tzinfo=UTC).timestamp() * 1000)
DAY2 = int(datetime(2026, 12, 2, 1, 0, tzinfo=UTC).timestamp() * 1000)


def intent(t: int, kind: SignalKind = SignalKind.ENTER_LONG, symbol: str = BTC, amount: str = "0.002") -> OrderIntent:
    h = intent_hash(symbol, t, kind, Decimal(100))
    side = Side.SELL if kind is SignalKind.EXIT else Side.BUY
    return OrderIntent(intent_hash=h, client_order_id=client_order_id_for(h), symbol=symbol, kind=kind, side=side,
                       candle_time=t, notional=Decimal(100), amount=Decimal(amount), price=Decimal(50_000),
                       reduce_only=kind is SignalKind.EXIT, created_at=t)


def filled(store: Store, order: OrderIntent, price: str, fee: str, time: int, fill_id: str) -> None:
    store.apply_batch([update_for(order, OrderState.FILLED, filled=order.amount, amount=order.amount,
                                  reduce_only=order.reduce_only,
                                  average_price=Decimal(price), exchange_order_id=f"x-{fill_id}",
                                  fills=(fill_for(order, fill_id, amount=str(order.amount), price=price, fee=fee,
                                                  time=time),))])


@pytest.fixture
def traded(store: Store) -> Store:
    """BTC: long 0.002 @ 50000 then out @ 51000 (day 1), long again @ 52000 (day 2) and out @ 51500 (day 2);
    ETH: long 0.1 @ 3000, still open. Fees on every fill."""
    orders = [intent(1), intent(2, SignalKind.EXIT), intent(3), intent(4, SignalKind.EXIT),
              intent(5, symbol=ETH, amount="0.1")]
    store.apply_batch([ClaimIntent(intent=o) for o in orders])
    filled(store, orders[0], "50000", "0.05", DAY1, "f1")
    filled(store, orders[1], "51000", "0.051", DAY1 + 60_000, "f2")
    filled(store, orders[2], "52000", "0.052", DAY2, "f3")
    filled(store, orders[3], "51500", "0.0515", DAY2 + 60_000, "f4")
    filled(store, orders[4], "3000", "0.15", DAY2 + 120_000, "f5")
    return store


def test_trades_are_the_newest_fills_oldest_first_with_fee_kind_and_order(traded: Store) -> None:
    rows = queries.trades(traded)
    assert [r["fill_id"] for r in rows] == ["f1", "f2", "f3", "f4", "f5"]
    first = rows[0]
    assert first["time"] == datetime(2026, 12, 1, 23, 0, tzinfo=UTC)
    assert (first["symbol"], first["side"], first["amount"], first["price"], first["fee"], first["kind"]) == (
        BTC, "buy", Decimal("0.002"), Decimal("50000"), Decimal("0.05"), "entry")
    assert rows[1]["kind"] == "exit" and rows[1]["order_id"] == "x-f2"
    assert rows[0]["client_order_id"] == intent(1).client_order_id
    assert [r["fill_id"] for r in queries.trades(traded, limit=2)] == ["f4", "f5"]
    assert [r["fill_id"] for r in queries.trades(traded, symbol=ETH)] == ["f5"]
    assert [r["fill_id"] for r in queries.trades(traded, since_ms=DAY2)] == ["f3", "f4", "f5"]


def test_orders_carry_their_intents_kind_state_and_fill_and_open_only_leaves_the_final_out(traded: Store) -> None:
    resting = intent(6, symbol=ETH, amount="0.1")
    traded.claim_intent(resting)
    traded.apply_batch([update_for(resting, OrderState.ACCEPTED, amount=Decimal("0.1"), exchange_order_id="x-r")])
    traded.apply_batch([OrderUpdate(intent_hash=None, client_order_id=None, symbol=BTC, side=Side.SELL,
                                    state=OrderState.ACCEPTED, exchange_order_id="x-hand", amount=Decimal(1))])
    rows = queries.orders(traded)
    assert len(rows) == 7
    exit_row = rows[1]
    assert (exit_row["kind"], exit_row["side"], exit_row["state"], exit_row["filled"], exit_row["amount"],
            exit_row["average_price"], exit_row["reduce_only"], exit_row["open"]) == (
        "exit", "sell", "FILLED", Decimal("0.002"), Decimal("0.002"), Decimal("51000"), True, False)
    assert isinstance(exit_row["created_at"], datetime) and exit_row["created_at"].tzinfo is UTC
    assert [(r["kind"], r["order_id"]) for r in queries.orders(traded, open_only=True)] == [
        ("entry", "x-r"), ("external", "x-hand")]
    assert [r["order_id"] for r in queries.orders(traded, symbol=ETH)] == ["x-f5", "x-r"]
    assert [r["order_id"] for r in queries.orders(traded, limit=1)] == ["x-hand"]


def test_pnl_by_symbol_is_the_stores_running_totals_split_into_gross_and_fees(traded: Store) -> None:
    report = queries.pnl(traded)
    rows = {r["symbol"]: r for r in report["rows"]}
    totals = traded.pnl_totals()
    for symbol in (BTC, ETH):
        assert rows[symbol]["net"] == totals[symbol]["realized"]  # no funding paid: net = realized, fees in
        assert rows[symbol]["net"] == totals[symbol]["net"]
        assert rows[symbol]["gross"] == totals[symbol]["gross"]
        assert rows[symbol]["fees"] == totals[symbol]["fees"]
        assert rows[symbol]["position"] == totals[symbol]["position"]
    assert rows[BTC]["gross"] == Decimal("0.002") * (51000 - 50000) + Decimal("0.002") * (51500 - 52000)
    assert rows[BTC]["fees"] == Decimal("0.05") + Decimal("0.051") + Decimal("0.052") + Decimal("0.0515")
    assert rows[ETH]["gross"] == 0 and rows[ETH]["net"] == Decimal("-0.15")
    assert rows[BTC]["funding"] == 0 and report["funding_recorded"] is True  # schema 5 has the funding table
    assert report["total"]["net"] == sum(r["net"] for r in rows.values())
    assert report["total"]["fills"] == 5


def test_pnl_by_day_puts_each_close_on_its_utc_day_and_adds_up_to_the_same_total(traded: Store) -> None:
    by_symbol, by_day = queries.pnl(traded), queries.pnl(traded, by="day")
    days = {r["day"]: r for r in by_day["rows"]}
    assert sorted(days) == ["2026-12-01", "2026-12-02"]
    assert days["2026-12-01"]["gross"] == Decimal("2.000") and days["2026-12-01"]["fills"] == 2
    assert days["2026-12-02"]["gross"] == Decimal("-1.000")
    assert days["2026-12-02"]["fees"] == Decimal("0.052") + Decimal("0.0515") + Decimal("0.15")
    assert by_day["total"] == by_symbol["total"]
    # since: only the later fills count, but the book is replayed from the first (the day-2 close's entry is 52000)
    later = queries.pnl(traded, since_ms=DAY2)
    assert {r["symbol"]: r["gross"] for r in later["rows"]} == {BTC: Decimal("-1.000"), ETH: Decimal(0)}
    with pytest.raises(ValueError, match="symbol.*day"):
        queries.pnl(traded, by="week")


def test_pnl_counts_funding_payments_when_the_schema_has_a_funding_table(traded: Store) -> None:
    class Funding(peewee.Model):  # the shape the money change's table is read in: symbol, amount (+ received), time
        symbol = peewee.CharField()
        amount = peewee.TextField()
        time = peewee.BigIntegerField()

        class Meta:
            database = traded.database
            table_name = "test_funding"

    traded.database.create_tables([Funding])
    Funding.create(symbol=BTC, amount="-0.25", time=DAY1 + 30_000)
    Funding.create(symbol=ETH, amount="0.1", time=DAY2 + 200_000)

    @dataclass
    class WithFunding:
        base: Any
        Funding: Any

        def __getattr__(self, name: str) -> Any:
            return getattr(self.base, name)

    traded.models = WithFunding(traded.models, Funding)  # type: ignore[assignment]
    report = queries.pnl(traded)
    rows = {r["symbol"]: r for r in report["rows"]}
    assert report["funding_recorded"] is True
    assert rows[BTC]["funding"] == Decimal("-0.25")
    assert rows[BTC]["net"] == rows[BTC]["gross"] - rows[BTC]["fees"] - Decimal("0.25")
    assert {r["day"]: r["funding"] for r in queries.pnl(traded, by="day")["rows"]} == {
        "2026-12-01": Decimal("-0.25"), "2026-12-02": Decimal("0.1")}


def test_decisions_are_a_symbols_newest_events_first_with_commands_for_every_symbol(store: Store) -> None:
    entry = intent(1)
    store.claim_intent(entry, Event(kind=EventKind.INTENT_CLAIMED, symbol=BTC, intent_hash=entry.intent_hash,
                                    detail="ENTER_LONG buy 0.002", time=1_000))
    store.apply_batch([
        Event(kind=EventKind.SIGNAL_REJECTED, symbol=BTC, reason=Reason.PAUSED, detail="EXIT candle 1: paused",
              time=2_000),
        Event(kind=EventKind.SIGNAL_REJECTED, symbol=ETH, reason=Reason.RISK_LIMIT, detail="not BTC", time=2_500),
        Event(kind=EventKind.CONTROL, symbol=None, detail="pause all symbols by cli", time=3_000),
        Event(kind=EventKind.CONTROL, symbol=BTC, detail="cancel BTC/USD:USD by cli", time=4_000),
    ])
    rows = queries.decisions(store, BTC)
    assert [(r["event"], r["reason"]) for r in rows] == [
        ("CONTROL", None), ("CONTROL", None), ("SIGNAL_REJECTED", "PAUSED"), ("INTENT_CLAIMED", None)]
    assert rows[0]["detail"] == "cancel BTC/USD:USD by cli" and rows[0]["time"] == datetime.fromtimestamp(4, UTC)
    assert rows[-1]["kind"] == "entry" and rows[-1]["client_order_id"] == entry.client_order_id
    assert [r["event"] for r in queries.decisions(store, BTC, limit=2)] == ["CONTROL", "CONTROL"]
    assert [r["time"] for r in queries.decisions(store, BTC, since_ms=2_000)][-1] == datetime.fromtimestamp(2, UTC)


def test_answer_turns_each_query_into_its_reply_and_refuses_why_without_a_symbol(traded: Store) -> None:
    trades = queries.answer(traded, ReportQuery(report=ReportKind.TRADES, symbol=ETH))
    assert trades.ok and [r["fill_id"] for r in trades.rows] == ["f5"]
    pnl = queries.answer(traded, ReportQuery(report=ReportKind.PNL, by="day"))
    assert pnl.ok and pnl.extra["by"] == "day" and pnl.total is not None and pnl.total["fills"] == 5
    refused = queries.answer(traded, ReportQuery(report=ReportKind.WHY))
    assert not refused.ok and refused.code is ControlCode.REFUSED and "symbol" in refused.detail
    assert not queries.answer(traded, ReportQuery(report=ReportKind.PNL, by="week")).ok


def test_the_persistence_actor_answers_a_report_query_after_writing_what_was_told(sqlite_url: str) -> None:
    from actors.persistence import PersistenceActor
    from persistence import open_database

    ref = PersistenceActor.start(open_database(sqlite_url))
    try:
        ref.tell(Event(kind=EventKind.SIGNAL_REJECTED, symbol=BTC, reason=Reason.DUPLICATE_INTENT, detail="again"))
        reply = ref.ask(ReportQuery(report=ReportKind.WHY, symbol=BTC), timeout=10)
        assert reply.ok and [r["reason"] for r in reply.rows] == ["DUPLICATE_INTENT"]
    finally:
        ref.stop()
