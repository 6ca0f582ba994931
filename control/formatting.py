"""How the command line shows numbers, times and ids to a person, and how reports become JSON; shared helpers.

- `plain_decimal`: a decimal as plain digits (`180`, `0.0001`, never `1.8E+2` or `1E-4`);
- `utc_time`: a time as `2026-12-02 13:04:05Z` (from an aware datetime, an ISO-8601 text or epoch ms);
- `iso_utc`: a time as ISO-8601 UTC for JSON (`2026-12-02T13:04:05.123Z`);
- `short_id`: the first 8 characters of a long order id (the table's; JSON keeps the full one);
- `to_json`: a report's Python values as JSON values (decimals as plain strings, times as ISO-8601 UTC);
- `table`: rows as a plain text table with a header, columns as wide as their widest cell.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from configuration.formatting import SHORT_ID_LENGTH
from configuration.formatting import plain_decimal as shared_plain_decimal

_CLI_ORD_ID = re.compile(r"((?:cliOrdId|orderId)=)([0-9A-Za-z-]{9,})")


def plain_decimal(value: Any, *, places: int | None = None) -> str:
    """A number as plain decimal digits, never in exponent form (configuration.formatting's, shared with the log and
    status); with `places`, a table column: rounded to exactly that many decimals, zeros kept (`1.9` -> `1.90`)."""
    if value is None or value == "":
        return "-"
    if places is None:
        return shared_plain_decimal(value)
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    if not number.is_finite():
        return str(number)
    number = number.quantize(Decimal(1).scaleb(-places))
    text = format(number, "f")
    return text.lstrip("-") if number.is_zero() else text


def signed_decimal(value: Any, *, places: int | None = None) -> str:
    """Like plain_decimal with a sign on positive numbers too (`+1.5`, `-0.25`, `0`)."""
    text = plain_decimal(value, places=places)
    return f"+{text}" if _is_number(text) and Decimal(text) > 0 else text


def _is_number(text: str) -> bool:
    try:
        Decimal(text)
    except InvalidOperation:
        return False
    return True


def to_datetime(value: Any) -> datetime | None:
    """An aware UTC datetime from a datetime (naive ones taken as UTC), ISO-8601 text or epoch milliseconds."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    return None


def utc_time(value: Any) -> str:
    """A time for people, in UTC: `2026-12-02 13:04:05Z` (`-` when there is none; unreadable text as it is)."""
    moment = to_datetime(value)
    if moment is None:
        return "-" if value is None or value == "" else str(value)
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


def iso_utc(value: Any) -> str | None:
    """A time for JSON: ISO-8601 in UTC with milliseconds, `2026-12-02T13:04:05.123Z` (None stays None)."""
    moment = to_datetime(value)
    if moment is None:
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def short_id(value: Any) -> str:
    """The first 8 characters of an order id (`-` for none)."""
    if value is None or value == "":
        return "-"
    text = str(value)
    return text[:SHORT_ID_LENGTH] if len(text) > SHORT_ID_LENGTH else text


def shorten_ids(text: str) -> str:
    """Every `cliOrdId=` or `orderId=<long id>` in a detail text with the id cut to its first 8 characters."""
    return _CLI_ORD_ID.sub(lambda m: m.group(1) + m.group(2)[:SHORT_ID_LENGTH], text)


def to_json(value: Any) -> Any:
    """A report value as JSON: Decimal -> plain string, datetime -> ISO-8601 UTC, mappings and sequences inside."""
    if isinstance(value, Decimal):
        return plain_decimal(value)
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if hasattr(value, "value") and isinstance(value.value, str):  # an enum
        return value.value
    return value


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, right: Sequence[int] = ()) -> str:
    """A plain text table: a header, then one line per row, two spaces between columns; `right`: the indexes of
    the columns aligned right (numbers). The last column is not padded (a long detail does not push the width)."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        out = []
        for i, cell in enumerate(cells):
            last = i == len(cells) - 1
            if i in right:
                out.append(cell.rjust(widths[i]))
            else:
                out.append(cell if last else cell.ljust(widths[i]))
        return "  ".join(out).rstrip()

    return "\n".join([line(headers), *(line(row) for row in rows)])
