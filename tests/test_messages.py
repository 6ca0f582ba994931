"""Messages are frozen and validated; intent hashes and client order ids are deterministic."""

from decimal import Decimal

import pydantic
import pytest

from messages import (
    MarketSpec,
    OrderIntent,
    OrderState,
    Side,
    SignalKind,
    client_order_id_for,
    intent_hash,
    is_advance,
)


def test_intent_hash_depends_on_symbol_time_kind_and_notional_only() -> None:
    base = intent_hash("BTC/USD:USD", 1_700_000_000_000, SignalKind.ENTER_LONG, Decimal("100"))
    assert base == intent_hash("BTC/USD:USD", 1_700_000_000_000, SignalKind.ENTER_LONG, Decimal("100.00"))
    others = {
        intent_hash("ETH/USD:USD", 1_700_000_000_000, SignalKind.ENTER_LONG, Decimal("100")),
        intent_hash("BTC/USD:USD", 1_700_000_060_000, SignalKind.ENTER_LONG, Decimal("100")),
        intent_hash("BTC/USD:USD", 1_700_000_000_000, SignalKind.ENTER_SHORT, Decimal("100")),
        intent_hash("BTC/USD:USD", 1_700_000_000_000, SignalKind.ENTER_LONG, Decimal("101")),
    }
    assert base not in others and len(others) == 4


def test_client_order_id_is_deterministic_and_fits_kraken() -> None:
    h = intent_hash("BTC/USD:USD", 1, SignalKind.EXIT, Decimal(0))
    cid = client_order_id_for(h)
    assert cid == client_order_id_for(h)
    assert len(cid) <= 100 and cid.count("-") == 4  # a UUID string
    assert cid != client_order_id_for(intent_hash("BTC/USD:USD", 2, SignalKind.EXIT, Decimal(0)))


def test_messages_are_frozen_and_reject_unknown_fields() -> None:
    h = intent_hash("BTC/USD:USD", 1, SignalKind.ENTER_LONG, Decimal(100))
    intent = OrderIntent(
        intent_hash=h,
        client_order_id=client_order_id_for(h),
        symbol="BTC/USD:USD",
        kind=SignalKind.ENTER_LONG,
        side=Side.BUY,
        candle_time=1,
        notional=Decimal(100),
        amount=Decimal("0.002"),
        price=Decimal(50_000),
    )
    with pytest.raises(pydantic.ValidationError):
        intent.amount = Decimal(1)  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        OrderIntent(**intent.model_dump(), extra_field=1)
    with pytest.raises(pydantic.ValidationError):
        OrderIntent(**{**intent.model_dump(), "client_order_id": "x" * 101})


@pytest.mark.parametrize(
    ("current", "new", "advance"),
    [
        (OrderState.INITIALIZED, OrderState.SUBMITTED, True),
        (OrderState.SUBMITTED, OrderState.ACCEPTED, True),
        (OrderState.SUBMITTED, OrderState.UNKNOWN, True),
        (OrderState.UNKNOWN, OrderState.FILLED, True),
        (OrderState.UNKNOWN, OrderState.SUBMITTED, True),
        (OrderState.ACCEPTED, OrderState.SUBMITTED, False),
        (OrderState.ACCEPTED, OrderState.UNKNOWN, False),
        (OrderState.ACCEPTED, OrderState.ACCEPTED, False),
        (OrderState.FILLED, OrderState.CANCELED, False),
        (OrderState.FILLED, OrderState.REJECTED, False),
        (OrderState.CANCELED, OrderState.ACCEPTED, False),
        (OrderState.REJECTED, OrderState.ACCEPTED, True),  # found on the exchange after all: taken back
        (OrderState.REJECTED, OrderState.FILLED, True),
        (OrderState.REJECTED, OrderState.SUBMITTED, False),  # never re-sent once final
    ],
)
def test_order_states_move_only_as_the_transition_table_allows(current: OrderState, new: OrderState,
                                                                advance: bool) -> None:
    assert is_advance(current, new) is advance


def test_a_repeated_state_is_progress_only_with_more_filled() -> None:
    one, two = Decimal("0.1"), Decimal("0.2")
    assert is_advance(OrderState.PARTIALLY_FILLED, OrderState.PARTIALLY_FILLED, filled_before=one, filled_after=two)
    assert not is_advance(OrderState.PARTIALLY_FILLED, OrderState.PARTIALLY_FILLED, filled_before=two,
                          filled_after=two)
    assert not is_advance(OrderState.PARTIALLY_FILLED, OrderState.PARTIALLY_FILLED)
    assert is_advance(OrderState.CANCELED, OrderState.CANCELED, filled_before=one, filled_after=two)


def test_contracts_for_notional_round_down_to_the_amount_step() -> None:
    market = MarketSpec(symbol="BTC/USD:USD", exchange_id="PF_XBTUSD", amount_step=Decimal("0.0001"),
                        price_tick=Decimal(1))
    assert market.contracts_for_notional(Decimal(100), Decimal(30_000)) == Decimal("0.0033")
    assert market.contracts_for_notional(Decimal(1), Decimal(30_000)) == Decimal(0)
    assert market.notional_of(Decimal("0.0033"), Decimal(30_000)) == Decimal("99.0000")
