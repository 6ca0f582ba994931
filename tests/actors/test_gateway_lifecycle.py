"""The gateway's order lifecycle as a plain class: unknown outcomes resolved, orders followed, reconciliation."""

from __future__ import annotations

from decimal import Decimal

import ccxt
import pytest

from actors.gateway import GatewaySettings, OrderGateway
from exchange.budget import CostBudget
from messages import (
    IntentRecord,
    OrderIntent,
    OrderState,
    OrderUpdate,
    Reason,
    Reconcile,
    Side,
    SignalKind,
    client_order_id_for,
    intent_hash,
    now_ms,
)
from tests.fakes import FakeExchange

BTC = "BTC/USD:USD"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def intent(t: int = 1, order_type: str = "market", created_at: int | None = None) -> OrderIntent:
    h = intent_hash(BTC, t, SignalKind.ENTER_LONG, Decimal(100))
    return OrderIntent(intent_hash=h, client_order_id=client_order_id_for(h), symbol=BTC, kind=SignalKind.ENTER_LONG,
                       side=Side.BUY, candle_time=t, notional=Decimal(100), amount=Decimal("0.002"),
                       price=Decimal(50_000), order_type=order_type,
                       limit_price=Decimal(49_000) if order_type == "limit" else None,
                       created_at=created_at or now_ms())


def gateway(exchange: FakeExchange, **settings) -> tuple[OrderGateway, list[OrderUpdate], Clock]:
    reports: list[OrderUpdate] = []
    clock = Clock()
    gw = OrderGateway(exchange, settings=GatewaySettings(**settings), report=reports.append, clock=clock)
    return gw, reports, clock


def states(reports: list[OrderUpdate]) -> list[str]:
    return [r.state.value for r in reports]


def drop_after_accept(exchange: FakeExchange) -> None:
    """The order is placed, then the connection drops before the answer (accept-then-drop)."""
    original = exchange.create_order

    def create(*args, **kwargs):
        original(*args, **kwargs)
        raise ccxt.NetworkError("krakenfutures POST sendorder: connection aborted")

    exchange.create_order = create


def test_accept_then_drop_is_resolved_from_order_status_without_a_resend() -> None:
    exchange = FakeExchange()
    drop_after_accept(exchange)
    gw, reports, clock = gateway(exchange)
    gw.place_all([intent()])
    assert states(reports) == ["SUBMITTED", "UNKNOWN"]
    gw.poll()
    assert states(reports)[-1] == "FILLED" and reports[-1].exchange_order_id
    assert len(exchange.placed_orders()) == 1 and gw.orders == {}


def test_resolution_finds_the_order_in_fills_when_status_no_longer_shows_it() -> None:
    exchange = FakeExchange()
    drop_after_accept(exchange)
    exchange.fetch_orders = lambda *a, **k: []  # closed more than 5 s ago: orders/status forgot it
    gw, reports, _ = gateway(exchange)
    gw.place_all([intent()])
    gw.poll()
    assert states(reports)[-1] == "FILLED" and reports[-1].fills and reports[-1].filled == Decimal("0.002")
    assert len(exchange.placed_orders()) == 1


def test_resolution_finds_an_unfilled_cancelled_order_in_history() -> None:
    exchange = FakeExchange()
    gw, reports, clock = gateway(exchange)
    limit = intent(order_type="limit")
    original = exchange.create_order

    def create(*args, **kwargs):
        response = original(*args, **kwargs)
        exchange.cancel_order(response["id"], BTC)  # cancelled at once (e.g. by an operator)
        raise ccxt.RequestTimeout("timed out")

    exchange.create_order = create
    exchange.fetch_orders = lambda *a, **k: []
    gw.place_all([limit])
    clock.now += 10
    gw.poll()
    assert states(reports)[-1] == "CANCELED" and len(exchange.placed_orders()) == 1


def test_proven_absent_is_resent_with_the_same_client_order_id_only_after_the_grace() -> None:
    exchange = FakeExchange()
    calls = {"n": 0}
    original = exchange.create_order

    def create(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ccxt.RequestTimeout("timed out before the exchange saw it")
        return original(*args, **kwargs)

    exchange.create_order = create
    gw, reports, clock = gateway(exchange, absent_grace_s=3.0)
    gw.place_all([intent()])
    gw.poll()  # too early to call it absent
    assert calls["n"] == 1 and states(reports)[-1] == "UNKNOWN"
    clock.now += 5
    gw.poll()
    assert calls["n"] == 2
    assert {c["params"]["clientOrderId"] for c in exchange.create_calls} == {intent().client_order_id}
    assert states(reports)[-2:] == ["SUBMITTED", "FILLED"] and len(exchange.placed_orders()) == 1


def test_proven_absent_but_too_old_is_not_placed() -> None:
    exchange = FakeExchange()
    exchange.before_create = lambda call: (_ for _ in ()).throw(ccxt.ExchangeNotAvailable("503"))
    gw, reports, clock = gateway(exchange, resend_max_age_s=60)
    gw.place_all([intent(created_at=now_ms() - 120_000)])
    clock.now += 5
    gw.poll()
    assert states(reports)[-1] == "REJECTED" and reports[-1].reason == Reason.NOT_PLACED.value
    assert "not re-sent" in reports[-1].detail and len(exchange.create_calls) == 1


def test_sends_of_one_intent_are_capped() -> None:
    exchange = FakeExchange()
    exchange.before_create = lambda call: (_ for _ in ()).throw(ccxt.RequestTimeout("timed out"))
    gw, reports, clock = gateway(exchange, max_sends=2)
    gw.place_all([intent()])
    for _ in range(5):
        clock.now += 60
        gw.poll()
    assert len(exchange.create_calls) == 2 and reports[-1].reason == Reason.NOT_PLACED.value


def test_a_lookup_that_fails_decides_nothing() -> None:
    exchange = FakeExchange()
    exchange.before_create = lambda call: (_ for _ in ()).throw(ccxt.RequestTimeout("timed out"))
    gw, reports, clock = gateway(exchange)
    gw.place_all([intent()])
    exchange.before_create = None
    exchange.fetch_orders = lambda *a, **k: (_ for _ in ()).throw(ccxt.ExchangeNotAvailable("503"))
    clock.now += 60
    gw.poll()
    assert states(reports)[-1] == "UNKNOWN" and len(exchange.create_calls) == 1


def test_history_budget_exhausted_means_absence_is_not_proven() -> None:
    exchange = FakeExchange()
    exchange.before_create = lambda call: (_ for _ in ()).throw(ccxt.RequestTimeout("timed out"))
    budget = CostBudget()
    budget.history.take(budget.history.capacity)  # the history pool is empty
    gw = OrderGateway(exchange, settings=GatewaySettings(), report=lambda u: None, budget=budget,
                      clock=(clock := Clock()))
    gw.place_all([intent()])
    clock.now += 60
    gw.poll()
    assert len(exchange.create_calls) == 1 and gw.in_flight() == 1


def test_resting_limit_order_is_followed_to_its_fill() -> None:
    exchange = FakeExchange()
    gw, reports, clock = gateway(exchange)
    gw.place_all([intent(order_type="limit")])
    assert states(reports)[-1] == "ACCEPTED"
    gw.poll()
    assert states(reports)[-1] == "ACCEPTED"  # nothing new
    exchange.fill_resting(reports[-1].exchange_order_id)
    gw.poll()
    assert states(reports)[-1] == "FILLED" and reports[-1].fills[0].price == Decimal(49_000)
    assert gw.orders == {}


def test_unfilled_limit_order_is_cancelled_after_its_timeout() -> None:
    exchange = FakeExchange()
    gw, reports, clock = gateway(exchange, limit_timeout_s=30)
    gw.place_all([intent(order_type="limit")])
    clock.now += 10
    gw.poll()
    assert exchange.placed_orders()[0].status == "open"
    clock.now += 25
    gw.poll()
    assert exchange.placed_orders()[0].status == "canceled"
    assert states(reports)[-1] == "CANCELED" and reports[-1].reason == Reason.CANCELED_BY_TIMEOUT.value


def test_an_order_cancelled_outside_is_noticed() -> None:
    exchange = FakeExchange()
    gw, reports, _ = gateway(exchange)
    gw.place_all([intent(order_type="limit")])
    exchange.cancel_order(reports[-1].exchange_order_id, BTC)
    gw.poll()
    assert states(reports)[-1] == "CANCELED"


def test_cancel_open_cancels_every_open_order_in_scope_and_nothing_else() -> None:
    exchange = FakeExchange()
    external = exchange.place_external(BTC, "sell", 1, 90_000)
    elsewhere = exchange.place_external("ETH/USD:USD", "buy", 1, 1_000)
    gw, reports, _ = gateway(exchange)
    gw.place_all([intent(order_type="limit")])
    outcomes = gw.cancel_open(BTC, [BTC, "ETH/USD:USD"])
    assert len(outcomes) == 2 and all("canceled" in o for o in outcomes)
    assert external.status == "canceled" and elsewhere.status == "open"
    ours = [r for r in reports if r.intent_hash is not None]
    assert ours[-1].state is OrderState.CANCELED and gw.orders == {}
    assert gw.cancel_open(None, ["SOL/USD:USD"]) == ["no open orders"]


def test_batch_of_several_orders_goes_as_one_batchorder() -> None:
    exchange = FakeExchange()
    batches = []
    original = exchange.create_orders
    exchange.create_orders = lambda orders, params=None: batches.append(len(orders)) or original(orders, params)
    gw, reports, _ = gateway(exchange)
    eth_hash = intent_hash("ETH/USD:USD", 1, SignalKind.ENTER_LONG, Decimal(100))
    eth = intent().model_copy(update={"symbol": "ETH/USD:USD", "intent_hash": eth_hash,
                                      "client_order_id": client_order_id_for(eth_hash), "amount": Decimal("0.03")})
    gw.place_all([intent(), eth])
    assert batches == [2]
    assert sorted(r.state.value for r in reports if r.state is not OrderState.SUBMITTED) == ["FILLED", "FILLED"]


def record_of(i: OrderIntent, state: OrderState) -> IntentRecord:
    return IntentRecord(intent_hash=i.intent_hash, client_order_id=i.client_order_id, symbol=i.symbol, kind=i.kind,
                        side=i.side, candle_time=i.candle_time, reduce_only=i.reduce_only, amount=i.amount,
                        price=i.price, notional=i.notional, order_type=i.order_type, state=state,
                        created_at=i.created_at, updated_at=i.created_at)


def test_reconcile_resolves_recovered_intents_adopts_strangers_and_reads_positions() -> None:
    exchange = FakeExchange()
    sent, lost = intent(1), intent(2, created_at=now_ms() - 3_600_000)
    exchange.create_order(BTC, "limit", "buy", 0.002, 49_000, {"clientOrderId": sent.client_order_id})
    stranger = exchange.place_external(BTC, "sell", 1, 90_000)
    exchange.set_position("ETH/USD:USD", -0.5, 3000)
    exchange.create_calls.clear()
    gw, reports, _ = gateway(exchange)
    report = gw.reconcile(Reconcile(intents=(record_of(sent, OrderState.SUBMITTED), record_of(lost, OrderState.INITIALIZED)),
                                    reason="start"))
    assert report.ok and report.snapshot.positions[0].symbol == "ETH/USD:USD"
    by_cid = {r.client_order_id: r for r in reports}
    assert by_cid[sent.client_order_id].state is OrderState.ACCEPTED  # found resting: followed from now on
    assert by_cid[lost.client_order_id].reason == Reason.NOT_PLACED.value  # absent, an hour old: not sent
    assert [o.exchange_order_id for o in report.adopted] == [stranger.id]
    assert by_cid[None].reason == Reason.EXTERNAL_ORDER.value and by_cid[None].intent_hash is None
    assert exchange.create_calls == []
    again = gw.reconcile(Reconcile(reason="timer"))
    assert again.adopted == () and len(again.open_orders) == 2  # adopted once, listed every time


def test_reconcile_fails_whole_when_the_exchange_cannot_be_read() -> None:
    exchange = FakeExchange()
    exchange.fail_positions = ccxt.RequestTimeout("openpositions timed out")
    gw, _, _ = gateway(exchange)
    report = gw.reconcile(Reconcile(reason="start"))
    assert not report.ok and "positions unreadable" in report.detail
    exchange.fail_positions = None
    exchange.fail_open_orders = ccxt.ExchangeNotAvailable("503")
    assert "open orders unreadable" in gw.reconcile(Reconcile(reason="start")).detail


@pytest.mark.parametrize("endpoint,cost", [("sendorder", 10), ("openorders", 2), ("batchorder", 12)])
def test_calls_spend_krakens_cost_budget(endpoint: str, cost: int) -> None:
    budget = CostBudget(margin=1.0, clock=lambda: 0.0)
    spent = budget.spend(endpoint, batch_size=3)
    assert spent == 0 and budget.derivatives.available() == 500 - cost


def test_an_empty_budget_waits_instead_of_drawing_api_limit_exceeded() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    budget = CostBudget(margin=1.0, clock=lambda: now[0])
    for _ in range(50):
        assert budget.derivatives.take(10, sleep=sleep) == 0  # 500 units: 50 sendorders at once
    waited = budget.derivatives.take(10, sleep=sleep)
    assert waited == pytest.approx(0.2) and slept == [pytest.approx(0.2)]  # 50 units per second refill


def test_partial_fills_are_followed_to_the_full_fill() -> None:
    exchange = FakeExchange()
    gw, reports, _ = gateway(exchange)
    limit = intent(order_type="limit")
    gw.place_all([limit])
    order_id = reports[-1].exchange_order_id
    exchange.trades.append({"id": "p-1", "order": order_id, "symbol": BTC, "side": "buy", "amount": 0.0005,
                            "price": 49_000, "info": {"cliOrdId": limit.client_order_id}})
    gw.poll()
    assert reports[-1].state is OrderState.PARTIALLY_FILLED and reports[-1].filled == Decimal("0.0005")
    count = len(reports)
    gw.poll()  # the same fill again changes nothing
    assert len(reports) == count
    exchange.trades.append({"id": "p-2", "order": order_id, "symbol": BTC, "side": "buy", "amount": 0.0015,
                            "price": 49_000, "info": {"cliOrdId": limit.client_order_id}})
    exchange.placed_orders()[0].status = "closed"
    gw.poll()
    assert reports[-1].state is OrderState.FILLED and reports[-1].filled == Decimal("0.002")
    assert [f.fill_id for r in reports for f in r.fills] == ["p-1", "p-2"] and gw.orders == {}
