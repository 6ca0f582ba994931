"""A store per test, on SQLite and on PostgreSQL (the db_url fixture of tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from persistence import Store, open_database


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store(open_database(db_url))
    s.open()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def reopen(db_url: str) -> Iterator:
    """Open another store on the same database (a restart: its cache is cold)."""
    opened: list[Store] = []

    def make() -> Store:
        s = Store(open_database(db_url))
        s.open()
        opened.append(s)
        return s

    yield make
    for s in opened:
        s.close()
