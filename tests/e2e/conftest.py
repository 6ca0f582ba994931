"""End-to-end fixtures: the simulator on loopback and trading systems on the real ccxt client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from actors import TradingSystem, gateway_settings_for
from configuration import AppConfig
from exchange import load_market_specs, make_kraken_client
from exchange.budget import CostBudget
from exchange.clock import ServerClock
from messages import GetStatus, Ping, Signal, SignalKind, SymbolState
from simulator import SimulatorHandle, start_simulator
from tests.conftest import make_config, settle
from tests.e2e.corrupting_proxy import CorruptingProxy
from tests.helpers import wait_until

BTC, ETH, SOL = "BTC/USD:USD", "ETH/USD:USD", "SOL/USD:USD"
CLIENT_TIMEOUT_MS = 1500
# Short processBefore windows so that unknown outcomes are decided within seconds; the simulator's history
# lag (3 s by default) stays inside processBefore + skew + lag.
FAST_WINDOWS = {"process_before_s": 1.0, "clock_skew_s": 0.5, "history_lag_s": 3.5}


@pytest.fixture
def sim() -> Iterator[SimulatorHandle]:
    """A real-time simulator with Kraken's rate budget on; stopped after the test."""
    handle = start_simulator(seed=11, rate_limit=True, volatility=0.0001)
    yield handle
    handle.stop()


def ccxt_client(sim: SimulatorHandle, private: bool = True) -> Any:
    """The real ccxt.krakenfutures client, only its base URL (and keys) changed."""
    if private:
        return make_kraken_client(sim.base_url, sim.api_key, sim.api_secret, timeout_ms=CLIENT_TIMEOUT_MS)
    return make_kraken_client(sim.base_url, timeout_ms=CLIENT_TIMEOUT_MS)


LiveStart = Callable[..., TradingSystem]


def build_live_system(sim: SimulatorHandle, config: AppConfig, database_url: str, candles: bool = False,
                      private: Any = None, **kwargs: Any) -> TradingSystem:
    """A TradingSystem whose gateway (and market data) drive ccxt against the simulator.

    `private`: the gateway's ccxt client (default: one straight to the simulator; e.g. one through the proxy).
    """
    private = private or ccxt_client(sim)
    public = ccxt_client(sim, private=False)
    markets = load_market_specs(public, config.trading.symbols)
    private.load_markets()
    # the bot's clock runs at the simulator's speed, as run.py's paper mode wires it (a stepped clock: 1)
    clock = ServerClock(public, rate=sim.simulator.config.speed if sim.simulator.config.clock == "real" else 1.0)
    return TradingSystem(
        config=config,
        database_url=database_url,
        private_exchange=private,
        public_exchange=public if candles else None,
        markets=markets,
        candle_clock=clock,
        budget=CostBudget(),
        gateway_settings=gateway_settings_for(
            config, clock_rate=clock.rate,
            **{"poll_interval_s": 0.1, **FAST_WINDOWS, **kwargs.pop("gateway_overrides", {})}),
        **kwargs,
    ).start()


@pytest.fixture
def live_system(sim: SimulatorHandle, sqlite_url: str) -> Iterator[LiveStart]:
    """Start TradingSystems on the simulator; every one is stopped after the test."""
    started: list[TradingSystem] = []

    def start(config: AppConfig | None = None, database_url: str | None = None, candles: bool = False,
              **kwargs: Any) -> TradingSystem:
        system = build_live_system(sim, config or make_config(), database_url or sqlite_url, candles, **kwargs)
        started.append(system)
        return system

    yield start
    for system in reversed(started):
        system.stop()


@pytest.fixture
def proxy(sim: SimulatorHandle) -> Iterator[CorruptingProxy]:
    """The corrupting proxy in front of the simulator."""
    with CorruptingProxy(sim.base_url) as running:
        yield running


@pytest.fixture
def proxied_system(sim: SimulatorHandle, proxy: CorruptingProxy, sqlite_url: str) -> Iterator[LiveStart]:
    """Start TradingSystems whose gateway's ccxt client goes through the corrupting proxy; stopped after the test."""
    started: list[TradingSystem] = []

    def start(config: AppConfig | None = None, database_url: str | None = None, **kwargs: Any) -> TradingSystem:
        private = proxy.client(sim.api_key, sim.api_secret, timeout_ms=CLIENT_TIMEOUT_MS)
        system = build_live_system(sim, config or make_config(), database_url or sqlite_url, private=private,
                                   **kwargs)
        started.append(system)
        return system

    yield start
    for system in reversed(started):
        system.stop()


def ready(system: TradingSystem) -> TradingSystem:
    """Wait until every symbol actor has reconciled."""
    settle(system)
    for symbol, ref in system.symbol_actors().items():
        wait_until(lambda ref=ref: ref.ask(GetStatus(), timeout=5).state is not SymbolState.SYNCING, timeout=10,
                   message=f"{symbol} reconciled")
    return system


def quiet(system: TradingSystem, timeout: float = 20.0) -> None:
    """Wait until every message is handled and no order is being sent or resolved."""
    settle(system)
    wait_until(lambda: system.wait_in_flight(0.5) == 0, timeout=timeout, message="orders resolved")
    settle(system)


def signal(symbol: str = BTC, t: int = 1_800_000_000_000, kind: SignalKind = SignalKind.ENTER_LONG,
           price: str = "70000") -> Signal:
    return Signal(symbol=symbol, kind=kind, candle_time=t, price=Decimal(price))


def placed(sim: SimulatorHandle, cid: str | None = None) -> list[dict[str, Any]]:
    """Orders the simulator placed (not the ones it rejected), optionally for one client order id."""
    return [o for o in sim.admin.orders(cli_ord_id=cid) if o["status"] == "placed"]


def ping_all(system: TradingSystem) -> None:
    for ref in system.symbol_actors().values():
        ref.ask(Ping(), timeout=5)


__all__ = ["BTC", "ETH", "SOL", "Path"]
