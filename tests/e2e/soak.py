"""Soak: kill the bot (SIGKILL) at random moments while it trades several symbols under faults.

A standalone simulator runs in its own process (so the exchange outlives the bot), with
probabilistic faults on. The bot (`run.py` with a scripted strategy, pyramiding off) is started,
killed after a random time, started again, and so on; the last run ends cleanly. Then:
- no intent has two orders on the exchange (the simulator's record of every order it received);
- no position ever grew past one entry (the simulator's fills replayed in order);
- every order the simulator holds is known to the database (after the last reconciliation).
Used by the short test in CI (tests/e2e/test_soak.py) and by benchmarks/soak.py (the long run).
"""

from __future__ import annotations

import base64
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from simulator import AdminClient

REPO = Path(__file__).resolve().parents[2]
SYMBOLS = ("BTC/USD:USD", "ETH/USD:USD", "SOL/USD:USD")
EXCHANGE_IDS = {"BTC/USD:USD": "PF_XBTUSD", "ETH/USD:USD": "PF_ETHUSD", "SOL/USD:USD": "PF_SOLUSD"}
FAULTS = {"unavailable": 0.05, "http_429": 0.02, "reset": 0.03, "accept_then_drop": 0.08, "api_limit": 0.02,
          "accept_then_timeout": 0.02, "hold_ms": 2500.0}


@dataclass
class SoakReport:
    """What a soak run did and what it found."""

    kills: int = 0
    runs: int = 0
    seconds: float = 0.0
    intents: int = 0
    orders_placed: int = 0
    orders_rejected_by_exchange: int = 0
    faults_injected: dict[str, int] = field(default_factory=dict)
    unknown_outcomes: int = 0
    resends: int = 0
    max_position_ratio: float = 0.0  # largest position seen / one entry's size
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """The figures in one paragraph."""
        faults = ", ".join(f"{k} {v}" for k, v in sorted(self.faults_injected.items())) or "none"
        return (
            f"{self.kills} kills over {self.runs} runs in {self.seconds:.0f}s: {self.intents} intents, "
            f"{self.orders_placed} orders placed, {self.orders_rejected_by_exchange} refused by the exchange; "
            f"faults injected: {faults}; {self.unknown_outcomes} unknown outcomes resolved, {self.resends} re-sends; "
            f"largest position {self.max_position_ratio:.2f}x one entry; "
            f"{'no problems' if not self.problems else f'{len(self.problems)} PROBLEMS'}"
        )


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(folder: Path, base_url: str, control_port: int) -> Path:
    """The bot's configuration for the soak: scripted strategy, quick timers, the standalone simulator."""
    path = folder / "config.toml"
    symbols = ", ".join(f'"{s}"' for s in SYMBOLS)
    path.write_text(
        f"""
mode = "paper"
storage_dir = "storage"
[exchange]
url = "{base_url}"
timeout_s = 2
reconcile_interval_s = 5
resend_max_age_s = 30
[database]
url = "sqlite:///storage/trading.db"
[trading]
symbols = [{symbols}]
timeframe = "1m"
tick_interval_s = 0.25
pyramiding = false
order_notional = 100
position_sync_interval_s = 2
[risk]
max_open_positions = 3
max_notional_per_order = 1000
max_total_notional = 3000
[strategy]
name = "scripted"
[strategy.params]
period = 4
hold = 2
[control]
port = {control_port}
[logging]
level = "INFO"
file = "storage/trading.log"
"""
    )
    return path


class SoakRun:
    """One soak: a simulator process, a bot process killed and restarted, and the checks at the end."""

    def __init__(self, folder: Path, *, kills: int, min_life_s: float = 1.5, max_life_s: float = 5.0,
                 final_s: float = 6.0, seed: int = 1, speed: float = 60.0) -> None:
        self.folder = folder
        self.kills = kills
        self.min_life_s, self.max_life_s, self.final_s = min_life_s, max_life_s, final_s
        self.seed = seed
        self.speed = speed
        self.rng = random.Random(seed)
        self.api_key = "soak-key"
        self.api_secret = base64.b64encode(b"soak-secret-" + bytes(range(20))).decode()
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.admin = AdminClient(self.base_url, timeout_s=10)
        self.sim: subprocess.Popen[bytes] | None = None
        self.env = {**os.environ, "KRAKEN_FUTURES_API_KEY": self.api_key,
                    "KRAKEN_FUTURES_API_SECRET": self.api_secret, "PYTHONPATH": str(REPO)}

    def start_simulator(self) -> None:
        """Start the standalone simulator and wait until it answers."""
        log = open(self.folder / "simulator.log", "wb")  # noqa: SIM115 - closed with the process
        self.sim = subprocess.Popen(
            [sys.executable, str(REPO / "run.py"), "simulator", "--port", str(self.port), "--seed", str(self.seed),
             "--speed", str(self.speed), "--api-key", self.api_key, "--api-secret", self.api_secret,
             "--volatility", "0.02"],
            stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.folder,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                self.admin.state()
                return
            except OSError:
                if time.monotonic() > deadline or self.sim.poll() is not None:
                    raise RuntimeError(f"the simulator did not start; see {self.folder / 'simulator.log'}") from None
                threading.Event().wait(0.1)

    def start_bot(self, config: Path) -> subprocess.Popen[bytes]:
        """Start the bot as a process of its own."""
        log = open(self.folder / "bot.log", "ab")  # noqa: SIM115 - closed with the process
        return subprocess.Popen([sys.executable, str(REPO / "run.py"), "--config", str(config)],
                                stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.folder)

    def run(self) -> SoakReport:
        """Kill and restart the bot `kills` times under faults, stop it cleanly, then check."""
        report = SoakReport()
        started = time.monotonic()
        self.start_simulator()
        try:
            self.admin.set_faults(**FAULTS)
            config = write_config(self.folder, self.base_url, free_port())
            for _ in range(self.kills):
                bot = self.start_bot(config)
                report.runs += 1
                life = self.rng.uniform(self.min_life_s, self.max_life_s)
                if _exited_within(bot, life):
                    report.problems.append(f"the bot exited by itself (code {bot.returncode}); see bot.log")
                    break
                bot.send_signal(signal.SIGKILL)
                bot.wait(10)
                report.kills += 1
            self.admin.clear_faults()
            bot = self.start_bot(config)  # the last run: reconcile, trade a little, stop cleanly
            report.runs += 1
            if _exited_within(bot, self.final_s):
                report.problems.append(f"the last run exited by itself (code {bot.returncode}); see bot.log")
            else:
                bot.send_signal(signal.SIGTERM)
                if bot.wait(60) != 0:
                    report.problems.append(f"the last run stopped with code {bot.returncode}")
            self.check(report)
        finally:
            if self.sim is not None:
                self.sim.send_signal(signal.SIGTERM)
                try:
                    self.sim.wait(20)
                except subprocess.TimeoutExpired:
                    self.sim.kill()
        report.seconds = time.monotonic() - started
        return report

    def check(self, report: SoakReport) -> None:
        """The three promises, from the simulator's records and the bot's database."""
        state = self.admin.state()
        report.faults_injected = dict(state["faults"]["injected"])
        db = sqlite3.connect(self.folder / "storage" / "trading.db")
        intents = {row[0]: row for row in db.execute(
            "SELECT client_order_id, symbol, amount, reduce_only, status FROM intent")}
        known_order_ids = {row[0] for row in db.execute("SELECT exchange_order_id FROM \"order\" "
                                                         "WHERE exchange_order_id IS NOT NULL")}
        report.intents = len(intents)
        report.unknown_outcomes = db.execute(
            "SELECT COUNT(DISTINCT intent_hash) FROM event WHERE kind = 'ORDER_UPDATE' AND reason = 'OUTCOME_UNKNOWN'"
        ).fetchone()[0]
        report.resends = db.execute(
            "SELECT COUNT(*) FROM event WHERE kind = 'ORDER_UPDATE' AND detail LIKE 'SUBMITTED%attempt 2%'"
        ).fetchone()[0]
        open_intents = [cid for cid, row in intents.items() if row[4] not in ("FILLED", "CANCELED", "REJECTED")]
        db.close()
        placed = [o for o in state["orders"] if o["status"] == "placed"]
        report.orders_placed = len(placed)
        report.orders_rejected_by_exchange = sum(1 for o in state["orders"] if o["status"] != "placed")
        per_cid: dict[str, int] = {}
        for order in placed:
            per_cid[order["cliOrdId"]] = per_cid.get(order["cliOrdId"], 0) + 1
            if order["cliOrdId"] not in intents and order["order_id"] not in known_order_ids:
                report.problems.append(f"order {order['order_id']} ({order['cliOrdId']}) is unknown to the database")
        for cid, count in per_cid.items():
            if count > 1:
                report.problems.append(f"intent {cid} has {count} orders on the exchange")
        if open_intents:
            report.problems.append(f"{len(open_intents)} intents still unresolved after the clean stop")
        entry_size = {s: max((Decimal(r[2]) for r in intents.values() if r[1] == s and not r[3]), default=None)
                      for s in SYMBOLS}
        positions: dict[str, Decimal] = {}
        worst = 0.0
        for fill in sorted(state["fills"], key=lambda f: (f["time"], f["fill_id"])):
            symbol = next((s for s, ex in EXCHANGE_IDS.items() if ex == fill["symbol"]), fill["symbol"])
            signed = Decimal(fill["size"]) * (1 if fill["side"] == "buy" else -1)
            positions[symbol] = positions.get(symbol, Decimal(0)) + signed
            one = entry_size.get(symbol)
            if one:
                ratio = float(abs(positions[symbol]) / one)
                worst = max(worst, ratio)
                if ratio > 1.0 + 1e-9:
                    report.problems.append(f"{symbol} position reached {positions[symbol]} (> one entry of {one})")
        report.max_position_ratio = worst
        (self.folder / "report.json").write_text(json.dumps(report.__dict__, indent=1, default=str))


def _exited_within(process: subprocess.Popen[bytes], seconds: float) -> bool:
    try:
        process.wait(seconds)
    except subprocess.TimeoutExpired:
        return False
    return True
