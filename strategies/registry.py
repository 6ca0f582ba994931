"""Strategies by name: the built-in ones, or a user's own class written as `package.module:ClassName`.

`[strategy] name = "ma_crossover"` picks a built-in strategy; `name = "my_strategies.breakout:Breakout"` imports
the module `my_strategies.breakout` (from the installed packages, the folder the command runs in, or the
configuration's `[strategy] path`) and takes its class `Breakout`, which must be a Strategy subclass with a
`Params` model. Every way this can go wrong raises UnknownStrategyError with a sentence saying what is wrong.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from strategies.base import Strategy
from strategies.ma_crossover import MovingAverageCrossover
from strategies.scripted import ScriptedStrategy

STRATEGIES: dict[str, type[Strategy]] = {
    MovingAverageCrossover.name: MovingAverageCrossover,
    ScriptedStrategy.name: ScriptedStrategy,
}

# package.module:ClassName, each part a Python identifier
PLUGIN_NAME = re.compile(r"^(?P<module>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):(?P<cls>[A-Za-z_]\w*)$")


class UnknownStrategyError(ValueError):
    """No strategy of that name, or the class it names cannot be used (the message says why)."""


def is_plugin_name(name: str) -> bool:
    """True when `name` is written as `package.module:ClassName` (a user's strategy, not a built-in)."""
    return ":" in name


def _add_to_sys_path(folders: Sequence[Path]) -> None:
    """Put `folders` first on sys.path (they stay: the imported module may import its neighbours later, and a
    symbol actor started after the configuration was checked builds the same class again)."""
    for folder in reversed([str(f) for f in folders]):
        if folder not in sys.path:
            sys.path.insert(0, folder)


def _import_plugin(name: str, search: Sequence[Path]) -> type[Strategy]:
    match = PLUGIN_NAME.match(name)
    if match is None:
        raise UnknownStrategyError(
            f"{name!r} is not a strategy reference: write a built-in name ({', '.join(sorted(STRATEGIES))}) or "
            "package.module:ClassName, e.g. \"my_strategy:MyStrategy\" for class MyStrategy in my_strategy.py"
        )
    module_name, class_name = match["module"], match["cls"]
    _add_to_sys_path(search)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        where = ", ".join(str(f) for f in search) or "sys.path"
        missing = exc.name or module_name
        raise UnknownStrategyError(
            f"module {module_name!r} not found (no module named {missing!r}; searched {where} and the installed "
            "packages): set [strategy] path to the folder that holds it, or run from that folder"
        ) from None
    except Exception as exc:  # the user's module raised while it was imported: say what, not a traceback
        raise UnknownStrategyError(f"module {module_name!r} failed to import: {type(exc).__name__}: {exc}") from None
    found = getattr(module, class_name, None)
    if found is None:
        classes = sorted(n for n, v in vars(module).items()
                         if inspect.isclass(v) and issubclass(v, Strategy) and v is not Strategy)
        hint = f"; Strategy classes there: {', '.join(classes)}" if classes else "; it defines no Strategy class"
        raise UnknownStrategyError(f"module {module_name!r} has no class {class_name!r}{hint}")
    if not inspect.isclass(found) or not issubclass(found, Strategy):
        what = (f"the class {found.__module__}.{found.__qualname__}" if inspect.isclass(found)
                else f"a {type(found).__name__}")
        raise UnknownStrategyError(f"{name!r} is not a Strategy subclass (it is {what}): subclass strategies.Strategy")
    if inspect.isabstract(found):
        missing_methods = ", ".join(sorted(getattr(found, "__abstractmethods__", ())))
        raise UnknownStrategyError(f"{name!r} does not implement {missing_methods} (abstract methods of Strategy)")
    params = getattr(found, "Params", None)
    if not (inspect.isclass(params) and issubclass(params, BaseModel)):
        raise UnknownStrategyError(
            f"{name!r} has no Params model: set `Params = MyParams` (a strategies.StrategyParams subclass)"
        )
    if not isinstance(getattr(found, "name", None), str):
        found.name = name  # how its signals and logs name it
    return found


def strategy_class(name: str, search: Sequence[Path] = ()) -> type[Strategy]:
    """Return the built-in strategy `name`, or the class `package.module:ClassName` names (imported, `search`
    folders first on sys.path); raise UnknownStrategyError saying what is wrong."""
    if is_plugin_name(name):
        return _import_plugin(name.strip(), search)
    try:
        return STRATEGIES[name]
    except KeyError:
        raise UnknownStrategyError(
            f"unknown strategy {name!r}; available: {', '.join(sorted(STRATEGIES))}, or your own class as "
            "package.module:ClassName"
        ) from None


def build_strategy(name: str, params: dict[str, Any], search: Sequence[Path] = ()) -> Strategy:
    """Build the strategy `name` with `params` (raises UnknownStrategyError or pydantic.ValidationError)."""
    return strategy_class(name, search).from_params(params)
