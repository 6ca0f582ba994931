"""The report commands end to end: a paper bot process (scripted strategy) trading on a simulator process, read
with `run.py trades|orders|pnl|why|markets` (tables and --json) and checked against its database and the exchange."""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from exchange.client import make_kraken_client
from tests.e2e.soak import SYMBOLS
from tests.e2e.test_cli_control import CliSession, reconciled, wait_for


def fills_in(db: Path) -> list[tuple]:
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute("SELECT fill_id, symbol, side, amount, price, fee FROM fill ORDER BY id").fetchall()
    except sqlite3.Error:
        return []
    finally:
        conn.close()


def query(db: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


@pytest.mark.timeout(240)
def test_trades_orders_pnl_why_and_markets_of_a_running_paper_system(tmp_path: Path) -> None:
    with CliSession(tmp_path, seed=5) as session:
        run, cli = session.run, session.cli
        db = run.database()
        bot = session.start_bot()
        wait_for(lambda: reconciled(cli), 30, "the bot to run and reconcile")
        wait_for(lambda: len(fills_in(db)) >= 4, 90, "a few fills")
        assert cli("pause", "--all").returncode == 0
        wait_for(lambda: run.unfinished() == [], 60, "every intent final")
        stored = fills_in(db)
        # trades: every fill of the database, as the exchange made them
        result = cli("trades", "--json", "--limit", "10000")
        assert result.returncode == 0, result.stderr
        trades = json.loads(result.stdout)["rows"]
        assert [(t["fill_id"], t["symbol"], t["side"], Decimal(t["amount"]), Decimal(t["price"]))
                for t in trades] == [(f[0], f[1], f[2], Decimal(f[3]), Decimal(f[4])) for f in stored]
        exchange_fills = {f["fill_id"] for f in run.admin.state()["fills"]} if "fills" in run.admin.state() else None
        if exchange_fills is not None:
            assert {t["fill_id"] for t in trades} <= exchange_fills
        assert all(t["time"].endswith("Z") and "E" not in t["price"] for t in trades)
        table = cli("trades")
        assert table.returncode == 0 and "E+" not in table.stdout and f"{len(stored)} fills" in table.stdout
        # orders: the database's, with their intents' kinds; none open once every intent is final
        orders = json.loads(cli("orders", "--json", "--limit", "10000").stdout)["rows"]
        assert len(orders) == query(db, 'SELECT COUNT(*) FROM "order"')[0][0]
        assert {o["kind"] for o in orders} <= {"entry", "exit", "stop-loss", "take-profit", "external"}
        assert "entry" in {o["kind"] for o in orders}
        assert json.loads(cli("orders", "--open", "--json").stdout)["rows"] == [
            o for o in orders if o["open"]][-50:]
        assert cli("orders").returncode == 0
        # pnl: per symbol equals the store's running totals; per day adds up to the same (once every fill's fee is
        # booked: the account log shows a fee after its fill, and two reads could straddle its arrival)
        wait_for(lambda: query(db, "SELECT COUNT(*) FROM fill WHERE fee_currency IS NULL")[0][0] == 0, 60,
                 "every fill's fee booked")
        by_symbol = json.loads(cli("pnl", "--json").stdout)
        totals = dict(query(db, "SELECT symbol, realized FROM pnl_total"))
        for row in by_symbol["rows"]:
            assert Decimal(row["net"]) == Decimal(totals[row["symbol"]])
        by_day = json.loads(cli("pnl", "--by", "day", "--json").stdout)
        assert by_day["total"] == by_symbol["total"]
        assert "total" in cli("pnl").stdout
        # why: the newest decisions of one symbol, newest first; the pause is among them
        symbol = stored[0][1]
        why = json.loads(cli("why", symbol, "--json", "--limit", "50").stdout)["rows"]
        assert why and [w["time"] for w in why] == sorted((w["time"] for w in why), reverse=True)
        assert any(w["event"] == "CONTROL" and "pause" in w["detail"] for w in why)
        assert any(w["event"] == "INTENT_CLAIMED" for w in why) or len(why) == 50
        human = cli("why", symbol)
        assert human.returncode == 0 and "Z " in human.stdout
        # markets: the simulator's listing, the traded ones marked
        markets = json.loads(cli("markets", "--json").stdout)
        traded = {m["symbol"] for m in markets["rows"] if m["traded"]}
        assert traded == set(SYMBOLS) and sorted(markets["traded"]) == sorted(SYMBOLS)
        btc = next(m for m in markets["rows"] if m["symbol"] == "BTC/USD:USD")
        assert btc["exchange_id"] == "PF_XBTUSD" and Decimal(btc["amount_step"]) > 0
        assert "PF_XBTUSD" in cli("markets").stdout
        # an unknown symbol names the traded ones
        unknown = cli("why", "NOPE/USD:USD")
        assert unknown.returncode == 1 and "unknown symbol" in unknown.stderr and "BTC/USD:USD" in unknown.stderr
        # stop --flatten, through the endpoint of the running process: it closes the positions and cancels the
        # orders before it stops, and the exchange (read through ccxt, not the system's word) agrees
        stopped = cli("stop", "--flatten")
        assert stopped.returncode == 0 and "nothing stays on the exchange" in stopped.stdout, stopped.stdout
        assert bot.wait(60) == 0
        exchange = make_kraken_client(run.base_url, run.api_key, run.api_secret)
        assert exchange.fetch_open_orders() == []
        assert [p for p in exchange.fetch_positions() if float(p.get("contracts") or 0) != 0] == []
        assert cli("trades").returncode == 3  # nothing running
    assert "Traceback" not in (tmp_path / "bot.log").read_text()
