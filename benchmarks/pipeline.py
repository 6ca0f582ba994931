#!/usr/bin/env python3
"""Signal-to-gateway latency and intents per second through the running actors.

For 1, 10 and 300 symbols: a zero-latency in-process exchange (ccxt-shaped), durable SQLite
(WAL, synchronous=FULL). Each round, every symbol gets one new entry signal at once (as at a candle
close); the round ends when every order reached the exchange and the fills came back. Latency is
from the tell of the signal to the gateway's create_order call for it.

    python benchmarks/pipeline.py [--rounds-scale 1.0] [--database-url URL]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loguru import logger  # noqa: E402

from actors import TradingSystem  # noqa: E402
from configuration import AppConfig  # noqa: E402
from exchange import load_market_specs  # noqa: E402
from messages import Ping, Signal, SignalKind, client_order_id_for, intent_hash  # noqa: E402
from tests.fakes import FakeExchange  # noqa: E402

T0 = 1_800_000_000_000


def symbols_for(count: int) -> dict[str, tuple[str, float, float, float]]:
    return {f"S{i:03d}/USD:USD": (f"PF_S{i:03d}USD", 0.001, 0.01, 100.0) for i in range(count)}


def settle(system: TradingSystem, refs: dict) -> None:
    """Wait until the gateway's reports reached the portfolio and the symbol actors."""
    for ref in (system.gateway, system.gateway, system.portfolio):
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
        started = time.perf_counter()
        for r in range(rounds):
            t = T0 + r * 60_000
            for symbol, ref in refs.items():
                cid = client_order_id_for(intent_hash(symbol, t, SignalKind.ENTER_LONG, Decimal(10)))
                sent_at[cid] = time.perf_counter()
                ref.tell(Signal(symbol=symbol, kind=SignalKind.ENTER_LONG, candle_time=t, price=Decimal(100)))
            if not exchange.wait_for_create_calls((r + 1) * count, timeout=120):
                raise RuntimeError(f"round {r}: only {len(exchange.create_calls)} orders arrived")
            settle(system, refs)  # fills routed back before the next round
        elapsed = time.perf_counter() - started
    finally:
        system.stop()
    orders = len(exchange.create_calls)
    assert orders == rounds * count, f"expected {rounds * count} orders, got {orders}"
    ordered = sorted(latencies)
    return {
        "symbols": count,
        "intents": orders,
        "seconds": elapsed,
        "intents_per_s": orders / elapsed,
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds-scale", type=float, default=1.0, help="multiply the number of rounds")
    parser.add_argument("--database-url", default="", help="default: a fresh SQLite file per run")
    args = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    print(f"# pipeline benchmark, {time.strftime('%Y-%m-%d')}, Python {platform.python_version()}, "
          f"{platform.machine()}, SQLite synchronous=FULL")
    print(f"{'symbols':>8} {'intents':>8} {'intents/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
    for count, rounds in ((1, 300), (10, 60), (300, 4)):
        rounds = max(1, int(rounds * args.rounds_scale))
        with tempfile.TemporaryDirectory() as folder:
            url = args.database_url or f"sqlite:///{folder}/bench.db"
            result = run(count, rounds, url)
        print(f"{result['symbols']:>8} {result['intents']:>8} {result['intents_per_s']:>10.0f} "
              f"{result['p50_ms']:>8.2f} {result['p99_ms']:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
