"""The gateway alone: the fake exchange (Kraken's raw endpoints), recording actors in place of portfolio and
persistence."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import ccxt
import pykka
import pytest

from actors.gateway import (
    ExchangeGatewayActor,
    GatewaySettings,
    OrderGateway,
)
from exchange.private_api import iso_ms
from messages import (
    ConnectGateway,
    GetInFlight,
    OrderIntent,
    OrderState,
    OrderUpdate,
    Ping,
    PlaceOrder,
    PlaceOrders,
    PositionsSnapshot,
    PositionsUnavailable,
    Reason,
    RecordSends,
    Side,
    SignalKind,
    SyncPositions,
    client_order_id_for,
    intent_hash,
)
from tests.fakes import FakeExchange, TestClock
from tests.helpers import Inbox, start_recorder

BTC, ETH, SOL = "BTC/USD:USD", "ETH/USD:USD", "SOL/USD:USD"


def intent(symbol: str = BTC, t: int = 1, side: Side = Side.BUY, reduce_only: bool = False,
           amount: str = "0.002") -> OrderIntent:
    kind = SignalKind.EXIT if reduce_only else (SignalKind.ENTER_LONG if side is Side.BUY else SignalKind.ENTER_SHORT)
    h = intent_hash(symbol, t, kind, Decimal(100))
    return OrderIntent(intent_hash=h, client_order_id=client_order_id_for(h), symbol=symbol, kind=kind, side=side,
                       candle_time=t, notional=Decimal(100), amount=Decimal(amount), price=Decimal(50_000),
                       reduce_only=reduce_only)


def run(exchange: FakeExchange, intents: list[OrderIntent], fail_open: bool = False) -> list[OrderUpdate]:
    reports: list[OrderUpdate] = []
    settings = GatewaySettings(fail_open=fail_open)
    OrderGateway(exchange, settings=settings, report=reports.append,
                 exchange_clock=exchange.now_ms).place_all(intents)
    return reports


def final(reports: list[OrderUpdate]) -> list[tuple[str, str]]:
    return [(r.client_order_id[:8], r.state.value) for r in reports if r.state is not OrderState.SUBMITTED]


def committing(message: Any) -> None:
    """A persistence stand-in that commits every RecordSends at once."""
    if isinstance(message, RecordSends):
        message.reply.set(None)


def test_gateway_actor_reports_to_persistence_then_portfolio() -> None:
    clock = TestClock()
    exchange = FakeExchange(clock=clock)
    portfolio, portfolio_inbox = start_recorder()
    persistence, persistence_inbox = start_recorder(committing)
    seen_at_send: list[int] = []
    exchange.before_create = lambda call: seen_at_send.append(len(persistence_inbox.received(RecordSends)))
    gateway = ExchangeGatewayActor.start(exchange, exchange_clock=clock)
    gateway.tell(ConnectGateway(portfolio=portfolio, persistence=persistence))
    gateway.tell(PlaceOrder(intent=intent()))
    # persist before send: the SUBMITTED report (with its processBefore) was committed before the request left
    assert exchange.wait_for_create_calls(1) and seen_at_send == [1]
    recorded = persistence_inbox.wait_for(RecordSends)[0].updates
    assert [u.state for u in recorded] == [OrderState.SUBMITTED] and recorded[0].process_before == clock() + 5_000
    assert [u.state for u in persistence_inbox.wait_for(OrderUpdate)] == [OrderState.FILLED]
    states = [u.state for u in portfolio_inbox.wait_for(OrderUpdate, 2)]
    assert states == [OrderState.SUBMITTED, OrderState.FILLED]
    filled = portfolio_inbox.received(OrderUpdate)[-1]
    assert filled.exchange_order_id and filled.filled == Decimal("0.002") and filled.average_price == 50_000
    # one raw sendorder, built by ccxt's create_order_request: Kraken's id, cliOrdId and processBefore 5 s ahead
    assert exchange.create_calls[0]["request"] == {
        "symbol": "PF_XBTUSD", "side": "buy", "size": "0.002", "cliOrdId": intent().client_order_id,
        "orderType": "mkt", "processBefore": iso_ms(clock() + 5_000)}
    gateway.tell(SyncPositions())
    snapshot = portfolio_inbox.wait_for(PositionsSnapshot)[0]
    assert snapshot.positions[0].contracts == Decimal("0.002") and snapshot.seq > filled.seq


def test_gateway_checks_open_orders_once_per_batch() -> None:
    exchange = FakeExchange()
    reports = run(exchange, [intent(BTC), intent(ETH, amount="0.03")])
    assert exchange.calls.count("openorders") == 1 and [s for _, s in final(reports)] == ["FILLED", "FILLED"]


def test_orders_that_arrive_together_go_in_one_batchorder_with_processbefore() -> None:
    clock = TestClock()
    exchange = FakeExchange(clock=clock)
    reports: list[OrderUpdate] = []
    OrderGateway(exchange, report=reports.append, exchange_clock=clock).place_all(
        [intent(BTC), intent(ETH, amount="0.03")])
    assert [c for c in exchange.calls if c != "openorders"] == ["batchorder"]
    batch = exchange.batch_calls[0]
    assert batch["ProcessBefore"] == iso_ms(clock() + 5_000)  # the request-level field, one for the batch
    # each instruction built by ccxt's create_order_request, plus order "send" and a unique tag; no processBefore
    assert batch["batchOrder"] == [
        {"symbol": "PF_XBTUSD", "side": "buy", "size": "0.002", "cliOrdId": intent(BTC).client_order_id,
         "orderType": "mkt", "order": "send", "order_tag": "1"},
        {"symbol": "PF_ETHUSD", "side": "buy", "size": "0.03", "cliOrdId": intent(ETH).client_order_id,
         "orderType": "mkt", "order": "send", "order_tag": "2"}]
    assert [s for _, s in final(reports)] == ["FILLED", "FILLED"]
    assert all(r.exchange_order_id for r in reports if r.state is OrderState.FILLED)


def test_one_order_alone_goes_by_sendorder() -> None:
    exchange = FakeExchange()
    reports = run(exchange, [intent(BTC)])
    assert [c for c in exchange.calls if c != "openorders"] == ["sendorder"]
    assert [s for _, s in final(reports)] == ["FILLED"]


def test_two_entries_for_one_symbol_and_side_in_one_batch_send_one() -> None:
    exchange = FakeExchange()
    first, second = intent(BTC, 1), intent(BTC, 2)
    reports = run(exchange, [first, second])
    states = {r.client_order_id: r for r in reports if r.state is not OrderState.SUBMITTED}
    assert states[first.client_order_id].state is OrderState.FILLED
    assert states[second.client_order_id].state is OrderState.REJECTED
    assert states[second.client_order_id].reason == Reason.EXCHANGE_ORDER_OPEN.value
    assert len(exchange.create_calls) == 1


def test_an_order_resting_on_the_exchange_blocks_an_entry_on_its_symbol_and_side() -> None:
    exchange = FakeExchange()
    resting = exchange.place_external(BTC, "buy", 0.001, 40_000)
    reports = run(exchange, [intent(BTC), intent(BTC, 2, side=Side.SELL)])
    by_side = {r.side: r for r in reports if r.state is not OrderState.SUBMITTED}
    assert by_side[Side.BUY].reason == Reason.EXCHANGE_ORDER_OPEN.value and resting.id in by_side[Side.BUY].detail
    assert by_side[Side.SELL].state is OrderState.FILLED and len(exchange.create_calls) == 1


def test_exits_skip_the_open_order_check() -> None:
    exchange = FakeExchange()
    exchange.set_position(BTC, 0.002, 50_000)
    exchange.place_external(BTC, "sell", 0.002, 60_000)  # e.g. a take-profit resting by hand
    exchange.fail_open_orders = ccxt.RequestTimeout("no answer")
    reports = run(exchange, [intent(BTC, side=Side.SELL, reduce_only=True)])
    assert [s for _, s in final(reports)] == ["FILLED"] and exchange.create_calls[0]["reduceOnly"] is True
    assert "openorders" not in exchange.calls


@pytest.mark.parametrize(
    ("error", "state"),
    [
        (ccxt.RequestTimeout("timed out"), OrderState.UNKNOWN),
        (ccxt.NetworkError("connection reset by peer"), OrderState.UNKNOWN),
        (ccxt.ExchangeNotAvailable("503 unavailable"), OrderState.UNKNOWN),
        (ccxt.DDoSProtection("429"), OrderState.UNKNOWN),
        (ccxt.RateLimitExceeded("apiLimitExceeded"), OrderState.UNKNOWN),
        (ccxt.InvalidNonce("nonceBelowThreshold"), OrderState.UNKNOWN),
        (ccxt.InvalidOrder("something about the order"), OrderState.UNKNOWN),
        (ccxt.ExchangeError("something odd"), OrderState.UNKNOWN),
        (ValueError("parser bug"), OrderState.UNKNOWN),
        (ccxt.InsufficientFunds("insufficientAvailableFunds"), OrderState.REJECTED),
        (ccxt.BadRequest("invalidArgument"), OrderState.REJECTED),
        (ccxt.AuthenticationError("authenticationError"), OrderState.REJECTED),
        (ccxt.BadSymbol("contractNotFound"), OrderState.REJECTED),
    ],
)
def test_send_errors_are_unknown_unless_the_exchange_proved_a_rejection(error: Exception, state: OrderState) -> None:
    exchange = FakeExchange()

    def fail(call: dict) -> None:
        raise error

    exchange.before_create = fail
    reports = run(exchange, [intent()])
    assert reports[-1].state is state and type(error).__name__ in reports[-1].detail
    assert reports[-1].reason == (Reason.OUTCOME_UNKNOWN if state is OrderState.UNKNOWN
                                  else Reason.EXCHANGE_REJECTED).value


def test_a_reject_status_in_the_answer_is_a_rejection() -> None:
    exchange = FakeExchange()  # no position: a reduce-only order would not reduce one
    reports = run(exchange, [intent(side=Side.SELL, reduce_only=True)])
    assert reports[-1].state is OrderState.REJECTED and "wouldNotReducePosition" in reports[-1].detail
    assert exchange.positions.get(BTC, 0) == 0


def test_a_duplicate_client_order_id_answer_is_unknown_never_rejected() -> None:
    exchange = FakeExchange()  # an order with our id rests (an earlier send whose answer was lost)
    exchange.place_external(BTC, "sell", 0.002, 60_000, client_order_id=intent(ETH).client_order_id)
    reports = run(exchange, [intent(ETH, amount="0.03")])
    assert reports[-1].state is OrderState.UNKNOWN and "clientOrderIdAlreadyExist" in reports[-1].detail
    assert len(exchange.placed_orders()) == 1


def _status(**fields: Any) -> Any:
    return lambda answer: {**answer, "sendStatus": {**answer["sendStatus"], **fields}}


@pytest.mark.parametrize(
    "garbage",
    [
        lambda answer: None,
        lambda answer: "<html>502 Bad Gateway</html>",
        lambda answer: [1, 2],
        lambda answer: {"result": "success"},  # no sendStatus
        lambda answer: {**answer, "result": "error"},
        lambda answer: {"result": "success", "sendStatus": "placed"},
        _status(order_id=None),  # placed, but no order id
        _status(cliOrdId="someone-else"),
        _status(status="somethingNew"),
        _status(status=None),
        _status(orderEvents="EXECUTION"),
        _status(orderEvents=[{"type": "EXECUTION", "executionId": "e1", "price": "NaN", "amount": "0.002"}]),
        _status(orderEvents=[{"type": "EXECUTION", "executionId": "e1", "price": "50000", "amount": "-0.002"}]),
    ],
)
def test_garbage_sendorder_answers_are_unknown_never_accepted(garbage: Any) -> None:
    exchange = FakeExchange()
    exchange.create_response = garbage  # the order was placed and filled; only the answer is unreadable
    reports = run(exchange, [intent()])
    assert reports[-1].state is OrderState.UNKNOWN and reports[-1].reason == Reason.OUTCOME_UNKNOWN.value
    assert not any(r.state in (OrderState.ACCEPTED, OrderState.FILLED) for r in reports)


def test_open_order_check_failure_fail_closed_and_fail_open() -> None:
    exchange = FakeExchange()
    exchange.fail_open_orders = ccxt.RequestTimeout("timed out")
    closed = run(exchange, [intent(BTC, 1)])
    assert final(closed)[0][1] == "REJECTED" and closed[-1].reason == Reason.EXCHANGE_UNAVAILABLE.value
    assert "fail-closed" in closed[-1].detail and exchange.create_calls == []
    opened = run(exchange, [intent(BTC, 2)], fail_open=True)
    assert final(opened)[0][1] == "FILLED" and len(exchange.create_calls) == 1


@pytest.mark.parametrize(
    "garbage",
    [
        {"error": "maintenance"},
        "<html>cloudflare</html>",
        {"result": "success"},
        {"result": "success", "openOrders": None},
        {"result": "success", "openOrders": [{"order_id": "x", "symbol": "PF_XBTUSD", "side": "buy",
                                              "unfilledSize": "NaN", "receivedTime": "2024-01-01T00:00:00Z"}]},
        {"result": "success", "openOrders": [{"order_id": "x", "symbol": "PF_XBTUSD", "side": "up",
                                              "unfilledSize": "1", "receivedTime": "2024-01-01T00:00:00Z"}]},
    ],
)
def test_garbage_open_orders_count_as_a_failed_check(garbage: object) -> None:
    exchange = FakeExchange()
    exchange.privateGetOpenorders = lambda *a, **k: garbage
    reports = run(exchange, [intent()])
    assert reports[-1].reason == Reason.EXCHANGE_UNAVAILABLE.value and exchange.create_calls == []


@pytest.mark.parametrize(
    "garbage",
    [
        None,
        "<html>502</html>",
        {"result": "success"},
        {"result": "success", "openPositions": None},
        {"result": "success", "openPositions": [{"symbol": "PF_XBTUSD", "side": "long", "size": "lots"}]},
        {"result": "success", "openPositions": [{"symbol": "PF_XBTUSD", "side": "long", "size": "-1"}]},
        {"result": "success", "openPositions": [{"symbol": "PF_XBTUSD", "side": "sideways", "size": "1"}]},
        {"result": "success", "openPositions": [{"side": "long", "size": "1"}]},
    ],
)
def test_unreadable_positions_are_unavailable_never_flat(garbage: object) -> None:
    exchange = FakeExchange()
    exchange.privateGetOpenpositions = lambda *a, **k: garbage
    result = OrderGateway(exchange).fetch_positions()
    assert isinstance(result, PositionsUnavailable) and result.reason == Reason.EXCHANGE_UNAVAILABLE.value


def test_gateway_actor_survives_a_bug_in_the_exchange_client() -> None:
    exchange = FakeExchange()
    exchange.privateGetOpenpositions = lambda *a, **k: 1 / 0
    portfolio, portfolio_inbox = start_recorder()
    persistence, _ = start_recorder()
    gateway = ExchangeGatewayActor.start(exchange)
    gateway.tell(ConnectGateway(portfolio=portfolio, persistence=persistence))
    gateway.tell(SyncPositions())
    assert "ZeroDivisionError" in portfolio_inbox.wait_for(PositionsUnavailable)[0].detail
    assert gateway.ask(Ping(), timeout=5) is True


def test_claimed_first_sends_through_the_actor_write_no_recordsends_and_go_in_one_batch() -> None:
    clock = TestClock()
    exchange = FakeExchange(clock=clock)
    portfolio, portfolio_inbox = start_recorder()
    persistence, persistence_inbox = start_recorder(committing)
    gateway = ExchangeGatewayActor.start(exchange, exchange_clock=clock)
    gateway.tell(ConnectGateway(portfolio=portfolio, persistence=persistence))
    release = threading.Event()
    exchange.before_create = lambda call: release.wait(5) if call["symbol"] == SOL else None
    gateway.tell(PlaceOrder(intent=intent(SOL, amount="1")))  # holds the gateway inside its send
    assert exchange.wait_for_create_calls(1)
    claimed = [i.model_copy(update={"sent_at": clock(), "process_before": clock() + 5_000})
               for i in (intent(BTC), intent(ETH, amount="0.03"))]
    for one in claimed:  # queued behind the held send: they meet in one flush
        gateway.tell(PlaceOrder(intent=one))
    release.set()
    states = [u.state for u in portfolio_inbox.wait_for(OrderUpdate, 6)]
    assert states.count(OrderState.SUBMITTED) == 3 and states.count(OrderState.FILLED) == 3
    gateway.ask(Ping(), timeout=5)
    recorded = persistence_inbox.received(RecordSends)  # only the unclaimed SOL send: the claims hold SUBMITTED
    assert [[u.symbol for u in r.updates] for r in recorded] == [[SOL]]
    assert [u.state for u in persistence_inbox.received(OrderUpdate)] == [OrderState.FILLED] * 3
    assert [c for c in exchange.calls if c != "poll"] == ["openorders", "sendorder", "openorders", "batchorder"]
    assert exchange.batch_calls[0]["ProcessBefore"] == iso_ms(clock() + 5_000)
    gateway.stop()


def gathering_gateway(symbols: list[str]) -> tuple[FakeExchange, Inbox, pykka.ActorRef[Any]]:
    """A gateway trading `symbols` that would gather a burst for half a minute: only a full burst or a barrier
    sends it."""
    clock = TestClock()
    exchange = FakeExchange(clock=clock)
    portfolio, portfolio_inbox = start_recorder()
    settings = GatewaySettings(gather_s=30.0, gather_max_s=30.0)
    gateway = ExchangeGatewayActor.start(exchange, settings=settings, exchange_clock=clock, symbols=symbols)
    gateway.tell(ConnectGateway(portfolio=portfolio, persistence=None))
    return exchange, portfolio_inbox, gateway


def test_a_burst_covering_every_traded_symbol_is_sent_without_waiting_for_more() -> None:
    exchange, portfolio_inbox, gateway = gathering_gateway([BTC, ETH])
    gateway.tell(PlaceOrder(intent=intent(BTC)))
    gateway.tell(PlaceOrder(intent=intent(ETH, amount="0.03")))
    filled = portfolio_inbox.wait_for(OrderUpdate, 4, timeout=5)
    assert [u.state for u in filled].count(OrderState.FILLED) == 2
    assert [c for c in exchange.calls if c != "poll"] == ["openorders", "batchorder"]
    gateway.stop()


def test_one_commits_place_orders_is_gathered_like_its_orders_one_by_one() -> None:
    exchange, portfolio_inbox, gateway = gathering_gateway([BTC, ETH, SOL])
    gateway.tell(PlaceOrders(intents=(intent(BTC), intent(ETH, amount="0.03"))))
    assert gateway.ask(GetInFlight(), timeout=5) == 2  # SOL may still come: gathered, nothing sent
    assert [c for c in exchange.calls if c != "poll"] == []
    gateway.tell(PlaceOrders(intents=(intent(SOL, amount="1"),)))  # every traded symbol has one: sent at once
    filled = portfolio_inbox.wait_for(OrderUpdate, 6, timeout=5)
    assert [u.state for u in filled].count(OrderState.FILLED) == 3
    assert [c for c in exchange.calls if c != "poll"] == ["openorders", "batchorder"]
    gateway.stop()


def test_a_burst_short_of_some_symbols_still_waits_to_gather() -> None:
    exchange, portfolio_inbox, gateway = gathering_gateway([BTC, ETH, SOL])
    gateway.tell(PlaceOrder(intent=intent(BTC)))
    gateway.tell(PlaceOrder(intent=intent(ETH, amount="0.03")))
    assert gateway.ask(GetInFlight(), timeout=5) == 2  # both gathered, SOL may still come: nothing sent yet
    assert [c for c in exchange.calls if c != "poll"] == []
    assert gateway.ask(Ping(), timeout=5)  # the barrier sends what is gathered
    assert [c for c in exchange.calls if c != "poll"] == ["openorders", "batchorder"]
    assert len(portfolio_inbox.wait_for(OrderUpdate, 4, timeout=5)) >= 4
    gateway.stop()
