"""The actors: one module per actor, plain logic classes they wrap, and the wiring that starts them."""

from actors.gateway import ExchangeGatewayActor, OrderGateway
from actors.heartbeat import DeadMansSwitch, HeartbeatStatus
from actors.market_data import CandleFeed, MarketDataActor
from actors.persistence import PersistenceActor
from actors.portfolio import Portfolio, PortfolioActor, PortfolioPorts, PortfolioSettings
from actors.risk import RiskBook, RiskLimits
from actors.supervision import RestartPolicy
from actors.symbol import ActorPorts, Decision, SymbolActor, SymbolPorts, SymbolSettings, SymbolTrader
from actors.system import TradingSystem, gateway_settings_for, make_trader_factory
from actors.timers import ActorTimers

__all__ = [
    "ActorPorts",
    "ActorTimers",
    "CandleFeed",
    "DeadMansSwitch",
    "Decision",
    "ExchangeGatewayActor",
    "HeartbeatStatus",
    "MarketDataActor",
    "OrderGateway",
    "PersistenceActor",
    "Portfolio",
    "PortfolioActor",
    "PortfolioPorts",
    "PortfolioSettings",
    "RestartPolicy",
    "RiskBook",
    "RiskLimits",
    "SymbolActor",
    "SymbolPorts",
    "SymbolSettings",
    "SymbolTrader",
    "TradingSystem",
    "gateway_settings_for",
    "make_trader_factory",
]
