"""Fixtures for the simulator tests: stepped-clock simulators on free ports and ccxt clients for them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import ccxt
import pytest

from simulator import SimulatorHandle, start_simulator

FIXED_START_MS = 1_780_000_000_000  # 2026-05-28T20:26:40Z, a fixed start for reproducible runs


def peers_dir() -> Path:
    """Folder of ccxt's recorded Kraken Futures fixtures (overridable by KRAKEN_PEERS_DIR)."""
    override = os.environ.get("KRAKEN_PEERS_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2].parent / "shared" / "peers" / "ccxt-krakenfutures"


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
