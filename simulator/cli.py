"""`python run.py simulator ...`: run a standalone simulator until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from loguru import logger

from simulator.config import SimulatorConfig
from simulator.server import start_simulator
from simulator.state import StateFileError


def build_parser() -> argparse.ArgumentParser:
    """The simulator's command-line options."""
    parser = argparse.ArgumentParser(prog="kraken-actors simulator",
                                     description="Kraken Futures simulator (paper exchange)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8081, help="port to bind, 0 for any free port (default 8081)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of prices and ids (default 0)")
    parser.add_argument("--speed", type=float, default=1.0, help="clock acceleration, 1.0 = real time")
    parser.add_argument("--api-key", default=None, help="API key to accept (generated if absent)")
    parser.add_argument("--api-secret", default=None, help="base64 API secret to accept (generated if absent)")
    parser.add_argument("--balance", type=float, default=100_000.0, help="initial USD collateral")
    parser.add_argument("--volatility", type=float, default=0.03, help="daily volatility of the random walk")
    parser.add_argument("--spread", type=float, default=0.0002, help="relative bid/ask spread")
    parser.add_argument("--no-rate-limit", action="store_true", help="disable Kraken's cost budgets")
    parser.add_argument("--extra-markets", type=int, default=0, metavar="N",
                        help="list N synthetic perpetuals PF_X001USD ... beside the 8 real markets (default 0)")
    parser.add_argument("--state-file", default=None, metavar="PATH",
                        help="keep the account in this JSON file: resumed on start, saved while running and on exit")
    return parser


def main(argv: list[str]) -> int:
    """Run the simulator in the foreground; prints its base URL and key pair; returns the exit code."""
    args = build_parser().parse_args(argv)
    if (args.api_key is None) != (args.api_secret is None):
        print("error: give both --api-key and --api-secret, or neither", file=sys.stderr)
        return 2
    try:
        config = SimulatorConfig(
            host=args.host,
            port=args.port,
            seed=args.seed,
            speed=args.speed,
            api_key=args.api_key,
            api_secret=args.api_secret,
            initial_balance=args.balance,
            volatility=args.volatility,
            spread=args.spread,
            rate_limit=not args.no_rate_limit,
            extra_markets=args.extra_markets,
            state_file=args.state_file,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        """Ask the main loop to stop."""
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            handle = start_simulator(config)
        except StateFileError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except OSError as exc:
            print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
            return 1
        try:
            print(f"Kraken Futures simulator listening on {handle.base_url}", flush=True)
            print(f"api key:    {handle.api_key}", flush=True)
            print(f"api secret: {handle.api_secret}", flush=True)
            print(f"admin:      {handle.base_url}/sim/state", flush=True)
            if config.state_file:
                print(f"state file: {config.state_file}", flush=True)
            while not stop.wait(0.5):
                pass
            logger.info("simulator: shutting down")
        finally:
            handle.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
