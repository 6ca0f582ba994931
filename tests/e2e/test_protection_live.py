"""Stop-loss and take-profit on the exchange, end to end: running actors, the real ccxt client, the simulator.

What rests on the exchange is read back through ccxt (fetch_open_orders), what was sent from the simulator's own
record of every order request.
"""

from __future__ import annotations

import signal as posix_signal
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from messages import EventKind, QueryEvents, SignalKind
from tests.conftest import make_config
from tests.e2e.conftest import BTC, ccxt_client, placed, quiet, ready, signal
from tests.helpers import wait_until

T0 = 1_800_000_000_000
PROTECTED = {"enabled": True, "stop_loss_pct": 2, "take_profit_pct": 3, "trigger_signal": "mark"}

pytestmark = pytest.mark.timeout(90)


def protective_orders(sim) -> list[dict]:
    """The trigger orders resting (untriggered) on the simulator, from its own record: waiting on it costs no
    request budget (the bot and the test share the account's)."""
    kinds = {"stp": "stop", "take_profit": "take_profit"}
    return [{"type": kinds[o["orderType"]], "id": o["order_id"], "clientOrderId": o["cliOrdId"], "side": o["side"],
             "amount": o["size"], "triggerPrice": o["stopPrice"], "reduceOnly": o["reduceOnly"]}
            for o in sim.admin.orders() if o["orderType"] in kinds and o["state"] == "untriggered"]


def parsed_by_ccxt(sim) -> list[dict]:
    """Our resting trigger orders as ccxt parses them from Kraken's openorders."""
    return [o for o in ccxt_client(sim).fetch_open_orders(BTC) if o.get("triggerPrice") or o.get("stopPrice")]


def position_size(sim) -> Decimal:
    return sum((Decimal(p["size"]) for p in sim.admin.state()["positions"] if p["symbol"] == "PF_XBTUSD"),
               Decimal(0))


def protected_system(live_system, **trading):
    config = make_config(protection=PROTECTED, trading={"position_sync_interval_s": 0.5, **trading},
                         risk={"max_notional_per_order": 20_000, "max_total_notional": 20_000})
    return ready(live_system(config=config))


def test_an_entry_fill_puts_a_reduce_only_stop_and_take_profit_sized_to_it_on_the_exchange(sim, live_system) -> None:
    system = protected_system(live_system)
    system.symbol_actors()[BTC].tell(signal(t=T0))
    wait_until(lambda: len(protective_orders(sim)) == 2, timeout=20, message="stop and take-profit resting")
    size = position_size(sim)
    assert size > 0
    orders = {o["type"]: o for o in parsed_by_ccxt(sim)}
    entry = Decimal(str(ccxt_client(sim).fetch_positions([BTC])[0]["entryPrice"]))
    stop, take = orders["stop"], orders["take_profit"]
    for order in (stop, take):
        assert order["side"] == "sell" and order["reduceOnly"] is True
        assert Decimal(str(order["amount"])) == size
        assert order["clientOrderId"]
    assert Decimal(str(stop["triggerPrice"])) <= entry * Decimal("0.98")
    assert Decimal(str(take["triggerPrice"])) >= entry * Decimal("1.03")
    quiet(system)
    status = system.status().symbols[0]
    assert {p.kind for p in status.protection} == {"STOP_LOSS", "TAKE_PROFIT"} and not status.protection_problem


def test_the_price_crossing_the_stop_closes_the_position_and_the_take_profit_is_cancelled(sim, live_system) -> None:
    system = protected_system(live_system)
    system.symbol_actors()[BTC].tell(signal(t=T0))
    wait_until(lambda: len(protective_orders(sim)) == 2, timeout=20, message="stop and take-profit resting")
    sim.admin.set_price(BTC, move_pct=-5)  # through the stop (2% below the entry)
    wait_until(lambda: position_size(sim) == 0, timeout=20, message="the stop closed the position")
    wait_until(lambda: protective_orders(sim) == [], timeout=20, message="the take-profit cancelled")
    quiet(system)
    events = system.persistence.ask(QueryEvents(kind=EventKind.PROTECTION.value), timeout=5)
    assert any("closed by stop-loss on the exchange" in e.detail for e in events)
    status = system.status().symbols[0]
    assert status.position is not None and not status.position.is_open and status.protection == ()


def test_a_strategy_exit_closes_the_position_and_cancels_both_never_reversing(sim, live_system) -> None:
    system = protected_system(live_system)
    system.symbol_actors()[BTC].tell(signal(t=T0))
    wait_until(lambda: len(protective_orders(sim)) == 2, timeout=20, message="stop and take-profit resting")
    system.symbol_actors()[BTC].tell(signal(t=T0 + 60_000, kind=SignalKind.EXIT))
    wait_until(lambda: position_size(sim) == 0, timeout=20, message="the exit closed the position")
    wait_until(lambda: protective_orders(sim) == [], timeout=20, message="both protective orders cancelled")
    quiet(system)
    assert position_size(sim) == 0  # flat, not short: the stop and the exit are reduce-only
    sends = [o for o in placed(sim) if o["orderType"] in ("stp", "take_profit")]
    assert len(sends) == 2  # one stop, one take-profit: none placed twice


def test_more_fills_of_a_resting_entry_resize_the_stop(sim, live_system) -> None:
    """A limit entry that fills in parts: the stop follows the position, resized by editorder, never doubled."""
    market = Decimal(str(ccxt_client(sim).fetch_ticker(BTC)["last"]))
    # 9,000 USD of BTC is about three best levels: a resting buy fills one level a tick (simulator rule 7)
    system = protected_system(live_system, order_type="limit", limit_offset_bps=0, order_notional=9000)
    system.symbol_actors()[BTC].tell(signal(t=T0, price=str((market * Decimal("0.99")).quantize(Decimal(1)))))
    wait_until(lambda: placed(sim), timeout=20, message="the entry rests")
    limit = Decimal(str(placed(sim)[0]["limitPrice"]))
    sim.admin.set_price(BTC, price=float(limit) * 0.998)  # the market comes down to it: fills over several ticks
    wait_until(lambda: position_size(sim) > 0 and protective_orders(sim), timeout=30, message="first part protected")
    wait_until(lambda: protective_orders(sim) and Decimal(str(protective_orders(sim)[0]["amount"]))
               == position_size(sim) == Decimal(str(placed(sim)[0]["size"])), timeout=30,
               message="the stop resized to the whole fill")
    assert len([o for o in placed(sim) if o["orderType"] == "stp"]) == 1
    stop_id = next(o["cliOrdId"] for o in placed(sim) if o["orderType"] == "stp")
    edits = sim.admin.order_requests(cli_ord_id=stop_id, kind="edit")
    assert edits and all(e["status"] == "edited" for e in edits), edits  # resized in place, never re-placed


KILLED_BOT = textwrap.dedent(
    """
    import os, signal, sys, time
    sys.path.insert(0, {repo!r})
    from actors import TradingSystem, gateway_settings_for
    from exchange import load_market_specs, make_kraken_client
    from exchange.budget import CostBudget
    from exchange.clock import ServerClock
    from tests.e2e.conftest import FAST_WINDOWS, signal as make_signal
    from tests.conftest import make_config
    config = make_config(**{config!r})
    public = make_kraken_client({url!r}, timeout_ms=1500)
    private = make_kraken_client({url!r}, {key!r}, {secret!r}, timeout_ms=1500)
    markets = load_market_specs(public, config.trading.symbols)
    private.load_markets()
    clock = ServerClock(public)
    system = TradingSystem(config=config, database_url={db!r}, private_exchange=private, public_exchange=None,
                           markets=markets, candle_clock=clock, budget=CostBudget(),
                           gateway_settings=gateway_settings_for(config, poll_interval_s=0.1, **FAST_WINDOWS)).start()
    from messages import GetStatus, SymbolState
    ref = system.symbol_actors()[{symbol!r}]
    deadline = time.monotonic() + 30
    while ref.ask(GetStatus(), timeout=5).state is SymbolState.SYNCING and time.monotonic() < deadline:
        time.sleep(0.02)
    ref.tell(make_signal(t={t}))
    while time.monotonic() < deadline:
        rows = [o for o in private.fetch_open_orders({symbol!r}) if o.get("triggerPrice")]
        if len(rows) == 2:
            print("PROTECTED", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)  # no stop, no flush: the process is gone with its position open
        time.sleep(0.05)
    print("NOT PROTECTED", flush=True)
    os._exit(3)
    """
)


def test_killed_with_a_position_the_stop_closes_it_and_the_restart_is_flat_with_the_take_profit_cancelled(
        sim, live_system, sqlite_url) -> None:
    config = {"protection": PROTECTED, "trading": {"position_sync_interval_s": 0.5},
              "risk": {"max_notional_per_order": 20_000, "max_total_notional": 20_000}}
    script = KILLED_BOT.format(repo=str(Path(__file__).resolve().parents[2]), config=config, url=sim.base_url,
                               key=sim.api_key, secret=sim.api_secret, db=sqlite_url, symbol=BTC, t=T0)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == -posix_signal.SIGKILL and result.stdout.split() == ["PROTECTED"], \
        result.stderr[-3000:]
    take_profit = next(o for o in protective_orders(sim) if o["type"] == "take_profit")
    sim.admin.set_price(BTC, move_pct=-5)  # the bot is down; the exchange's stop closes the position
    wait_until(lambda: position_size(sim) == 0, timeout=20, message="the stop closed the position")
    assert [o["id"] for o in protective_orders(sim)] == [take_profit["id"]]  # left behind by the dead bot

    system = live_system(config=make_config(**config), database_url=sqlite_url)
    wait_until(lambda: protective_orders(sim) == [], timeout=30, message="the orphaned take-profit cancelled")
    ready(system)
    quiet(system)
    status = system.status()
    row = status.symbols[0]
    assert row.position is not None and not row.position.is_open and row.protection == ()
    events = system.persistence.ask(QueryEvents(kind=EventKind.PROTECTION.value), timeout=5)
    assert any("closed by stop-loss on the exchange" in e.detail for e in events)
    assert status.realized_pnl is not None and status.realized_pnl < 0  # the stop's loss is booked
    system.symbol_actors()[BTC].tell(signal(t=T0))  # the old signal again: never a re-entry
    quiet(system)
    entries = [o for o in placed(sim) if o["orderType"] in ("mkt", "lmt")]
    assert len(entries) == 1 and position_size(sim) == 0


def test_a_stop_cancelled_on_the_exchange_behind_the_bots_back_is_proven_cancelled_and_replaced(
        sim, live_system) -> None:
    """Cancelled before it fired, a trigger order appears only in Kraken's trigger history (/history/v2/triggers):
    the gateway proves its end there, and the symbol places the next generation while the position is open."""
    sim.simulator.api.status_window_ms = 0  # orders/status forgets it at once: only the histories can tell
    system = protected_system(live_system)
    system.symbol_actors()[BTC].tell(signal(t=T0))
    wait_until(lambda: len(protective_orders(sim)) == 2, timeout=20, message="stop and take-profit resting")
    stop = next(o for o in protective_orders(sim) if o["type"] == "stop")
    ccxt_client(sim).cancel_order(stop["id"], BTC)  # by hand, or by a dead man's switch
    wait_until(lambda: any(o["type"] == "stop" and o["id"] != stop["id"] for o in protective_orders(sim)),
               timeout=30, message="a new stop resting")
    quiet(system)
    stops = [o for o in protective_orders(sim) if o["type"] == "stop"]
    assert len(stops) == 1 and stops[0]["clientOrderId"] != stop["clientOrderId"]
    assert Decimal(str(stops[0]["amount"])) == position_size(sim)


def test_the_dead_mans_switch_cancels_resting_orders_once_the_bot_stops_heart_beating(sim, live_system) -> None:
    """The running system arms Kraken's switch and pushes it back every heartbeat; stopped (as after a crash: no
    cancel on the way down), the exchange cancels its resting orders when the countdown runs out."""
    config = make_config(protection={"dead_man_timeout_s": 2, "heartbeat_interval_s": 1},
                         trading={"order_type": "limit", "limit_offset_bps": 500})
    system = ready(live_system(config=config))
    system.symbol_actors()[BTC].tell(signal(t=T0))  # 5 % under the signal price: it rests
    wait_until(lambda: [o for o in sim.admin.orders() if o["state"] == "open"], timeout=20, message="resting")
    wait_until(lambda: sim.simulator.exchange.dead_man_ms is not None, timeout=10, message="the switch armed")
    armed_at = sim.simulator.exchange.dead_man_ms
    wait_until(lambda: (sim.simulator.exchange.dead_man_ms or 0) > armed_at, timeout=10, message="pushed back")
    assert [o for o in sim.admin.orders() if o["state"] == "open"]  # heart-beating: the order stays
    system.stop()  # no more heartbeats
    wait_until(lambda: not [o for o in sim.admin.orders() if o["state"] == "open"], timeout=10,
               message="cancelled by the dead man's switch")
    (order,) = sim.admin.orders()
    assert order["reason"] == "dead_man_switch"


def test_a_trailing_stop_loss_follows_the_price_up_and_closes_the_position_on_the_way_back(sim, live_system) -> None:
    config = make_config(protection={"enabled": True, "trailing_stop_pct": 2, "take_profit_pct": 50},
                         trading={"position_sync_interval_s": 0.5})
    system = ready(live_system(config=config))
    system.symbol_actors()[BTC].tell(signal(t=T0))
    wait_until(lambda: any(o["orderType"] == "trailing_stop" and o["state"] == "untriggered"
                           for o in sim.admin.orders()), timeout=20, message="a trailing stop resting")
    (order,) = [o for o in sim.admin.orders() if o["orderType"] == "trailing_stop"]
    assert order["reduceOnly"] and order["side"] == "sell" and Decimal(order["size"]) == position_size(sim)
    sim.admin.set_price(BTC, move_pct=4)  # up: the stop moves up behind it
    sim.admin.set_price(BTC, move_pct=-3)  # back 3 %: through the trailed stop (2 % below the top), not the start
    wait_until(lambda: position_size(sim) == 0, timeout=20, message="the trailing stop closed the position")
    wait_until(lambda: protective_orders(sim) == [], timeout=20, message="the take-profit cancelled")
    fills = [f for f in sim.admin.state()["fills"] if f["side"] == "sell"]
    entry = Decimal(str(next(f for f in sim.admin.state()["fills"] if f["side"] == "buy")["price"]))
    assert Decimal(str(fills[0]["price"])) > entry  # it closed in profit: the stop had trailed up
