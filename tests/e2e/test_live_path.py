"""The protection matrix end to end: running actors, the real ccxt client, the simulator's Kraken API.

Every count of orders comes from the simulator's own record of every order it received.
"""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest

from exchange.private_api import READ_ATTEMPTS
from messages import (
    EventKind,
    QueryEvents,
    Reason,
    SignalKind,
    SymbolState,
    client_order_id_for,
    intent_hash,
)
from simulator import start_simulator
from tests.conftest import make_config
from tests.e2e.conftest import BTC, ETH, build_live_system, ccxt_client, placed, quiet, ready, signal
from tests.helpers import wait_until

T0 = 1_800_000_000_000


def cid_of(symbol: str = BTC, t: int = T0, kind: SignalKind = SignalKind.ENTER_LONG, notional: int = 100) -> str:
    return client_order_id_for(intent_hash(symbol, t, kind, Decimal(notional)))


def events(system, **filters):
    return system.persistence.ask(QueryEvents(**filters), timeout=5)


def send(system, message, symbol: str = BTC) -> None:
    system.symbol_actors()[symbol].tell(message)


def test_same_signal_twice_gives_one_order(sim, live_system) -> None:
    system = ready(live_system())
    send(system, signal())
    send(system, signal())
    quiet(system)
    assert len(placed(sim)) == 1 and placed(sim)[0]["cliOrdId"] == cid_of()
    assert len(events(system, reason=Reason.DUPLICATE_INTENT.value)) == 1


def test_same_signal_after_restart_gives_one_order(sim, live_system, sqlite_url) -> None:
    first = ready(live_system(database_url=sqlite_url))
    send(first, signal())
    quiet(first)
    first.stop()
    exit_client = ccxt_client(sim)  # close the position by hand so that only L1 can stop the repeat
    exit_client.create_order(BTC, "market", "sell", float(placed(sim)[0]["size"]), None, {"reduceOnly": True})
    second = ready(live_system(database_url=sqlite_url))
    send(second, signal())
    quiet(second)
    assert len(placed(sim, cid_of())) == 1
    assert len(events(second, reason=Reason.DUPLICATE_INTENT.value)) == 1


def test_open_position_blocks_entry_and_exit_closes_it(sim, live_system) -> None:
    ccxt_client(sim).create_order(BTC, "market", "buy", 0.002)  # opened by hand
    system = ready(live_system())
    send(system, signal(t=T0))
    quiet(system)
    assert placed(sim, cid_of()) == []
    assert len(events(system, reason=Reason.POSITION_OPEN.value)) == 1
    send(system, signal(t=T0 + 60_000, kind=SignalKind.EXIT))
    quiet(system)
    exit_orders = placed(sim, cid_of(t=T0 + 60_000, kind=SignalKind.EXIT, notional=0))
    assert len(exit_orders) == 1 and exit_orders[0]["reduceOnly"] is True
    assert [p for p in sim.admin.state()["positions"] if Decimal(p["size"]) != 0] == []


@pytest.mark.parametrize("origin", ["external", "ours-forgotten"])
def test_order_resting_on_the_exchange_blocks_entry(sim, live_system, tmp_path, origin) -> None:
    client = ccxt_client(sim)
    client.load_markets()
    price = float(client.fetch_ticker(BTC)["bid"]) * 0.9
    if origin == "external":
        client.create_order(BTC, "limit", "buy", 0.001, price)  # placed in the web UI
    else:  # our own limit order, placed with a database that is gone
        config = make_config(trading={"order_type": "limit", "limit_offset_bps": 1000})
        first = ready(live_system(config=config, database_url=f"sqlite:///{tmp_path / 'lost.db'}"))
        send(first, signal(t=T0 - 60_000))
        quiet(first)
        first.stop()
    resting = [o for o in sim.admin.state()["orders"] if o["state"] == "open"]
    assert len(resting) == 1
    system = ready(live_system())
    send(system, signal())
    quiet(system)
    assert placed(sim, cid_of()) == []
    refused = events(system, reason=Reason.EXCHANGE_ORDER_OPEN.value)
    assert refused and (resting[0]["cliOrdId"] or resting[0]["order_id"]) in refused[-1].detail
    adopted = events(system, reason=Reason.EXTERNAL_ORDER.value, kind=EventKind.RECONCILE_MISMATCH.value)
    assert len(adopted) == 1


def test_fifty_concurrent_signals_give_one_order(sim, live_system) -> None:
    system = ready(live_system())
    ref = system.symbol_actors()[BTC]
    barrier = threading.Barrier(50)

    def fire(i: int) -> None:
        barrier.wait()
        ref.tell(signal(t=T0 if i % 2 else T0 + 60_000 * i))

    threads = [threading.Thread(target=fire, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    quiet(system)
    assert len(placed(sim)) == 1


def test_open_order_check_failing_fails_closed_with_a_reason(sim, live_system) -> None:
    system = ready(live_system())
    # every attempt fails (reads are retried at once, READ_ATTEMPTS times): the check has failed
    sim.admin.schedule_fault("unavailable", endpoint="openorders", count=READ_ATTEMPTS)
    send(system, signal())
    quiet(system)
    assert placed(sim) == []
    refused = events(system, reason=Reason.EXCHANGE_UNAVAILABLE.value, kind=EventKind.ORDER_UPDATE.value)
    assert refused and "fail-closed" in refused[-1].detail and "ExchangeNotAvailable" in refused[-1].detail


def test_open_order_check_failing_with_fail_open_sends_once(sim, live_system) -> None:
    system = ready(live_system(config=make_config(exchange={"open_order_check": "fail-open"})))
    sim.admin.schedule_fault("http_500", endpoint="openorders", count=READ_ATTEMPTS)
    send(system, signal())
    send(system, signal())
    quiet(system)
    assert len(placed(sim, cid_of())) == 1


def test_startup_reconciliation_adopts_an_external_order_and_position(sim, live_system) -> None:
    client = ccxt_client(sim)
    client.load_markets()
    client.create_order(ETH, "market", "sell", 0.05)  # a short opened outside the system
    bid = float(client.fetch_ticker(BTC)["bid"])
    client.create_order(BTC, "limit", "buy", 0.001, bid * 0.8)  # and a resting order
    system = ready(live_system(config=make_config(trading={"symbols": [BTC, ETH]})))
    rows = {r.symbol: r for r in system.status().symbols}
    assert rows[ETH].position.side.value == "short" and rows[ETH].position.contracts == Decimal("0.05")
    assert [o.ours for o in rows[BTC].exchange_orders] == [False]
    send(system, signal(ETH, price="3000"), symbol=ETH)
    send(system, signal(BTC), symbol=BTC)
    quiet(system)
    assert placed(sim, cid_of(ETH)) == [] and placed(sim, cid_of(BTC)) == []
    assert events(system, reason=Reason.POSITION_OPEN.value, symbol=ETH)
    assert events(system, reason=Reason.EXCHANGE_ORDER_OPEN.value, symbol=BTC)
    stored = [o for o in system.persistence.ask(QueryEvents(kind=EventKind.ORDER_UPDATE.value), timeout=5)
              if o.reason is Reason.EXTERNAL_ORDER]
    assert len(stored) == 1


def test_candles_from_the_simulator_drive_a_scripted_strategy_to_a_fill(sqlite_url) -> None:
    fast = start_simulator(seed=5, speed=60.0, rate_limit=True)  # a 1m candle closes every second
    config = make_config(trading={"symbols": [BTC]}, strategy={"name": "scripted", "params": {"period": 2, "hold": 1}})
    system = build_live_system(fast, config, sqlite_url, candles=True, market_data_interval_s=0.2)
    try:
        wait_until(lambda: placed(fast), timeout=15, message="an order from a candle signal")
        quiet(system)
        row = system.status().symbols[0]
        assert row.last_candle_time is not None and row.last_signal is not None
        first = placed(fast)[0]
        minute = 60_000
        candle_time = next(t for t in range(row.last_candle_time, 0, -minute)
                           if client_order_id_for(intent_hash(BTC, t, SignalKind.ENTER_LONG, Decimal(100))) ==
                           first["cliOrdId"] or client_order_id_for(intent_hash(BTC, t, SignalKind.ENTER_SHORT,
                                                                                  Decimal(100))) == first["cliOrdId"])
        assert candle_time % (2 * minute) == 0  # an entry candle of the scripted rule (period 2)
    finally:
        system.stop()
        fast.stop()


def test_status_after_trading_shows_positions_and_realized_pnl(sim, live_system) -> None:
    system = ready(live_system())
    send(system, signal())
    quiet(system)
    wait_until(lambda: (row := system.status().symbols[0]).position is not None and row.position.is_open,
               message="position synced after the fill")
    status = system.status()
    assert status.reconciled and status.realized_pnl == 0 and status.unrealized_pnl is not None
    assert status.symbols[0].state is SymbolState.TRADING
    send(system, signal(t=T0 + 60_000, kind=SignalKind.EXIT))
    quiet(system)
    fills = sim.admin.state()["fills"]
    buy = next(f for f in fills if f["side"] == "buy")
    sell = next(f for f in fills if f["side"] == "sell")
    expected = (Decimal(sell["price"]) - Decimal(buy["price"])) * Decimal(buy["size"])
    assert system.status().realized_pnl == expected
