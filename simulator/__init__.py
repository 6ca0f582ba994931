"""A Kraken Futures simulator that the unchanged ccxt client trades against (paper trading and fault injection)."""

from simulator.admin import ADMIN_ROUTES, AdminClient, AdminError, SimulatorAdmin
from simulator.api import KrakenApi
from simulator.auth import generate_credentials, sign
from simulator.clock import Clock, RealClock, SteppedClock
from simulator.config import FaultConfig, ScheduledFault, SimulatorConfig
from simulator.engine import Exchange
from simulator.faults import FaultInjector
from simulator.instruments import INSTRUMENTS, Instrument, resolve_symbol
from simulator.prices import MarketData
from simulator.server import SimulatorHandle, start_simulator
from simulator.simulation import Simulator
from simulator.state import STATE_VERSION, StateFileError, StateStore

__all__ = [
    "ADMIN_ROUTES",
    "INSTRUMENTS",
    "STATE_VERSION",
    "AdminClient",
    "AdminError",
    "Clock",
    "Exchange",
    "FaultConfig",
    "FaultInjector",
    "Instrument",
    "KrakenApi",
    "MarketData",
    "RealClock",
    "ScheduledFault",
    "Simulator",
    "SimulatorAdmin",
    "SimulatorConfig",
    "SimulatorHandle",
    "StateFileError",
    "StateStore",
    "SteppedClock",
    "generate_credentials",
    "resolve_symbol",
    "sign",
    "start_simulator",
]
