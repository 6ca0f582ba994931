"""How values read by a human look: plain decimals (never `1.8E+2`) and short client order ids.

Shared by the console log (configuration/logs.py), the status table and control replies (control/), and the
actors' log lines; it sits in `configuration` so that every layer above may import it (tests/test_layers.py).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

SHORT_ID_LENGTH = 8

# A client order id is a UUID (messages/orders.py); its first 8 hex digits name it on the console and in
# `status`: `grep 7d1c1a7e` finds the full id in the log file, the database has it in full.
UUID_PATTERN = re.compile(r"\b([0-9a-f]{8})-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.IGNORECASE)
# A number in exponent notation as str(Decimal) writes it: an upper-case E and always a sign ("1.8E+2", "1E-7").
# Lower-case hex in ids ("…1e-4b…") never matches: no capital E, and a letter or digit sits on either side.
_EXPONENT = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?E[+-]\d+(?![\w.])")


def plain_decimal(value: Any, places: int | None = None) -> str:
    """`value` as a plain decimal: no exponent (`Decimal('1.8E+2')` -> `180`), trailing zeros trimmed
    (`0.0100` -> `0.01`, `5.000` -> `5`). With `places`, rounded to at most that many decimals first.
    Anything that is not a finite number is returned as its text (`None` -> `-`)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    if not number.is_finite():
        return str(value)
    if places is not None:
        try:
            number = number.quantize(Decimal(1).scaleb(-places))
        except InvalidOperation:  # too many digits to round: shown as it is
            pass
    text = format(number, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def plain_numbers(text: str) -> str:
    """`text` with every exponent-notation decimal in it written plainly (`amount 1.8E+2` -> `amount 180`)."""
    if "E" not in text:
        return text
    return _EXPONENT.sub(lambda match: plain_decimal(match.group()), text)


def short_id(client_order_id: str | None) -> str:
    """The short form of a client order id: its first 8 hex digits (the full id when it is not a UUID)."""
    if not client_order_id:
        return "-"
    match = UUID_PATTERN.fullmatch(client_order_id)
    return match.group(1) if match else client_order_id


def short_ids(text: str) -> str:
    """`text` with every client order id (UUID) in it shortened to its first 8 hex digits."""
    return UUID_PATTERN.sub(r"\1", text)
