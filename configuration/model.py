"""The configuration schema: every key, its type, its default and its limits."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from messages.market import TIMEFRAME_MS

SYMBOL_PATTERN = re.compile(r"^[A-Z0-9]+/[A-Z0-9]+:[A-Z0-9]+$")


class Section(BaseModel):
    """A configuration section: unknown keys are errors, values are frozen once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ExchangeConfig(Section):
    """Which exchange, where, and the names of the environment variables that hold the keys."""

    id: Literal["krakenfutures"] = "krakenfutures"
    url: str = ""  # overrides the mode's base URL, e.g. "http://127.0.0.1:8081"
    api_key_env: str = Field(default="KRAKEN_FUTURES_API_KEY", min_length=1)
    api_secret_env: str = Field(default="KRAKEN_FUTURES_API_SECRET", min_length=1)
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    open_order_check: Literal["fail-closed", "fail-open"] = "fail-closed"
    reconcile_interval_s: float = Field(default=60.0, gt=0, le=3600)
    resend_max_age_s: float = Field(default=120.0, ge=0)  # an unknown order proven absent is re-sent only this young
    process_before_s: float = Field(default=5.0, ge=1, le=60)  # every order carries processBefore = now + this
    clock_skew_s: float = Field(default=2.0, ge=0, le=60)  # margin for our clock against the exchange's
    history_lag_s: float = Field(default=5.0, ge=0, le=300)  # Kraken's delay publishing order history events

    @field_validator("url")
    @classmethod
    def _url_is_http(cls, value: str) -> str:
        if value and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(f"must be an http(s) base URL such as http://127.0.0.1:8081, got {value!r}")
        return value.rstrip("/")


class DatabaseConfig(Section):
    """Where intents, orders, fills, events and control state are stored."""

    url: str = "sqlite:///storage/trading.db"
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not re.match(r"^(sqlite|postgres|postgresql)://", value):
            raise ValueError(
                "must start with sqlite:/// (e.g. sqlite:///storage/trading.db) or postgresql:// "
                f"(e.g. postgresql://user@127.0.0.1:5432/trading), got {value!r}"
            )
        return value


class TradingConfig(Section):
    """What to trade and how big."""

    symbols: tuple[str, ...] = Field(default=("BTC/USD:USD",), min_length=1)
    timeframe: str = "1m"
    tick_interval_s: float = Field(default=5.0, gt=0, le=3600)
    pyramiding: StrictBool = False
    order_notional: Decimal = Field(default=Decimal(100), gt=0)
    order_type: Literal["market", "limit"] = "market"
    limit_offset_bps: Decimal = Field(default=Decimal(0), ge=0, le=1000)
    limit_timeout_s: float = Field(default=120.0, gt=0)  # unfilled limit orders are cancelled after this
    intent_retention_hours: float = Field(default=24.0, gt=0)
    position_sync_interval_s: float = Field(default=10.0, gt=0, le=3600)

    @field_validator("symbols")
    @classmethod
    def _symbols_are_unified(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for symbol in value:
            if not SYMBOL_PATTERN.match(symbol):
                raise ValueError(
                    f"{symbol!r} is not a ccxt unified swap symbol; write it like 'BTC/USD:USD'"
                )
        duplicates = sorted({s for s in value if value.count(s) > 1})
        if duplicates:
            raise ValueError(f"listed more than once: {', '.join(duplicates)}")
        return value

    @field_validator("timeframe")
    @classmethod
    def _known_timeframe(cls, value: str) -> str:
        if value not in TIMEFRAME_MS:
            raise ValueError(f"must be one of {', '.join(TIMEFRAME_MS)}, got {value!r}")
        return value


class RiskConfig(Section):
    """Portfolio-wide limits the portfolio actor enforces."""

    max_open_positions: int = Field(default=3, ge=1)
    max_notional_per_order: Decimal = Field(default=Decimal(1000), gt=0)
    max_total_notional: Decimal = Field(default=Decimal(5000), gt=0)


class StrategyConfig(Section):
    """The strategy each symbol actor runs, by name, with its parameters."""

    name: str = "ma_crossover"
    params: dict[str, Any] = Field(default_factory=dict)


class SupervisionConfig(Section):
    """How the portfolio restarts symbol actors that die."""

    max_restarts: int = Field(default=3, ge=0)
    restart_window_s: float = Field(default=600.0, gt=0)
    backoff_initial_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=30.0, ge=0)


class LoggingConfig(Section):
    """Where logs go and how much."""

    level: Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    file: str = "storage/trading.log"  # empty: console only
    rotation: str = "50 MB"
    retention: str = "14 days"


class ControlConfig(Section):
    """The local control endpoint of the running process (JSON over HTTP)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=1, le=65535)
    token_env: str = Field(default="KRAKEN_BOT_CONTROL_TOKEN", min_length=1)  # else storage/control.token
    allow_remote: StrictBool = False  # binding anything but loopback needs this set

    @model_validator(mode="after")
    def _loopback_unless_allowed(self) -> ControlConfig:
        if not self.allow_remote and self.host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(
                f"control.host {self.host!r} is not loopback; set control.allow_remote = true to expose it"
            )
        return self


class PaperConfig(Section):
    """The built-in simulator that paper mode trades on."""

    seed: int = 42
    speed: float = Field(default=60.0, gt=0, le=3600)  # simulated seconds per real second
    initial_balance: Decimal = Field(default=Decimal(100_000), gt=0)
    volatility: float = Field(default=0.03, gt=0, le=5)  # daily
    state_file: str = "storage/paper-exchange.json"  # the paper account survives restarts; "" keeps it in memory


class AppConfig(Section):
    """The whole configuration."""

    mode: Literal["paper", "demo", "live"] = "paper"
    storage_dir: str = Field(default="storage", min_length=1)  # lock, token and log files; relative to the config file
    exchange: ExchangeConfig = ExchangeConfig()
    database: DatabaseConfig = DatabaseConfig()
    trading: TradingConfig = TradingConfig()
    risk: RiskConfig = RiskConfig()
    strategy: StrategyConfig = StrategyConfig()
    supervision: SupervisionConfig = SupervisionConfig()
    logging: LoggingConfig = LoggingConfig()
    control: ControlConfig = ControlConfig()
    paper: PaperConfig = PaperConfig()
