"""The actors: one module per actor, plain logic classes they wrap, and the wiring that starts them."""

from actors.gateway import ExchangeGatewayActor, OrderGateway
from actors.market_data import CandleFeed, MarketDataActor, SendHistory
from actors.persistence import PersistenceActor
from actors.portfolio import GetSymbolActors, PortfolioActor, PortfolioSettings
from actors.risk import RiskBook, RiskLimits
from actors.supervision import RestartPolicy
from actors.symbol import ActorPorts, Decision, SymbolActor, SymbolPorts, SymbolSettings, SymbolTrader
from actors.system import TradingSystem, make_trader_factory
from actors.timers import ActorTimers

__all__ = [
    "ActorPorts",
    "ActorTimers",
    "CandleFeed",
    "Decision",
    "ExchangeGatewayActor",
    "GetSymbolActors",
    "MarketDataActor",
    "OrderGateway",
    "PersistenceActor",
    "PortfolioActor",
    "PortfolioSettings",
    "RestartPolicy",
    "RiskBook",
    "RiskLimits",
    "SendHistory",
    "SymbolActor",
    "SymbolPorts",
    "SymbolSettings",
    "SymbolTrader",
    "TradingSystem",
    "make_trader_factory",
]
