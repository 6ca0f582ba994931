"""The whole trading system around your strategy, on the in-process simulator, through the real ccxt client.

    from testkit import paper_system

    with paper_system(MyStrategy.from_params({"level": 100})) as paper:
        paper.close_candles(95, 101)                 # the exchange's price, candle by candle (1m, stepped clock)
        assert paper.exchange.position("BTC/USD:USD") > 0
        [entry] = paper.exchange.orders()

Every actor runs as in `run.py run` (persistence on a SQLite file of its own, the gateway, the portfolio with its
risk limits, market data reading the exchange's candles, one symbol actor per symbol); only the exchange is the
simulator (testkit.exchange) with a stepped clock, so a candle closes when the test says, at the price it set.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from actors import TradingSystem, gateway_settings_for
from configuration import AppConfig
from exchange import load_market_specs, make_kraken_client
from exchange.budget import CostBudget
from exchange.clock import ServerClock
from messages import GetStatus, Ping, SymbolState, SymbolStatus
from simulator import SimulatorHandle
from strategies.base import Strategy
from testkit.exchange import SimulatedExchange
from testkit.waiting import wait_until

CLIENT_TIMEOUT_MS = 1500
# Short processBefore windows so that unknown outcomes are decided within seconds; the simulator's history
# lag (3 s by default) stays inside processBefore + skew + lag.
FAST_WINDOWS = {"process_before_s": 1.0, "clock_skew_s": 0.5, "history_lag_s": 3.5}
PUBLICATION_DELAY_S = 1.5  # after a close, the market-data actor asks for the candle once this passed (> 1 s)


def make_config(**sections: dict[str, Any]) -> AppConfig:
    """An AppConfig with quick timers, overridden per section: make_config(risk={"max_open_positions": 3})."""
    base: dict[str, Any] = {
        "trading": {"symbols": ["BTC/USD:USD"], "position_sync_interval_s": 3600, "tick_interval_s": 3600},
        "supervision": {"backoff_initial_s": 0.01, "backoff_max_s": 0.05},
        "strategy": {"name": "scripted"},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    return AppConfig.model_validate(base)


def settle(system: TradingSystem, rounds: int = 2) -> None:
    """Wait until every message sent so far has been handled (each actor's mailbox drained, twice)."""
    for _ in range(rounds):
        for ref in system.symbol_actors().values():
            if ref is not None:
                ref.ask(Ping(), timeout=10)
        for core in (system.gateway, system.gateway, system.portfolio, system.persistence, system.persistence):
            assert core is not None
            core.ask(Ping(), timeout=10)


def ccxt_client(sim: SimulatorHandle, private: bool = True) -> Any:
    """The real ccxt.krakenfutures client, only its base URL (and keys) changed."""
    if private:
        return make_kraken_client(sim.base_url, sim.api_key, sim.api_secret, timeout_ms=CLIENT_TIMEOUT_MS)
    return make_kraken_client(sim.base_url, timeout_ms=CLIENT_TIMEOUT_MS)


def build_live_system(sim: SimulatorHandle, config: AppConfig, database_url: str, candles: bool = False,
                      private: Any = None, **kwargs: Any) -> TradingSystem:
    """A started TradingSystem whose gateway (and, with `candles`, market data) drive ccxt against the simulator.

    `private`: the gateway's ccxt client (default: one straight to the simulator; e.g. one through a proxy).
    Other keywords go to TradingSystem (e.g. strategy_factory=, market_data_interval_s=); `gateway_overrides`
    are GatewaySettings fields.
    """
    private = private or ccxt_client(sim)
    public = ccxt_client(sim, private=False)
    markets = load_market_specs(public, config.trading.symbols)
    private.load_markets()
    # the bot's clock runs at the simulator's speed, as run.py's paper mode wires it (a stepped clock: 1)
    clock = ServerClock(public, rate=sim.simulator.config.speed if sim.simulator.config.clock == "real" else 1.0)
    return TradingSystem(
        config=config,
        database_url=database_url,
        private_exchange=private,
        public_exchange=public if candles else None,
        markets=markets,
        candle_clock=clock,
        budget=CostBudget(),
        gateway_settings=gateway_settings_for(
            config, clock_rate=clock.rate,
            **{"poll_interval_s": 0.1, **FAST_WINDOWS, **kwargs.pop("gateway_overrides", {})}),
        **kwargs,
    ).start()


def ready(system: TradingSystem) -> TradingSystem:
    """Wait until every symbol actor has reconciled."""
    settle(system)
    for symbol, ref in system.symbol_actors().items():
        def reconciled(ref: Any = ref) -> bool:
            return bool(ref.ask(GetStatus(), timeout=5).state is not SymbolState.SYNCING)

        wait_until(reconciled, timeout=10, message=f"{symbol} reconciled")
    return system


def quiet(system: TradingSystem, timeout: float = 20.0) -> None:
    """Wait until every message is handled and no order is being sent or resolved."""
    settle(system)
    wait_until(lambda: system.wait_in_flight(0.5) == 0, timeout=timeout, message="orders resolved")
    settle(system)


StrategyFactory = Callable[[str], Strategy]


class PaperSystem:
    """A running system on the simulator: close candles, then read the exchange and the actors."""

    def __init__(self, system: TradingSystem, exchange: SimulatedExchange, config: AppConfig) -> None:
        self.system = system
        self.exchange = exchange
        self.config = config

    @property
    def symbols(self) -> tuple[str, ...]:
        """The symbols traded."""
        return tuple(self.config.trading.symbols)

    def close_candle(self, price: float | int | str | Decimal, symbol: str | None = None) -> SymbolStatus:
        """Close the candle now open on `symbol` (default: the first symbol) at `price`, wait until its symbol
        actor has it and every order it led to is resolved; return that actor's status."""
        symbol = symbol or self.symbols[0]
        opened = self.exchange.close_candle(symbol, price, self.config.trading.timeframe, after_s=PUBLICATION_DELAY_S)
        wait_until(lambda: (self.status(symbol).last_candle_time or 0) >= opened, timeout=10,
                   message=f"{symbol}: the symbol actor got the candle that opened at {opened}")
        quiet(self.system)
        return self.status(symbol)

    def close_candles(self, *prices: float | int | str | Decimal, symbol: str | None = None) -> SymbolStatus:
        """`close_candle` for each price in turn; return the symbol actor's status after the last one."""
        status = None
        for price in prices:
            status = self.close_candle(price, symbol)
        assert status is not None, "give at least one price"
        return status

    def status(self, symbol: str | None = None) -> SymbolStatus:
        """A symbol actor's status (state, position, pending orders, last signal and outcome, refusals)."""
        ref = self.system.symbol_actors()[symbol or self.symbols[0]]
        assert ref is not None, f"{symbol}: no symbol actor running"
        status = ref.ask(GetStatus(), timeout=10)
        assert isinstance(status, SymbolStatus)
        return status


@contextmanager
def paper_system(strategy: Strategy | StrategyFactory, *, symbols: Sequence[str] = ("BTC/USD:USD",),
                 database_url: str | None = None,
                 exchange: SimulatedExchange | None = None, **sections: dict[str, Any]) -> Iterator[PaperSystem]:
    """Start the whole system around `strategy` on a fresh in-process simulator; stop both afterwards.

    `strategy`: one Strategy instance, shared by every symbol, or a function symbol -> Strategy. Prices stand
    still (volatility 0) at the simulator's price for the market (`paper.exchange.last_price(symbol)`): the
    warm-up history the strategy gets at the start is flat there, and moves only when the test closes a candle.
    `sections` override the configuration per section, e.g. trading={"order_notional": 50}, risk={...}.
    `database_url`: default, a SQLite file in a temporary folder. `exchange`: use this simulator (not stopped).
    """
    factory: StrategyFactory = strategy if not isinstance(strategy, Strategy) else (lambda _symbol: strategy)
    trading = {"symbols": list(symbols), **sections.pop("trading", {})}
    config = make_config(trading=trading, **sections)
    with ExitStack() as stack:
        sim = exchange if exchange is not None else stack.enter_context(SimulatedExchange.start())
        if database_url is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kraken-actors-test-")))
            database_url = f"sqlite:///{folder / 'trading.db'}"
        system = build_live_system(sim.handle, config, database_url, candles=True, market_data_interval_s=0.05,
                                   strategy_factory=factory)
        stack.callback(system.stop)
        ready(system)
        yield PaperSystem(system, sim, config)
