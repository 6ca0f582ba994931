"""The guard chain as a plain class: no threads, fake ports."""

from __future__ import annotations

from decimal import Decimal

import pytest

from actors.symbol import SymbolSettings, SymbolTrader
from messages import (
    Candle,
    Candles,
    ControlRecord,
    IntentRecord,
    MarketSpec,
    OrderState,
    OrderUpdate,
    Position,
    PositionSide,
    PositionSync,
    Reason,
    Side,
    Signal,
    SignalKind,
    SymbolBootstrap,
    SymbolState,
    client_order_id_for,
    intent_hash,
)
from strategies import ScriptedParams, ScriptedStrategy
from tests.helpers import FakePorts

BTC = "BTC/USD:USD"
T0 = 1_800_000_000_000
MARKET = MarketSpec(symbol=BTC, exchange_id="PF_XBTUSD", amount_step=Decimal("0.0001"), price_tick=Decimal(1),
                    min_amount=Decimal("0.0001"))


def make_trader(ports: FakePorts | None = None, bootstrap: SymbolBootstrap | None = None, synced: bool = True,
                **settings) -> SymbolTrader:
    trader = SymbolTrader(
        market=MARKET,
        strategy=ScriptedStrategy(ScriptedParams(period=4, hold=2)),
        settings=SymbolSettings(**settings),
        ports=ports or FakePorts(),
        bootstrap=bootstrap or SymbolBootstrap(symbol=BTC, recent_hashes=frozenset(), open_intents=(),
                                               control=ControlRecord(symbol=BTC)),
    )
    if synced:
        trader.on_position_sync(PositionSync(position=Position.flat(BTC), seq=0))
    return trader


def sig(kind: SignalKind = SignalKind.ENTER_LONG, t: int = T0, price: int = 50_000) -> Signal:
    return Signal(symbol=BTC, kind=kind, candle_time=t, price=Decimal(price))


def update(trader: SymbolTrader, state: OrderState, filled: str = "0", seq: int = 10) -> None:
    order = next(iter(trader.orders.values()))
    trader.on_order_update(OrderUpdate(intent_hash=order.intent_hash, client_order_id=order.client_order_id,
                                       symbol=BTC, side=order.side, state=state, filled=Decimal(filled), seq=seq))


def test_entry_is_sized_from_notional_claimed_and_sent() -> None:
    ports = FakePorts()
    decision = make_trader(ports, order_notional=Decimal(100)).on_signal(sig())
    assert decision.accepted
    intent = ports.placed[0].intent
    assert intent.amount == Decimal("0.002") and intent.side is Side.BUY and not intent.reduce_only
    assert intent.client_order_id == client_order_id_for(intent.intent_hash)
    assert ports.claimed == {intent.intent_hash}
    assert ports.risk_requests[0].notional == Decimal("100.000")


def test_guard_order_paused_before_duplicate() -> None:
    ports = FakePorts()
    trader = make_trader(ports)
    trader.set_paused(True)
    assert trader.on_signal(sig()).reason is Reason.PAUSED
    trader.set_paused(False)
    assert trader.on_signal(sig()).reason is Reason.DUPLICATE_INTENT  # the paused signal is not traded later
    assert ports.placed == []


def test_not_ready_until_the_first_position_sync() -> None:
    ports = FakePorts()
    trader = make_trader(ports, synced=False)
    assert trader.status().state is SymbolState.SYNCING
    assert trader.on_signal(sig()).reason is Reason.NOT_READY
    trader.on_position_sync(PositionSync(position=Position.flat(BTC), seq=1))
    assert trader.on_signal(sig(t=T0 + 60_000)).accepted


def test_pyramiding_on_allows_adding_but_never_reversing() -> None:
    ports = FakePorts()
    trader = make_trader(ports, pyramiding=True)
    trader.on_position_sync(PositionSync(position=Position(symbol=BTC, side=PositionSide.LONG,
                                                          contracts=Decimal("0.002")), seq=5))
    assert trader.on_signal(sig(SignalKind.ENTER_LONG)).accepted
    update(trader, OrderState.FILLED, "0.002")
    assert trader.on_signal(sig(SignalKind.ENTER_SHORT, t=T0 + 60_000)).reason is Reason.POSITION_OPEN


def test_exit_sells_the_whole_effective_position_reduce_only() -> None:
    ports = FakePorts()
    trader = make_trader(ports)
    trader.on_signal(sig())
    update(trader, OrderState.FILLED, "0.002", seq=3)  # filled; no sync yet
    decision = trader.on_signal(sig(SignalKind.EXIT, t=T0 + 60_000))
    assert decision.accepted
    intent = ports.placed[-1].intent
    assert intent.reduce_only and intent.side is Side.SELL and intent.amount == Decimal("0.002")


def test_exit_with_no_position_is_refused() -> None:
    assert make_trader().on_signal(sig(SignalKind.EXIT)).reason is Reason.NO_POSITION


def test_second_exit_while_the_first_is_in_flight_is_pending() -> None:
    ports = FakePorts()
    trader = make_trader(ports)
    trader.on_position_sync(PositionSync(position=Position(symbol=BTC, side=PositionSide.SHORT,
                                                          contracts=Decimal(1)), seq=1))
    assert trader.on_signal(sig(SignalKind.EXIT)).accepted
    assert ports.placed[-1].intent.side is Side.BUY
    assert trader.on_signal(sig(SignalKind.EXIT, t=T0 + 60_000)).reason is Reason.ORDER_PENDING


def test_fills_count_until_a_newer_sync_includes_them() -> None:
    trader = make_trader()
    trader.on_signal(sig())
    update(trader, OrderState.FILLED, "0.002", seq=7)
    assert trader.effective_contracts() == Decimal("0.002")
    trader.on_position_sync(PositionSync(position=Position.flat(BTC), seq=6))  # older than the fill
    assert trader.effective_contracts() == Decimal("0.002")
    trader.on_position_sync(PositionSync(position=Position(symbol=BTC, side=PositionSide.LONG,
                                                          contracts=Decimal("0.002")), seq=8))
    assert trader.effective_contracts() == Decimal("0.002")  # not counted twice
    assert trader.orders == {}  # the finished order left the pending set


def test_risk_denied_is_recorded_with_the_portfolio_detail() -> None:
    ports = FakePorts(grant=False)
    decision = make_trader(ports).on_signal(sig())
    assert decision.reason is Reason.RISK_LIMIT and decision.detail == "test limit"
    assert ports.claimed == set() and ports.placed == []


def test_duplicate_claim_releases_the_risk_reservation() -> None:
    ports = FakePorts()
    h = intent_hash(BTC, T0, SignalKind.ENTER_LONG, Decimal(100))
    ports.claimed.add(h)  # claimed by an earlier run whose memory is gone
    decision = make_trader(ports).on_signal(sig())
    assert decision.reason is Reason.DUPLICATE_INTENT
    assert [r.intent_hash for r in ports.released] == [h]


def test_database_failure_means_no_order() -> None:
    ports = FakePorts()
    ports.fail_claim = OSError("database or disk is full")
    decision = make_trader(ports).on_signal(sig())
    assert decision.reason is Reason.PERSISTENCE_UNAVAILABLE and "disk is full" in decision.detail
    assert ports.placed == [] and len(ports.released) == 1


def test_size_below_the_minimum_is_refused() -> None:
    decision = make_trader(order_notional=Decimal(1)).on_signal(sig())
    assert decision.reason is Reason.SIZE_TOO_SMALL


def test_bootstrap_restores_hashes_unfinished_orders_and_control_state() -> None:
    h = intent_hash(BTC, T0, SignalKind.ENTER_LONG, Decimal(100))
    record = IntentRecord(intent_hash=h, client_order_id=client_order_id_for(h), symbol=BTC,
                          kind=SignalKind.ENTER_LONG, side=Side.BUY, candle_time=T0, reduce_only=False,
                          amount=Decimal("0.002"), price=Decimal(50_000), notional=Decimal(100),
                          order_type="market", state=OrderState.SUBMITTED, created_at=T0, updated_at=T0)
    bootstrap = SymbolBootstrap(symbol=BTC, recent_hashes=frozenset({h}), open_intents=(record,),
                                control=ControlRecord(symbol=BTC, halted=True, reason="operator"))
    ports = FakePorts()
    trader = make_trader(ports, bootstrap=bootstrap)
    assert trader.status().state is SymbolState.HALTED
    assert trader.on_signal(sig()).reason is Reason.DUPLICATE_INTENT
    trader.set_halted(False)
    assert trader.status().state is SymbolState.BLOCKED
    assert trader.on_signal(sig(t=T0 + 60_000)).reason is Reason.ORDER_UNRESOLVED
    assert trader.on_signal(sig(SignalKind.EXIT, t=T0 + 60_000)).reason is Reason.NO_POSITION


def test_stale_and_repeated_order_updates_change_nothing() -> None:
    trader = make_trader()
    trader.on_signal(sig())
    update(trader, OrderState.ACCEPTED, seq=2)
    update(trader, OrderState.SUBMITTED, seq=1)  # arrives late
    assert next(iter(trader.orders.values())).state is OrderState.ACCEPTED
    order = next(iter(trader.orders.values()))
    filled = OrderUpdate(intent_hash=order.intent_hash, client_order_id=order.client_order_id, symbol=BTC,
                         side=order.side, state=OrderState.FILLED, filled=Decimal("0.002"), seq=3)
    trader.on_order_update(filled)
    trader.on_order_update(filled)  # repeated
    assert trader.effective_contracts() == Decimal("0.002")


def candle(t: int, close: int = 100) -> Candle:
    c = Decimal(close)
    return Candle(symbol=BTC, timeframe="1m", open_time=t, open=c, high=c, low=c, close=c)


def test_candles_drive_the_strategy_only_when_live_and_new() -> None:
    ports = FakePorts()
    trader = make_trader(ports, order_notional=Decimal(100))
    entry_time = 4 * 60_000 * 7_500_000  # index divisible by period 4 and even cycle: ENTER_LONG
    assert trader.on_candles(Candles(symbol=BTC, candles=(candle(entry_time),), live=False)) is None
    assert ports.placed == []  # history is never traded
    assert trader.on_candles(Candles(symbol=BTC, candles=(candle(entry_time),), live=True)) is None  # not new
    decision = trader.on_candles(Candles(symbol=BTC, candles=(candle(entry_time + 4 * 60_000 * 2),), live=True))
    assert decision is not None and decision.accepted and decision.signal.kind is SignalKind.ENTER_LONG


@pytest.mark.parametrize("retention_h", [1])
def test_purge_forgets_only_old_in_memory_hashes(retention_h: int) -> None:
    now = [T0]
    trader = make_trader(retention_ms=retention_h * 3_600_000)
    trader.clock = lambda: now[0]
    trader.on_signal(sig(SignalKind.EXIT))
    now[0] += retention_h * 3_600_000 + 1
    trader.on_signal(sig(SignalKind.EXIT, t=T0 + 60_000))
    trader.purge_seen()
    assert len(trader.seen) == 1


class ReadClock:
    """An exchange clock like exchange.clock.ServerClock: peek answers None until it has been read."""

    def __init__(self, now: int | None) -> None:
        self.now = now

    def peek(self) -> int | None:
        return self.now

    def __call__(self) -> int:  # a claim must never make the clock ask the exchange
        raise AssertionError("the claim asked the exchange for its time")


def test_a_claim_carries_the_first_sends_process_before_on_the_exchange_clock() -> None:
    ports = FakePorts()
    trader = make_trader(ports, process_before_ms=5_000)
    trader.exchange_clock = ReadClock(T0 + 123)
    assert trader.on_signal(sig()).accepted
    intent = ports.placed[0].intent
    assert (intent.sent_at, intent.process_before) == (T0 + 123, T0 + 5_123)


def test_without_a_clock_reading_the_claim_leaves_the_send_to_the_gateway() -> None:
    ports = FakePorts()
    trader = make_trader(ports, process_before_ms=5_000)
    trader.exchange_clock = ReadClock(None)
    assert trader.on_signal(sig()).accepted
    intent = ports.placed[0].intent
    assert intent.sent_at is None and intent.process_before is None


def test_l1_cache_is_bounded_and_the_durable_claim_still_refuses_an_old_duplicate() -> None:
    ports = FakePorts(grant=False)  # risk refuses: each signal is only remembered
    trader = make_trader(ports, seen_max=10)
    for i in range(25):
        trader.on_signal(sig(t=T0 + i * 60_000))
    assert len(trader.seen) == 10
    ports.grant = True
    first = sig(t=T0 + 30 * 60_000)
    assert trader.on_signal(first).accepted
    update(trader, OrderState.REJECTED)  # the order ends; its hash stays claimed in the database
    for i in range(12):  # push the claimed hash out of the cache
        ports.grant = False
        trader.on_signal(sig(t=T0 + (40 + i) * 60_000))
    assert intent_hash(BTC, first.candle_time, first.kind, Decimal(100)) not in trader.seen
    ports.grant = True
    decision = trader.on_signal(first)
    assert not decision.accepted and decision.reason is Reason.DUPLICATE_INTENT
    assert len(ports.placed) == 1
