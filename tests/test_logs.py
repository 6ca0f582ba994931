"""The console log fits a 100-column terminal: short order ids, a compact prefix, plain numbers, long lines
continued rather than wrapped by the terminal; the log file keeps the full ids."""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from loguru import logger

from configuration.formatting import plain_decimal, plain_numbers, short_id
from configuration.logs import console_line, setup_logging

pytestmark = pytest.mark.timeout(10)

CID = "7d1c1a7e-5b1f-4c1d-9e2a-0123456789ab"


@pytest.fixture
def logging_to(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[Path]:
    """setup_logging as a run does it (console on the captured stderr, a file in tmp_path); undone after."""
    monkeypatch.delenv("COLUMNS", raising=False)
    file = tmp_path / "logs" / "run.log"
    setup_logging("INFO", file)
    yield file
    logger.remove()
    logger.configure(patcher=lambda record: None)


def record(message: str, level: str = "INFO") -> dict[str, object]:
    """What a sink receives, enough for console_line."""
    captured: list[dict[str, object]] = []
    handler = logger.add(lambda m: captured.append(m.record), level="TRACE")
    try:
        logger.log(level, "{}", message)
    finally:
        logger.remove(handler)
    return captured[-1]


def test_the_console_shows_short_order_ids_and_the_file_the_full_ones(
    logging_to: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logger.info("BTC/USD:USD ENTER_LONG -> buy 0.002 contracts (cliOrdId {})", CID)
    console = capsys.readouterr().err
    assert "(cliOrdId 7d1c1a7e)" in console
    assert CID not in console
    assert f"(cliOrdId {CID})" in logging_to.read_text()


def test_a_console_line_is_time_level_message(logging_to: Path, capsys: pytest.CaptureFixture[str]) -> None:
    logger.warning("stop requested by cli")
    [line] = capsys.readouterr().err.splitlines()
    assert re.fullmatch(r"\d\d:\d\d:\d\d \| WARN  \| stop requested by cli", line), line


def test_decimals_in_exponent_notation_are_written_plainly_on_the_console_and_in_the_file(
    logging_to: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logger.info("BTC/USD:USD buy {} of {} filled", Decimal("1.8E+2"), Decimal("2E-7"))
    console = capsys.readouterr().err
    assert "buy 180 of 0.0000002 filled" in console
    assert "buy 180 of 0.0000002 filled" in logging_to.read_text()


def test_a_line_wider_than_the_terminal_continues_on_the_next_line_and_loses_nothing() -> None:
    words = " ".join(f"word{n}" for n in range(60))
    text = console_line(record(f"gateway: {words}"), width=100)
    lines = text.splitlines()
    assert len(lines) > 1
    assert max(len(line) for line in lines) <= 100
    assert all(line.startswith(" " * 19) for line in lines[1:])
    assert " ".join(part.strip() for part in lines).endswith(words)


def test_the_console_width_comes_from_columns(logging_to: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    logger.info("x" * 30 + " " + "y" * 30 + " " + "z" * 30)
    assert max(len(line) for line in capsys.readouterr().err.splitlines()) <= 60


def test_plain_decimal_has_no_exponent_and_no_trailing_zeros() -> None:
    assert plain_decimal(Decimal("1.8E+2")) == "180"
    assert plain_decimal(Decimal("0.0100")) == "0.01"
    assert plain_decimal(Decimal("5.000")) == "5"
    assert plain_decimal(Decimal("1E-7")) == "0.0000001"
    assert plain_decimal(Decimal("60123.456"), places=2) == "60123.46"
    assert plain_decimal(None) == "-"
    assert plain_decimal("not a number") == "not a number"
    assert plain_numbers("amount 1.8E+2, id 8a1e-4b2c") == "amount 180, id 8a1e-4b2c"


def test_short_id_is_the_first_8_hex_digits_of_a_uuid_and_anything_else_whole() -> None:
    assert short_id(CID) == "7d1c1a7e"
    assert short_id("manual-order-1") == "manual-order-1"
    assert short_id(None) == "-"
