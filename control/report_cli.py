"""The operator's read-only reports on the command line: trades, orders, pnl, why, markets.

Each asks the running system through its control endpoint (`GET /v1/<report>`) and prints a table (times in UTC,
plain decimals, short order ids) or, with `--json`, the endpoint's answer as it is (documented in
control/README.md, "Reports"). Exit codes as every control command: 0 shown, 1 refused (an unknown symbol: the
message names the traded ones), 2 usage, 3 nothing running, 4 the system failed to answer.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from control import cli
from control.client import ControlClient
from control.formatting import plain_decimal, short_id, shorten_ids, signed_decimal, table, to_datetime, utc_time

_HELP = {
    "trades": "list the fills: time, symbol, side, amount, price, fee, order (UTC times)",
    "orders": "list the orders: state, reason, filled/amount, average price, kind (--open: only open ones)",
    "pnl": "realized PnL per symbol (or --by day, UTC) with fees and funding",
    "why": "the last decisions for SYMBOL with their reasons (refused signals, orders, cancels, commands)",
    "markets": "what the exchange lists (sizes, steps, ticks, leverage) and which of them this system trades",
}
_RELATIVE = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_EVENT_NAMES = {"SIGNAL_REJECTED": "signal refused", "INTENT_CLAIMED": "order sent", "CONTROL": "command",
                "PROTECTION": "protection", "RECONCILE_MISMATCH": "mismatch", "SYMBOL_HALTED": "halted",
                "ACTOR_DIED": "actor died", "ACTOR_RESTARTED": "restarted", "SYSTEM": "system",
                "RECONCILED": "reconciled", "POSITION_SYNC_FAILED": "sync failed"}
_CANDLE_MS = re.compile(r"\bcandle (\d{12,14})\b")


def register(subparsers: Any) -> None:
    """Add trades, orders, pnl, why and markets to an argparse subparsers object (called by control.cli.register)."""
    for name, handler in (("trades", _print_trades), ("orders", _print_orders), ("pnl", _print_pnl),
                          ("why", _print_why), ("markets", _print_markets)):
        parser = subparsers.add_parser(name, help=_HELP[name], description=_HELP[name])
        cli._common(parser)
        parser.add_argument("--json", action="store_true",
                            help="print the answer as JSON (decimals as strings, ISO-8601 UTC times; "
                                 "control/README.md)")
        if name == "why":
            parser.add_argument("symbol", metavar="SYMBOL", help="the market, e.g. BTC/USD:USD")
        else:
            parser.add_argument("--symbol", help="only this market, e.g. BTC/USD:USD")
        if name != "markets":
            parser.add_argument("--since", type=since_argument,
                                help="only from this time on: 2026-12-02, 2026-12-02T13:00 (UTC), or 30m, 2h, 1d ago")
        if name in ("trades", "orders", "why"):
            parser.add_argument("--limit", type=limit_argument, default=20 if name == "why" else 50,
                                help=f"the newest N rows (default {20 if name == 'why' else 50})")
        if name == "orders":
            parser.add_argument("--open", dest="open_only", action="store_true", help="only orders that are not final")
        if name == "pnl":
            parser.add_argument("--by", choices=("symbol", "day"), default="symbol",
                                help="one row per symbol (default) or per UTC day")
        if name == "markets":
            parser.add_argument("--traded", action="store_true", help="only the symbols this system trades")
        parser.set_defaults(func=_command(name, handler))


def since_argument(text: str) -> str:
    """An argparse type: `--since` as ISO-8601 UTC text for the endpoint (a relative `30m` counted back from now)."""
    stripped = text.strip()
    match = _RELATIVE.match(stripped)
    if match:
        moment = datetime.now(UTC) - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    elif stripped.isdigit():
        moment = to_datetime(int(stripped))  # type: ignore[assignment]
    else:
        moment = to_datetime(stripped)  # type: ignore[assignment]
    if moment is None:
        raise argparse.ArgumentTypeError(
            f"must be a UTC date or time (2026-12-02, 2026-12-02T13:00), epoch ms, or 30m / 2h / 1d; got {text!r}")
    return moment.isoformat().replace("+00:00", "Z")


def limit_argument(text: str) -> int:
    """An argparse type: a whole number of rows from 1 to 10000."""
    if not text.strip().isdigit() or not 1 <= int(text) <= 10_000:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 10000, got {text!r}")
    return int(text)


def _command(name: str, render: Callable[[dict[str, Any], argparse.Namespace], str]) -> Callable[..., int]:
    def run(args: argparse.Namespace) -> int:
        params: dict[str, Any] = {"symbol": getattr(args, "symbol", None), "since": getattr(args, "since", None)}
        if name in ("trades", "orders", "why"):
            params["limit"] = args.limit
        if name == "orders" and args.open_only:
            params["open"] = True
        if name == "pnl":
            params["by"] = args.by

        def act(client: ControlClient) -> int:
            data = client.report(name, **params)
            print(json.dumps(data, indent=2) if args.json else render(data, args))
            return cli.EXIT_OK

        return cli._with_client(args, name, act)

    return run


def _rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [row for row in data.get("rows") or [] if isinstance(row, dict)]


def _where(args: argparse.Namespace) -> str:
    parts = []
    if getattr(args, "symbol", None):
        parts.append(f"for {args.symbol.upper()}")
    if getattr(args, "since", None):
        parts.append(f"since {utc_time(args.since)}")
    return (" " + " ".join(parts)) if parts else ""


def _print_trades(data: dict[str, Any], args: argparse.Namespace) -> str:
    rows = _rows(data)
    if not rows:
        return f"no trades{_where(args)}"
    body = [[utc_time(r.get("time")), str(r.get("symbol")), str(r.get("side")), plain_decimal(r.get("amount")),
             plain_decimal(r.get("price")), plain_decimal(r.get("fee")), str(r.get("kind") or "-"),
             short_id(r.get("client_order_id") or r.get("order_id"))] for r in rows]
    text = table(("time (UTC)", "symbol", "side", "amount", "price", "fee", "kind", "order"), body, right=(3, 4, 5))
    return f"{text}\n{len(rows)} fill{'s' if len(rows) != 1 else ''}{_where(args)}"


def _print_orders(data: dict[str, Any], args: argparse.Namespace) -> str:
    rows = _rows(data)
    if not rows:
        return f"no {'open ' if args.open_only else ''}orders{_where(args)}"
    body = []
    for r in rows:
        amount = plain_decimal(r.get("amount")) if r.get("amount") is not None else "?"
        body.append([utc_time(r.get("created_at")), str(r.get("symbol")), str(r.get("kind") or "-"),
                     str(r.get("side")), str(r.get("state")), f"{plain_decimal(r.get('filled'))}/{amount}",
                     plain_decimal(r.get("average_price")), str(r.get("reason") or "-"),
                     short_id(r.get("client_order_id") or r.get("order_id"))])
    text = table(("created (UTC)", "symbol", "kind", "side", "state", "filled/amount", "avg price", "reason",
                  "order"), body, right=(5, 6))
    open_count = sum(1 for r in rows if r.get("open"))
    return f"{text}\n{len(rows)} order{'s' if len(rows) != 1 else ''} ({open_count} open){_where(args)}"


def _print_pnl(data: dict[str, Any], args: argparse.Namespace) -> str:
    rows = _rows(data)
    by = str(data.get("by") or args.by)
    if not rows:
        return f"no realized PnL yet{_where(args)} (no fills)"

    def money(row: dict[str, Any]) -> list[str]:
        return [str(row.get("fills", 0)), plain_decimal(row.get("volume"), places=2),
                signed_decimal(row.get("gross"), places=2), plain_decimal(row.get("fees") or 0, places=2),
                signed_decimal(row.get("funding") or 0, places=2), signed_decimal(row.get("net"), places=2)]

    body = [[str(r.get(by)), *money(r)] for r in rows]
    total = data.get("total") or {}
    body.append(["total", *money(total)])
    text = table((by if by == "symbol" else "day (UTC)", "fills", "volume", "gross", "fees", "funding", "net"),
                 body, right=(1, 2, 3, 4, 5, 6))
    note = "net = gross - fees + funding"
    if not data.get("funding_recorded"):
        note += "; no funding payments recorded"
    return f"{text}\n{note}{_where(args)}"


def _print_why(data: dict[str, Any], args: argparse.Namespace) -> str:
    rows = _rows(data)
    if not rows:
        return f"no decisions recorded{_where(args)}"
    body = [[utc_time(r.get("time")), _event_name(r), str(r.get("reason") or "-"), _detail(str(r.get("detail") or ""))]
            for r in rows]
    return (table(("time (UTC)", "what", "reason", "detail"), body)
            + f"\nthe {len(rows)} newest, newest first{_where(args)}")


def _event_name(row: dict[str, Any]) -> str:
    event = str(row.get("event") or "")
    if event == "ORDER_UPDATE":
        state = str(row.get("detail") or "").split(" ", 1)[0]
        return f"order {state.lower()}" if state.isupper() else "order update"
    return _EVENT_NAMES.get(event, event.lower().replace("_", " "))


def _detail(text: str) -> str:
    """A detail for the table: short order ids, a candle's epoch ms as its UTC time."""
    text = shorten_ids(text)
    return _CANDLE_MS.sub(lambda m: f"candle {utc_time(int(m.group(1)))}", text)


def _print_markets(data: dict[str, Any], args: argparse.Namespace) -> str:
    rows = _rows(data)
    if args.traded:
        rows = [r for r in rows if r.get("traded")]
    if not rows:
        return "no markets listed" + (" for this system's symbols" if args.traded else "")
    body = [[str(r.get("symbol")), str(r.get("exchange_id")), plain_decimal(r.get("contract_size")),
             plain_decimal(r.get("min_amount")), plain_decimal(r.get("amount_step")),
             plain_decimal(r.get("price_tick")), plain_decimal(r.get("max_leverage")),
             "yes" if r.get("traded") else ""] for r in rows]
    text = table(("symbol", "kraken id", "contract", "min size", "size step", "tick", "max lev", "traded"), body,
                 right=(2, 3, 4, 5, 6))
    traded = data.get("traded") or []
    return f"{text}\n{len(rows)} listed; this system trades {len(traded)}: {', '.join(traded)}"

