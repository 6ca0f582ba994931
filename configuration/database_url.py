"""The database URL, read once: which database, the SQLite file (percent-escapes decoded), and the text to show.

`parse_database_url` is the only reader of a database URL. The configuration resolves a relative SQLite
path with it, and the instance lock and the opener take the DatabaseUrl it returns, so the file that is
locked is the file that is opened, and the password is masked one way (`mask_url`) wherever the URL shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlparse

from configuration.masking import mask_url, url_secrets

SQLITE_PREFIX = "sqlite:///"
MEMORY = ":memory:"


class DatabaseUrlError(ValueError):
    """The database URL cannot be opened as given (the message never holds its password)."""


@dataclass(frozen=True)
class DatabaseUrl:
    """A database URL that names a SQLite file or a PostgreSQL database; its repr and str hold no password."""

    kind: Literal["sqlite", "postgresql"]
    url: str = field(repr=False)  # what the driver opens (a relative SQLite path made absolute); may hold a password
    original: str = field(repr=False)  # as written
    sqlite_path: str  # the SQLite file with percent-escapes decoded, or ":memory:"; "" for PostgreSQL
    masked: str  # `url` with every password replaced by *** (mask_url): the only form to show
    secrets: tuple[str, ...] = field(repr=False)  # its passwords as written and decoded, for the log scrubber

    def __str__(self) -> str:
        return self.masked


def parse_database_url(text: str, *, base_dir: Path | None = None) -> DatabaseUrl:
    """Read `text` as a database URL; with `base_dir`, a relative SQLite path (or ~) is resolved against it.

    Raises DatabaseUrlError with one password-free line when the URL is not one we can open.
    """
    masked = mask_url(text)
    try:
        scheme = urlparse(text).scheme
    except ValueError as exc:
        raise DatabaseUrlError(f"database.url {masked!r} is not a URL: {exc}") from None
    secrets = tuple(url_secrets(text))
    if scheme in ("postgres", "postgresql"):
        return DatabaseUrl("postgresql", text, text, "", masked, secrets)
    if scheme != "sqlite":
        raise DatabaseUrlError(
            f"unsupported database URL scheme {scheme!r} in {masked!r}; use sqlite:/// or postgresql://"
        )
    raw_path = unquote(text[len(SQLITE_PREFIX):]) if text.startswith(SQLITE_PREFIX) else ""
    if not raw_path:
        raise DatabaseUrlError(f"no file in SQLite URL {masked!r}; write sqlite:///storage/trading.db")
    if raw_path == MEMORY:
        return DatabaseUrl("sqlite", text, text, MEMORY, masked, secrets)
    path = Path(raw_path)
    url = text
    if base_dir is not None and not path.is_absolute():
        path = path.expanduser()
        path = path if path.is_absolute() else base_dir / path
        url = SQLITE_PREFIX + str(path).replace("%", "%25")  # unquoted again, it names this same file
    return DatabaseUrl("sqlite", url, text, str(path), mask_url(url), secrets)


__all__ = ["DatabaseUrl", "DatabaseUrlError", "parse_database_url"]
