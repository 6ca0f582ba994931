"""The portfolio's logic as a plain class: supervision, routing, the reconciliation gate, control, status.

No threads and no actors: fake ports record what the portfolio starts, tells, asks and schedules, and each test
drives it by handing it messages, as its mailbox would."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from itertools import count
from typing import Any

import pytest

from actors.portfolio import Portfolio, PortfolioSettings
from actors.risk import RiskBook, RiskLimits
from actors.supervision import RestartPolicy
from actors.system import make_trader_factory, merge_status
from messages import (
    ClaimIntent,
    ClaimResult,
    ControlCode,
    Event,
    EventKind,
    ExchangeOrder,
    GetSymbolActors,
    Halt,
    LoadOpenIntents,
    NotReady,
    OpenOrdersSync,
    OrderState,
    OrderUpdate,
    Pause,
    Position,
    PositionSide,
    PositionsSnapshot,
    PositionSync,
    Reason,
    Reconcile,
    ReconciliationReport,
    RestartSymbol,
    RiskRequest,
    SendHistory,
    SetControl,
    Side,
    SymbolDied,
    SymbolState,
    SymbolStatus,
    SyncPositions,
    Tick,
    Unhalt,
)
from tests.actors.test_claim_handover import make_intent
from tests.actors.test_portfolio_actor import BTC, ETH, MARKETS, persistence_reply
from tests.conftest import make_config
from tests.helpers import FakePorts

_urns = count(1)


@dataclass
class Handle:
    """A symbol actor as the fake ports start it: the trader it runs and what it was told."""

    trader: Any
    actor_urn: str = field(default_factory=lambda: f"urn:fake:{next(_urns)}")
    told: list[Any] = field(default_factory=list)
    stopped: bool = False


class FakePortfolioPorts:
    """PortfolioPorts in memory: the persistence answers from a script, everything else is recorded."""

    def __init__(self) -> None:
        self.asked: list[Any] = []
        self.persisted: list[Any] = []
        self.gateway: list[Any] = []
        self.market_data: list[Any] = []
        self.started: list[Handle] = []
        self.timers: list[tuple[str, float, Any]] = []  # ("every" | "after", seconds, message)
        self.fail_asks: Exception | None = None

    def ask_persistence(self, message: Any) -> Any:
        self.asked.append(message)
        if self.fail_asks is not None:
            raise self.fail_asks
        answer = persistence_reply(message)  # the actor tests' scripted persistence
        assert answer is not None, f"unexpected ask {message!r}"
        return answer

    def tell_persistence(self, message: Any) -> None:
        self.persisted.append(message)

    def tell_gateway(self, message: Any) -> None:
        self.gateway.append(message)

    def tell_market_data(self, message: Any) -> None:
        self.market_data.append(message)

    def start_symbol(self, trader: Any) -> Handle:
        handle = Handle(trader)
        self.started.append(handle)
        return handle

    def stop_symbol(self, handle: Handle, *, wait: bool) -> None:
        handle.stopped = True

    def tell_symbol(self, handle: Handle, message: Any) -> None:
        handle.told.append(message)

    def symbol_ports(self) -> FakePorts:
        return FakePorts()

    def every(self, interval_s: float, message: Any, first_in: float | None = None) -> None:
        self.timers.append(("every", interval_s, message))

    def after(self, delay_s: float, message: Any) -> None:
        self.timers.append(("after", delay_s, message))

    def events(self, kind: EventKind | None = None) -> list[Event]:
        return [m for m in self.persisted if isinstance(m, Event) and (kind is None or m.kind is kind)]


def make_portfolio(max_restarts: int = 1, max_open_positions: int = 1) -> tuple[Portfolio, FakePortfolioPorts]:
    ports = FakePortfolioPorts()
    config = make_config(trading={"symbols": [BTC, ETH]}, risk={"max_open_positions": max_open_positions})
    portfolio = Portfolio(
        markets=MARKETS, trader_factory=make_trader_factory(config),
        risk=RiskBook(limits=RiskLimits(max_open_positions, Decimal(1000), Decimal(5000)), markets=MARKETS),
        restart_policy=RestartPolicy(max_restarts=max_restarts, window_s=60, backoff_initial_s=0.5,
                                     backoff_max_s=0.5),
        settings=PortfolioSettings(position_sync_interval_s=10, reconcile_retry_s=5), ports=ports)
    portfolio.start()
    return portfolio, ports


def current(portfolio: Portfolio, symbol: str) -> Handle:
    return portfolio.handle(GetSymbolActors())[symbol]


def reconcile(portfolio: Portfolio, positions: tuple[Position, ...] = (), open_orders=()) -> None:
    portfolio.handle(ReconciliationReport(ok=True, reason="start", open_orders=open_orders,
                                          snapshot=PositionsSnapshot(positions=positions, seq=1)))


def last_timer(ports: FakePortfolioPorts) -> tuple[str, float, Any]:
    """The newest timer set: (every | after, seconds, the tick's name or the message) -- a Tick carries its time."""
    kind, seconds, message = ports.timers[-1]
    return kind, seconds, message.name if isinstance(message, Tick) else message


def told(handle: Handle, kind: type) -> list[Any]:
    return [m for m in handle.told if isinstance(m, kind)]


def test_start_loads_risk_starts_one_actor_per_market_sets_the_timers_and_asks_for_reconciliation() -> None:
    portfolio, ports = make_portfolio()
    assert isinstance(ports.asked[0], LoadOpenIntents) and [a.symbol for a in ports.asked[1:]] == [BTC, ETH]
    assert [h.trader.symbol for h in ports.started] == [BTC, ETH]
    assert [(kind, message.name) for kind, _, message in ports.timers] == [
        ("every", "sync"), ("every", "purge"), ("every", "reconcile")]
    assert ports.gateway == [Reconcile(intents=(), reason="start")]
    assert portfolio.status().reconciled is False


def test_no_position_reaches_a_symbol_before_the_first_reconciliation() -> None:
    portfolio, ports = make_portfolio()
    long = Position(symbol=BTC, side=PositionSide.LONG, contracts=Decimal(1), entry_price=Decimal(50_000))
    portfolio.handle(PositionsSnapshot(positions=(long,), seq=2))
    assert told(current(portfolio, BTC), PositionSync) == []
    reconcile(portfolio, positions=(long,))
    assert [m.position for m in told(current(portfolio, BTC), PositionSync)] == [long]
    assert [m.position for m in told(current(portfolio, ETH), PositionSync)] == [Position.flat(ETH)]
    assert portfolio.status().reconciled and portfolio.status().open_positions == 1


def test_a_failed_first_reconciliation_tells_every_symbol_not_ready_and_retries() -> None:
    portfolio, ports = make_portfolio()
    portfolio.handle(ReconciliationReport(ok=False, reason="start", detail="open orders unreadable"))
    for symbol in (BTC, ETH):
        assert "open orders unreadable" in told(current(portfolio, symbol), NotReady)[0].detail
    assert last_timer(ports) == ("after", 5, "reconcile-retry")
    assert ports.events(EventKind.RECONCILE_FAILED)[0].reason is Reason.EXCHANGE_UNAVAILABLE
    portfolio.handle(Tick(name="reconcile-retry"))
    assert ports.gateway[-1] == Reconcile(intents=(), reason="retry")


def test_an_unreadable_database_at_the_retry_schedules_another_retry_not_a_crash() -> None:
    portfolio, ports = make_portfolio()
    ports.fail_asks = TimeoutError("5s")
    portfolio.handle(Tick(name="reconcile-retry"))
    assert last_timer(ports) == ("after", 5, "reconcile-retry")


def test_reconciliation_hands_each_symbol_its_open_orders_and_keeps_them_for_a_restart() -> None:
    portfolio, ports = make_portfolio()
    external = ExchangeOrder(symbol=ETH, side=Side.BUY, exchange_order_id="ext-1", amount=Decimal(1))
    reconcile(portfolio, open_orders=(external,))
    assert told(current(portfolio, ETH), OpenOrdersSync)[0].orders == (external,)
    assert told(current(portfolio, BTC), OpenOrdersSync)[0].orders == ()
    portfolio.handle(SymbolDied(symbol=ETH, actor_urn=current(portfolio, ETH).actor_urn, error="boom"))
    portfolio.handle(RestartSymbol(symbol=ETH))
    assert told(current(portfolio, ETH), OpenOrdersSync)[0].orders == (external,)  # the new actor knows it too
    assert ports.market_data == [SendHistory(symbol=ETH)]


def test_a_dead_symbol_restarts_after_its_backoff_then_halts_with_the_strategy_off() -> None:
    portfolio, ports = make_portfolio(max_restarts=1)
    first = current(portfolio, BTC)
    portfolio.handle(SymbolDied(symbol=BTC, actor_urn=first.actor_urn, error="boom"))
    assert ports.timers[-1] == ("after", 0.5, RestartSymbol(symbol=BTC))
    assert portfolio.status().symbols[0].state is SymbolState.RESTARTING
    portfolio.handle(RestartSymbol(symbol=BTC))
    second = current(portfolio, BTC)
    assert second is not first and ports.events(EventKind.ACTOR_RESTARTED)
    portfolio.handle(SymbolDied(symbol=BTC, actor_urn=first.actor_urn, error="old news"))  # an older actor's death
    assert current(portfolio, BTC) is second
    portfolio.handle(SymbolDied(symbol=BTC, actor_urn=second.actor_urn, error="boom again"))
    third = current(portfolio, BTC)
    assert third.trader.strategy_off and third.trader.halted  # halted is exits only, not unmanaged
    halt = [a for a in ports.asked if isinstance(a, SetControl)]
    assert halt[0].halted and halt[0].source == "supervisor"
    row = portfolio.status().symbols[0]
    assert row.state is SymbolState.HALTED and "halted after 2 crashes" in row.halt_reason
    portfolio.handle(SymbolDied(symbol=BTC, actor_urn=third.actor_urn, error="dies with the strategy off"))
    assert current(portfolio, BTC) is None  # no more restarts until `unhalt`


def test_unhalt_of_a_halted_symbol_replaces_the_strategy_off_actor_with_a_normal_one() -> None:
    portfolio, ports = make_portfolio(max_restarts=0)
    first = current(portfolio, BTC)
    portfolio.handle(SymbolDied(symbol=BTC, actor_urn=first.actor_urn, error="boom"))
    strategy_off = current(portfolio, BTC)
    assert strategy_off.trader.strategy_off
    reply = portfolio.handle(Unhalt(symbol=BTC, source="test"))
    assert reply.ok and reply.code is ControlCode.DONE
    assert strategy_off.stopped and not current(portfolio, BTC).trader.strategy_off
    assert portfolio.status().symbols[0].state is SymbolState.TRADING


def test_control_is_stored_before_it_is_applied_and_an_unknown_symbol_is_refused_by_code() -> None:
    portfolio, ports = make_portfolio()
    reply = portfolio.handle(Pause(symbol=BTC, source="test"))
    assert reply.ok and reply.symbols == (BTC,)
    assert [(a.symbol, a.paused) for a in ports.asked if isinstance(a, SetControl)] == [(BTC, True)]
    assert told(current(portfolio, BTC), Pause) == [Pause(symbol=BTC, source="test")]
    unknown = portfolio.handle(Pause(symbol="X/USD:USD"))
    assert unknown.code is ControlCode.UNKNOWN_SYMBOL
    assert "this system trades BTC/USD:USD, ETH/USD:USD" in unknown.detail
    halted = portfolio.handle(Halt(source="test", reason="news"))
    assert halted.symbols == (BTC, ETH) and all(told(current(portfolio, s), Halt) for s in (BTC, ETH))


def test_a_control_the_database_cannot_store_is_not_applied() -> None:
    portfolio, ports = make_portfolio()
    ports.fail_asks = OSError("disk full")
    with pytest.raises(OSError):
        portfolio.handle(Pause(symbol=BTC, source="test"))
    assert told(current(portfolio, BTC), Pause) == []


def test_a_fill_is_passed_to_its_symbol_and_asks_for_a_position_sync() -> None:
    portfolio, ports = make_portfolio()
    update = OrderUpdate(intent_hash="c" * 64, client_order_id="x", symbol=ETH, side=Side.BUY,
                         state=OrderState.FILLED, filled=Decimal(1), seq=4)
    portfolio.handle(update)
    assert told(current(portfolio, ETH), OrderUpdate) == [update]
    assert ports.gateway[-1] == SyncPositions(reason="fill")


def test_an_entry_claim_is_passed_on_when_risk_grants_it_and_answered_when_it_does_not() -> None:
    portfolio, ports = make_portfolio(max_open_positions=1)

    class Reply:
        def __init__(self) -> None:
            self.value: Any = None

        def set(self, value: Any) -> None:
            self.value = value

    def claim(symbol: str, h: str) -> tuple[ClaimIntent, Reply]:
        reply = Reply()
        intent = make_intent(1, symbol)
        return ClaimIntent(intent=intent, reply=reply, risk=RiskRequest(symbol=symbol, intent_hash=h,
                                                                        notional=Decimal(100))), reply

    granted, _ = claim(BTC, "a" * 64)
    refused, answer = claim(ETH, "b" * 64)
    portfolio.handle(granted)
    portfolio.handle(refused)
    assert [m for m in ports.persisted if isinstance(m, ClaimIntent)] == [granted]
    assert isinstance(answer.value, ClaimResult) and answer.value.refused is not None
    assert "max_open_positions 1" in answer.value.refused.detail
    assert portfolio.status().reserved_slots == 1


def test_status_merges_each_running_symbols_own_row_over_its_supervision_row() -> None:
    portfolio, _ = make_portfolio()
    supervised = portfolio.status().model_copy(update={"symbols": tuple(
        row.model_copy(update={"restarts": 2 if row.symbol == BTC else 0}) for row in portfolio.status().symbols)})
    btc = SymbolStatus(symbol=BTC, state=SymbolState.PAUSED, unrealized_pnl=Decimal("1.5"))
    merged = merge_status(supervised, {BTC: btc, ETH: None}, {BTC: Decimal("-3"), ETH: Decimal("1")})
    rows = {row.symbol: row for row in merged.symbols}
    assert rows[BTC].state is SymbolState.PAUSED and rows[BTC].restarts == 2  # its own row, the portfolio's count
    assert rows[ETH].state is SymbolState.RESTARTING  # its actor did not answer
    assert (rows[BTC].realized_pnl, rows[ETH].realized_pnl) == (Decimal("-3"), Decimal("1"))
    assert merged.realized_pnl == Decimal("-2") and merged.unrealized_pnl == Decimal("1.5")
    halted = merge_status(supervised, {}, {})  # no actor running: the supervision rows as they are
    assert [r.state for r in halted.symbols] == [r.state for r in supervised.symbols]
    assert halted.unrealized_pnl is None and halted.realized_pnl == 0
