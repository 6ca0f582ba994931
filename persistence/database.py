"""Open the database named by a URL: SQLite (WAL) by default, PostgreSQL by `postgresql://…`."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

import peewee
from playhouse.db_url import parse as parse_db_url


class DatabaseUrlError(ValueError):
    """The database URL cannot be opened as given."""


def open_database(url: str, *, sqlite_synchronous: str = "FULL") -> peewee.Database:
    """Return an unconnected peewee database for `url` (connect it in the thread that uses it)."""
    scheme = urlparse(url).scheme
    if scheme == "sqlite":
        return _open_sqlite(url, sqlite_synchronous)
    if scheme in ("postgres", "postgresql"):
        return _open_postgres(url)
    raise DatabaseUrlError(f"unsupported database URL scheme {scheme!r} in {url!r}; use sqlite:/// or postgresql://")


def _open_sqlite(url: str, synchronous: str) -> peewee.SqliteDatabase:
    raw_path = unquote(url[len("sqlite:///") :]) if url.startswith("sqlite:///") else ""
    if not raw_path:
        raise DatabaseUrlError(f"no file in SQLite URL {url!r}; write sqlite:///storage/trading.db")
    if raw_path != ":memory:":
        path = Path(raw_path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseUrlError(f"cannot create the folder for {path}: {exc}") from None
        raw_path = str(path)
    return peewee.SqliteDatabase(
        raw_path,
        pragmas={
            "journal_mode": "wal",
            "synchronous": synchronous,
            "foreign_keys": 1,
            "busy_timeout": 5000,
        },
        check_same_thread=False,
    )


def _open_postgres(url: str) -> peewee.PostgresqlDatabase:
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        raise DatabaseUrlError(
            "PostgreSQL needs a driver: pip install -e '.[postgres]' (installs psycopg2-binary)"
        ) from None
    params = parse_db_url(url)
    database = params.pop("database", None)
    if not database:
        raise DatabaseUrlError(f"no database name in {url!r}; write postgresql://user@host:5432/dbname")
    params.setdefault("connect_timeout", 5)
    return peewee.PostgresqlDatabase(database, **params)


def describe_database(database: peewee.Database) -> str:
    """A short, secret-free description of where the database is."""
    if isinstance(database, peewee.SqliteDatabase):
        return f"SQLite {database.database}"
    host = database.connect_params.get("host", "local socket")
    port = database.connect_params.get("port", 5432)
    return f"PostgreSQL {database.database} on {host}:{port}"
