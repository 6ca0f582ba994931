"""The portfolio actor alone: fake persistence and gateway actors, real symbol actors with fake strategies."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pykka
import pytest

from actors.portfolio import PortfolioActor, PortfolioSettings
from actors.risk import RiskBook, RiskLimits
from actors.supervision import RestartPolicy
from actors.system import make_trader_factory
from messages import (
    Candles,
    ClaimIntent,
    ClaimResult,
    ControlRecord,
    Event,
    EventKind,
    ExchangeOrder,
    GetStatus,
    GetSymbolActors,
    LoadOpenIntents,
    LoadSymbol,
    MarketSpec,
    OrderState,
    OrderUpdate,
    Pause,
    Ping,
    Position,
    PositionSide,
    PositionsSnapshot,
    PositionsUnavailable,
    Reconcile,
    ReconciliationReport,
    RiskRequest,
    SetControl,
    Side,
    Signal,
    SignalKind,
    SymbolBootstrap,
    SymbolState,
    SyncPositions,
)
from tests.conftest import make_config
from tests.helpers import start_recorder, wait_until

BTC, ETH = "BTC/USD:USD", "ETH/USD:USD"
MARKETS = {
    s: MarketSpec(symbol=s, exchange_id=s, amount_step=Decimal("0.001"), price_tick=Decimal("0.1"))
    for s in (BTC, ETH)
}


def persistence_reply(message: Any) -> Any:
    match message:
        case LoadOpenIntents():
            return []
        case LoadSymbol():
            return SymbolBootstrap(symbol=message.symbol, recent_hashes=frozenset(), open_intents=(),
                                   control=ControlRecord(symbol=message.symbol))
        case ClaimIntent():
            return ClaimResult(claimed=True)
        case SetControl():
            return ControlRecord(symbol=message.symbol, paused=bool(message.paused))
    return None


@pytest.fixture
def parts():
    persistence, persistence_inbox = start_recorder(persistence_reply)
    gateway, gateway_inbox = start_recorder()
    config = make_config(trading={"symbols": [BTC, ETH]}, risk={"max_open_positions": 1},
                         supervision={"max_restarts": 1})
    portfolio = PortfolioActor.start(
        markets=MARKETS,
        trader_factory=make_trader_factory(config),
        risk=RiskBook(limits=RiskLimits(1, Decimal(1000), Decimal(5000)), markets=MARKETS),
        restart_policy=RestartPolicy(max_restarts=1, window_s=60, backoff_initial_s=0.01, backoff_max_s=0.01),
        settings=PortfolioSettings(position_sync_interval_s=3600, reconcile_retry_s=0.05),
        persistence=persistence,
        gateway=gateway,
    )
    portfolio.ask(Ping(), timeout=5)
    return portfolio, persistence_inbox, gateway_inbox


def reconciled(portfolio, positions=(), open_orders=()) -> None:
    portfolio.tell(ReconciliationReport(ok=True, reason="start", snapshot=PositionsSnapshot(positions=positions, seq=1),
                                        open_orders=open_orders))


def test_portfolio_starts_one_actor_per_symbol_and_reconciles_first(parts) -> None:
    portfolio, _, gateway = parts
    actors = portfolio.ask(GetSymbolActors(), timeout=5)
    assert set(actors) == {BTC, ETH} and all(ref.is_alive() for ref in actors.values())
    assert gateway.wait_for(Reconcile)[0].reason == "start"
    portfolio.tell(PositionsSnapshot(positions=(), seq=1))  # not reconciled yet: not passed on
    portfolio.ask(Ping(), timeout=5)
    assert actors[BTC].ask(GetStatus(), timeout=5).state is SymbolState.SYNCING


def test_failed_reconciliation_keeps_symbols_from_trading_and_is_retried(parts) -> None:
    portfolio, persistence, gateway = parts
    portfolio.tell(ReconciliationReport(ok=False, reason="start", detail="open orders unreadable: timed out"))
    failed = persistence.wait_for(Event)[-1]
    assert failed.kind is EventKind.RECONCILE_FAILED and "timed out" in failed.detail
    actors = portfolio.ask(GetSymbolActors(), timeout=5)
    actors[BTC].tell(Signal(symbol=BTC, kind=SignalKind.ENTER_LONG, candle_time=1, price=Decimal(50_000)))
    row = actors[BTC].ask(GetStatus(), timeout=5)
    assert row.state is SymbolState.SYNCING and "reconciliation failed: open orders unreadable" in row.last_outcome
    assert [m.reason for m in gateway.wait_for(Reconcile, 2)][-1] == "retry"


def test_reconciliation_pushes_positions_and_external_orders_to_symbols(parts) -> None:
    portfolio, persistence, _ = parts
    external = ExchangeOrder(symbol=ETH, side=Side.BUY, exchange_order_id="ext-1", amount=Decimal(1))
    reconciled(portfolio, open_orders=(external,))
    actors = portfolio.ask(GetSymbolActors(), timeout=5)
    eth = actors[ETH]
    wait_until(lambda: eth.ask(GetStatus(), timeout=5).state is SymbolState.TRADING)
    eth.tell(Signal(symbol=ETH, kind=SignalKind.ENTER_LONG, candle_time=1, price=Decimal(3000)))
    assert eth.ask(GetStatus(), timeout=5).rejections == {"EXCHANGE_ORDER_OPEN": 1}


def test_portfolio_serializes_risk_so_only_one_symbol_takes_the_last_slot(parts) -> None:
    portfolio, _, _ = parts
    first = portfolio.ask(RiskRequest(symbol=BTC, intent_hash="a" * 64, notional=Decimal(100)), timeout=5)
    second = portfolio.ask(RiskRequest(symbol=ETH, intent_hash="b" * 64, notional=Decimal(100)), timeout=5)
    assert first.granted and not second.granted and "max_open_positions 1" in second.detail


def test_portfolio_pushes_snapshots_to_symbols_and_syncs_after_a_fill(parts) -> None:
    portfolio, _, gateway = parts
    long = Position(symbol=BTC, side=PositionSide.LONG, contracts=Decimal(1), entry_price=Decimal(50_000))
    reconciled(portfolio)
    portfolio.tell(PositionsSnapshot(positions=(long,), seq=3))
    actors = portfolio.ask(GetSymbolActors(), timeout=5)
    wait_until(lambda: actors[BTC].ask(GetStatus(), timeout=5).position == long)
    eth = actors[ETH].ask(GetStatus(), timeout=5)
    assert eth.position is not None and not eth.position.is_open and eth.state is SymbolState.TRADING
    portfolio.tell(OrderUpdate(intent_hash="c" * 64, client_order_id="x", symbol=ETH, side=Side.BUY,
                               state=OrderState.FILLED, filled=Decimal(1), seq=4))
    reasons = [m.reason for m in gateway.wait_for(SyncPositions, 1)]
    assert reasons == ["fill"]


def test_failed_position_fetch_is_an_event_not_a_flat_position(parts) -> None:
    portfolio, persistence, _ = parts
    portfolio.tell(PositionsUnavailable(reason="EXCHANGE_UNAVAILABLE", detail="timed out", seq=1))
    events = persistence.wait_for(Event)
    assert events[-1].kind is EventKind.POSITION_SYNC_FAILED and "timed out" in events[-1].detail
    actors = portfolio.ask(GetSymbolActors(), timeout=5)
    assert actors[BTC].ask(GetStatus(), timeout=5).state is SymbolState.SYNCING
    reconciled(portfolio)
    portfolio.tell(PositionsUnavailable(reason="EXCHANGE_UNAVAILABLE", detail="timed out again", seq=2))
    portfolio.ask(Ping(), timeout=5)
    assert actors[BTC].ask(GetStatus(), timeout=5).position == Position.flat(BTC)  # the last good one stays


def test_portfolio_routes_candles_and_control_and_rejects_unknown_symbols(parts) -> None:
    portfolio, persistence, _ = parts
    reply = portfolio.ask(Pause(symbol=BTC, source="test"), timeout=5)
    assert reply.ok and persistence.wait_for(SetControl)[0].paused is True
    actors = portfolio.ask(GetSymbolActors(), timeout=5)
    assert actors[BTC].ask(GetStatus(), timeout=5).state is SymbolState.PAUSED
    assert not portfolio.ask(Pause(symbol="X/USD:USD"), timeout=5).ok
    portfolio.tell(Candles(symbol=ETH, candles=(), live=False))  # routed, harmless


def test_portfolio_routes_halt_and_unhalt_to_every_symbol(parts) -> None:
    from messages import Halt, Unhalt

    portfolio, persistence, _ = parts
    reconciled(portfolio)
    reply = portfolio.ask(Halt(source="test", reason="news"), timeout=5)
    assert reply.ok and reply.symbols == (BTC, ETH)
    assert [(m.symbol, m.halted) for m in persistence.wait_for(SetControl, 2)] == [(BTC, True), (ETH, True)]
    actors = portfolio.ask(GetSymbolActors(), timeout=5)
    assert all(ref.ask(GetStatus(), timeout=5).state is SymbolState.HALTED for ref in actors.values())
    assert portfolio.ask(Unhalt(symbol=ETH, source="test"), timeout=5).symbols == (ETH,)
    assert actors[ETH].ask(GetStatus(), timeout=5).state is SymbolState.TRADING
    assert actors[BTC].ask(GetStatus(), timeout=5).state is SymbolState.HALTED


def test_portfolio_restarts_a_dead_symbol_actor_then_halts_it_with_the_strategy_off(parts) -> None:
    portfolio, persistence, _ = parts
    first = portfolio.ask(GetSymbolActors(), timeout=5)[BTC]
    first.tell("boom")  # dies
    second = wait_until(lambda: (r := portfolio.ask(GetSymbolActors(), timeout=5)[BTC]) not in (None, first) and r)
    second.tell("boom")
    wait_until(lambda: portfolio.ask(GetStatus(), timeout=5).symbols[0].state is SymbolState.HALTED)
    halts = [m for m in persistence.received(SetControl) if m.halted]
    assert halts and halts[0].symbol == BTC and halts[0].source == "supervisor"
    # halted is exits only, not unmanaged: an actor with its strategy off still follows orders and flattens
    third = wait_until(lambda: (r := portfolio.ask(GetSymbolActors(), timeout=5)[BTC]) not in (None, first, second)
                       and r)
    status = third.ask(GetStatus(), timeout=5)
    assert status.strategy_off and status.halted
    assert portfolio.ask(GetSymbolActors(), timeout=5)[ETH].is_alive()
    third.tell("boom")  # dying with the strategy off too: no more restarts until `unhalt`
    wait_until(lambda: portfolio.ask(GetSymbolActors(), timeout=5)[BTC] is None)
    assert portfolio.ask(GetStatus(), timeout=5).symbols[0].state is SymbolState.HALTED


def test_portfolio_stops_its_symbol_actors(parts) -> None:
    portfolio, _, _ = parts
    actors = portfolio.ask(GetSymbolActors(), timeout=5)
    portfolio.stop()
    assert not any(ref.is_alive() for ref in actors.values())
    with pytest.raises(pykka.ActorDeadError):
        portfolio.ask(Ping(), timeout=1)
