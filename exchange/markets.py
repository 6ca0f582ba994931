"""Turn ccxt's market listing into MarketSpecs, and say clearly when a configured symbol is not listed."""

from __future__ import annotations

import difflib
from decimal import Decimal
from typing import Any

from messages import MarketSpec


class UnknownSymbolError(ValueError):
    """A configured symbol is not listed by the exchange."""


def margin_levels_from_ccxt(market: dict[str, Any]) -> tuple[tuple[Decimal, Decimal], ...]:
    """Kraken's `marginLevels` of an instrument (get-instruments docs) as (notional threshold, initial margin rate).

    A flexible future's levels are by `numNonContractUnits` (the position's value); an inverse one's by
    `contracts`: there every level applies from 0 at the highest listed rate (the harsher reading). Unreadable or
    absent: () (MarketSpec then assumes no leverage)."""
    info = market.get("info") or {}
    levels = info.get("marginLevels") if isinstance(info, dict) else None
    if not isinstance(levels, list):
        return ()
    parsed: list[tuple[Decimal, Decimal]] = []
    try:
        for level in levels:
            rate = Decimal(str(level["initialMargin"]))
            if "numNonContractUnits" in level:
                parsed.append((Decimal(str(level["numNonContractUnits"])), rate))
            else:
                parsed.append((Decimal(0), rate))
    except (KeyError, TypeError, ArithmeticError, ValueError):
        return ()
    if any(not (t.is_finite() and r.is_finite()) or r <= 0 or t < 0 for t, r in parsed):
        return ()
    return tuple(sorted(parsed))


def market_spec_from_ccxt(market: dict[str, Any]) -> MarketSpec:
    """Build a MarketSpec from a ccxt market (precision mode TICK_SIZE: precision values are steps)."""
    precision = market.get("precision") or {}
    limits = (market.get("limits") or {}).get("amount") or {}
    amount_step = Decimal(str(precision.get("amount") or 1))
    return MarketSpec(
        symbol=market["symbol"],
        exchange_id=str(market.get("id")),
        amount_step=amount_step,
        price_tick=Decimal(str(precision.get("price") or "0.01")),
        min_amount=Decimal(str(limits.get("min") or amount_step)),
        contract_size=Decimal(str(market.get("contractSize") or 1)),
        margin_levels=margin_levels_from_ccxt(market),
    )


def load_market_specs(exchange: Any, symbols: list[str] | tuple[str, ...]) -> dict[str, MarketSpec]:
    """Load the exchange's markets and return the specs of `symbols`; raise UnknownSymbolError if any is missing."""
    markets = exchange.load_markets()
    missing = [s for s in symbols if s not in markets]
    if missing:
        lines = []
        for symbol in missing:
            close = difflib.get_close_matches(symbol, list(markets), n=3, cutoff=0.5)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            lines.append(f"{symbol!r} is not listed by the exchange{hint}")
        raise UnknownSymbolError("trading.symbols: " + "; ".join(lines))
    return {symbol: market_spec_from_ccxt(markets[symbol]) for symbol in symbols}
