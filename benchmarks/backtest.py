#!/usr/bin/env python3
"""Candle-steps per second of a backtest through the same actors, beside the same-run floor of the strategy alone.

A candle step is one candle of one symbol delivered to its symbol actor (`BacktestResult.candle_steps`). Each run
is `backtest.driver.Backtest(config, candles, settings=BacktestSettings()).run()` on seeded synthetic 1m candles
(`backtest.data.synthetic_candles`): the simulator replaying them on its stepped clock, the symbol actors with the
whole guard chain, the portfolio, the persistence actor's SQLite file, the gateway and the real ccxt client,
in-process. Configurations: ma_crossover with the shipped config.toml's params (fast 5, slow 20) and a slower one
(fast 20, slow 100), each with [protection] off and on (a stop-loss and a take-profit after every entry), for 1
symbol (default a month, 43,200 candles) and 10 symbols (8 real markets and synthetic X001/USD:USD, ...).

Floor, same run (the machine is shared): the strategy alone in a plain loop over the same candles, no actors, no
exchange: the window the symbol actor hands it (the last max(SymbolSettings.window, warmup + 1) candles, copied
to a list each candle), `strategy.decide(window, side)` with the side tracked from its own signals. ratio = floor
steps/s / steps/s. (A list growing without bound, as tests/e2e/plain_loop.py passes, makes ma_crossover's decide
O(n) per candle: 2 s for 10,000 candles here, about 37 s for a month; the actor never passes more than its window.)

Split of the cost: an idle run of the same candles with a strategy that never signals (the fastest of 3) gives the
per-candle cost of the actors and the simulator; per order = (run - idle run - the strategy's own time in the
floor) / orders, where orders are the intents the bot claimed (entries, exits, protective stops and take-profits;
cancels of protective orders are part of their cost); "refused": claimed orders refused or never sent (status
REJECTED, e.g. reason NOT_PLACED, or NOT_PLACED). "ask µs": a pykka ask round trip to an idle actor just before
the run (the machine's thread hand-off cost at that moment: every candle step is at least one). By default the
process is pinned to one CPU, as `kraken-actors backtest` pins itself: the actors share one GIL, and a hand-off
between two CPUs costs far more than on one (`--cpu all` to compare, `--cpu N` for a given CPU).

    python benchmarks/backtest.py [--candles 43200] [--multi-candles 2880] [--multi-symbols 10] [--seed 1]
                                  [--only 1|multi] [--configs 5/20,20/100] [--protection off,on] [--repeat 1]
                                  [--cpu one|all|N]
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pykka  # noqa: E402
from loguru import logger  # noqa: E402

from actors.symbol import SymbolSettings  # noqa: E402
from backtest.cli import pin_to_one_cpu  # noqa: E402
from backtest.data import synthetic_candles  # noqa: E402
from backtest.driver import Backtest, BacktestSettings  # noqa: E402
from backtest.report import round_trips  # noqa: E402
from backtest.result import EquityPoint  # noqa: E402
from configuration import AppConfig  # noqa: E402
from messages import Ping  # noqa: E402
from messages.market import Candle  # noqa: E402
from messages.positions import PositionSide  # noqa: E402
from messages.signals import SignalKind  # noqa: E402
from simulator.instruments import INSTRUMENTS  # noqa: E402
from strategies import Strategy, build_strategy  # noqa: E402
from strategies.base import StrategyParams  # noqa: E402

START_MS = 1_793_577_600_000  # 2026-11-02 00:00 UTC
GOAL_STEPS_PER_S = 5_000  # issue 14: a month of 1m candles for one symbol in under 10 s
IDLE_RUNS = 3  # the idle run is short and every per-order figure is measured against it: the fastest of 3


class NeverSignals(Strategy):
    """A strategy that never signals: the per-candle cost of the actors and the simulator alone."""

    name = "never"
    Params = StrategyParams

    @property
    def warmup(self) -> int:
        return 1

    def decide(self, candles: Sequence[Candle], position: PositionSide) -> SignalKind | None:
        return None


@dataclass(frozen=True)
class Case:
    """One configuration: ma_crossover's fast/slow (None: the idle strategy) and protection on or off."""

    fast_slow: tuple[int, int] | None
    protection: bool

    @property
    def label(self) -> str:
        strategy = "idle (never signals)" if self.fast_slow is None else "ma_crossover {}/{}".format(*self.fast_slow)
        return f"{strategy}, protection {'on' if self.protection else 'off'}"

    def strategy(self) -> Strategy:
        """A fresh strategy for one symbol."""
        if self.fast_slow is None:
            return NeverSignals(StrategyParams())
        fast, slow = self.fast_slow
        return build_strategy("ma_crossover", {"fast": fast, "slow": slow})


@dataclass(frozen=True)
class Measured:
    """One backtest run's figures."""

    steps: int
    seconds: float
    cpu_seconds: float
    round_trips: int
    orders: int
    refused: int  # orders the bot claimed that were refused or never reached the exchange (REJECTED, NOT_PLACED)
    fills: int
    complete: bool
    plain_steps: int  # steps (closes) that sent nothing and saw no fill: timed one by one
    plain_seconds: float
    settled_steps: int  # steps that waited for an order's outcome (a fill, a send, funding): the driver's settle
    settled_seconds: float


def symbols_for(count: int) -> list[str]:
    """The first `count` markets: the simulator's 8 real ones, then synthetic X001/USD:USD, X002/USD:USD, ..."""
    real = [instrument.unified_symbol for instrument in INSTRUMENTS.values()]
    synthetic = [f"X{n:03d}/USD:USD" for n in range(1, max(0, count - len(real)) + 1)]
    return (real + synthetic)[:count]


def candles_for(symbols: list[str], count: int, seed: int) -> dict[str, tuple[Candle, ...]]:
    """`count` seeded synthetic 1m candles from START_MS for each symbol."""
    return {symbol: synthetic_candles(symbol, "1m", START_MS, count, seed) for symbol in symbols}


def config_for(symbols: list[str], case: Case) -> AppConfig:
    """The shipped defaults with these symbols, ma_crossover's params and protection on or off."""
    fast, slow = case.fast_slow or (5, 20)
    return AppConfig.model_validate({
        "trading": {"symbols": symbols},
        "risk": {"max_open_positions": len(symbols)},
        "strategy": {"name": "ma_crossover", "params": {"fast": fast, "slow": slow}},
        "protection": {"enabled": case.protection},
    })


def floor_seconds(candles: dict[str, tuple[Candle, ...]], make: Callable[[], Strategy]) -> float:
    """The strategy alone in a plain loop over every symbol's candles: seconds."""
    total = 0.0
    for series in candles.values():
        strategy = make()
        window: deque[Candle] = deque(maxlen=max(SymbolSettings().window, strategy.warmup + 1))
        side = PositionSide.FLAT
        t = time.perf_counter()
        for candle in series:
            window.append(candle)
            kind = strategy.decide(list(window), side)
            if kind is SignalKind.ENTER_LONG and side is PositionSide.FLAT:
                side = PositionSide.LONG
            elif kind is SignalKind.ENTER_SHORT and side is PositionSide.FLAT:
                side = PositionSide.SHORT
            elif kind is SignalKind.EXIT:
                side = PositionSide.FLAT
        total += time.perf_counter() - t
    return total


class TimedBacktest(Backtest):
    """A Backtest that times each step (one close time), split into steps that settled and the rest.

    A step ends with the equity point of its close; it settled when the driver waited for an order's outcome in it
    (an order sent, a fill or funding booked while the clock moved): the cost of orders measured directly. (It
    overrides two of the driver's private methods: a renamed one leaves its counters at 0, shown as "-".)"""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.step_started: float | None = None
        self.settled = False
        self.plain = [0, 0.0]  # steps, seconds
        self.busy = [0, 0.0]

    def _settle(self, sim: Any, system: Any) -> None:
        self.settled = True
        super()._settle(sim, system)

    def _equity(self, sim: Any, time_ms: int) -> EquityPoint:
        point = super()._equity(sim, time_ms)
        now = time.perf_counter()
        if self.step_started is not None:  # from the end of the previous step
            bucket = self.busy if self.settled else self.plain
            bucket[0] += 1
            bucket[1] += now - self.step_started
        self.settled = False
        self.step_started = time.perf_counter()
        return point


def run_backtest(candles: dict[str, tuple[Candle, ...]], case: Case, folder: str, name: str) -> Measured:
    """One backtest through the actors; its time (wall and this process's CPU) and what it traded."""
    symbols = list(candles)
    database = Path(folder) / f"{name}.db"
    backtest = TimedBacktest(config_for(symbols, case), candles, settings=BacktestSettings(),
                             strategy_factory=lambda _symbol: case.strategy(), database_path=database)
    t, c = time.perf_counter(), time.process_time()
    result = backtest.run()
    seconds, cpu = time.perf_counter() - t, time.process_time() - c
    with sqlite3.connect(database) as conn:
        orders = int(conn.execute("SELECT count(*) FROM intent").fetchone()[0])
        refused = int(conn.execute("SELECT count(*) FROM intent WHERE status IN ('REJECTED', 'NOT_PLACED')")
                      .fetchone()[0])
    return Measured(steps=result.candle_steps, seconds=seconds, cpu_seconds=cpu,
                    round_trips=len(round_trips(result.fills, result.funding)), orders=orders,
                    refused=refused, fills=len(result.fills), complete=result.complete,
                    plain_steps=int(backtest.plain[0]), plain_seconds=backtest.plain[1],
                    settled_steps=int(backtest.busy[0]), settled_seconds=backtest.busy[1])


class _Echo(pykka.ThreadingActor):
    def on_receive(self, message: object) -> object:
        return True


def ask_round_trip_us(count: int = 2000) -> float:
    """Median pykka ask round trip to an idle actor, µs: how busy the machine is for thread hand-offs right now."""
    ref = _Echo.start()
    try:
        times = []
        for _ in range(count):
            t = time.perf_counter()
            ref.ask(Ping(), timeout=5)
            times.append(time.perf_counter() - t)
    finally:
        ref.stop()
    return statistics.median(times) * 1e6


def best_of(candles: dict[str, tuple[Candle, ...]], case: Case, folder: str, name: str, repeat: int) -> Measured:
    """The fastest of `repeat` runs of one case (each on a fresh database)."""
    runs = [run_backtest(candles, case, folder, f"{name}-{n}") for n in range(max(1, repeat))]
    return min(runs, key=lambda m: m.seconds)


def report_block(symbol_count: int, count: int, seed: int, cases: list[Case], folder: str, repeat: int) -> None:
    """Run every case for `symbol_count` symbols of `count` candles each (an idle run first) and print a table."""
    symbols = symbols_for(symbol_count)
    candles = candles_for(symbols, count, seed)
    steps = symbol_count * count
    print(f"\n## {symbol_count} symbol(s) x {count} 1m candles = {steps} candle steps "
          f"({count / 1440:.1f} days each; {', '.join(symbols[:3])}{', ...' if symbol_count > 3 else ''})")
    print(f"{'configuration':<37} {'steps':>7} {'s':>7} {'cpu s':>7} {'steps/s':>8} {'floor/s':>9} {'ratio':>6} "
          f"{'trips':>6} {'orders':>6} {'refused':>7} {'fills':>6} {'µs/candle':>9} {'settled':>7} {'ms each':>8} "
          f"{'ms/order':>8} {'derived':>8} {'ask µs':>7} {'month 1m':>9}  goal")
    idle: Measured | None = None
    for n, case in enumerate([Case(None, False), *cases]):
        floor = floor_seconds(candles, case.strategy)
        ask_us = ask_round_trip_us()
        runs = max(IDLE_RUNS, repeat) if case.fast_slow is None else repeat  # the idle run is every order's base
        measured = best_of(candles, case, folder, f"{symbol_count}-{n}", runs)
        rate = measured.steps / measured.seconds
        floor_rate = steps / floor if floor > 0 else float("inf")
        if idle is None:
            idle = measured
        step_us = measured.plain_seconds * 1e6 / max(1, measured.plain_steps * symbol_count)  # per candle step
        each_ms, per_order, derived = "-", "-", "-"
        if measured.settled_steps:
            each_ms = f"{measured.settled_seconds * 1000 / measured.settled_steps:.2f}"
        if measured.orders:
            per_order = f"{measured.settled_seconds * 1000 / measured.orders:.2f}"
            derived = f"{(measured.seconds - idle.seconds - floor) * 1000 / measured.orders:.2f}"
        month = 43_200 * symbol_count / rate
        goal = ("met" if rate >= GOAL_STEPS_PER_S else "NOT met") if symbol_count == 1 else "(1 symbol only)"
        print(f"{case.label:<37} {measured.steps:>7} {measured.seconds:>7.2f} {measured.cpu_seconds:>7.2f} "
              f"{rate:>8.0f} {floor_rate:>9.0f} {floor_rate / rate:>6.1f} {measured.round_trips:>6} "
              f"{measured.orders:>6} {measured.refused:>7} {measured.fills:>6} {step_us:>9.0f} "
              f"{measured.settled_steps:>7} {each_ms:>8} {per_order:>8} {derived:>8} {ask_us:>7.0f} "
              f"{month:>8.1f}s  {goal}"
              f"{'' if measured.complete else '  (incomplete)'}", flush=True)


def source_state() -> str:
    """The commit measured, and whether the code it runs has uncommitted changes."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown commit"
    dirty = git("status", "--porcelain", "--", "actors", "backtest", "simulator", "exchange", "persistence",
                "messages", "strategies")
    return f"{commit}{' + uncommitted changes' if dirty else ''}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candles", type=int, default=43_200, help="1m candles for the 1-symbol runs (a month)")
    parser.add_argument("--multi-candles", type=int, default=2_880,
                        help="1m candles per symbol in the multi-symbol runs (2 days)")
    parser.add_argument("--multi-symbols", type=int, default=10, help="symbols of the multi-symbol runs")
    parser.add_argument("--seed", type=int, default=1, help="seed of the synthetic candles")
    parser.add_argument("--only", choices=("1", "multi"), default="", help="only the 1-symbol or multi-symbol runs")
    parser.add_argument("--configs", default="5/20,20/100", help="ma_crossover fast/slow pairs, comma-separated")
    parser.add_argument("--protection", default="off,on", help="protection settings to run: off, on or off,on")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each configuration; the fastest is shown")
    parser.add_argument("--cpu", default="one",
                        help="one (default, as `kraken-actors backtest` runs: pinned to one CPU), all, or a CPU number")
    args = parser.parse_args()
    if args.cpu == "one":  # before any thread starts: the actor threads inherit it
        args.cpu = pin_to_one_cpu()
    elif args.cpu == "all":
        args.cpu = None
    else:
        args.cpu = int(args.cpu)
        os.sched_setaffinity(0, {args.cpu})
    logger.remove()  # the actors log every order
    logger.add(sys.stderr, level="ERROR")
    pairs = [tuple(int(x) for x in pair.split("/")) for pair in args.configs.split(",") if pair]
    protections = [p.strip() == "on" for p in args.protection.split(",") if p.strip()]
    cases = [Case((fast, slow), protection) for fast, slow in pairs for protection in protections]
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    cpus = f"pinned to CPU {args.cpu}" if args.cpu is not None else "all CPUs"
    print(f"# backtest benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
          f"{platform.machine()}, Python {platform.python_version()}, load average {load}, {cpus}, "
          f"code {source_state()}")
    print("# floor: the strategy alone in a plain loop (same candles, the actor's window); ratio = floor/s / steps/s")
    print("# µs/candle: a step (one close) that settled nothing, per symbol's candle; settled: steps that waited for "
          "an order's outcome,")
    print("# ms each; ms/order: their time / orders;")
    print("# derived: (run - idle run - floor) / orders; ask µs: a pykka ask round trip just before the run; "
          "month 1m: 43,200 candles per symbol at this rate")
    with tempfile.TemporaryDirectory(prefix="backtest-bench-") as folder:
        if args.only != "multi":
            report_block(1, args.candles, args.seed, cases, folder, args.repeat)
        if args.only != "1":
            report_block(args.multi_symbols, args.multi_candles, args.seed, cases, folder, args.repeat)
    print(f"# load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
