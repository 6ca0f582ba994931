#!/usr/bin/env python3
"""A close's signals to the gateway, intents per second through the running actors, beside same-run floors.

For 1, 10 and 300 symbols: a zero-latency in-process exchange (ccxt-shaped), durable SQLite (WAL,
synchronous=FULL). Each round, every symbol gets one new entry signal at once (as at a candle close), told one
after another from the close; latency is from the close to the gateway actor's receipt of the order ("handed to
the gateway") and to its create_order call ("wire"). A round starts from a quiet system: the previous round's
fills read (a batch's fills share one millisecond and come from the execution history once settled, about 7 s)
and the position sync that follows them handed to every symbol. intents/s is one close's intents over the close
to the last of them handed over (the median round); "worst close" is the slowest round's.

Floors, measured in the same run (the machine is shared): raw sqlite3 `executemany` of the same rows with the
same journal mode and synchronous setting (claims + one commit; then the FILLED update, order, fill and events +
one commit), and a pykka ask round trip. The latency floor is the claim commit of the round's rows plus two ask
round trips (the issue's definition); "+fan-out" is the claim commit, one ask, and one tell to each of N idle
actors passed on to one collector (what the actor model costs a close of N symbols before any work). The
throughput floor is the round's claims written raw. A store-only figure: ms per intent through Store.apply_batch
for the claim (SUBMITTED folded in) and the FILLED update with its fill and events, against the raw floor.

    python benchmarks/pipeline.py [--rounds-scale 1.0] [--database-url URL] [--store-only]
"""

from __future__ import annotations

import argparse
import platform
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pykka  # noqa: E402
from loguru import logger  # noqa: E402

from actors import TradingSystem  # noqa: E402
from actors.gateway import ExchangeGatewayActor  # noqa: E402
from actors.runner import freeze_startup_heap  # noqa: E402
from configuration import AppConfig  # noqa: E402
from exchange import load_market_specs  # noqa: E402
from messages import (  # noqa: E402
    ClaimIntent,
    Event,
    EventKind,
    Fill,
    GetInFlight,
    IntentRecord,
    OrderIntent,
    OrderState,
    OrderUpdate,
    Ping,
    PlaceOrder,
    PlaceOrders,
    Side,
    Signal,
    SignalKind,
    Tick,
    client_order_id_for,
    intent_hash,
)
from persistence import Store, open_database  # noqa: E402
from persistence.store import _Sql, intent_row  # noqa: E402
from tests.fakes import FakeExchange  # noqa: E402

T0 = 1_800_000_000_000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


# --- floors ------------------------------------------------------------------------------------

class _Echo(pykka.ThreadingActor):
    def on_receive(self, message: object) -> object:
        return True


def ask_floor(count: int = 3000) -> tuple[float, float]:
    """pykka ask round trip to an idle actor: p50, p99 in ms."""
    ref = _Echo.start()
    try:
        for _ in range(200):
            ref.ask(Ping(), timeout=5)
        times = []
        for _ in range(count):
            t = time.perf_counter()
            ref.ask(Ping(), timeout=5)
            times.append((time.perf_counter() - t) * 1000)
    finally:
        ref.stop()
    return statistics.median(times), percentile(times, 0.99)


class _Collector(pykka.ThreadingActor):
    def __init__(self, expected: int, done: threading.Event) -> None:
        super().__init__()
        self.expected, self.done, self.count = expected, done, 0

    def on_receive(self, message: object) -> object:
        if isinstance(message, Ping):
            self.count = 0
            return True
        self.count += 1
        if self.count == self.expected:
            self.done.set()
        return None


class _Relay(pykka.ThreadingActor):
    def __init__(self, collector: pykka.ActorRef) -> None:
        super().__init__()
        self.collector = collector

    def on_receive(self, message: object) -> object:
        self.collector.tell(message)
        return None


def fan_out_floor(count: int, repeats: int = 30) -> tuple[float, float]:
    """One tell to each of `count` idle actors, each passing it on to one collector, until all arrived: p50, p99 ms.

    What a close costs the actor model alone before any work: every symbol actor woken once, one actor receiving
    from all of them (the portfolio, the database writer)."""
    done = threading.Event()
    collector = _Collector.start(count, done)
    relays = [_Relay.start(collector) for _ in range(count)]
    times = []
    try:
        for _ in range(repeats + 3):
            collector.ask(Ping(), timeout=5)
            done.clear()
            t = time.perf_counter()
            for relay in relays:
                relay.tell(Tick(name="close"))
            done.wait(30)
            times.append((time.perf_counter() - t) * 1000)
    finally:
        for ref in [*relays, collector]:
            ref.stop()
    times = times[3:]
    return statistics.median(times), percentile(times, 0.99)


def make_intent(symbol: str, t: int, *, process_before: int | None = None) -> OrderIntent:
    h = intent_hash(symbol, t, SignalKind.ENTER_LONG, Decimal(10))
    return OrderIntent(intent_hash=h, client_order_id=client_order_id_for(h), symbol=symbol, kind=SignalKind.ENTER_LONG,
                       side=Side.BUY, candle_time=t, notional=Decimal(10), amount=Decimal("0.1"), price=Decimal(100),
                       sent_at=t if process_before else None, process_before=process_before)


def round_items(count: int, r: int) -> tuple[list[ClaimIntent], list[OrderUpdate]]:
    """One round's writes for `count` symbols: the claims (SUBMITTED folded in), then the FILLED reports."""
    claims, fills = [], []
    for n in range(count):
        symbol = f"S{n:03d}/USD:USD"
        intent = make_intent(symbol, T0 + r * 60_000, process_before=T0 + r * 60_000 + 30_000)
        claims.append(ClaimIntent(intent=intent, event=Event(kind=EventKind.INTENT_CLAIMED, symbol=symbol,
                                                             intent_hash=intent.intent_hash, detail="claimed")))
        fill = Fill(fill_id=f"fill-{r}-{n}", symbol=symbol, side=Side.BUY, amount=Decimal("0.1"), price=Decimal(100),
                    fee=Decimal("0.005"), client_order_id=intent.client_order_id, exchange_order_id=f"ex-{r}-{n}")
        fills.append(OrderUpdate(intent_hash=intent.intent_hash, client_order_id=intent.client_order_id, symbol=symbol,
                                 side=Side.BUY, state=OrderState.FILLED, exchange_order_id=f"ex-{r}-{n}",
                                 amount=Decimal("0.1"), filled=Decimal("0.1"), average_price=Decimal(100),
                                 fills=(fill,)))
    return claims, fills


def fresh_database(folder: str, name: str) -> str:
    """A SQLite file with the store's schema (created by the store itself)."""
    path = f"{folder}/{name}.db"
    store = Store(open_database(f"sqlite:///{path}", sqlite_synchronous="FULL"))
    store.open()
    store.close()
    return path


def raw_write_floor(folder: str, count: int, rounds: int) -> tuple[list[float], list[float]]:
    """Raw sqlite3 executemany of a round's rows, WAL and synchronous=FULL as the store: (claim commit ms, all ms)."""
    path = fresh_database(folder, f"floor{count}")
    sql = _Sql(open_database(f"sqlite:///{path}"))
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=wal")
    conn.execute("PRAGMA synchronous=FULL")
    cur = conn.cursor()
    claim_ms, total_ms = [], []
    for r in range(rounds):
        claims, updates = round_items(count, r)
        now = T0
        # the store's own column mapping (intent_row), so the floor writes the same row as the claim
        intents = [(*(intent_row(c.intent)[name] for name in IntentRecord.INTENT_FIELDS), "SUBMITTED", "0", None, None,
                    now, c.intent.sent_at, c.intent.process_before, 1, False, "0", False) for c in claims]
        claim_events = [(now, "INTENT_CLAIMED", c.intent.symbol, None, c.intent.intent_hash, "claimed") for c in claims]
        t = time.perf_counter()
        cur.execute("BEGIN")
        cur.executemany(sql.claim, intents)
        cur.executemany(sql.event_insert, claim_events)
        cur.execute("COMMIT")
        middle = time.perf_counter()
        cur.execute("BEGIN")
        cur.executemany(sql.intent_update, [("FILLED", None, u.exchange_order_id, "0.1", now, u.sent_at, None, 1,
                                             False, "0.1", True, u.intent_hash) for u in updates])
        cur.executemany(sql.order_insert, [(u.client_order_id, u.exchange_order_id, u.intent_hash, "OURS", u.symbol,
                                            "buy", False, "0.1", "0.1", "100", "FILLED", None, "", now, now)
                                           for u in updates])
        f = [u.fills[0] for u in updates]
        cur.executemany(sql.fill_insert, [(x.fill_id, x.symbol, "buy", "0.1", "100", "0.005", x.exchange_order_id,
                                           x.client_order_id, now, None) for x in f])
        cur.executemany(sql.totals_upsert, [(u.symbol, "0.1", "100", "-0.005", "0.005", 1, now, "0") for u in updates])
        cur.executemany(sql.event_insert, [(now, "ORDER_UPDATE", u.symbol, None, u.intent_hash, "FILLED buy")
                                           for u in updates])
        cur.execute("COMMIT")
        end = time.perf_counter()
        claim_ms.append((middle - t) * 1000)
        total_ms.append((end - t) * 1000)
    conn.close()
    return claim_ms, total_ms


def store_only(folder: str, count: int, rounds: int) -> dict[str, float]:
    """Store.apply_batch per intent: one batch of claims, one batch of FILLED reports with their fills."""
    path = fresh_database(folder, f"store{count}")
    store = Store(open_database(f"sqlite:///{path}", sqlite_synchronous="FULL"))
    store.open()
    wall, cpu = [], []
    try:
        for r in range(rounds):
            claims, updates = round_items(count, r)
            t, c = time.perf_counter(), time.process_time()
            results = store.apply_batch(claims)
            store.apply_batch(updates)
            wall.append((time.perf_counter() - t) * 1000 / count)
            cpu.append((time.process_time() - c) * 1000 / count)
            assert all(x.claimed for x in results)
    finally:
        store.close()
    return {"wall_ms": statistics.median(wall), "cpu_ms": statistics.median(cpu)}


def symbols_for(count: int) -> dict[str, tuple[str, float, float, float]]:
    return {f"S{i:03d}/USD:USD": (f"PF_S{i:03d}USD", 0.001, 0.01, 100.0) for i in range(count)}


def settle(system: TradingSystem, refs: dict) -> None:
    """Wait for a quiet system, as at a close a minute after the last one: every order of the round final (its fills
    read by the gateway's poll), the position sync that follows fills fetched and handed to every symbol actor."""
    for _ in range(1200):  # the poll the gateway's 1 s timer would make, made now: it reads the round's fills
        system.gateway.tell(Tick(name="poll"))
        if not system.gateway.ask(GetInFlight(), timeout=60):
            break
        time.sleep(0.05)  # a batch's fills share one ms: read from the execution history once settled (~7 s)
    else:
        raise RuntimeError("orders still in flight after 60 s")
    # the portfolio asks for a position sync after the fills; the gateway fetches it on a Flush it tells itself
    for ref in (system.portfolio, system.gateway, system.gateway, system.portfolio):
        ref.ask(Ping(), timeout=60)
    for ref in refs.values():
        ref.ask(Ping(), timeout=60)


def run(count: int, rounds: int, database_url: str) -> dict[str, float]:
    exchange = FakeExchange(symbols_for(count))
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    lock = threading.Lock()

    def on_create(call: dict) -> None:
        now = time.perf_counter()
        with lock:
            latencies.append(now - sent_at[call["cliOrdId"]])

    exchange.before_create = on_create
    handed: list[float] = []  # the close to the gateway's receipt of the order ("handed to the gateway")
    handed_at: dict[str, float] = {}
    receive = ExchangeGatewayActor.on_receive

    def on_receive(actor: ExchangeGatewayActor, message: object) -> object:
        if isinstance(message, (PlaceOrder, PlaceOrders)):
            now = time.perf_counter()
            with lock:
                for intent in (message.intent,) if isinstance(message, PlaceOrder) else message.intents:
                    handed.append(now - sent_at[intent.client_order_id])
                    handed_at[intent.client_order_id] = now
        return receive(actor, message)

    ExchangeGatewayActor.on_receive = on_receive  # type: ignore[method-assign]
    config = AppConfig.model_validate({
        "trading": {"symbols": list(exchange.markets), "pyramiding": True, "order_notional": 10,
                    "position_sync_interval_s": 3600, "tick_interval_s": 3600},
        "risk": {"max_open_positions": count, "max_notional_per_order": 1000, "max_total_notional": 10**12},
        "database": {"sqlite_synchronous": "FULL"},
        "strategy": {"name": "scripted"},
    })
    system = TradingSystem(config=config, database_url=database_url, private_exchange=exchange,
                           public_exchange=None, markets=load_market_specs(exchange, config.trading.symbols)).start()
    try:
        refs = system.symbol_actors()
        for ref in refs.values():  # the first position sync has arrived
            ref.ask(Ping(), timeout=30)
        settle(system, refs)
        freeze_startup_heap()  # as `run.py run` does once started
        bursts: list[float] = []  # per round: the close to the last of its orders handed to the gateway
        for r in range(rounds):
            t = T0 + r * 60_000
            cids = [client_order_id_for(intent_hash(symbol, t, SignalKind.ENTER_LONG, Decimal(10))) for symbol in refs]
            signals = [Signal(symbol=symbol, kind=SignalKind.ENTER_LONG, candle_time=t, price=Decimal(100))
                       for symbol in refs]
            close = time.perf_counter()  # every symbol's signal is told from here on, as at a candle close
            for cid, ref, signal in zip(cids, refs.values(), signals, strict=True):
                sent_at[cid] = close
                ref.tell(signal)
            if not exchange.wait_for_create_calls((r + 1) * count, timeout=120):
                raise RuntimeError(f"round {r}: only {len(exchange.create_calls)} orders arrived")
            with lock:
                bursts.append(max(handed_at[cid] for cid in cids) - close)
            settle(system, refs)  # fills routed back before the next round
    finally:
        system.stop()
        ExchangeGatewayActor.on_receive = receive  # type: ignore[method-assign]
    orders = len(exchange.create_calls)
    assert orders == rounds * count, f"expected {rounds * count} orders, got {orders}"
    ordered = sorted(latencies)
    given = sorted(handed)
    burst = statistics.median(bursts)
    return {
        "symbols": count,
        "intents": orders,
        "intents_per_s": count / burst,  # one close's intents over the close to the last of them handed over
        "burst_max_ms": max(bursts) * 1000,
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": percentile(ordered, 0.99) * 1000,
        "handed_p50_ms": statistics.median(given) * 1000,
        "handed_p99_ms": percentile(given, 0.99) * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds-scale", type=float, default=1.0, help="multiply the number of rounds")
    parser.add_argument("--database-url", default="", help="default: a fresh SQLite file per run")
    parser.add_argument("--store-only", action="store_true", help="only the store and floor figures")
    args = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    print(f"# pipeline benchmark, {time.strftime('%Y-%m-%d')}, Python {platform.python_version()}, "
          f"{platform.machine()}, SQLite {sqlite3.sqlite_version} WAL synchronous=FULL")
    ask50, ask99 = ask_floor()
    print(f"# floor: pykka ask round trip p50 {ask50:.3f} ms, p99 {ask99:.3f} ms")
    plan = ((1, 300), (10, 60), (300, 4))
    floors: dict[int, tuple[list[float], list[float]]] = {}
    print("\n## store only: ms per intent through Store.apply_batch (claim+SUBMITTED, FILLED+fill+events)")
    print(f"{'batch':>6} {'store ms':>9} {'cpu ms':>8} {'floor ms':>9} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as folder:
        for count, rounds in plan:
            store_rounds = max(5, int(rounds * args.rounds_scale))
            floors[count] = raw_write_floor(folder, count, max(5, store_rounds))
            result = store_only(folder, count, store_rounds)
            floor = statistics.median(floors[count][1]) / count
            print(f"{count:>6} {result['wall_ms']:>9.3f} {result['cpu_ms']:>8.3f} {floor:>9.3f} "
                  f"{result['wall_ms'] / floor:>6.1f}")
    if args.store_only:
        return 0
    print("\n## pipeline: a close's signals to the gateway's receipt of their orders; floors as the docstring says")
    print(f"{'symbols':>8} {'intents':>8} {'intents/s':>10} {'floor/s':>8} {'ratio':>6} {'p50 ms':>8} {'floor':>7} "
          f"{'ratio':>6} {'p99 ms':>8} {'floor':>7} {'ratio':>6} {'+fan-out p99':>13} {'ratio':>6} {'wire p50':>9} "
          f"{'wire p99':>9} {'worst close':>12}")
    for count, rounds in plan:
        rounds = max(1, int(rounds * args.rounds_scale))
        spread50, spread99 = fan_out_floor(count)
        with tempfile.TemporaryDirectory() as folder:
            url = args.database_url or f"sqlite:///{folder}/bench.db"
            result = run(count, rounds, url)
        claim_ms = floors[count][0]
        rate_floor = count / (statistics.median(claim_ms) / 1000)
        p50_floor = statistics.median(claim_ms) + 2 * ask50
        p99_floor = percentile(claim_ms, 0.99) + 2 * ask99
        fan99 = percentile(claim_ms, 0.99) + ask99 + spread99
        print(f"{count:>8} {result['intents']:>8} {result['intents_per_s']:>10.0f} {rate_floor:>8.0f} "
              f"{rate_floor / result['intents_per_s']:>6.1f} {result['handed_p50_ms']:>8.2f} {p50_floor:>7.2f} "
              f"{result['handed_p50_ms'] / p50_floor:>6.1f} {result['handed_p99_ms']:>8.2f} {p99_floor:>7.2f} "
              f"{result['handed_p99_ms'] / p99_floor:>6.1f} {fan99:>13.2f} {result['handed_p99_ms'] / fan99:>6.1f} "
              f"{result['p50_ms']:>9.2f} {result['p99_ms']:>9.2f} {result['burst_max_ms']:>12.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
