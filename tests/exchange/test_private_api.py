"""PrivateApi's searches (complete for the asked window, or raising) and the fake's Kraken rules, through PrivateApi."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from exchange import private_api
from exchange.private_api import FillsPending, PrivateApi, iso_ms
from exchange.reports import ExchangeStatus, UnreadableAnswer
from messages import OrderIntent, Side, SignalKind, client_order_id_for, intent_hash
from tests.fakes import FakeExchange, TestClock

BTC = "BTC/USD:USD"


def order(exchange: FakeExchange, side: str = "buy", amount: float = 0.001, **params: Any) -> dict[str, Any]:
    """One raw sendorder (a market order unless a limitPrice is given); its sendStatus."""
    kind = "limit" if "price" in params else "market"
    price = params.pop("price", None)
    request = exchange.create_order_request(BTC, kind, side, amount, price, params)
    return exchange.privatePostSendorder(request)["sendStatus"]


def setup() -> tuple[FakeExchange, PrivateApi, TestClock]:
    clock = TestClock(start_ms=1_800_000_000_000)
    exchange = FakeExchange(clock=clock)
    return exchange, PrivateApi(exchange), clock


def many_fills(exchange: FakeExchange, clock: TestClock, count: int, step_ms: int = 1) -> list[int]:
    """`count` market fills, `step_ms` apart (0: all in one millisecond); their times."""
    times = []
    for _ in range(count):
        order(exchange)
        times.append(clock())
        clock.ms += step_ms
    return times


# --- fills: newest 100 per page, older by lastFillTime --------------------------------------

def test_fills_since_pages_back_until_the_window_is_complete() -> None:
    exchange, api, clock = setup()
    times = many_fills(exchange, clock, 250, step_ms=7)
    since = times[20]
    fills = api.fills_since(since)
    assert [f.time_ms for f in fills] == times[20:]  # every fill in the window, oldest first, each once
    assert exchange.calls.count("fills") == 3  # 100 + 100 + the page that reaches back past `since`


def test_fills_in_one_millisecond_across_a_page_boundary_are_read_once() -> None:
    exchange, api, clock = setup()
    many_fills(exchange, clock, 60, step_ms=0)
    clock.ms += 1
    many_fills(exchange, clock, 60, step_ms=0)
    fills = api.fills_since(clock() - 10)
    assert len(fills) == 120 and len({f.fill_id for f in fills}) == 120


def test_more_than_a_page_of_fills_in_one_millisecond_cannot_be_paged_and_raises() -> None:
    exchange, api, clock = setup()
    many_fills(exchange, clock, 101, step_ms=0)
    with pytest.raises(UnreadableAnswer, match="paging stalls"):
        api.fills_since(clock() - 1000)


def burst_around(exchange: FakeExchange, clock: TestClock, burst: int = 150) -> tuple[list[int], int]:
    """40 fills 3 ms apart, `burst` fills in one millisecond, 40 more 3 ms apart: every time, and the burst's ms."""
    before = many_fills(exchange, clock, 40, step_ms=3)
    burst_ms = clock()
    many_fills(exchange, clock, burst, step_ms=0)
    clock.ms += 3
    after = many_fills(exchange, clock, 40, step_ms=3)
    return before + [burst_ms] * burst + after, burst_ms


@pytest.mark.parametrize("equal_ids", [True, False])
def test_a_millisecond_the_fills_endpoint_cannot_page_is_read_from_the_execution_history(equal_ids: bool) -> None:
    exchange, api, clock = setup()
    exchange.execution_ids_equal_fill_ids = equal_ids  # False: Kraken's ids could differ; one source per fill
    times, burst_ms = burst_around(exchange, clock)
    fills = api.fills_since(times[10], settled_before_ms=clock())
    assert [f.time_ms for f in fills] == times[10:]  # all of them, oldest first
    assert len({f.fill_id for f in fills}) == len(fills)  # each once
    from_history = {f.fill_id for f in fills if f.time_ms == burst_ms}
    by_endpoint = {f["fill_id"] for f in exchange.fills}
    assert (from_history <= by_endpoint) is equal_ids  # the burst's fills are the execution history's
    assert {f.fill_id for f in fills if f.time_ms != burst_ms} <= by_endpoint
    assert exchange.calls.count("executions") == 2  # 150 executions: two pages of 100
    api.fills_since(times[10], settled_before_ms=clock())
    assert exchange.calls.count("executions") == 2  # a settled millisecond is read once


def test_a_stalled_millisecond_not_settled_yet_is_pending_and_the_rest_is_complete() -> None:
    exchange, api, clock = setup()
    times, burst_ms = burst_around(exchange, clock)
    with pytest.raises(FillsPending) as pending:
        api.fills_since(times[0], settled_before_ms=burst_ms)  # the history may not show the burst yet
    assert pending.value.pending_ms == [burst_ms]
    assert [f.time_ms for f in pending.value.fills] == [t for t in times if t != burst_ms]
    assert "executions" not in exchange.calls
    with pytest.raises(UnreadableAnswer, match="paging stalls"):  # without a settled bound: refused as before
        api.fills_since(times[0])


def test_a_burst_the_execution_history_has_not_published_is_not_read_as_complete() -> None:
    exchange, api, clock = setup()
    exchange.history_lag_ms = 3_000
    times, burst_ms = burst_around(exchange, clock)
    with pytest.raises(UnreadableAnswer):  # the caller's settled bound is wrong: the history shows nothing there
        api.fills_since(times[0], settled_before_ms=clock() + 1)
    clock.ms += 3_000
    fills = api.fills_since(times[0], settled_before_ms=clock() - 3_000)
    assert len(fills) == len(times)


def test_executions_since_pages_by_token_and_respects_the_lag() -> None:
    exchange, api, clock = setup()
    exchange.history_lag_ms = 3_000
    times = many_fills(exchange, clock, 250, step_ms=2)
    assert api.executions_since(times[0]) == []  # nothing published yet
    clock.ms += 3_000
    executions = api.executions_since(times[0])
    assert [e.time_ms for e in executions] == times and exchange.calls.count("executions") == 4  # 100+100+50
    assert [e.fill_id for e in executions] == [f["fill_id"] for f in exchange.fills]
    assert [e.time_ms for e in api.executions_since(times[10], before_ms=times[20])] == times[10:20]


def test_an_execution_search_cut_short_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    exchange, api, clock = setup()
    times = many_fills(exchange, clock, 250)
    monkeypatch.setattr(private_api, "MAX_HISTORY_PAGES", 2)
    with pytest.raises(UnreadableAnswer, match="more than 2 pages"):
        api.executions_since(times[0])
    original = exchange.historyGetExecutions
    exchange.historyGetExecutions = lambda params=None: (original(params) if not params.get("continuation_token")
                                                         else {"accountUid": "fake-account", "elements": None})
    monkeypatch.setattr(private_api, "MAX_HISTORY_PAGES", 40)
    with pytest.raises(UnreadableAnswer):
        api.executions_since(times[0])


def test_execution_reads_spend_the_history_budget() -> None:
    from exchange.budget import CostBudget
    exchange, _, clock = setup()
    budget = CostBudget()
    api = PrivateApi(exchange, budget)
    many_fills(exchange, clock, 5)
    before = budget.history.available()
    api.executions_since(0)
    assert budget.history.available() < before - 0.99  # one token (refilling meanwhile)


def test_a_fill_search_that_needs_too_many_pages_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    exchange, api, clock = setup()
    monkeypatch.setattr(private_api, "MAX_FILL_PAGES", 2)
    times = many_fills(exchange, clock, 250)
    with pytest.raises(UnreadableAnswer, match="more than 2 pages"):
        api.fills_since(times[0])


def test_an_unreadable_fill_page_fails_the_whole_search() -> None:
    exchange, api, clock = setup()
    times = many_fills(exchange, clock, 150)
    original = exchange.privateGetFills
    exchange.privateGetFills = lambda params=None: (original(params) if not params
                                                    else {"result": "success", "fills": None})
    with pytest.raises(UnreadableAnswer):
        api.fills_since(times[0])


def test_the_fake_pages_fills_like_kraken() -> None:
    exchange, _, clock = setup()
    times = many_fills(exchange, clock, 130, step_ms=5)
    newest = exchange.privateGetFills()["fills"]
    assert len(newest) == 100 and newest[0]["fillTime"] == iso_ms(times[-1])  # the newest 100, newest first
    older = exchange.privateGetFills({"lastFillTime": newest[-1]["fillTime"]})["fills"]
    assert [f["fillTime"] for f in older] == [iso_ms(t) for t in reversed(times[:30])]  # strictly before


# --- history: pages by continuation token ---------------------------------------------------

def test_history_since_reads_every_page_oldest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    exchange, api, clock = setup()
    monkeypatch.setattr(private_api, "HISTORY_PAGE", 7)
    many_fills(exchange, clock, 5, step_ms=10)
    since = clock()
    resting = [order(exchange, price=40_000 + i, amount=0.001)["order_id"] for i in range(10)]
    for order_id in resting[:5]:
        clock.ms += 3
        exchange.cancel_outside(order_id)
    events = api.history_since(since)
    assert [e.name for e in events] == ["OrderPlaced"] * 10 + ["OrderCancelled"] * 5
    assert [e.time_ms for e in events] == sorted(e.time_ms for e in events) and events[0].time_ms >= since
    assert exchange.calls.count("history") == 3  # 7 + 7 + 1


def test_a_history_search_that_needs_too_many_pages_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    exchange, api, clock = setup()
    monkeypatch.setattr(private_api, "HISTORY_PAGE", 2)
    monkeypatch.setattr(private_api, "MAX_HISTORY_PAGES", 3)
    many_fills(exchange, clock, 7)
    with pytest.raises(UnreadableAnswer, match="more than 3 pages"):
        api.history_since(0)


def test_an_unreadable_history_page_fails_the_whole_search(monkeypatch: pytest.MonkeyPatch) -> None:
    exchange, api, clock = setup()
    monkeypatch.setattr(private_api, "HISTORY_PAGE", 2)
    many_fills(exchange, clock, 5)
    original = exchange.historyGetOrders
    exchange.historyGetOrders = lambda params=None: (original(params) if "continuation_token" not in params
                                                     else "<html>502</html>")
    with pytest.raises(UnreadableAnswer):
        api.history_since(0)


def test_history_events_carry_client_id_and_filled_and_show_after_their_lag() -> None:
    exchange, api, clock = setup()
    exchange.history_lag_ms = 1_000
    cid = "c-history"
    placed = order(exchange, price=49_000, amount=0.002, clientOrderId=cid)["order_id"]
    exchange.fill_resting(placed, amount=0.0005)
    assert api.history_since(0) == []  # not in the history yet
    clock.advance(1)
    placed_event, update = api.history_since(0)
    assert (placed_event.name, placed_event.client_order_id, placed_event.filled) == ("OrderPlaced", cid, 0)
    assert (update.name, update.filled, update.quantity) == ("OrderUpdated", Decimal("0.0005"), Decimal("0.0015"))
    rejected = order(exchange, side="buy", reduceOnly=True, clientOrderId="c-reduce")  # would add to the long
    exchange.cancel_outside(placed)
    clock.advance(1)
    assert rejected["status"] == "wouldNotReducePosition"
    *_, rejected_event, cancelled = api.history_since(0)
    assert (rejected_event.status, rejected_event.client_order_id) == (ExchangeStatus.REJECTED, "c-reduce")
    assert (cancelled.status, cancelled.client_order_id, cancelled.filled) == (ExchangeStatus.CANCELLED, cid,
                                                                               Decimal("0.0005"))


# --- the fake's Kraken rules, as the gateway reads them ------------------------------------

def test_a_client_order_id_is_refused_only_while_its_order_is_open() -> None:
    exchange, _api, _clock = setup()
    first = order(exchange, price=49_000, clientOrderId="c-1")
    assert first["status"] == "placed"
    assert order(exchange, price=49_000, clientOrderId="c-1")["status"] == "clientOrderIdAlreadyExist"
    exchange.cancel_outside(first["order_id"])
    again = order(exchange, price=49_000, clientOrderId="c-1")  # cancelled: the id is free again
    assert again["status"] == "placed" and again["order_id"] != first["order_id"]
    market = order(exchange, side="sell", clientOrderId="c-2")
    assert order(exchange, side="sell", clientOrderId="c-2")["status"] == "placed"  # filled: free again
    assert (market["status"] == "placed"
            and len([o for o in exchange.placed_orders() if o.client_order_id == "c-2"]) == 2)


def test_process_before_is_honoured_on_the_exchanges_clock() -> None:
    exchange, api, clock = setup()
    in_time = order(exchange, clientOrderId="c-1", processBefore=iso_ms(clock() + 1))
    late = order(exchange, clientOrderId="c-2", processBefore=iso_ms(clock()))  # at the time is too late
    assert in_time["status"] == "placed" and late["status"] == "wouldProcessAfterSpecifiedTime"
    assert [o.client_order_id for o in exchange.placed_orders()] == ["c-1"]
    assert [e.client_order_id for e in api.history_since(0)] == ["c-1"]  # the late one left no trace


def test_orders_status_shows_a_closed_order_for_five_seconds_only() -> None:
    exchange, api, clock = setup()
    order(exchange, clientOrderId="c-1")
    clock.advance(4.999)
    [status] = api.order_status(["c-1"])
    assert status.status is ExchangeStatus.FILLED and status.filled == Decimal("0.001")
    clock.advance(0.001)
    assert api.order_status(["c-1"]) == []
    resting = order(exchange, price=49_000, clientOrderId="c-open")
    clock.advance(60)
    [status] = api.order_status(["c-open"], [resting["order_id"]])
    assert status.status is ExchangeStatus.OPEN  # open orders always show


def test_a_market_order_fills_in_full_unless_the_book_is_thin() -> None:
    exchange, _api, _ = setup()
    full = order(exchange, amount=0.002)
    assert [e["type"] for e in full["orderEvents"]] == ["EXECUTION"]
    exchange.depth[BTC] = 0.0005
    thin = order(exchange, amount=0.002)
    assert [e["type"] for e in thin["orderEvents"]] == ["EXECUTION", "CANCEL"]  # the IoC remainder is cancelled
    assert exchange.positions[BTC] == 0.0025
    exchange.depth[BTC] = 0
    assert order(exchange, amount=0.002)["status"] == "iocWouldNotExecute"


def test_a_reduce_only_order_that_would_not_reduce_is_rejected_and_one_too_large_is_cut() -> None:
    exchange, api, _ = setup()
    assert order(exchange, side="sell", reduceOnly=True)["status"] == "wouldNotReducePosition"
    exchange.set_position(BTC, 0.001, 50_000)
    assert order(exchange, side="buy", reduceOnly=True)["status"] == "wouldNotReducePosition"  # would add
    cut = order(exchange, side="sell", amount=0.005, reduceOnly=True)
    assert cut["status"] == "placed" and cut["orderEvents"][0]["amount"] == "0.001"
    assert exchange.positions[BTC] == 0 and api.positions() == []


def test_the_request_ccxt_builds_is_what_the_fake_reads() -> None:
    _exchange, api, clock = setup()
    h = intent_hash(BTC, 1, SignalKind.ENTER_LONG, Decimal(100))
    intent = OrderIntent(intent_hash=h, client_order_id=client_order_id_for(h), symbol=BTC,
                         kind=SignalKind.ENTER_LONG, side=Side.BUY, candle_time=1, notional=Decimal(100),
                         amount=Decimal("0.00237"), price=Decimal(50_000), order_type="limit",
                         limit_price=Decimal("49000.4"))
    request = api.order_request(intent, clock() + 5_000)
    assert request == {"symbol": "PF_XBTUSD", "side": "buy", "size": "0.0023", "cliOrdId": intent.client_order_id,
                       "orderType": "lmt", "limitPrice": "49000", "processBefore": iso_ms(clock() + 5_000)}
    report = api.send(intent, clock() + 5_000)
    assert report.placed and report.client_order_id == intent.client_order_id
    [resting] = api.open_orders()
    assert (resting.symbol, resting.unfilled, resting.price) == (BTC, Decimal("0.0023"), Decimal(49_000))
