"""[retention] reaches the writer: the portfolio's archive timer tells persistence to archive each table past its
age."""

from __future__ import annotations

from decimal import Decimal

import pykka
import pytest

from actors.portfolio import PortfolioActor, PortfolioSettings
from actors.risk import RiskBook, RiskLimits
from actors.supervision import RestartPolicy
from actors.system import make_trader_factory
from configuration import AppConfig
from messages import ArchiveHistory, LoadOpenIntents, Tick, now_ms
from tests.helpers import start_recorder

pytestmark = pytest.mark.timeout(30)


def test_the_archive_tick_tells_persistence_one_archive_per_configured_table(tmp_path) -> None:
    persistence, inbox = start_recorder(lambda m: [] if isinstance(m, LoadOpenIntents) else None)
    gateway, _ = start_recorder()
    settings = PortfolioSettings(archive_after_ms=(("fills", 86_400_000), ("events", 2 * 86_400_000)),
                                 archive_dir=str(tmp_path / "archive"), archive_interval_s=3600)
    portfolio = PortfolioActor.start(
        markets={}, trader_factory=make_trader_factory(AppConfig()),
        risk=RiskBook(limits=RiskLimits(1, Decimal(1), Decimal(1)), markets={}),
        restart_policy=RestartPolicy(max_restarts=1, window_s=60, backoff_initial_s=0.01, backoff_max_s=0.01),
        settings=settings, persistence=persistence, gateway=gateway)
    try:
        before = now_ms()
        portfolio.tell(Tick(name="archive"))
        told = inbox.wait_for(ArchiveHistory, count=2)
        assert [m.tables for m in told] == [("fills",), ("events",)]
        assert all(m.folder == str(tmp_path / "archive") for m in told)
        assert before - 86_400_000 <= told[0].before <= now_ms() - 86_400_000
        assert before - 2 * 86_400_000 <= told[1].before <= now_ms() - 2 * 86_400_000
    finally:
        pykka.ActorRegistry.stop_all()
