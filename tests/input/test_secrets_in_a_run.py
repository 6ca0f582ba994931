"""A whole run with marker secrets: no file under the storage folder, no log line and no output holds one."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator import SimulatorConfig, start_simulator
from tests.control.conftest import free_port
from tests.input.test_preflight import POSTGRES, postgres_answers

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[2]
API_KEY = "MarkerApiKey-7f3a9c1e5b"
API_SECRET = "TWFya2VyU2VjcmV0LTdmM2E5YzFlNWI0ZDJjOA=="  # base64, as Kraken's secrets are
TOKEN = "marker-control-token-7f3a9c1e5b4d"
DB_PASSWORD = "MarkerDbPw7f3a9c"
MARKERS = (API_KEY, API_SECRET, TOKEN, DB_PASSWORD)


@pytest.fixture
def exchange() -> Iterator[str]:
    """A standalone simulator that takes the marker keys."""
    handle = start_simulator(SimulatorConfig(port=0, api_key=API_KEY, api_secret=API_SECRET))
    try:
        yield handle.base_url
    finally:
        handle.stop()


class Output:
    """Everything a process prints, collected by a thread; wait for a line on an event."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.text = ""
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            with self._changed:
                self.text += line
                self._changed.notify_all()

    def wait_for(self, words: str, timeout: float) -> bool:
        """True once `words` was printed."""
        with self._changed:
            return self._changed.wait_for(lambda: words in self.text, timeout)

    def join(self) -> None:
        self._thread.join(10)


def database_url(tmp_path: Path) -> str:
    """PostgreSQL with a marker password (trust authentication ignores it) where one runs, else SQLite."""
    if postgres_answers():
        return POSTGRES.replace("postgresql://postgres@", f"postgresql://postgres:{DB_PASSWORD}@")
    return f"sqlite:///{tmp_path}/storage/trading.db"


def test_no_marker_secret_in_storage_logs_or_outputs(tmp_path: Path, exchange: str) -> None:
    db = database_url(tmp_path)
    config = tmp_path / "config.toml"
    config.write_text(
        f'mode = "demo"\nstorage_dir = "storage"\n[exchange]\nurl = "{exchange}"\n'
        f'[database]\nurl = "{db}"\n[trading]\nsymbols = ["BTC/USD:USD"]\n'
        f'[logging]\nlevel = "DEBUG"\n[control]\nport = {free_port()}\n[strategy]\nname = "scripted"\n',
        encoding="utf-8",
    )
    env = {**os.environ, "KRAKEN_FUTURES_API_KEY": API_KEY, "KRAKEN_FUTURES_API_SECRET": API_SECRET,
           "KRAKEN_BOT_CONTROL_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1"}

    def cli(*argv: str) -> str:
        done = subprocess.run([sys.executable, str(REPO / "run.py"), *argv, "--config", str(config)], check=False,
                              cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=60)
        return f"$ {' '.join(argv)} -> {done.returncode}\n{done.stdout}{done.stderr}"

    outputs = [cli("check-config", "--connect")]
    assert "OK, connected" in outputs[0], outputs[0]
    process = subprocess.Popen([sys.executable, str(REPO / "run.py"), "run", "--config", str(config)], cwd=tmp_path,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = Output(process)
    try:
        assert output.wait_for("control: listening", 60), output.text
        outputs += [cli("status"), cli("status", "--json"), cli("pause", "--all"), cli("resume", "--all"),
                    cli("halt", "--reason", "test"), cli("unhalt")]
        outputs.append(cli("stop"))
        assert process.wait(60) == 0, output.text
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    output.join()
    outputs.append(output.text)
    assert "trading BTC/USD:USD in demo mode" in output.text
    everything = "\n".join(outputs)
    for marker in MARKERS:
        assert marker not in everything, f"a marker secret was printed:\n{everything[:4000]}"
    files = [p for p in (tmp_path / "storage").rglob("*") if p.is_file()]
    assert any(p.name == "trading.log" for p in files)
    for path in files:
        data = path.read_bytes()
        for marker in MARKERS:
            assert marker.encode() not in data, f"{marker[:6]}... found in {path}"
    if DB_PASSWORD in db:  # the password was there to leak, and check-config shows it masked
        assert "postgres:***@" in outputs[0]
