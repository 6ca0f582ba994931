"""FillIndex: each order finds its own fills of one look without comparing every fill with every order."""

from __future__ import annotations

from decimal import Decimal

from actors.gateway import FillIndex, Tracked
from exchange.reports import FillReport
from messages import OrderIntent, OrderState, Side, SignalKind, client_order_id_for, intent_hash

BTC = "BTC/USD:USD"


def tracked(candle: int, exchange_order_id: str | None = None) -> Tracked:
    h = intent_hash(BTC, candle, SignalKind.ENTER_LONG, Decimal(10))
    intent = OrderIntent(intent_hash=h, client_order_id=client_order_id_for(h), symbol=BTC, kind=SignalKind.ENTER_LONG,
                         side=Side.BUY, candle_time=candle, notional=Decimal(10), amount=Decimal(2), price=Decimal(5))
    return Tracked(intent=intent, state=OrderState.ACCEPTED, exchange_order_id=exchange_order_id)


def fill(fill_id: str, order_id: str, cid: str | None, at: int) -> FillReport:
    return FillReport(fill_id=fill_id, exchange_order_id=order_id, client_order_id=cid, symbol=BTC, side=Side.BUY,
                      amount=Decimal(1), price=Decimal(5), time_ms=at)


def test_fills_found_by_client_order_id_or_exchange_order_id_in_listed_order_each_once() -> None:
    mine, other = tracked(1, exchange_order_id="ex-1"), tracked(2)
    fills = [
        fill("f3", "ex-1", None, 3),  # Kraken's fill without a cliOrdId: found by the order id
        fill("f1", "ex-1", mine.client_order_id, 1),  # both ids: listed once
        fill("f2", "ex-2", other.client_order_id, 2),
        fill("f4", "ex-9", mine.client_order_id, 4),  # our cliOrdId on another order id: found (the book decides)
    ]
    index = FillIndex(fills)
    assert [f.fill_id for f in index.of(mine)] == ["f3", "f1", "f4"]
    assert [f.fill_id for f in index.of(other)] == ["f2"]
    assert index.of(tracked(3)) == []


def test_an_order_without_exchange_id_is_not_matched_by_fills_without_client_order_id() -> None:
    index = FillIndex([fill("f1", "ex-1", None, 1)])
    assert index.of(tracked(1)) == []
