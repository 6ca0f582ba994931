"""`check-config --connect` and `run`: what a start needs is checked first; each failure one line, exit 2, no
traceback."""

from __future__ import annotations

import http.server
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import run
from simulator import SimulatorConfig, start_simulator
from tests.control.conftest import free_port

pytestmark = pytest.mark.timeout(60)

POSTGRES = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def postgres_answers() -> bool:
    """True when the test PostgreSQL server takes connections."""
    try:
        import psycopg2

        psycopg2.connect(POSTGRES, connect_timeout=2).close()
        return True
    except Exception:  # noqa: BLE001 - any failure means: skip
        return False


needs_postgres = pytest.mark.skipif(not postgres_answers(), reason=f"no PostgreSQL answers at {POSTGRES}")


def write(folder: Path, body: str = "", *, port: int | None = None, head: str = "") -> Path:
    """A paper config in `folder` (free control port) with extra TOML appended."""
    path = folder / "config.toml"
    path.write_text(f'{head}storage_dir = "storage"\n{body}\n[control]\nport = {port or free_port()}\n',
                    encoding="utf-8")
    return path


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """run.py's main in-process: exit code, stdout, stderr."""
    code = run.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def both(capsys: pytest.CaptureFixture[str], path: Path) -> list[tuple[int, str]]:
    """`check-config --connect` and `run` on the same configuration: (exit code, stderr) of each."""
    results = []
    for argv in (["check-config", "--connect", str(path)], ["run", "--config", str(path)]):
        code, _, err = cli(capsys, *argv)
        results.append((code, err))
    return results


def assert_refused(results: list[tuple[int, str]], words: str) -> None:
    """Every command exited 2 with `words` in one line and no traceback."""
    for code, err in results:
        assert code == 2, err
        assert "Traceback" not in err
        assert any(words in line for line in err.splitlines()), err


def test_the_shipped_paper_config_connects(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (Path(run.__file__).with_name("config.toml")).read_text()
    path = tmp_path / "config.toml"
    path.write_text(text.replace("port = 8765", f"port = {free_port()}"))
    code, out, err = cli(capsys, "check-config", "--connect", str(path))
    assert code == 0, err
    assert "# ok: exchange: the paper simulator lists BTC/USD:USD, ETH/USD:USD, SOL/USD:USD" in out
    assert "OK, connected" in out


# --- storage ------------------------------------------------------------------------------------


def test_storage_dir_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "storage").write_text("not a folder")
    assert_refused(both(capsys, write(tmp_path)), "storage_dir: ")


def test_storage_dir_under_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "blocker").write_text("")
    path = write(tmp_path, head='')
    path.write_text(path.read_text().replace('storage_dir = "storage"', 'storage_dir = "blocker/storage"'))
    assert_refused(both(capsys, path), "is a file, not a folder")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_storage_dir_read_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "storage").mkdir()
    (tmp_path / "storage").chmod(0o500)
    try:
        assert_refused(both(capsys, write(tmp_path)), "storage_dir: cannot write in")
    finally:
        (tmp_path / "storage").chmod(0o700)


def test_the_log_file_that_is_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "storage" / "trading.log").mkdir(parents=True)
    assert_refused(both(capsys, write(tmp_path)), "logging.file: ")


# --- database -----------------------------------------------------------------------------------


def test_sqlite_folder_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "dbdir").write_text("")
    path = write(tmp_path, f'[database]\nurl = "sqlite:///{tmp_path}/dbdir/trading.db"\n')
    assert_refused(both(capsys, path), "database.url: ")


def test_sqlite_file_that_is_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "db" / "trading.db").mkdir(parents=True)
    path = write(tmp_path, f'[database]\nurl = "sqlite:///{tmp_path}/db/trading.db"\n')
    assert_refused(both(capsys, path), "database.url: ")


def test_sqlite_folder_missing_is_created(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, f'[database]\nurl = "sqlite:///{tmp_path}/new/deeper/trading.db"\n')
    code, _, err = cli(capsys, "check-config", "--connect", str(path))
    assert code == 0, err
    assert (tmp_path / "new" / "deeper" / "trading.db").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only files")
def test_sqlite_file_read_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "db" / "trading.db"
    db.parent.mkdir()
    db.write_bytes(b"")
    db.chmod(0o400)
    path = write(tmp_path, f'[database]\nurl = "sqlite:///{db}"\n')
    assert_refused(both(capsys, path), "database.url: ")


def test_a_newer_schema_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import sqlite3

    db = tmp_path / "trading.db"
    path = write(tmp_path, f'[database]\nurl = "sqlite:///{db}"\n')
    assert cli(capsys, "check-config", "--connect", str(path))[0] == 0
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        info = next(t for t in tables if "schema" in t.lower())
        conn.execute(f"UPDATE {info} SET value = '999' WHERE key = 'version'")
    assert_refused(both(capsys, path), "database.url: the database has schema version 999")


def test_postgresql_unreachable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"postgresql://bot:PW-marker-7@127.0.0.1:{free_port()}/trading"
    results = both(capsys, write(tmp_path, f'[database]\nurl = "{url}"\n'))
    assert_refused(results, "database.url: PostgreSQL trading on 127.0.0.1")
    assert not any("PW-marker-7" in err for _, err in results)


@needs_postgres
def test_postgresql_database_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = POSTGRES.rsplit("/", 1)[0].replace("postgresql://postgres@", "postgresql://postgres:PW-marker-7@")
    results = both(capsys, write(tmp_path, f'[database]\nurl = "{base}/no_such_db_for_preflight"\n'))
    assert_refused(results, "database.url: PostgreSQL no_such_db_for_preflight")
    assert not any("PW-marker-7" in err for _, err in results)


@needs_postgres
def test_postgresql_reachable_connects(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "check-config", "--connect", str(write(tmp_path, f'[database]\nurl = "{POSTGRES}"\n')))
    assert code == 0, err
    assert "is reachable and its schema is up to date" in out


# --- control port -------------------------------------------------------------------------------


def test_control_port_in_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert_refused(both(capsys, write(tmp_path, port=port)), f"[control] port = {port} is in use")


# --- keys and exchange --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["demo", "live"])
def test_keys_missing_in_demo_and_live(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    monkeypatch.delenv("KRAKEN_FUTURES_API_KEY", raising=False)
    monkeypatch.delenv("KRAKEN_FUTURES_API_SECRET", raising=False)
    results = both(capsys, write(tmp_path, head=f'mode = "{mode}"\n'))
    assert_refused(results, "exchange.api_key_env: the environment variable KRAKEN_FUTURES_API_KEY is not set")
    assert_refused(results, "exchange.api_secret_env: the environment variable KRAKEN_FUTURES_API_SECRET is not set")


@pytest.fixture
def simulator() -> Iterator[object]:
    """A standalone simulator on a free port with known keys."""
    handle = start_simulator(SimulatorConfig(port=0, api_key="K" * 8, api_secret="c2VjcmV0LXNlY3JldA=="))
    try:
        yield handle
    finally:
        handle.stop()


def url_config(folder: Path, url: str, symbols: str = '"BTC/USD:USD"') -> Path:
    """A demo-mode config pointed at `url`."""
    return write(folder, f'[exchange]\nurl = "{url}"\n[trading]\nsymbols = [{symbols}]\n', head='mode = "demo"\n')


def test_a_symbol_the_exchange_does_not_list(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, simulator: object
) -> None:
    monkeypatch.setenv("KRAKEN_FUTURES_API_KEY", "K" * 8)
    monkeypatch.setenv("KRAKEN_FUTURES_API_SECRET", "c2VjcmV0LXNlY3JldA==")
    path = url_config(tmp_path, simulator.base_url, '"BTC/USD:USD", "NOPE/USD:USD"')  # type: ignore[attr-defined]
    assert_refused(both(capsys, path), "trading.symbols: 'NOPE/USD:USD' is not listed by the exchange")


def test_a_paper_symbol_the_simulator_does_not_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, '[trading]\nsymbols = ["NOPE/USD:USD"]\n')
    assert_refused(both(capsys, path), "trading.symbols: 'NOPE/USD:USD' is not listed by the exchange")
    assert_refused(both(capsys, path), "(asked the paper simulator)")


@pytest.fixture
def html_server() -> Iterator[str]:
    """A web server that answers every path with a maintenance page."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<html><body>Down for maintenance</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_market_list_that_is_an_html_page_is_not_called_unlisted_symbols(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, html_server: str
) -> None:
    monkeypatch.setenv("KRAKEN_FUTURES_API_KEY", "K" * 8)
    monkeypatch.setenv("KRAKEN_FUTURES_API_SECRET", "c2VjcmV0LXNlY3JldA==")
    results = both(capsys, url_config(tmp_path, html_server))
    assert_refused(results, "answered the market list with an HTML page")
    assert not any("not listed" in err for _, err in results)


def test_an_unreachable_exchange_fails_check_config_but_run_only_warns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KRAKEN_FUTURES_API_KEY", "K" * 8)
    monkeypatch.setenv("KRAKEN_FUTURES_API_SECRET", "c2VjcmV0LXNlY3JldA==")
    from actors.preflight import preflight
    from configuration import load_config

    loaded = load_config(url_config(tmp_path, f"http://127.0.0.1:{free_port()}"))
    checked = preflight(loaded)
    assert [p for p in checked.problems if p.startswith("exchange: cannot reach exchange.url")]
    running = preflight(loaded, unreachable_is_problem=False)
    assert running.ok and running.warnings and "the run keeps trying" in running.warnings[0]


def test_every_problem_is_listed_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "dbdir").write_text("")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        path = write(tmp_path, f'[database]\nurl = "sqlite:///{tmp_path}/dbdir/x.db"\n'
                               '[trading]\nsymbols = ["NOPE/USD:USD"]\n',
                     port=holder.getsockname()[1])
        code, _, err = cli(capsys, "check-config", "--connect", str(path))
    assert code == 2
    assert all(any(line.startswith(f"  - {key}") for line in err.splitlines())
               for key in ("database.url", "[control] port", "trading.symbols")), err


def test_a_refused_run_starts_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, '[trading]\nsymbols = ["NOPE/USD:USD"]\n')
    code, out, err = cli(capsys, "run", "--config", str(path))
    assert code == 2 and "trading.symbols" in err
    storage = tmp_path / "storage"
    assert not (storage / "paper-exchange.json").exists()  # the paper account was never opened
    assert not (storage / "trading.log").exists()  # logging (and so the actors) never started
    assert "trading NOPE" not in out + err


def test_an_unwritable_folder_is_one_line_even_for_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import actors.preflight as preflight_module

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(preflight_module.tempfile, "TemporaryFile", refuse)
    with pytest.raises(preflight_module.Problem,
                       match=r"^storage_dir: cannot write in .* \(Permission denied\); make it"):
        preflight_module.check_folder("storage_dir", tmp_path / "storage")
