"""Benchmark: the control endpoint of a running paper system under a burst of clients.

Usage: python benchmarks/control.py [--status 200] [--commands 50] [--folder DIR]

Starts `run.py` (the shipped paper configuration, its own folder and a free control port), waits
until it has reconciled, then:
1. sends `--status` concurrent `GET /v1/status` requests (all released at once by a barrier) and
   records how many were answered, how fast, and any reset or time-out;
2. sends `--commands` concurrent pause/resume commands spread over the symbols and records how many
   were acknowledged; then checks the bot is alive and that each symbol's paused flag equals the
   command the system applied last for it (the acknowledgement that came last);
3. stops the bot with `run.py stop` and records its exit code.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 10.0  # the CLI's time-out


def free_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(samples: list[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class Bot:
    """`run.py` in its own folder; its output is collected by a thread."""

    def __init__(self, folder: Path, port: int, token: str) -> None:
        text = (REPO / "config.toml").read_text()
        self.config = folder / "config.toml"
        self.config.write_text(re.sub(r"(?m)^port = 8765", f"port = {port}", text))
        self.env = {**os.environ, "KRAKEN_BOT_CONTROL_TOKEN": token, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen([sys.executable, str(REPO / "run.py"), "--config", str(self.config)],
                                        cwd=folder, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True)
        self.output = ""
        self.listening = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output += line
            if "control: listening" in line:
                self.listening.set()

    def cli(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """Run a control command against this bot."""
        return subprocess.run([sys.executable, str(REPO / "run.py"), *argv, "--config", str(self.config)], check=False,
                              env=self.env, capture_output=True, text=True, timeout=60)


def request(port: int, token: str, method: str, path: str, body: dict[str, Any] | None,
            start: threading.Barrier | None) -> dict[str, Any]:
    """One request on its own connection; the outcome, its latency and the time its answer arrived."""
    if start is not None:
        start.wait()
    began = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_S)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        conn.request(method, path, body=json.dumps(body).encode() if body is not None else None, headers=headers)
        response = conn.getresponse()
        data = json.loads(response.read())
        done = time.monotonic()
        return {"status": response.status, "latency": done - began, "at": done, "body": data}
    except (ConnectionError, TimeoutError, http.client.HTTPException, OSError) as exc:
        return {"status": type(exc).__name__, "latency": time.monotonic() - began, "at": time.monotonic()}
    finally:
        conn.close()


def burst(count: int, make: Any) -> list[dict[str, Any]]:
    """Run `count` requests released together."""
    start = threading.Barrier(count)
    with ThreadPoolExecutor(max_workers=count) as pool:
        return [f.result() for f in [pool.submit(make, i, start) for i in range(count)]]


def summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts by outcome and latency figures of the answered ones."""
    outcomes: dict[str, int] = {}
    for r in results:
        outcomes[str(r["status"])] = outcomes.get(str(r["status"]), 0) + 1
    latencies = [r["latency"] for r in results if r["status"] == 200]
    return {
        "outcomes": outcomes,
        "answered": len(latencies),
        "p50_ms": round(percentile(latencies, 0.5) * 1000, 1) if latencies else None,
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1) if latencies else None,
        "max_ms": round(max(latencies) * 1000, 1) if latencies else None,
    }


def main() -> int:
    """Run the benchmark and print its figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--status", type=int, default=200)
    parser.add_argument("--commands", type=int, default=50)
    parser.add_argument("--folder", type=Path, default=None)
    args = parser.parse_args()
    folder = args.folder or Path(tempfile.mkdtemp(prefix="control-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    port, token = free_port(), secrets.token_urlsafe(24)
    bot = Bot(folder, port, token)
    figures: dict[str, Any] = {"machine": f"{os.cpu_count()} cores, {platform.machine()}, "
                                          f"Python {platform.python_version()}"}
    try:
        if not bot.listening.wait(60):
            print(bot.output, file=sys.stderr)
            return 1
        deadline = time.monotonic() + 60
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:  # a benchmark may poll: the bot's reconciliation is not our event
            status = request(port, token, "GET", "/v1/status", None, None).get("body") or {}
            if status.get("reconciled"):
                break
            time.sleep(0.2)
        symbols = [row["symbol"] for row in status.get("symbols", [])]
        figures["symbols"] = symbols

        statuses = burst(args.status, lambda i, start: request(port, token, "GET", "/v1/status", None, start))
        figures["status_burst"] = summary(statuses)
        figures["status_burst"]["within_2s"] = sum(1 for r in statuses if r["status"] == 200 and r["latency"] < 2)

        def command(i: int, start: threading.Barrier) -> dict[str, Any]:
            body = {"command": "pause" if i % 2 else "resume", "symbol": symbols[i % len(symbols)],
                    "source": f"bench-{i}"}
            result = request(port, token, "POST", "/v1/control", body, start)
            return {**result, "sent": body}

        commands = burst(args.commands, command)
        figures["command_burst"] = summary(commands)
        figures["alive"] = bot.process.poll() is None
        final = request(port, token, "GET", "/v1/status", None, None).get("body") or {}
        paused = {row["symbol"]: bool(row.get("paused")) for row in final.get("symbols", [])}
        last: dict[str, dict[str, Any]] = {}
        for r in sorted((r for r in commands if r["status"] == 200), key=lambda r: r["at"]):
            last[r["sent"]["symbol"]] = r["sent"]
        figures["state_equals_last_acknowledged"] = all(
            paused.get(symbol) == (sent["command"] == "pause") for symbol, sent in last.items()
        )
        figures["final_paused"] = paused
        stop = bot.cli("stop")
        figures["stop"] = stop.stdout.strip() or stop.stderr.strip()
        figures["exit_code"] = bot.process.wait(60)
    finally:
        if bot.process.poll() is None:
            bot.process.kill()
            bot.process.wait(10)
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
