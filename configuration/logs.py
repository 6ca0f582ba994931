"""Logging: everything through loguru (standard `logging` from pykka, ccxt and peewee routed into it), secrets
scrubbed."""

from __future__ import annotations

import logging
import os
import sys
import textwrap
import traceback
import types
from pathlib import Path
from typing import Any, TextIO

from loguru import logger

from configuration.formatting import plain_numbers, short_ids
from configuration.masking import MASK as _MASK
from configuration.masking import mask_url

_SECRETS: set[str] = set()


def register_secret(value: str | None) -> None:
    """Make sure `value` never appears in a log line (replaced by ***)."""
    if value and len(value) >= 4:
        _SECRETS.add(value)


def scrub(text: str) -> str:
    """Replace every registered secret, and every password in a URL, in `text`."""
    for secret in sorted(_SECRETS, key=len, reverse=True):  # longest first: no half-masked overlaps
        if secret in text:
            text = text.replace(secret, _MASK)
    return mask_url(text)


def _patch(record: Any) -> None:
    message = record["message"]
    exception = record["exception"]
    if exception is not None and exception.type is not None:
        # Format the traceback here (plain, no local variables) so that it is scrubbed like the message.
        text = "".join(traceback.format_exception(exception.type, exception.value, exception.traceback)).rstrip()
        message = f"{message}\n{text}"
        record["exception"] = None
    record["message"] = plain_numbers(scrub(message))


# The console line: `13:02:45 | INFO  | message` (the local clock time, the level in 5 columns).
_LEVEL_WORDS = {"WARNING": "WARN", "CRITICAL": "CRIT", "SUCCESS": "OK"}
CONSOLE_PREFIX_WIDTH = len("00:00:00 | LEVEL | ")


def console_line(record: Any, width: int | None = None) -> str:
    """A record as the console shows it: time HH:MM:SS, level, the message with client order ids shortened to
    their first 8 hex digits (the log file keeps them in full). With `width`, every line of it fits: a longer
    one continues on the next line, indented under the message; nothing is cut off."""
    level = record["level"].name
    prefix = f"{record['time']:%H:%M:%S} | {_LEVEL_WORDS.get(level, level)[:5]:<5} | "
    text = short_ids(str(record["message"]))
    lines = text.splitlines() or [""]
    if width is None or width <= CONSOLE_PREFIX_WIDTH + 20:
        return "\n".join([prefix + lines[0], *lines[1:]])
    indent = " " * len(prefix)
    out: list[str] = []
    for number, line in enumerate(lines):
        first = prefix if number == 0 else indent
        wrapped = textwrap.wrap(line, width=width, initial_indent=first, subsequent_indent=indent,
                                break_long_words=True, break_on_hyphens=False, drop_whitespace=True) or [first]
        out.extend(part.rstrip() for part in wrapped)
    return "\n".join(out)


def terminal_width(stream: TextIO) -> int | None:
    """The console's width: `COLUMNS` if set, else the terminal's; None when the stream is not a terminal
    (piped to a file: lines are written whole)."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        if stream.isatty():
            return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        pass
    return None


class ConsoleSink:
    """The stderr sink: each record as `console_line` writes it, at the terminal's width of the moment
    (`sys.stderr` looked up at each line, so a redirected stderr gets it)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def write(self, message: Any) -> None:
        stream = self.stream or sys.stderr
        stream.write(console_line(message.record, terminal_width(stream)) + "\n")


class InterceptHandler(logging.Handler):
    """Send standard-library log records to loguru, keeping their level and origin."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        frame: types.FrameType | None = logging.currentframe()
        depth = 2
        while frame is not None and frame.f_code.co_filename == logging.__file__:
            frame = frame.f_back
            depth += 1
        logger.opt(depth=depth, exception=record.exc_info).log(level, record.getMessage())


def setup_logging(level: str = "INFO", file: Path | None = None, rotation: str = "50 MB",
                  retention: str = "14 days") -> None:
    """Log to stderr (and to `file` if given) at `level`; route standard logging into loguru."""
    logger.remove()
    logger.configure(patcher=_patch)
    # diagnose=False: loguru would print every frame's local variables in tracebacks (keys, tokens)
    # The console is compact (HH:MM:SS, short order ids, wrapped at the terminal's width); the file has it all.
    logger.add(ConsoleSink().write, level=level, format="{message}", colorize=False, backtrace=False,
               diagnose=False)
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        logger.add(file, level=level, rotation=rotation, retention=retention, enqueue=False, backtrace=False,
                   diagnose=False)
    logging.basicConfig(handlers=[InterceptHandler()], level=logging.INFO, force=True)
    # ccxt's DEBUG lines carry request headers (the API key): keep it at INFO whatever the level.
    logging.getLogger("ccxt").setLevel(logging.INFO)
    logging.getLogger("peewee").setLevel(logging.INFO)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    logging.getLogger("pykka").setLevel(logging.DEBUG if level in ("TRACE", "DEBUG") else logging.INFO)
