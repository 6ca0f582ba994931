"""A test kit for strategy authors, installed with the package: test your strategy in your own repository.

- `symbol_actor(strategy)`: one symbol actor (the real guard chain) around your strategy, with in-memory ports;
  feed it candles, read the signals, the orders it placed and the refusals (testkit.symbol).
- `paper_system(strategy)`: the whole system around your strategy on the in-process simulator, through the real
  ccxt client; close candles at prices you choose, read the exchange's orders, fills and positions
  (testkit.system).
- `simulated_exchange()`: the simulator alone, a fake Kraken Futures exchange that follows Kraken's rules, with
  helpers to set prices, close candles and read orders, fills and positions (testkit.exchange).
- `make_candles(closes)`: candles from a list of closes (testkit.candles); `wait_until`: poll, never sleep.

See strategies/README.md ("Testing a strategy") for a complete example; `run.py new-strategy NAME` writes one.
"""

from testkit.candles import T0, make_candles
from testkit.exchange import SimulatedExchange, simulated_exchange
from testkit.ports import FakePorts
from testkit.symbol import SymbolHarness, market_spec, symbol_actor
from testkit.system import PaperSystem, make_config, paper_system
from testkit.waiting import wait_until

__all__ = [
    "T0",
    "FakePorts",
    "PaperSystem",
    "SimulatedExchange",
    "SymbolHarness",
    "make_candles",
    "make_config",
    "market_spec",
    "paper_system",
    "simulated_exchange",
    "symbol_actor",
    "wait_until",
]
