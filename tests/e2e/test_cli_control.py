"""The control commands end to end: a bot process trading on a simulator process, driven by `run.py` commands."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from exchange import make_kraken_client
from tests.e2e.soak import REPO, SoakRun, free_port, write_config
from tests.helpers import wait_until


class Cli:
    """Runs `run.py <command> --config ...` as a user would."""

    def __init__(self, run: SoakRun, config: Path) -> None:
        self.run_ = run
        self.config = config

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(REPO / "run.py"), *args, "--config", str(self.config)],
                              capture_output=True, text=True, timeout=60, cwd=self.config.parent,
                              env={k: v for k, v in (env or self.run_.env).items() if k != "COLUMNS"})  # piped

    def status(self) -> dict:
        result = self("status", "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)


class CliSession:
    """A simulator process, the bot as a process of its own (restartable) and the command line against them; the
    processes are ended when the `with` block ends, however it ends."""

    def __init__(self, folder: Path, seed: int) -> None:
        self.run = SoakRun(folder, kills=0, seed=seed)
        self.bots: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> CliSession:
        self.run.start_simulator()
        self.cli = Cli(self.run, write_config(self.run.folder, self.run.base_url, free_port(), self.run.settings))
        return self

    def start_bot(self) -> subprocess.Popen[bytes]:
        bot = self.run.start_bot()
        self.bots.append(bot)
        return bot

    def __exit__(self, *exc: object) -> None:
        for bot in self.bots:
            if bot.poll() is None:
                bot.kill()
        if self.run.sim is not None:
            self.run.sim.terminate()
            self.run.sim.wait(20)


def wait_for(condition, timeout: float, what: str):
    return wait_until(condition, timeout=timeout, message=what)


def orders_of(run: SoakRun, exchange_symbol: str) -> list[dict]:
    return [o for o in run.admin.state()["orders"] if o["status"] == "placed" and o["symbol"] == exchange_symbol
            and o["cliOrdId"]]


def positions(run: SoakRun) -> dict[str, Decimal]:
    return {p["symbol"]: Decimal(p["size"]) for p in run.admin.state()["positions"] if Decimal(p["size"]) != 0}


def reconciled(cli: Cli) -> bool:
    result = cli("status", "--json")
    return result.returncode == 0 and json.loads(result.stdout)["reconciled"]


@pytest.mark.timeout(240)
def test_pause_resume_halt_flatten_cancel_and_stop_from_the_command_line(tmp_path: Path) -> None:
    with CliSession(tmp_path, seed=9) as session:
        run, cli = session.run, session.cli
        bot = session.start_bot()
        wait_for(lambda: reconciled(cli), 30, "the bot to run and reconcile")
        # pause one symbol: it sends nothing more while the others keep trading
        result = cli("pause", "BTC/USD:USD")
        assert result.returncode == 0 and "BTC/USD:USD" in result.stdout
        btc_before, eth_before = len(orders_of(run, "PF_XBTUSD")), len(orders_of(run, "PF_ETHUSD"))
        wait_for(lambda: len(orders_of(run, "PF_ETHUSD")) >= eth_before + 2, 30, "ETH to keep trading")
        assert len(orders_of(run, "PF_XBTUSD")) == btc_before
        rows = {r["symbol"]: r for r in cli.status()["symbols"]}
        assert rows["BTC/USD:USD"]["state"] == "PAUSED" and rows["ETH/USD:USD"]["state"] != "PAUSED"
        assert rows["BTC/USD:USD"]["rejections"].get("PAUSED", 0) >= 1  # its signals are recorded as PAUSED
        table = cli("status")
        assert table.returncode == 0 and "BTC/USD:USD" in table.stdout and "PAUSED" in table.stdout.upper()
        # stop from the command line; the pause survives the restart
        assert cli("stop").returncode == 0
        assert bot.wait(60) == 0
        assert cli("status").returncode == 3  # nothing running now, and it says so
        bot = session.start_bot()
        wait_for(lambda: reconciled(cli), 30, "the restarted bot to reconcile")
        assert {r["symbol"]: r["state"] for r in cli.status()["symbols"]}["BTC/USD:USD"] == "PAUSED"
        # resume restores it
        btc_before = len(orders_of(run, "PF_XBTUSD"))
        assert cli("resume", "BTC/USD:USD").returncode == 0
        wait_for(lambda: len(orders_of(run, "PF_XBTUSD")) > btc_before, 30, "BTC to trade again")
        # halt: no new entries anywhere; exits still go
        assert cli("halt", "--reason", "news").returncode == 0
        halted_at = len(run.admin.state()["orders"])
        wait_for(lambda: any(r["rejections"].get("HALTED") for r in cli.status()["symbols"]), 30, "a halted signal")
        new = [o for o in run.admin.state()["orders"][halted_at:] if o["status"] == "placed"]
        assert all(o["reduceOnly"] for o in new), new
        # flatten everything, then cancel every open order (one placed by hand)
        client = make_kraken_client(run.base_url, run.api_key, run.api_secret)
        client.load_markets()
        client.create_order("SOL/USD:USD", "limit", "buy", 1, float(client.fetch_ticker("SOL/USD:USD")["bid"]) * 0.8)
        assert cli("flatten", "--all").returncode == 2  # no terminal and no --yes: refused, nothing sent
        result = cli("flatten", "--all", "--yes")
        assert result.returncode == 0, result.stderr
        wait_for(lambda: positions(run) == {}, 30, "no position on the simulator")
        assert cli("cancel", "--all").returncode == 0
        assert [o for o in run.admin.state()["orders"] if o["state"] == "open"] == []
        # a wrong token changes nothing
        wrong = {**run.env, "KRAKEN_BOT_CONTROL_TOKEN": "not-the-token"}
        refused = cli("resume", "--all", env=wrong)
        assert refused.returncode == 2 and "token" in refused.stderr.lower()
        assert all(r["state"] == "HALTED" for r in cli.status()["symbols"])
        unknown = cli("pause", "NOPE/USD:USD")
        assert unknown.returncode == 1 and "unknown symbol" in unknown.stderr
        assert cli("stop").returncode == 0
        assert bot.wait(60) == 0
    assert "Traceback" not in (tmp_path / "bot.log").read_text()
