"""Every way an order ends reaches the console at INFO: filled, cancelled (a limit time-out, on the exchange),
rejected, never placed (proven absent)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from loguru import logger

from messages import Fill, OrderState, OrderUpdate, Side
from tests.actors.test_symbol_trader import BTC, T0, make_trader, sig
from tests.helpers import FakePorts

pytestmark = pytest.mark.timeout(10)


def ended(state: OrderState, reason: str | None, detail: str, filled: str = "0",
          fills: tuple[Fill, ...] = ()) -> tuple[str, list[str]]:
    ports = FakePorts()
    trader = make_trader(ports, order_notional=Decimal(100))
    assert trader.on_signal(sig()).accepted
    order = next(iter(trader.orders.values()))
    lines: list[str] = []
    handler = logger.add(lambda m: lines.append(f"{m.record['level'].name} {m.record['message']}"), level="INFO")
    try:
        trader.on_order_update(OrderUpdate(intent_hash=order.intent_hash, client_order_id=order.client_order_id,
                                           symbol=BTC, side=order.side, state=state, filled=Decimal(filled),
                                           seq=10, reason=reason, detail=detail, fills=fills))
    finally:
        logger.remove(handler)
    assert order.client_order_id not in trader.orders
    return order.client_order_id, lines


@pytest.mark.parametrize(
    ("state", "reason", "detail", "expected"),
    [
        (OrderState.CANCELED, None, "limit order not filled within 30 s: cancelled",
         "CANCELED: 0 of 0.002 filled (limit order not filled within 30 s: cancelled)"),
        (OrderState.CANCELED, None, "cancelled on the exchange (not by this system)",
         "CANCELED: 0 of 0.002 filled (cancelled on the exchange (not by this system))"),
        (OrderState.REJECTED, "EXCHANGE_REJECTED", "insufficientAvailableFunds",
         "REJECTED: 0 of 0.002 filled (EXCHANGE_REJECTED: insufficientAvailableFunds)"),
        (OrderState.REJECTED, "EXCHANGE_REJECTED", "proven absent: never placed",
         "REJECTED: 0 of 0.002 filled (EXCHANGE_REJECTED: proven absent: never placed)"),
        (OrderState.FILLED, None, "", "FILLED: 0.002 of 0.002 filled"),
    ],
)
def test_the_end_of_an_order_is_logged_at_info(state: OrderState, reason: str | None, detail: str,
                                               expected: str) -> None:
    filled = "0.002" if state is OrderState.FILLED else "0"
    cid, lines = ended(state, reason, detail, filled=filled)
    assert f"INFO {BTC} buy order {cid} {expected}" in lines, lines


def test_a_fill_that_completes_an_order_is_not_said_twice() -> None:
    fill = Fill(fill_id="f1", symbol=BTC, side=Side.BUY, price=Decimal(50_000), amount=Decimal("0.002"), time=T0)
    _, lines = ended(OrderState.FILLED, None, "", filled="0.002", fills=(fill,))
    assert not any(" FILLED: " in line for line in lines), lines
