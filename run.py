#!/usr/bin/env python3
"""The command line of the trading system: run, check-config, control commands, backtest, download, simulator.

Installed as the console script `kraken-actors` (setup.cfg: `kraken-actors = run:main`); `python run.py` in a
checkout is the same. Without a command it is `kraken-actors run --config config.toml`; `config.toml` is looked
for in the current folder, and the paths inside it (storage/, the log, the database) are relative to the file.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from actors.preflight import PreflightReport
    from configuration import LoadedConfig

DEFAULT_CONFIG = "config.toml"  # in the current folder
PROG = "kraken-actors"  # the console script; `python run.py` in a checkout is the same command line


def _load(path: str) -> LoadedConfig | None:
    """The validated configuration, or None after printing every error (one line each, key first)."""
    from configuration import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"{exc.path}: configuration is not valid:", file=sys.stderr)
        for line in exc.errors:
            print(f"  - {line}", file=sys.stderr)
        return None


def _report_problems(path: Path, report: PreflightReport, *, what: str) -> None:
    print(f"{path}: {what}:", file=sys.stderr)
    for line in report.problems:
        print(f"  - {line}", file=sys.stderr)


def cmd_check_config(args: argparse.Namespace) -> int:
    """Print the effective configuration (secrets masked), or every error with its key; exit 2 on errors.

    With --connect, also check what a start needs (storage, database, control port, keys, exchange).
    """
    from configuration import render_config

    loaded = _load(args.path or args.config)
    if loaded is None:
        return 2
    print(render_config(loaded))
    if not args.connect:
        from configuration import config_warnings

        for line in config_warnings(loaded.config):  # with --connect, preflight's warnings carry them
            print(f"# warning: {line}")
        print(f"\n# {loaded.path}: OK (add --connect to check storage, database, control port, keys and exchange)")
        return 0
    from actors.preflight import preflight

    report = preflight(loaded)
    print()
    for line in report.passed:
        print(f"# ok: {line}")
    for line in report.warnings:
        print(f"# warning: {line}")
    if not report.ok:
        _report_problems(loaded.path, report, what="cannot start")
        return 2
    print(f"\n# {loaded.path}: OK, connected")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Check what a start needs (the control port first), then start the trading system and run until Ctrl-C,
    SIGTERM or `kraken-actors stop`."""
    loaded = _load(args.config)
    if loaded is None:
        return 2
    from configuration.control_port import ControlPortError, check_control_port

    try:  # first, in a moment (no actors imported yet): else a taken port is found after everything else is up
        check_control_port(loaded)
    except ControlPortError as exc:
        line = str(exc)
        if exc.in_use and (loaded.storage_dir / "instance.lock").is_file():  # maybe an instance of this config
            from actors.preflight import Problem, check_no_other_instance

            try:
                check_no_other_instance(loaded)
            except Problem as running:
                line = str(running)
        print(f"{loaded.path}: cannot start:\n  - {line}", file=sys.stderr)
        return 2
    from actors.preflight import preflight
    from configuration import setup_logging

    setup_logging(loaded.config.logging.level)  # the preflight's lines in the console's format too (no file yet)
    report = preflight(loaded, unreachable_is_problem=False)
    if not report.ok:
        _report_problems(loaded.path, report, what="cannot start")
        return 2
    for line in report.warnings:
        print(f"warning: {line}", file=sys.stderr)
    from actors.runner import run_trading

    return run_trading(loaded)


def cmd_simulator(args: argparse.Namespace, rest: list[str]) -> int:
    """Run the standalone Kraken Futures simulator."""
    from simulator.cli import main

    return main(rest)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Actor-model Kraken Futures trading system: one signal, at most one order.",
    )
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="configuration file (default: config.toml)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="start trading (the default command)")
    run.add_argument("--config", default=argparse.SUPPRESS, help="configuration file")
    run.set_defaults(func=cmd_run)

    check = sub.add_parser("check-config", help="validate a configuration and print it with secrets masked")
    check.add_argument("path", nargs="?", help="configuration file (default: --config)")
    check.add_argument("--config", default=argparse.SUPPRESS, help="configuration file")
    check.add_argument(
        "--connect",
        action="store_true",
        help="also check what a start needs: storage writable, database reachable and migratable, control port "
        "free, keys present (demo/live), exchange reachable and the symbols listed",
    )
    check.set_defaults(func=cmd_check_config)

    from control.cli import register

    register(sub)
    from strategies.skeleton import register as register_new_strategy

    register_new_strategy(sub)  # new-strategy NAME [--dir DIR]
    from backtest.cli import register as register_backtest

    register_backtest(sub)  # backtest [--from --to ...], download --from [--to]

    sim = sub.add_parser(
        "simulator",
        help="run the Kraken Futures simulator standalone (see `kraken-actors simulator --help`)",
        add_help=False,
    )
    sim.set_defaults(func=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the chosen command (the console script `kraken-actors` calls this).

    A reader that goes away (`check-config | head -1`) ends the command quietly, whichever command it is.
    """
    try:
        code = _main(argv)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at the interpreter's exit
        return code
    except BrokenPipeError:
        _drop_stdout()
        return 0


def _drop_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's last flush cannot complain about the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real file descriptor (a captured stdout): nothing left to flush into a pipe
        pass


def _main(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv and argv[0] == "simulator":
        return cmd_simulator(argparse.Namespace(), argv[1:])
    args = parser.parse_args(argv)
    if args.command is None:
        args.func = cmd_run
    return int(args.func(args))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
