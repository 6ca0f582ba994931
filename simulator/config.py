"""Configuration of a simulator run and of its fault injection."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

FaultKind = Literal[
    "latency",
    "unavailable",
    "http_500",
    "http_429",
    "api_limit",
    "reset",
    "timeout",
    "accept_then_drop",
    "accept_then_timeout",
    "accept_then_unavailable",
    "late",
]
ORDER_ENDPOINTS = ("sendorder", "batchorder", "editorder", "cancelorder", "cancelallorders")


class FaultConfig(BaseModel):
    """Faults applied to Kraken requests: added latency and per-request probabilities (0..1)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    latency_ms: float = Field(0.0, ge=0)
    latency_jitter_ms: float = Field(0.0, ge=0)
    unavailable: float = Field(0.0, ge=0, le=1)
    http_500: float = Field(0.0, ge=0, le=1)
    http_429: float = Field(0.0, ge=0, le=1)
    api_limit: float = Field(0.0, ge=0, le=1)
    reset: float = Field(0.0, ge=0, le=1)
    timeout: float = Field(0.0, ge=0, le=1)  # held for hold_ms, then the connection drops; never processed
    accept_then_drop: float = Field(0.0, ge=0, le=1)
    accept_then_timeout: float = Field(0.0, ge=0, le=1)
    accept_then_unavailable: float = Field(0.0, ge=0, le=1)
    # held inside the exchange: the client's connection drops after hold_ms (wall time), the exchange processes
    # the request late_ms after receipt (simulator clock), with processBefore checked at processing time
    late: float = Field(0.0, ge=0, le=1)
    hold_ms: float = Field(15_000.0, ge=0)
    late_ms: float = Field(20_000.0, ge=0)
    endpoints: list[str] | None = None
    drop_endpoints: list[str] = Field(default_factory=lambda: ["sendorder", "batchorder"])
    suspended: list[str] = Field(default_factory=list)


class ScheduledFault(BaseModel):
    """A deterministic fault for the next `count` requests to `endpoint` (`*` for any)."""

    model_config = ConfigDict(extra="forbid")

    kind: FaultKind
    endpoint: str = "sendorder"
    count: int = Field(1, ge=1)
    delay_ms: float = Field(0.0, ge=0)  # latency, or how long the client is held (timeout/accept_then_*/late)
    late_ms: float | None = Field(None, ge=0)  # `late` only: processing delay on the simulator clock


class SimulatorConfig(BaseModel):
    """Everything a simulator run needs; defaults give a real-time paper exchange on a free port."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535)
    seed: int = 0
    speed: float = Field(1.0, gt=0)
    clock: Literal["real", "stepped"] = "real"
    start_time_ms: int | None = None
    api_key: str | None = None
    api_secret: str | None = None
    initial_balance: float = Field(100_000.0, ge=0)
    volatility: float = Field(0.03, ge=0)
    spread: float = Field(0.0002, ge=0, lt=0.5)
    tick_ms: int = Field(1000, ge=10)
    history_days: float = Field(7.0, ge=0, le=365)
    symbols: list[str] | None = None
    rate_limit: bool = True
    # Exchange rules: each default is Kraken's documented behaviour or the harsher reading (simulator/README.md).
    status_window_ms: int = Field(5_000, ge=0)  # orders/status shows closed orders this long
    cli_ord_id_scope: Literal["open", "history", "none"] = "open"  # where a reused cliOrdId is refused
    honour_process_before: bool = True  # a request processed at/after its processBefore is not placed
    market_fill: Literal["book", "touch"] = "book"  # mkt/crossing orders walk the finite book, or fill all at touch
    resting_fill: Literal["partial", "full"] = "partial"  # resting orders fill a limited quantity per tick
    history_lag_ms: int = Field(3_000, ge=0)  # order-history events become visible this long after they happen
    history_page_max: int = Field(100, ge=1)  # most elements one history page returns (default and cap of count)
    # Kraken documents no maximum number of batchorder instructions: a larger batch is refused whole (the harsher
    # reading), `{"result":"error","error":"invalidArgument: ..."}` (HTTP 400, ccxt BadRequest)
    batch_max_instructions: int = Field(100, ge=1)
    # Trigger orders (README rules 11-16). editorder on an untriggered stp / take_profit must carry stopPrice (and a
    # stop-limit its limitPrice): the edit-order page's "Required if old orderType is stp"
    edit_requires_stop_price: bool = True
    # how editorder reads `size` when the request has no qtyMode (edit-order: "defaulting to 'RELATIVE'")
    edit_qty_mode: Literal["RELATIVE", "ABSOLUTE"] = "RELATIVE"
    # trailingStopMaxDeviation's 0.1..50 range binds both units ("both", harsher) or PERCENT only ("percent")
    trailing_range: Literal["both", "percent"] = "both"
    # the dead man's switch cancels untriggered trigger orders too ("all", harsher) or only resting ones ("resting")
    dead_man_scope: Literal["all", "resting"] = "all"
    # untriggered reduce-only orders stay when their position closes ("stay", harsher) or are cancelled ("cancel")
    reduce_only_orphans: Literal["stay", "cancel"] = "stay"
    # Money (README rules 17-19). Fees: Kraken's lowest tier, maker 0.02 % / taker 0.05 % of the notional
    # (https://support.kraken.com/hc/en-us/articles/360048917612-Fee-schedule), charged in USD.
    maker_fee: float = Field(0.0002, ge=0, le=0.01)
    taker_fee: float = Field(0.0005, ge=0, le=0.01)
    # Funding: None (default) derives the hourly relative rate from the mark premium (premium / 24, capped at 0.25 %);
    # a number is a fixed relative hourly rate (0: no funding). Positive: longs pay, shorts receive.
    funding_rate: float | None = Field(None, ge=-0.0025, le=0.0025)
    account_log_page_max: int = Field(500, ge=1)  # most entries one account-log answer holds (Kraken's default count)
    # synthetic linear perpetuals listed beside the 8 real ones (PF_X001USD ...), for benchmarks of many symbols
    extra_markets: int = Field(0, ge=0, le=999)
    advance_interval_s: float = Field(0.25, gt=0)
    faults: FaultConfig = Field(default_factory=FaultConfig)
    # The paper account survives restarts: loaded on start if the file exists, saved atomically (see state.py).
    state_file: str | None = None
    state_save_interval_s: float = Field(2.0, gt=0)  # periodic save while anything changed
    state_save_gap_s: float = Field(0.5, ge=0)  # order requests save before answering unless one did this recently
    state_bar_minutes: int = Field(1440, ge=0)  # minute bars kept in the file; older candles are regenerated

    @field_validator("state_file")
    @classmethod
    def _empty_path_is_none(cls, value: str | None) -> str | None:
        """An empty path means no state file (keep the account in memory)."""
        return value or None

    @field_validator("api_secret")
    @classmethod
    def _secret_is_base64(cls, value: str | None) -> str | None:
        """Reject a secret that Kraken's scheme could not use."""
        if value is not None:
            from simulator.auth import decode_secret

            decode_secret(value)
        return value
