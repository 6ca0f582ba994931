"""The built-in strategies: a moving-average crossover that enters and exits, and the scripted one."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from messages import Candle, PositionSide, SignalKind, timeframe_ms
from strategies import MovingAverageCrossover, ScriptedParams, ScriptedStrategy, build_strategy, scripted_signal

MINUTE = timeframe_ms("1m")
ROOT = Path(__file__).resolve().parent.parent


def candles(closes: list[float], start: int = 0) -> list[Candle]:
    return [
        Candle(symbol="BTC/USD:USD", timeframe="1m", open_time=start + i * MINUTE, open=Decimal(str(c)),
               high=Decimal(str(c)), low=Decimal(str(c)), close=Decimal(str(c)))
        for i, c in enumerate(closes)
    ]


def test_ma_crossover_enters_long_on_the_cross_up_and_exits_on_the_cross_down() -> None:
    strategy = MovingAverageCrossover.from_params({"fast": 2, "slow": 4})
    flat = [100.0] * 5
    assert strategy.decide(candles(flat), PositionSide.FLAT) is None
    up = candles(flat + [110.0])
    assert strategy.decide(up, PositionSide.FLAT) is SignalKind.ENTER_LONG
    assert strategy.decide(up, PositionSide.LONG) is None  # already in
    down = candles(flat + [110.0, 80.0, 70.0])
    assert strategy.decide(down, PositionSide.LONG) is SignalKind.EXIT
    assert strategy.decide(candles(flat + [90.0]), PositionSide.FLAT) is SignalKind.ENTER_SHORT
    assert strategy.decide(candles(flat + [90.0, 130.0, 140.0]), PositionSide.SHORT) is SignalKind.EXIT


def test_ma_crossover_without_shorts_never_sells_short() -> None:
    strategy = MovingAverageCrossover.from_params({"fast": 2, "slow": 4, "shorts": False})
    assert strategy.decide(candles([100.0] * 5 + [90.0]), PositionSide.FLAT) is None


def test_ma_crossover_needs_its_warmup() -> None:
    strategy = MovingAverageCrossover.from_params({"fast": 2, "slow": 4})
    assert strategy.warmup == 5
    assert strategy.decide(candles([100.0, 100.0, 100.0, 110.0]), PositionSide.FLAT) is None


def test_scripted_signals_are_a_pure_function_of_the_candle_time() -> None:
    params = ScriptedParams(period=4, hold=2)
    kinds = [scripted_signal(k * MINUTE, "1m", params) for k in range(8)]
    assert kinds == [SignalKind.ENTER_LONG, None, SignalKind.EXIT, None,
                     SignalKind.ENTER_SHORT, None, SignalKind.EXIT, None]
    shifted = ScriptedParams(period=4, hold=2, offset=1, sides="long")
    assert [scripted_signal(k * MINUTE, "1m", shifted) for k in range(4)] == [
        None, SignalKind.EXIT, None, SignalKind.ENTER_LONG]
    strategy = ScriptedStrategy(params)
    for position in PositionSide:
        assert strategy.decide(candles([1.0, 2.0], start=4 * MINUTE), position) is None
        assert strategy.decide(candles([1.0], start=4 * MINUTE), position) is SignalKind.ENTER_SHORT


def test_strategies_are_built_by_name() -> None:
    assert isinstance(build_strategy("scripted", {"period": 6, "hold": 3}), ScriptedStrategy)
    assert build_strategy("ma_crossover", {}).warmup == 21


@pytest.mark.parametrize("value", [True, "5", 5.0, 10**9])
def test_strategy_parameters_are_strict_bounded_integers(value: object) -> None:
    from pydantic import ValidationError

    from strategies.ma_crossover import MovingAverageCrossoverParams

    with pytest.raises(ValidationError):
        MovingAverageCrossoverParams(fast=value)


# --- a user's own strategy, named package.module:ClassName in [strategy] name -------------------------------------

PLUGIN = '''
from collections.abc import Sequence

from pydantic import Field

from messages import Candle, PositionSide, SignalKind
from strategies import Strategy, StrategyParams


class AboveParams(StrategyParams):
    level: int = Field(default=100, ge=1)


class Above(Strategy):
    """Long while the close is above `level`."""

    Params = AboveParams
    params: AboveParams

    @property
    def warmup(self) -> int:
        return 1

    def decide(self, candles: Sequence[Candle], position: PositionSide) -> SignalKind | None:
        above = candles[-1].close > self.params.level
        if position is PositionSide.FLAT and above:
            return SignalKind.ENTER_LONG
        return SignalKind.EXIT if position is PositionSide.LONG and not above else None


NOT_A_STRATEGY = 42
'''


def check_config(tmp_path: Path, strategy: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`run.py check-config` on a configuration whose [strategy] section is `strategy`, as a user runs it."""
    config = tmp_path / "config.toml"
    config.write_text(f"[strategy]\n{strategy}\n", encoding="utf-8")
    return subprocess.run([sys.executable, str(ROOT / "run.py"), "check-config", str(config)], cwd=cwd or tmp_path,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def plugin_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "above_strategy.py").write_text(PLUGIN, encoding="utf-8")
    return folder


def test_check_config_imports_a_strategy_named_module_colon_class_from_the_config_folder(plugin_folder: Path) -> None:
    done = check_config(plugin_folder, 'name = "above_strategy:Above"\nparams = { level = 7 }',
                        cwd=plugin_folder.parent)  # run from elsewhere: the configuration's folder is searched
    assert done.returncode == 0, done.stderr
    assert 'name = "above_strategy:Above"' in done.stdout and "level = 7" in done.stdout


def test_strategy_path_names_the_folder_the_strategy_is_imported_from(plugin_folder: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "configs"
    elsewhere.mkdir()
    done = check_config(elsewhere, 'name = "above_strategy:Above"\npath = "../mine"')
    assert done.returncode == 0, done.stderr
    refused = check_config(elsewhere, 'name = "above_strategy:Above"')
    assert refused.returncode == 2 and "module 'above_strategy' not found" in refused.stderr


@pytest.mark.parametrize(("strategy", "says"), [
    ('name = "no_such_module:Thing"', "strategy.name: module 'no_such_module' not found"),
    ('name = "above_strategy:Below"', "strategy.name: module 'above_strategy' has no class 'Below'; Strategy classes "
                                      "there: Above"),
    ('name = "above_strategy:NOT_A_STRATEGY"', "strategy.name: 'above_strategy:NOT_A_STRATEGY' is not a Strategy "
                                               "subclass (it is a int)"),
    ('name = "above_strategy:AboveParams"', "is not a Strategy subclass (it is the class above_strategy.AboveParams)"),
    ('name = "above strategy:Above"', "is not a strategy reference: write a built-in name"),
    ('name = "above_strategy:Above"\nparams = { level = 0 }', "strategy.params.level: must be >= 1, got 0"),
    ('name = "above_strategy:Above"\nparams = { levle = 5 }', "strategy.params.levle:"),
])
def test_check_config_names_what_is_wrong_with_a_strategy_class_without_a_traceback(
        plugin_folder: Path, strategy: str, says: str) -> None:
    done = check_config(plugin_folder, strategy)
    assert done.returncode == 2
    assert says in done.stderr, done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_a_strategy_module_that_raises_on_import_is_reported_not_raised(tmp_path: Path) -> None:
    (tmp_path / "broken_strategy.py").write_text("raise RuntimeError('needs an API key')\n", encoding="utf-8")
    done = check_config(tmp_path, 'name = "broken_strategy:Broken"')
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "strategy.name: module 'broken_strategy' failed to import: RuntimeError: needs an API key" in done.stderr


def test_a_strategy_class_is_built_by_its_module_and_class_name(plugin_folder: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from strategies import UnknownStrategyError, strategy_class

    monkeypatch.setattr(sys, "path", list(sys.path))  # the folder it puts on sys.path goes after the test
    monkeypatch.delitem(sys.modules, "above_strategy", raising=False)

    cls = strategy_class("above_strategy:Above", [plugin_folder])
    strategy = build_strategy("above_strategy:Above", {"level": 50})
    assert isinstance(strategy, cls) and strategy.name == "above_strategy:Above"
    assert strategy.decide(candles([60.0]), PositionSide.FLAT) is SignalKind.ENTER_LONG
    with pytest.raises(UnknownStrategyError, match="unknown strategy 'nope'; available: ma_crossover, scripted, "
                                                   "or your own class as package.module:ClassName"):
        strategy_class("nope")


def test_the_readme_shows_the_test_new_strategy_writes_and_its_worked_example_runs(tmp_path: Path) -> None:
    import re

    from strategies.skeleton import TEST_TEMPLATE

    readme = (ROOT / "strategies" / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    assert TEST_TEMPLATE.format(name="breakout", cls="Breakout") in blocks
    [example] = [b for b in blocks if "class Momentum(Strategy)" in b]
    namespace: dict[str, object] = {}
    exec(compile(example, "README momentum example", "exec"), namespace)  # noqa: S102 - our own README
    momentum = namespace["Momentum"].from_params({"streak": 2})  # type: ignore[attr-defined]
    assert momentum.decide(candles([100.0, 101.0, 102.0]), PositionSide.FLAT) is SignalKind.ENTER_LONG
    assert momentum.decide(candles([100.0, 102.0, 101.0]), PositionSide.FLAT) is None
    assert momentum.decide(candles([102.0, 101.0, 100.0]), PositionSide.LONG) is SignalKind.EXIT
