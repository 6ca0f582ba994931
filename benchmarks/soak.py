#!/usr/bin/env python3
"""The long soak: at least 20 SIGKILLs of the bot while it trades five symbols on Kraken's rules under faults.

    python benchmarks/soak.py [--kills 20] [--seed 1] [--scope open|none|both] [--folder DIR]

`--scope both` (the default) runs the soak twice: with the simulator's cliOrdId uniqueness as Kraken has it
("open": refused only while an open order carries the id) and with it switched off ("none": no outcome may rest
on the exchange refusing a duplicate). Prints the figures of each run (and writes DIR/<scope>/report.json);
exits 1 if any promise was broken in any run. See tests/e2e/soak.py for what runs and what is checked.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.soak import SoakRun, SoakSettings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scope", choices=("open", "none", "both"), default="both",
                        help="the simulator's cli_ord_id_scope (both: one run each)")
    parser.add_argument("--speed", type=float, default=SoakSettings.speed, help="simulator clock speed")
    parser.add_argument("--min-life", type=float, default=2.0, help="shortest life of a bot run before its kill (s)")
    parser.add_argument("--max-life", type=float, default=8.0, help="longest life of a bot run before its kill (s)")
    parser.add_argument("--folder", default="", help="keep logs, databases and reports here (default: a temp dir)")
    parser.add_argument("--protection", action="store_true",
                        help="[protection] on: every position gets a stop-loss and take-profit on the exchange, and "
                             "the protection promises are checked too (tests/e2e/protection_check.py)")
    args = parser.parse_args()
    if args.kills < 1:
        parser.error("--kills must be at least 1")
    folder = Path(args.folder) if args.folder else Path(tempfile.mkdtemp(prefix="soak-"))
    scopes = ("open", "none") if args.scope == "both" else (args.scope,)
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {platform.machine()}, {_cores()} cores, "
          f"Python {platform.python_version()}")
    failed = False
    for scope in scopes:
        run_folder = folder / scope
        run_folder.mkdir(parents=True, exist_ok=True)
        settings = SoakSettings(cli_ord_id_scope=scope, speed=args.speed, protection=args.protection,
                                reconcile_interval_s=10.0 if args.protection else 5.0)
        report = SoakRun(run_folder, kills=args.kills, min_life_s=args.min_life, max_life_s=args.max_life,
                         seed=args.seed, settings=settings).run()
        print(report.summary())
        for problem in report.problems:
            print(f"PROBLEM: {problem}")
        print(f"logs, database and report.json in {run_folder}")
        failed = failed or bool(report.problems) or report.kills < args.kills
    return 1 if failed else 0


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 0)


if __name__ == "__main__":
    sys.exit(main())
