"""Soak: kill the bot (SIGKILL) at random moments while it trades several symbols on Kraken's rules under faults.

A standalone simulator runs in its own process (the exchange outlives the bot) with its strict defaults
(cliOrdId refused only while an open order carries it, processBefore honoured, the order history published
late, a finite book, resting orders filled in parts) plus probabilistic faults: 503, 429, apiLimitExceeded,
connection resets, time-outs, accept-then-drop / accept-then-timeout on sends, and `late` (a send held inside
the exchange and processed after the client gave up; its delay is re-drawn all the time, so some are processed
before their processBefore and placed, some after and refused). The first two `sendorder` (a lone order) and
the first two `batchorder` requests (a burst: the symbols signalling at one close, under one request-level
ProcessBefore) are held `late` for certain, one of each processed before its processBefore, one after.
`cli_ord_id_scope="none"` switches the exchange's duplicate-id refusal off entirely: then nothing can rest on it.

The bot (`run.py`, scripted strategy entering every other candle, pyramiding off) is started, killed after a
random time, started again, and so on; the last run trades without faults, is paused (`run.py pause --all`)
and runs on until every intent is final and no held request is pending, its `run.py status --json` is read,
and it is stopped cleanly. Then, from the simulator's order request record (every send and its outcome), its
fills and the bot's SQLite database:
- at most one placed order per intent (`order_requests`, kind send, status placed, per cliOrdId; a
  batchorder instruction is a send row too);
- every send of ours carried processBefore; none processed at or after it was placed, none refused as too
  late before it (the exchange's side of the late-send case);
- no position above one entry at any moment (the simulator's fills replayed in order);
- every exchange order and fill of ours known to the database, no fill in the database the exchange never
  made, no intent the database calls REJECTED while the exchange placed it;
- every intent final after the clean stop, no symbol BLOCKED without a reason (tests/e2e/promise.py
  `check_promise` does the shared part).

Used by the short test in CI (tests/e2e/test_soak.py) and by benchmarks/soak.py (the long run).

The bot reaches this simulator through `[exchange] url`, and then runs its clock at rate 1 (only the built-in
paper simulator gets `paper.speed`): every window (`process_before_s`, `clock_skew_s`, `history_lag_s`) is
taken in exchange seconds, and the bot's view of the exchange clock falls behind between two readings by
(speed - 1) x the time since the last one. The speed is kept low enough (default 20) and processBefore long
enough (30 exchange seconds = 1.5 s real) that this lag does not turn most sends into refusals.

By default half of the kills are aimed (`aimed`): the bot is killed 0-400 ms after a send was recorded in its
database (the moment between "sent" and "answer, fills and position booked" where a crash hurts most); the
others at a random time.
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
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `python -m tests.e2e.soak serve ...` from the soak folder
    sys.path.insert(0, str(REPO))

from simulator import AdminClient  # noqa: E402 - importable only after the sys.path insert above

SYMBOLS = ("BTC/USD:USD", "ETH/USD:USD", "SOL/USD:USD", "LTC/USD:USD", "XRP/USD:USD")
FINAL = ("FILLED", "CANCELED", "REJECTED")
# Probabilities per request (order-entry kinds only on sendorder/batchorder); hold_ms and late_ms are re-drawn
# by the fault driver while the soak runs.
FAULTS: dict[str, float] = {
    "unavailable": 0.04, "http_429": 0.02, "api_limit": 0.02, "reset": 0.03, "timeout": 0.01,
    "accept_then_drop": 0.06, "accept_then_timeout": 0.02, "late": 0.10,
}
# The order-entry requests the bot sends (a lone order by sendorder, a burst by batchorder): the scheduled
# `late` faults are put on each of them.
SCHEDULED_LATE_ENDPOINTS = ("sendorder", "batchorder")


@dataclass(frozen=True)
class SoakSettings:
    """The exchange's rules and the bot's windows for one soak."""

    cli_ord_id_scope: str = "open"  # the simulator's default; "none" = no duplicate-id refusal at all
    speed: float = 20.0  # simulated seconds per real second (a 1m candle every 3 s)
    history_lag_ms: int = 4_000  # the simulator's order-history publication lag (simulator clock)
    process_before_s: float = 30.0  # the bot's windows, in exchange seconds (its clock rate is 1, see above)
    clock_skew_s: float = 2.0
    history_lag_s: float = 6.0  # must cover the simulator's history_lag_ms
    timeout_s: float = 2.0  # the bot's HTTP time-out (wall)
    late_ms: tuple[float, float] = (2_000.0, 60_000.0)  # `late` processing delay drawn in this range (sim clock)
    hold_ms: tuple[float, float] = (300.0, 3_000.0)  # how long a held client waits before its connection drops
    protection: bool = False  # [protection] on: a stop-loss and take-profit on the exchange for every position
    # The bot's (wall seconds); the protection promises allow one of these. A stop whose send's outcome is unknown
    # cannot be replaced before it is proven absent (else two stops): processBefore + clock_skew + history_lag
    # (38 exchange s here, about 2 s of wall at speed 20) plus the lookups' back-off, again after a restart. An
    # interval not well above that cannot be kept without guessing, so the protection soaks use 10 s (the shipped
    # config: 60 s against a 12 s window).
    reconcile_interval_s: float = 5.0

    def __post_init__(self) -> None:
        if self.history_lag_ms > self.history_lag_s * 1000:
            raise ValueError("the simulator's history lag must stay inside the bot's history_lag_s")


@dataclass
class SoakReport:
    """What a soak run did and what it found."""

    scope: str = "open"
    seed: int = 0
    kills: int = 0
    aimed_kills: int = 0  # killed 0-400 ms after a send was recorded
    runs: int = 0
    seconds: float = 0.0
    intents: int = 0
    sends: int = 0  # send requests the exchange received (re-sends included)
    orders_placed: int = 0
    sends_refused: dict[str, int] = field(default_factory=dict)  # by the exchange's status
    faults_injected: dict[str, int] = field(default_factory=dict)
    late_outcomes: dict[str, int] = field(default_factory=dict)  # status of the sends held by `late`
    late_requests: dict[str, int] = field(default_factory=dict)  # the same per request ("batchorder: placed", ...)
    sends_without_process_before: int = 0  # send rows of our intents that carried no processBefore
    unknown_outcomes: int = 0  # intents that had an OUTCOME_UNKNOWN
    unknown_ends: dict[str, int] = field(default_factory=dict)  # how those intents ended
    resends: int = 0  # sends of an intent after its first
    not_placed: int = 0
    final_states: dict[str, int] = field(default_factory=dict)
    blocked_at_end: list[str] = field(default_factory=list)
    max_position_ratio: float = 0.0  # largest position seen / one entry's size
    protective_placed: dict[str, int] = field(default_factory=dict)  # stop-losses / take-profits the exchange placed
    protective_filled: int = 0  # of them filled (positions closed by the exchange)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """The figures in one paragraph."""

        def counts(values: dict[str, int]) -> str:
            return ", ".join(f"{k} {v}" for k, v in sorted(values.items())) or "none"

        return (
            f"scope {self.scope!r}, seed {self.seed}: {self.kills} kills ({self.aimed_kills} aimed at a send) "
            f"over {self.runs} runs in {self.seconds:.0f}s; "
            f"{self.intents} intents ({counts(self.final_states)}), {self.sends} sends, {self.orders_placed} placed, "
            f"refused by the exchange: {counts(self.sends_refused)}; "
            f"faults injected ({sum(self.faults_injected.values())}): "
            f"{counts(self.faults_injected)}; late sends: {counts(self.late_outcomes)} "
            f"(per request: {counts(self.late_requests)}); "
            f"{self.unknown_outcomes} unknown outcomes resolved ({counts(self.unknown_ends)}), "
            f"{self.resends} re-sends, "
            f"{self.not_placed} NOT_PLACED; largest position {self.max_position_ratio:.2f}x one entry; "
            f"protective orders placed: {counts(self.protective_placed)} ({self.protective_filled} filled); "
            f"blocked at the end: {', '.join(self.blocked_at_end) or 'none'}; "
            f"{'no problems' if not self.problems else f'{len(self.problems)} PROBLEMS'}"
        )


class _SimulatorView:
    """What tests/e2e/promise.py needs of a simulator handle (`.admin`), for one in another process."""

    def __init__(self, admin: AdminClient) -> None:
        self.admin = admin


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(folder: Path, base_url: str, control_port: int, settings: SoakSettings) -> Path:
    """The bot's configuration for the soak: scripted strategy, quick timers, the standalone simulator."""
    path = folder / "config.toml"
    symbols = ", ".join(f'"{s}"' for s in SYMBOLS)
    path.write_text(
        f"""
mode = "paper"
storage_dir = "storage"
[exchange]
url = "{base_url}"
timeout_s = {settings.timeout_s}
reconcile_interval_s = {settings.reconcile_interval_s}
resend_max_age_s = 30
process_before_s = {settings.process_before_s}
clock_skew_s = {settings.clock_skew_s}
history_lag_s = {settings.history_lag_s}
[database]
url = "sqlite:///storage/trading.db"
[trading]
symbols = [{symbols}]
timeframe = "1m"
tick_interval_s = 0.25
pyramiding = false
order_notional = 100
position_sync_interval_s = 1
[risk]
max_open_positions = {len(SYMBOLS)}
max_notional_per_order = 1000
max_total_notional = {200 * len(SYMBOLS)}
[strategy]
name = "scripted"
[strategy.params]
period = 2
hold = 1
[control]
port = {control_port}
[logging]
level = "INFO"
file = "storage/trading.log"
"""
        + ("""[protection]
enabled = true
stop_loss_pct = 0.1
take_profit_pct = 0.15
""" if settings.protection else "")
    )
    return path


class SoakRun:
    """One soak: a simulator process, a bot process killed and restarted, and the checks at the end."""

    def __init__(self, folder: Path, *, kills: int, min_life_s: float = 1.5, max_life_s: float = 5.0,
                 final_s: float = 4.0, settle_s: float = 60.0, seed: int = 1, aimed: float = 0.5,
                 settings: SoakSettings | None = None) -> None:
        """`aimed`: the share of kills aimed 0-400 ms after a recorded send (the rest at a random moment)."""
        self.folder = folder
        self.kills = kills
        self.min_life_s, self.max_life_s = min_life_s, max_life_s
        self.final_s, self.settle_s = final_s, settle_s
        self.seed = seed
        self.aimed = aimed
        self.settings = settings or SoakSettings()
        self.rng = random.Random(seed)
        self.api_key = "soak-key"
        self.api_secret = base64.b64encode(b"soak-secret-" + bytes(range(20))).decode()
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.admin = AdminClient(self.base_url, timeout_s=10)
        self.sim: subprocess.Popen[bytes] | None = None
        self.env = {**os.environ, "KRAKEN_FUTURES_API_KEY": self.api_key,
                    "KRAKEN_FUTURES_API_SECRET": self.api_secret, "PYTHONPATH": str(REPO)}
        self.config = folder / "config.toml"
        self.status: dict[str, Any] | None = None
        self._stop_driver = threading.Event()
        self.lives: list[tuple[int, int]] = []  # each bot run, (started, stopped) on the simulator's clock

    # --- processes ---------------------------------------------------------------------------

    def simulator_config(self) -> dict[str, Any]:
        """The simulator's configuration: strict defaults, plus the soak's scope, speed and history lag."""
        return {"port": self.port, "seed": self.seed, "speed": self.settings.speed, "api_key": self.api_key,
                "api_secret": self.api_secret, "volatility": 0.02,
                "cli_ord_id_scope": self.settings.cli_ord_id_scope, "history_lag_ms": self.settings.history_lag_ms}

    def start_simulator(self) -> None:
        """Start the standalone simulator (`serve` below) and wait until it answers."""
        log = open(self.folder / "simulator.log", "wb")  # noqa: SIM115 - closed with the process
        self.sim = subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.soak", "serve", json.dumps(self.simulator_config())],
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

    def stop_simulator(self) -> None:
        """Stop the simulator process (SIGTERM, then SIGKILL after 20 s)."""
        if self.sim is not None:
            self.sim.send_signal(signal.SIGTERM)
            try:
                self.sim.wait(20)
            except subprocess.TimeoutExpired:
                self.sim.kill()
            self.sim = None

    def start_bot(self) -> subprocess.Popen[bytes]:
        """Start the bot as a process of its own."""
        log = open(self.folder / "bot.log", "ab")  # noqa: SIM115 - closed with the process
        return subprocess.Popen([sys.executable, str(REPO / "run.py"), "--config", str(self.config)],
                                stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.folder)

    def cli(self, *args: str, timeout_s: float = 15.0) -> subprocess.CompletedProcess[str]:
        """`run.py <args> --config <soak config>`."""
        return subprocess.run([sys.executable, str(REPO / "run.py"), *args, "--config", str(self.config)],
                              capture_output=True, text=True, env=self.env, cwd=self.folder, timeout=timeout_s,
                              check=False)

    def drive_faults(self) -> None:
        """Re-draw the `late` processing delay and the client hold every 0.3-1 s (some late sends land before
        their processBefore and are placed, some after and are refused)."""
        while not self._stop_driver.wait(self.rng.uniform(0.3, 1.0)):
            try:
                self.admin.set_faults(late_ms=round(self.rng.uniform(*self.settings.late_ms)),
                                      hold_ms=round(self.rng.uniform(*self.settings.hold_ms)))
            except OSError:
                pass

    # --- the soak ----------------------------------------------------------------------------

    def run(self) -> SoakReport:
        """Kill and restart the bot `kills` times under faults, let the last run settle and stop it, then check."""
        report = SoakReport(scope=self.settings.cli_ord_id_scope, seed=self.seed)
        started = time.monotonic()
        (self.folder / "storage").mkdir(parents=True, exist_ok=True)
        self.start_simulator()
        driver = threading.Thread(target=self.drive_faults, name="soak-faults", daemon=True)
        try:
            self.admin.set_faults(**FAULTS, late_ms=self.settings.late_ms[1], hold_ms=self.settings.hold_ms[1])
            horizon_ms = self.settings.process_before_s * 1000  # processBefore, exchange ms after the send
            # The first two order requests of each kind: one placed late, one too late. Orders that reach the
            # gateway together (the symbols signalling at one close) go in one `batchorder` whose request-level
            # ProcessBefore covers every instruction; a lone order goes by `sendorder`. The simulator matches
            # a scheduled fault by endpoint name, so each is scheduled on both.
            for endpoint in SCHEDULED_LATE_ENDPOINTS:
                for late_ms in (0.3 * horizon_ms, 1.5 * horizon_ms):
                    self.admin.schedule_fault("late", endpoint=endpoint, count=1, delay_ms=self.settings.timeout_s
                                              * 1000 + 500, late_ms=late_ms)
            write_config(self.folder, self.base_url, free_port(), self.settings)
            driver.start()
            for _ in range(self.kills):
                born = self.sim_now()
                bot = self.start_bot()
                report.runs += 1
                life = self.rng.uniform(self.min_life_s, self.max_life_s)
                aimed = self.rng.random() < self.aimed
                if aimed:
                    exited = self.wait_for_send(bot, life + self.max_life_s)
                else:
                    exited = _exited_within(bot, life)
                if exited:
                    report.problems.append(f"the bot exited by itself (code {bot.returncode}); see bot.log")
                    break
                bot.send_signal(signal.SIGKILL)
                bot.wait(10)
                self.lives.append((born, self.sim_now()))
                report.kills += 1
                report.aimed_kills += int(aimed)
            self._stop_driver.set()
            driver.join(5)
            self.admin.clear_faults()  # held requests stay held until their time
            self.final_run(report)
            self.check(report)
        finally:
            self._stop_driver.set()
            self.stop_simulator()
            report.seconds = time.monotonic() - started
            (self.folder / "report.json").write_text(json.dumps(asdict(report), indent=1, default=str))
        return report

    def sim_now(self) -> int:
        """The simulator's clock (ms)."""
        return int(self.admin.now()["now"])

    def final_run(self, report: SoakReport) -> None:
        """The last run: trade without faults until everything is final, read the status, stop cleanly."""
        born = self.sim_now()
        try:
            self._final_run(report)
        finally:
            self.lives.append((born, self.sim_now()))

    def _final_run(self, report: SoakReport) -> None:
        bot = self.start_bot()
        report.runs += 1
        if _exited_within(bot, self.final_s):
            report.problems.append(f"the last run exited by itself (code {bot.returncode}); see bot.log")
            return
        # no new entries from here (exits, resolution and following go on): the run can settle
        for _ in range(20):
            if self.cli("pause", "--all").returncode == 0:
                break
            threading.Event().wait(0.5)
        else:
            report.problems.append("`run.py pause --all` was refused for 10 s")
        if self.settings.protection:  # positions closed, so their stop-losses and take-profits end too
            for _ in range(20):
                if self.cli("flatten", "--all", "--yes").returncode == 0:
                    break
                threading.Event().wait(0.5)
        deadline = time.monotonic() + self.settle_s
        while time.monotonic() < deadline and bot.poll() is None:
            status = self.read_status()
            if status is not None and status.get("reconciled") and not self.unfinished() \
                    and not self.admin.state()["late_pending"]:
                self.status = status
                break
            threading.Event().wait(0.5)
        else:
            self.status = self.read_status()
            if bot.poll() is None:
                report.problems.append(f"the last run did not settle within {self.settle_s:.0f}s: "
                                       f"unfinished intents {self.unfinished()}, "
                                       f"held requests {self.admin.state()['late_pending']}")
        if bot.poll() is not None:
            report.problems.append(f"the last run exited by itself (code {bot.returncode}); see bot.log")
            return
        bot.send_signal(signal.SIGTERM)
        try:
            if bot.wait(60) != 0:
                report.problems.append(f"the last run stopped with code {bot.returncode}")
        except subprocess.TimeoutExpired:
            bot.kill()
            report.problems.append("the last run did not stop within 60 s of SIGTERM")

    def sends_recorded(self) -> int:
        """How many sends the bot's database has recorded (SUBMITTED updates)."""
        if not self.database().exists():
            return 0
        try:
            db = sqlite3.connect(f"file:{self.database()}?mode=ro", uri=True, timeout=1)
            try:
                return int(db.execute("SELECT COUNT(*) FROM event WHERE kind = 'ORDER_UPDATE' "
                                      "AND detail LIKE 'SUBMITTED%'").fetchone()[0])
            finally:
                db.close()
        except sqlite3.Error:
            return 0

    def wait_for_send(self, bot: subprocess.Popen[bytes], limit_s: float) -> bool:
        """Wait until the bot records a new send, then 0-400 ms more (or `limit_s` in all); True if it exited."""
        before = self.sends_recorded()
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if bot.poll() is not None:
                return True
            if self.sends_recorded() > before:
                return _exited_within(bot, self.rng.uniform(0.0, 0.4))
            threading.Event().wait(0.02)
        return bot.poll() is not None

    def read_status(self) -> dict[str, Any] | None:
        """`run.py status --json`, or None while the control endpoint does not answer."""
        try:
            done = self.cli("status", "--json")
        except subprocess.TimeoutExpired:
            return None
        if done.returncode != 0:
            return None
        try:
            data = json.loads(done.stdout)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def database(self) -> Path:
        return self.folder / "storage" / "trading.db"

    def unfinished(self) -> list[str]:
        """Client order ids of intents not in a final state (read while the bot runs: WAL readers are fine)."""
        if not self.database().exists():
            return []
        db = sqlite3.connect(f"file:{self.database()}?mode=ro", uri=True, timeout=5)
        try:
            placeholders = ",".join("?" * len(FINAL))
            rows = db.execute(f"SELECT client_order_id FROM intent WHERE status NOT IN ({placeholders})", FINAL)
            return [row[0] for row in rows]
        except sqlite3.Error:
            return ["(database unreadable)"]
        finally:
            db.close()

    # --- the checks --------------------------------------------------------------------------

    def check(self, report: SoakReport) -> None:
        """The promise, from the simulator's records and the bot's database."""
        from messages import PortfolioStatus
        from tests.e2e.promise import check_promise

        state = self.admin.state()
        sends = [r for r in state["order_requests"] if r["kind"] == "send"]
        report.faults_injected = dict(state["faults"]["injected"])
        report.sends = len(sends)
        report.orders_placed = sum(1 for r in sends if r["status"] == "placed")
        report.sends_refused = dict(Counter(str(r["status"]) for r in sends if r["status"] != "placed"))
        report.late_outcomes = dict(Counter(str(r["status"]) for r in sends if r.get("fault") == "late"))
        report.late_requests = dict(Counter(f"{endpoint}: {status}" for endpoint, status in
                                            _request_outcomes([r for r in sends if r.get("fault") == "late"])))
        report.problems.extend(_process_before_problems(sends))

        url = f"sqlite:///{self.database()}"
        status = None
        if self.status is not None:
            try:
                status = PortfolioStatus.model_validate(self.status)
            except ValueError as exc:
                report.problems.append(f"`run.py status --json` is not a PortfolioStatus: {exc}")
        report.problems.extend(check_promise(_SimulatorView(self.admin), url, status))
        if self.status is not None:
            for row in self.status.get("symbols", []):
                if row.get("state") == "BLOCKED":
                    report.blocked_at_end.append(f"{row.get('symbol')}: {row.get('blocked') or '(no reason)'}")
                    if not row.get("blocked") and status is None:
                        report.problems.append(f"{row.get('symbol')} is BLOCKED without a reason in status")

        db = sqlite3.connect(self.database())
        try:
            intents = {row[0]: row for row in db.execute(
                "SELECT client_order_id, symbol, amount, reduce_only, status, reason, sends FROM intent")}
            stored_orders = {(row[0], row[1]) for row in db.execute(
                'SELECT client_order_id, exchange_order_id FROM "order"')}
            stored_fills = {row[0] for row in db.execute("SELECT fill_id FROM fill")}
            unknown = {row[0] for row in db.execute(
                "SELECT DISTINCT intent_hash FROM event WHERE reason = 'OUTCOME_UNKNOWN'")}
            hash_to_cid = dict(db.execute("SELECT intent_hash, client_order_id FROM intent").fetchall())
        finally:
            db.close()
        report.intents = len(intents)
        report.final_states = dict(Counter(f"{r[4]}{'/' + r[5] if r[4] == 'REJECTED' and r[5] else ''}"
                                           for r in intents.values()))
        report.not_placed = sum(1 for r in intents.values() if r[5] == "NOT_PLACED")
        report.unknown_outcomes = len(unknown)
        report.unknown_ends = dict(Counter(
            f"{intents[hash_to_cid[h]][4]}{'/' + intents[hash_to_cid[h]][5] if intents[hash_to_cid[h]][5] else ''}"
            for h in unknown if h in hash_to_cid))
        per_cid_sends = Counter(r["cliOrdId"] for r in sends if r["cliOrdId"])
        report.resends = sum(n - 1 for n in per_cid_sends.values() if n > 1)
        ours = [r for r in sends if r["cliOrdId"] in intents]
        report.sends_without_process_before = sum(1 for r in ours if not r.get("processBefore"))
        if report.sends_without_process_before:
            report.problems.append(f"{report.sends_without_process_before} sends of our intents carried no "
                                   f"processBefore (a held copy of one could be placed at any later time)")

        # Beyond check_promise: every placed order (filled or not) known, every placed send from one of our
        # intents, no intent REJECTED while the exchange placed it, no stored fill the exchange never made.
        known_cids = {cid for cid, _ in stored_orders if cid}
        known_ids = {oid for _, oid in stored_orders if oid}
        placed = [r for r in sends if r["status"] == "placed"]
        placed_per_cid = Counter(r["cliOrdId"] for r in placed)
        for cid, count in placed_per_cid.items():
            if count > 1 and cid not in intents:
                report.problems.append(f"client order id {cid} (not an intent of ours) has {count} placed orders")
        for row in placed:
            cid, oid = row["cliOrdId"], row["order_id"]
            if cid not in intents:
                report.problems.append(f"exchange order {oid} carries client order id {cid}, unknown as an intent")
            elif cid not in known_cids and oid not in known_ids:
                report.problems.append(f"exchange order {oid} ({cid}) is not in the database")
            elif intents[cid][4] == "REJECTED":
                report.problems.append(f"intent {cid} is REJECTED ({intents[cid][5]}) in the database, but the "
                                       f"exchange placed order {oid} for it (request seq {row['seq']})")
        exchange_fills = {f["fill_id"] for f in state["fills"]}
        for fill_id in sorted(stored_fills - exchange_fills):
            report.problems.append(f"fill {fill_id} is in the database but the exchange never made it")
        unfinished = [cid for cid, r in intents.items() if r[4] not in FINAL]
        if unfinished:
            report.problems.append(f"{len(unfinished)} intents still not final after the clean stop: "
                                   f"{', '.join(sorted(unfinished)[:5])}")
        report.max_position_ratio = self.largest_ratio(state, intents)
        protective = [o for o in state["orders"]
                      if o["orderType"] in ("stp", "trailing_stop", "take_profit") and o["status"] == "placed"]
        report.protective_placed = dict(Counter(o["orderType"] for o in protective))
        report.protective_filled = sum(1 for o in protective if Decimal(str(o["filled"])) > 0)
        if self.settings.protection:
            from tests.e2e.protection_check import protection_problems

            allowance = int(self.settings.reconcile_interval_s * 1000 * self.settings.speed)  # in simulator ms
            report.problems.extend(protection_problems(state["orders"], state["fills"], self.lives,
                                                       int(state["clock"]["now"]), allowance))

    @staticmethod
    def largest_ratio(state: dict[str, Any], intents: dict[str, tuple[Any, ...]]) -> float:
        """The largest position ever held (the simulator's fills replayed in order) / one entry's size."""
        from simulator.instruments import resolve_symbol

        entry: dict[str, Decimal] = {}
        for row in intents.values():
            if not row[3]:
                market = resolve_symbol(row[1]) or row[1]
                entry[market] = max(entry.get(market, Decimal(0)), Decimal(row[2]))
        position: dict[str, Decimal] = defaultdict(Decimal)
        worst = 0.0
        for fill in sorted(state["fills"], key=lambda f: (f["time"], f["fill_id"])):
            size = Decimal(str(fill["size"]))
            position[fill["symbol"]] += size if fill["side"] == "buy" else -size
            if entry.get(fill["symbol"]):
                worst = max(worst, float(abs(position[fill["symbol"]]) / entry[fill["symbol"]]))
        return worst


def _request_outcomes(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(endpoint, outcome) per order request: the instructions of one batchorder (same `batch`) are one request,
    its outcome their statuses joined ("placed", "wouldProcessAfterSpecifiedTime", "placed+...")."""
    requests: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        key = ("batch", row["batch"]) if row.get("batch") is not None else ("seq", row["seq"])
        requests[key].append(row)
    return [(str(group[0]["endpoint"]), "+".join(sorted({str(r["status"]) for r in group})))
            for group in requests.values()]


def _process_before_problems(sends: list[dict[str, Any]]) -> list[str]:
    """The exchange's side of the late-send case: a send processed at or after its processBefore placed
    nothing, and one placed was processed before it (so a `wouldProcessAfterSpecifiedTime` counted in the
    report really is a request the exchange held past its processBefore and refused)."""
    from simulator.api import parse_iso_ms

    problems = []
    for row in sends:
        before = parse_iso_ms(str(row["processBefore"])) if row.get("processBefore") else None
        if before is None:
            continue
        if row["status"] == "placed" and row["time"] >= before:
            problems.append(f"request seq {row['seq']} ({row['endpoint']}, {row['cliOrdId']}) was placed at "
                            f"{row['time']}, at or after its processBefore {row['processBefore']}")
        if row["status"] == "wouldProcessAfterSpecifiedTime" and (row["time"] < before or row.get("order_id")):
            problems.append(f"request seq {row['seq']} ({row['endpoint']}, {row['cliOrdId']}) refused as too "
                            f"late at {row['time']}, before its processBefore {row['processBefore']}, or placed")
    return problems


def _exited_within(process: subprocess.Popen[bytes], seconds: float) -> bool:
    try:
        process.wait(seconds)
    except subprocess.TimeoutExpired:
        return False
    return True


def serve(config_json: str) -> int:
    """Run a simulator with this SimulatorConfig (JSON) until SIGTERM (the soak's exchange process)."""
    from simulator import SimulatorConfig, start_simulator

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    handle = start_simulator(SimulatorConfig.model_validate_json(config_json))
    print(f"soak simulator on {handle.base_url}: {config_json}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        handle.stop()
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        sys.exit(serve(sys.argv[2]))
    print("usage: python -m tests.e2e.soak serve SIMULATOR_CONFIG_JSON", file=sys.stderr)
    sys.exit(2)
