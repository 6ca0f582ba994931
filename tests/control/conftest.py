"""Fixtures for the control endpoint: a fake ControlTarget, a server on a free port, a client, raw HTTP."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from configuration import ControlConfig
from control import ControlClient, ControlMessage, ControlServer
from messages.control import (
    ControlReply,
    PendingOrderView,
    PortfolioStatus,
    Shutdown,
    SymbolState,
    SymbolStatus,
)
from messages.orders import OrderState, Side
from messages.positions import Position, PositionSide
from messages.reconciliation import ExchangeOrder

TOKEN = "test-control-token-0123456789abcdef"
SYMBOLS = ("ADA/USD:USD", "BTC/USD:USD", "ETH/USD:USD", "SOL/USD:USD", "XRP/USD:USD")
AS_OF = 1_714_564_983_000  # 2024-05-01 12:03:03 UTC


@pytest.fixture(autouse=True)
def no_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Output as piped (the full layout, replies whole) unless a test gives a width: no COLUMNS from the shell
    running the tests."""
    monkeypatch.delenv("COLUMNS", raising=False)


def sample_status() -> PortfolioStatus:
    """Five symbols: syncing, trading (long, with orders), paused, halted after crashes, blocked by an unknown order."""
    return PortfolioStatus(
        symbols=(
            SymbolStatus(
                symbol="ADA/USD:USD",
                state=SymbolState.SYNCING,
                not_ready="waiting for reconciliation",
            ),
            SymbolStatus(
                symbol="BTC/USD:USD",
                state=SymbolState.TRADING,
                position=Position(
                    symbol="BTC/USD:USD",
                    side=PositionSide.LONG,
                    contracts=Decimal("0.0020"),
                    entry_price=Decimal("60123.50"),
                    unrealized_pnl=Decimal("1.25"),
                ),
                pending_orders=(
                    PendingOrderView(
                        client_order_id="7d1c1a7e-0000-4000-8000-000000000001",
                        side=Side.SELL,
                        state=OrderState.ACCEPTED,
                        reduce_only=True,
                        amount=Decimal("0.002"),
                    ),
                ),
                last_candle_time=1_714_564_920_000,  # 12:02 UTC
                last_signal="ENTER_LONG @ 1714564800000",
                last_outcome="FILLED 7d1c1a7e-0000-4000-8000-000000000000",
                rejections={"POSITION_OPEN": 3, "RISK_LIMIT": 1},
                last_price=Decimal("60748.5"),
                unrealized_pnl=Decimal("1.25"),
                realized_pnl=Decimal("-0.40"),
                exchange_orders=(
                    ExchangeOrder(
                        symbol="BTC/USD:USD",
                        side=Side.SELL,
                        exchange_order_id="e-1",
                        client_order_id="7d1c1a7e-0000-4000-8000-000000000001",
                        amount=Decimal("0.002"),
                        price=Decimal("65000"),
                        reduce_only=True,
                        ours=True,
                    ),
                    ExchangeOrder(symbol="BTC/USD:USD", side=Side.BUY, exchange_order_id="e-2", amount=Decimal("1")),
                ),
            ),
            SymbolStatus(
                symbol="ETH/USD:USD",
                state=SymbolState.PAUSED,
                paused=True,
                position=Position.flat("ETH/USD:USD"),
                last_candle_time=1_714_564_920_000,
            ),
            SymbolStatus(
                symbol="SOL/USD:USD",
                state=SymbolState.HALTED,
                halted=True,
                halt_reason="3 restarts in 600 s",
                restarts=3,
            ),
            SymbolStatus(
                symbol="XRP/USD:USD",
                state=SymbolState.BLOCKED,
                position=Position.flat("XRP/USD:USD"),
                pending_orders=(
                    PendingOrderView(
                        client_order_id="7d1c1a7e-0000-4000-8000-000000000002",
                        side=Side.BUY,
                        state=OrderState.UNKNOWN,
                        reduce_only=False,
                        amount=Decimal("150"),
                    ),
                ),
                last_outcome="OUTCOME_UNKNOWN: read timed out",
                rejections={"ORDER_UNRESOLVED": 2},
            ),
        ),
        open_positions=1,
        reserved_slots=2,
        max_open_positions=3,
        total_notional=Decimal("120.247"),
        max_total_notional=Decimal("3000"),
        reconciled=True,
        realized_pnl=Decimal("-0.40"),
        unrealized_pnl=Decimal("1.25"),
        as_of=AS_OF,
    )


@dataclass
class FakeTarget:
    """A ControlTarget that records what reaches it and answers like the portfolio does."""

    symbols: tuple[str, ...] = SYMBOLS
    received: list[ControlMessage | Shutdown] = field(default_factory=list)
    status_calls: int = 0
    fail: Exception | None = None
    refuse: str | None = None
    hold: threading.Event | None = None  # when set, control() waits for it (an order in flight)
    reply_override: Any = "unset"  # anything else: control() returns it as is (a target with a bug)
    entered: threading.Event = field(default_factory=threading.Event)
    shutdown_requested: threading.Event = field(default_factory=threading.Event)

    def status(self) -> PortfolioStatus:
        """The sample status (or the configured failure)."""
        self.status_calls += 1
        if self.fail is not None:
            raise self.fail
        return sample_status()

    def control(self, message: ControlMessage) -> ControlReply:
        """Record the message; answer ok, unknown symbol, or the configured refusal."""
        self.received.append(message)
        self.entered.set()
        if self.hold is not None:
            self.hold.wait(5)
        if self.fail is not None:
            raise self.fail
        if self.reply_override != "unset":
            return self.reply_override  # type: ignore[no-any-return]
        if message.symbol is not None and message.symbol not in self.symbols:
            return ControlReply.unknown_symbol(message.symbol, self.symbols)
        if self.refuse is not None:
            return ControlReply(ok=False, detail=self.refuse)
        chosen = (message.symbol,) if message.symbol else self.symbols
        return ControlReply(ok=True, detail=f"{type(message).__name__.lower()} applied", symbols=chosen)

    def shutdown(self, message: Shutdown) -> ControlReply:
        """Record the request and flag it, as a real system would signal its main thread."""
        self.received.append(message)
        self.shutdown_requested.set()
        return ControlReply(ok=True, detail="shutdown requested")

    @property
    def saw_nothing(self) -> bool:
        """True when no call at all reached the target."""
        return not self.received and self.status_calls == 0


@pytest.fixture
def target() -> FakeTarget:
    """A fresh fake target."""
    return FakeTarget()


@pytest.fixture(scope="session")
def shared_server() -> Iterator[ControlServer]:
    """One control server on a free loopback port for the session (stopping one takes up to 0.1 s)."""
    srv = ControlServer(FakeTarget(), ControlConfig(), TOKEN, port=0).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def server(shared_server: ControlServer, target: FakeTarget) -> ControlServer:
    """The shared control server, serving this test's fresh fake target."""
    shared_server.service.target = target
    return shared_server


@pytest.fixture
def client(server: ControlServer) -> ControlClient:
    """A client with the right token."""
    return ControlClient(server.url, TOKEN, timeout=5)


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    """Every loguru message (with its level) logged during the test."""
    lines: list[str] = []
    handler = logger.add(lambda m: lines.append(str(m)), format="{level} {message}", level="DEBUG")
    try:
        yield lines
    finally:
        logger.remove(handler)


@dataclass(frozen=True)
class RawAnswer:
    """An HTTP answer as the wire carried it."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str]


def raw_request(
    server: ControlServer,
    method: str,
    path: str,
    body: bytes | dict[str, Any] | None = None,
    token: str | None = TOKEN,
    headers: dict[str, str] | None = None,
) -> RawAnswer:
    """Send one request with http.client and decode the JSON answer."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    all_headers = dict(headers or {})
    if token is not None:
        all_headers.setdefault("Authorization", f"Bearer {token}")
    payload = json.dumps(body).encode() if isinstance(body, dict) else body
    try:
        conn.request(method, path, body=payload, headers=all_headers)
        response = conn.getresponse()
        raw = response.read()
        return RawAnswer(response.status, json.loads(raw) if raw else {}, dict(response.getheaders()))
    finally:
        conn.close()


def free_port() -> int:
    """A loopback port that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(folder: Path, port: int, **control: Any) -> Path:
    """A config.toml in `folder` whose control endpoint is on `port` and whose storage is `folder/storage`."""
    extra = "".join(f"{key} = {json.dumps(value)}\n" for key, value in control.items())
    path = folder / "config.toml"
    path.write_text(f'storage_dir = "storage"\n\n[control]\nport = {port}\n{extra}', encoding="utf-8")
    return path
