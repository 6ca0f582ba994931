"""Protective orders (stop-loss, take-profit) decided by the symbol trader: plain class, fake ports, no threads."""

from __future__ import annotations

from decimal import Decimal

import pytest

from actors.gateway import Evidence, Tracked, conclude
from actors.protection import ProtectionSettings, protective_hash, trigger_price
from actors.symbol import SymbolSettings, SymbolTrader
from exchange.reports import ExchangeStatus, HistoryReport, OrderStatusReport
from messages import (
    CancelOrder,
    ControlRecord,
    EventKind,
    Fill,
    IntentRecord,
    MarketSpec,
    OrderIntent,
    OrderState,
    OrderUpdate,
    Position,
    PositionSide,
    PositionSync,
    Reason,
    Resolve,
    Side,
    Signal,
    SignalKind,
    SymbolBootstrap,
    client_order_id_for,
    is_advance,
)
from strategies import ScriptedParams, ScriptedStrategy
from tests.helpers import FakePorts

BTC = "BTC/USD:USD"
T0 = 1_800_000_000_000
MARKET = MarketSpec(symbol=BTC, exchange_id="PF_XBTUSD", amount_step=Decimal("0.0001"), price_tick=Decimal("0.5"),
                    min_amount=Decimal("0.0001"))
ON = ProtectionSettings(enabled=True, stop_loss_pct=Decimal(2), take_profit_pct=Decimal(4), trigger_signal="mark")


def make_trader(ports: FakePorts, protection: ProtectionSettings = ON, bootstrap: SymbolBootstrap | None = None,
                position: Position | None = None) -> SymbolTrader:
    trader = SymbolTrader(
        market=MARKET, strategy=ScriptedStrategy(ScriptedParams(period=4, hold=2)),
        settings=SymbolSettings(order_notional=Decimal(1000), protection=protection), ports=ports,
        bootstrap=bootstrap or SymbolBootstrap(symbol=BTC, recent_hashes=frozenset(), open_intents=(),
                                               control=ControlRecord(symbol=BTC)),
    )
    trader.on_position_sync(PositionSync(position=position or Position.flat(BTC), seq=0))
    return trader


def report(trader: SymbolTrader, cid: str, state: OrderState, filled: str, price: str = "50000", seq: int = 10,
           fill_id: str = "") -> None:
    order = trader.orders.get(cid)
    assert order is not None, f"{cid} is not tracked"
    fills = (Fill(fill_id=fill_id or f"f-{cid}-{filled}", symbol=BTC, side=order.side,
                  amount=Decimal(filled) - order.filled, price=Decimal(price), client_order_id=cid),) \
        if Decimal(filled) > order.filled else ()
    trader.on_order_update(OrderUpdate(intent_hash=order.intent_hash, client_order_id=cid, symbol=BTC,
                                       side=order.side, state=state, filled=Decimal(filled),
                                       average_price=Decimal(price) if fills else None, fills=fills, seq=seq))


def enter(trader: SymbolTrader, ports: FakePorts) -> str:
    decision = trader.on_signal(Signal(symbol=BTC, kind=SignalKind.ENTER_LONG, candle_time=T0,
                                       price=Decimal(50_000)))
    assert decision.accepted, decision
    assert decision.intent is not None
    return decision.intent.client_order_id


def protective(ports: FakePorts, kind: SignalKind) -> list:
    return [p.intent for p in ports.placed if p.intent.kind is kind]


def protected_long(ports: FakePorts, *, resting: bool = True) -> tuple[SymbolTrader, OrderIntent, OrderIntent]:
    """A long of 0.02 whose entry filled, with its stop-loss and take-profit claimed (and resting, if asked)."""
    trader = make_trader(ports)
    report(trader, enter(trader, ports), OrderState.FILLED, "0.02")
    (stop,), (take,) = protective(ports, SignalKind.STOP_LOSS), protective(ports, SignalKind.TAKE_PROFIT)
    if resting:
        report(trader, stop.client_order_id, OrderState.ACCEPTED, "0", seq=11)
        report(trader, take.client_order_id, OrderState.ACCEPTED, "0", seq=11)
    return trader, stop, take


def test_an_entry_that_fills_gets_a_reduce_only_stop_and_take_profit_sized_to_the_fill() -> None:
    ports = FakePorts()
    trader = make_trader(ports)
    entry = enter(trader, ports)
    assert not protective(ports, SignalKind.STOP_LOSS)  # nothing before a fill: no position to protect
    report(trader, entry, OrderState.FILLED, "0.02", price="50000")
    (stop,), (take,) = protective(ports, SignalKind.STOP_LOSS), protective(ports, SignalKind.TAKE_PROFIT)
    for intent in (stop, take):
        assert intent.reduce_only and intent.side is Side.SELL and intent.amount == Decimal("0.02")
        assert intent.trigger_signal == "mark" and intent.client_order_id == client_order_id_for(intent.intent_hash)
    assert (stop.order_type, stop.trigger_price) == ("stop", Decimal(49_000))
    assert (take.order_type, take.trigger_price) == ("take_profit", Decimal(52_000))
    entry_hash = trader.anchor.intent_hash if trader.anchor else ""
    assert stop.intent_hash == protective_hash(entry_hash, SignalKind.STOP_LOSS, 0)
    view = trader.status()
    assert view.protection_enabled and {p.kind for p in view.protection} == {"STOP_LOSS", "TAKE_PROFIT"}


def test_a_partial_fill_is_protected_as_far_as_it_filled_and_resized_as_more_fills() -> None:
    ports = FakePorts()
    trader = make_trader(ports)
    entry = enter(trader, ports)
    report(trader, entry, OrderState.PARTIALLY_FILLED, "0.005")
    (stop,) = protective(ports, SignalKind.STOP_LOSS)
    assert stop.amount == Decimal("0.005")
    report(trader, stop.client_order_id, OrderState.ACCEPTED, "0", seq=11)
    report(trader, entry, OrderState.FILLED, "0.02", seq=12)
    assert len(protective(ports, SignalKind.STOP_LOSS)) == 1  # resized, never a second stop
    resized = {r.client_order_id: r.amount for r in ports.resizes}
    assert resized[stop.client_order_id] == Decimal("0.02")
    count = len(ports.resizes)
    trader.protect()  # asked once per change, not at every look
    assert len(ports.resizes) == count


def test_a_stop_filled_on_the_exchange_cancels_the_take_profit_and_says_so() -> None:
    ports = FakePorts()
    trader, stop, take = protected_long(ports)
    report(trader, stop.client_order_id, OrderState.FILLED, "0.02", price="48990", seq=13)
    assert trader.effective_contracts() == 0
    assert [c.client_order_id for c in ports.cancels] == [take.client_order_id]
    closed = [e for e in ports.events if e.kind is EventKind.PROTECTION]
    assert closed and "closed by stop-loss on the exchange" in closed[0].detail
    assert len(protective(ports, SignalKind.STOP_LOSS)) == 1  # flat: no new stop


def test_a_strategy_exit_is_not_blocked_by_the_stop_and_cancels_both_once_flat() -> None:
    ports = FakePorts()
    trader, stop, take = protected_long(ports)
    decision = trader.on_signal(Signal(symbol=BTC, kind=SignalKind.EXIT, candle_time=T0 + 60_000,
                                       price=Decimal(50_100)))
    assert decision.accepted and decision.intent is not None and decision.intent.reduce_only
    assert decision.intent.amount == Decimal("0.02")  # the whole position, no more: never a reverse position
    report(trader, decision.intent.client_order_id, OrderState.FILLED, "0.02", seq=12)
    assert {c.client_order_id for c in ports.cancels} == {stop.client_order_id, take.client_order_id}


def test_no_entry_while_a_closed_positions_protective_order_is_still_being_cancelled() -> None:
    ports = FakePorts()
    trader, stop, take = protected_long(ports)
    report(trader, stop.client_order_id, OrderState.FILLED, "0.02", seq=12)
    decision = trader.on_signal(Signal(symbol=BTC, kind=SignalKind.ENTER_LONG, candle_time=T0 + 120_000,
                                       price=Decimal(50_000)))
    assert decision.reason is Reason.ORDER_PENDING and "take-profit" in decision.detail
    report(trader, take.client_order_id, OrderState.CANCELED, "0", seq=13)
    assert trader.on_signal(Signal(symbol=BTC, kind=SignalKind.ENTER_LONG, candle_time=T0 + 180_000,
                                   price=Decimal(50_000))).accepted


def test_a_cancelled_stop_is_replaced_by_the_next_generation_while_the_position_is_open() -> None:
    ports = FakePorts()
    trader, stop, _ = protected_long(ports)
    ports.states[stop.intent_hash] = OrderState.CANCELED  # e.g. by the dead man's switch, or by hand
    report(trader, stop.client_order_id, OrderState.CANCELED, "0", seq=12)
    stops = protective(ports, SignalKind.STOP_LOSS)
    assert len(stops) == 2 and stops[1].intent_hash == protective_hash(stop.intent_hash and trader.anchor.intent_hash,
                                                                        SignalKind.STOP_LOSS, 1)


def test_after_a_restart_the_same_stop_is_claimed_not_a_second_one() -> None:
    """A restarted actor that lost track computes the stored stop's hash: refused while it lives, so never two."""
    ports = FakePorts()
    first = make_trader(ports)
    entry = enter(first, ports)
    report(first, entry, OrderState.FILLED, "0.02")
    (stop,) = protective(ports, SignalKind.STOP_LOSS)
    ports.states[stop.intent_hash] = OrderState.ACCEPTED
    anchor = IntentRecord(**{name: getattr(ports.placed[0].intent, name) for name in IntentRecord.INTENT_FIELDS},
                          state=OrderState.FILLED, filled=Decimal("0.02"), updated_at=T0)
    bootstrap = SymbolBootstrap(symbol=BTC, recent_hashes=frozenset(), open_intents=(), last_entry=anchor,
                                control=ControlRecord(symbol=BTC))
    second = make_trader(ports, bootstrap=bootstrap, position=Position(
        symbol=BTC, side=PositionSide.LONG, contracts=Decimal("0.02"), entry_price=Decimal(50_000)))
    assert len(protective(ports, SignalKind.STOP_LOSS)) == 1  # the claim was refused: the stored stop is the one
    tracked = second.orders[stop.client_order_id]
    assert tracked.protective and tracked.recovered


def test_a_refused_stop_is_asked_again_a_bounded_number_of_times_then_status_says_the_position_is_unprotected(
) -> None:
    ports = FakePorts()
    clock = [T0]
    settings = ProtectionSettings(enabled=True, stop_loss_pct=Decimal(2), take_profit_pct=None, max_refusals=2,
                                  retry_ms=1000)
    trader = make_trader(ports, protection=settings)
    trader.clock = lambda: clock[0]
    entry = enter(trader, ports)
    report(trader, entry, OrderState.FILLED, "0.02")
    for attempt in range(2):
        stop = protective(ports, SignalKind.STOP_LOSS)[-1]
        ports.states[stop.intent_hash] = OrderState.REJECTED
        report(trader, stop.client_order_id, OrderState.REJECTED, "0", seq=20 + attempt)
        if attempt == 0:
            assert len(protective(ports, SignalKind.STOP_LOSS)) == 1  # not at once: after retry_ms
            clock[0] += 1000
            trader.protect()
    assert len(protective(ports, SignalKind.STOP_LOSS)) == 2
    clock[0] += 5000
    trader.protect()
    assert len(protective(ports, SignalKind.STOP_LOSS)) == 2
    assert "NOT protected" in trader.status().protection_problem and "flatten" in trader.status().protection_problem


def test_protection_off_places_nothing_and_status_says_off() -> None:
    ports = FakePorts()
    trader = make_trader(ports, protection=ProtectionSettings(enabled=False))
    entry = enter(trader, ports)
    report(trader, entry, OrderState.FILLED, "0.02")
    assert [p.intent.kind for p in ports.placed] == [SignalKind.ENTER_LONG]
    assert not trader.status().protection_enabled


def test_a_position_this_system_did_not_open_gets_no_stop_and_status_says_why() -> None:
    ports = FakePorts()
    trader = make_trader(ports, position=Position(symbol=BTC, side=PositionSide.LONG, contracts=Decimal(1),
                                                  entry_price=Decimal(50_000)))
    assert not ports.placed
    assert "not opened by this system" in trader.status().protection_problem


def test_a_cancel_not_yet_effective_is_asked_again_after_the_retry_interval_only() -> None:
    ports = FakePorts()
    clock = [T0]
    trader = make_trader(ports, protection=ProtectionSettings(enabled=True, stop_loss_pct=Decimal(2),
                                                              take_profit_pct=None, retry_ms=1000))
    trader.clock = lambda: clock[0]
    entry = enter(trader, ports)
    report(trader, entry, OrderState.FILLED, "0.02")
    (stop,) = protective(ports, SignalKind.STOP_LOSS)
    trader.on_position_sync(PositionSync(position=Position(symbol=BTC, side=PositionSide.LONG, contracts=Decimal(
        "0.02"), entry_price=Decimal(50_000)), seq=20))
    trader.resolve(Resolve(symbol=BTC, source="test"))  # closed by hand on the exchange; the operator says so
    trader.on_position_sync(PositionSync(position=Position.flat(BTC), seq=50))
    assert ports.cancels == [CancelOrder(symbol=BTC, client_order_id=stop.client_order_id)]
    trader.protect()
    assert len(ports.cancels) == 1
    clock[0] += 1000
    trader.protect()
    assert len(ports.cancels) == 2


@pytest.mark.parametrize(("kind", "long", "expected"), [
    (SignalKind.STOP_LOSS, True, Decimal("97.5")),  # 98.01 down to the tick below
    (SignalKind.TAKE_PROFIT, True, Decimal("102.5")),  # 101.99 + ... up to the tick above
    (SignalKind.STOP_LOSS, False, Decimal("102.5")),
    (SignalKind.TAKE_PROFIT, False, Decimal("97.5")),
])
def test_trigger_prices_sit_on_the_tick_grid_rounded_away_from_the_entry(kind: SignalKind, long: bool,
                                                                         expected: Decimal) -> None:
    assert trigger_price(kind, long, Decimal(100), Decimal("2.2"), Decimal("0.5")) == expected


def test_a_trigger_price_at_or_below_zero_is_none() -> None:
    assert trigger_price(SignalKind.STOP_LOSS, True, Decimal(1), Decimal(2), Decimal("0.5")) is None


def _stop_intent() -> OrderIntent:
    h = protective_hash("a" * 64, SignalKind.STOP_LOSS, 0)
    return OrderIntent(intent_hash=h, client_order_id=client_order_id_for(h), symbol=BTC, kind=SignalKind.STOP_LOSS,
                       side=Side.SELL, candle_time=T0, notional=Decimal(0), amount=Decimal("0.02"),
                       price=Decimal(49_000), reduce_only=True, order_type="stop", trigger_price=Decimal(49_000),
                       trigger_signal="mark")


@pytest.mark.parametrize(("before", "expected"), [
    (OrderState.ACCEPTED, OrderState.CANCELED),  # it rested, then was refused when it fired: ended, unfilled
    (OrderState.SUBMITTED, OrderState.REJECTED),  # never placed
])
def test_an_order_that_rested_and_was_refused_when_it_triggered_ends_canceled_not_stuck(
        before: OrderState, expected: OrderState) -> None:
    """Kraken refuses a reduce-only stop that fires with nothing to reduce; ACCEPTED -> REJECTED is not a move the
    order table allows, so calling it REJECTED left the order ACCEPTED for ever (found by the protection soak)."""
    intent = _stop_intent()
    status = OrderStatusReport(exchange_order_id="x1", client_order_id=intent.client_order_id, symbol=BTC,
                               side=Side.SELL, status=ExchangeStatus.REJECTED, filled=Decimal(0),
                               reason="WOULD_NOT_REDUCE_POSITION")
    result = conclude(Tracked(intent=intent, state=before), Evidence(statuses=[status]))
    assert result.state is expected
    assert is_advance(before, expected)


def test_an_unknown_send_found_placed_then_refused_when_it_triggered_ends_canceled() -> None:
    """The send's answer was lost (UNKNOWN); the histories show the trigger placed, then its order refused when it
    fired: it was on the exchange, so it ends CANCELED, never REJECTED ("never placed"; found by the long soak)."""
    intent = _stop_intent()
    placed = HistoryReport(uid="h1", time_ms=T0, name="OrderTriggerPlaced", status=ExchangeStatus.OPEN,
                           exchange_order_id="x1", client_order_id=intent.client_order_id, symbol=BTC,
                           side=Side.SELL, quantity=Decimal("0.02"), filled=Decimal(0), reason="new_user_order")
    refused = HistoryReport(uid="h2", time_ms=T0 + 1, name="OrderRejected", status=ExchangeStatus.REJECTED,
                            exchange_order_id="x1", client_order_id=intent.client_order_id, symbol=BTC,
                            side=Side.SELL, quantity=Decimal("0.02"), filled=Decimal(0), reason="would_not_reduce")
    result = conclude(Tracked(intent=intent, state=OrderState.UNKNOWN), Evidence(history=[placed, refused]))
    assert result.state is OrderState.CANCELED
    only_refused = conclude(Tracked(intent=intent, state=OrderState.UNKNOWN), Evidence(history=[refused]))
    assert only_refused.state is OrderState.REJECTED


def _entry_with_levels(trader: SymbolTrader, stop: str | None, take: str | None):
    return trader.on_signal(Signal(symbol=BTC, kind=SignalKind.ENTER_LONG, candle_time=T0, price=Decimal(50_000),
                                   stop_loss=None if stop is None else Decimal(stop),
                                   take_profit=None if take is None else Decimal(take)))


def test_a_strategys_own_levels_replace_the_configured_distances() -> None:
    ports = FakePorts()
    trader = make_trader(ports)
    decision = _entry_with_levels(trader, "48000.3", "55000")
    assert decision.accepted and decision.intent is not None and decision.intent.stop_loss == Decimal("48000.3")
    report(trader, decision.intent.client_order_id, OrderState.FILLED, "0.02")
    (stop,), (take,) = protective(ports, SignalKind.STOP_LOSS), protective(ports, SignalKind.TAKE_PROFIT)
    assert stop.trigger_price == Decimal("48000.0") and take.trigger_price == Decimal(55_000)  # on the 0.5 grid


def test_a_strategy_level_places_its_kind_even_when_the_config_has_no_distance_for_it() -> None:
    ports = FakePorts()
    trader = make_trader(ports, protection=ProtectionSettings(enabled=True, stop_loss_pct=Decimal(2)))
    decision = _entry_with_levels(trader, None, "51000")
    assert decision.intent is not None
    report(trader, decision.intent.client_order_id, OrderState.FILLED, "0.02")
    assert [p.trigger_price for p in protective(ports, SignalKind.TAKE_PROFIT)] == [Decimal(51_000)]
    assert [p.trigger_price for p in protective(ports, SignalKind.STOP_LOSS)] == [Decimal(49_000)]


@pytest.mark.parametrize(("stop", "take", "words"), [
    ("50500", None, "stop_loss 50500 must be below the entry price"),
    (None, "49000", "take_profit 49000 must be above the entry price"),
    ("-1", None, "not a positive price"),
])
def test_levels_on_the_wrong_side_of_a_long_entry_are_refused(stop: str | None, take: str | None,
                                                             words: str) -> None:
    with pytest.raises(ValueError, match=words):
        Signal(symbol=BTC, kind=SignalKind.ENTER_LONG, candle_time=T0, price=Decimal(50_000),
               stop_loss=None if stop is None else Decimal(stop), take_profit=None if take is None else Decimal(take))


def test_a_strategy_giving_a_bad_level_has_its_signal_refused_never_traded() -> None:
    from messages import Candle, Candles

    class BadLevels(ScriptedStrategy):
        def decide(self, candles, position):
            return SignalKind.ENTER_LONG

        def levels(self, candles, kind):  # a long's stop above its entry
            return candles[-1].close + 100, None

    ports = FakePorts()
    trader = make_trader(ports)
    trader.strategy = BadLevels(ScriptedParams(period=4, hold=2))
    candles = [Candle(symbol=BTC, timeframe="1m", open_time=T0 + i * 60_000, open=Decimal(100), high=Decimal(101),
                      low=Decimal(99), close=Decimal(100), volume=Decimal(1)) for i in range(3)]
    decision = trader.on_candles(Candles(symbol=BTC, candles=tuple(candles), live=True))
    assert decision is not None and decision.reason is Reason.BAD_SIGNAL and "must be below" in decision.detail
    assert ports.placed == []


def test_protection_turned_off_after_a_restart_still_cancels_the_closed_positions_orders() -> None:
    """Stops placed by a run with protection on, then a restart with it off: nothing new is placed, but once the
    position is flat its stop is cancelled (else it would outlive it and block every entry)."""
    ports = FakePorts()
    _, stop, _ = protected_long(ports)
    record = IntentRecord(**{name: getattr(stop, name) for name in IntentRecord.INTENT_FIELDS},
                          state=OrderState.ACCEPTED, updated_at=T0)
    bootstrap = SymbolBootstrap(symbol=BTC, recent_hashes=frozenset(), open_intents=(record,),
                                control=ControlRecord(symbol=BTC))
    restarted = make_trader(ports, protection=ProtectionSettings(enabled=False), bootstrap=bootstrap)
    assert [c.client_order_id for c in ports.cancels] == [stop.client_order_id]
    assert restarted.status().protection_enabled is False
