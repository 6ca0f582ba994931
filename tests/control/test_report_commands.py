"""The report commands (trades, orders, pnl, why, markets): the shared formatting, the wire, the printed tables."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from control import ControlServer, main
from control.formatting import iso_utc, plain_decimal, short_id, shorten_ids, to_json, utc_time
from messages.control import ControlReply, ReportKind, ReportQuery, ReportReply
from tests.control.conftest import TOKEN, FakeTarget, free_port, raw_request, write_config

CID = "7d1c1a7e-0000-4000-8000-000000000001"
T = datetime(2026, 12, 2, 13, 4, 5, 123000, tzinfo=UTC)


def test_plain_decimal_never_prints_an_exponent() -> None:
    assert plain_decimal(Decimal("1.8E+2")) == "180"
    assert plain_decimal(Decimal("1E-4")) == "0.0001"
    assert plain_decimal(Decimal("1.500")) == "1.5"
    assert plain_decimal(Decimal("-0.00")) == "0"
    assert plain_decimal("2.345", places=2) == "2.34" or plain_decimal("2.345", places=2) == "2.35"
    assert plain_decimal(None) == "-"


def test_times_are_utc_for_people_and_iso_8601_for_json() -> None:
    assert utc_time(T) == "2026-12-02 13:04:05Z"
    assert utc_time(int(T.timestamp() * 1000)) == "2026-12-02 13:04:05Z"
    assert utc_time("2026-12-02T13:04:05.123Z") == "2026-12-02 13:04:05Z"
    assert iso_utc(T) == "2026-12-02T13:04:05.123Z"
    assert to_json({"a": [Decimal("1E+1"), T]}) == {"a": ["10", "2026-12-02T13:04:05.123Z"]}


def test_short_ids_in_tables() -> None:
    assert short_id(CID) == "7d1c1a7e"
    assert shorten_ids(f"FILLED buy cliOrdId={CID} orderId={CID} filled=1") == (
        "FILLED buy cliOrdId=7d1c1a7e orderId=7d1c1a7e filled=1")


@dataclass
class ReportingTarget(FakeTarget):
    """The fake target, answering reports with one row each (and an unknown symbol like the system does)."""

    queries: list[ReportQuery] = field(default_factory=list)

    def report(self, query: ReportQuery) -> ReportReply:
        self.queries.append(query)
        if query.symbol is not None and query.symbol not in self.symbols:
            refusal = ControlReply.unknown_symbol(query.symbol, self.symbols)
            return ReportReply(ok=False, code=refusal.code, detail=refusal.detail)
        rows = {
            ReportKind.TRADES: {"time": T, "symbol": "BTC/USD:USD", "side": "buy", "amount": Decimal("0.0020"),
                                "price": Decimal("1.8E+2"), "fee": Decimal("0.05"), "kind": "entry",
                                "client_order_id": CID, "order_id": "x1", "fill_id": "f1"},
            ReportKind.ORDERS: {"created_at": T, "updated_at": T, "symbol": "BTC/USD:USD", "side": "buy",
                                "kind": "stop-loss", "state": "ACCEPTED", "open": True, "reason": None,
                                "amount": Decimal("0.002"), "filled": Decimal(0), "average_price": None,
                                "client_order_id": CID},
            ReportKind.PNL: {"symbol": "BTC/USD:USD", "gross": Decimal("2"), "fees": Decimal("0.1"),
                             "funding": Decimal(0), "net": Decimal("1.9"), "fills": 2, "volume": Decimal("200")},
            ReportKind.WHY: {"time": T, "event": "SIGNAL_REJECTED", "reason": "PAUSED",
                             "detail": "ENTER_LONG candle 1764680640000: paused", "symbol": "BTC/USD:USD"},
            ReportKind.MARKETS: {"symbol": "BTC/USD:USD", "exchange_id": "PF_XBTUSD", "contract_size": Decimal(1),
                                 "min_amount": Decimal("0.0001"), "amount_step": Decimal("0.0001"),
                                 "price_tick": Decimal(1), "max_leverage": Decimal(50), "traded": True},
        }[query.report]
        total = {"gross": Decimal(2), "fees": Decimal("0.1"), "funding": Decimal(0), "net": Decimal("1.9"),
                 "fills": 2, "volume": Decimal(200)} if query.report is ReportKind.PNL else None
        return ReportReply(rows=(rows,), total=total, extra={"traded": list(self.symbols)})


@pytest.fixture
def reporting(shared_server: ControlServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple:
    target = ReportingTarget()
    shared_server.service.target = target
    monkeypatch.setenv("KRAKEN_BOT_CONTROL_TOKEN", TOKEN)
    return target, write_config(tmp_path, shared_server.port)


def test_each_report_prints_a_table_with_utc_times_and_plain_decimals(reporting, capsys) -> None:
    target, config = reporting
    assert main(["trades", "--symbol", "btc/usd:usd", "--limit", "5", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "2026-12-02 13:04:05Z" in out and "180" in out and "E+" not in out and "7d1c1a7e" in out
    assert CID not in out
    assert target.queries[-1] == ReportQuery(report=ReportKind.TRADES, symbol="BTC/USD:USD", limit=5)
    assert main(["orders", "--open", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "stop-loss" in out and "0/0.002" in out and target.queries[-1].open_only
    assert main(["pnl", "--by", "day", "--config", str(config)]) == 0
    assert target.queries[-1].by == "day"
    capsys.readouterr()
    assert main(["pnl", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "+1.90" in out and "total" in out
    assert main(["why", "BTC/USD:USD", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "signal refused" in out and "PAUSED" in out and "candle 2025-12-02 13:04:00Z" in out
    assert main(["markets", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "PF_XBTUSD" in out and "0.0001" in out and "yes" in out


def test_json_has_decimals_as_strings_and_iso_times(reporting, capsys) -> None:
    _, config = reporting
    assert main(["trades", "--json", "--config", str(config)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["report"] == "trades"
    assert data["rows"][0]["price"] == "180" and data["rows"][0]["time"] == "2026-12-02T13:04:05.123Z"
    assert main(["pnl", "--json", "--config", str(config)]) == 0
    assert json.loads(capsys.readouterr().out)["total"]["net"] == "1.9"


def test_an_unknown_symbol_is_refused_naming_the_traded_ones_and_nothing_running_is_exit_3(
        reporting, capsys, tmp_path: Path) -> None:
    _, config = reporting
    assert main(["why", "NOPE/USD:USD", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert "unknown symbol 'NOPE/USD:USD'" in err and "BTC/USD:USD" in err
    (tmp_path / "other").mkdir()
    nothing = write_config(tmp_path / "other", free_port())
    assert main(["trades", "--config", str(nothing)]) == 3
    assert "no trading system is running" in capsys.readouterr().err


def test_bad_report_parameters_are_refused_with_400(shared_server: ControlServer) -> None:
    shared_server.service.target = ReportingTarget()
    assert raw_request(shared_server, "GET", "/v1/trades?limit=0").status == 400
    assert raw_request(shared_server, "GET", "/v1/why").status == 400
    assert raw_request(shared_server, "GET", "/v1/pnl?by=week").status == 400
    assert raw_request(shared_server, "GET", "/v1/trades?since=yesterday").status == 400
    assert raw_request(shared_server, "GET", "/v1/trades?nope=1").status == 400
    assert raw_request(shared_server, "GET", "/v1/trades?since=2026-12-02").status == 200
