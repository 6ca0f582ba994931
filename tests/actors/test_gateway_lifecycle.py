"""The gateway's order lifecycle as a plain class: unknown outcomes resolved, orders followed, reconciliation.

The fake exchange and the gateway share one hand-moved clock (`TestClock`): the gateway's monotonic
clock is `clock.seconds`, the exchange's clock (processBefore, orders/status' 5 s, fill and history
times) is `clock()`. With the default settings an UNKNOWN is decided only once the exchange's clock
is past processBefore (5 s after the send) + clock_skew_s (2 s) + history_lag_s (5 s).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import ccxt
import pytest

from actors.gateway import GatewaySettings, OrderGateway
from exchange.budget import Bucket, CostBudget
from exchange.private_api import iso_ms
from messages import (
    CancelOrder,
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
from tests.fakes import FakeExchange, TestClock

BTC = "BTC/USD:USD"
WINDOW_S = 5 + 2 + 5  # processBefore + clock skew + history lag (defaults)


def intent(t: int = 1, order_type: str = "market", created_at: int | None = None, symbol: str = BTC,
           amount: str = "0.002") -> OrderIntent:
    h = intent_hash(symbol, t, SignalKind.ENTER_LONG, Decimal(100))
    return OrderIntent(intent_hash=h, client_order_id=client_order_id_for(h), symbol=symbol,
                       kind=SignalKind.ENTER_LONG, side=Side.BUY, candle_time=t, notional=Decimal(100),
                       amount=Decimal(amount), price=Decimal(50_000), order_type=order_type,
                       limit_price=Decimal(49_000) if order_type == "limit" else None,
                       created_at=created_at or now_ms())


def setup(budget: CostBudget | None = None, **settings: Any
          ) -> tuple[FakeExchange, OrderGateway, list[OrderUpdate], TestClock]:
    clock = TestClock()
    exchange = FakeExchange(clock=clock)
    reports: list[OrderUpdate] = []  # reports, and the SUBMITTED ones routed to the symbol after their commit
    gw = OrderGateway(exchange, settings=GatewaySettings(**settings), report=reports.append, clock=clock.seconds,
                      route=lambda m: reports.append(m) if isinstance(m, OrderUpdate) else None,
                      exchange_clock=clock, budget=budget)
    return exchange, gw, reports, clock


def states(reports: list[OrderUpdate]) -> list[str]:
    return [r.state.value for r in reports]


def answer_lost(error: Exception, then: Any = None) -> Any:
    """A create_response hook: the exchange handled the order, then the answer was lost."""
    def hook(answer: dict) -> dict:
        if then is not None:
            then(answer)
        raise error
    return hook


def fail_first(exchange: FakeExchange, error: Exception, times: int = 1) -> None:
    """The first `times` sends never reach the exchange."""
    left = [times]

    def hook(call: dict) -> None:
        if left[0] > 0:
            left[0] -= 1
            raise error

    exchange.before_create = hook


def test_accept_then_drop_waits_for_the_window_then_finds_the_fill_without_a_resend() -> None:
    exchange, gw, reports, clock = setup()
    exchange.create_response = answer_lost(ccxt.NetworkError("krakenfutures POST sendorder: connection aborted"))
    gw.place_all([intent()])
    assert states(reports) == ["SUBMITTED", "UNKNOWN"]
    clock.advance(WINDOW_S - 1)  # a copy could still be in flight: nothing is decided
    gw.poll()
    assert states(reports) == ["SUBMITTED", "UNKNOWN"] and "history" not in exchange.calls
    clock.advance(2)  # orders/status forgot the filled order long ago; fills and history show it
    gw.poll()
    assert states(reports)[-1] == "FILLED" and reports[-1].exchange_order_id == exchange.placed_orders()[0].id
    assert reports[-1].fills and reports[-1].filled == Decimal("0.002")
    assert len(exchange.create_calls) == 1 and len(exchange.placed_orders()) == 1 and gw.orders == {}


def test_resolution_finds_the_order_in_fills_when_status_and_history_do_not_show_it() -> None:
    exchange, gw, reports, clock = setup()
    exchange.history_lag_ms = 3_600_000  # the history has not caught up; orders/status forgot it after 5 s
    exchange.create_response = answer_lost(ccxt.RequestTimeout("timed out"))
    gw.place_all([intent()])
    clock.advance(WINDOW_S + 1)
    gw.poll()
    assert states(reports)[-1] == "FILLED" and reports[-1].fills and reports[-1].filled == Decimal("0.002")
    assert len(exchange.create_calls) == 1 and len(exchange.placed_orders()) == 1


def test_resolution_finds_an_unfilled_cancelled_order_in_history() -> None:
    exchange, gw, reports, clock = setup()
    def cancel_at_once(answer: dict[str, Any]) -> None:
        exchange.cancel_outside(answer["sendStatus"]["order_id"])

    exchange.create_response = answer_lost(ccxt.RequestTimeout("timed out"), then=cancel_at_once)
    gw.place_all([intent(order_type="limit")])
    clock.advance(WINDOW_S + 1)  # not open, not in orders/status any more, no fills: only the history knows
    gw.poll()
    assert states(reports)[-1] == "CANCELED" and reports[-1].filled == 0
    assert len(exchange.create_calls) == 1 and len(exchange.placed_orders()) == 1


def test_proven_absent_is_resent_with_the_same_client_order_id_only_after_the_window() -> None:
    exchange, gw, reports, clock = setup(process_before_s=1.0, clock_skew_s=0.5, history_lag_s=0.5)
    fail_first(exchange, ccxt.RequestTimeout("timed out before the exchange saw it"))
    gw.place_all([intent()])
    first_before = exchange.create_calls[0]["processBefore"]
    gw.poll()  # too early to call it absent
    clock.advance(1.9)
    gw.poll()  # still inside processBefore + skew + lag
    assert len(exchange.create_calls) == 1 and states(reports)[-1] == "UNKNOWN"
    clock.advance(1.0)  # past the window, and past the next lookup (one poll interval later)
    seen = len(exchange.calls)
    gw.poll()
    assert len(exchange.create_calls) == 2
    decided = exchange.calls[seen:]
    # a complete search (open orders, orders/status, fills, history), then L3 and L4 on fresh answers, then the send
    assert {"openorders", "orders/status", "fills", "history"} <= set(decided[:decided.index("openpositions")])
    assert decided.index("openpositions") < decided.index("sendorder")
    assert "openorders" in decided[decided.index("openpositions"):decided.index("sendorder")]
    assert {c["cliOrdId"] for c in exchange.create_calls} == {intent().client_order_id}
    assert exchange.create_calls[1]["processBefore"] > first_before  # a new processBefore
    assert states(reports)[2:4] == ["SUBMITTED", "FILLED"] and set(states(reports)[4:]) <= {"FILLED"}
    assert len([f for r in reports for f in r.fills]) == 1 and len(exchange.placed_orders()) == 1


def test_proven_absent_is_not_resent_when_a_position_is_open_now() -> None:
    exchange, gw, reports, clock = setup()
    fail_first(exchange, ccxt.RequestTimeout("timed out"))
    gw.place_all([intent()])
    exchange.set_position(BTC, 0.002, 50_000)  # e.g. filled by hand meanwhile: L3 again
    clock.advance(WINDOW_S + 1)
    gw.poll()
    assert states(reports)[-1] == "REJECTED" and reports[-1].reason == Reason.NOT_PLACED.value
    assert Reason.POSITION_OPEN.value in reports[-1].detail and len(exchange.create_calls) == 1


def test_proven_absent_is_not_resent_when_an_order_rests_on_its_side_now() -> None:
    exchange, gw, reports, clock = setup()
    fail_first(exchange, ccxt.RequestTimeout("timed out"))
    gw.place_all([intent()])
    resting = exchange.place_external(BTC, "buy", 0.001, 40_000)  # L4 again
    clock.advance(WINDOW_S + 1)
    gw.poll()
    assert states(reports)[-1] == "REJECTED" and reports[-1].reason == Reason.NOT_PLACED.value
    assert Reason.EXCHANGE_ORDER_OPEN.value in reports[-1].detail and resting.id in reports[-1].detail
    assert len(exchange.create_calls) == 1


def test_proven_absent_is_not_resent_when_the_recheck_cannot_read_positions() -> None:
    exchange, gw, reports, clock = setup()
    fail_first(exchange, ccxt.RequestTimeout("timed out"))
    gw.place_all([intent()])
    exchange.fail_positions = ccxt.ExchangeNotAvailable("503")
    clock.advance(WINDOW_S + 1)
    gw.poll()
    assert states(reports)[-1] == "UNKNOWN" and len(exchange.create_calls) == 1 and gw.in_flight() == 1


def test_a_request_handled_after_its_process_before_is_never_placed_nor_taken_as_placed() -> None:
    exchange, gw, reports, clock = setup()
    exchange.before_create = lambda call: clock.advance(6)  # held in transit past processBefore (5 s)
    gw.place_all([intent()])
    assert exchange.create_calls[0]["processBefore"] and exchange.placed_orders() == []
    assert states(reports)[-1] == "REJECTED" and "wouldProcessAfterSpecifiedTime" in reports[-1].detail
    clock.advance(WINDOW_S + 1)  # the rejection is confirmed against the history; nothing is sent again
    gw.poll()
    assert states(reports)[-1] == "REJECTED" and len(exchange.create_calls) == 1 and gw.orders == {}
    assert not exchange.positions.get(BTC)


def test_proven_absent_but_too_old_is_not_placed() -> None:
    exchange, gw, reports, clock = setup(resend_max_age_s=60)
    exchange.before_create = lambda call: (_ for _ in ()).throw(ccxt.ExchangeNotAvailable("503"))
    gw.place_all([intent(created_at=now_ms() - 120_000)])
    clock.advance(WINDOW_S + 1)
    gw.poll()
    assert states(reports)[-1] == "REJECTED" and reports[-1].reason == Reason.NOT_PLACED.value
    assert "not re-sent" in reports[-1].detail and len(exchange.create_calls) == 1


def test_sends_of_one_intent_are_capped() -> None:
    exchange, gw, reports, clock = setup(max_sends=2)
    exchange.before_create = lambda call: (_ for _ in ()).throw(ccxt.RequestTimeout("timed out"))
    gw.place_all([intent()])
    for _ in range(5):
        clock.advance(60)
        gw.poll()
    assert len(exchange.create_calls) == 2 and reports[-1].reason == Reason.NOT_PLACED.value


@pytest.mark.parametrize("endpoint", ["orders/status", "fills", "history"])
def test_a_lookup_that_fails_decides_nothing(endpoint: str) -> None:
    exchange, gw, reports, clock = setup()
    fail_first(exchange, ccxt.RequestTimeout("timed out"))
    gw.place_all([intent()])
    exchange.fail[endpoint] = ccxt.ExchangeNotAvailable("503")
    clock.advance(60)
    gw.poll()
    assert states(reports)[-1] == "UNKNOWN" and len(exchange.create_calls) == 1 and gw.in_flight() == 1


def test_a_history_search_cut_short_is_not_absence() -> None:
    exchange, gw, reports, clock = setup()
    fail_first(exchange, ccxt.RequestTimeout("timed out"))
    gw.place_all([intent()])
    exchange.historyGetOrders = lambda params=None: {"elements": [], "continuationToken": "more"}  # never ends
    clock.advance(60)
    gw.poll()
    assert states(reports)[-1] == "UNKNOWN" and len(exchange.create_calls) == 1


def test_history_budget_exhausted_waits_for_tokens_and_absence_still_needs_the_history() -> None:
    budget = CostBudget()
    budget.history = Bucket(capacity=1, period_s=0.2)  # one token, refilled in 0.2 s
    budget.history.take(1)  # the history pool is empty
    exchange, gw, reports, clock = setup(budget=budget)
    fail_first(exchange, ccxt.RequestTimeout("timed out"))
    gw.place_all([intent()])
    clock.advance(WINDOW_S + 1)
    gw.poll()
    assert "history" in exchange.calls and exchange.calls.index("history") < len(exchange.calls) - 1
    sends = [i for i, c in enumerate(exchange.calls) if c == "sendorder"]
    assert len(sends) == 2 and exchange.calls.index("history") < sends[1]
    assert states(reports)[-1] == "FILLED"


def test_resting_limit_order_is_followed_to_its_fill() -> None:
    exchange, gw, reports, _clock = setup()
    gw.place_all([intent(order_type="limit")])
    assert states(reports)[-1] == "ACCEPTED"
    gw.poll()
    assert states(reports)[-1] == "ACCEPTED"  # nothing new
    exchange.fill_resting(reports[-1].exchange_order_id)
    gw.poll()
    assert states(reports)[-1] == "FILLED" and reports[-1].fills[0].price == Decimal(49_000)
    assert gw.orders == {}


def test_unfilled_limit_order_is_cancelled_after_its_timeout() -> None:
    exchange, gw, reports, clock = setup(limit_timeout_s=30)
    gw.place_all([intent(order_type="limit")])
    clock.advance(10)
    gw.poll()
    assert exchange.placed_orders()[0].status == "open"
    clock.advance(25)
    gw.poll()
    assert exchange.placed_orders()[0].status == "canceled"
    assert states(reports)[-1] == "CANCELED" and reports[-1].reason == Reason.CANCELED_BY_TIMEOUT.value


def test_a_cancel_that_fails_is_asked_again_at_the_next_look_until_the_order_is_gone() -> None:
    """A cancel is idempotent: one lost to a fault is sent again at every look while the order still rests (found by
    the protection soak: a closed position's take-profit waited for its symbol's next ask)."""
    exchange, gw, reports, clock = setup()
    gw.place_all([intent(order_type="limit")])
    cid = exchange.placed_orders()[0].client_order_id
    assert cid is not None
    exchange.fail["cancelorder"] = ccxt.ExchangeNotAvailable("unavailable")
    assert "will retry" in gw.cancel_one(CancelOrder(symbol=BTC, client_order_id=cid))
    gw.poll()  # still failing: still resting, still wanted
    assert exchange.placed_orders()[0].status == "open"
    del exchange.fail["cancelorder"]
    gw.poll()
    assert exchange.placed_orders()[0].status == "canceled" and states(reports)[-1] == "CANCELED"


def test_a_fill_just_before_the_timeout_cancel_is_booked() -> None:
    exchange, gw, reports, clock = setup(limit_timeout_s=30)
    gw.place_all([intent(order_type="limit")])
    clock.advance(31)
    original = exchange.privatePostCancelorder

    def fill_then_cancel(params: dict) -> dict:
        exchange.fill_resting(params["order_id"], amount=0.0005)  # between the last look and the cancel
        return original(params)

    exchange.privatePostCancelorder = fill_then_cancel
    gw.poll()
    assert states(reports)[-1] == "CANCELED" and reports[-1].filled == Decimal("0.0005")
    assert [f.amount for r in reports for f in r.fills] == [Decimal("0.0005")]


@pytest.mark.parametrize("later_s", [0, 10])
def test_an_order_cancelled_outside_is_noticed(later_s: float) -> None:
    exchange, gw, reports, clock = setup()
    gw.place_all([intent(order_type="limit")])
    exchange.cancel_outside(reports[-1].exchange_order_id)
    clock.advance(later_s)  # 10 s: orders/status has forgotten it, the history proves it
    gw.poll()
    assert states(reports)[-1] == "CANCELED" and gw.orders == {}


def test_cancel_open_cancels_every_open_order_in_scope_and_nothing_else() -> None:
    exchange, gw, reports, _ = setup()
    external = exchange.place_external(BTC, "sell", 1, 90_000)
    elsewhere = exchange.place_external("ETH/USD:USD", "buy", 1, 1_000)
    gw.place_all([intent(order_type="limit")])
    outcomes = gw.cancel_open(BTC, [BTC, "ETH/USD:USD"])
    assert len(outcomes) == 2 and all("canceled" in o for o in outcomes)
    assert external.status == "canceled" and elsewhere.status == "open"
    ours = [r for r in reports if r.intent_hash is not None]
    assert ours[-1].state is OrderState.CANCELED and gw.orders == {}
    assert gw.cancel_open(None, ["SOL/USD:USD"]) == ["no open orders"]


def test_several_orders_go_in_one_batchorder() -> None:
    exchange, gw, reports, _ = setup()
    eth = intent(symbol="ETH/USD:USD", amount="0.03")
    gw.place_all([intent(), eth])
    assert exchange.calls.count("batchorder") == 1 and "sendorder" not in exchange.calls
    assert len(exchange.create_calls) == 2
    assert sorted(r.state.value for r in reports if r.state is not OrderState.SUBMITTED) == ["FILLED", "FILLED"]


def record_of(i: OrderIntent, state: OrderState, sent_at: int | None = None, process_before: int | None = None,
              sends: int = 0) -> IntentRecord:
    return IntentRecord(intent_hash=i.intent_hash, client_order_id=i.client_order_id, symbol=i.symbol, kind=i.kind,
                        side=i.side, candle_time=i.candle_time, reduce_only=i.reduce_only, amount=i.amount,
                        price=i.price, notional=i.notional, order_type=i.order_type, limit_price=i.limit_price,
                        state=state, created_at=i.created_at, updated_at=i.created_at, sent_at=sent_at,
                        process_before=process_before, sends=sends)


def test_reconcile_resolves_recovered_intents_adopts_strangers_and_reads_positions() -> None:
    exchange, gw, reports, clock = setup()
    sent, lost = intent(1, order_type="limit"), intent(2, created_at=now_ms() - 3_600_000)
    exchange.privatePostSendorder(exchange.create_order_request(
        BTC, "limit", "buy", 0.002, 49_000, {"clientOrderId": sent.client_order_id}))
    stranger = exchange.place_external(BTC, "sell", 1, 90_000)
    exchange.set_position("ETH/USD:USD", -0.5, 3000)
    exchange.create_calls.clear()
    report = gw.reconcile(Reconcile(intents=(
        record_of(sent, OrderState.SUBMITTED, sent_at=clock(), process_before=clock() + 5_000, sends=1),
        record_of(lost, OrderState.INITIALIZED)), reason="start"))
    assert report.ok and report.snapshot.positions[0].symbol == "ETH/USD:USD"
    by_cid = {r.client_order_id: r for r in reports}
    assert by_cid[sent.client_order_id].state is OrderState.ACCEPTED  # found resting: followed from now on
    assert by_cid[lost.client_order_id].reason == Reason.NOT_PLACED.value  # claimed, no send recorded: never sent
    assert [o.exchange_order_id for o in report.adopted] == [stranger.id]
    assert by_cid[None].reason == Reason.EXTERNAL_ORDER.value and by_cid[None].intent_hash is None
    assert exchange.create_calls == []
    again = gw.reconcile(Reconcile(reason="timer"))
    assert again.adopted == () and len(again.open_orders) == 2  # adopted once, listed every time


def test_reconcile_decides_a_recovered_send_only_after_its_window() -> None:
    exchange, gw, reports, clock = setup()
    recovered = intent(3)
    report = gw.reconcile(Reconcile(intents=(
        record_of(recovered, OrderState.SUBMITTED, sent_at=clock(), process_before=clock() + 5_000, sends=1),),
        reason="start"))
    assert report.ok and report.unresolved == 1
    gw.poll()
    assert exchange.create_calls == []  # a copy could still execute
    clock.advance(WINDOW_S + 1)
    gw.poll()
    assert [c["cliOrdId"] for c in exchange.create_calls] == [recovered.client_order_id]
    assert states(reports)[-1] == "FILLED" and len(exchange.placed_orders()) == 1


def test_reconcile_fails_whole_when_the_exchange_cannot_be_read() -> None:
    exchange, gw, _, _ = setup()
    exchange.fail_positions = ccxt.RequestTimeout("openpositions timed out")
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
    exchange, gw, reports, _ = setup()
    gw.place_all([intent(order_type="limit")])
    order_id = reports[-1].exchange_order_id
    exchange.fill_resting(order_id, amount=0.0005)
    gw.poll()
    assert reports[-1].state is OrderState.PARTIALLY_FILLED and reports[-1].filled == Decimal("0.0005")
    count = len(reports)
    gw.poll()  # the same fill again changes nothing
    assert len(reports) == count
    exchange.fill_resting(order_id)
    gw.poll()
    assert reports[-1].state is OrderState.FILLED and reports[-1].filled == Decimal("0.002")
    assert [f.amount for r in reports for f in r.fills] == [Decimal("0.0005"), Decimal("0.0015")]
    assert len({f.fill_id for r in reports for f in r.fills}) == 2 and gw.orders == {}


def test_a_market_order_cut_short_by_a_thin_book_ends_cancelled_with_its_fill() -> None:
    exchange, gw, reports, _ = setup()
    exchange.depth[BTC] = 0.0005  # only this much within the market order's protection
    gw.place_all([intent()])
    assert states(reports)[-1] == "CANCELED" and reports[-1].filled == Decimal("0.0005")
    assert exchange.positions[BTC] == 0.0005


# --- batch sends ---------------------------------------------------------------------------------

SYMBOLS = ["BTC/USD:USD", "ETH/USD:USD", "SOL/USD:USD", "XRP/USD:USD", "LTC/USD:USD", "DOGE/USD:USD",
           "ADA/USD:USD", "DOT/USD:USD"]
AMOUNTS = {"BTC/USD:USD": "0.002", "ETH/USD:USD": "0.03", "SOL/USD:USD": "1", "XRP/USD:USD": "100",
           "LTC/USD:USD": "1", "DOGE/USD:USD": "1000", "ADA/USD:USD": "200", "DOT/USD:USD": "10"}


def entries(count: int, t: int = 1, **fields: Any) -> list[OrderIntent]:
    """One entry on each of the first `count` markets."""
    return [intent(t, symbol=s, amount=AMOUNTS[s]).model_copy(update=fields) for s in SYMBOLS[:count]]


def batch_setup(**settings: Any) -> tuple[FakeExchange, OrderGateway, list[OrderUpdate], TestClock, list[Any]]:
    """setup() plus a record of every durable RecordSends (the updates it was asked to commit)."""
    clock = TestClock()
    exchange = FakeExchange(clock=clock)
    reports: list[OrderUpdate] = []
    recorded: list[Any] = []

    gw = OrderGateway(exchange, settings=GatewaySettings(**settings), report=reports.append, clock=clock.seconds,
                      route=lambda m: reports.append(m) if isinstance(m, OrderUpdate) else None,
                      record_sends=lambda updates: recorded.append(list(updates)), exchange_clock=clock)
    return exchange, gw, reports, clock, recorded


def finals(reports: list[OrderUpdate]) -> dict[str, OrderUpdate]:
    return {r.client_order_id: r for r in reports if r.state.is_final}


def placed_once_each(exchange: FakeExchange, intents: list[OrderIntent]) -> bool:
    counts = [sum(1 for o in exchange.placed_orders() if o.client_order_id == i.client_order_id) for i in intents]
    return counts == [1] * len(intents)


def test_n_orders_go_in_ceil_n_over_batch_max_requests() -> None:
    exchange, gw, reports, clock, _ = batch_setup(batch_max=3)
    intents = entries(8)
    gw.place_all(intents)
    sends = [c for c in exchange.calls if c in ("batchorder", "sendorder")]
    assert sends == ["batchorder", "batchorder", "batchorder"] and exchange.calls.count("openorders") == 1
    assert [len(b["batchOrder"]) for b in exchange.batch_calls] == [3, 3, 2]
    assert {b["ProcessBefore"] for b in exchange.batch_calls} == {iso_ms(clock() + 5_000)}
    assert all(r.state is OrderState.FILLED for r in finals(reports).values()) and len(finals(reports)) == 8
    assert placed_once_each(exchange, intents)


def test_a_remainder_of_one_goes_by_sendorder() -> None:
    exchange, gw, reports, _, _ = batch_setup(batch_max=2)
    gw.place_all(entries(3))
    assert [c for c in exchange.calls if c in ("batchorder", "sendorder")] == ["batchorder", "sendorder"]
    assert len(finals(reports)) == 3


def test_a_batch_whose_answer_is_lost_leaves_every_order_unknown_until_the_search_finds_them() -> None:
    exchange, gw, reports, clock, _ = batch_setup()
    exchange.batch_response = answer_lost(ccxt.RequestTimeout("krakenfutures POST batchorder timed out"))
    intents = entries(3)
    gw.place_all(intents)
    assert [r.state for r in reports if r.state is not OrderState.SUBMITTED] == [OrderState.UNKNOWN] * 3
    clock.advance(WINDOW_S - 1)
    gw.poll()
    assert "history" not in exchange.calls and not finals(reports)  # a copy could still be in flight
    clock.advance(2)
    gw.poll()
    assert all(r.state is OrderState.FILLED and r.fills for r in finals(reports).values())
    assert len(finals(reports)) == 3 and exchange.calls.count("batchorder") == 1  # found, never re-sent
    assert placed_once_each(exchange, intents) and gw.orders == {}


def test_a_batch_that_never_arrived_is_proven_absent_and_re_sent_once() -> None:
    exchange, gw, reports, clock, recorded = batch_setup()
    fail_first(exchange, ccxt.NetworkError("connection reset"))  # before_create: the request never arrived
    intents = entries(3)
    gw.place_all(intents)
    assert [r.state for r in reports if r.state is not OrderState.SUBMITTED] == [OrderState.UNKNOWN] * 3
    clock.advance(WINDOW_S + 1)
    gw.poll()
    assert exchange.calls.count("batchorder") == 2  # the re-sends went together too
    assert [[u.sends for u in batch] for batch in recorded] == [[1, 1, 1], [2, 2, 2]]  # each recorded first
    assert all(r.state is OrderState.FILLED for r in finals(reports).values()) and len(finals(reports)) == 3
    assert placed_once_each(exchange, intents)


def test_a_definite_refusal_of_the_batch_request_rejects_every_order() -> None:
    exchange, gw, reports, _, _ = batch_setup()
    exchange.fail["batchorder"] = ccxt.BadRequest("krakenfutures invalidArgument")
    gw.place_all(entries(3))
    assert [(r.state, r.reason) for r in finals(reports).values()] == \
        [(OrderState.REJECTED, Reason.EXCHANGE_REJECTED.value)] * 3
    assert exchange.placed_orders() == [] and gw.orders == {}


def test_a_batch_larger_than_the_exchange_takes_is_refused_whole_and_nothing_placed() -> None:
    exchange, gw, reports, _, _ = batch_setup(batch_max=5)
    exchange.batch_max_instructions = 4  # the exchange takes fewer than we send: refused, not cut
    gw.place_all(entries(5))
    assert all(r.state is OrderState.REJECTED for r in finals(reports).values()) and len(finals(reports)) == 5
    assert exchange.placed_orders() == []


@pytest.mark.parametrize("damage", ["drop", "retag", "recid"])
def test_a_batch_answer_missing_or_unmatched_entry_leaves_every_order_unknown_never_a_guess(damage: str) -> None:
    exchange, gw, reports, clock, _ = batch_setup()

    def damaged(answer: dict) -> dict:
        statuses = answer["batchStatus"]
        if damage == "drop":
            statuses.pop()
        elif damage == "retag":
            statuses[0]["order_tag"] = "99"
        else:
            statuses[0]["cliOrdId"] = statuses[1]["cliOrdId"]
        return answer

    exchange.batch_response = damaged
    intents = entries(3)
    gw.place_all(intents)
    unknown = [r for r in reports if r.state is OrderState.UNKNOWN]
    assert len(unknown) == 3 and all("batchorder" in r.detail for r in unknown)
    clock.advance(WINDOW_S + 1)
    gw.poll()  # the orders were placed: the search finds every one, nothing is re-sent
    assert all(r.state is OrderState.FILLED for r in finals(reports).values()) and len(finals(reports)) == 3
    assert exchange.calls.count("batchorder") == 1 and placed_once_each(exchange, intents)


def test_a_batch_processed_after_its_processbefore_places_nothing_and_is_confirmed_rejected() -> None:
    exchange, gw, reports, clock, _ = batch_setup()
    exchange.before_create = lambda call: clock.advance(6)  # held past processBefore inside the exchange
    gw.place_all(entries(2))
    rejected = list(finals(reports).values())
    assert [r.detail for r in rejected] == ["batchorder: wouldProcessAfterSpecifiedTime"] * 2
    assert exchange.placed_orders() == [] and len(gw.watch) == 2  # confirmed from the history once no copy can run
    exchange.before_create = None
    clock.advance(WINDOW_S)
    gw.poll()
    assert gw.watch == {} and exchange.placed_orders() == []


# --- SUBMITTED folded into the claim -------------------------------------------------------------

def claimed(intents: list[OrderIntent], clock: TestClock, ahead_ms: int = 5_000) -> list[OrderIntent]:
    """The intents as a claim that recorded their first send made them: sent_at now, processBefore ahead."""
    return [i.model_copy(update={"sent_at": clock(), "process_before": clock() + ahead_ms + n})
            for n, i in enumerate(intents)]


def test_a_claimed_first_send_goes_with_the_claimed_processbefore_and_records_nothing() -> None:
    exchange, gw, reports, clock, recorded = batch_setup()
    [one] = claimed(entries(1), clock, ahead_ms=4_321)
    clock.advance(1)
    gw.place_all([one])
    assert recorded == []  # the claim's transaction holds SUBMITTED already
    assert exchange.create_calls[0]["processBefore"] == iso_ms(one.process_before)  # exactly the claimed one
    submitted = [r for r in reports if r.state is OrderState.SUBMITTED]
    assert len(submitted) == 1 and submitted[0].process_before == one.process_before  # the symbol is told
    assert submitted[0].sent_at == one.sent_at and submitted[0].sends == 1
    assert finals(reports)[one.client_order_id].state is OrderState.FILLED


def test_claimed_first_sends_in_one_batch_carry_the_earliest_claimed_processbefore() -> None:
    exchange, gw, reports, clock, recorded = batch_setup()
    intents = claimed(entries(3), clock)
    gw.place_all(intents)
    assert recorded == [] and exchange.calls.count("batchorder") == 1
    assert exchange.batch_calls[0]["ProcessBefore"] == iso_ms(min(i.process_before for i in intents))
    assert len(finals(reports)) == 3


def test_a_claimed_first_send_whose_processbefore_has_nearly_passed_is_not_sent() -> None:
    exchange, gw, reports, clock, recorded = batch_setup()
    late, fresh = claimed(entries(2), clock, ahead_ms=1_000)
    late = late.model_copy(update={"process_before": clock() + 200})  # inside the 250 ms send margin
    gw.place_all([late, fresh])
    result = finals(reports)[late.client_order_id]
    assert (result.state, result.reason) == (OrderState.REJECTED, Reason.NOT_PLACED.value)
    assert "processBefore passed before the send" in result.detail
    assert [c["cliOrdId"] for c in exchange.create_calls] == [fresh.client_order_id]  # only the other one left
    assert recorded == [] and late.client_order_id not in gw.orders and late.client_order_id not in gw.watch


def test_a_claimed_first_send_already_past_its_processbefore_sends_nothing_at_all() -> None:
    exchange, gw, reports, clock, recorded = batch_setup()
    [one] = claimed(entries(1), clock, ahead_ms=1_000)
    clock.advance(2)
    gw.place_all([one])
    assert finals(reports)[one.client_order_id].reason == Reason.NOT_PLACED.value
    assert "sendorder" not in exchange.calls and "batchorder" not in exchange.calls and recorded == []


def test_a_re_send_of_a_claimed_intent_records_durably_first_with_a_fresh_processbefore() -> None:
    exchange, gw, reports, clock, recorded = batch_setup()
    [one] = claimed(entries(1), clock)
    order: list[str] = []
    exchange.before_create = lambda call: order.append(f"send {call['processBefore']}")
    original = gw.record_sends
    gw.record_sends = lambda updates: (order.append(f"record {updates[0].process_before}"), original(updates))[1]
    fail = [ccxt.NetworkError("reset")]

    def hook(call: dict) -> None:
        order.append(f"send {call['processBefore']}")
        if fail:
            raise fail.pop()

    exchange.before_create = hook
    gw.place_all([one])
    assert order == [f"send {iso_ms(one.process_before)}"] and recorded == []
    clock.advance(WINDOW_S + 1)
    gw.poll()  # proven absent: the re-send is recorded (sends 2, a new processBefore) before it leaves
    fresh = clock() + 5_000
    assert order[1:] == [f"record {fresh}", f"send {iso_ms(fresh)}"]
    assert [[u.sends for u in batch] for batch in recorded] == [[2]]
    assert finals(reports)[one.client_order_id].state is OrderState.FILLED and placed_once_each(exchange, [one])


def test_an_intent_without_a_claimed_processbefore_records_its_send_as_before() -> None:
    exchange, gw, reports, clock, recorded = batch_setup()
    gw.place_all(entries(2))
    assert [[(u.state, u.sends, u.process_before) for u in batch] for batch in recorded] == \
        [[(OrderState.SUBMITTED, 1, clock() + 5_000)] * 2]


def test_a_recovered_claimed_send_is_searched_after_its_window_not_sent_again() -> None:
    exchange, gw, reports, clock, recorded = batch_setup()
    [one] = claimed(entries(1), clock)
    exchange.create_response = answer_lost(ccxt.RequestTimeout("timed out"))
    gw.place_all([one])  # the process dies here; the database holds SUBMITTED from the claim
    exchange.create_response = None
    reports2: list[OrderUpdate] = []  # a new gateway after a restart, the same exchange
    fresh = OrderGateway(exchange, report=reports2.append, clock=clock.seconds, exchange_clock=clock)
    record = record_of(one, OrderState.SUBMITTED, sent_at=one.sent_at, process_before=one.process_before, sends=1)
    assert fresh.reconcile(Reconcile(intents=(record,), reason="startup")).ok
    fresh.poll()
    assert not [r for r in reports2 if r.client_order_id == one.client_order_id and r.state.is_final]
    clock.advance(WINDOW_S + 1)
    fresh.poll()
    done = [r for r in reports2 if r.client_order_id == one.client_order_id and r.state.is_final]
    assert done and done[-1].state is OrderState.FILLED and len(exchange.create_calls) == 1
