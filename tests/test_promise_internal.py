"""The promise inside the process: risk asks that time out, slow database reads in portfolio timers, bad candles.

Running actors on the fake exchange (issue cases 11, 12 and 19). Each test says how the previous design failed.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import ccxt
import pytest
from loguru import logger

import actors.system
from actors.portfolio import PortfolioSettings
from actors.risk import RiskBook
from messages import (
    Candles,
    EventKind,
    GetStatus,
    Ping,
    QueryEvents,
    Reason,
    RiskDecision,
    RiskRequest,
    Signal,
    SignalKind,
    SymbolState,
    Tick,
)
from persistence import Store
from tests.conftest import StartSystem, make_config, settle
from tests.fakes import FakeExchange
from tests.helpers import wait_until

pytestmark = pytest.mark.timeout(60)

BTC, ETH = "BTC/USD:USD", "ETH/USD:USD"
T0 = 1_800_000_000_000
MINUTE = 60_000
ASK_TIMEOUT_S = 1.0
PRICES = {BTC: Decimal(50_000), ETH: Decimal(3_000)}


def entry(symbol: str, t: int = T0) -> Signal:
    return Signal(symbol=symbol, kind=SignalKind.ENTER_LONG, candle_time=t, price=PRICES[symbol])


def events(system: Any, **filters: Any) -> list[Any]:
    return system.persistence.ask(QueryEvents(**filters), timeout=5)


def row_of(system: Any, symbol: str = BTC) -> Any:
    return next(r for r in system.status().symbols if r.symbol == symbol)


def traded(exchange: FakeExchange) -> list[str]:
    """The symbols of every sendorder the fake exchange received, in order."""
    return [c["symbol"] for c in exchange.create_calls]


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    """Every loguru message logged during the test (WARNING and up)."""
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(message.record["message"]), level="WARNING")
    yield lines
    logger.remove(sink)


class Gate:
    """Blocks the wrapped call (once, when armed) until the test opens it; counts the calls."""

    def __init__(self) -> None:
        self.armed = threading.Event()
        self.entered = threading.Event()
        self.opened = threading.Event()
        self.calls = 0
        self._lock = threading.Lock()

    def install(self, monkeypatch: pytest.MonkeyPatch, owner: type, name: str) -> None:
        """Put the gate in front of `owner.name` (a method) for the rest of the test."""
        original = getattr(owner, name)

        def gated(this: Any, *args: Any, **kwargs: Any) -> Any:
            self.pass_through()
            return original(this, *args, **kwargs)

        monkeypatch.setattr(owner, name, gated)

    def pass_through(self) -> None:
        with self._lock:
            self.calls += 1
            hold = self.armed.is_set()
            self.armed.clear()
        if hold:
            self.entered.set()
            assert self.opened.wait(20), "the test never opened the gate"


# --- case 11: a risk ask that times out leaks no reservation ------------------------------------


def test_a_risk_ask_that_times_out_releases_its_reservation_so_another_symbol_can_enter(
    start_system: StartSystem, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Case 11. The portfolio answers BTC's risk ask after the ask timed out (it grants it late); with
    max_open_positions 1 the late grant must be given back: status shows no reservation and ETH's entry
    is granted. Before: the late grant stayed reserved forever, status showed 1 reserved slot and every
    other symbol got RISK_LIMIT until a restart."""
    gate = Gate()
    original = RiskBook.reserve

    def slow_reserve(self: RiskBook, request: RiskRequest) -> RiskDecision:
        gate.pass_through()  # BTC's ask is held past its time-out, then granted
        return original(self, request)

    monkeypatch.setattr(RiskBook, "reserve", slow_reserve)
    exchange = FakeExchange()
    config = make_config(trading={"symbols": [BTC, ETH]}, risk={"max_open_positions": 1})
    system = start_system(exchange, config=config, ask_timeout_s=ASK_TIMEOUT_S)
    settle(system)
    refs = system.symbol_actors()
    gate.armed.set()
    refs[BTC].tell(entry(BTC))
    assert gate.entered.wait(10), "BTC's risk ask never reached the portfolio"
    refused = wait_until(lambda: events(system, symbol=BTC, reason=Reason.RISK_UNAVAILABLE.value), timeout=10,
                         message="BTC refused because the portfolio did not answer in time")
    assert "portfolio did not answer" in refused[0].detail
    gate.opened.set()  # the portfolio now grants the reservation the symbol gave up on
    settle(system)
    status = system.status()
    assert status.reserved_slots == 0 and status.total_notional == 0  # no phantom reservation
    refs[ETH].tell(entry(ETH))
    settle(system)
    assert traded(exchange) == [ETH]  # granted: BTC's abandoned ask holds no slot
    assert events(system, reason=Reason.RISK_LIMIT.value) == []
    assert system.status().reserved_slots == 1  # ETH's own entry, nothing else
    assert gate.calls == 2


# --- case 12: a slow database read inside a portfolio timer does not kill the portfolio ------------


def test_a_slow_read_in_the_reconcile_retry_timer_keeps_the_portfolio_alive_and_retrying(
    start_system: StartSystem, monkeypatch: pytest.MonkeyPatch, log_lines: list[str]
) -> None:
    """Case 12. Reconciliation fails at start (open orders unreadable), so the portfolio's reconcile-retry
    timer reloads the unfinished intents; one of those reads outlasts the ask time-out. The portfolio must
    stay alive, retry, reconcile once the exchange answers, and trade. Before: the pykka.Timeout escaped the
    timer's handler, the portfolio died and the process ran on as a zombie that never traded (the fatal
    path for a core actor that does die is tests/test_core_actor_deaths.py)."""
    monkeypatch.setattr(actors.system, "PortfolioSettings", functools.partial(PortfolioSettings,
                                                                              reconcile_retry_s=0.2))
    gate = Gate()
    gate.install(monkeypatch, Store, "open_intents")
    exchange = FakeExchange()
    exchange.fail_open_orders = ccxt.ExchangeNotAvailable("krakenfutures 503")
    system = start_system(exchange, ask_timeout_s=ASK_TIMEOUT_S)
    wait_until(lambda: events(system, kind=EventKind.RECONCILE_FAILED.value), timeout=10,
               message="the start reconciliation failed")
    assert not system.status().reconciled
    gate.armed.set()  # the next retry's read is slow
    assert gate.entered.wait(10), "the reconcile-retry timer never reloaded the intents"
    wait_until(lambda: any("unfinished intents unreadable for the retry reconciliation" in line
                           for line in log_lines), timeout=10, message="the portfolio noticed the slow read")
    exchange.fail_open_orders = None  # the exchange answers again
    gate.opened.set()
    wait_until(lambda: system.status().reconciled, timeout=10, message="reconciled on a later retry")
    assert system.portfolio is not None and system.portfolio.is_alive()
    assert system.death is None and system.check_core() is None
    wait_until(lambda: row_of(system).state is SymbolState.TRADING, timeout=10, message="BTC trading")
    system.symbol_actors()[BTC].tell(entry(BTC))
    settle(system)
    assert traded(exchange) == [BTC]
    assert gate.calls >= 3  # at start, the slow retry, and the retry that worked


def test_a_slow_read_in_the_symbol_restart_timer_still_brings_the_symbol_back(
    start_system: StartSystem, monkeypatch: pytest.MonkeyPatch, log_lines: list[str]
) -> None:
    """Case 12, the restart timer. A symbol actor dies; the portfolio's RestartSymbol timer reloads the
    symbol's state and that read outlasts the ask time-out once. The portfolio must stay alive and restart
    the symbol on a later attempt, so it trades again. Before: the time-out escaped into pykka and killed
    the portfolio; now the portfolio lives but the symbol is never restarted."""
    gate = Gate()
    gate.install(monkeypatch, Store, "load_symbol")
    exchange = FakeExchange()
    system = start_system(exchange, ask_timeout_s=ASK_TIMEOUT_S)
    settle(system)
    first = system.symbol_actors()[BTC]
    gate.armed.set()
    first.tell("an unexpected message")  # the symbol actor dies; its restart's read is slow
    assert gate.entered.wait(10), "the restart never reloaded the symbol"
    wait_until(lambda: not first.is_alive(), message="the first actor is dead")
    wait_until(lambda: any("restart failed" in line for line in log_lines), timeout=10,
               message="the restart's read timed out")
    gate.opened.set()
    assert system.portfolio is not None and system.portfolio.is_alive() and system.death is None
    second = wait_until(lambda: (r := system.symbol_actors()[BTC]) is not None and r != first and r, timeout=5,
                        message="BTC restarted after the slow read")
    wait_until(lambda: second.ask(GetStatus(), timeout=5).state is SymbolState.TRADING, timeout=10,
               message="BTC trading again")
    second.tell(entry(BTC))
    settle(system)
    assert traded(exchange) == [BTC]


# --- case 19: bad candles never kill the symbol actor (what tests/actors/test_market_data_actor.py lacks) ----


def rows(start: int, count: int, base: float = 50_000.0) -> list[list[Any]]:
    return [[start + i * MINUTE, base + i, base + i + 10, base + i - 10, base + i + 5, 10] for i in range(count)]


def test_bad_candles_in_the_history_a_restarted_symbol_actor_gets_never_kill_it_nor_signal(
    start_system: StartSystem,
) -> None:
    """Case 19, the history path through running actors (test_market_data_actor.py covers live polls). The
    shipped scripted strategy (enters on every second candle) warms up from the history the market-data actor
    sends at start and again after a symbol actor restarts; negative and NaN rows in that history, an answer
    that is not a list at all, and a live high-below-low row on an entry candle are refused at the edge with
    BAD_MARKET_DATA events: the restarted actor stays alive (one restart: the crash we caused) and no order
    goes out. Before: a negative price reached the symbol actor and the exception escaping into pykka killed
    it, again at each restart, until the symbol was halted."""
    exchange = FakeExchange()
    now = [T0 + 10 * MINUTE]
    # the history window (warm-up 1: the 3 candles before now) holds a negative and a NaN row
    negative = [T0 + 7 * MINUTE, -50_000, -49_990, -50_010, -50_005, 3]
    nan = [T0 + 8 * MINUTE, float("nan"), 50_010, 49_990, 50_000, 3]
    exchange.ohlcv[BTC] = [*rows(T0, 7), negative, nan, *rows(T0 + 9 * MINUTE, 2)]
    config = make_config(strategy={"name": "scripted", "params": {"period": 2, "hold": 1}},
                         supervision={"max_restarts": 3})
    system = start_system(exchange, public_exchange=exchange, candle_clock=lambda: now[0],
                          market_data_interval_s=3600, config=config)
    assert system.market_data is not None
    system.market_data.ask(Ping(), timeout=5)
    settle(system)
    first = system.symbol_actors()[BTC]
    assert first.ask(GetStatus(), timeout=5).last_candle_time == T0 + 9 * MINUTE  # good rows carried on
    first.tell("an unexpected message")  # one crash: the restart asks for the history again
    second = wait_until(lambda: (r := system.symbol_actors()[BTC]) is not None and r != first and r, timeout=10,
                        message="BTC restarted")
    system.market_data.ask(Ping(), timeout=5)
    settle(system)
    wait_until(lambda: second.ask(GetStatus(), timeout=5).last_candle_time == T0 + 9 * MINUTE, timeout=10,
               message="the restarted actor got the history (bad rows dropped)")
    exchange.fetch_ohlcv = lambda *a, **k: "<!DOCTYPE html><html>cloudflare</html>"  # a whole answer unreadable
    system.market_data.tell(Tick(name="candles"))
    system.market_data.ask(Ping(), timeout=5)
    del exchange.fetch_ohlcv
    # live: T0+10m is an entry candle of the scripted rule (period 2), but its high is below its low
    inverted = [T0 + 10 * MINUTE, 50_000, 49_000, 51_000, 50_000, 3]
    exchange.ohlcv[BTC] = [*rows(T0, 7), negative, nan, *rows(T0 + 9 * MINUTE, 1), inverted,
                           *rows(T0 + 11 * MINUTE, 1)]
    now[0] = T0 + 11 * MINUTE
    system.market_data.tell(Tick(name="candles"))
    system.market_data.ask(Ping(), timeout=5)
    settle(system)
    assert second.is_alive() and system.symbol_actors()[BTC] is second
    row = second.ask(GetStatus(), timeout=5)
    assert row.restarts == 1 and row.state is SymbolState.TRADING and not row.strategy_off
    assert row.last_candle_time == T0 + 9 * MINUTE  # T0+10m was refused, T0+11m is still forming
    assert exchange.create_calls == []  # no signal from a bad candle (history never trades, bad live rows dropped)
    bad = events(system, symbol=BTC, reason=Reason.BAD_MARKET_DATA.value)
    details = " | ".join(e.detail for e in bad)
    assert "not positive" in details and "not a finite number" in details and "below" in details
    assert "unreadable" in details
    assert len([e for e in bad if "candle refused" in e.detail]) == 3, details  # each bad row once, not per fetch
    assert [e.kind for e in events(system, kind=EventKind.ACTOR_DIED.value)] == [EventKind.ACTOR_DIED]
    assert system.market_data.is_alive()
    assert Candles  # the message the bad rows never became
