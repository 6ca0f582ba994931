"""The gateway takes each fill's fee from Kraken's account log — later when the log lags, never a 0 as if proven —
and funding payments, each entry handed on once; it reads the available margin at reconciliation and after fills."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from actors.gateway import GatewaySettings, OrderGateway
from exchange.private_api import iso_ms
from messages import (
    AccountLogEntries,
    AccountMargin,
    OrderIntent,
    OrderUpdate,
    Reconcile,
    Side,
    SignalKind,
    client_order_id_for,
    intent_hash,
)
from tests.fakes import FakeExchange, TestClock

BTC = "BTC/USD:USD"
TAKER = Decimal("0.0005")


class LoggingExchange(FakeExchange):
    """FakeExchange with Kraken's account log (a fee entry per fill, published `log_lag_ms` late; funding entries
    added by hand) and the accounts endpoint (flex availableMargin)."""

    def __init__(self, clock: TestClock) -> None:
        super().__init__(clock=clock)
        self.log_lag_ms = 0
        self.funding: list[dict[str, Any]] = []
        self.available = "1000"
        self.log_reads: list[dict[str, Any]] = []
        self.account_reads = 0

    def _entries(self) -> list[dict[str, Any]]:
        entries = []
        for n, fill in enumerate(self.fills):
            fee = Decimal(str(fill["size"])) * Decimal(str(fill["price"])) * TAKER
            entries.append({"id": 2 * n + 1, "date": iso_ms(fill["_ms"]), "asset": "usd", "info": "futures trade",
                            "contract": fill["symbol"].lower(), "execution": fill["fill_id"], "fee": str(fee),
                            "_ms": fill["_ms"]})
        for n, entry in enumerate(self.funding):
            entries.append({"id": 10_000 + n, "asset": "usd", "info": "funding rate change", **entry})
        return entries

    def historyGetAccountLog(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802 - ccxt's name
        self.log_reads.append(dict(params))
        published = [e for e in self._entries() if e["_ms"] + self.log_lag_ms <= self.now_ms()]
        rows = sorted((e for e in published if e["id"] >= params.get("from", 0)), key=lambda e: e["id"])
        return {"accountUid": "u", "logs": [{k: v for k, v in e.items() if k != "_ms"} for e in rows]
                [: params["count"]]}

    def privateGetAccounts(self, params: dict[str, Any] | None = None) -> dict[str, Any]:  # noqa: N802
        self.account_reads += 1
        return {"result": "success", "accounts": {"flex": {"availableMargin": self.available}}}


def entry(t: int = 1) -> OrderIntent:
    h = intent_hash(BTC, t, SignalKind.ENTER_LONG, Decimal(100))
    return OrderIntent(intent_hash=h, client_order_id=client_order_id_for(h), symbol=BTC, kind=SignalKind.ENTER_LONG,
                       side=Side.BUY, candle_time=t, notional=Decimal(100), amount=Decimal("0.002"),
                       price=Decimal(50_000))


def setup() -> tuple[LoggingExchange, OrderGateway, list[Any], list[Any], TestClock]:
    clock = TestClock()
    exchange = LoggingExchange(clock)
    recorded: list[AccountLogEntries] = []
    routed: list[Any] = []
    reports: list[OrderUpdate] = []
    gateway = OrderGateway(exchange, settings=GatewaySettings(account_log_interval_s=1.0, funding_interval_s=60.0),
                           report=reports.append, route=routed.append, record_money=recorded.append,
                           clock=clock.seconds, exchange_clock=clock)
    return exchange, gateway, recorded, routed, clock


def fees(recorded: list[AccountLogEntries]) -> list[tuple[str, Decimal]]:
    return [(f.execution, f.fee) for entries in recorded for f in entries.fees]


def test_a_fill_whose_fee_is_not_in_the_log_yet_gets_it_when_it_shows_once() -> None:
    exchange, gateway, recorded, routed, clock = setup()
    exchange.log_lag_ms = 10_000
    gateway.reconcile(Reconcile(reason="start"))
    gateway.place_all([entry()])
    clock.advance(1)
    gateway.poll()
    [fill] = exchange.fills
    assert fill["fill_id"] in gateway.money.awaiting  # booked, its fee awaited
    assert fees(recorded) == []  # nothing in the log yet: no fee is made up
    clock.advance(11)
    gateway.poll()
    assert fees(recorded) == [(fill["fill_id"], Decimal("0.002") * Decimal(fill["price"]) * TAKER)]
    assert not gateway.money.awaiting
    reads = len(exchange.log_reads)
    for _ in range(3):
        clock.advance(61)  # past the funding interval: read again
        gateway.poll()
    assert len(exchange.log_reads) == reads + 3
    assert all(r.get("from") == 1 for r in exchange.log_reads[-3:])  # from the newest entry id read
    assert len(fees(recorded)) == 1  # the entry is handed on once


def test_funding_entries_are_handed_on_once_and_read_while_no_fee_is_awaited() -> None:
    exchange, gateway, recorded, routed, clock = setup()
    gateway.reconcile(Reconcile(reason="start"))
    exchange.funding.append({"date": iso_ms(clock()), "contract": "pf_xbtusd", "realized_funding": "-0.42",
                             "funding_rate": "0.0001", "_ms": clock()})
    clock.advance(30)
    gateway.poll()
    assert recorded == []  # no fee awaited: funding is read every funding_interval_s
    clock.advance(31)
    gateway.poll()
    clock.advance(61)
    gateway.poll()
    payments = [(p.entry_id, p.symbol, p.amount) for entries in recorded for p in entries.funding]
    assert payments == [(10_000, BTC, Decimal("-0.42"))]


def test_the_available_margin_is_read_at_reconciliation_and_after_fills() -> None:
    exchange, gateway, recorded, routed, clock = setup()
    gateway.reconcile(Reconcile(reason="start"))
    margins = [m.available for m in routed if isinstance(m, AccountMargin)]
    assert margins == [Decimal(1000)]
    clock.advance(1)
    gateway.poll()
    assert exchange.account_reads == 1  # nothing changed it: not read again
    exchange.available = "990"
    gateway.place_all([entry()])
    clock.advance(1)
    gateway.poll()
    assert [m.available for m in routed if isinstance(m, AccountMargin)][-1] == Decimal(990)


def test_an_unreadable_margin_stays_unknown_and_is_read_again() -> None:
    exchange, gateway, recorded, routed, clock = setup()
    exchange.available = "not a number"
    gateway.reconcile(Reconcile(reason="start"))
    assert not [m for m in routed if isinstance(m, AccountMargin)]  # never a guessed margin
    exchange.available = "500"
    clock.advance(1)
    gateway.poll()
    assert [m.available for m in routed if isinstance(m, AccountMargin)] == [Decimal(500)]


def test_with_no_entry_stored_yet_the_log_is_read_from_the_start_not_from_an_hour_before_each_read() -> None:
    exchange, gateway, recorded, routed, clock = setup()
    exchange.log_lag_ms = 3 * 3_600_000  # the fee entry shows three hours of exchange time after its fill
    gateway.reconcile(Reconcile(reason="start"))
    gateway.place_all([entry()])
    for _ in range(4):
        clock.advance(3_600)  # an hour per look (a fast paper clock): nothing in the log yet, then the entry
        gateway.poll()
    [fill] = exchange.fills
    assert [execution for execution, _ in fees(recorded)] == [fill["fill_id"]]
    assert len({r.get("since") for r in exchange.log_reads if "since" in r}) == 1  # one fixed start
