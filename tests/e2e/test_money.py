"""Money end to end, through the real ccxt client against the simulator: a paper run's realized PnL, net of the fees
and funding Kraken's account log books, equals the account's balance change to the cent; margin is checked before
an entry, locally, and never blocks an exit.

The scripted strategy trades hourly candles (entry, held two candles, exit; long and short in turn) on a stepped
clock, so each round trip holds its position across funding times (Kraken charges funding hourly).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import ccxt
import pytest

from control.status_view import render_status
from messages import Reason
from persistence import Store, open_database
from strategies.scripted import ScriptedParams, ScriptedStrategy
from testkit import wait_until
from testkit.exchange import SimulatedExchange
from testkit.system import PaperSystem, build_live_system, make_config, quiet, ready

pytestmark = pytest.mark.timeout(240)

BTC, ETH = "BTC/USD:USD", "ETH/USD:USD"
HOUR_MS = 3_600_000
START = 1_780_000_000_000 - 1_780_000_000_000 % HOUR_MS + 600_000  # 10 minutes into an hour
# the gateway reads the account log often (Kraken's history pool still paces it) so the test need not wait
MONEY_FAST = {"account_log_interval_s": 1.0, "funding_interval_s": 2.0}


def usd_balance(client: Any) -> Decimal:
    """The account's USD balance as ccxt's fetch_balance reads it (the flex account's USD quantity)."""
    balance = client.fetch_balance()
    return Decimal(str(balance["total"]["USD"]))


def probe_account_log(sim: SimulatedExchange) -> None:
    """Skip, saying why, when the simulator does not serve Kraken's account log yet."""
    try:
        sim.client().historyGetAccountLog({"count": 1})
    except ccxt.BaseError as exc:
        pytest.skip(f"the simulator does not serve /api/history/v3/account-log yet ({type(exc).__name__}: {exc})")


def funding_charged(client: Any) -> list[Decimal]:
    """Every funding payment in the simulator's account log, read through ccxt as Kraken's answer."""
    payments: list[Decimal] = []
    seen: set[int] = set()
    start = 0
    while True:
        logs = client.historyGetAccountLog({"sort": "asc", "from": start, "count": 500})["logs"]
        fresh = [e for e in logs if int(e["id"]) not in seen]
        for e in fresh:
            seen.add(int(e["id"]))
            if e.get("info") == "funding rate change" and e.get("realized_funding") is not None:
                payments.append(Decimal(str(e["realized_funding"])))
        if len(logs) < 500 or not fresh:
            return payments
        start = max(int(e["id"]) for e in logs)


@contextmanager
def paper(sim: SimulatedExchange, folder: Path, **sections: Any) -> Iterator[tuple[PaperSystem, str]]:
    trading = {"symbols": [BTC], "timeframe": "1h", "order_notional": 500, **sections.pop("trading", {})}
    config = make_config(trading=trading, **sections)
    url = f"sqlite:///{folder / 'trading.db'}"
    system = build_live_system(sim.handle, config, url, candles=True, market_data_interval_s=0.05,
                               strategy_factory=lambda _symbol: ScriptedStrategy(ScriptedParams(period=4, hold=2)),
                               gateway_overrides=MONEY_FAST)
    try:
        ready(system)
        yield PaperSystem(system, sim, config), url
    finally:
        system.stop()


def close_every_symbols_candle(run: PaperSystem, price: int) -> None:
    """Close the open candle (one step of the shared clock) and wait until every symbol actor had it, and every
    order it led to is resolved."""
    first = run.close_candle(price)
    for symbol in run.symbols[1:]:
        wait_until(lambda symbol=symbol: (run.status(symbol).last_candle_time or 0) >= (first.last_candle_time or 0),
                   timeout=10, message=f"{symbol} had the candle")
    quiet(run.system)


def stored(url: str) -> Store:
    store = Store(open_database(url))
    store.open()
    return store


def test_a_paper_runs_net_realized_pnl_equals_the_balance_change_to_the_cent() -> None:
    with SimulatedExchange.start(start_time_ms=START, history_days=1) as sim, \
            tempfile.TemporaryDirectory(prefix="kraken-money-") as folder:
        probe_account_log(sim)
        client = sim.client()
        client.load_markets()
        before = usd_balance(client)
        sim.set_price(BTC, 50_000)
        with paper(sim, Path(folder)) as (run, url):
            prices = [50_000, 50_400, 50_900, 50_100, 49_700, 49_000, 49_300, 50_200, 51_000, 50_600, 50_800, 50_300,
                      49_900, 50_500, 50_000, 50_000]
            for price in prices:  # 4 candles per round trip: 4 round trips (long, short, long, short)
                run.close_candle(price)
            assert sim.position(BTC) == 0, "every round trip closed"
            fills = sim.fills()
            assert len(fills) >= 8
            charged = funding_charged(client)
            assert charged, "the simulator charged funding while positions were held (its account log shows it)"
            store = stored(url)
            try:
                def every_fee_and_funding_booked() -> bool:
                    rows = store.fills()
                    return len(rows) == len(fills) and all(r["fee_currency"] is not None for r in rows) and \
                        store.pnl_totals().get(BTC, {}).get("funding") == sum(charged, Decimal(0))

                wait_until(every_fee_and_funding_booked, timeout=30,
                           message="every fill's fee and the funding read from the account log and stored")
            finally:
                store.close()
            status = run.system.status()
        after = usd_balance(client)
        store = stored(url)
        try:
            totals = store.pnl_totals()[BTC]
            net = store.net_pnl()
            fees = sum((Decimal(f["fee"]) for f in store.fills()), Decimal(0))
        finally:
            store.close()
    change = after - before
    assert totals["fees"] == fees > 0  # fees from the account log, on every fill
    assert totals["funding"] == sum(charged, Decimal(0))  # every funding payment, once
    assert totals["gross"] != 0
    assert net == totals["gross"] - totals["fees"] + totals["funding"]
    assert net.quantize(Decimal("0.01")) == change.quantize(Decimal("0.01")), \
        f"net realized {net} (gross {totals['gross']}, fees {totals['fees']}, funding {totals['funding']}) " \
        f"but the balance changed by {change}"
    # the status shows the money apart, and the available margin
    assert status.fees == totals["fees"] and status.funding == totals["funding"] and status.net_pnl == net
    assert status.money[BTC]["net"] == net
    money_line = [line for line in render_status(status.model_dump(mode="json")).splitlines()
                  if line.startswith("Money")]
    assert money_line and "fees" in money_line[0] and "funding" in money_line[0] and "margin" in money_line[0]
    assert status.margin is not None and status.margin > 0


def test_an_entry_beyond_the_available_margin_is_refused_locally_and_an_exit_still_goes() -> None:
    # 12 USD on the account: one entry of 500 USD at 2 % initial margin (10 USD, plus the fee allowance) fits, the
    # second symbol's entry at the same close does not; the risk limits (1000 per order, 2 positions) allow both
    with SimulatedExchange.start(start_time_ms=START, history_days=1, initial_balance=12) as sim, \
            tempfile.TemporaryDirectory(prefix="kraken-margin-") as folder:
        sim.set_price(BTC, 50_000)
        sim.set_price(ETH, 3_000)
        with paper(sim, Path(folder), trading={"symbols": [BTC, ETH]}, risk={"max_open_positions": 2}) as (run, url):
            available = run.system.status().margin
            assert available is not None and Decimal(11) < available <= Decimal(12)
            for _ in range(4):  # until the script's entry candle
                close_every_symbols_candle(run, 50_000)
                if sim.positions():
                    break
            assert len(sim.positions()) == 1, f"exactly one entry fits the margin: {sim.positions()}"
            entries = [r for r in sim.order_requests() if not r.get("reduceOnly")]
            assert len(entries) == 1, "the other entry was never sent"
            assert not [r for r in sim.order_requests() if r.get("status") == "insufficientAvailableFunds"]
            def refusals() -> list[Any]:
                store = stored(url)
                try:
                    return list(store.events(reason=Reason.INSUFFICIENT_MARGIN.value))
                finally:
                    store.close()

            wait_until(lambda: bool(refusals()), timeout=10, message="the refusal reached the event log")  # a tell
            refused = refusals()
            assert len(refused) == 1 and "available margin" in refused[0].detail
            held = next(iter(sim.positions()))
            for _ in range(3):  # the exit: reduce-only, never asks for margin
                close_every_symbols_candle(run, 50_000)
                if not sim.positions():
                    break
            assert not sim.positions(), f"the exit of {held} went"
