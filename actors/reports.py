"""The operator's read-only reports on a running system: `markets` from the exchange's listing, the others asked of
the persistence actor (which answers them from the database with persistence/queries.py). Nothing here changes
anything; the control endpoint calls `answer_report` from a request thread."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from exchange.markets import market_spec_from_ccxt
from messages.control import ControlReply, ReportKind, ReportQuery, ReportReply


def answer_report(query: ReportQuery, *, persistence: Any, traded: dict[str, Any], listing: dict[str, Any] | None,
                  timeout_s: float) -> ReportReply:
    """One report. `traded`: the configured symbols' MarketSpecs; `listing`: ccxt's loaded markets (None: unknown).

    A symbol this system does not trade is refused, naming the traded ones (as the control commands do)."""
    if query.symbol is not None and query.symbol not in traded:
        refusal = ControlReply.unknown_symbol(query.symbol, traded)
        return ReportReply(ok=False, code=refusal.code, detail=refusal.detail, extra={"traded": sorted(traded)})
    if query.report is ReportKind.WHY and query.symbol is None:
        return ReportReply(ok=False, detail=f"why needs a SYMBOL; this system trades {', '.join(sorted(traded))}",
                           extra={"traded": sorted(traded)})
    if query.report is ReportKind.MARKETS:
        rows = market_rows(listing or {}, traded)
        if query.symbol is not None:
            rows = [row for row in rows if row["symbol"] == query.symbol]
        return ReportReply(rows=tuple(rows), extra={"traded": sorted(traded), "listed": len(rows)})
    reply = persistence.ask(query, block=True, timeout=timeout_s)
    if not isinstance(reply, ReportReply):
        raise TypeError(f"the persistence actor answered a {query.report.value} report with {type(reply).__name__}")
    return reply.model_copy(update={"extra": {**reply.extra, "traded": sorted(traded)}})


def market_rows(listing: dict[str, Any], traded: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per tradeable contract the exchange lists (index prices left out), sorted by symbol, marking the
    traded ones; a configured symbol missing from the listing still gets its row from its MarketSpec."""
    rows: dict[str, dict[str, Any]] = {}
    for symbol, market in listing.items():
        if not isinstance(market, dict) or market.get("index") or not market.get("contract", True):
            continue
        try:
            spec = market_spec_from_ccxt(market)
        except (KeyError, TypeError, ValueError, InvalidOperation):
            continue  # a listing entry that is not a market we could trade
        rows[symbol] = _row(spec, traded=symbol in traded, active=market.get("active"),
                            max_leverage=max_leverage(market))
    for symbol, spec in traded.items():
        rows.setdefault(symbol, _row(spec, traded=True, active=None, max_leverage=None))
    return [rows[symbol] for symbol in sorted(rows)]


def _row(spec: Any, *, traded: bool, active: Any, max_leverage: Decimal | None) -> dict[str, Any]:
    return {
        "symbol": spec.symbol,
        "exchange_id": spec.exchange_id,
        "contract_size": spec.contract_size,
        "min_amount": spec.min_amount,
        "amount_step": spec.amount_step,
        "price_tick": spec.price_tick,
        "max_leverage": max_leverage,
        "active": None if active is None else bool(active),
        "traded": traded,
    }


def max_leverage(market: dict[str, Any]) -> Decimal | None:
    """The largest leverage of a market: ccxt's limits when it has them, else 1 / the first margin level's initial
    margin (Kraken's instruments list `marginLevels`, as ccxt's own leverage tiers read them); None when unknown."""
    limit = ((market.get("limits") or {}).get("leverage") or {}).get("max")
    try:
        if limit:
            return Decimal(str(limit))
        levels = (market.get("info") or {}).get("marginLevels") or []
        initial = Decimal(str(levels[0]["initialMargin"])) if levels else Decimal(0)
    except (InvalidOperation, KeyError, TypeError, IndexError):
        return None
    return (Decimal(1) / initial).quantize(Decimal("0.01")).normalize() if initial > 0 else None


def report_of(system: Any, query: ReportQuery) -> ReportReply:
    """`answer_report` on a started TradingSystem (its persistence actor, traded markets and ccxt listing)."""
    if system.persistence is None:
        raise RuntimeError("the trading system is not started")
    exchange = system.public_exchange if system.public_exchange is not None else system.private_exchange
    listing = getattr(exchange, "markets", None)
    return answer_report(query, persistence=system.persistence, traded=system.markets,
                         listing=listing if isinstance(listing, dict) else None, timeout_s=system.ask_timeout_s)
