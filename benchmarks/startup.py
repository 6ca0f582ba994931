#!/usr/bin/env python3
"""Start-up and status cost against history size, beside same-run floors.

Builds SQLite databases (WAL, synchronous=FULL, the store's own schema) holding 10k, 100k and 1M
intent rows over the last day across 5 symbols (most final, a few open, a few FILLED whose fills
are short), one order and one event per intent, and 1M fills spread over the filled intents, all
with raw executemany. Then, in a fresh process per database (so its peak RSS is the start-up's):
(a) Store open (and, separately, open with the migration from schema 2 on a copy), (b) the
start-up asks through a running PersistenceActor: LoadOpenIntents(with_unbooked=True),
LoadSymbol for each of the 5 symbols, QueryPnl, and the status queries (QueryPnl + QueryEvents),
(c) peak RSS. Floors: a raw `SELECT count(*)` on the intent table and the process's RSS before
opening the database.

    python benchmarks/startup.py [--sizes 10000,100000,1000000] [--fills 1000000] [--no-migration]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import random
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SYMBOLS = [f"S{n}/USD:USD" for n in range(5)]
DAY_MS = 86_400_000
OPEN_INTENTS = 20  # not final
SHORT_INTENTS = 5  # FILLED, a fill missing: the unbooked query must find them


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(path: Path, intents: int, fills: int, seed: int = 1) -> float:
    """Create the store's schema, then bulk-insert the rows with raw executemany; returns seconds."""
    from messages import client_order_id_for
    from persistence import Store, open_database
    from persistence.store import _Sql, _Totals

    started = time.perf_counter()
    store = Store(open_database(f"sqlite:///{path}"))
    store.open()
    store.close()
    sql = _Sql(open_database(f"sqlite:///{path}"))
    rng = random.Random(seed)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=wal")
    conn.execute("PRAGMA synchronous=FULL")
    cur = conn.cursor()
    now = int(time.time() * 1000)
    filled_count = int(intents * 0.9)
    per_fill = Decimal("0.001")
    fills_each, extra = divmod(fills, filled_count)  # the first `extra` filled intents get one fill more
    totals = {s: _Totals() for s in SYMBOLS}
    cur.execute("BEGIN")
    intent_rows, order_rows, event_rows, fill_rows = [], [], [], []
    fill_no = 0

    def flush() -> None:
        cur.executemany(sql.claim, intent_rows)
        cur.executemany(sql.order_insert, order_rows)
        cur.executemany(sql.event_insert, event_rows)
        cur.executemany(sql.fill_insert, fill_rows)
        for rows in (intent_rows, order_rows, event_rows, fill_rows):
            rows.clear()

    for n in range(intents):
        symbol = SYMBOLS[n % len(SYMBOLS)]
        h = hashlib.sha256(str(n).encode()).hexdigest()
        cid = client_order_id_for(h)
        created = now - DAY_MS + n * DAY_MS // intents
        if n < filled_count:
            count = fills_each + (1 if n < extra else 0)
            amount = per_fill * count
            status, filled = "FILLED", amount
            booked = amount - per_fill if n >= filled_count - SHORT_INTENTS else amount
        elif n >= intents - OPEN_INTENTS:
            count, amount, status, filled, booked = 0, Decimal("0.01"), "ACCEPTED", Decimal(0), Decimal(0)
        else:
            count, amount = 0, Decimal("0.01")
            status, filled, booked = rng.choice(["CANCELED", "REJECTED"]), Decimal(0), Decimal(0)
        complete = status in ("FILLED", "CANCELED", "REJECTED") and booked >= filled
        intent_rows.append((h, cid, symbol, "ENTER_LONG", "buy", created, "10", str(amount), "100", False, "market",
                            None, created, status, str(filled), f"ex-{n}", None, created + 500, created + 10,
                            created + 30_010, 1, False, str(booked), complete))
        order_rows.append((cid, f"ex-{n}", h, "OURS", symbol, "buy", False, str(amount), str(filled), "100", status,
                           None, "", created, created + 500))
        event_rows.append((created, "ORDER_UPDATE", symbol, None, h, f"{status} buy cliOrdId={cid}"))
        booked_fills = int(booked / per_fill) if count else 0
        for _ in range(booked_fills):
            price = Decimal(rng.randint(9_000, 11_000)) / 100
            fill_rows.append((f"fill-{fill_no}", symbol, "buy", "0.001", str(price), "0.0001", f"ex-{n}", cid,
                              created + 400))
            totals[symbol] = totals[symbol].add("buy", per_fill, price, Decimal("0.0001"))
            fill_no += 1
        if len(intent_rows) >= 20_000 or len(fill_rows) >= 50_000:
            flush()
    flush()
    cur.executemany(sql.totals_upsert, [(s, str(t.position), str(t.entry), str(t.realized), str(t.fees),
                                         t.fill_count, now) for s, t in totals.items()])
    cur.execute("COMMIT")
    conn.close()
    return time.perf_counter() - started


def downgrade_to_v2(path: Path) -> None:
    """Make a copy look as schema version 2 left it: no booked columns, no totals, no new index."""
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in ('DROP INDEX "intent_fills_complete"', 'DROP INDEX "intent_symbol_created_at"',
                      'ALTER TABLE "intent" DROP COLUMN "booked"', 'ALTER TABLE "intent" DROP COLUMN "fills_complete"',
                      'DROP TABLE "pnl_total"', "UPDATE schema_info SET value = '2' WHERE key = 'version'"):
        conn.execute(statement)
    conn.close()


def measure(path: str, repeats: int) -> dict[str, float]:
    """In this (fresh) process: open, the start-up asks, status; peak RSS."""
    import logging

    from loguru import logger

    from actors.persistence import PersistenceActor
    from messages import LoadOpenIntents, LoadSymbol, QueryEvents, QueryPnl
    from persistence import Store, open_database

    logger.remove()
    logging.getLogger("pykka").setLevel(logging.WARNING)
    out: dict[str, float] = {"rss_before_mb": rss_mb()}
    conn = sqlite3.connect(path)
    t = time.perf_counter()
    intents = conn.execute('SELECT count(*) FROM "intent"').fetchone()[0]
    out["floor_count_ms"] = (time.perf_counter() - t) * 1000
    out["fills"] = conn.execute('SELECT count(*) FROM "fill"').fetchone()[0]
    conn.close()
    out["intents"] = intents
    t = time.perf_counter()
    store = Store(open_database(f"sqlite:///{path}"))
    store.open()
    out["open_ms"] = (time.perf_counter() - t) * 1000
    store.close()
    ref = PersistenceActor.start(open_database(f"sqlite:///{path}"))
    try:
        since = int(time.time() * 1000) - 2 * 86_400_000
        asks, status, loaded = [], [], {}
        for _ in range(repeats):
            t = time.perf_counter()
            records = ref.ask(LoadOpenIntents(with_unbooked=True), timeout=60)
            boots = [ref.ask(LoadSymbol(symbol=s, since=since), timeout=60) for s in SYMBOLS]
            pnl = ref.ask(QueryPnl(), timeout=60)
            asks.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            ref.ask(QueryPnl(), timeout=60)
            ref.ask(QueryEvents(symbol=SYMBOLS[0], limit=50), timeout=60)
            status.append((time.perf_counter() - t) * 1000)
            loaded = {"open_and_unbooked": len(records), "hashes": sum(len(b.recent_hashes) for b in boots),
                      "pnl_symbols": len(pnl)}
        out["startup_asks_ms"] = statistics.median(asks)
        out["startup_asks_first_ms"] = asks[0]
        out["status_ms"] = statistics.median(status)
        out.update(loaded)
    finally:
        ref.stop()
    out["system_reconciled_ms"] = system_start_ms(path)
    out["rss_peak_mb"] = rss_mb()
    return out


def system_start_ms(path: str) -> float:
    """The whole system started on this database (fake exchange, zero latency) until the portfolio is
    reconciled and trading: persistence open, gateway, portfolio with its symbol actors and their start-up
    loads, reconciliation of the open intents."""
    from actors import TradingSystem
    from configuration import AppConfig
    from exchange import load_market_specs
    from messages import GetStatus
    from tests.fakes import FakeExchange

    exchange = FakeExchange({s: (f"PF_S{n}USD", 0.001, 0.01, 100.0) for n, s in enumerate(SYMBOLS)})
    config = AppConfig.model_validate({"trading": {"symbols": SYMBOLS, "position_sync_interval_s": 3600},
                                       "strategy": {"name": "scripted"}})
    started = time.perf_counter()
    system = TradingSystem(config=config, database_url=f"sqlite:///{path}", private_exchange=exchange,
                           public_exchange=None, markets=load_market_specs(exchange, SYMBOLS)).start()
    try:
        while not system.portfolio.ask(GetStatus(), timeout=60).reconciled:
            time.sleep(0.002)
        return (time.perf_counter() - started) * 1000
    finally:
        system.stop()


def measure_in_child(path: Path, repeats: int) -> dict[str, float]:
    done = subprocess.run([sys.executable, __file__, "--measure", str(path), "--repeats", str(repeats)],
                          check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="intent rows per database, comma separated")
    parser.add_argument("--fills", type=int, default=1_000_000, help="fills per database")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-migration", action="store_true", help="skip the open-with-migration figure")
    parser.add_argument("--folder", default="", help="where to build (default: a temporary folder)")
    parser.add_argument("--measure", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.repeats)))
        return 0
    print(f"# start-up benchmark, {time.strftime('%Y-%m-%d')}, Python {platform.python_version()}, "
          f"{platform.machine()}, SQLite {sqlite3.sqlite_version} WAL synchronous=FULL")
    print(f"{'intents':>8} {'fills':>8} {'build s':>8} {'open ms':>8} {'migrate ms':>11} {'asks ms':>8} "
          f"{'1st ask':>8} {'status ms':>9} {'count(*)':>9} {'RSS MB':>7} {'base MB':>8} {'loaded':>24} "
          f"{'system->reconciled ms':>22}")
    with tempfile.TemporaryDirectory(dir=args.folder or None) as folder:
        for size in (int(s) for s in args.sizes.split(",")):
            path = Path(folder) / f"startup-{size}.db"
            built = build(path, size, args.fills)
            result = measure_in_child(path, args.repeats)
            migrate = float("nan")
            if not args.no_migration:
                old = Path(folder) / f"startup-{size}-v2.db"
                shutil.copy(path, old)
                downgrade_to_v2(old)
                migrate = measure_in_child(old, 1)["open_ms"]
                old.unlink()
            loaded = f"{result['open_and_unbooked']}o+u {result['hashes']}h {result['pnl_symbols']}pnl"
            print(f"{result['intents']:>8} {result['fills']:>8} {built:>8.1f} {result['open_ms']:>8.1f} "
                  f"{migrate:>11.0f} {result['startup_asks_ms']:>8.1f} {result['startup_asks_first_ms']:>8.1f} "
                  f"{result['status_ms']:>9.2f} {result['floor_count_ms']:>9.1f} {result['rss_peak_mb']:>7.0f} "
                  f"{result['rss_before_mb']:>8.0f} {loaded:>24} {result['system_reconciled_ms']:>22.0f}", flush=True)
            path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
