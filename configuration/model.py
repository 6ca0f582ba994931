"""The configuration schema: every key, its type, its default and its limits."""

from __future__ import annotations

import re
from collections import Counter
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

from configuration.masking import looks_like_variable_name
from messages.market import TIMEFRAME_MS

SYMBOL_PATTERN = re.compile(r"^[A-Z0-9]+/[A-Z0-9]+:[A-Z0-9]+$")
MAX_SYMBOLS = 1000  # Kraken Futures lists a few hundred markets
MAX_TEXT = 4096  # no string in the configuration is longer (URLs, paths)


def _no_bool(value: Any) -> Any:
    """Refuse true/false where a number belongs (pydantic would read true as 1)."""
    if isinstance(value, bool):
        # pydantic reports a ValueError (not a TypeError) as a validation error
        raise ValueError(f"must be a number, got {str(value).lower()}")  # noqa: TRY004
    return value


def _env_name(value: str) -> str:
    """Accept an environment variable's NAME; refuse anything else without echoing it (it may be the secret)."""
    if not looks_like_variable_name(value):
        raise ValueError(
            "must be the NAME of an environment variable (letters, digits and _, e.g. KRAKEN_FUTURES_API_KEY), "
            "not its value; the value given is not shown because it may be a secret: put the secret in the "
            "environment and its variable's name here"
        )
    return value


# Finite numbers only (no inf/NaN, no true/false, no strings), each with its own bounds.
Number = Annotated[StrictFloat, Field(allow_inf_nan=False)]
Money = Annotated[Decimal, BeforeValidator(_no_bool), Field(allow_inf_nan=False)]
EnvName = Annotated[StrictStr, Field(min_length=1, max_length=128), AfterValidator(_env_name)]
Text = Annotated[StrictStr, Field(max_length=MAX_TEXT)]


class Section(BaseModel):
    """A configuration section: unknown keys are errors, values are frozen once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ExchangeConfig(Section):
    """Which exchange, where, and the names of the environment variables that hold the keys."""

    id: Literal["krakenfutures"] = "krakenfutures"
    url: Text = ""  # overrides the mode's base URL, e.g. "http://127.0.0.1:8081"
    api_key_env: EnvName = "KRAKEN_FUTURES_API_KEY"
    api_secret_env: EnvName = "KRAKEN_FUTURES_API_SECRET"
    timeout_s: Number = Field(default=10.0, ge=0.5, le=120)
    open_order_check: Literal["fail-closed", "fail-open"] = "fail-closed"
    reconcile_interval_s: Number = Field(default=60.0, ge=1, le=3600)
    # an unknown order proven absent is re-sent only this young
    resend_max_age_s: Number = Field(default=120.0, ge=0, le=86_400)
    process_before_s: Number = Field(default=5.0, ge=1, le=60)  # every order carries processBefore = now + this
    clock_skew_s: Number = Field(default=2.0, ge=0, le=60)  # margin for our clock against the exchange's
    history_lag_s: Number = Field(default=5.0, ge=0, le=300)  # Kraken's delay publishing order history events
    # orders in one batchorder at most (orders that arrive together leave in ceil(N / batch_max) requests);
    # Kraken documents no maximum, the simulator refuses more than 100 (the harsher reading)
    batch_max: StrictInt = Field(default=100, ge=1, le=500)

    @field_validator("url")
    @classmethod
    def _url_is_http(cls, value: str) -> str:
        if value and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(f"must be an http(s) base URL such as http://127.0.0.1:8081, got {value!r}")
        return value.rstrip("/")


class DatabaseConfig(Section):
    """Where intents, orders, fills, events and control state are stored."""

    url: Text = "sqlite:///storage/trading.db"
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not re.match(r"^(sqlite|postgres|postgresql)://", value):
            raise ValueError(
                "must start with sqlite:/// (e.g. sqlite:///storage/trading.db) or postgresql:// "
                f"(e.g. postgresql://user@127.0.0.1:5432/trading), got {value!r}"
            )  # ConfigError masks the password of any URL in its lines
        if value.startswith("sqlite") and not re.match(r"^sqlite:///.+", value):
            raise ValueError("names no file: write it like sqlite:///storage/trading.db")
        if value.startswith("postgres") and not re.match(r"^postgres(ql)?://[^/]*/[^/?#\s]+", value):
            raise ValueError(
                "names no database: write it like postgresql://user@127.0.0.1:5432/trading (the database after the /)"
            )
        return value


class TradingConfig(Section):
    """What to trade and how big."""

    symbols: tuple[Annotated[StrictStr, Field(max_length=64)], ...] = Field(
        default=("BTC/USD:USD",), min_length=1, max_length=MAX_SYMBOLS
    )
    timeframe: StrictStr = "1m"
    tick_interval_s: Number = Field(default=5.0, ge=0.1, le=3600)
    pyramiding: StrictBool = False
    order_notional: Money = Field(default=Decimal(100), gt=0, le=10**12)
    order_type: Literal["market", "limit"] = "market"
    limit_offset_bps: Money = Field(default=Decimal(0), ge=0, le=1000)
    # unfilled limit orders are cancelled after this
    limit_timeout_s: Number = Field(default=120.0, ge=1, le=7 * 86_400)
    intent_retention_hours: Number = Field(default=24.0, ge=0.01, le=24 * 366)
    position_sync_interval_s: Number = Field(default=10.0, ge=0.1, le=3600)

    @field_validator("symbols")
    @classmethod
    def _symbols_are_unified(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for symbol in value:
            if not SYMBOL_PATTERN.match(symbol):
                raise ValueError(
                    f"{symbol!r} is not a ccxt unified swap symbol; write it like 'BTC/USD:USD'"
                )
        duplicates = sorted(s for s, n in Counter(value).items() if n > 1)  # linear: a long list must not hang
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

    max_open_positions: StrictInt = Field(default=3, ge=1, le=MAX_SYMBOLS)
    max_notional_per_order: Money = Field(default=Decimal(1000), gt=0, le=10**15)
    max_total_notional: Money = Field(default=Decimal(5000), gt=0, le=10**15)


class StrategyConfig(Section):
    """The strategy each symbol actor runs, by name, with its parameters.

    `name` is a built-in strategy or your own class as `package.module:ClassName` (see strategies/README.md);
    `path` is the folder such a module is imported from (relative to the configuration file's folder; empty: that
    folder), searched before the current folder and the installed packages."""

    name: StrictStr = Field(default="ma_crossover", max_length=200)
    params: dict[str, Any] = Field(default_factory=dict)
    path: Text = ""


class SupervisionConfig(Section):
    """How the portfolio restarts symbol actors that die."""

    max_restarts: StrictInt = Field(default=3, ge=0, le=1000)
    restart_window_s: Number = Field(default=600.0, ge=1, le=7 * 86_400)
    backoff_initial_s: Number = Field(default=0.5, ge=0, le=3600)
    backoff_max_s: Number = Field(default=30.0, ge=0, le=3600)


def loguru_file_options_problem(rotation: str, retention: str) -> str | None:
    """Why loguru would refuse these file options at start-up (it parses them only then), or None."""
    import tempfile
    from pathlib import Path

    from loguru import logger

    with tempfile.TemporaryDirectory() as folder:
        try:  # delay=True: nothing is opened or written, only the options are parsed
            handler = logger.add(Path(folder) / "probe.log", rotation=rotation, retention=retention, delay=True)
        except (ValueError, TypeError) as exc:
            return f"rotation {rotation!r} / retention {retention!r}: {exc}; write e.g. \"50 MB\" and \"14 days\""
        logger.remove(handler)
    return None


class LoggingConfig(Section):
    """Where logs go and how much."""

    level: Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    file: Text = "storage/trading.log"  # empty: console only
    rotation: Annotated[StrictStr, Field(min_length=1, max_length=100)] = "50 MB"
    retention: Annotated[StrictStr, Field(min_length=1, max_length=100)] = "14 days"

    @model_validator(mode="after")
    def _loguru_understands(self) -> LoggingConfig:
        problem = loguru_file_options_problem(self.rotation, self.retention)
        if problem:
            raise ValueError(problem)
        return self


class ControlConfig(Section):
    """The local control endpoint of the running process (JSON over HTTP)."""

    host: Annotated[StrictStr, Field(min_length=1, max_length=255)] = "127.0.0.1"
    port: StrictInt = Field(default=8765, ge=1, le=65535)
    token_env: EnvName = "KRAKEN_BOT_CONTROL_TOKEN"  # else storage/control.token
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

    seed: StrictInt = Field(default=42, ge=0, le=2**63 - 1)
    speed: Number = Field(default=60.0, ge=0.01, le=3600)  # simulated seconds per real second
    initial_balance: Money = Field(default=Decimal(100_000), gt=0, le=10**12)
    volatility: Number = Field(default=0.03, gt=0, le=5)  # daily
    state_file: Text = "storage/paper-exchange.json"  # the paper account survives restarts; "" keeps it in memory


class BacktestConfig(Section):
    """`kraken-actors backtest` and `download`: where the candle files are, the period, the replay's money rules.

    The account (`paper.initial_balance`), the seed (`paper.seed`), the strategy, symbols and timeframe are the ones
    trading uses; the command line overrides any of them for one run.
    """

    data_dir: Text = "data"  # candle files <Kraken id>_<timeframe>.csv|.parquet (relative to this file)
    data_format: Literal["csv", "parquet"] = "csv"  # what `download` writes (both are read)
    start: Text = ""  # UTC, e.g. "2024-01-01" or "2024-01-01T12:00": the first candle ("" = the data's first)
    end: Text = ""  # UTC, exclusive ("" = the data's last)
    report_dir: Text = "storage/backtests"  # each run's report.json, equity.png, report.html (relative to this file)
    spread: Number = Field(default=0.0002, ge=0, lt=0.05)  # the simulated book's bid-ask spread around the price
    # Hourly relative funding the positions pay (positive: longs pay, shorts receive), as on Kraken's perpetuals; the
    # candle files hold no mark/index prices to derive it from. 0.0000125/h = 0.03 %/day, a usual level, not a forecast.
    funding_rate: Number = Field(default=0.0000125, ge=-0.0025, le=0.0025)
    maker_fee: Number = Field(default=0.0002, ge=0, le=0.01)  # Kraken's lowest tier (simulator/README.md)
    taker_fee: Number = Field(default=0.0005, ge=0, le=0.01)


class RetentionConfig(Section):
    """How long final orders, fills and events stay in the database (0: forever, the default).

    Older final rows are written to gzip JSON-lines files in `archive_dir` (fsynced), then deleted; nothing of an
    order that is not final is ever touched. Realized PnL is kept as running totals, so it survives the archive.
    """

    orders_days: Number = Field(default=0, ge=0, le=36_600)
    fills_days: Number = Field(default=0, ge=0, le=36_600)
    events_days: Number = Field(default=0, ge=0, le=36_600)
    # relative to the config file
    archive_dir: Annotated[StrictStr, Field(min_length=1, max_length=MAX_TEXT)] = "storage/archive"
    check_interval_s: Number = Field(default=3600, ge=10, le=7 * 86_400)


class ProtectionConfig(Section):
    """Orders that protect a position on the exchange itself: a stop-loss and a take-profit placed after an entry
    fills, reduce-only, sized to what filled, so a crash or a network cut never leaves a position unguarded.

    Distances are from the position's entry price: `*_pct` in percent, or `*_abs` in quote currency (one of the two,
    or neither for no such order). `enabled = false` (the default) places nothing; `status` says so.
    """

    enabled: StrictBool = False
    stop_loss_pct: Money | None = Field(default=Decimal(2), gt=0, lt=100)
    stop_loss_abs: Money | None = Field(default=None, gt=0, le=10**12)
    take_profit_pct: Money | None = Field(default=Decimal(4), gt=0, le=10_000)
    take_profit_abs: Money | None = Field(default=None, gt=0, le=10**12)
    trigger_signal: Literal["mark", "index", "last"] = "mark"  # the price Kraken watches (mark: hard to spike)
    # a trailing stop-loss instead of a fixed one: Kraken's trailing_stop, this percent behind the best price since
    # send-order: trailingStopMaxDeviation ">= 0.1 and <= 50"; one decimal at most (the simulator's harsher reading)
    trailing_stop_pct: Money | None = Field(default=None, ge=Decimal("0.1"), le=50, decimal_places=1)
    # the dead man's switch: every heartbeat_interval_s the gateway asks Kraken to cancel ALL orders (stops and
    # take-profits too) if no further heartbeat comes within dead_man_timeout_s; 0 turns it off
    dead_man_timeout_s: StrictInt = Field(default=0, ge=0, le=86_400)
    heartbeat_interval_s: Number = Field(default=20.0, ge=1, le=3600)

    @model_validator(mode="after")
    def _one_distance_each(self) -> ProtectionConfig:
        fields = self.model_fields_set
        if self.trailing_stop_pct is not None:
            given = [n for n in ("stop_loss_pct", "stop_loss_abs") if n in fields and getattr(self, n) is not None]
            if given:
                raise ValueError(f"give trailing_stop_pct or {given[0]}, not both: the stop-loss is one order")
            object.__setattr__(self, "stop_loss_pct", None)  # the trailing stop replaces the fixed one
        for name in ("stop_loss", "take_profit"):
            pct, absolute = f"{name}_pct", f"{name}_abs"
            if absolute in fields and getattr(self, absolute) is not None:
                if pct in fields and getattr(self, pct) is not None:
                    raise ValueError(f"give {pct} or {absolute}, not both")
                object.__setattr__(self, pct, None)  # an absolute distance replaces the default percentage
        if self.dead_man_timeout_s and self.heartbeat_interval_s * 2 > self.dead_man_timeout_s:
            raise ValueError(f"heartbeat_interval_s ({self.heartbeat_interval_s:g}) must be at most half of "
                             f"dead_man_timeout_s ({self.dead_man_timeout_s}): one lost heartbeat must not cancel "
                             "every order (Kraken recommends a call every 15-30 s with a 60 s timeout)")
        return self

    def stop_distance(self, entry: Decimal) -> Decimal | None:
        """How far from `entry` the stop-loss triggers (None: no stop-loss)."""
        if self.stop_loss_abs is not None:
            return self.stop_loss_abs
        return None if self.stop_loss_pct is None else entry * self.stop_loss_pct / 100

    def take_profit_distance(self, entry: Decimal) -> Decimal | None:
        """How far from `entry` the take-profit triggers (None: no take-profit)."""
        if self.take_profit_abs is not None:
            return self.take_profit_abs
        return None if self.take_profit_pct is None else entry * self.take_profit_pct / 100


class AppConfig(Section):
    """The whole configuration."""

    mode: Literal["paper", "demo", "live"] = "paper"
    # lock, token and log files; relative to the config file
    storage_dir: Annotated[StrictStr, Field(min_length=1, max_length=MAX_TEXT)] = "storage"
    exchange: ExchangeConfig = ExchangeConfig()
    database: DatabaseConfig = DatabaseConfig()
    trading: TradingConfig = TradingConfig()
    risk: RiskConfig = RiskConfig()
    strategy: StrategyConfig = StrategyConfig()
    supervision: SupervisionConfig = SupervisionConfig()
    logging: LoggingConfig = LoggingConfig()
    control: ControlConfig = ControlConfig()
    paper: PaperConfig = PaperConfig()
    backtest: BacktestConfig = BacktestConfig()
    retention: RetentionConfig = RetentionConfig()
    protection: ProtectionConfig = ProtectionConfig()
