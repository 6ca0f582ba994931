"""`kraken-actors backtest` end to end, as a user runs it: the command line in a process of its own, the shipped week
of candles, every actor, the real ccxt client, the simulator replaying the files; its report checked against a plain
loop over the same candles (tests/e2e/plain_loop.py) that shares nothing with the system but the strategy."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from backtest.data import load_candles
from simulator import start_simulator
from simulator.instruments import INSTRUMENTS, resolve_symbol
from strategies import build_strategy
from tests.e2e.plain_loop import plain_loop

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"
SYMBOLS = ("BTC/USD:USD", "ETH/USD:USD", "SOL/USD:USD")
WEEK_STEPS = 3 * 7 * 1440
FUNDING = "0.0001"  # hourly; higher than the shipped default so that funding shows in cents


def write_config(folder: Path, *, protection: bool = False, strategy: str = "ma_crossover",
                 params: str = "fast = 5\nslow = 20", risk: str = "", data: Path = DATA, extra: str = "") -> Path:
    """A configuration like the shipped one, its storage and reports in `folder`."""
    path = folder / "config.toml"
    path.write_text(f"""
mode = "paper"
storage_dir = "{folder / 'storage'}"
{extra}
[trading]
symbols = [{', '.join(f'"{s}"' for s in SYMBOLS)}]
timeframe = "1m"
order_notional = 100
[risk]
{risk}
[protection]
enabled = {'true' if protection else 'false'}
[strategy]
name = "{strategy}"
[strategy.params]
{params}
[paper]
seed = 7
[backtest]
data_dir = "{data}"
report_dir = "{folder / 'reports'}"
funding_rate = {FUNDING}
""", encoding="utf-8")
    return path


def backtest(config: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """`kraken-actors backtest ARGS` as a user runs it (no terminal: no progress bar)."""
    return subprocess.run([sys.executable, str(ROOT / "run.py"), "--config", str(config), "backtest", *args],
                          capture_output=True, text=True, timeout=timeout, cwd=config.parent, env=_env())


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("COLUMNS", None)
    return env


def loop_of(symbol: str, candles: Any) -> Any:
    """The plain loop's result for one symbol of the shipped week, with the exchange's listed tick and step."""
    kraken_id = resolve_symbol(symbol)
    assert kraken_id is not None
    market = INSTRUMENTS[kraken_id]
    return plain_loop(candles, build_strategy("ma_crossover", {"fast": 5, "slow": 20}), notional=Decimal(100),
                      tick=market.tick_size, amount_step=market.size_step, spread=Decimal("0.0002"),
                      taker_fee=Decimal("0.0005"), funding_rate=Decimal(FUNDING), timeframe_ms=60_000)


def trips_of_loop(symbol: str, result: Any) -> list[tuple[Any, ...]]:
    """(symbol, side, amount, entry ms, entry price, exit ms, exit price) of the loop's closed trades."""
    fills = result.fills
    trips = []
    for entry, exit_ in zip(fills[0::2], fills[1::2], strict=False):
        trips.append((symbol, "long" if entry.side == "buy" else "short", entry.amount, entry.time_ms, entry.price,
                      exit_.time_ms, exit_.price))
    return trips


def trips_of_report(report: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The same tuple for each round trip of the report's JSON."""
    return [(t["symbol"], t["side"], Decimal(t["amount"]), t["entry"]["time"]["ms"], Decimal(t["entry"]["price"]),
             t["exit"]["time"]["ms"], Decimal(t["exit"]["price"])) for t in report["round_trips"]]


@pytest.mark.timeout(300)
def test_the_shipped_week_backtests_to_the_trades_and_pnl_of_a_plain_loop(tmp_path: Path) -> None:
    done = backtest(write_config(tmp_path), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["complete"] is True and report["candle_steps"] == WEEK_STEPS
    expected_trips: list[tuple[Any, ...]] = []
    net = Decimal(0)
    for symbol in SYMBOLS:
        result = loop_of(symbol, load_candles(DATA, symbol, "1m"))
        expected_trips += trips_of_loop(symbol, result)
        net += result.net
    got = sorted(trips_of_report(report), key=lambda t: (t[3], t[0]))
    assert len(got) > 100, "the week trades: a check on few trades would prove little"
    assert got == sorted(expected_trips, key=lambda t: (t[3], t[0]))
    assert abs(Decimal(report["pnl"]["net"]) - net) < Decimal("0.005"), (report["pnl"], net)
    assert abs(Decimal(report["balance"]["change"]) - net) < Decimal("0.005")
    assert Decimal(report["pnl"]["funding"]) != 0 and Decimal(report["pnl"]["fees"]) > 0
    folder = tmp_path / "reports" / "ma_crossover-20261102T0000-20261109T0000"
    assert json.loads((folder / "report.json").read_text()) == report
    from PIL import Image

    with Image.open(folder / "equity.png") as image:
        assert image.size == (1200, 700)
        assert len(image.convert("L").getcolors(256) or []) > 10, "the chart is not blank"
    assert "<svg" in (folder / "report.html").read_text()


@pytest.mark.timeout(240)
def test_the_same_data_config_and_seed_give_byte_identical_json(tmp_path: Path) -> None:
    config = write_config(tmp_path, protection=True)
    first = backtest(config, "--json", "--no-plot", "--from", "2026-11-03", "--to", "2026-11-04", "--out",
                     str(tmp_path / "one"))
    second = backtest(config, "--json", "--no-plot", "--from", "2026-11-03", "--to", "2026-11-04", "--out",
                      str(tmp_path / "two"))
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert json.loads(first.stdout)["trades"]["count"] > 20
    assert first.stdout == second.stdout
    assert (tmp_path / "one" / "report.json").read_bytes() == (tmp_path / "two" / "report.json").read_bytes()


@pytest.mark.timeout(240)
def test_ctrl_c_stops_cleanly_with_a_partial_report(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    process = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--config", str(config), "backtest", "--json",
                                "--no-plot", "--verbose"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=tmp_path, env=_env())
    try:
        assert process.stderr is not None
        for line in process.stderr:  # the run is under way once it has traded
            if " filled" in line:
                break
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err[-2000:]
    report = json.loads(out)
    assert report["complete"] is False and report["status"] == "interrupted: partial report"
    assert 0 < report["candle_steps"] < WEEK_STEPS
    assert "interrupted" in err
    assert "Traceback" not in err


@pytest.mark.timeout(240)
def test_refusals_are_counted_by_reason_and_stops_trade_on_the_replayed_range(tmp_path: Path) -> None:
    # one position at a time for three symbols entering together: the other two are refused by the risk limit
    config = write_config(tmp_path, protection=True, strategy="scripted", params="period = 30\nhold = 20",
                          risk="max_open_positions = 1")
    done = backtest(config, "--json", "--no-plot", "--from", "2026-11-02", "--to", "2026-11-03")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["rejections"].get("RISK_LIMIT", 0) >= 40, report["rejections"]
    assert report["trades"]["count"] >= 40


@pytest.mark.timeout(120)
def test_a_missing_file_bad_period_or_unknown_symbol_is_refused_with_what_to_do(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = backtest(write_config(tmp_path, data=empty))
    assert missing.returncode == 2
    assert "PF_XBTUSD_1m" in missing.stderr and "kraken-actors download" in missing.stderr
    assert "Traceback" not in missing.stderr
    bad_time = backtest(write_config(tmp_path), "--from", "yesterday")
    assert bad_time.returncode == 2 and "--from 'yesterday'" in bad_time.stderr
    unknown = backtest(write_config(tmp_path), "--symbols", "NOPE/USD:USD")
    assert unknown.returncode == 2 and "NOPE/USD:USD" in unknown.stderr and "Traceback" not in unknown.stderr
    outside = backtest(write_config(tmp_path), "--from", "2030-01-01")
    assert outside.returncode == 2 and "no 1m candle" in outside.stderr


@pytest.mark.timeout(180)
def test_download_writes_the_files_a_backtest_then_reads(tmp_path: Path) -> None:
    start = 1_793_577_600_000  # 2026-11-02 00:00 UTC
    with start_simulator(clock="stepped", start_time_ms=start, symbols=["BTC/USD:USD"]) as sim:
        sim.simulator.step_to(start + 6 * 3_600_000)
        config = write_config(tmp_path, data=tmp_path / "downloaded", extra=f'[exchange]\nurl = "{sim.base_url}"')
        text = config.read_text().replace('symbols = ["BTC/USD:USD", "ETH/USD:USD", "SOL/USD:USD"]',
                                          'symbols = ["BTC/USD:USD"]')
        config.write_text(text)
        done = subprocess.run([sys.executable, str(ROOT / "run.py"), "--config", str(config), "download", "--from",
                               "2026-11-01T12:00", "--to", "2026-11-02T06:00"], capture_output=True, text=True,
                              timeout=120, cwd=tmp_path, env=_env())
        assert done.returncode == 0, done.stderr
        path = tmp_path / "downloaded" / "PF_XBTUSD_1m.csv"
        assert done.stdout.strip() == str(path)
        served = sim.client().fetch_ohlcv("BTC/USD:USD", "1m", since=start - 12 * 3_600_000, limit=2000)
    candles = load_candles(path, "BTC/USD:USD", "1m")
    assert len(candles) == 18 * 60
    assert [(c.open_time, float(c.close)) for c in candles[:100]] == [(row[0], row[4]) for row in served[:100]]
    ran = backtest(config, "--json", "--no-plot")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["candle_steps"] == 18 * 60


@pytest.mark.timeout(120)
def test_a_strategy_that_raises_stops_the_backtest_saying_where(tmp_path: Path) -> None:
    (tmp_path / "boom.py").write_text('''
from strategies.base import Strategy, StrategyParams


class Boom(Strategy):
    """Raises on its tenth candle."""

    name = "boom"
    Params = StrategyParams

    @property
    def warmup(self) -> int:
        return 1

    def decide(self, candles, position):
        if len(candles) >= 10:
            raise ZeroDivisionError("the strategy divided by zero")
        return None
''', encoding="utf-8")
    config = write_config(tmp_path, strategy="boom:Boom", params="")
    config.write_text(config.read_text().replace('name = "boom:Boom"', f'name = "boom:Boom"\npath = "{tmp_path}"'))
    done = backtest(config, "--no-plot")
    assert done.returncode == 1, done.stderr
    assert "the candle that closed at 2026-11-02T00:10:00Z raised ZeroDivisionError: the strategy divided by zero" \
        in done.stderr
    assert "boom.py" in done.stderr  # the traceback, logged


@pytest.mark.timeout(120)
def test_a_terminal_shows_a_progress_bar_and_a_pipe_does_not(tmp_path: Path) -> None:
    import pty

    config = write_config(tmp_path)
    argv = [sys.executable, str(ROOT / "run.py"), "--config", str(config), "backtest", "--no-plot", "--from",
            "2026-11-02", "--to", "2026-11-02T12:00", "--out", str(tmp_path / "out")]
    primary, secondary = pty.openpty()
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=secondary,
                               cwd=tmp_path, env=_env())
    os.close(secondary)
    seen = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the terminal closed: the process ended
            break
        if not chunk:
            break
        seen += chunk
    os.close(primary)
    assert process.wait(timeout=60) == 0
    text = seen.decode(errors="replace")
    assert "backtest: 100%" in text and "720/720" in text, text[-500:]
    piped = backtest(config, "--no-plot", "--from", "2026-11-02", "--to", "2026-11-02T12:00", "--out",
                     str(tmp_path / "piped"))
    assert piped.returncode == 0 and "%|" not in piped.stderr
