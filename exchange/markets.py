"""Turn ccxt's market listing into MarketSpecs, and say clearly when a configured symbol is not listed."""

from __future__ import annotations

import difflib
from decimal import Decimal
from typing import Any

from messages import MarketSpec


class UnknownSymbolError(ValueError):
    """A configured symbol is not listed by the exchange."""


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
