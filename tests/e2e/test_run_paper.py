"""`python run.py` with the shipped configuration: paper trading shows fills within a minute; one instance only."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.e2e.soak import free_port

REPO = Path(__file__).resolve().parents[2]


def shipped_config_in(folder: Path) -> Path:
    """The shipped config.toml, copied so that its storage lands in `folder`; only the control port changes."""
    text = (REPO / "config.toml").read_text()
    text = re.sub(r"(?m)^port = 8765", f"port = {free_port()}", text)
    path = folder / "config.toml"
    path.write_text(text)
    return path


class Output:
    """A process's output, read in the background, waited on by pattern."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            with self._changed:
                self.lines.append(line.rstrip())
                self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float) -> str:
        """The first line matching `pattern`; fail after `timeout` seconds."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = next((line for line in self.lines if regex.search(line)), None)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no line matching {pattern!r} within {timeout}s:\n"
                                         + "\n".join(self.lines[-30:]))
                self._changed.wait(left)


@pytest.mark.timeout(150)
def test_paper_trading_with_the_shipped_config_fills_within_a_minute_and_runs_once(tmp_path: Path) -> None:
    config = shipped_config_in(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KRAKEN_")}
    first = subprocess.Popen([sys.executable, str(REPO / "run.py"), "--config", str(config)], cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = Output(first)
    try:
        started = time.monotonic()
        output.wait_for(r"reconciled with the exchange", timeout=30)
        fill = output.wait_for(r" filled @ ", timeout=60)
        assert time.monotonic() - started < 60, fill
        second = subprocess.run([sys.executable, str(REPO / "run.py"), "--config", str(config)], cwd=tmp_path,
                                env=env, capture_output=True, text=True, timeout=60)
        assert second.returncode == 2
        assert f"another instance is running (pid {first.pid})" in second.stdout + second.stderr
        first.send_signal(signal.SIGTERM)
        assert first.wait(60) == 0
        output.wait_for(r"\| stopped$", timeout=5)
    finally:
        if first.poll() is None:
            first.kill()
    restarted = subprocess.Popen([sys.executable, str(REPO / "run.py"), "--config", str(config)], cwd=tmp_path,
                                 env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    again = Output(restarted)
    try:
        again.wait_for(r"resumed the paper account", timeout=30)  # the paper exchange carries on
        again.wait_for(r"reconciled with the exchange", timeout=30)
        restarted.send_signal(signal.SIGINT)
        assert restarted.wait(60) == 0
    finally:
        if restarted.poll() is None:
            restarted.kill()
