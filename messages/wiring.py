"""Wiring and looking in: connections made after the actors have started, and questions about the running system.

Fields holding pykka ActorRefs are typed Any: a ref is not a pydantic type, and the receiver checks nothing about it.
"""

from __future__ import annotations

from typing import Any

from messages._base import Message


class ConnectGateway(Message):
    """Wiring: where the gateway sends its reports."""

    portfolio: Any
    persistence: Any


class ConnectMarketData(Message):
    """Wiring: the market-data actor, asked for history when a symbol actor restarts."""

    market_data: Any


class GetSymbolActors(Message):
    """Ask the portfolio for the current symbol actor of each symbol (None while restarting or halted)."""


class GetMarketDataStats(Message):
    """Ask the market-data actor for its counters (MarketDataStats)."""
