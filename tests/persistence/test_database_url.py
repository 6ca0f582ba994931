"""The database URL is read once (parse_database_url): the lock and the opener name the same file, and its
password is masked one way wherever the URL shows."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from actors.preflight import check_database
from configuration import LoadedConfig, load_config, mask_url, parse_database_url, render_config, scrub
from persistence import AlreadyRunningError, DatabaseUrlError, InstanceLock, open_database
from persistence.database import DatabaseUnavailableError

pytestmark = pytest.mark.timeout(30)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def loaded_with(folder: Path, url: str) -> LoadedConfig:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.toml"
    path.write_text(f'storage_dir = "storage"\n[database]\nurl = "{url}"\n[control]\nport = {free_port()}\n',
                    encoding="utf-8")
    return load_config(path)


def test_a_percent_escape_in_a_sqlite_path_is_locked_and_opened_as_the_same_file(tmp_path: Path) -> None:
    loaded = loaded_with(tmp_path, "sqlite:///tmp/a%20b.db")
    database = loaded.database
    the_file = tmp_path / "tmp" / "a b.db"
    assert database.kind == "sqlite" and database.sqlite_path == str(the_file)
    assert parse_database_url(loaded.database_url).sqlite_path == str(the_file)  # the text the actors are given

    lock = InstanceLock(loaded.storage_dir, database)
    lock.acquire()
    try:
        opened = open_database(database)
        opened.connect()
        opened.execute_sql("CREATE TABLE t (x INTEGER)")
        opened.close()
        assert opened.database == str(the_file) and the_file.is_file()
        assert (tmp_path / "tmp" / "a b.db.lock").is_file()
        # the same file, written escaped, unescaped or relative to another folder, is refused while locked
        for url in (f"sqlite:///{tmp_path}/tmp/a%20b.db", f"sqlite:///{tmp_path}/tmp/a b.db"):
            other = InstanceLock(tmp_path / "other-storage", parse_database_url(url))
            with pytest.raises(AlreadyRunningError, match="a b.db.lock"):
                other.acquire()
    finally:
        lock.release()
    assert not list(tmp_path.rglob("a%20b*")), "nothing may be created under the escaped name"


def test_check_config_locks_and_opens_the_unescaped_file(tmp_path: Path) -> None:
    loaded = loaded_with(tmp_path, "sqlite:///tmp/a%20b.db")
    the_file = tmp_path / "tmp" / "a b.db"
    assert check_database(loaded) == f"database.url: SQLite {the_file} is reachable and its schema is up to date"
    names = sorted(p.name for p in (tmp_path / "tmp").iterdir())
    assert "a b.db" in names and "a b.db.lock" in names and not [n for n in names if "%" in n]


def test_a_percent_in_the_configuration_folder_stays_a_percent(tmp_path: Path) -> None:
    folder = tmp_path / "x%41y"
    database = loaded_with(folder, "sqlite:///trading.db").database
    assert database.sqlite_path == str(folder / "trading.db")
    assert parse_database_url(database.url).sqlite_path == str(folder / "trading.db")  # read again: the same file


def test_absolute_and_memory_paths_are_kept_as_written(tmp_path: Path) -> None:
    written = f"sqlite:///{tmp_path}/a%20b.db"
    database = parse_database_url(written, base_dir=Path("/elsewhere"))
    assert database.url == written == database.original and database.sqlite_path == f"{tmp_path}/a b.db"
    memory = parse_database_url("sqlite:///:memory:", base_dir=tmp_path)
    assert memory.sqlite_path == ":memory:" and memory.url == "sqlite:///:memory:"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://bot:Db-Pw-42@h/db", "unsupported database URL scheme 'mysql' in 'mysql://bot:***@h/db'; use sqlite:///"),
        ("sqlite://", "no file in SQLite URL 'sqlite://'; write sqlite:///storage/trading.db"),
        ("postgresql://bot:Db-Pw-42@[h/db", "database.url 'postgresql://bot:***@[h/db' is not a URL"),
    ],
)
def test_an_unreadable_url_says_why_without_its_password(url: str, message: str) -> None:
    with pytest.raises(DatabaseUrlError) as info:
        parse_database_url(url)
    assert str(info.value).startswith(message) and "Db-Pw-42" not in str(info.value)


def test_the_password_is_masked_the_same_way_everywhere(tmp_path: Path) -> None:
    port = free_port()  # nothing listens: the lock's connection fails
    url = f"postgresql://bot:p%40ss-Marker-5@127.0.0.1:{port}/trading"
    masked = f"postgresql://bot:***@127.0.0.1:{port}/trading"
    database = parse_database_url(url)
    assert database.kind == "postgresql" and database.url == url
    assert database.masked == mask_url(url) == str(database) == masked
    assert database.secrets == ("p%40ss-Marker-5", "p@ss-Marker-5")
    assert "Marker-5" not in repr(database)

    loaded = loaded_with(tmp_path, url)
    assert loaded.database.masked == masked
    assert f"# database: {masked}" in render_config(loaded, {})

    with pytest.raises(DatabaseUnavailableError) as info:
        InstanceLock(loaded.storage_dir, loaded.database).acquire()
    assert "Marker-5" not in str(info.value)
    assert scrub(f"the driver said p@ss-Marker-5 and {url}") == f"the driver said *** and {masked}"

    bad_port = "postgresql://bot:p%40ss-Marker-5@127.0.0.1:notaport/trading"
    with pytest.raises(DatabaseUrlError) as info:
        open_database(bad_port)
    assert mask_url(bad_port) in str(info.value) and "Marker-5" not in str(info.value)
