"""The ccxt Kraken Futures client: its URLs per mode and its construction."""

from exchange.budget import CostBudget, derivatives_cost
from exchange.client import KRAKEN_BASE_URLS, kraken_urls, make_kraken_client
from exchange.markets import UnknownSymbolError, load_market_specs, market_spec_from_ccxt

__all__ = [
    "CostBudget",
    "derivatives_cost",
    "KRAKEN_BASE_URLS",
    "UnknownSymbolError",
    "kraken_urls",
    "load_market_specs",
    "make_kraken_client",
    "market_spec_from_ccxt",
]
