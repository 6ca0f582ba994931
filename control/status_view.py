"""The status table: `PortfolioStatus` JSON rendered as plain, aligned text.

The JSON (`GET /v1/status`, `run.py status --json`) is `PortfolioStatus.model_dump(mode="json")`.
Decimals are strings (`"0.0125"`), times are epoch milliseconds (UTC), enums are their values.

Portfolio (top level):
- `symbols`: list of symbol rows (below), one per configured market, sorted by symbol.
- `open_positions`: int, markets with an open position as last synced from the exchange.
- `reserved_slots`: int, markets holding a risk slot: an open position, a filling order or a reservation.
- `max_open_positions`: int, the limit on `reserved_slots` (`risk.max_open_positions`).
- `total_notional`: decimal, notional of positions at entry price plus unsynced fills plus reservations.
- `max_total_notional`: decimal, the limit on `total_notional` (`risk.max_total_notional`).
- `reconciled`: bool, the start-up reconciliation with the exchange has finished (nothing trades before).
- `realized_pnl`: decimal|null, sum of the symbols' realized PnL.
- `unrealized_pnl`: decimal|null, sum of the symbols' unrealized PnL (null when no symbol knows its own).
- `as_of`: int, epoch ms when the report was made.
- `gross_pnl`, `fees`, `funding`, `net_pnl`: decimal|null, realized PnL before fees and funding, fees paid (from
  Kraken's account log), funding received (+) or paid (-), net = gross - fees + funding; `money`: per symbol
  `{gross, fees, funding, net}`; `margin`: decimal|null, the account's available margin as last read (null: not
  read yet, entries are refused). Shown on one `Money` line.

Symbol row (`symbols[]`):
- `symbol`: str, ccxt unified market, e.g. `"BTC/USD:USD"`.
- `state`: `"SYNCING"` (not ready yet: waiting for its first position sync or for reconciliation),
  `"TRADING"`, `"PAUSED"`, `"BLOCKED"` (an order with unknown outcome blocks new entries),
  `"HALTED"` (exits only: too many crashes, or an operator's halt), `"RESTARTING"` (the actor died and
  is being restarted).
- `paused`: bool, no new orders (operator's pause; durable).
- `halted`: bool, no new entries, exits and cancels allowed (durable).
- `halt_reason`: str, why it is halted ("" when not).
- `not_ready`: str, why the symbol may not trade yet ("" when it may).
- `position`: null (not known yet) or `{symbol, side: "long"|"short"|"flat", contracts: decimal >= 0,
  entry_price: decimal|null, unrealized_pnl: decimal|null}`.
- `pending_orders`: list of our orders that are not final: `{client_order_id, side: "buy"|"sell",
  state: INITIALIZED|SUBMITTED|ACCEPTED|PARTIALLY_FILLED|UNKNOWN, reduce_only: bool, amount: decimal,
  filled: decimal, exchange_order_id: str|null}`.
- `exchange_orders`: list of orders resting on the exchange at the last reconciliation, ours or not:
  `{symbol, side, exchange_order_id, client_order_id: str|null, amount: decimal|null, filled: decimal,
  price: decimal|null, reduce_only: bool, ours: bool}`.
- `last_candle_time`: int|null, open time (epoch ms) of the last closed candle the actor handled.
- `last_price`: decimal|null, close of that candle.
- `last_signal`: str|null, the strategy's last signal, e.g. `"ENTER_LONG @ 1714564800000"` (candle time).
- `last_outcome`: str|null, what became of it: `"SENT buy 0.002"`, an order state and client order id,
  or a rejection reason with detail, e.g. `"POSITION_OPEN"`.
- `rejections`: object, reason code -> count since the actor started, e.g. `{"POSITION_OPEN": 3}`.
- `restarts`: int, how often the supervisor restarted this symbol's actor (within its window).
- `unrealized_pnl`: decimal|null, at the last price; `realized_pnl`: decimal|null, from this system's
  own fills, fees included.

The table shortens client order ids to their first 8 hex digits and long texts to a column's width;
`--json` has everything. Numbers are plain decimals (`180`, never `1.8E+2`).

Width: `render_status(..., width=N)` (by default the terminal's: `COLUMNS`, else stdout's terminal) keeps
every line within N columns (cut with … where needed). Below 120 columns, or wherever the full table would not
fit with its text columns cut to 14 characters, the layout is compact: the table keeps symbol, state,
position, prices, PnL and orders, and each symbol's signal, outcome, candle, rejections and restarts (and a
state or orders text the row had to cut) go on an indented line under its row; protective orders get a line
each. Without a width (output piped, no `COLUMNS`) the full layout is printed whole.

Fields added later need no change here: other `*pnl*` fields become PnL columns and totals,
`*notional*`/`*exposure*` fields columns and totals, other `exchange*order*` fields count in the orders column,
`*unknown*` fields in the state column, and anything else is
listed as `name=value` under the table.
"""

from __future__ import annotations

import re
import sys
import textwrap
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from configuration.formatting import plain_numbers, short_ids
from configuration.logs import terminal_width

_PORTFOLIO_KNOWN = frozenset(
    {
        "symbols",
        "open_positions",
        "reserved_slots",
        "max_open_positions",
        "total_notional",
        "max_total_notional",
        "reconciled",
        "as_of",
    }
)
_MONEY_KEYS = ("gross_pnl", "fees", "funding", "net_pnl", "margin", "money")  # the Money line (issue 13)
_SYMBOL_KNOWN = frozenset(
    {
        "symbol",
        "state",
        "paused",
        "halted",
        "halt_reason",
        "position",
        "pending_orders",
        "last_candle_time",
        "last_signal",
        "last_outcome",
        "rejections",
        "restarts",
        "last_price",
        "unrealized_pnl",
        "realized_pnl",
        "exchange_orders",
        "not_ready",
        "blocked",
        "strategy_off",
        "protection_enabled",
        "protection",
        "protection_problem",
    }
)
_STATE_WORDS = {
    "SYNCING": "syncing",
    "TRADING": "trading",
    "PAUSED": "paused",
    "BLOCKED": "blocked: unknown order",
    "HALTED": "halted",
    "RESTARTING": "restarting",
}
_EPOCH_MS = re.compile(r"\b1\d{12}\b")  # epoch milliseconds between 2001 and 2286
_MAX_CELL = 32
_MAX_REASONS = 4
COMPACT_BELOW = 120  # columns: a narrower terminal gets the compact layout
_MIN_CELL = 8  # a text column is never cut narrower than this to make a row fit
_MIN_FULL_CELL = 14  # the full table's text columns, cut narrower than this, are unreadable: compact instead


def terminal_columns() -> int | None:
    """The width `status` fits: `COLUMNS` if set, else stdout's terminal width; None when stdout is not a
    terminal (piped into a file or `grep`: the full layout, whole)."""
    return terminal_width(sys.stdout)


def render_status(status: Mapping[str, Any], *, unicode: bool = True,
                  width: int | None | Literal["terminal"] = "terminal") -> str:
    """Render a status dict (PortfolioStatus JSON) as a header, one row per symbol, details and totals; with
    `width`, no line is wider (compact layout below COMPACT_BELOW columns). The default is the terminal's width
    (`terminal_columns()`: none when stdout is not a terminal); None: the full layout, whole."""
    if width == "terminal":
        width = terminal_columns()
    times = "×" if unicode else "x"
    compact = width is not None and width < COMPACT_BELOW
    rows = [_as_mapping(row) for row in _as_list(status.get("symbols"))]
    as_of = _int(status.get("as_of"))
    lines = _headline(rows, as_of, width)
    if rows:
        lines.append("")
        table = [] if compact else _table(rows, as_of, times, unicode, width)
        if compact or (width is not None and max(len(line) for line in table) > width):
            table = _compact_table(rows, as_of, times, unicode, width or COMPACT_BELOW)
        lines.extend(table)
        details = _details(rows, width, unicode)
        if details:
            lines.append("")
            lines.extend(details)
    else:
        lines.append("(no symbols)")
    lines.append("")
    lines.extend(_wrapped_totals(_totals(status), width))
    if width is not None:
        lines = [_clip(line, unicode, max(width, 1)) for line in lines]
    return "\n".join(lines)


# --- headline ----------------------------------------------------------------------------------


def _headline(rows: Sequence[Mapping[str, Any]], as_of: int | None, width: int | None) -> list[str]:
    when = f" as of {_utc(as_of, '%Y-%m-%d %H:%M:%S')} UTC" if as_of is not None else ""
    counts: dict[str, int] = {}
    for row in rows:
        word = _STATE_WORDS.get(str(row.get("state")), str(row.get("state") or "unknown").lower()).split(":")[0]
        counts[word] = counts.get(word, 0) + 1
    summary = ", ".join(f"{n} {word}" for word, n in counts.items())
    noun = "symbol" if len(rows) == 1 else "symbols"
    line = f"Trading system{when}: {len(rows)} {noun}" + (f" ({summary})" if summary else "")
    if width is None or len(line) <= width:
        return [line]
    return [f"Trading system{when}", f"{len(rows)} {noun}" + (f": {summary}" if summary else "")]


# --- the symbol table ----------------------------------------------------------------------------


def _value_columns(rows: Sequence[Mapping[str, Any]]) -> tuple[bool, list[str], list[str]]:
    """What both layouts show beside the fixed columns: a last price (if any row has one), the PnL keys and the
    exposure keys the rows carry."""
    show_last = any(row.get("last_price") is not None for row in rows)
    pnl_keys = [k for k in ("unrealized_pnl", "realized_pnl") if any(_symbol_value(row, k) is not None for row in rows)]
    pnl_keys += sorted({k for row in rows for k in row if "pnl" in k.lower() and k not in _SYMBOL_KNOWN})
    size_keys = sorted({k for row in rows for k in row if _is_exposure_key(k)})
    return show_last, pnl_keys, size_keys


def _table(rows: Sequence[Mapping[str, Any]], as_of: int | None, times: str, unicode: bool,
           width: int | None = None) -> list[str]:
    show_last, pnl_keys, size_keys = _value_columns(rows)
    columns: list[tuple[str, bool]] = [("SYMBOL", False), ("STATE", False), ("POSITION", False), ("ENTRY", True)]
    columns += [("LAST", True)] if show_last else []
    columns += [(_header(k), True) for k in pnl_keys]
    columns += [(_header(k), True) for k in size_keys]
    columns += [("ORDERS", False), ("CANDLE UTC", False), ("LAST SIGNAL", False), ("OUTCOME", False)]
    columns += [("REJECTIONS", False), ("RESTARTS", True)]
    cells: list[list[str]] = []
    for row in rows:
        position = _as_mapping(row.get("position"))
        line = [
            str(row.get("symbol") or "?"),
            _state(row),
            _position(position),
            _number(position.get("entry_price"), thousands=True),
        ]
        line += [_number(row.get("last_price"), thousands=True)] if show_last else []
        line += [_signed(_symbol_value(row, k)) for k in pnl_keys]
        line += [_money(row.get(k)) for k in size_keys]
        line += [
            _orders(row),
            _candle_time(row.get("last_candle_time"), as_of),
            _clip(_signal(row.get("last_signal"), as_of), unicode),
            _clip(short_ids(_text(row.get("last_outcome"))), unicode),
            _rejections(row.get("rejections"), times),
            _text(row.get("restarts"), default="0"),
        ]
        cells.append(line)
    shrinkable = ("STATE|ORDERS|LAST SIGNAL|OUTCOME|REJECTIONS",)
    return _aligned(columns, cells, shrinkable, unicode, width, minimum=_MIN_FULL_CELL)[0]


def _aligned(columns: Sequence[tuple[str, bool]], cells: Sequence[Sequence[str]], shrinkable: Sequence[str],
             unicode: bool, width: int | None, minimum: int = _MIN_CELL) -> tuple[list[str], list[int]]:
    """Title, rule and rows, aligned, and the columns' widths; with `width`, the widest text columns of the
    first shrinkable group are cut (…) until a row fits (never below `minimum`), then those of the next group
    (a group: titles joined by "|"); what still does not fit is left to the final cut."""
    widths = [max(len(title), *(len(line[i]) for line in cells)) for i, (title, _) in enumerate(columns)]
    if width is not None:
        for group in shrinkable:
            titles = set(group.split("|"))
            while sum(widths) + 2 * (len(widths) - 1) > width:
                candidates = [i for i, (title, _) in enumerate(columns) if title in titles and widths[i] > minimum]
                if not candidates:
                    break
                widest = max(candidates, key=lambda i: widths[i])
                widths[widest] -= 1

    def fmt(values: Sequence[str]) -> str:
        parts = [_clip(v, unicode, w).rjust(w) if right else _clip(v, unicode, w).ljust(w)
                 for v, w, (_, right) in zip(values, widths, columns, strict=True)]
        return "  ".join(parts).rstrip()

    rule = "─" if unicode else "-"
    lines = [fmt([title for title, _ in columns]), fmt([rule * w for w in widths])] + [fmt(line) for line in cells]
    return lines, widths


def _compact_table(rows: Sequence[Mapping[str, Any]], as_of: int | None, times: str, unicode: bool,
                   width: int) -> list[str]:
    """The narrow layout: one short row per symbol (symbol, state, position, prices, PnL, orders), and under it
    an indented line with the last signal, its outcome, the candle, rejections and restarts."""
    show_last, pnl_keys, size_keys = _value_columns(rows)
    columns: list[tuple[str, bool]] = [("SYMBOL", False), ("STATE", False), ("POSITION", False), ("ENTRY", True)]
    columns += [("LAST", True)] if show_last else []
    columns += [(_COMPACT_HEADERS.get(k) or _header(k), True) for k in pnl_keys]
    columns += [(_header(k), True) for k in size_keys]
    columns += [("ORDERS", False)]
    cells: list[list[str]] = []
    notes: list[list[str]] = []
    sep = " · " if unicode else "; "
    arrow = " → " if unicode else " -> "
    for row in rows:
        position = _as_mapping(row.get("position"))
        state, orders = _state(row), _orders(row)
        line = [str(row.get("symbol") or "?"), _without_asides(state), _position(position),
                _number(position.get("entry_price"), thousands=True)]
        line += [_number(row.get("last_price"), thousands=True)] if show_last else []
        line += [_signed(_symbol_value(row, k)) for k in pnl_keys]
        line += [_money(row.get(k)) for k in size_keys]
        line += [_without_asides(orders)]
        cells.append(line)
        parts = [state, orders]  # dropped below when the table shows them whole
        signal, outcome = row.get("last_signal"), row.get("last_outcome")
        if signal is not None:
            parts.append(_signal(signal, as_of) + arrow + short_ids(_text(outcome)))
        elif outcome is not None:
            parts.append("outcome " + short_ids(_text(outcome)))
        if row.get("last_candle_time") is not None:
            parts.append("candle " + _candle_time(row.get("last_candle_time"), as_of))
        rejected = _rejections(row.get("rejections"), times)
        if rejected != "-":
            parts.append("rejected " + rejected)
        restarts = _int(row.get("restarts")) or 0
        if restarts:
            parts.append(f"restarts {restarts}")
        notes.append(parts)
    table, widths = _aligned(columns, cells, ("STATE|ORDERS", "SYMBOL"), unicode, width)
    out = table[:2]
    for row_line, cell, parts in zip(table[2:], cells, notes, strict=True):
        out.append(row_line)
        state, orders, *rest = parts
        shown_whole = [state == cell[1] and len(state) <= widths[1], orders == cell[-1] and len(orders) <= widths[-1]]
        note = sep.join([text for text, whole in zip((state, orders), shown_whole, strict=True) if not whole] + rest)
        if note:
            out.extend(textwrap.wrap(note, width=width, initial_indent="  ", subsequent_indent="    ",
                                     break_on_hyphens=False) or [])
    return out


def _without_asides(text: str) -> str:
    """`text` without its parenthesised asides: `halted (3 restarts in 600 s)` -> `halted`."""
    out: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")" and depth:
            depth -= 1
        elif not depth:
            out.append(char)
    return re.sub(r"\s+", " ", "".join(out)).replace(" ,", ",").strip() or text


def _state(row: Mapping[str, Any]) -> str:
    state = str(row.get("state") or "")
    words = [_STATE_WORDS.get(state, state.lower() or "unknown")]
    unknown = sum(_count(v) for k, v in row.items() if "unknown" in k.lower() and k not in _SYMBOL_KNOWN)
    if unknown:
        blocked = f"blocked: {unknown} unknown order" + ("s" if unknown > 1 else "")
        words = [blocked] if state == "BLOCKED" else [*words, blocked]
    if row.get("paused") and state != "PAUSED":
        words.append("paused")
    if row.get("halted") and state != "HALTED":
        words.append("halted")
    reason = _text(row.get("halt_reason"), default="")
    if reason and (row.get("halted") or state == "HALTED"):
        words = [f"{w} ({_clip(reason, False, 30)})" if w == "halted" else w for w in words]
    if row.get("strategy_off"):
        words.append("strategy off")
    blocked_why = _text(row.get("blocked"), default="")
    if blocked_why:
        why = _clip(blocked_why, False, 60)
        words = [f"{w} ({why})" if w.startswith("blocked") else w for w in words]
        if not any(w.startswith("blocked") for w in words):
            words.append(f"blocked ({why})")
    not_ready = _text(row.get("not_ready"), default="")
    if not_ready:
        why = _clip(not_ready, False, 36)
        words = [f"{w} ({why})" if w == "syncing" else w for w in words]
        if state != "SYNCING":
            words.append(f"not ready ({why})")
    return ", ".join(words)


def _position(position: Mapping[str, Any]) -> str:
    if not position:
        return "-"
    side = str(position.get("side") or "?")
    contracts = _dec(position.get("contracts"))
    if side == "flat" or contracts == 0:
        return "flat"
    return f"{side} {_number(contracts)}"


def _orders(row: Mapping[str, Any]) -> str:
    ours = [_as_mapping(o) for o in _as_list(row.get("pending_orders"))]
    parts: list[str] = []
    if len(ours) == 1 or len(ours) == 2:
        for order in ours:
            reduce = " reduce" if order.get("reduce_only") else ""
            parts.append(f"{order.get('side', '?')}{reduce} {order.get('state', '?')}")
    elif ours:
        unknown = sum(1 for o in ours if o.get("state") == "UNKNOWN")
        parts.append(f"{len(ours)} pending" + (f" ({unknown} UNKNOWN)" if unknown else ""))
    resting = [_as_mapping(o) for o in _as_list(row.get("exchange_orders"))]
    others = sum(_count(v) for k, v in row.items() if _is_exchange_orders_key(k))
    if resting or others:
        foreign = sum(1 for o in resting if not o.get("ours"))
        parts.append(f"exch {len(resting) + others}" + (f" ({foreign} not ours)" if foreign else ""))
    return "; ".join(parts) if parts else "-"


def _candle_time(value: Any, as_of: int | None) -> str:
    ms = _int(value)
    if ms is None:
        return "-"
    same_day = as_of is not None and _utc(ms, "%Y-%m-%d") == _utc(as_of, "%Y-%m-%d")
    clock = "%H:%M" if ms % 60_000 == 0 else "%H:%M:%S"
    return _utc(ms, clock if same_day else f"%Y-%m-%d {clock}")


def _signal(value: Any, as_of: int | None) -> str:
    text = _text(value)
    return _EPOCH_MS.sub(lambda m: _candle_time(int(m.group()), as_of), text)


def _rejections(value: Any, times: str) -> str:
    counts = [(str(k), _int(v) or 0) for k, v in _as_mapping(value).items()]
    counts = sorted((c for c in counts if c[1]), key=lambda c: (-c[1], c[0]))
    if not counts:
        return "-"
    shown = " ".join(f"{reason}{times}{n}" for reason, n in counts[:_MAX_REASONS])
    more = len(counts) - _MAX_REASONS
    return shown + (f" +{more} more" if more > 0 else "")


def _details(rows: Sequence[Mapping[str, Any]], width: int | None = None, unicode: bool = True) -> list[str]:
    lines = []
    for row in rows:
        extra = [
            f"{k}={_scalar(v)}"
            for k, v in row.items()
            if k not in _SYMBOL_KNOWN
            and "pnl" not in k.lower()
            and not _is_exposure_key(k)
            and not _is_exchange_orders_key(k)
            and "unknown" not in k.lower()
            and v not in (None, "", [], {})
        ]
        if extra:
            lines.append(f"{row.get('symbol', '?')}: " + "  ".join(extra))
        lines.extend(_protection(row, width, unicode))
    if width is None:
        return lines
    return [part for line in lines for part in (textwrap.wrap(line, width=width, subsequent_indent="    ",
                                                              break_on_hyphens=False) or [line])]


def _protection(row: Mapping[str, Any], width: int | None = None, unicode: bool = True) -> list[str]:
    """A symbol's protective orders on the exchange (stop-loss, take-profit), and why they are missing if they are:
    on one line, or one line per order when that is wider than `width`."""
    symbol = row.get("symbol", "?")
    orders = []
    for item in _as_list(row.get("protection")):
        order = _as_mapping(item)
        kind = "stop-loss" if order.get("kind") == "STOP_LOSS" else "take-profit"
        trigger = f" ({order.get('trigger_signal')})" if order.get("trigger_signal") else ""
        orders.append(f"{kind} {_number(order.get('trigger_price'))}{trigger} {_text(order.get('side'))} "
                      f"{_number(order.get('amount'))} {_text(order.get('state')).lower()} "
                      + short_ids(_text(order.get("client_order_id"))))
    sep = " · " if unicode else "; "
    lines = [f"{symbol}: " + sep.join(orders)] if orders else []
    if orders and width is not None and len(lines[0]) > width:
        lines = [f"{symbol}: {order}" for order in orders]
    problem = _text(row.get("protection_problem"), default="")
    if problem:
        lines.append(f"{symbol}: protection: {problem}")
    return lines


# --- portfolio totals ----------------------------------------------------------------------------


def _wrapped_totals(lines: list[str], width: int | None) -> list[str]:
    """Totals wider than `width` continue on the next line, under their value (nothing of them is cut)."""
    if width is None:
        return lines
    out = []
    for line in lines:
        label = re.match(r"\S+(?: \S+)*?\s{2,}", line)
        indent = " " * (len(label.group()) if label and len(label.group()) < width // 2 else 4)
        out.extend(textwrap.wrap(line, width=width, subsequent_indent=indent, break_on_hyphens=False) or [line])
    return out



def _totals(status: Mapping[str, Any]) -> list[str]:
    lines = []
    total, limit = _dec(status.get("total_notional")), _dec(status.get("max_total_notional"))
    if total is not None or limit is not None:
        share = f" ({total / limit:.0%})" if total is not None and limit else ""
        lines.append(("Exposure", f"{_money(total)} of {_money(limit)} max notional{share}"))
    extra_exposure = [k for k in status if k not in _PORTFOLIO_KNOWN and _is_exposure_key(k)]
    for key in sorted(extra_exposure):
        lines.append((_label(key), _money(status.get(key))))
    open_positions = _int(status.get("open_positions"))
    slots, max_slots = _int(status.get("reserved_slots")), _int(status.get("max_open_positions"))
    if open_positions is not None or slots is not None:
        lines.append(
            (
                "Positions",
                f"{_or_dash(open_positions)} open; risk slots {_or_dash(slots)} of {_or_dash(max_slots)} used",
            )
        )
    rows = [_as_mapping(row) for row in _as_list(status.get("symbols"))]
    if any("protection_enabled" in row for row in rows):
        on = any(row.get("protection_enabled") for row in rows)
        lines.append(("Protection", "stop-loss / take-profit rest on the exchange" if on
                      else "off: positions are closed only by the strategy ([protection] enabled = false)"))
    if "reconciled" in status:
        lines.append(
            ("Reconciled", "yes" if status.get("reconciled") else "not yet: nothing trades until it is")
        )
    pnl = [k for k in sorted(status) if "pnl" in k.lower() and k not in _MONEY_KEYS]
    if pnl:
        lines.append(("PnL", "  ".join(f"{_pnl_name(k)} {_signed(status.get(k))}" for k in pnl)))
    if any(status.get(k) not in (None, {}) for k in _MONEY_KEYS):
        per_symbol = _as_mapping(status.get("money"))
        lines.append(("Money", "  ".join(
            [f"gross {_signed(status.get('gross_pnl'))}  fees {_money(status.get('fees'))}  funding "
             f"{_signed(status.get('funding'))}  net {_signed(status.get('net_pnl'))}  margin "
             f"{_money(status.get('margin'))}"]
            + [f"{sym}: net {_signed(_as_mapping(row).get('net'))} (fees {_money(_as_mapping(row).get('fees'))}, "
               f"funding {_signed(_as_mapping(row).get('funding'))})" for sym, row in sorted(per_symbol.items())])))
    for key in sorted(status):
        if key in _PORTFOLIO_KNOWN or key in extra_exposure or key in pnl or key in _MONEY_KEYS:
            continue
        lines.append((_label(key), _scalar(status.get(key))))
    width = max((len(label) for label, _ in lines), default=0)
    return [f"{label.ljust(width)}  {value}" for label, value in lines]


# --- small formatters ----------------------------------------------------------------------------


def _is_exposure_key(key: str) -> bool:
    lowered = key.lower()
    return key not in _SYMBOL_KNOWN and ("notional" in lowered or "exposure" in lowered)


def _is_exchange_orders_key(key: str) -> bool:
    lowered = key.lower()
    return key not in _SYMBOL_KNOWN and "exchange" in lowered and "order" in lowered


def _symbol_value(row: Mapping[str, Any], key: str) -> Any:
    """A row's field, else its position's (unrealized PnL lives in both)."""
    value = row.get(key)
    return value if value is not None else _as_mapping(row.get("position")).get(key)


_HEADERS = {"unrealized_pnl": "UNREAL PNL", "realized_pnl": "REAL PNL"}
_COMPACT_HEADERS = {"unrealized_pnl": "UPNL", "realized_pnl": "RPNL"}


def _header(key: str) -> str:
    return _HEADERS.get(key) or key.replace("_", " ").upper()


def _pnl_name(key: str) -> str:
    return key.lower().replace("_pnl", "").replace("pnl", "").replace("_", " ").strip() or "total"


def _label(key: str) -> str:
    text = key.replace("_", " ")
    return text[:1].upper() + text[1:].replace("pnl", "PnL")


def _as_mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else []


def _count(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, (list, tuple, dict)):
        return len(value)
    return 0


def _dec(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    number = _dec(value)
    return int(number) if number is not None else None


def _number(value: Any, thousands: bool = False) -> str:
    number = _dec(value)
    if number is None:
        return "-"
    return format(number.normalize(), ",f" if thousands else "f")


def _money(value: Any) -> str:
    number = _dec(value)
    return "-" if number is None else f"{number:,.2f}"


def _signed(value: Any) -> str:
    number = _dec(value)
    return "-" if number is None else f"{number:+,.2f}"


def _or_dash(value: int | None) -> str:
    return "-" if value is None else str(value)


def _text(value: Any, default: str = "-") -> str:
    if value is None or value == "":
        return default
    return plain_numbers(str(value))


def _scalar(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}={_scalar(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return f"[{len(value)} items]"
    return _text(value)


def _clip(text: str, unicode: bool, limit: int = _MAX_CELL) -> str:
    if len(text) <= limit:
        return text
    if limit < 4:
        return text[:limit]
    return text[: limit - 1] + "…" if unicode else text[: limit - 3] + "..."


def _utc(ms: int, pattern: str) -> str:
    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime(pattern)
    except (OverflowError, OSError, ValueError):
        return str(ms)
