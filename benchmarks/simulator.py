"""Benchmark: sendorder round trips through the real ccxt client against the simulator on loopback.

Usage: python benchmarks/simulator.py [--orders 2000] [--warmup 100]
Prints round trips per second and p50/p99/max latency; the rate budget is off for the measurement.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loguru import logger  # noqa: E402

from simulator import start_simulator  # noqa: E402


def percentile(samples: list[float], q: float) -> float:
    """The q-quantile (0..1) of the samples by nearest rank."""
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def run(orders: int, warmup: int, clock: str) -> dict[str, float]:
    """Send `orders` market orders (alternating sides) and time each round trip."""
    with start_simulator(clock=clock, seed=1, rate_limit=False) as sim:  # type: ignore[arg-type]
        client = sim.client(timeout_ms=10_000)
        client.load_markets()
        for i in range(warmup):
            client.create_order("BTC/USD:USD", "market", "buy" if i % 2 == 0 else "sell", 0.001)
        latencies: list[float] = []
        started = time.perf_counter()
        for i in range(orders):
            t0 = time.perf_counter()
            order = client.create_order("BTC/USD:USD", "market", "buy" if i % 2 == 0 else "sell", 0.001,
                                        None, {"clientOrderId": f"bench-{i}"})
            latencies.append(time.perf_counter() - t0)
            assert order["status"] == "closed"
        elapsed = time.perf_counter() - started
        assert len(sim.admin.state()["fills"]) == orders + warmup
    return {
        "orders": orders,
        "per_second": orders / elapsed,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": max(latencies) * 1000,
        "mean_ms": statistics.fmean(latencies) * 1000,
    }


def main(argv: list[str]) -> int:
    """Run the benchmark for a stepped and a real-time clock and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=100)
    args = parser.parse_args(argv)
    logger.remove()
    print(f"python {platform.python_version()} on {platform.machine()}, "
          f"{len(__import__('os').sched_getaffinity(0))} cores")
    for clock in ("stepped", "real"):
        r = run(args.orders, args.warmup, clock)
        print(f"clock={clock:7s} sendorder via ccxt: {r['per_second']:.0f} round trips/s, "
              f"p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, max {r['max_ms']:.2f} ms "
              f"({r['orders']} orders)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
