"""The paper account survives restarts: the state file written by one simulator is carried on by the next."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import ccxt
import pytest

from exchange.client import make_kraken_client
from simulator import (
    STATE_VERSION,
    SimulatorHandle,
    StateFileError,
    StateStore,
    start_simulator,
)
from simulator.clock import SteppedClock
from simulator.engine import Exchange
from simulator.instruments import INSTRUMENTS
from simulator.prices import MarketData

BTC = "BTC/USD:USD"
ETH = "ETH/USD:USD"
START = 1_780_000_000_000
KEY, SECRET = "paper-key", "c2VjcmV0LXNpbXVsYXRvci1rZXk="
REPO = Path(__file__).resolve().parents[2]
VOLATILE = ("faults", "rate_limit", "requests")  # not part of the account: these do not persist


def boot(path: Path, **overrides: Any) -> SimulatorHandle:
    """A stepped-clock simulator keeping its account in `path`."""
    settings: dict[str, Any] = {"clock": "stepped", "seed": 7, "rate_limit": False, "start_time_ms": START,
                                "state_file": str(path), "api_key": KEY, "api_secret": SECRET}
    return start_simulator(**{**settings, **overrides})


def account(sim: SimulatorHandle) -> dict[str, Any]:
    """The state dump without the request log, faults and budgets."""
    return {k: v for k, v in sim.admin.state().items() if k not in VOLATILE}


def connect(sim: SimulatorHandle) -> ccxt.krakenfutures:
    """A ccxt client for `sim` with markets loaded."""
    client = sim.client(timeout_ms=5_000)
    client.load_markets()
    return client


@pytest.fixture
def state_path(tmp_path: Path) -> Path:
    """Where the tests keep the paper account."""
    return tmp_path / "paper" / "exchange.json"


def test_restart_carries_on_orders_positions_balances_history_and_clock(state_path: Path) -> None:
    # cliOrdIds blocked for ever and resting orders filled at once keep this test about persistence
    kind = {"cli_ord_id_scope": "history", "resting_fill": "full"}
    with boot(state_path, **kind) as first:
        client = connect(first)
        entry = client.create_order(BTC, "market", "buy", 0.1, None, {"clientOrderId": "entry-1"})
        client.create_order(ETH, "market", "sell", 2)
        bid = float(first.admin.quote(ETH)["bid"])  # type: ignore[arg-type]
        resting = client.create_order(ETH, "limit", "buy", 1.5, round(bid - 60, 1), {"clientOrderId": "rest-1"})
        stop_price = int(entry["average"] * 0.9)
        stop = client.create_order(BTC, "market", "sell", 0.1, None, {"stopLossPrice": stop_price})
        with pytest.raises(ccxt.OrderImmediatelyFillable):  # rejected, yet every order received is kept
            client.create_order(BTC, "limit", "buy", 0.01, entry["average"] + 500, {"postOnly": True})
        first.admin.step(seconds=90)
        late = client.create_order(ETH, "market", "buy", 0.5, None, {"clientOrderId": "late-1"})
        before = {
            "account": account(first),
            "positions": client.fetch_positions(),
            "balance": client.fetch_balance()["USD"],
            "open": client.fetch_open_orders(),
            "trades": client.fetch_my_trades(),
            "closed": client.fetch_closed_orders(),
            "quote": first.admin.quote(BTC),
            "candles": client.fetch_ohlcv(BTC, "1m", since=START - 30 * 60_000, params={"to": START // 1000 + 90}),
        }
    assert state_path.exists()

    with boot(state_path, start_time_ms=None, **kind) as second:  # the saved time wins over any start time
        client = connect(second)
        assert second.admin.now()["now"] == START + 90_000
        assert account(second) == before["account"]
        assert client.fetch_positions() == before["positions"]
        assert client.fetch_balance()["USD"] == before["balance"]
        assert client.fetch_open_orders() == before["open"]
        assert {o["id"] for o in before["open"]} == {resting["id"], stop["id"]}
        assert client.fetch_my_trades() == before["trades"]
        assert client.fetch_closed_orders() == before["closed"]
        assert second.admin.quote(BTC) == before["quote"]
        candles = client.fetch_ohlcv(BTC, "1m", since=START - 30 * 60_000, params={"to": START // 1000 + 90})
        assert candles == before["candles"]
        rejected = [o for o in second.admin.orders() if o["state"] == "rejected"]
        assert [o["status"] for o in rejected] == ["postWouldExecute"]
        # closed less than 5 s ago: still visible in orders/status, then gone like on Kraken
        [status] = client.fetch_orders(params={"cliOrdIds": "late-1"})
        assert status["id"] == late["id"] and status["status"] == "closed"
        second.admin.step(seconds=6)
        assert client.fetch_orders(params={"cliOrdIds": "late-1"}) == []
        # client order ids stay used; new orders get new ids
        for used in ("entry-1", "rest-1", "late-1"):
            with pytest.raises(ccxt.DuplicateOrderId):
                client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": used})
        fresh = client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "entry-2"})
        ids = [o["order_id"] for o in second.admin.orders()]
        assert fresh["id"] not in ids[:-1] and len(set(ids)) == len(ids)
        # the restored book keeps working: the resting order fills, the stop fires
        second.admin.set_price(ETH, bid - 100)
        assert client.fetch_open_orders() == [o for o in before["open"] if o["id"] == stop["id"]]
        second.admin.set_price(BTC, stop_price - 500)
        assert client.fetch_open_orders() == []
        [position] = client.fetch_positions()  # ETH: short 2, bought 0.5 + 1.5; BTC: 0.1 + 0.01 - 0.1 stopped
        assert position["symbol"] == BTC and position["contracts"] == pytest.approx(0.01)


def test_every_request_kind_persists(state_path: Path) -> None:
    with boot(state_path) as first:
        client = connect(first)
        bid = float(first.admin.quote(BTC)["bid"])  # type: ignore[arg-type]
        batch = client.create_orders([
            {"symbol": BTC, "type": "limit", "side": "buy", "amount": 0.01, "price": bid - 100},
            {"symbol": BTC, "type": "limit", "side": "buy", "amount": 0.02, "price": bid - 200,
             "params": {"clientOrderId": "batch-2"}},
        ])
        edited = client.edit_order(batch[0]["id"], BTC, "limit", "buy", 0.03, bid - 150)
        client.cancel_order(batch[1]["id"])
        client.cancel_all_orders_after(60_000)
        expected = account(first)
    with boot(state_path) as second:
        client = connect(second)
        assert account(second) == expected
        [working] = client.fetch_open_orders()
        assert working["id"] == edited["id"] and working["amount"] == 0.03
        assert float(working["info"]["limitPrice"]) == bid - 150
        second.admin.step(seconds=61)  # the dead man's switch armed before the restart still fires
        assert client.fetch_open_orders() == []


def test_clock_continues_from_the_saved_time_with_a_real_clock(state_path: Path) -> None:
    with boot(state_path, clock="real", speed=1000.0) as first:
        connect(first).create_order(BTC, "market", "buy", 0.01)
    saved = json.loads(state_path.read_text())["clock"]["now"]
    assert saved > START
    with boot(state_path, clock="real", speed=1000.0) as second:
        now = second.admin.now()["now"]
        assert saved <= now < saved + 60_000  # continues (1000x) from the saved time, no jump back or to today
        [position] = connect(second).fetch_positions()
        assert position["contracts"] == 0.01


def test_same_seed_and_state_give_the_same_future_path(state_path: Path, tmp_path: Path) -> None:
    with boot(state_path) as first:
        first.admin.step(seconds=600)
    copy = tmp_path / "copy.json"
    shutil.copy(state_path, copy)
    paths = []
    for path in (state_path, copy):
        with boot(path) as sim:
            sim.admin.step(seconds=900)
            client = connect(sim)
            paths.append(client.fetch_ohlcv(ETH, "1m", since=START, params={"to": START // 1000 + 1500}))
    assert paths[0] == paths[1] and len(paths[0]) == 25


def test_reset_overwrites_the_saved_state(state_path: Path) -> None:
    with boot(state_path) as first:
        client = connect(first)
        client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "gone-1"})
        first.admin.step(seconds=30)
        first.admin.reset()
        assert json.loads(state_path.read_text())["orders"] == []
    with boot(state_path) as second:
        client = connect(second)
        assert second.admin.orders() == [] and client.fetch_positions() == []
        assert second.admin.now()["now"] == START
        client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "gone-1"})


def test_state_file_is_json_with_a_version_and_no_keys(state_path: Path) -> None:
    with boot(state_path) as sim:
        connect(sim).create_order(BTC, "market", "buy", 0.01)
    text = state_path.read_text()
    data = json.loads(text)
    assert data["format"] == "kraken-futures-simulator-state" and data["version"] == STATE_VERSION
    assert set(data) == {"format", "version", "saved_at", "config", "clock", "account", "market", "orders",
                         "fills", "order_history", "trigger_history", "order_requests", "account_log"}
    assert KEY not in text and SECRET not in text
    assert not list(state_path.parent.glob("*.tmp"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is corrupt"),
        ('{"format": "kraken-futures-simulator-state", "version": 99}', "has version 99"),
        ('{"version": 1}', "is not a simulator state file"),
        ("", "is corrupt"),
    ],
)
def test_unusable_state_file_is_a_clear_error(state_path: Path, content: str, message: str) -> None:
    state_path.parent.mkdir(parents=True)
    state_path.write_text(content)
    with pytest.raises(StateFileError, match=message) as raised:
        boot(state_path)
    assert str(state_path) in str(raised.value)
    assert state_path.read_text() == content  # never overwritten by a fresh start


def test_truncated_or_mismatched_state_is_a_clear_error(state_path: Path) -> None:
    with boot(state_path) as sim:
        connect(sim).create_order(BTC, "market", "buy", 0.01)
    good = state_path.read_text()
    state_path.write_text(good[: len(good) // 2])
    with pytest.raises(StateFileError, match="is corrupt"):
        boot(state_path)
    data = json.loads(good)
    del data["orders"]
    state_path.write_text(json.dumps(data))
    with pytest.raises(StateFileError, match="cannot be loaded: missing 'orders'"):
        boot(state_path)
    state_path.write_text(good)
    with pytest.raises(StateFileError, match="markets not configured: PF_XBTUSD"):
        boot(state_path, symbols=["ETH/USD:USD"])
    assert state_path.read_text() == good


def test_cli_reports_an_unusable_state_file(state_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from simulator.cli import main

    state_path.parent.mkdir(parents=True)
    state_path.write_text("garbage")
    assert main(["--port", "0", "--state-file", str(state_path)]) == 1
    assert f"simulator state file {state_path} is corrupt" in capsys.readouterr().err


@pytest.fixture
def cli_process(state_path: Path) -> Iterator[tuple[subprocess.Popen[str], ccxt.krakenfutures]]:
    """`python -m simulator --state-file ...` (real clock) and a ccxt client for it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "simulator", "--port", "0", "--seed", "5", "--no-rate-limit", "--api-key", KEY,
         "--api-secret", SECRET, "--state-file", str(state_path)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "listening on http://127.0.0.1:" in first, first
        client = make_kraken_client(first.rsplit(" ", 1)[1].strip(), KEY, SECRET, timeout_ms=5_000)
        client.load_markets()
        yield process, client
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def test_sigkill_right_after_an_acknowledged_order_keeps_it(
    state_path: Path, cli_process: tuple[subprocess.Popen[str], ccxt.krakenfutures]
) -> None:
    process, client = cli_process
    order = client.create_order(BTC, "market", "buy", 0.05, None, {"clientOrderId": "acked-1"})
    assert order["status"] == "closed"
    process.send_signal(signal.SIGKILL)  # no chance to save on the way out
    assert process.wait(timeout=10) == -signal.SIGKILL
    with boot(state_path, seed=5, cli_ord_id_scope="history") as sim:  # "history": the saved cliOrdId index counts
        client = connect(sim)
        [saved] = sim.admin.orders(cli_ord_id="acked-1")
        assert saved["order_id"] == order["id"] and saved["state"] == "filled"
        assert client.fetch_positions()[0]["contracts"] == 0.05
        sim.admin.step(ms=sim.config.history_lag_ms + 1)
        assert any(o["id"] == order["id"] for o in client.fetch_closed_orders())
        with pytest.raises(ccxt.DuplicateOrderId):
            client.create_order(BTC, "market", "buy", 0.05, None, {"clientOrderId": "acked-1"})


def test_sigterm_saves_everything_on_the_way_out(
    state_path: Path, cli_process: tuple[subprocess.Popen[str], ccxt.krakenfutures]
) -> None:
    process, client = cli_process
    ids = [client.create_order(ETH, "market", "buy", 0.1, None, {"clientOrderId": f"burst-{i}"})["id"]
           for i in range(5)]  # faster than the 0.5 s gap: only the first is saved before its answer
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    with boot(state_path, seed=5) as sim:
        assert [o["order_id"] for o in sim.admin.orders()] == ids
        assert connect(sim).fetch_positions()[0]["contracts"] == pytest.approx(0.5)


class FakeTime:
    """A hand-moved monotonic clock for the saver's timing rules."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        """Current fake monotonic seconds."""
        return self.now


def test_request_saves_are_at_most_one_per_gap_and_the_rest_deferred(tmp_path: Path) -> None:
    clock = SteppedClock(START)
    exchange = Exchange(MarketData(INSTRUMENTS, 1, START), clock, INSTRUMENTS, Decimal(100_000), seed=1)
    fake = FakeTime()
    store = StateStore(tmp_path / "s.json", lambda: exchange, {}, interval_s=2.0, gap_s=0.5, monotonic=fake)
    order = {"orderType": "mkt", "symbol": "PF_XBTUSD", "side": "buy", "size": "0.01"}

    exchange.send_order(order)
    store.after_change()  # no request saved yet: saved before the answer
    assert store.saves == 1
    fake.now += 0.1
    exchange.send_order(order)
    store.after_change()  # 0.1 s after the last request save: deferred to the saver thread
    assert store.saves == 1
    assert store._next_due(fake.now, float("inf"))[0] is False
    fake.now += 0.4
    assert store._next_due(fake.now, float("inf"))[0] is True
    assert store.save() is True and store.saves == 2
    assert store.save() is False  # nothing changed since
    clock.advance(1000)
    assert store.save() is True  # the clock moved: periodic saves carry it
    assert len(json.loads((tmp_path / "s.json").read_text())["orders"]) == 2
    store.close()
    assert store.save(force=True) is False  # closed: a late request can no longer overwrite a newer file


def test_saver_thread_saves_deferred_requests(state_path: Path) -> None:
    with boot(state_path, clock="real", state_save_interval_s=60.0, state_save_gap_s=0.2) as sim:
        store = sim.simulator.state_store
        assert store is not None
        client = connect(sim)
        ids = [client.create_order(BTC, "market", "buy", 0.01)["id"] for _ in range(3)]
        for _ in range(5):  # the first order saved before its answer, the others within the gap
            if [o["order_id"] for o in json.loads(state_path.read_text())["orders"]] == ids:
                break
            assert store.wait_for_saves(store.saves + 1, timeout_s=10)
        assert [o["order_id"] for o in json.loads(state_path.read_text())["orders"]] == ids


def test_saver_thread_saves_the_moving_clock(state_path: Path) -> None:
    with boot(state_path, clock="real", speed=100.0, state_save_interval_s=0.05) as sim:
        store = sim.simulator.state_store
        assert store is not None
        first = json.loads(state_path.read_text())["clock"]["now"]
        assert store.wait_for_saves(store.saves + 2, timeout_s=10)  # nothing traded: the clock alone is saved
        assert json.loads(state_path.read_text())["clock"]["now"] > first


def test_one_state_file_serves_one_simulator_at_a_time(state_path: Path) -> None:
    with boot(state_path), pytest.raises(StateFileError, match="in use by another simulator"):
        boot(state_path)
    with boot(state_path):  # released on stop
        pass


def test_save_cost_with_thousands_of_orders(tmp_path: Path) -> None:
    clock = SteppedClock(START)
    market = MarketData(INSTRUMENTS, 1, START, tick_ms=60_000)  # minute ticks: a day of bars in no time
    exchange = Exchange(market, clock, INSTRUMENTS, Decimal(10**9), seed=1)
    clock.advance(86_400_000)  # a day of minute bars in all 8 markets, all of it kept (1440 minutes)
    for i in range(5000):
        symbol = "PF_XBTUSD" if i % 2 else "PF_ETHUSD"
        if i % 3:
            exchange.send_order({"orderType": "mkt", "symbol": symbol, "side": "buy", "size": "0.01",
                                 "cliOrdId": f"c{i}"})
        else:
            bid = exchange.market.quote(symbol).bid
            placed = exchange.send_order({"orderType": "lmt", "symbol": symbol, "side": "buy", "size": "0.01",
                                          "limitPrice": str(bid - 100)})
            exchange.cancel_order({"order_id": placed["order_id"]})
    store = StateStore(tmp_path / "s.json", lambda: exchange, {})
    started = time.perf_counter()
    store.save()
    first = time.perf_counter() - started
    costs = []
    for _ in range(5):
        exchange.send_order({"orderType": "mkt", "symbol": "PF_XBTUSD", "side": "buy", "size": "0.01"})
        started = time.perf_counter()
        store.save()
        costs.append(time.perf_counter() - started)
    print(f"\nstate file with 5000 orders and a day of bars: {store.last_size / 1e6:.1f} MB, first save "
          f"{first * 1000:.0f} ms, then {min(costs) * 1000:.1f} ms (median {sorted(costs)[2] * 1000:.1f} ms)")
    assert min(costs) < 0.25
