"""The reports' side of the control endpoint: `GET /v1/<report>?symbol=&since=&limit=&open=&by=` to a ReportQuery,
and a ReportReply to its JSON answer (documented in control/README.md, "Reports")."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from control.commands import RequestError
from control.formatting import to_datetime, to_json
from messages.control import ReportKind, ReportQuery, ReportReply

REPORT_ROUTES: dict[str, ReportKind] = {f"/v1/{kind.value}": kind for kind in ReportKind}
DEFAULT_LIMITS = {ReportKind.WHY: 20}
DEFAULT_LIMIT = 50
MAX_LIMIT = 10_000
_PARAMETERS = {
    ReportKind.TRADES: ("symbol", "since", "limit"),
    ReportKind.ORDERS: ("symbol", "since", "limit", "open"),
    ReportKind.PNL: ("symbol", "since", "by"),
    ReportKind.WHY: ("symbol", "since", "limit"),
    ReportKind.MARKETS: ("symbol",),
}


def parse_report_query(kind: ReportKind, query_string: str) -> ReportQuery:
    """The query of `GET /v1/<kind>?...`; RequestError names a bad or unknown parameter and what it takes."""
    try:
        pairs = parse_qsl(query_string, keep_blank_values=True, strict_parsing=bool(query_string),
                          max_num_fields=20)
    except ValueError as exc:
        raise RequestError(f"the query string cannot be read ({exc}); use e.g. ?symbol=BTC/USD:USD&limit=20") from None
    allowed = _PARAMETERS[kind]
    values: dict[str, str] = {}
    for name, value in pairs:
        if name not in allowed:
            raise RequestError(f"{kind.value} takes the parameters {', '.join(allowed)}; not {name[:40]!r}")
        if name in values:
            raise RequestError(f"the parameter {name!r} is given twice")
        values[name] = value
    fields: dict[str, Any] = {"report": kind}
    if "symbol" in values:
        symbol = values["symbol"].strip().upper()
        if not symbol or len(symbol) > 64 or not all(33 <= ord(ch) <= 126 for ch in symbol):
            raise RequestError(f"symbol must be a market symbol such as 'BTC/USD:USD', got {values['symbol'][:80]!r}")
        fields["symbol"] = symbol
    if kind is ReportKind.WHY and "symbol" not in fields:
        raise RequestError("why needs a symbol: /v1/why?symbol=BTC/USD:USD")
    if "since" in values:
        fields["since"] = parse_since(values["since"])
    if "limit" in values:
        text = values["limit"].strip()
        if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
            raise RequestError(f"limit must be a whole number from 1 to {MAX_LIMIT}, got {values['limit'][:40]!r}")
        fields["limit"] = int(text)
    else:
        fields["limit"] = DEFAULT_LIMITS.get(kind, DEFAULT_LIMIT)
    if "open" in values:
        flag = values["open"].strip().lower()
        if flag not in ("", "1", "true", "yes", "0", "false", "no"):
            raise RequestError(f"open must be true or false, got {values['open'][:40]!r}")
        fields["open_only"] = flag in ("", "1", "true", "yes")
    if "by" in values:
        if values["by"] not in ("symbol", "day"):
            raise RequestError(f"by must be 'symbol' or 'day', got {values['by'][:40]!r}")
        fields["by"] = values["by"]
    return ReportQuery(**fields)


def parse_since(text: str) -> int:
    """`since` as epoch milliseconds: digits are epoch ms; otherwise an ISO-8601 date or time (UTC when no zone)."""
    stripped = text.strip()
    if stripped.isascii() and stripped.isdigit() and len(stripped) <= 15:
        return int(stripped)
    moment = to_datetime(stripped)
    if moment is None:
        raise RequestError(f"since must be an ISO-8601 time such as 2026-12-02T13:00:00Z or epoch milliseconds, "
                           f"got {text[:60]!r}")
    return int(moment.timestamp() * 1000)


def report_body(kind: ReportKind, reply: ReportReply) -> dict[str, Any]:
    """The JSON answer of a report: `{"report", "rows", ...extra, "total" (pnl)}`; decimals as strings, times as
    ISO-8601 UTC."""
    body: dict[str, Any] = {"report": kind.value, **to_json(reply.extra), "rows": to_json(list(reply.rows))}
    if reply.total is not None:
        body["total"] = to_json(reply.total)
    return body
