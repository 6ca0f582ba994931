"""End-to-end fixtures: the simulator on loopback and trading systems on the real ccxt client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from actors import TradingSystem
from configuration import AppConfig
from messages import Ping, Signal, SignalKind
from simulator import SimulatorHandle, start_simulator
from testkit.system import CLIENT_TIMEOUT_MS, FAST_WINDOWS, build_live_system, ccxt_client, quiet, ready
from tests.conftest import make_config
from tests.e2e.corrupting_proxy import CorruptingProxy

__all__ = ["BTC", "CLIENT_TIMEOUT_MS", "ETH", "FAST_WINDOWS", "SOL", "Path", "build_live_system", "ccxt_client",
           "quiet", "ready"]  # the system builders live in the testkit, where strategy authors use them too

BTC, ETH, SOL = "BTC/USD:USD", "ETH/USD:USD", "SOL/USD:USD"


@pytest.fixture
def sim() -> Iterator[SimulatorHandle]:
    """A real-time simulator with Kraken's rate budget on; stopped after the test."""
    handle = start_simulator(seed=11, rate_limit=True, volatility=0.0001)
    yield handle
    handle.stop()


LiveStart = Callable[..., TradingSystem]


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


def signal(symbol: str = BTC, t: int = 1_800_000_000_000, kind: SignalKind = SignalKind.ENTER_LONG,
           price: str = "70000") -> Signal:
    return Signal(symbol=symbol, kind=kind, candle_time=t, price=Decimal(price))


def placed(sim: SimulatorHandle, cid: str | None = None) -> list[dict[str, Any]]:
    """Orders the simulator placed (not the ones it rejected), optionally for one client order id."""
    return [o for o in sim.admin.orders(cli_ord_id=cid) if o["status"] == "placed"]


def ping_all(system: TradingSystem) -> None:
    for ref in system.symbol_actors().values():
        ref.ask(Ping(), timeout=5)

