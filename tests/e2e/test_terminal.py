"""A 100×40 terminal (tmux): a paper run's log and `status` in the same terminal fit it, nothing wraps, the console
shows short order ids and the log file the full ones."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_run_paper import REPO, shipped_config_in

TMUX = shutil.which("tmux")
pytestmark = [
    pytest.mark.timeout(150),
    pytest.mark.skipif(TMUX is None, reason="tmux is not installed: the terminal test needs it (apt install tmux)"),
]

WIDTH, HEIGHT = 100, 40
FULL_CID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class Terminal:
    """A tmux session of its own (its own server socket) at WIDTH×HEIGHT running a plain shell."""

    def __init__(self, folder: Path) -> None:
        assert TMUX is not None
        self.socket = f"kraken-terminal-{uuid.uuid4().hex[:8]}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("KRAKEN_") and k not in ("COLUMNS", "LINES")}
        env |= {"PY": sys.executable, "RUN": str(REPO / "run.py")}  # short command lines
        self.env = env
        self.tmux("new-session", "-d", "-x", str(WIDTH), "-y", str(HEIGHT), "-c", str(folder),
                  "env -u COLUMNS -u LINES bash --norc --noprofile")
        self.tmux("set-option", "-g", "history-limit", "20000")

    def tmux(self, *args: str) -> str:
        assert TMUX is not None
        done = subprocess.run([TMUX, "-L", self.socket, *args], capture_output=True, text=True, env=self.env,
                              timeout=20)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def type(self, command: str) -> None:
        self.tmux("send-keys", "-t", "0", "-l", command)
        self.tmux("send-keys", "-t", "0", "Enter")

    def screen(self) -> list[str]:
        """Everything the terminal showed (the scrollback too), wrapped lines joined back: a line longer than
        the terminal is one the terminal had to wrap."""
        return self.tmux("capture-pane", "-p", "-J", "-S", "-", "-t", "0").splitlines()

    def wait_for(self, pattern: str, timeout: float) -> str:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            lines = self.screen()
            found = next((line for line in lines if regex.search(line)), None)
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"no line matching {pattern!r} within {timeout}s:\n" + "\n".join(lines[-40:]))
            time.sleep(0.2)  # polling the screen: tmux has no event to wait on

    def close(self) -> None:
        subprocess.run([TMUX or "tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=20)


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    term = Terminal(tmp_path)
    try:
        yield term
    finally:
        term.close()


def test_the_log_and_status_fit_a_100_column_terminal_with_short_ids(tmp_path: Path, terminal: Terminal) -> None:
    assert shipped_config_in(tmp_path) == tmp_path / "config.toml"  # the shell starts in tmp_path
    # No prompt: the run's lines arrive while the shell waits, and would start after a prompt, not at column 0.
    terminal.type("PS1=''")
    terminal.type('"$PY" "$RUN" --config config.toml & echo RUN_PID=$!')
    pid = int(terminal.wait_for(r"^RUN_PID=\d+$", timeout=20).split("=")[1])
    try:
        terminal.wait_for(r"reconciled with the exchange", timeout=40)
        sent = terminal.wait_for(r"contracts \(cliOrdId [0-9a-f]{8}\)$", timeout=60)
        terminal.wait_for(r" filled @ ", timeout=60)
        terminal.type('"$PY" "$RUN" status --config config.toml; echo STATUS_DONE')
        terminal.wait_for(r"^STATUS_DONE$", timeout=30)
        screen = terminal.screen()
        too_wide = [line for line in screen if len(line) > WIDTH]
        assert not too_wide, f"{len(too_wide)} lines wrapped at {WIDTH} columns:\n" + "\n".join(too_wide)
        assert any(line.startswith("Trading system as of ") for line in screen), "\n".join(screen[-40:])
        header = next(line for line in screen if line.startswith("SYMBOL "))
        assert "CANDLE UTC" not in header  # the compact layout below 120 columns
        assert not [line for line in screen if FULL_CID.search(line)], "full client order ids on the console"
        assert re.match(r"\d\d:\d\d:\d\d \| INFO  \| ", sent), sent
        short = re.search(r"cliOrdId ([0-9a-f]{8})\)$", sent)
        assert short is not None
        log = (tmp_path / "storage" / "trading.log").read_text()
        assert re.search(rf"cliOrdId {short.group(1)}-[0-9a-f]{{4}}-", log), "the log file has the full id"
    finally:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            os.kill(pid, signal.SIGKILL)
