"""The short soak: the bot killed (SIGKILL) at random moments while trading under faults, then checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.soak import SoakRun


@pytest.mark.timeout(240)
def test_short_soak_kills_never_double_an_order_or_a_position(tmp_path: Path) -> None:
    report = SoakRun(tmp_path, kills=3, min_life_s=1.5, max_life_s=4.0, final_s=6.0, seed=3).run()
    print(report.summary())
    assert report.problems == [], report.summary() + "\n" + "\n".join(report.problems)
    assert report.kills == 3 and report.intents > 0 and report.orders_placed > 0
    assert sum(report.faults_injected.values()) > 0  # it really ran under faults
    assert 0 < report.max_position_ratio <= 1.0
