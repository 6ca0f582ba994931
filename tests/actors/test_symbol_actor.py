"""The symbol actor alone: a running actor around a trader with fake ports."""

from __future__ import annotations

import threading
from decimal import Decimal

from actors.symbol import SymbolActor
from messages import GetStatus, Pause, Ping, Resume, Signal, SignalKind, SymbolDied, SymbolState
from tests.actors.test_symbol_trader import BTC, T0, make_trader, sig
from tests.helpers import FakePorts, start_recorder


def test_symbol_actor_serializes_concurrent_signals_into_one_order() -> None:
    ports = FakePorts()
    ref = SymbolActor.start(make_trader(ports))
    barrier = threading.Barrier(20)

    def fire() -> None:
        barrier.wait()
        ref.tell(sig())

    threads = [threading.Thread(target=fire) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ref.ask(Ping(), timeout=5)
    assert len(ports.placed) == 1
    assert ports.reasons().count("DUPLICATE_INTENT") == 19


def test_symbol_actor_pauses_and_resumes() -> None:
    ports = FakePorts()
    ref = SymbolActor.start(make_trader(ports))
    ref.tell(Pause(symbol=BTC))
    assert ref.ask(GetStatus(), timeout=5).state is SymbolState.PAUSED
    ref.tell(sig())
    ref.tell(Resume(symbol=BTC))
    ref.tell(sig(t=T0 + 60_000))
    status = ref.ask(GetStatus(), timeout=5)
    assert status.state is SymbolState.TRADING
    assert len(ports.placed) == 1 and status.rejections == {"PAUSED": 1}


def test_symbol_actor_tells_its_supervisor_when_it_dies() -> None:
    supervisor, inbox = start_recorder()
    ref = SymbolActor.start(make_trader(), supervisor=supervisor)
    ref.tell("not a message")  # an unexpected message raises in the actor: it dies
    died = inbox.wait_for(SymbolDied)[0]
    assert died.symbol == BTC and died.actor_urn == ref.actor_urn and "unexpected message" in died.error
    assert not ref.is_alive()


def test_symbol_actor_answers_status_with_its_position_and_pending_orders() -> None:
    ports = FakePorts()
    ref = SymbolActor.start(make_trader(ports))
    ref.tell(Signal(symbol=BTC, kind=SignalKind.ENTER_SHORT, candle_time=T0, price=Decimal(40_000)))
    status = ref.ask(GetStatus(), timeout=5)
    assert status.position is not None and not status.position.is_open
    assert [(o.side.value, o.amount) for o in status.pending_orders] == [("sell", Decimal("0.0025"))]
    assert status.last_signal == f"ENTER_SHORT @ {T0}" and status.last_outcome.startswith("SENT")


def test_symbol_actor_halt_allows_exits_only_and_unhalt_restores_entries() -> None:
    from messages import Flatten, Halt, Position, PositionSide, PositionSync, Unhalt

    ports = FakePorts()
    ref = SymbolActor.start(make_trader(ports))
    ref.tell(Halt(symbol=BTC, reason="news"))
    ref.tell(sig())
    assert ref.ask(GetStatus(), timeout=5).state is SymbolState.HALTED and ports.placed == []
    ref.tell(PositionSync(position=Position(symbol=BTC, side=PositionSide.LONG, contracts=Decimal("0.01")), seq=5))
    ref.tell(sig(SignalKind.EXIT, t=T0 + 60_000))
    ref.ask(Ping(), timeout=5)
    assert [p.intent.reduce_only for p in ports.placed] == [True]
    ref.tell(Unhalt(symbol=BTC))
    ref.tell(Flatten(symbol=BTC, source="test"))  # an exit is already in flight: refused as pending
    status = ref.ask(GetStatus(), timeout=5)
    assert status.state is SymbolState.TRADING and status.rejections == {"HALTED": 1, "ORDER_PENDING": 1}


def test_symbol_actor_flatten_sends_a_reduce_only_market_exit_even_when_paused() -> None:
    from messages import Flatten, Position, PositionSide, PositionSync

    ports = FakePorts()
    trader = make_trader(ports, order_type="limit")
    ref = SymbolActor.start(trader)
    ref.tell(Pause(symbol=BTC))
    ref.tell(PositionSync(position=Position(symbol=BTC, side=PositionSide.SHORT, contracts=Decimal("0.3")), seq=5))
    ref.tell(Flatten(symbol=BTC, source="test"))
    ref.ask(GetStatus(), timeout=5)
    [placed] = ports.placed
    assert placed.intent.reduce_only and placed.intent.side.value == "buy" and placed.intent.amount == Decimal("0.3")
    assert placed.intent.order_type == "market"
