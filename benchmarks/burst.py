"""Candle-close burst: N symbols enter at the same close, through the real ccxt client against the simulator.

For each size (3, 30, 100, 300 by default) a simulator listing that many synthetic markets (`extra_markets`)
runs on a real clock at `--speed` (a 1m candle every 60/speed s), and a TradingSystem as `run.py` wires it
(market data, portfolio, symbol actors, persistence on SQLite with synchronous=FULL, gateway) trades every
market with the scripted strategy (sides "long", period 4): every symbol's entry comes at the same close.

Measured from the simulator's own records, on the exchange's clock, shown in real ms (exchange ms / speed):
- close -> fetch: the candle's close to the first candle request after it (market data's polling delay);
- close -> last accepted: the close to the last of the N orders placed (`order_requests`, status placed);
- round trips: private order-path requests (openorders + batchorder + sendorder) between the close and the
  last acceptance, i.e. beyond the market-data fetch; and any `apiLimitExceeded` answer (there must be none).
Beside them, the floor measured in the same run: one private HTTP round trip through ccxt (openorders,
median of 30), and the ratio of the fetch-to-accepted span to it.

    .venv/bin/python benchmarks/burst.py [--sizes 3,30,100,300] [--speed 20] [--batch-max 100]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loguru import logger  # noqa: E402

from actors import TradingSystem, gateway_settings_for  # noqa: E402
from configuration import AppConfig  # noqa: E402
from exchange import load_market_specs, make_kraken_client  # noqa: E402
from exchange.budget import CostBudget  # noqa: E402
from exchange.clock import ServerClock  # noqa: E402
from messages import Pause, Resume, SignalKind, client_order_id_for, intent_hash  # noqa: E402
from simulator import start_simulator  # noqa: E402
from strategies.scripted import ScriptedParams, scripted_signal  # noqa: E402

MINUTE = 60_000
PERIOD = 4
ORDER_PATH = ("openorders", "batchorder", "sendorder")


def floor_ms(client: Any, rounds: int = 30) -> float:
    """Median real ms of one private request (openorders) through ccxt."""
    took = []
    for _ in range(rounds):
        started = time.perf_counter()
        client.privateGetOpenorders()
        took.append((time.perf_counter() - started) * 1000)
    return statistics.median(took)


def config(symbols: list[str], database_url: str, batch_max: int) -> AppConfig:
    return AppConfig.model_validate({
        "trading": {"symbols": symbols, "timeframe": "1m", "tick_interval_s": 0.1, "order_notional": 100,
                    "position_sync_interval_s": 3600},
        "risk": {"max_open_positions": max(len(symbols), 1), "max_notional_per_order": 1000,
                 "max_total_notional": 1_000_000},
        "strategy": {"name": "scripted", "params": {"period": PERIOD, "hold": PERIOD - 1, "sides": "long"}},
        "exchange": {"batch_max": batch_max},
        "database": {"url": database_url},
        "supervision": {"backoff_initial_s": 0.01, "backoff_max_s": 0.05},
    })


def run_size(size: int, speed: float, batch_max: int, folder: Path) -> dict[str, Any]:
    sim = start_simulator(extra_markets=size, rate_limit=True, speed=speed, volatility=0.0001, seed=3,
                          initial_balance=10_000_000.0)
    system = None
    try:
        symbols = [f"X{n:03d}/USD:USD" for n in range(1, size + 1)]
        public = make_kraken_client(sim.base_url, timeout_ms=10_000)
        private = make_kraken_client(sim.base_url, sim.api_key, sim.api_secret, timeout_ms=10_000)
        markets = load_market_specs(public, symbols)
        private.load_markets()
        floor = floor_ms(private)
        clock = ServerClock(public, rate=speed)
        database_url = f"sqlite:///{folder}/burst-{size}.db"
        settings = config(symbols, database_url, batch_max)
        system = TradingSystem(
            config=settings, database_url=database_url,
            private_exchange=private, public_exchange=public, markets=markets, candle_clock=clock,
            budget=CostBudget(),
            gateway_settings=gateway_settings_for(settings, clock_rate=clock.rate, poll_interval_s=0.2,
                                                  batch_max=batch_max),
            ask_timeout_s=30.0,  # pausing 300 symbols at once (one durable control write each) takes seconds
        ).start()
        params = ScriptedParams(period=PERIOD, hold=PERIOD - 1, sides="long")
        # Paused until every symbol is reconciled and synced (300 symbol actors take longer to start than a
        # candle lasts at speed 20), resumed once the measured candle has opened: no earlier entry gets through.
        system.control(Pause(source="benchmark"))
        ready_by = time.monotonic() + 120
        while time.monotonic() < ready_by:
            status = system.status()
            if status.reconciled and all(row.position is not None for row in status.symbols):
                break
            time.sleep(0.05)
        now = clock.refresh()
        # the first entry candle that closes at least one candle from now (the system must have reconciled)
        k = now // MINUTE + 2
        while scripted_signal(k * MINUTE, "1m", params) is not SignalKind.ENTER_LONG:
            k += 1
        candle_open = k * MINUTE
        close = candle_open + MINUTE
        while clock() < candle_open + 100:  # the candle before it has closed while paused
            time.sleep(0.01)
        system.control(Resume(source="benchmark"))
        notional = 100
        cids = {client_order_id_for(intent_hash(s, candle_open, SignalKind.ENTER_LONG, notional)) for s in symbols}
        deadline = time.monotonic() + (close - now) / speed / 1000 + 60
        placed: dict[str, int] = {}
        while time.monotonic() < deadline:
            rows = sim.admin.order_requests(kind="send")
            placed = {str(r["cliOrdId"]): int(r["time"]) for r in rows
                      if r["cliOrdId"] in cids and r["status"] == "placed"}
            if len(placed) == len(cids):
                break
            time.sleep(0.05)
        requests = list(sim.simulator.requests)
        sends = [r for r in sim.admin.order_requests(kind="send") if r["cliOrdId"] in cids]
        last = max(placed.values()) if placed else None
        window = [r for r in requests if last is not None and close <= int(r["time"]) <= last]
        fetch = min((int(r["time"]) for r in requests
                     if int(r["time"]) >= close and "/api/charts/" in str(r.get("target", ""))), default=None)
        trips = {e: sum(1 for r in window if r["endpoint"] == e) for e in ORDER_PATH}
        limited = sum(1 for r in requests if r.get("error") == "apiLimitExceeded")
        to_real = 1 / speed
        accepted_ms = (last - close) * to_real if last is not None else float("nan")
        fetch_ms = (fetch - close) * to_real if fetch is not None else float("nan")
        span = accepted_ms - fetch_ms
        return {
            "size": size, "placed": len(placed), "sends": len(sends), "close_to_fetch_ms": fetch_ms,
            "close_to_accepted_ms": accepted_ms, "fetch_to_accepted_ms": span, "trips": trips,
            "batches": len({r.get("batch") for r in sends if r.get("batch") is not None}),
            "api_limit": limited, "floor_ms": floor, "ratio": span / floor if floor else float("nan"),
        }
    finally:
        if system is not None:
            system.stop()
        sim.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="3,30,100,300")
    parser.add_argument("--speed", type=float, default=20.0)
    parser.add_argument("--batch-max", type=int, default=100)
    args = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    print(f"candle-close burst, speed {args.speed:g} (a 1m candle every {60 / args.speed:.1f} s), batch_max "
          f"{args.batch_max}; times in real ms")
    print(f"{'symbols':>7} {'placed':>6} {'close->fetch':>12} {'close->accepted':>15} {'fetch->accepted':>15} "
          f"{'openorders':>10} {'batchorder':>10} {'sendorder':>9} {'429/limit':>9} {'floor (1 RT)':>12} {'ratio':>6}")
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for size in [int(s) for s in args.sizes.split(",")]:
            r = run_size(size, args.speed, args.batch_max, Path(tmp))
            t = r["trips"]
            print(f"{r['size']:>7} {r['placed']:>6} {r['close_to_fetch_ms']:>12.1f} {r['close_to_accepted_ms']:>15.1f} "
                  f"{r['fetch_to_accepted_ms']:>15.1f} {t['openorders']:>10} {t['batchorder']:>10} "
                  f"{t['sendorder']:>9} {r['api_limit']:>9} {r['floor_ms']:>12.2f} {r['ratio']:>6.1f}", flush=True)
            if r["api_limit"] or r["placed"] != size or r["sends"] != size:
                failed = True
                print(f"  PROBLEM: {r}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
