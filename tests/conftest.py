"""Shared fixtures: databases (SQLite and PostgreSQL), configurations, running systems with a fake exchange."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pykka
import pytest

from actors import TradingSystem, gateway_settings_for
from configuration import AppConfig
from exchange import load_market_specs
from testkit.system import make_config, settle
from tests.fakes import FakeExchange

__all__ = ["make_config", "settle"]  # from the testkit, where strategy authors get them too

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _postgres_unreachable_reason() -> str | None:
    try:
        import psycopg2
    except ImportError:
        return "psycopg2 is not installed (pip install -e '.[test]')"
    try:
        conn = psycopg2.connect(POSTGRES_URL, connect_timeout=3)
    except Exception as exc:
        return f"no PostgreSQL reachable at {POSTGRES_URL} ({str(exc).strip().splitlines()[0]}); set TEST_POSTGRES_URL"
    conn.close()
    return None


_PG_REASON: list[str | None] = []


def postgres_skip_reason() -> str | None:
    """Why PostgreSQL tests are skipped here, or None when a server answers."""
    if not _PG_REASON:
        _PG_REASON.append(_postgres_unreachable_reason())
    return _PG_REASON[0]


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL with a fresh schema of its own, dropped afterwards."""
    reason = postgres_skip_reason()
    if reason:
        pytest.skip(reason)
    import psycopg2

    schema = f"t_{uuid.uuid4().hex[:12]}"
    conn = psycopg2.connect(POSTGRES_URL)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP SCHEMA {schema} CASCADE")
        conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each persistence test runs on SQLite and on PostgreSQL (skipped, with the reason, where none runs)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'trading.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite database in the test's own folder."""
    return f"sqlite:///{tmp_path / 'trading.db'}"


@pytest.fixture(autouse=True)
def _stop_all_actors() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all(timeout=10)


StartSystem = Callable[..., TradingSystem]


@pytest.fixture
def start_system(sqlite_url: str) -> Iterator[StartSystem]:
    """Start a TradingSystem on a fake exchange; every system started is stopped after the test."""
    started: list[TradingSystem] = []

    def start(
        exchange: FakeExchange | None = None,
        config: AppConfig | None = None,
        database_url: str | None = None,
        **kwargs: Any,
    ) -> TradingSystem:
        exchange = exchange or FakeExchange()
        config = config or make_config()
        changes = kwargs.pop("gateway_overrides", None)  # GatewaySettings fields: the test builder's, not the system's
        if changes:
            kwargs["gateway_settings"] = gateway_settings_for(config, **changes)
        system = TradingSystem(
            config=config,
            database_url=database_url or sqlite_url,
            private_exchange=exchange,
            public_exchange=kwargs.pop("public_exchange", None),
            markets=load_market_specs(exchange, config.trading.symbols),
            **kwargs,
        ).start()
        started.append(system)
        return system

    yield start
    for system in reversed(started):
        system.stop()
