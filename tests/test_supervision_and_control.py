"""Restarts of dead symbol actors, halting after too many deaths, pause/resume, and a crash before the send."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import pykka

from messages import (
    Candle,
    Candles,
    ControlCode,
    EventKind,
    Flatten,
    GetStatus,
    LoadOpenIntents,
    Pause,
    PositionSide,
    QueryEvents,
    Reason,
    Resume,
    Signal,
    SignalKind,
    SymbolState,
    client_order_id_for,
    intent_hash,
)
from strategies import Strategy, StrategyParams
from tests.conftest import StartSystem, make_config, settle
from tests.fakes import FakeExchange
from tests.helpers import wait_until

BTC = "BTC/USD:USD"
ETH = "ETH/USD:USD"
T0 = 1_800_000_000_000
REPO = Path(__file__).resolve().parents[1]


class ExplodingStrategy(Strategy):
    """Raises on a candle whose close is 666 (a bug in a strategy); otherwise never signals."""

    name = "exploding"
    Params = StrategyParams

    @property
    def warmup(self) -> int:
        return 1

    def decide(self, candles: Sequence[Candle], position: PositionSide) -> SignalKind | None:
        if candles[-1].close == 666:
            raise RuntimeError("strategy bug on candle 666")
        return None


def exploding(symbol: str) -> Strategy:
    return ExplodingStrategy(StrategyParams())


def crash_candle(symbol: str, t: int) -> Candles:
    c = Decimal(666)
    return Candles(symbol=symbol, candles=(Candle(symbol=symbol, timeframe="1m", open_time=t, open=c, high=c,
                                                 low=c, close=c),))


def signal(candle_time: int = T0, kind: SignalKind = SignalKind.ENTER_LONG, symbol: str = BTC) -> Signal:
    return Signal(symbol=symbol, kind=kind, candle_time=candle_time, price=Decimal(50_000))


def current_ref(system, symbol: str = BTC):
    return system.symbol_actors()[symbol]


def status_of(system, symbol: str = BTC):
    return next(row for row in system.status().symbols if row.symbol == symbol)


def events(system, **filters):
    return system.persistence.ask(QueryEvents(**filters), timeout=5)


def test_dead_symbol_actor_is_restarted_reloads_state_and_still_rejects_its_last_signal(
    start_system: StartSystem,
) -> None:
    exchange = FakeExchange()
    system = start_system(exchange, strategy_factory=exploding)
    settle(system)
    first = current_ref(system)
    first.tell(signal())
    settle(system)
    assert len(exchange.create_calls) == 1

    first.tell(crash_candle(BTC, T0 + 60_000))
    second = wait_until(lambda: (r := current_ref(system)) is not None and r != first and r, message="restart")
    wait_until(lambda: status_of(system).state is not SymbolState.SYNCING, message="first sync after restart")
    assert not first.is_alive()
    second.tell(signal())  # the same signal as before the crash
    settle(system)
    assert len(exchange.create_calls) == 1
    duplicates = events(system, reason=Reason.DUPLICATE_INTENT.value)
    assert len(duplicates) == 1
    row = status_of(system)
    assert row.restarts == 1 and row.state is SymbolState.TRADING
    assert [e.kind for e in events(system, kind=EventKind.ACTOR_RESTARTED.value)] == [EventKind.ACTOR_RESTARTED]


def test_symbol_is_halted_after_too_many_deaths_and_says_so(start_system: StartSystem) -> None:
    exchange = FakeExchange()
    config = make_config(trading={"symbols": [BTC, ETH]}, supervision={"max_restarts": 2})
    system = start_system(exchange, config=config, strategy_factory=exploding)
    settle(system)
    for i in range(3):
        ref = wait_until(lambda: current_ref(system), message=f"actor #{i}")
        ref.tell(crash_candle(BTC, T0 + i * 60_000))
        wait_until(lambda ref=ref: current_ref(system) != ref, message=f"death #{i}")
    wait_until(lambda: status_of(system).state is SymbolState.HALTED, message="halt")
    row = status_of(system)
    assert row.halted and "halted after 3 crashes" in row.halt_reason and "strategy bug" in row.halt_reason
    # halted is exits only: the portfolio may run the symbol with its strategy off; an entry never goes out
    halted = current_ref(system)
    if halted is not None:
        halted.tell(signal(T0 + 600_000))
    assert events(system, kind=EventKind.SYMBOL_HALTED.value)
    # the other symbol keeps trading
    current_ref(system, ETH).tell(Signal(symbol=ETH, kind=SignalKind.ENTER_LONG, candle_time=T0,
                                         price=Decimal(3000)))
    settle(system)
    assert [c["symbol"] for c in exchange.create_calls] == [ETH]


def test_halt_after_crashes_survives_a_restart_as_exits_only(start_system: StartSystem, sqlite_url: str) -> None:
    exchange = FakeExchange()
    config = make_config(supervision={"max_restarts": 0})
    system = start_system(exchange, config=config, strategy_factory=exploding)
    settle(system)
    current_ref(system).tell(crash_candle(BTC, T0))
    wait_until(lambda: status_of(system).state is SymbolState.HALTED, message="halt")
    system.stop()
    again = start_system(exchange, config=config, database_url=sqlite_url)
    settle(again)
    row = status_of(again)
    assert row.state is SymbolState.HALTED and "crashes" in row.halt_reason
    current_ref(again).tell(signal(T0 + 60_000))
    settle(again)
    assert exchange.create_calls == []
    assert events(again, reason=Reason.HALTED.value, kind=EventKind.SIGNAL_REJECTED.value)


def test_pause_records_signals_as_paused_survives_restart_and_resume_restores(
    start_system: StartSystem, sqlite_url: str
) -> None:
    exchange = FakeExchange()
    config = make_config(trading={"symbols": [BTC, ETH]})
    system = start_system(exchange, config=config)
    settle(system)
    reply = system.control(Pause(symbol=BTC, source="test"))
    assert reply.ok and reply.symbols == (BTC,)
    current_ref(system).tell(signal(T0))
    current_ref(system, ETH).tell(Signal(symbol=ETH, kind=SignalKind.ENTER_LONG, candle_time=T0,
                                         price=Decimal(3000)))
    settle(system)
    assert [c["symbol"] for c in exchange.create_calls] == [ETH]  # the other symbol keeps trading
    assert len(events(system, reason=Reason.PAUSED.value, kind=EventKind.SIGNAL_REJECTED.value)) == 1
    system.stop()

    again = start_system(exchange, config=config, database_url=sqlite_url)
    settle(again)
    assert status_of(again).state is SymbolState.PAUSED
    current_ref(again).tell(signal(T0 + 60_000))
    settle(again)
    assert [c["symbol"] for c in exchange.create_calls] == [ETH]

    assert again.control(Resume(symbol=BTC, source="test")).ok
    current_ref(again).tell(signal(T0 + 120_000))
    settle(again)
    assert [c["symbol"] for c in exchange.create_calls] == [ETH, BTC]
    control_events = events(again, kind=EventKind.CONTROL.value, symbol=BTC)
    assert ["paused=True" in e.detail for e in control_events] == [True, False]
    assert all("by test" in e.detail for e in control_events)


def test_pause_is_applied_at_once_while_an_order_is_in_flight(start_system: StartSystem) -> None:
    exchange = FakeExchange()
    release = threading.Event()
    exchange.before_create = lambda call: release.wait(10)
    system = start_system(exchange)
    settle(system)
    current_ref(system).tell(signal(T0))
    assert exchange.wait_for_create_calls(1)  # the send is hanging on the exchange
    started = time.monotonic()
    reply = system.control(Pause(symbol=BTC))
    row = current_ref(system).ask(GetStatus(), timeout=1)
    elapsed = time.monotonic() - started
    assert reply.ok and row.state is SymbolState.PAUSED and elapsed < 1.0
    assert [o.state.value for o in row.pending_orders] in (["INITIALIZED"], ["SUBMITTED"])
    assert not release.is_set()  # the exchange has still not answered
    release.set()


def test_control_for_an_unknown_symbol_changes_nothing(start_system: StartSystem) -> None:
    system = start_system()
    settle(system)
    reply = system.control(Pause(symbol="NOPE/USD:USD"))
    assert not reply.ok and "unknown symbol 'NOPE/USD:USD'" in reply.detail and BTC in reply.detail
    assert status_of(system).state is not SymbolState.PAUSED
    assert events(system, kind=EventKind.CONTROL.value) == []


CRASH_SCRIPT = textwrap.dedent(
    """
    import os, sys
    from decimal import Decimal
    sys.path.insert(0, {repo!r})
    from actors import TradingSystem, gateway_settings_for
    from exchange import load_market_specs
    from messages import GetStatus, Signal, SignalKind
    from tests.conftest import make_config, settle
    from tests.fakes import FakeExchange

    exchange = FakeExchange()
    # the process dies (like SIGKILL) right before the order goes out: after the claim, before the send
    exchange.before_create = lambda call: os._exit(9)
    config = make_config()
    system = TradingSystem(config=config, database_url={url!r}, private_exchange=exchange, public_exchange=None,
                           markets=load_market_specs(exchange, config.trading.symbols),
                           gateway_settings=gateway_settings_for(config, **{overrides!r})).start()
    settle(system)
    system.symbol_actors()["BTC/USD:USD"].tell(
        Signal(symbol="BTC/USD:USD", kind=SignalKind.ENTER_LONG, candle_time={t0}, price=Decimal(50000)))
    import threading; threading.Event().wait(30)
    os._exit(3)  # not reached
    """
)


# processBefore 0.3 s ahead, 0.1 s clock skew, 0.1 s history lag: an unknown send is decided 0.5 s after it left
QUICK_WINDOW = {"process_before_s": 0.3, "clock_skew_s": 0.1, "history_lag_s": 0.1}


def crash_between_claim_and_send(sqlite_url: str) -> None:
    script = CRASH_SCRIPT.format(repo=str(REPO), url=sqlite_url, t0=T0, overrides=QUICK_WINDOW)
    result = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 9, result.stderr[-2000:]


def test_crash_between_claim_and_send_the_intent_is_looked_up_then_sent_once_with_its_own_id(
    start_system: StartSystem, sqlite_url: str
) -> None:
    crash_between_claim_and_send(sqlite_url)  # the send was recorded (with its processBefore), then the process died
    exchange = FakeExchange()
    lookups: list[list[str]] = []
    original = exchange.privateGetOrdersStatus
    exchange.privateGetOrdersStatus = lambda params=None: lookups.append(list(params["cliOrdIds"])) or original(params)
    system = start_system(exchange, database_url=sqlite_url, gateway_overrides=QUICK_WINDOW)
    settle(system)
    current_ref(system).tell(signal(T0))  # the same signal again
    cid = client_order_id_for(intent_hash(BTC, T0, SignalKind.ENTER_LONG, Decimal(100)))
    wait_until(lambda: system.persistence.ask(LoadOpenIntents(), timeout=5) == [], timeout=15,
               message="the recovered intent decided and filled")
    settle(system)
    assert lookups and lookups[0] == [cid]  # looked up by its client order id before anything was sent
    # proven absent only by a complete search after its window (history included), then L3/L4 again, then sent once
    before_send = exchange.calls[:exchange.calls.index("sendorder")]
    assert {"orders/status", "fills", "history", "openpositions", "openorders"} <= set(before_send)
    assert [c["cliOrdId"] for c in exchange.create_calls] == [cid]
    assert len(events(system, reason=Reason.DUPLICATE_INTENT.value)) == 1
    assert len(exchange.placed_orders()) == 1


def test_crash_after_the_exchange_took_the_order_is_resolved_without_a_second_order(
    start_system: StartSystem, sqlite_url: str
) -> None:
    crash_between_claim_and_send(sqlite_url)
    cid = client_order_id_for(intent_hash(BTC, T0, SignalKind.ENTER_LONG, Decimal(100)))
    exchange = FakeExchange()
    # it did arrive after all (before its processBefore), and filled: a market order, so its id is free again
    exchange.privatePostSendorder(exchange.create_order_request(BTC, "market", "buy", 0.002, None,
                                                                {"clientOrderId": cid}))
    exchange.create_calls.clear()
    system = start_system(exchange, database_url=sqlite_url, gateway_overrides=QUICK_WINDOW)
    wait_until(lambda: system.persistence.ask(LoadOpenIntents(), timeout=5) == [], timeout=15,
               message="the recovered intent found filled")
    settle(system)
    current_ref(system).tell(signal(T0 + 60_000))  # a new entry: the adopted fill is a position now
    settle(system)
    assert exchange.create_calls == [] and len(exchange.placed_orders()) == 1
    assert events(system, reason=Reason.POSITION_OPEN.value)


def test_system_stops_every_actor(start_system: StartSystem) -> None:
    system = start_system(config=make_config(trading={"symbols": [BTC, ETH]}))
    settle(system)
    refs = [system.persistence, system.gateway, system.portfolio, *system.symbol_actors().values()]
    system.stop()
    assert not any(ref.is_alive() for ref in refs)
    assert pykka.ActorRegistry.get_all() == []


def test_flatten_with_every_position_flat_is_done_with_nothing_to_do(start_system: StartSystem) -> None:
    system = start_system(FakeExchange())
    settle(system)
    reply = system.control(Flatten(source="test"))
    assert reply.ok and reply.code is ControlCode.NOTHING_TO_DO
    assert reply.detail.count("nothing to flatten") == len(reply.symbols) > 0
    unknown = system.control(Flatten(symbol="X/USD:USD", source="test"))
    assert unknown.code is ControlCode.UNKNOWN_SYMBOL
