"""`run.py new-strategy NAME [--dir DIR]`: write a strategy skeleton and its example test, print how to use them.

It writes DIR/NAME.py (a Strategy subclass with its Params, a docstring and TODOs; it runs as written: a
breakout) and DIR/test_NAME.py (tests with the test kit: the strategy alone, inside one symbol actor, the whole
system on the in-process simulator, and its [strategy] section validated as check-config does). It never
overwrites a file. See strategies/README.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import keyword
import re
import sys
from pathlib import Path
from typing import Any

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")

STRATEGY_TEMPLATE = '''"""{title}: a strategy for kraken-actors (see strategies/README.md in the project).

As written it is a breakout: long when the close rises above the highest close of the `lookback` candles
before it, out when the close falls below their lowest close (short the other way round, with shorts = true).
TODO: replace the rule in `decide` with yours, and say here what it does.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from pydantic import Field

from messages import Candle, PositionSide, SignalKind
from strategies import Strategy, StrategyParams


class {cls}Params(StrategyParams):
    """[strategy.params]: validated when the configuration loads (check-config names a bad key or value).

    TODO: your parameters, each with a type, a default and its limits (Field(ge=..., le=...)).
    """

    lookback: int = Field(default=20, ge=1, le=10_000)  # candles the breakout looks back over
    shorts: bool = False  # also sell short below the range


class {cls}(Strategy):
    """Called on every newly closed candle; returns ENTER_LONG, ENTER_SHORT, EXIT or None."""

    name = "{name}"  # how signals and logs name it
    Params = {cls}Params
    params: {cls}Params

    @property
    def warmup(self) -> int:
        """Closed candles needed before `decide` can signal (the system loads at least this much history)."""
        return self.params.lookback + 1

    def decide(self, candles: Sequence[Candle], position: PositionSide) -> SignalKind | None:
        """The signal for the newest candle (candles are oldest first), given the symbol's position.

        Must be quick and pure: no network, no files, no sleeping (it runs inside the symbol actor).
        TODO: your rule.
        """
        if len(candles) < self.warmup:
            return None
        close = candles[-1].close
        before = [c.close for c in candles[-self.params.lookback - 1:-1]]
        high, low = max(before), min(before)
        if position is PositionSide.FLAT:
            if close > high:
                return SignalKind.ENTER_LONG
            if close < low and self.params.shorts:
                return SignalKind.ENTER_SHORT
            return None
        if position is PositionSide.LONG and close < low:
            return SignalKind.EXIT
        if position is PositionSide.SHORT and close > high:
            return SignalKind.EXIT
        return None

    def levels(self, candles: Sequence[Candle], kind: SignalKind) -> tuple[Decimal | None, Decimal | None]:
        """An entry's own stop-loss and take-profit prices; (None, None) uses [protection]'s distances.

        TODO (optional): e.g. a long's stop at the range's low. A level on the wrong side of the entry price
        (the signal candle's close) refuses the signal (BAD_SIGNAL): it is never traded with a guessed stop.
        """
        return None, None
'''

TEST_TEMPLATE = '''"""Tests for {name}.{cls}, with the kraken-actors test kit (run: python -m pytest test_{name}.py).

Three levels, quickest first: the strategy alone (`decide` on candles), inside one symbol actor (the real guard
chain: what it signals, which orders it places, what is refused), and the whole system on the in-process
simulator (orders through the real ccxt client, filled by the simulator by Kraken's rules).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from configuration import ConfigError, load_config
from messages import PositionSide, Reason, Side, SignalKind
from testkit import make_candles, paper_system, symbol_actor
from {name} import {cls}

HERE = Path(__file__).resolve().parent
BTC = "BTC/USD:USD"


def test_decide_enters_on_a_breakout_and_exits_below_the_range() -> None:
    strategy = {cls}.from_params({{"lookback": 3}})
    assert strategy.decide(make_candles([100, 101, 100]), PositionSide.FLAT) is None  # still warming up
    assert strategy.decide(make_candles([100, 101, 100, 101]), PositionSide.FLAT) is None  # inside the range
    assert strategy.decide(make_candles([100, 101, 100, 102]), PositionSide.FLAT) is SignalKind.ENTER_LONG
    assert strategy.decide(make_candles([100, 101, 100, 99]), PositionSide.LONG) is SignalKind.EXIT


def test_in_a_symbol_actor_one_entry_then_one_reduce_only_exit() -> None:
    with symbol_actor({cls}.from_params({{"lookback": 3}})) as actor:
        actor.close(100, 101, 100, 102)  # four closed candles: the last breaks out
        [entry] = actor.orders
        assert entry.side is Side.BUY and not entry.reduce_only

        actor.close(103)  # a second breakout while the entry is not filled yet: refused, no second order
        assert actor.refusals[-1].reason is Reason.ORDER_PENDING and len(actor.orders) == 1

        actor.fill()  # the exchange filled the entry: the strategy now sees a long position
        actor.close(95)  # below the range: exit
        exit_order = actor.orders[-1]
        assert exit_order.side is Side.SELL and exit_order.reduce_only and exit_order.amount == entry.amount


def test_on_the_simulator_the_whole_system_opens_and_closes_the_position() -> None:
    with paper_system({cls}.from_params({{"lookback": 3}})) as paper:
        price = paper.exchange.last_price(BTC)  # the warm-up history stands still there
        paper.close_candle(price * Decimal("1.01"))  # above the range: a market buy, filled
        assert paper.exchange.position(BTC) > 0
        paper.close_candle(price * Decimal("0.98"))  # below the range: the exit closes it
        assert paper.exchange.position(BTC) == 0
        assert [o["side"] for o in paper.exchange.orders(BTC)] == ["buy", "sell"]


def write_config(tmp_path: Path, params: str) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(f'[strategy]\\nname = "{name}:{cls}"\\npath = {{str(HERE)!r}}\\nparams = {{{{ {{params}} }}}}\\n',
                      encoding="utf-8")
    return config


def test_the_configuration_names_it_and_its_params_are_checked(tmp_path: Path) -> None:
    loaded = load_config(write_config(tmp_path, "lookback = 10"))  # what check-config does
    assert loaded.strategy_params.model_dump()["lookback"] == 10
    with pytest.raises(ConfigError, match="strategy.params.lookback"):
        load_config(write_config(tmp_path, "lookback = 0"))
'''


class SkeletonError(ValueError):
    """The skeleton cannot be written (bad name, a file already there, a folder that cannot be written)."""


def class_name(name: str) -> str:
    """The class for a module name: `breakout_v2` -> `BreakoutV2`."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)


def check_name(name: str, folder: Path) -> None:
    """Refuse a NAME that is not a module name, or that would hide a module Python already finds."""
    if not NAME_PATTERN.match(name) or keyword.iskeyword(name):
        raise SkeletonError(
            f"{name!r} is not usable as a module name: lowercase letters, digits and _, starting with a letter "
            "(e.g. breakout or mean_reversion)"
        )
    if folder.joinpath(f"{name}.py").exists():
        return  # reported as "already exists" below
    spec = importlib.util.find_spec(name) if name not in sys.builtin_module_names else True
    if spec is not None:
        raise SkeletonError(f"{name!r} is already a module Python imports ({name} would hide it): choose another name")


def write_skeleton(name: str, folder: Path) -> tuple[Path, Path]:
    """Write folder/NAME.py and folder/test_NAME.py; refuse to overwrite either; return both paths."""
    check_name(name, folder)
    strategy_file, test_file = folder / f"{name}.py", folder / f"test_{name}.py"
    existing = [str(p) for p in (strategy_file, test_file) if p.exists()]
    if existing:
        raise SkeletonError(f"{' and '.join(existing)} already exist{'s' if len(existing) == 1 else ''}: nothing "
                            "written (choose another name or --dir, or move the file away)")
    cls = class_name(name)
    title = name.replace("_", " ").capitalize()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with strategy_file.open("x", encoding="utf-8") as out:
            out.write(STRATEGY_TEMPLATE.format(name=name, cls=cls, title=title))
        with test_file.open("x", encoding="utf-8") as out:
            out.write(TEST_TEMPLATE.format(name=name, cls=cls))
    except OSError as exc:
        raise SkeletonError(f"cannot write into {folder}: {exc.strerror or exc}") from None
    return strategy_file, test_file


def usage_lines(name: str, folder: Path, command: str) -> list[str]:
    """What to paste into the configuration and how to check and test the new strategy."""
    cls = class_name(name)
    return [
        "",
        "Put this [strategy] section in your configuration (config.toml), replacing the one there:",
        "",
        "[strategy]",
        f'name = "{name}:{cls}"',
        f'path = "{folder}"  # the folder of {name}.py (a relative path is from the configuration file\'s folder)',
        "params = { lookback = 20 }",
        "",
        "Then check the configuration (it imports the class and validates its params) and run the tests:",
        "",
        f"  {command} check-config config.toml",
        f"  cd {folder} && python -m pytest test_{name}.py",
    ]


def cmd_new_strategy(args: argparse.Namespace) -> int:
    """Write the skeleton; print what to do next, or why nothing was written (exit 2)."""
    folder = Path(args.dir).expanduser().resolve()
    try:
        strategy_file, test_file = write_skeleton(args.name, folder)
    except SkeletonError as exc:
        print(f"new-strategy: {exc}", file=sys.stderr)
        return 2
    invoked = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    command = "python run.py" if invoked in ("", "run.py", "-c") else invoked  # as the user started it
    print(f"wrote {strategy_file}\nwrote {test_file}")
    print("\n".join(usage_lines(args.name, folder, command)))
    return 0


def register(sub: Any) -> None:
    """Add `new-strategy` to run.py's subcommands."""
    parser = sub.add_parser("new-strategy", help="write a new strategy skeleton and its example test",
                            description="Write DIR/NAME.py (a Strategy subclass) and DIR/test_NAME.py (tests with "
                                        "the test kit); never overwrites. See strategies/README.md.")
    parser.add_argument("name", metavar="NAME", help="module name, e.g. breakout (class Breakout)")
    parser.add_argument("--dir", default=".", help="folder to write into (default: the current folder)")
    parser.set_defaults(func=cmd_new_strategy)
