"""Read-only queries for the operator's reports: trades, orders, realized PnL by symbol or day, the reasons of the
last decisions of a symbol.

Plain functions on a Store's database (the persistence actor calls them; nothing here writes). Each returns rows
as plain mappings with Python values: `Decimal` amounts and prices, timezone-aware UTC `datetime` times, strings;
the control layer turns them into JSON (decimals as strings, times as ISO-8601) and tables. The keys are the
reports' documented fields (control/README.md, "Reports").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import peewee

from messages.control import ControlCode, ReportKind, ReportQuery, ReportReply
from messages.orders import FINAL_STATES
from persistence.store import Store, _average_cost_step

MAX_LIMIT = 10_000  # rows a report returns at most, whatever --limit asks
ZERO = Decimal(0)
_FINAL = tuple(state.value for state in FINAL_STATES)
# The intent's kind as the reports name it (an order without an intent was placed outside this system).
KIND_NAMES = {"ENTER_LONG": "entry", "ENTER_SHORT": "entry", "EXIT": "exit", "STOP_LOSS": "stop-loss",
              "TAKE_PROFIT": "take-profit"}
EXTERNAL = "external"


def utc(ms: int | None) -> datetime | None:
    """Epoch milliseconds as an aware UTC datetime (None stays None)."""
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


def _decimal(text: Any) -> Decimal | None:
    return None if text is None or text == "" else Decimal(str(text))


def _limit(limit: int) -> int:
    return max(1, min(int(limit), MAX_LIMIT))


def trades(store: Store, *, symbol: str | None = None, since_ms: int | None = None,
           limit: int = 50) -> list[dict[str, Any]]:
    """The newest `limit` fills (oldest first within them): time, symbol, side, amount, price, fee, the order.

    `fee` is the fill's stored fee (0 when the exchange reported none); `kind` names the intent the fill belongs
    to (entry, exit, stop-loss, take-profit) or "external"."""
    F = store.models.Fill
    rows = list(fills_with_kind(store, symbol=symbol, since_ms=since_ms)
                .order_by(F.time.desc(), F.id.desc()).limit(_limit(limit)).dicts())
    return [
        {
            "time": utc(r["time"]),
            "symbol": r["symbol"],
            "side": r["side"],
            "amount": Decimal(r["amount"]),
            "price": Decimal(r["price"]),
            "fee": _decimal(r["fee"]) or ZERO,
            "kind": KIND_NAMES.get(r["intent_kind"] or "", EXTERNAL),
            "fill_id": r["fill_id"],
            "order_id": r["exchange_order_id"],
            "client_order_id": r["client_order_id"],
        }
        for r in reversed(rows)
    ]


def fills_with_kind(store: Store, *, symbol: str | None = None, since_ms: int | None = None) -> Any:
    """The query of fills joined with their intent's kind (`intent_kind`, None for an order placed outside this
    system; KIND_NAMES names them), unordered: `trades` pages it, a backtest reads it whole."""
    m = store.models
    F, Intent = m.Fill, m.Intent
    query = (F.select(F, Intent.kind.alias("intent_kind"))
             .join(Intent, on=(F.client_order_id == Intent.client_order_id), join_type=peewee.JOIN.LEFT_OUTER))
    if symbol is not None:
        query = query.where(F.symbol == symbol)
    if since_ms is not None:
        query = query.where(F.time >= since_ms)
    return query


def orders(store: Store, *, symbol: str | None = None, since_ms: int | None = None, limit: int = 50,
           open_only: bool = False) -> list[dict[str, Any]]:
    """The newest `limit` orders (oldest first within them), with their intent's kind; `open_only`: not final."""
    m = store.models
    Order, Intent = m.Order, m.Intent
    query = (Order.select(Order, Intent.kind.alias("intent_kind"), Intent.order_type.alias("order_type"),
                          Intent.limit_price.alias("limit_price"), Intent.trigger_price.alias("trigger_price"))
             .join(Intent, on=(Order.intent_hash == Intent.intent_hash), join_type=peewee.JOIN.LEFT_OUTER))
    if symbol is not None:
        query = query.where(Order.symbol == symbol)
    if since_ms is not None:
        query = query.where(Order.updated_at >= since_ms)
    if open_only:
        query = query.where(Order.state.not_in(_FINAL))
    rows = list(query.order_by(Order.created_at.desc(), Order.id.desc()).limit(_limit(limit)).dicts())
    result = []
    for r in reversed(rows):
        amount, filled = _decimal(r["amount"]), _decimal(r["filled"]) or ZERO
        result.append({
            "created_at": utc(r["created_at"]),
            "updated_at": utc(r["updated_at"]),
            "symbol": r["symbol"],
            "side": r["side"],
            "kind": KIND_NAMES.get(r["intent_kind"] or "", EXTERNAL),
            "order_type": r["order_type"],
            "state": r["state"],
            "open": r["state"] not in _FINAL,
            "reason": r["reason"],
            "amount": amount,
            "filled": filled,
            "average_price": _decimal(r["average_price"]),
            "limit_price": _decimal(r["limit_price"]),
            "trigger_price": _decimal(r["trigger_price"]),
            "reduce_only": bool(r["reduce_only"]),
            "origin": r["origin"],
            "order_id": r["exchange_order_id"],
            "client_order_id": r["client_order_id"],
            "detail": r["detail"] or "",
        })
    return result


@dataclass
class _PnlRow:
    gross: Decimal = ZERO  # trading PnL before fees and funding (average cost)
    fees: Decimal = ZERO  # paid (a positive number is a cost)
    funding: Decimal = ZERO  # received (+) or paid (-)
    fills: int = 0
    volume: Decimal = ZERO  # notional traded (amount x price)

    def as_dict(self) -> dict[str, Any]:
        return {"gross": self.gross, "fees": self.fees, "funding": self.funding,
                "net": self.gross - self.fees + self.funding, "fills": self.fills, "volume": self.volume}


def pnl(store: Store, *, by: str = "symbol", symbol: str | None = None,
        since_ms: int | None = None) -> dict[str, Any]:
    """Realized PnL per symbol or per UTC day: gross (average cost, the same steps as the store's running totals),
    fees, funding, net = gross - fees + funding; and the total.

    Every fill of a symbol is replayed in the order it was stored (the average cost needs all of them); `since_ms`
    only chooses which fills' results are counted. Funding comes from the funding table when the schema has one
    (`Store.models.Funding`: symbol, amount (+ received), time), else it is 0.
    """
    if by not in ("symbol", "day"):
        raise ValueError(f"pnl by {by!r}: use 'symbol' or 'day'")
    F = store.models.Fill
    query = F.select(F.symbol, F.side, F.amount, F.price, F.fee, F.time)
    if symbol is not None:
        query = query.where(F.symbol == symbol)
    rows: dict[str, _PnlRow] = {}
    books: dict[str, tuple[Decimal, Decimal]] = {}  # symbol -> (position, entry)

    def row_for(sym: str, ms: int) -> _PnlRow:
        key = sym if by == "symbol" else utc(ms).strftime("%Y-%m-%d")  # type: ignore[union-attr]
        return rows.setdefault(key, _PnlRow())

    for sym, side, amount_text, price_text, fee_text, ms in query.order_by(F.id).tuples().iterator():
        amount, price, fee = Decimal(amount_text), Decimal(price_text), _decimal(fee_text) or ZERO
        position, entry = books.get(sym, (ZERO, ZERO))
        position, entry, gained = _average_cost_step(position, entry, ZERO, side, amount, price)
        books[sym] = (position, entry)
        if since_ms is not None and ms < since_ms:
            continue
        row = row_for(sym, ms)
        row.gross += gained
        row.fees += fee
        row.fills += 1
        row.volume += amount * price
    for sym, amount, ms in funding_payments(store, symbol, since_ms):
        row_for(sym, ms).funding += amount
    total = _PnlRow()
    for row in rows.values():
        total.gross += row.gross
        total.fees += row.fees
        total.funding += row.funding
        total.fills += row.fills
        total.volume += row.volume
    key = "symbol" if by == "symbol" else "day"
    positions = {sym: {"position": position, "entry": entry} for sym, (position, entry) in books.items()}
    return {
        "by": by,
        "rows": [{key: name, **row.as_dict(), **(positions.get(name, {}) if by == "symbol" else {})}
                 for name, row in sorted(rows.items())],
        "total": total.as_dict(),
        "funding_recorded": getattr(store.models, "Funding", None) is not None,
    }


def funding_payments(store: Store, symbol: str | None = None,
                     since_ms: int | None = None) -> Iterable[tuple[str, Decimal, int]]:
    """(symbol, amount received, time ms) of every funding payment, when the schema has a funding table."""
    model = getattr(store.models, "Funding", None)
    if model is None:
        return []
    query = model.select(model.symbol, model.amount, model.time).order_by(model.time, model.id)
    if symbol is not None:
        query = query.where(model.symbol == symbol)
    if since_ms is not None:
        query = query.where(model.time >= since_ms)
    return [(sym, Decimal(str(amount)), int(ms)) for sym, amount, ms in query.tuples().iterator()]


def decisions(store: Store, symbol: str, *, limit: int = 20, since_ms: int | None = None) -> list[dict[str, Any]]:
    """The newest `limit` entries of the event log for `symbol`, newest first: signals refused (with the reason),
    intents claimed (orders placed), order updates, cancels, protective orders, and control commands (those given
    for every symbol too). Each with the intent's kind and client order id when the event names one."""
    m = store.models
    E, Intent = m.Event, m.Intent
    mine = (E.symbol == symbol) | (E.symbol.is_null() & (E.kind == "CONTROL"))
    query = (E.select(E, Intent.kind.alias("intent_kind"), Intent.client_order_id.alias("client_order_id"))
             .join(Intent, on=(E.intent_hash == Intent.intent_hash), join_type=peewee.JOIN.LEFT_OUTER).where(mine))
    if since_ms is not None:
        query = query.where(E.time >= since_ms)
    rows = query.order_by(E.time.desc(), E.id.desc()).limit(_limit(limit)).dicts()
    return [
        {
            "time": utc(r["time"]),
            "symbol": r["symbol"],
            "event": r["kind"],
            "reason": r["reason"],
            "kind": KIND_NAMES.get(r["intent_kind"] or "") if r["intent_kind"] else None,
            "client_order_id": r["client_order_id"],
            "detail": r["detail"] or "",
        }
        for r in rows
    ]


def answer(store: Store, query: ReportQuery) -> ReportReply:
    """The persistence actor's answer to a ReportQuery (every report but `markets`, which the system answers)."""
    if query.report is ReportKind.TRADES:
        return ReportReply(rows=tuple(trades(store, symbol=query.symbol, since_ms=query.since, limit=query.limit)))
    if query.report is ReportKind.ORDERS:
        return ReportReply(rows=tuple(orders(store, symbol=query.symbol, since_ms=query.since, limit=query.limit,
                                             open_only=query.open_only)))
    if query.report is ReportKind.PNL:
        if query.by not in ("symbol", "day"):
            return ReportReply(ok=False, code=ControlCode.REFUSED,
                               detail=f"pnl --by {query.by!r}: use 'symbol' or 'day'")
        found = pnl(store, by=query.by, symbol=query.symbol, since_ms=query.since)
        return ReportReply(rows=tuple(found["rows"]), total=found["total"],
                           extra={"by": found["by"], "funding_recorded": found["funding_recorded"]})
    if query.report is ReportKind.WHY and query.symbol is not None:
        return ReportReply(rows=tuple(decisions(store, query.symbol, limit=query.limit, since_ms=query.since)))
    return ReportReply(ok=False, code=ControlCode.REFUSED,
                       detail=f"the database does not answer the {query.report.value} report"
                              + (" without a symbol" if query.report is ReportKind.WHY else ""))
