#!/usr/bin/env python3
"""The long soak: at least 20 SIGKILLs of the bot while it trades three symbols under faults.

    python benchmarks/soak.py [--kills 20] [--seed 1] [--folder DIR]

Prints the figures (and writes DIR/report.json); exits 1 if any promise was broken.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.soak import SoakRun  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--min-life", type=float, default=1.5, help="shortest life of a bot run before its kill (s)")
    parser.add_argument("--max-life", type=float, default=8.0, help="longest life of a bot run before its kill (s)")
    parser.add_argument("--folder", default="", help="keep logs, database and report here (default: a temp dir)")
    args = parser.parse_args()
    folder = Path(args.folder) if args.folder else Path(tempfile.mkdtemp(prefix="soak-"))
    folder.mkdir(parents=True, exist_ok=True)
    report = SoakRun(folder, kills=args.kills, min_life_s=args.min_life, max_life_s=args.max_life,
                     final_s=10.0, seed=args.seed).run()
    print(report.summary())
    for problem in report.problems:
        print(f"PROBLEM: {problem}")
    print(f"logs, database and report.json in {folder}")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
