"""Logging: everything through loguru (standard `logging` from pykka, ccxt and peewee routed into it), secrets
scrubbed."""

from __future__ import annotations

import logging
import sys
import traceback
import types
from pathlib import Path
from typing import Any

from loguru import logger

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
    record["message"] = scrub(message)


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
    logger.add(sys.stderr, level=level, format="{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <7} | {message}",
               backtrace=False, diagnose=False)
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
