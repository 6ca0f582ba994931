"""One running instance per storage folder and per database: a second one refuses and names the first."""

from __future__ import annotations

import fcntl
import hashlib
import os
from pathlib import Path
from typing import Any

from configuration.database_url import DatabaseUrl
from configuration.logs import register_secret
from configuration.masking import mask_url

_ADVISORY_APP = 0x4B52414B  # "KRAK": the first key of our advisory locks


class AlreadyRunningError(RuntimeError):
    """Another instance holds the lock."""


class InstanceLock:
    """Exclusive locks on the storage folder, and on the SQLite file (beside it) or the PostgreSQL database.

    `database` None locks the storage folder alone. The SQLite lock is `<file>.lock` beside the very file
    the opener opens (both read the file from the same DatabaseUrl). File locks (flock) are released by
    the kernel when the process dies, even by SIGKILL; the PostgreSQL lock is a session advisory lock,
    released when the connection drops.
    """

    def __init__(self, storage_dir: Path, database: DatabaseUrl | None) -> None:
        self.storage_dir = storage_dir
        self.database = database
        self._files: list[Any] = []
        self._pg: Any = None

    def acquire(self) -> None:
        """Take every lock or none; raise AlreadyRunningError naming the holder."""
        try:
            self._lock_file(self.storage_dir / "instance.lock")
            if self.database is None:
                return
            if self.database.kind == "sqlite":
                db_path = Path(self.database.sqlite_path)
                self._lock_file(db_path.with_name(db_path.name + ".lock"))
            else:
                self._lock_postgres(self.database)
        except BaseException:
            self.release()
            raise

    def _lock_file(self, path: Path) -> None:
        from persistence.database import DatabaseUnavailableError

        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(path, "a+")  # noqa: SIM115 - held open for the life of the process
        except OSError as exc:
            raise DatabaseUnavailableError(
                f"cannot create the lock file {path}: {exc.strerror or type(exc).__name__}; "
                "make its folder (storage_dir, or the database's) a writable folder"
            ) from None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise AlreadyRunningError(
                f"another instance is running (pid {holder}) with the lock {path}; stop it first "
                f"(kraken-actors stop) or use another storage folder and database"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._files.append(handle)

    def _lock_postgres(self, database: DatabaseUrl) -> None:
        import psycopg2

        from persistence.database import (
            DatabaseUnavailableError,
            describe_database,
            open_database,
        )

        for secret in database.secrets:
            register_secret(secret)  # whatever the driver says about this URL, the log never shows the password
        app, key = _ADVISORY_APP, int.from_bytes(hashlib.sha256(database.url.encode()).digest()[:4], "big") >> 1
        try:
            conn = psycopg2.connect(database.url, application_name=f"kraken-actors pid={os.getpid()}",
                                    connect_timeout=5)
        except psycopg2.Error as exc:
            where = describe_database(open_database(database))
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DatabaseUnavailableError(
                f"{where}: {mask_url(first)}; check database.url and that the server runs"
            ) from None
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(%s, %s)", (app, key))
            if cur.fetchone()[0]:
                self._pg = conn
                return
            cur.execute(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s AND l.objsubid = 2",
                (app, key),
            )
            row = cur.fetchone()
        conn.close()
        holder = row[0] if row else "another process"
        raise AlreadyRunningError(
            f"another instance is running on this PostgreSQL database ({holder}); stop it first "
            f"(kraken-actors stop) or point database.url elsewhere"
        )

    def release(self) -> None:
        """Give every lock back."""
        for handle in self._files:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
                handle.close()
            except OSError:
                pass
        self._files = []
        if self._pg is not None:
            try:
                self._pg.close()
            except Exception:
                pass
            self._pg = None

    def __enter__(self) -> InstanceLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
