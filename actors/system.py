"""Wiring: start the actors in order, stop them in reverse, and ask the running system for status."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pykka
from loguru import logger

from actors.gateway import ConnectGateway, ExchangeGatewayActor, GatewaySettings
from actors.market_data import CandleFeed, MarketDataActor
from actors.persistence import PersistenceActor
from actors.portfolio import ConnectMarketData, GetSymbolActors, PortfolioActor, PortfolioSettings
from actors.risk import RiskBook, RiskLimits
from actors.supervision import RestartPolicy
from actors.symbol import ActorPorts, SymbolSettings, SymbolTrader
from configuration import AppConfig
from exchange.budget import CostBudget
from messages import (
    CancelOrders,
    Event,
    EventKind,
    Flatten,
    ControlReply,
    GetInFlight,
    GetStatus,
    Halt,
    MarketSpec,
    Pause,
    Ping,
    PortfolioStatus,
    QueryPnl,
    Resume,
    SymbolBootstrap,
    SymbolState,
    Unhalt,
    now_ms,
)
from persistence import open_database
from strategies import Strategy, build_strategy


def make_trader_factory(config: AppConfig, strategy_factory: Any = None) -> Any:
    """Return the function the portfolio uses to build a SymbolTrader from durable state."""
    settings = SymbolSettings(
        pyramiding=config.trading.pyramiding,
        order_notional=config.trading.order_notional,
        order_type=config.trading.order_type,
        limit_offset_bps=config.trading.limit_offset_bps,
        retention_ms=int(config.trading.intent_retention_hours * 3_600_000),
    )

    def build(market: MarketSpec, bootstrap: SymbolBootstrap, ports: ActorPorts, restarts: int, floor: int) -> SymbolTrader:
        strategy: Strategy = (
            strategy_factory(market.symbol)
            if strategy_factory is not None
            else build_strategy(config.strategy.name, config.strategy.params)
        )
        return SymbolTrader(
            market=market,
            strategy=strategy,
            settings=settings,
            ports=ports,
            bootstrap=bootstrap,
            restarts=restarts,
            min_position_seq=floor,
        )

    return build


CANCEL_TIMEOUT_S = 60.0  # cancels wait for Kraken's cost budget: 10 units each


@dataclass
class TradingSystem:
    """The running actors of one trading system, started and stopped as a whole."""

    config: AppConfig
    database_url: str
    private_exchange: Any  # ccxt.krakenfutures or a fake with its shapes; used only by the gateway
    public_exchange: Any | None  # its own client for candles; None: no market-data actor (tests)
    markets: dict[str, MarketSpec]
    strategy_factory: Any = None  # symbol -> Strategy; default: the configured strategy
    candle_clock: Any = now_ms
    ask_timeout_s: float = 5.0
    budget: CostBudget | None = None  # Kraken's cost budget; None: unpaced (fakes in tests)
    market_data_interval_s: float | None = None  # default: trading.tick_interval_s
    poll_interval_s: float = 1.0
    gateway_overrides: dict[str, Any] = field(default_factory=dict)  # GatewaySettings fields (tests)
    persistence: pykka.ActorRef[Any] | None = field(default=None, init=False)
    gateway: pykka.ActorRef[Any] | None = field(default=None, init=False)
    portfolio: pykka.ActorRef[Any] | None = field(default=None, init=False)
    market_data: pykka.ActorRef[Any] | None = field(default=None, init=False)

    def start(self) -> TradingSystem:
        """Start persistence, gateway, portfolio (and its symbol actors), market data, in that order."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        cfg = self.config
        database = open_database(self.database_url, sqlite_synchronous=cfg.database.sqlite_synchronous)
        self.persistence = PersistenceActor.start(database)
        self._ensure_running(self.persistence, "persistence")
        self.gateway = ExchangeGatewayActor.start(
            self.private_exchange,
            settings=GatewaySettings(
                fail_open=cfg.exchange.open_order_check == "fail-open",
                poll_interval_s=self.poll_interval_s,
                limit_timeout_s=cfg.trading.limit_timeout_s,
                resend_max_age_s=cfg.exchange.resend_max_age_s,
                **self.gateway_overrides,
            ),
            budget=self.budget,
            symbols=list(self.markets),
        )
        self._ensure_running(self.gateway, "exchange gateway")
        restart = cfg.supervision
        self.portfolio = PortfolioActor.start(
            markets=self.markets,
            trader_factory=make_trader_factory(cfg, self.strategy_factory),
            risk=RiskBook(
                limits=RiskLimits(
                    max_open_positions=cfg.risk.max_open_positions,
                    max_notional_per_order=cfg.risk.max_notional_per_order,
                    max_total_notional=cfg.risk.max_total_notional,
                ),
                markets=self.markets,
            ),
            restart_policy=RestartPolicy(
                max_restarts=restart.max_restarts,
                window_s=restart.restart_window_s,
                backoff_initial_s=restart.backoff_initial_s,
                backoff_max_s=restart.backoff_max_s,
            ),
            settings=PortfolioSettings(
                position_sync_interval_s=cfg.trading.position_sync_interval_s,
                reconcile_interval_s=cfg.exchange.reconcile_interval_s,
                retention_ms=int(cfg.trading.intent_retention_hours * 3_600_000),
                ask_timeout_s=self.ask_timeout_s,
            ),
            persistence=self.persistence,
            gateway=self.gateway,
        )
        self.gateway.tell(ConnectGateway(portfolio=self.portfolio, persistence=self.persistence))
        self._ensure_running(self.portfolio, "portfolio")
        if self.public_exchange is not None:
            warmup = max(
                (self._strategy_for(symbol).warmup for symbol in self.markets), default=1
            )
            feed = CandleFeed(
                self.public_exchange,
                list(self.markets),
                cfg.trading.timeframe,
                history=warmup + 1,
                clock=self.candle_clock,
            )
            interval = self.market_data_interval_s or cfg.trading.tick_interval_s
            self.market_data = MarketDataActor.start(feed, self.portfolio, interval)
            self.portfolio.tell(ConnectMarketData(market_data=self.market_data))
        logger.info("trading system started: {} symbols", len(self.markets))

    def _strategy_for(self, symbol: str) -> Strategy:
        if self.strategy_factory is not None:
            return self.strategy_factory(symbol)
        return build_strategy(self.config.strategy.name, self.config.strategy.params)

    def _ensure_running(self, ref: pykka.ActorRef[Any], name: str) -> None:
        if not ref.is_alive():
            raise RuntimeError(f"the {name} actor stopped while starting; see the log above for why")
        try:
            ref.ask(Ping(), timeout=self.ask_timeout_s * 2)
        except pykka.ActorDeadError:
            raise RuntimeError(f"the {name} actor stopped while starting; see the log above for why") from None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop market data, portfolio (and symbol actors), gateway, persistence: the reverse of start."""
        for name in ("market_data", "portfolio", "gateway", "persistence"):
            ref = getattr(self, name)
            if ref is None:
                continue
            try:
                ref.stop(timeout=timeout)
            except pykka.ActorDeadError:
                pass
            except pykka.Timeout:
                logger.error("the {} actor did not stop within {}s", name, timeout)
            setattr(self, name, None)

    # --- asking the running system ---------------------------------------------------------

    def symbol_actors(self) -> dict[str, pykka.ActorRef[Any] | None]:
        """The current symbol actor of each symbol."""
        assert self.portfolio is not None, "not started"
        return self.portfolio.ask(GetSymbolActors(), timeout=self.ask_timeout_s)

    def status(self) -> PortfolioStatus:
        """Portfolio totals and one row per symbol, asked of each running symbol actor."""
        assert self.portfolio is not None and self.persistence is not None, "not started"
        portfolio: PortfolioStatus = self.portfolio.ask(GetStatus(), timeout=self.ask_timeout_s)
        realized: dict[str, Decimal] = self.persistence.ask(QueryPnl(), timeout=self.ask_timeout_s)
        actors = self.symbol_actors()
        rows = []
        for row in portfolio.symbols:
            ref = actors.get(row.symbol)
            if ref is not None:
                try:
                    live = ref.ask(GetStatus(), timeout=self.ask_timeout_s)
                    row = live.model_copy(update={"restarts": row.restarts})
                except (pykka.ActorDeadError, pykka.Timeout):
                    row = row.model_copy(update={"state": SymbolState.RESTARTING})
            rows.append(row.model_copy(update={"realized_pnl": realized.get(row.symbol, Decimal(0))}))
        unrealized = [r.unrealized_pnl for r in rows if r.unrealized_pnl is not None]
        return portfolio.model_copy(update={
            "symbols": tuple(rows),
            "realized_pnl": sum(realized.values(), Decimal(0)),
            "unrealized_pnl": sum(unrealized, Decimal(0)) if unrealized else None,
        })

    def stop_feeds(self) -> None:
        """Stop the market-data actor: no new candles, so no new signals."""
        if self.market_data is not None:
            try:
                self.market_data.stop(timeout=10)
            except (pykka.ActorDeadError, pykka.Timeout):
                pass
            self.market_data = None

    def wait_in_flight(self, timeout: float) -> int:
        """Wait up to `timeout` seconds for orders being sent or resolved; return how many are left."""
        assert self.gateway is not None, "not started"
        deadline = time.monotonic() + timeout
        pause = threading.Event()
        while True:
            try:
                left = self.gateway.ask(GetInFlight(), timeout=max(0.1, deadline - time.monotonic()))
            except pykka.Timeout:
                return -1
            if left == 0 or time.monotonic() >= deadline:
                return int(left)
            pause.wait(0.2)

    def control(self, message: Pause | Resume | Halt | Unhalt | CancelOrders | Flatten) -> ControlReply:
        """Apply a control message: through the portfolio, or (cancels) at the gateway; return the reply."""
        assert self.portfolio is not None and self.gateway is not None and self.persistence is not None
        if not isinstance(message, CancelOrders):
            return self.portfolio.ask(message, timeout=self.ask_timeout_s)
        if message.symbol is not None and message.symbol not in self.markets:
            return ControlReply(ok=False, detail=f"unknown symbol {message.symbol!r}; this system trades "
                                                 f"{', '.join(sorted(self.markets))}")
        self.persistence.tell(Event(kind=EventKind.CONTROL, symbol=message.symbol,
                                    detail=f"cancel {message.symbol or 'all symbols'} by {message.source}"))
        outcomes = self.gateway.ask(message, timeout=CANCEL_TIMEOUT_S) or ["cancel failed: see the log"]
        ok = not any("failed" in o or "unreadable" in o for o in outcomes)
        symbols = (message.symbol,) if message.symbol else tuple(sorted(self.markets))
        return ControlReply(ok=ok, detail="; ".join(outcomes), symbols=symbols)
