"""One masking function for every URL password; the log scrubs messages and tracebacks alike."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from loguru import logger

from configuration import (
    looks_like_variable_name,
    mask_url,
    register_secret,
    url_secrets,
)
from configuration.logs import _patch
from persistence.database import DatabaseUrlError, open_database

pytestmark = pytest.mark.timeout(10)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("postgresql://bot:pw@h:5432/db", "postgresql://bot:***@h:5432/db"),
        ("mysql://bot:PASSWORD@db:3306/x", "mysql://bot:***@db:3306/x"),
        ("postgresql://bot:p@ss/w:rd@h/db", "postgresql://bot:***@h/db"),
        ("postgresql://:pw@h/db", "postgresql://:***@h/db"),
        ("postgresql://h/db?password=pw&sslmode=require", "postgresql://h/db?password=***&sslmode=require"),
        ("error in 'postgresql://a:b@h/db' and 'http://u:v@x/'", "error in 'postgresql://a:***@h/db' and 'http://u:***@x/'"),
        ("postgresql://bot@h/db", "postgresql://bot@h/db"),
        ("sqlite:///storage/trading.db", "sqlite:///storage/trading.db"),
    ],
)
def test_mask_url_hides_every_password(text: str, masked: str) -> None:
    assert mask_url(text) == masked


def test_url_secrets_are_the_raw_and_decoded_passwords() -> None:
    assert url_secrets("postgresql://bot:p%40ss@h/db?password=q") == ["p%40ss", "p@ss", "q"]


@pytest.mark.parametrize(
    ("value", "name"),
    [("KRAKEN_FUTURES_API_KEY", True), ("key", True), ("A1", True), ("1ABC", False), ("a b", False), ("x=y", False),
     ("aB3dE5fG7hI9jK1lM3nO", False), ("0123456789abcdef0123", False), ("", False)],
)
def test_looks_like_variable_name(value: str, name: bool) -> None:
    assert looks_like_variable_name(value) is name


@pytest.fixture
def lines() -> Iterator[list[str]]:
    """What a sink receives (log through logger.patch(_patch), as setup_logging configures it)."""
    collected: list[str] = []
    handler = logger.add(lambda m: collected.append(str(m)), format="{message}{exception}", level="DEBUG")
    try:
        yield collected
    finally:
        logger.remove(handler)


def test_a_traceback_in_a_log_line_is_scrubbed_too(lines: list[str]) -> None:
    register_secret("Registered-Secret-42")
    log = logger.patch(_patch)
    try:
        raise ValueError("cannot open postgresql://bot:Url-Pw-42@h/db with Registered-Secret-42")
    except ValueError:
        log.exception("failed on mysql://x:Msg-Pw-42@h/db")
    text = "".join(lines)
    assert "Traceback" in text and "ValueError" in text
    for secret in ("Registered-Secret-42", "Url-Pw-42", "Msg-Pw-42"):
        assert secret not in text


@pytest.mark.parametrize(
    "url",
    ["mysql://bot:Db-Pw-42@h/db", "postgresql://bot:Db-Pw-42@h:5432", "postgresql://bot:Db-Pw-42@h:notaport/db"],
)
def test_open_database_errors_never_hold_the_password(url: str) -> None:
    with pytest.raises(DatabaseUrlError) as info:
        open_database(url)
    assert "Db-Pw-42" not in str(info.value)
