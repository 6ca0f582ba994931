"""A first run's errors are friendly: a taken control port is refused before anything starts, naming the file and
`[control] port`; a missing PostgreSQL driver names the extra to install; an unreachable database names its host,
port and key; `check-config` is quiet about API keys in paper mode; a start says which symbols are paused or halted."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import run
from actors.preflight import listening_process
from actors.startup import control_lines
from messages import ControlRecord
from tests.e2e.test_run_paper import Output
from tests.input.test_preflight import POSTGRES, needs_postgres

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def shipped_config(folder: Path, *, port: int | None = None, database: str | None = None) -> Path:
    """The shipped config.toml copied into `folder` (its storage lands there), another control port (free unless
    given), optionally another database URL."""
    text = (REPO / "config.toml").read_text()
    text = re.sub(r"(?m)^port = 8765", f"port = {port or free_port()}", text)
    if database is not None:
        text = re.sub(r'(?m)^url = "sqlite:[^"]*"', f'url = "{database}"', text)
        assert database in text
    path = folder / "config.toml"
    path.write_text(text)
    return path


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KRAKEN_")}
    env.update(extra)
    return env


def kraken_actors(*argv: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 30
                  ) -> subprocess.CompletedProcess[str]:
    """The command line in a fresh process, as `python run.py ...` (the console script runs the same main)."""
    return subprocess.run([sys.executable, str(REPO / "run.py"), *argv], cwd=cwd, env=env or clean_env(),
                          capture_output=True, text=True, timeout=timeout)


# --- the control port, before anything ---------------------------------------------------------------


def test_a_taken_control_port_refuses_the_run_at_once_and_starts_nothing(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        config = shipped_config(tmp_path, port=port)
        started = time.monotonic()
        result = kraken_actors(cwd=tmp_path)  # the README's first command: no arguments
        took = time.monotonic() - started
    err = result.stdout + result.stderr
    assert result.returncode == 2, err
    assert took < 2.5, f"refused after {took:.1f}s"  # ~0.5 s with Python start-up; before: after the whole preflight
    assert "Traceback" not in err
    assert f"[control] port = {port} is in use (by pid {os.getpid()} " in err, err
    assert f"set [control] port in {config} to a free port, or stop the other process" in err, err
    assert "simulator:" not in err  # no simulator was started
    assert not (tmp_path / "storage").exists()  # no database, no lock, no paper state


def test_a_taken_port_refuses_check_connect_naming_the_section(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        config = shipped_config(tmp_path, port=port)
        code = run.main(["check-config", "--connect", str(config)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"  - [control] port = {port} is in use" in err, err


def test_the_process_listening_on_a_port_is_found_by_pid() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        found = listening_process(port)
    if not Path("/proc/net/tcp").exists():
        pytest.skip("no /proc/net/tcp here: the holder of a port cannot be named")
    assert found is not None and found[0] == os.getpid()
    assert listening_process(free_port()) is None


# --- the database ------------------------------------------------------------------------------------


@pytest.fixture
def without_psycopg2(tmp_path: Path) -> dict[str, str]:
    """An environment whose Python cannot import psycopg2 (as where the postgres extra is not installed)."""
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(
        "import sys\n"
        "class _Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'psycopg2' or name.startswith('psycopg2.'):\n"
        "            raise ModuleNotFoundError(\"No module named 'psycopg2'\", name=name)\n"
        "sys.meta_path.insert(0, _Hide())\n"
    )
    return clean_env(PYTHONPATH=os.pathsep.join([str(hide), str(REPO)]))


@pytest.mark.parametrize("argv", [["check-config"], ["check-config", "--connect"], ["run", "--config"]])
def test_postgres_without_its_driver_names_the_extra_to_install(tmp_path: Path, without_psycopg2: dict[str, str],
                                                                argv: list[str]) -> None:
    config = shipped_config(tmp_path, database="postgresql://postgres@127.0.0.1:5432/test")
    result = kraken_actors(*argv, str(config), cwd=tmp_path, env=without_psycopg2)
    text = result.stdout + result.stderr
    assert "Traceback" not in text
    assert "install the postgres extra: pip install 'kraken-actors[postgres]'" in text, text
    if argv != ["check-config"]:  # without --connect it is a warning: nothing is opened
        assert result.returncode == 2, text


def test_an_unreachable_postgres_names_host_port_and_the_key(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    config = shipped_config(tmp_path, database=f"postgresql://postgres@127.0.0.1:{port}/test")
    for argv in (["check-config", "--connect", str(config)], ["run", "--config", str(config)]):
        result = kraken_actors(*argv, cwd=tmp_path)
        err = result.stdout + result.stderr
        assert result.returncode == 2, err
        assert "Traceback" not in err
        line = next(line for line in err.splitlines() if f"127.0.0.1:{port}" in line and line.startswith("  - "))
        assert line.startswith("  - database.url: ") and f"set [database] url in {config}" in line, line


@needs_postgres
def test_a_reachable_postgres_still_connects(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = shipped_config(tmp_path, database=POSTGRES)
    assert run.main(["check-config", "--connect", str(config)]) == 0, capsys.readouterr().err


# --- keys in paper mode ------------------------------------------------------------------------------


def test_check_config_says_nothing_about_api_keys_in_paper_mode(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("KRAKEN_FUTURES_API_KEY", raising=False)
    monkeypatch.delenv("KRAKEN_FUTURES_API_SECRET", raising=False)
    config = shipped_config(tmp_path)
    assert run.main(["check-config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "not set" not in "\n".join(line for line in out.splitlines() if "API" in line), out
    assert "# API keys: none needed (paper mode generates its own" in out


def test_check_config_still_tells_about_missing_keys_in_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("KRAKEN_FUTURES_API_KEY", raising=False)
    config = shipped_config(tmp_path)
    config.write_text(config.read_text().replace('mode = "paper"', 'mode = "demo"'))
    assert run.main(["check-config", str(config)]) == 0
    assert "# API key: environment variable KRAKEN_FUTURES_API_KEY is not set" in capsys.readouterr().out


# --- paused and halted at start-up -------------------------------------------------------------------


def test_control_lines_name_each_paused_and_halted_symbol_with_time_source_and_the_way_out() -> None:
    records = [
        ControlRecord(symbol="ETH/USD:USD", paused=True, source="cli", reason="maintenance", updated_at=1764676800000),
        ControlRecord(symbol="SOL/USD:USD", halted=True, source="supervisor", reason="3 crashes", updated_at=0),
        ControlRecord(symbol="BTC/USD:USD"),
    ]
    paused, halted = control_lines(records)
    assert paused.startswith("paused (no new orders; orders and positions stay): "
                             "ETH/USD:USD (since 2025-12-02 12:00:00 UTC, by cli: maintenance)")
    assert "kraken-actors resume SYMBOL" in paused and "BTC" not in paused
    assert halted.startswith("halted (exits only): SOL/USD:USD (since unknown time, by supervisor: 3 crashes)")
    assert "kraken-actors unhalt" in halted
    assert control_lines([ControlRecord(symbol="BTC/USD:USD")]) == ["paused: none", "halted: none"]


@pytest.mark.timeout(90)
def test_a_start_lists_the_symbols_paused_and_halted_by_an_earlier_run(tmp_path: Path) -> None:
    from persistence import Store, open_database

    config = shipped_config(tmp_path)
    store = Store(open_database(f"sqlite:///{tmp_path}/storage/trading.db"))
    store.open()
    store.set_control("ETH/USD:USD", paused=True, reason="looking into it", source="cli")
    store.set_control("SOL/USD:USD", halted=True, reason="news", source="cli")
    store.close()
    process = subprocess.Popen([sys.executable, str(REPO / "run.py"), "--config", str(config)], cwd=tmp_path,
                               env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = Output(process)
    try:
        paused = output.wait_for(r"paused \(", timeout=45)
        halted = output.wait_for(r"halted \(", timeout=5)
        assert "ETH/USD:USD (since " in paused and "by cli: looking into it" in paused, paused
        assert "BTC/USD:USD" not in paused and "SOL/USD:USD" not in paused
        assert "SOL/USD:USD (since " in halted and "by cli: news" in halted, halted
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
