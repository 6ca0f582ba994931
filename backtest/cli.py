"""`kraken-actors backtest` and `kraken-actors download`: parse the flags, read the files, run, write the report."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from configuration import ConfigError, LoadedConfig, read_config, validate_config

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # Ctrl-C: the partial report was written and printed


class UsageError(ValueError):
    """A flag or file that cannot be used; the message says what to change."""


def parse_time(text: str, flag: str) -> int:
    """Epoch ms of a UTC date or date-time (`2024-01-01`, `2024-01-01T12:00`, `...Z`); UsageError otherwise."""
    value = text.strip()
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{flag} {text!r} is not a date or time: write it as 2024-01-01 or 2024-01-01T12:00 "
                         "(UTC)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def parse_param(text: str) -> tuple[str, Any]:
    """`key=value` with the value read as TOML (5, 0.5, true, "text"); a bare word is a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"--param {text!r}: write it as NAME=VALUE, e.g. --param fast=5")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.strip(), value


def _symbols(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [s.strip() for value in values for s in value.split(",") if s.strip()]


def configured(args: argparse.Namespace) -> LoadedConfig:
    """The configuration file with the command line's changes (symbols, timeframe, strategy, params), validated as a
    whole, so a bad flag is reported like a bad key."""
    path = Path(args.config).expanduser().resolve()
    raw = read_config(path)
    trading = raw.setdefault("trading", {})
    symbols = _symbols(args.symbols)
    if symbols:
        trading["symbols"] = symbols
    if args.timeframe:
        trading["timeframe"] = args.timeframe
    strategy = raw.setdefault("strategy", {})
    if args.strategy:
        strategy["name"] = args.strategy
        strategy["params"] = {}
    if args.param:
        strategy.setdefault("params", {}).update(dict(parse_param(p) for p in args.param))
    return validate_config(raw, path)


def print_config_error(exc: ConfigError) -> None:
    """Every problem, one line each."""
    print(f"{exc.path}: configuration is not valid:", file=sys.stderr)
    for line in exc.errors:
        print(f"  - {line}", file=sys.stderr)


@contextmanager
def interrupt_sets(event: threading.Event) -> Iterator[None]:
    """While inside: Ctrl-C (SIGINT) sets `event` (the run stops at the next step and reports); a second one stops
    at once."""
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: FrameType | None) -> None:
        if event.is_set():
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        event.set()
        print("\nstopping: the report covers the candles so far (Ctrl-C again to stop at once)", file=sys.stderr)

    installed = threading.current_thread() is threading.main_thread()
    if installed:
        signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        if installed:
            signal.signal(signal.SIGINT, previous)


def _started(command: str, args: argparse.Namespace, level: str) -> LoadedConfig | None:
    """The configuration with the flags' changes, logging set up; None after saying what is wrong."""
    try:
        loaded = configured(args)
        if command == "download":
            _download_period(args)
    except ConfigError as exc:
        print_config_error(exc)
        return None
    except UsageError as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return None
    from configuration import setup_logging

    setup_logging(level)
    return loaded


def cmd_backtest(args: argparse.Namespace) -> int:
    """Run one backtest; print the report (text, or --json) and write report.json, equity.png and report.html."""
    loaded = _started("backtest", args, "INFO" if args.verbose else "WARNING")
    if loaded is None:
        return EXIT_BAD_INPUT
    try:
        return _backtest(loaded, args)
    except UsageError as exc:
        print(f"backtest: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _period(loaded: LoadedConfig, args: argparse.Namespace) -> tuple[int | None, int | None]:
    cfg = loaded.config.backtest
    start_text, end_text = args.start or cfg.start, args.end or cfg.end
    start = parse_time(start_text, "--from" if args.start else "[backtest] start") if start_text else None
    end = parse_time(end_text, "--to" if args.end else "[backtest] end") if end_text else None
    if start is not None and end is not None and end <= start:
        raise UsageError(f"the period ends ({end_text}) before it starts ({start_text})")
    return start, end


def _backtest(loaded: LoadedConfig, args: argparse.Namespace) -> int:
    from backtest.data import CandleFileError, read_candle_series
    from backtest.driver import Backtest, BacktestError, BacktestSettings

    config = loaded.config
    start, end = _period(loaded, args)
    data = Path(args.data) if args.data else loaded.resolve(config.backtest.data_dir)
    timeframe = config.trading.timeframe
    candles = {}
    for symbol in config.trading.symbols:
        try:
            series = read_candle_series(data, symbol, timeframe, start, end)
        except CandleFileError as exc:
            print(f"backtest: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        if not series.candles:
            print(f"backtest: {series.path} holds no {timeframe} candle of {symbol} in the period; its candles or "
                  "another --from/--to", file=sys.stderr)
            return EXIT_BAD_INPUT
        if series.missing:
            print(f"backtest: note: {series.path}: {series.missing} candles missing in {series.gaps} gaps (the price "
                  "stands still through a gap)", file=sys.stderr)
        candles[symbol] = series.candles
    bt_cfg = config.backtest
    settings = BacktestSettings(
        seed=args.seed if args.seed is not None else config.paper.seed, initial_balance=config.paper.initial_balance,
        spread=bt_cfg.spread, funding_rate=bt_cfg.funding_rate, maker_fee=bt_cfg.maker_fee,
        taker_fee=bt_cfg.taker_fee)
    search = None
    from configuration.loading import strategy_search_path

    search = strategy_search_path(config.strategy.path, loaded.base_dir)
    from strategies import build_strategy

    params = loaded.strategy_params.model_dump()
    try:
        backtest = Backtest(config, candles, settings=settings,
                            strategy_factory=lambda _s: build_strategy(config.strategy.name, params, search))
    except BacktestError as exc:
        print(f"backtest: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    pinned = pin_to_one_cpu()
    if pinned is not None and args.verbose:
        print(f"backtest: running on CPU {pinned}", file=sys.stderr)
    started = time.monotonic()
    with interrupt_sets(backtest.stop), _progress_bar(backtest, enabled=not args.no_progress):
        try:
            result = backtest.run()
        except BacktestError as exc:
            print(f"backtest: {exc}", file=sys.stderr)
            return 1
    elapsed = time.monotonic() - started
    return _report(loaded, args, result, elapsed)


def pin_to_one_cpu() -> int | None:
    """Keep this process on one CPU (Linux): its actor threads share one GIL, so a second CPU runs nothing in
    parallel, while every hand-off between threads on two CPUs costs ~75-90 us instead of ~13 (benchmarks/README.md,
    "Backtest"). Returns the CPU, or None where affinity cannot be set."""
    setter = getattr(os, "sched_setaffinity", None)
    getter = getattr(os, "sched_getaffinity", None)
    if setter is None or getter is None:
        return None
    try:
        cpu = max(getter(0))
        setter(0, {cpu})
    except (OSError, ValueError):
        return None
    return int(cpu)


@contextmanager
def _progress_bar(backtest: Any, enabled: bool) -> Iterator[None]:
    """A tqdm bar on stderr (a terminal only) fed from the run's progress every tenth of a second."""
    if not enabled or not sys.stderr.isatty():
        yield
        return
    from backtest.progress import progress_bar

    done = threading.Event()
    bar = progress_bar(backtest.progress.total, "backtest", "close")

    def feed() -> None:
        while not done.wait(0.1):
            bar.n = backtest.progress.done
            bar.refresh()

    feeder = threading.Thread(target=feed, name="backtest-progress", daemon=True)
    feeder.start()
    try:
        yield
    finally:
        done.set()
        feeder.join()
        bar.n = backtest.progress.done
        bar.close()


def _report(loaded: LoadedConfig, args: argparse.Namespace, result: Any, elapsed_s: float) -> int:
    from backtest.plot import write_html, write_png
    from backtest.report import BacktestReport, iso_ms

    report = BacktestReport.from_result(result)
    folder = Path(args.out) if args.out else loaded.resolve(loaded.config.backtest.report_dir) / _run_name(result)
    folder.mkdir(parents=True, exist_ok=True)
    text_json = report.to_json()
    (folder / "report.json").write_text(text_json + "\n", encoding="utf-8")
    written = [folder / "report.json"]
    if not args.no_plot:
        written.append(write_png(report, folder / "equity.png"))
        written.append(write_html(report, folder / "report.html"))
    if args.json:
        print(text_json)
    else:
        from configuration.logs import terminal_width

        print(report.to_text(width=max(60, terminal_width(sys.stdout) or 100)))
    rate = result.candle_steps / elapsed_s if elapsed_s > 0 else 0.0
    print(f"backtest: {result.candle_steps} candles ({len(result.symbols)} symbols, "
          f"{iso_ms(result.start_ms)} to {iso_ms(result.end_ms)}) in {elapsed_s:.1f} s, {rate:,.0f} candles/s; "
          f"wrote {', '.join(str(p) for p in written)}", file=sys.stderr)
    if not result.complete:
        print("backtest: interrupted: a partial report of the candles so far", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def _run_name(result: Any) -> str:
    """A run's folder: strategy, first and last time (UTC), e.g. ma_crossover-20240101T0000-20240108T0000."""
    def stamp(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y%m%dT%H%M")

    name = str(result.strategy).replace(":", "-").replace("/", "-").replace(".", "-")
    return f"{name}-{stamp(result.start_ms)}-{stamp(result.end_ms)}"


def _download_period(args: argparse.Namespace) -> tuple[int, int]:
    """--from and --to (default: now) in epoch ms; UsageError when they are not a period."""
    start = parse_time(args.start, "--from")
    end = parse_time(args.end, "--to") if args.end else int(time.time() * 1000)
    if end <= start:
        raise UsageError(f"the period ends ({args.end or 'now'}) before it starts ({args.start})")
    return start, end


def cmd_download(args: argparse.Namespace) -> int:
    """Fetch Kraken's charts into candle files (demo/live, or [exchange] url), with a progress bar."""
    loaded = _started("download", args, "WARNING")
    if loaded is None:
        return EXIT_BAD_INPUT
    start, end = _download_period(args)
    config = loaded.config
    url = config.exchange.url
    if not url and config.mode == "paper":
        print(f"download: {loaded.path} is in paper mode, whose prices are invented: set mode = \"demo\" or \"live\" "
              "(Kraken's charts; no keys needed) or [exchange] url to a Kraken-Futures-compatible server",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    from backtest.data import CandleFileError
    from backtest.download import DownloadError, download_to_files
    from exchange.client import KRAKEN_BASE_URLS, make_kraken_client

    client = make_kraken_client(url or KRAKEN_BASE_URLS[config.mode], timeout_ms=int(config.exchange.timeout_s * 1000))
    data = Path(args.data) if args.data else loaded.resolve(config.backtest.data_dir)
    try:
        paths = download_to_files(client, config.trading.symbols, config.trading.timeframe, start, end, data,
                                  fmt=args.format or config.backtest.data_format, progress=not args.no_progress)
    except (DownloadError, CandleFileError) as exc:
        print(f"download: {exc}", file=sys.stderr)
        return 1
    for path in paths:
        print(path)
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=argparse.SUPPRESS, help="configuration file")
    parser.add_argument("--symbols", action="append", metavar="S[,S...]",
                        help="markets (default: [trading] symbols), e.g. BTC/USD:USD,ETH/USD:USD")
    parser.add_argument("--timeframe", help="candle timeframe (default: [trading] timeframe), e.g. 1m, 1h")
    parser.add_argument("--data", metavar="DIR", help="candle files' folder (default: [backtest] data_dir)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def register(sub: Any) -> None:
    """Add `backtest` and `download` to the command line."""
    bt = sub.add_parser("backtest", help="run the strategy through the whole system on candle files, with a report")
    _common(bt)
    bt.add_argument("--from", dest="start", metavar="TIME", help="first candle, UTC (default: [backtest] start)")
    bt.add_argument("--to", dest="end", metavar="TIME", help="end, UTC, exclusive (default: [backtest] end)")
    bt.add_argument("--strategy", help="strategy name or module:Class (default: [strategy] name; params reset)")
    bt.add_argument("--param", action="append", metavar="NAME=VALUE", help="a strategy parameter (repeatable)")
    bt.add_argument("--seed", type=int, help="the simulator's seed (default: [paper] seed)")
    bt.add_argument("--json", action="store_true", help="print the report as JSON (the same as report.json)")
    bt.add_argument("--out", metavar="DIR", help="where report.json, equity.png, report.html go "
                                                 "(default: [backtest] report_dir/<strategy>-<from>-<to>)")
    bt.add_argument("--no-plot", action="store_true", help="write report.json only")
    bt.add_argument("--verbose", action="store_true", help="log every order as trading does (default: warnings)")
    bt.set_defaults(func=cmd_backtest)
    dl = sub.add_parser("download", help="fetch Kraken's candles into the files a backtest reads (demo/live mode)")
    _common(dl)
    dl.add_argument("--from", dest="start", metavar="TIME", required=True, help="first candle, UTC")
    dl.add_argument("--to", dest="end", metavar="TIME", help="end, UTC, exclusive (default: now)")
    dl.add_argument("--format", choices=("csv", "parquet"), help="file format (default: [backtest] data_format)")
    dl.set_defaults(func=cmd_download, strategy=None, param=None)
