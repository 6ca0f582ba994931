"""Fixtures for the simulator tests: stepped-clock simulators on free ports and ccxt clients for them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import ccxt
import pytest

from simulator import SimulatorHandle, start_simulator


@pytest.fixture
def sim() -> Iterator[SimulatorHandle]:
    """A stepped-clock simulator (start = now, rate limit off) that tests move by hand."""
    handle = start_simulator(clock="stepped", seed=7, rate_limit=False)
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def limited_sim() -> Iterator[SimulatorHandle]:
    """A stepped-clock simulator with Kraken's cost budgets on."""
    handle = start_simulator(clock="stepped", seed=7, rate_limit=True)
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def client(sim: SimulatorHandle) -> ccxt.krakenfutures:
    """A real ccxt.krakenfutures client for `sim`, markets loaded."""
    exchange = sim.client(timeout_ms=5_000)
    exchange.load_markets()
    return exchange


def boot(**overrides: Any) -> SimulatorHandle:
    """A stepped-clock simulator (rate limit off) with some rules switched."""
    return start_simulator(**{"clock": "stepped", "seed": 7, "rate_limit": False, **overrides})


@pytest.fixture
def switched(request: pytest.FixtureRequest) -> Iterator[tuple[SimulatorHandle, ccxt.krakenfutures]]:
    """A simulator started with the overrides given by `@pytest.mark.parametrize(..., indirect=True)`."""
    handle = boot(**request.param)
    try:
        client = handle.client(timeout_ms=5_000)
        client.load_markets()
        yield handle, client
    finally:
        handle.stop()
