"""Open the database named by a URL: SQLite (WAL) by default, PostgreSQL by `postgresql://…`."""

from __future__ import annotations

import contextlib
from pathlib import Path

import peewee
from playhouse.db_url import parse as parse_db_url

from configuration.database_url import DatabaseUrl, DatabaseUrlError, parse_database_url
from configuration.logs import register_secret
from configuration.masking import mask_url


class DatabaseUnavailableError(DatabaseUrlError):
    """The database named by the URL cannot be reached or used (server down, no such database, read-only file)."""


def open_database(url: DatabaseUrl | str, *, sqlite_synchronous: str = "FULL") -> peewee.Database:
    """Return an unconnected peewee database for `url` (connect it in the thread that uses it).

    A text URL is read by `parse_database_url`; DatabaseUrlError says what is wrong with it.
    """
    database = url if isinstance(url, DatabaseUrl) else parse_database_url(url)
    for secret in database.secrets:
        register_secret(secret)  # whatever a driver later says about this URL, the log never shows the password
    if database.kind == "sqlite":
        return _open_sqlite(database, sqlite_synchronous)
    return _open_postgres(database)


def _open_sqlite(database: DatabaseUrl, synchronous: str) -> peewee.SqliteDatabase:
    raw_path = database.sqlite_path
    if raw_path != ":memory:":
        path = Path(raw_path)
        if path.is_dir():
            raise DatabaseUnavailableError(f"the SQLite database {path} is a folder; name a file in database.url")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseUnavailableError(
                f"cannot create the folder {path.parent} for the SQLite database: {exc.strerror or exc}; "
                "fix database.url or the folder"
            ) from None
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


POSTGRES_DRIVER_MISSING = (
    "PostgreSQL needs its driver, psycopg2, which is not installed here: install the postgres extra: "
    "pip install 'kraken-actors[postgres]' (from a checkout: pip install -e '.[postgres]')"
)


def require_driver(database: DatabaseUrl) -> None:
    """Raise DatabaseUrlError naming the extra to install when the URL's database needs a driver that is missing."""
    if database.kind != "postgresql":
        return
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        raise DatabaseUrlError(POSTGRES_DRIVER_MISSING) from None


def _open_postgres(database: DatabaseUrl) -> peewee.PostgresqlDatabase:
    require_driver(database)
    try:
        params = parse_db_url(database.url)
    except ValueError as exc:  # e.g. a port that is not a number
        raise DatabaseUrlError(f"cannot read database.url {database.masked!r}: {mask_url(str(exc))}") from None
    name = params.pop("database", None)
    if not name:
        raise DatabaseUrlError(f"no database name in {database.masked!r}; write postgresql://user@host:5432/dbname")
    params.setdefault("connect_timeout", 5)
    return peewee.PostgresqlDatabase(name, **params)


def check_database(url: DatabaseUrl | str, *, sqlite_synchronous: str = "FULL") -> str:
    """Open the database, create or migrate its schema as a start would, close it; describe it, or raise.

    Raises DatabaseUrlError (DatabaseUnavailableError when it cannot be reached or written) with one
    password-free line; SchemaVersionError from the store passes through.
    """
    from persistence.store import Store

    database = open_database(url, sqlite_synchronous=sqlite_synchronous)
    store = Store(database)
    try:
        store.open()
    except peewee.PeeweeException as exc:  # OperationalError, ProgrammingError, InterfaceError, ...
        raise DatabaseUnavailableError(f"{describe_database(database)}: {_first_line(exc)}") from None
    except OSError as exc:
        raise DatabaseUnavailableError(f"{describe_database(database)}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(Exception):  # a failed open leaves nothing worth reporting twice
            store.close()
    return describe_database(database)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return mask_url(text[0]) if text else type(exc).__name__


def describe_database(database: peewee.Database) -> str:
    """A short, secret-free description of where the database is."""
    if isinstance(database, peewee.SqliteDatabase):
        return f"SQLite {database.database}"
    host = database.connect_params.get("host", "local socket")
    port = database.connect_params.get("port", 5432)
    return f"PostgreSQL {database.database} on {host}:{port}"
