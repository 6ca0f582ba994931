"""The gateway alone: the fake exchange, recording actors in place of portfolio and persistence."""

from __future__ import annotations

from decimal import Decimal

import ccxt
import pytest

from actors.gateway import ConnectGateway, ExchangeGatewayActor, GatewaySettings, OrderGateway, classify_send_error
from messages import (
    OrderIntent,
    OrderState,
    OrderUpdate,
    Ping,
    PlaceOrder,
    PositionsSnapshot,
    PositionsUnavailable,
    Reason,
    Side,
    SignalKind,
    SyncPositions,
    client_order_id_for,
    intent_hash,
)
from tests.fakes import FakeExchange
from tests.helpers import start_recorder

BTC, ETH = "BTC/USD:USD", "ETH/USD:USD"


def intent(symbol: str = BTC, t: int = 1, side: Side = Side.BUY, reduce_only: bool = False) -> OrderIntent:
    kind = SignalKind.EXIT if reduce_only else (SignalKind.ENTER_LONG if side is Side.BUY else SignalKind.ENTER_SHORT)
    h = intent_hash(symbol, t, kind, Decimal(100))
    return OrderIntent(intent_hash=h, client_order_id=client_order_id_for(h), symbol=symbol, kind=kind, side=side,
                       candle_time=t, notional=Decimal(100), amount=Decimal("0.002"), price=Decimal(50_000),
                       reduce_only=reduce_only)


def run(exchange: FakeExchange, intents: list[OrderIntent], fail_open: bool = False) -> list[OrderUpdate]:
    reports: list[OrderUpdate] = []
    settings = GatewaySettings(fail_open=fail_open)
    OrderGateway(exchange, settings=settings, report=reports.append).place_all(intents)
    return reports


def final(reports: list[OrderUpdate]) -> list[tuple[str, str]]:
    return [(r.client_order_id[:8], r.state.value) for r in reports if r.state is not OrderState.SUBMITTED]


def test_gateway_actor_reports_to_persistence_then_portfolio() -> None:
    exchange = FakeExchange()
    portfolio, portfolio_inbox = start_recorder()
    persistence, persistence_inbox = start_recorder()
    gateway = ExchangeGatewayActor.start(exchange)
    gateway.tell(ConnectGateway(portfolio=portfolio, persistence=persistence))
    gateway.tell(PlaceOrder(intent=intent()))
    states = [u.state for u in persistence_inbox.wait_for(OrderUpdate, 2)]
    assert states == [OrderState.SUBMITTED, OrderState.FILLED]
    assert [u.state for u in portfolio_inbox.wait_for(OrderUpdate, 2)] == states
    filled = portfolio_inbox.received(OrderUpdate)[-1]
    assert filled.exchange_order_id and filled.filled == Decimal("0.002") and filled.average_price == 50_000
    assert exchange.create_calls[0]["params"] == {"clientOrderId": intent().client_order_id}
    gateway.tell(SyncPositions())
    snapshot = portfolio_inbox.wait_for(PositionsSnapshot)[0]
    assert snapshot.positions[0].contracts == Decimal("0.002") and snapshot.seq > filled.seq


def test_gateway_checks_open_orders_once_per_batch() -> None:
    exchange = FakeExchange()
    calls = []
    original = exchange.fetch_open_orders
    exchange.fetch_open_orders = lambda *a, **k: calls.append(1) or original()
    reports = run(exchange, [intent(BTC), intent(ETH)])
    assert len(calls) == 1 and [s for _, s in final(reports)] == ["FILLED", "FILLED"]


def test_two_entries_for_one_symbol_and_side_in_one_batch_send_one() -> None:
    exchange = FakeExchange()
    first, second = intent(BTC, 1), intent(BTC, 2)
    reports = run(exchange, [first, second])
    states = {r.client_order_id: r for r in reports if r.state is not OrderState.SUBMITTED}
    assert states[first.client_order_id].state is OrderState.FILLED
    assert states[second.client_order_id].state is OrderState.REJECTED
    assert states[second.client_order_id].reason == Reason.EXCHANGE_ORDER_OPEN.value
    assert len(exchange.create_calls) == 1


def test_exits_skip_the_open_order_check() -> None:
    exchange = FakeExchange()
    exchange.set_position(BTC, 0.002, 50_000)
    exchange.place_external(BTC, "sell", 0.002, 60_000)  # e.g. a take-profit resting by hand
    exchange.fail_open_orders = ccxt.RequestTimeout("no answer")
    reports = run(exchange, [intent(BTC, side=Side.SELL, reduce_only=True)])
    assert [s for _, s in final(reports)] == ["FILLED"]


@pytest.mark.parametrize(
    ("error", "state"),
    [
        (ccxt.RequestTimeout("timed out"), OrderState.UNKNOWN),
        (ccxt.NetworkError("connection reset by peer"), OrderState.UNKNOWN),
        (ccxt.ExchangeNotAvailable("503 unavailable"), OrderState.UNKNOWN),
        (ccxt.DDoSProtection("429"), OrderState.UNKNOWN),
        (ccxt.RateLimitExceeded("apiLimitExceeded"), OrderState.UNKNOWN),
        (ccxt.DuplicateOrderId("createOrder failed due to clientOrderIdAlreadyExist"), OrderState.UNKNOWN),
        (ccxt.ExchangeError("something odd"), OrderState.UNKNOWN),
        (ValueError("parser bug"), OrderState.UNKNOWN),
        (ccxt.InsufficientFunds("createOrder failed due to insufficientAvailableFunds"), OrderState.REJECTED),
        (ccxt.InvalidOrder("createOrder failed due to invalidSize"), OrderState.REJECTED),
        (ccxt.ExchangeError("createOrder failed due to wouldNotReducePosition"), OrderState.REJECTED),
        (ccxt.AuthenticationError("authenticationError"), OrderState.REJECTED),
        (ccxt.BadSymbol("contractNotFound"), OrderState.REJECTED),
    ],
)
def test_send_failures_are_unknown_unless_the_exchange_proved_a_rejection(error: Exception, state: OrderState) -> None:
    assert classify_send_error(error)[0] is state
    exchange = FakeExchange()

    def fail(call: dict) -> None:
        raise error

    exchange.before_create = fail
    reports = run(exchange, [intent()])
    assert reports[-1].state is state and type(error).__name__ in reports[-1].detail


@pytest.mark.parametrize(
    "garbage",
    [None, "<html>502 Bad Gateway</html>", {"id": None}, {"id": "x", "clientOrderId": "someone-else"}, [1, 2]],
)
def test_garbage_create_order_responses_are_unknown_never_accepted(garbage: object) -> None:
    exchange = FakeExchange()
    exchange.create_response = lambda response: garbage
    reports = run(exchange, [intent()])
    assert reports[-1].state is OrderState.UNKNOWN and reports[-1].reason == Reason.OUTCOME_UNKNOWN.value


def test_open_order_check_failure_fail_closed_and_fail_open() -> None:
    exchange = FakeExchange()
    exchange.fail_open_orders = ccxt.RequestTimeout("timed out")
    closed = run(exchange, [intent(BTC, 1)])
    assert final(closed)[0][1] == "REJECTED" and closed[-1].reason == Reason.EXCHANGE_UNAVAILABLE.value
    assert exchange.create_calls == []
    opened = run(exchange, [intent(BTC, 2)], fail_open=True)
    assert final(opened)[0][1] == "FILLED" and len(exchange.create_calls) == 1


def test_garbage_open_orders_count_as_a_failed_check() -> None:
    exchange = FakeExchange()
    exchange.fetch_open_orders = lambda *a, **k: {"error": "maintenance"}
    reports = run(exchange, [intent()])
    assert reports[-1].reason == Reason.EXCHANGE_UNAVAILABLE.value and exchange.create_calls == []


@pytest.mark.parametrize(
    "garbage",
    [None, {"openPositions": None}, [{"symbol": BTC, "side": "long", "contracts": "lots"}], [{"side": "long"}]],
)
def test_unreadable_positions_are_unavailable_never_flat(garbage: object) -> None:
    exchange = FakeExchange()
    exchange.fetch_positions = lambda *a, **k: garbage
    result = OrderGateway(exchange).fetch_positions()
    assert isinstance(result, PositionsUnavailable) and result.reason == Reason.EXCHANGE_UNAVAILABLE.value


def test_gateway_actor_survives_a_bug_in_the_exchange_client() -> None:
    exchange = FakeExchange()
    exchange.fetch_positions = lambda *a, **k: 1 / 0
    portfolio, portfolio_inbox = start_recorder()
    persistence, _ = start_recorder()
    gateway = ExchangeGatewayActor.start(exchange)
    gateway.tell(ConnectGateway(portfolio=portfolio, persistence=persistence))
    gateway.tell(SyncPositions())
    assert "ZeroDivisionError" in portfolio_inbox.wait_for(PositionsUnavailable)[0].detail
    assert gateway.ask(Ping(), timeout=5) is True
