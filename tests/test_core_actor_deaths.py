"""Core actors cannot die silently: a dead portfolio, gateway, persistence or market-data actor stops the process.

The run stops everything in reverse order and returns EXIT_CORE_ACTOR_DIED with a FATAL last line, so a
process supervisor restarts it; never a process that runs on without trading.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import peewee
import pykka
import pytest
from loguru import logger

from actors import TradingSystem
from actors.gateway import ExchangeGatewayActor
from actors.market_data import MarketDataActor
from actors.persistence import PersistenceActor, WriteFailures
from actors.portfolio import PortfolioActor
from actors.runner import EXIT_CORE_ACTOR_DIED, TradingProcess, run_trading
from actors.system import CoreActorDeath
from configuration import load_config
from messages import Event, EventKind
from messages._base import Message
from persistence import Store
from tests.conftest import StartSystem
from tests.e2e.soak import free_port

REPO = Path(__file__).resolve().parents[1]
CLASSES: dict[str, type[pykka.Actor]] = {
    "persistence": PersistenceActor,
    "gateway": ExchangeGatewayActor,
    "portfolio": PortfolioActor,
    "market_data": MarketDataActor,
}
LABELS = {"persistence": "persistence", "gateway": "exchange gateway", "portfolio": "portfolio",
          "market_data": "market-data"}


class Boom(Message):
    """A told message that makes the patched actor raise (a bug in a handler)."""


def paper_config(folder: Path, **overrides: str) -> Path:
    """The shipped config, its storage in `folder`, a free control port, the scripted strategy (often signals)."""
    text = (REPO / "config.toml").read_text()
    text = re.sub(r"(?m)^port = 8765", f"port = {free_port()}", text)
    text = re.sub(r'(?m)^name = "ma_crossover".*$', 'name = "scripted"', text)
    text = re.sub(r"(?ms)^\[strategy\.params\].*?(?=^\[)", "", text)
    for key, value in overrides.items():
        text = re.sub(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
    path = folder / "config.toml"
    path.write_text(text)
    return path


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """run_trading sets up loguru for the process (stderr and a log file): put a plain stderr sink back after."""
    yield
    logger.remove()
    logger.add(sys.stderr, level="INFO")


def last_line(log_file: Path) -> str:
    lines = [line for line in log_file.read_text().splitlines() if line.strip()]
    return lines[-1]


class Run:
    """run_trading on a thread of its own, with the process and every actor it started."""

    def __init__(self, config: Path, kill: Any) -> None:
        self.loaded = load_config(config)
        self.kill = kill
        self.started = threading.Event()
        self.process: TradingProcess | None = None
        self.actors: list[pykka.ActorRef[Any]] = []
        self.killed_at = 0.0
        self.code: int | None = None
        self.returned = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _on_started(self, process: TradingProcess) -> None:
        self.process = process
        assert process.system is not None
        self.actors = [*pykka.ActorRegistry.get_all()]
        self.killed_at = time.monotonic()
        self.kill(process)
        self.started.set()

    def _run(self) -> None:
        try:
            self.code = run_trading(self.loaded, install_signals=False, on_started=self._on_started)
        finally:
            self.returned.set()

    def wait(self, timeout: float) -> int:
        self.thread.start()
        assert self.returned.wait(timeout), "run_trading did not return"
        assert self.code is not None
        return self.code

    @property
    def log_file(self) -> Path:
        return self.loaded.resolve(self.loaded.config.logging.file)


def raising_on_boom(monkeypatch: pytest.MonkeyPatch, cls: type[pykka.Actor]) -> None:
    original = cls.on_receive

    def on_receive(self: Any, message: Any) -> Any:
        if isinstance(message, Boom):
            raise RuntimeError(f"boom in {type(self).__name__}")  # noqa: TRY004 - a bug in a handler
        return original(self, message)

    monkeypatch.setattr(cls, "on_receive", on_receive)


def assert_everything_stopped(run: Run) -> None:
    assert run.process is not None and run.process.system is None
    assert pykka.ActorRegistry.get_all() == []
    assert len(run.actors) >= 5  # four core actors and at least one symbol actor were running
    assert [ref for ref in run.actors if ref.is_alive()] == []
    assert run.process.lock is None  # the instance lock is released: a supervisor's restart can start at once


@pytest.mark.timeout(90)
@pytest.mark.parametrize("role", ["portfolio", "gateway", "persistence", "market_data"])
def test_a_core_actor_that_dies_stops_the_run_with_a_non_zero_exit_and_a_fatal_last_line(
        role: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_logging: None) -> None:
    raising_on_boom(monkeypatch, CLASSES[role])
    run = Run(paper_config(tmp_path), lambda process: getattr(process.system, role).tell(Boom()))
    code = run.wait(timeout=60)
    assert code == EXIT_CORE_ACTOR_DIED
    assert time.monotonic() - run.killed_at < 30
    assert_everything_stopped(run)
    line = last_line(run.log_file)
    assert f"FATAL: the {LABELS[role]} actor died (RuntimeError: boom in {CLASSES[role].__name__}); " in line
    assert line.endswith("stopping so a process supervisor restarts this process — reconciliation carries on "
                         "at the next start")


@pytest.mark.timeout(90)
def test_a_core_actor_found_dead_by_the_heartbeat_takes_the_same_path(
        tmp_path: Path, restore_logging: None) -> None:
    def stop_behind_its_back(process: TradingProcess) -> None:  # no on_failure: e.g. a crash in on_failure itself
        assert process.system is not None and process.system.gateway is not None
        process.system.gateway.stop(block=False)

    run = Run(paper_config(tmp_path), stop_behind_its_back)
    assert run.wait(timeout=60) == EXIT_CORE_ACTOR_DIED
    assert_everything_stopped(run)
    assert "FATAL: the exchange gateway actor died (found stopped by the heartbeat)" in last_line(run.log_file)


@pytest.mark.timeout(90)
def test_a_core_actor_that_fails_in_on_start_stops_the_start_with_the_same_exit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_logging: None) -> None:
    def failing_start(self: Any) -> None:
        raise RuntimeError("cannot load open intents")

    monkeypatch.setattr(PortfolioActor, "on_start", failing_start)  # pykka calls no on_failure for this
    run = Run(paper_config(tmp_path), lambda process: None)
    assert run.wait(timeout=60) == EXIT_CORE_ACTOR_DIED
    assert not run.started.is_set()
    assert pykka.ActorRegistry.get_all() == []
    assert "FATAL: the portfolio actor died (it stopped while starting" in last_line(run.log_file)


@pytest.mark.timeout(90)
def test_a_clean_stop_still_exits_zero(tmp_path: Path, restore_logging: None) -> None:
    run = Run(paper_config(tmp_path), lambda process: process.stopping.set())
    assert run.wait(timeout=60) == 0
    assert_everything_stopped(run)
    assert last_line(run.log_file).endswith("| stopped") or last_line(run.log_file).endswith(" - stopped")


# --- the reporting itself, on a TradingSystem without a runner ------------------------------------


@pytest.mark.timeout(30)
def test_on_failure_reports_to_the_system_once_with_the_exception(
        start_system: StartSystem, monkeypatch: pytest.MonkeyPatch) -> None:
    told: list[CoreActorDeath] = []
    raising_on_boom(monkeypatch, PortfolioActor)
    system: TradingSystem = start_system(on_fatal=told.append)
    assert system.portfolio is not None and system.gateway is not None
    system.portfolio.tell(Boom())
    assert system.fatal.wait(10)
    system.gateway.tell(Boom())  # not patched: nothing happens, and a second death would not be told again
    assert told == [CoreActorDeath("portfolio", "RuntimeError: boom in PortfolioActor")]
    assert system.death == told[0] and system.check_core() == told[0]


@pytest.mark.timeout(30)
def test_a_requested_stop_is_not_a_death(start_system: StartSystem) -> None:
    told: list[CoreActorDeath] = []
    system: TradingSystem = start_system(on_fatal=told.append)
    system.stop()
    assert system.check_core() is None and told == [] and not system.fatal.is_set()


# --- a database that refuses every write stops the process -----------------------------------------


def test_write_failures_give_up_only_after_a_run_of_failures_as_long_as_the_limit() -> None:
    now = [100.0]
    failures = WriteFailures(give_up_after_s=20, clock=lambda: now[0])
    assert not failures.exhausted()
    assert failures.failed() == 0
    now[0] = 119.0
    assert failures.failed() == 19 and not failures.exhausted()
    now[0] = 120.0
    assert failures.exhausted()
    assert failures.succeeded() and not failures.exhausted()
    now[0] = 200.0
    assert failures.failed() == 0 and not failures.exhausted()  # a new run starts from its first failure
    assert failures.succeeded() and not failures.succeeded()


@pytest.mark.timeout(30)
def test_persistence_gives_up_on_a_database_that_refuses_every_write(
        start_system: StartSystem, monkeypatch: pytest.MonkeyPatch) -> None:
    told: list[CoreActorDeath] = []
    system: TradingSystem = start_system(on_fatal=told.append, database_give_up_s=0.5)
    assert system.persistence is not None

    def locked(self: Any, batch: Any) -> Any:
        raise peewee.OperationalError("database is locked")

    monkeypatch.setattr(Store, "apply_batch", locked)
    system.persistence.tell(Event(kind=EventKind.SYSTEM, detail="a write that cannot be stored"))
    assert system.fatal.wait(10)  # retried every second until the limit, then the actor stops
    [death] = told
    assert death.actor == "persistence" and "DatabaseUnusable" in death.detail
    assert "refused every write for 0s" in death.detail or "refused every write for 1s" in death.detail
    assert not system.persistence.is_alive()


# --- the real process --------------------------------------------------------------------------------


@pytest.mark.timeout(150)
def test_run_py_exits_non_zero_when_the_database_becomes_unusable_mid_run(tmp_path: Path) -> None:
    config = paper_config(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KRAKEN_")}
    process = subprocess.Popen([sys.executable, str(REPO / "run.py"), "--config", str(config)], cwd=tmp_path,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reconciled = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip())
            if "reconciled with the exchange" in line:
                reconciled.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    holder: sqlite3.Connection | None = None
    try:
        assert reconciled.wait(60), "\n".join(lines[-30:])
        # Another process takes the database's write lock and keeps it: every write of the bot now fails.
        holder = sqlite3.connect(tmp_path / "storage" / "trading.db", timeout=30, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        locked_at = time.monotonic()
        code = process.wait(timeout=100)
        reader.join(10)
        took = time.monotonic() - locked_at
    finally:
        if holder is not None:
            holder.close()
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert code == EXIT_CORE_ACTOR_DIED, "\n".join(lines[-30:])
    assert took < 90
    final = [line for line in lines if line.strip()][-1]
    assert "FATAL: the persistence actor died (DatabaseUnusable: the database at" in final, "\n".join(lines[-15:])
    assert "stopping so a process supervisor restarts this process" in final


@pytest.mark.timeout(30)
def test_a_slow_database_open_is_waited_for_not_taken_for_a_dead_persistence_actor(
        start_system: StartSystem, monkeypatch: pytest.MonkeyPatch) -> None:
    opened = Store.open
    gate = threading.Event()

    def slow_open(self: Store) -> None:  # a one-time migration of a large database
        gate.wait(1.5)  # well past the ping time-out of ask_timeout_s * 2 = 0.4 s
        opened(self)

    monkeypatch.setattr(Store, "open", slow_open)
    system: TradingSystem = start_system(ask_timeout_s=0.2)
    assert system.persistence is not None and system.persistence.is_alive() and system.check_core() is None


@pytest.mark.timeout(30)
def test_a_database_open_that_never_ends_still_fails_the_start_with_its_reason(
        start_system: StartSystem, monkeypatch: pytest.MonkeyPatch) -> None:
    opened = Store.open
    gate = threading.Event()
    monkeypatch.setattr(Store, "open", lambda self: (gate.wait(3), opened(self)))
    with pytest.raises(Exception, match="persistence.*did not answer within 1s of starting"):
        start_system(ask_timeout_s=0.2, database_open_timeout_s=1.0)
