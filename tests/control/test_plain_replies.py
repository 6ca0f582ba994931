"""Control replies show plain decimals: `sell 180`, never `sell 1.8E+2`."""

from __future__ import annotations

from pathlib import Path

import pytest

from control.cli import main
from control.server import ControlServer
from messages import ControlReply
from tests.control.conftest import FakeTarget, write_config
from tests.control.test_cli import TOKEN, write_token

pytestmark = pytest.mark.timeout(10)


def test_a_control_reply_prints_plain_decimals(tmp_path: Path, server: ControlServer, target: FakeTarget,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    write_token(tmp_path / "storage", TOKEN)
    config = write_config(tmp_path, server.port)
    target.reply_override = ControlReply(ok=True, detail="BTC/USD:USD: flatten sent: sell 1.8E+2 reduce-only market",
                                         symbols=("BTC/USD:USD",))
    assert main(["flatten", "BTC/USD:USD", "--yes", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "flatten sent: sell 180 reduce-only market" in out
    assert "E+" not in out
