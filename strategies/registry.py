"""The built-in strategies by name."""

from __future__ import annotations

from typing import Any

from strategies.base import Strategy
from strategies.ma_crossover import MovingAverageCrossover
from strategies.scripted import ScriptedStrategy

STRATEGIES: dict[str, type[Strategy]] = {
    MovingAverageCrossover.name: MovingAverageCrossover,
    ScriptedStrategy.name: ScriptedStrategy,
}


class UnknownStrategyError(ValueError):
    """No strategy of that name."""


def strategy_class(name: str) -> type[Strategy]:
    """Return the strategy class registered as `name`."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise UnknownStrategyError(
            f"unknown strategy {name!r}; available: {', '.join(sorted(STRATEGIES))}"
        ) from None


def build_strategy(name: str, params: dict[str, Any]) -> Strategy:
    """Build the strategy `name` with `params` (raises UnknownStrategyError or pydantic.ValidationError)."""
    return strategy_class(name).from_params(params)
