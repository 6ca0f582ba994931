"""The review's protection matrix, on running actors (portfolio, symbol actors, persistence, gateway).

Each row: a situation that doubled orders in the reviewed bot, and the proof that it yields at most
one order here. The exchange is the in-process fake speaking Kraken's raw endpoints (never kinder than Kraken);
the same rows run end to end through ccxt against the simulator in the live-path tests.
"""

from __future__ import annotations

import threading
from decimal import Decimal

import ccxt

from messages import (
    EventKind,
    OrderState,
    Ping,
    PositionSync,
    QueryEvents,
    Reason,
    Signal,
    SignalKind,
)
from tests.conftest import StartSystem, make_config, settle
from tests.fakes import FakeExchange

BTC = "BTC/USD:USD"
T0 = 1_800_000_000_000  # a candle open time (epoch ms)


def signal(kind: SignalKind = SignalKind.ENTER_LONG, candle_time: int = T0, symbol: str = BTC) -> Signal:
    return Signal(symbol=symbol, kind=kind, candle_time=candle_time, price=Decimal(50_000))


def wait_ready(system, symbols=None) -> None:
    """Wait until every symbol actor has had its first position sync (reconciled)."""
    settle(system)
    for symbol, ref in system.symbol_actors().items():
        if symbols is None or symbol in symbols:
            assert ref.ask(__import__("messages").GetStatus(), timeout=5).state.value != "SYNCING", symbol


def rejections(system, reason: Reason) -> list:
    return system.persistence.ask(QueryEvents(reason=reason.value, kind=EventKind.SIGNAL_REJECTED.value), timeout=5)


def send(system, message, symbol: str = BTC) -> None:
    system.symbol_actors()[symbol].tell(message)


def test_same_signal_twice_gives_one_order(start_system: StartSystem) -> None:
    exchange = FakeExchange()
    system = start_system(exchange)
    wait_ready(system)
    send(system, signal())
    send(system, signal())
    settle(system)
    assert len(exchange.create_calls) == 1
    assert len(rejections(system, Reason.DUPLICATE_INTENT)) == 1


def test_same_signal_after_restart_gives_one_order(start_system: StartSystem, sqlite_url: str) -> None:
    exchange = FakeExchange()
    first = start_system(exchange, database_url=sqlite_url)
    wait_ready(first)
    send(first, signal())
    settle(first)
    first.stop()
    exchange.positions.clear()  # even with the position gone, the signal itself must not trade again
    second = start_system(exchange, database_url=sqlite_url)
    wait_ready(second)
    send(second, signal())
    settle(second)
    assert len(exchange.create_calls) == 1
    assert len(rejections(second, Reason.DUPLICATE_INTENT)) == 1


def test_open_position_without_pyramiding_blocks_entry(start_system: StartSystem) -> None:
    exchange = FakeExchange()
    exchange.set_position(BTC, 0.002, 49_000)
    system = start_system(exchange)
    wait_ready(system)
    send(system, signal(SignalKind.ENTER_LONG))
    send(system, signal(SignalKind.ENTER_SHORT, candle_time=T0 + 60_000))
    settle(system)
    assert exchange.create_calls == []
    assert len(rejections(system, Reason.POSITION_OPEN)) == 2


def test_exit_is_not_blocked_by_the_pyramiding_guard(start_system: StartSystem) -> None:
    exchange = FakeExchange()
    exchange.set_position(BTC, 0.002, 49_000)
    system = start_system(exchange)
    wait_ready(system)
    send(system, signal(SignalKind.EXIT))
    settle(system)
    assert len(exchange.create_calls) == 1
    call = exchange.create_calls[0]
    assert call["side"] == "sell" and call["reduceOnly"] is True and call["amount"] == 0.002
    assert exchange.positions[BTC] == 0


def test_position_from_our_own_fill_blocks_the_next_entry_before_any_sync(start_system: StartSystem) -> None:
    exchange = FakeExchange()
    system = start_system(exchange)
    wait_ready(system)
    send(system, signal(candle_time=T0))
    settle(system)
    send(system, signal(candle_time=T0 + 60_000))  # a new signal; the position sync may not have come yet
    settle(system)
    assert len(exchange.create_calls) == 1
    assert len(rejections(system, Reason.POSITION_OPEN)) == 1


def test_external_order_resting_on_the_exchange_blocks_entry(start_system: StartSystem) -> None:
    exchange = FakeExchange()
    external = exchange.place_external(BTC, "buy", 0.001, 40_000)  # placed by hand, outside the system
    system = start_system(exchange)
    wait_ready(system)
    send(system, signal(SignalKind.ENTER_LONG))
    settle(system)
    assert exchange.create_calls == []
    events = system.persistence.ask(QueryEvents(reason=Reason.EXCHANGE_ORDER_OPEN.value), timeout=5)
    assert events and external.id in events[-1].detail


def test_external_order_placed_after_reconciliation_is_caught_right_before_the_send(start_system: StartSystem) -> None:
    exchange = FakeExchange()
    system = start_system(exchange)
    wait_ready(system)
    exchange.place_external(BTC, "buy", 0.001, 40_000)  # the symbol actor has not seen this one
    send(system, signal(SignalKind.ENTER_LONG))
    settle(system)
    assert exchange.create_calls == []
    events = system.persistence.ask(QueryEvents(reason=Reason.EXCHANGE_ORDER_OPEN.value), timeout=5)
    assert events and "open buy order on the exchange" in events[-1].detail


def test_our_own_resting_order_blocks_entry_even_when_local_state_forgot_it(
    start_system: StartSystem, tmp_path
) -> None:
    exchange = FakeExchange()
    limit = make_config(trading={"order_type": "limit", "limit_offset_bps": 500})
    first = start_system(exchange, config=limit, database_url=f"sqlite:///{tmp_path / 'a.db'}")
    wait_ready(first)
    send(first, signal(candle_time=T0))
    settle(first)
    first.stop()
    assert [o.status for o in exchange.placed_orders()] == ["open"]  # our limit order rests
    # a fresh database (lost, or another copy of the bot): L1, L3 and L5 know nothing; L4 still blocks
    second = start_system(exchange, config=limit, database_url=f"sqlite:///{tmp_path / 'b.db'}")
    wait_ready(second)
    send(second, signal(candle_time=T0 + 60_000))
    settle(second)
    assert len(exchange.create_calls) == 1
    events = second.persistence.ask(QueryEvents(reason=Reason.EXCHANGE_ORDER_OPEN.value), timeout=5)
    assert events and exchange.placed_orders()[0].client_order_id in events[-1].detail


def test_resting_order_on_the_other_side_does_not_block(start_system: StartSystem) -> None:
    exchange = FakeExchange()
    exchange.place_external(BTC, "sell", 0.001, 90_000)
    system = start_system(exchange)
    wait_ready(system)
    send(system, signal(SignalKind.ENTER_LONG))
    settle(system)
    assert len(exchange.create_calls) == 1


def test_fifty_concurrent_signals_for_one_symbol_give_one_order(start_system: StartSystem) -> None:
    exchange = FakeExchange()
    system = start_system(exchange)
    wait_ready(system)
    ref = system.symbol_actors()[BTC]
    barrier = threading.Barrier(50)

    def fire(i: int) -> None:
        barrier.wait()
        # half send the very same signal, half a new signal for each candle: one order in all
        ref.tell(signal(candle_time=T0 if i % 2 else T0 + 60_000 * i))

    threads = [threading.Thread(target=fire, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    settle(system)
    assert len(exchange.create_calls) == 1


def test_open_order_check_failure_fails_closed_with_a_reason(start_system: StartSystem) -> None:
    exchange = FakeExchange()
    system = start_system(exchange)
    wait_ready(system)
    exchange.fail_open_orders = ccxt.RequestTimeout("krakenfutures GET openorders timed out")
    send(system, signal())
    settle(system)
    assert exchange.create_calls == []
    events = system.persistence.ask(QueryEvents(reason=Reason.EXCHANGE_UNAVAILABLE.value), timeout=5)
    assert events and "open-order check failed" in events[-1].detail and "fail-closed" in events[-1].detail
    stored = system.persistence.ask(QueryEvents(kind=EventKind.ORDER_UPDATE.value), timeout=5)
    assert any(OrderState.REJECTED.value in e.detail for e in stored)


def test_fail_open_sends_only_when_layers_one_and_five_pass(start_system: StartSystem) -> None:
    exchange = FakeExchange()
    hold = threading.Event()
    exchange.before_create = lambda call: hold.wait(5)
    system = start_system(exchange, config=make_config(exchange={"open_order_check": "fail-open"}))
    wait_ready(system)
    exchange.fail_open_orders = ccxt.ExchangeNotAvailable("krakenfutures 503")
    send(system, signal(candle_time=T0))  # goes out despite the failed check
    assert exchange.wait_for_create_calls(1)
    send(system, signal(candle_time=T0))  # L1: same signal
    send(system, signal(candle_time=T0 + 60_000))  # L5: our first order is still in flight
    system.symbol_actors()[BTC].ask(Ping(), timeout=5)  # both handled while the send still hangs
    hold.set()
    settle(system)
    assert len(exchange.create_calls) == 1
    assert len(rejections(system, Reason.DUPLICATE_INTENT)) == 1
    assert len(rejections(system, Reason.ORDER_PENDING)) == 1


def test_ten_symbols_at_once_with_three_slots_give_three_orders(start_system: StartSystem) -> None:
    exchange = FakeExchange()
    symbols = sorted(exchange.markets)[:10]
    config = make_config(trading={"symbols": symbols}, risk={"max_open_positions": 3, "max_total_notional": 10_000})
    system = start_system(exchange, config=config)
    wait_ready(system)
    refs = system.symbol_actors()
    barrier = threading.Barrier(10)

    def fire(symbol: str) -> None:
        barrier.wait()
        refs[symbol].tell(Signal(symbol=symbol, kind=SignalKind.ENTER_LONG, candle_time=T0,
                                 price=Decimal(str(exchange.prices[symbol]))))

    threads = [threading.Thread(target=fire, args=(s,)) for s in symbols]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    settle(system)
    assert len(exchange.create_calls) == 3
    assert len({c["symbol"] for c in exchange.create_calls}) == 3
    assert len(rejections(system, Reason.RISK_LIMIT)) == 7


def test_no_entry_before_reconciliation_has_succeeded(start_system: StartSystem) -> None:
    exchange = FakeExchange()
    exchange.fail_positions = ccxt.RequestTimeout("openpositions timed out")
    system = start_system(exchange)
    settle(system)
    send(system, signal())
    settle(system)
    assert exchange.create_calls == []
    refused = rejections(system, Reason.NOT_READY)
    assert len(refused) == 1 and "reconciliation failed: positions unreadable" in refused[0].detail
    failed = system.persistence.ask(QueryEvents(kind=EventKind.RECONCILE_FAILED.value), timeout=5)
    assert failed and "timed out" in failed[-1].detail


def test_a_stale_position_sync_does_not_hide_our_fill(start_system: StartSystem) -> None:
    exchange = FakeExchange()
    system = start_system(exchange)
    wait_ready(system)
    send(system, signal(candle_time=T0))
    settle(system)
    # a sync fetched before our fill (older seq) says flat; it must not reopen the door
    from messages import Position

    send(system, PositionSync(position=Position.flat(BTC), seq=1))
    send(system, signal(candle_time=T0 + 60_000))
    settle(system)
    assert len(exchange.create_calls) == 1
