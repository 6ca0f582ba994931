"""The trader when the exchange's view is in doubt: mismatches, undecided orders, orders taken back, flatten."""

from __future__ import annotations

from decimal import Decimal

from actors.symbol import ClaimUnanswered
from messages import (
    ExchangeMismatch,
    OrderBlocked,
    OrderState,
    OrderUpdate,
    Position,
    PositionSide,
    PositionSync,
    Reason,
    Resolve,
    Side,
    SignalKind,
    SymbolState,
)
from tests.actors.test_symbol_trader import BTC, T0, make_trader, sig
from tests.helpers import FakePorts


def long(contracts: str) -> Position:
    return Position(symbol=BTC, side=PositionSide.LONG, contracts=Decimal(contracts))


def report(trader, state: OrderState, filled: str, seq: int, cid: str | None = None) -> None:
    order = trader.orders[cid] if cid else next(iter(trader.orders.values()))
    trader.on_order_update(OrderUpdate(intent_hash=order.intent_hash, client_order_id=order.client_order_id,
                                       symbol=BTC, side=order.side, state=state, amount=order.amount,
                                       filled=Decimal(filled), seq=seq))


def test_a_sync_that_drops_our_filled_position_is_not_believed_and_blocks_entries() -> None:
    ports = FakePorts()
    trader = make_trader(ports)
    assert trader.on_signal(sig()).accepted
    report(trader, OrderState.FILLED, "0.002", seq=5)
    trader.on_position_sync(PositionSync(position=Position.flat(BTC), seq=6))  # the answer omits our position
    assert trader.effective_contracts() == Decimal("0.002")  # our fills still count
    assert trader.on_signal(sig(t=T0 + 60_000)).reason is Reason.POSITION_OPEN  # L3 on what we know, not the answer
    assert trader.status().state is SymbolState.BLOCKED and "resolve" in trader.status().blocked
    assert any(e.reason is Reason.EXCHANGE_MISMATCH for e in ports.events)
    trader.on_position_sync(PositionSync(position=long("0.002"), seq=7))  # a consistent view returns
    assert trader.status().state is SymbolState.TRADING and trader.status().blocked == ""


def test_with_pyramiding_a_contradicted_position_refuses_entries_as_a_mismatch() -> None:
    trader = make_trader(pyramiding=True)
    assert trader.on_signal(sig()).accepted
    report(trader, OrderState.FILLED, "0.002", seq=5)
    trader.on_position_sync(PositionSync(position=Position.flat(BTC), seq=6))
    decision = trader.on_signal(sig(t=T0 + 60_000))
    assert decision.reason is Reason.EXCHANGE_MISMATCH and "resolve" in decision.detail


def test_a_sync_that_shows_more_than_we_know_is_taken_it_only_makes_l3_stricter() -> None:
    trader = make_trader()
    trader.on_position_sync(PositionSync(position=long("0.5"), seq=3))
    assert trader.position is not None and trader.position.contracts == Decimal("0.5")
    assert trader.on_signal(sig()).reason is Reason.POSITION_OPEN


def test_resolve_takes_the_next_sync_as_true_after_the_operator_checked() -> None:
    trader = make_trader()
    trader.on_position_sync(PositionSync(position=long("0.002"), seq=1))
    trader.on_position_sync(PositionSync(position=Position.flat(BTC), seq=2))  # closed outside: not believed
    assert trader.status().state is SymbolState.BLOCKED
    assert "position view" in trader.resolve(Resolve(symbol=BTC, source="test"))
    trader.on_position_sync(PositionSync(position=Position.flat(BTC), seq=3))
    assert trader.status().state is SymbolState.TRADING and trader.effective_contracts() == 0


def test_mismatch_and_blocked_reports_refuse_entries_until_cleared() -> None:
    trader = make_trader()
    trader.on_mismatch(ExchangeMismatch(symbol=BTC, key="openorders:x", detail="openorders omits our order x"))
    assert trader.on_signal(sig()).reason is Reason.EXCHANGE_MISMATCH
    trader.on_mismatch(ExchangeMismatch(symbol=BTC, key="openorders:x"))
    trader.on_blocked(OrderBlocked(symbol=BTC, client_order_id="y", detail="cannot look up y; `resolve` frees it"))
    assert trader.status().blocked.startswith("cannot look up y")
    assert trader.on_signal(sig(t=T0 + 60_000)).reason is Reason.EXCHANGE_MISMATCH
    trader.on_blocked(OrderBlocked(symbol=BTC, client_order_id="y"))
    assert trader.on_signal(sig(t=T0 + 120_000)).accepted


def test_an_order_taken_back_after_its_rejection_counts_its_fills() -> None:
    trader = make_trader()
    assert trader.on_signal(sig()).accepted
    cid = next(iter(trader.orders))
    report(trader, OrderState.REJECTED, "0", seq=4)
    assert trader.orders == {}
    intent_hash = next(iter(trader.seen))
    trader.on_order_update(OrderUpdate(intent_hash=str(intent_hash), client_order_id=cid, symbol=BTC, side=Side.BUY,
                                       state=OrderState.FILLED, amount=Decimal("0.002"), filled=Decimal("0.002"),
                                       seq=9))
    assert trader.effective_contracts() == Decimal("0.002")
    assert trader.on_signal(sig(t=T0 + 60_000)).reason is Reason.POSITION_OPEN
    # the same report again changes nothing (FILLED -> FILLED is not in the transition table)
    trader.on_order_update(OrderUpdate(intent_hash=str(intent_hash), client_order_id=cid, symbol=BTC, side=Side.BUY,
                                       state=OrderState.FILLED, amount=Decimal("0.002"), filled=Decimal("0.002"),
                                       seq=10))
    assert trader.effective_contracts() == Decimal("0.002")


def test_a_risk_answer_that_times_out_gives_the_reservation_back() -> None:
    ports = FakePorts()
    ports.fail_risk = ClaimUnanswered("no answer in 5s", at_portfolio=True)  # what ActorPorts raises then
    decision = make_trader(ports).on_signal(sig())
    assert decision.reason is Reason.RISK_UNAVAILABLE
    assert [r.intent_hash for r in ports.released] == [ports.risk_requests[0].intent_hash]


def test_a_claim_that_times_out_is_abandoned_so_it_is_never_sent_later() -> None:
    ports = FakePorts()
    ports.fail_claim = ClaimUnanswered("no answer in 5s", at_portfolio=False)  # reserved, the claim unanswered
    decision = make_trader(ports).on_signal(sig())
    assert decision.reason is Reason.PERSISTENCE_UNAVAILABLE and ports.placed == []
    assert len(ports.abandoned) == 1 and ports.released  # abandoned and its risk given back


def test_flatten_on_a_flat_symbol_says_nothing_to_flatten() -> None:
    ports = FakePorts()
    decision = make_trader(ports).flatten("test")
    assert decision.reason is Reason.NO_POSITION and "nothing to flatten" in decision.detail
    assert ports.placed == []


def test_flatten_with_an_exit_in_flight_says_so_and_sends_nothing_more() -> None:
    ports = FakePorts()
    trader = make_trader(ports)
    trader.on_position_sync(PositionSync(position=long("0.002"), seq=1))
    assert trader.on_signal(sig(SignalKind.EXIT)).accepted
    decision = trader.flatten("test")
    assert decision.reason is Reason.ORDER_PENDING and "already in flight" in decision.detail
    assert len(ports.placed) == 1


def test_flatten_cancels_a_resting_exit_and_replaces_it_once_the_cancel_is_proven() -> None:
    ports = FakePorts()
    trader = make_trader(ports, order_type="limit")
    trader.on_position_sync(PositionSync(position=long("0.002"), seq=1))
    assert trader.on_signal(sig(SignalKind.EXIT)).accepted
    exit_cid = ports.placed[0].intent.client_order_id
    report(trader, OrderState.ACCEPTED, "0", seq=2, cid=exit_cid)
    decision = trader.flatten("test")
    assert "cancelling resting exit" in decision.detail
    assert [c.client_order_id for c in ports.cancels] == [exit_cid] and len(ports.placed) == 1
    report(trader, OrderState.CANCELED, "0", seq=3, cid=exit_cid)
    assert len(ports.placed) == 2
    replacement = ports.placed[1].intent
    assert replacement.reduce_only and replacement.order_type == "market" and replacement.amount == Decimal("0.002")


def test_a_halted_symbol_with_its_strategy_off_ignores_candles_but_flattens() -> None:
    ports = FakePorts()
    trader = make_trader(ports)
    trader.strategy_off = True
    trader.on_position_sync(PositionSync(position=long("0.002"), seq=1))
    assert trader.flatten("test").accepted
    assert trader.status().strategy_off


def test_fills_of_a_recovered_order_timed_before_the_first_sync_are_not_counted_twice() -> None:
    from messages import ControlRecord, Fill, IntentRecord, SymbolBootstrap

    record = IntentRecord(intent_hash="a" * 64, client_order_id="c-1", symbol=BTC, kind=SignalKind.ENTER_LONG,
                          side=Side.BUY, candle_time=T0, reduce_only=False, amount=Decimal("0.002"),
                          price=Decimal(50_000), notional=Decimal(100), order_type="market",
                          state=OrderState.UNKNOWN, created_at=T0, updated_at=T0)
    bootstrap = SymbolBootstrap(symbol=BTC, recent_hashes=frozenset(), open_intents=(record,),
                                control=ControlRecord(symbol=BTC))
    trader = make_trader(bootstrap=bootstrap, synced=False)
    # the first sync after the restart already holds the fill that happened while the bot was down
    trader.on_position_sync(PositionSync(position=long("0.002"), seq=3, exchange_time=T0 + 10_000))
    fill = Fill(fill_id="f-1", symbol=BTC, side=Side.BUY, amount=Decimal("0.002"), price=Decimal(50_000),
                client_order_id="c-1", time=T0 + 1_000)
    trader.on_order_update(OrderUpdate(intent_hash="a" * 64, client_order_id="c-1", symbol=BTC, side=Side.BUY,
                                       state=OrderState.FILLED, amount=Decimal("0.002"), filled=Decimal("0.002"),
                                       fills=(fill,), seq=5))
    assert trader.effective_contracts() == Decimal("0.002")
    trader.on_position_sync(PositionSync(position=long("0.002"), seq=6, exchange_time=T0 + 20_000))
    assert trader.status().state is SymbolState.TRADING  # no false "less open than our fills" mismatch


def test_a_fill_after_the_sync_counts_on_top_of_it() -> None:
    from messages import Fill

    trader = make_trader()
    trader.on_position_sync(PositionSync(position=Position.flat(BTC), seq=1, exchange_time=T0))
    assert trader.on_signal(sig()).accepted
    order = next(iter(trader.orders.values()))
    fill = Fill(fill_id="f-2", symbol=BTC, side=Side.BUY, amount=Decimal("0.002"), price=Decimal(50_000),
                client_order_id=order.client_order_id, time=T0 + 5_000)
    trader.on_order_update(OrderUpdate(intent_hash=order.intent_hash, client_order_id=order.client_order_id,
                                       symbol=BTC, side=Side.BUY, state=OrderState.FILLED, amount=order.amount,
                                       filled=Decimal("0.002"), fills=(fill,), seq=4))
    assert trader.effective_contracts() == Decimal("0.002")
