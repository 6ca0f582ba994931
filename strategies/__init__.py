"""The strategy interface and the built-in strategies."""

from strategies.base import Strategy, StrategyParams
from strategies.ma_crossover import MovingAverageCrossover, MovingAverageCrossoverParams
from strategies.registry import STRATEGIES, UnknownStrategyError, build_strategy, strategy_class
from strategies.scripted import ScriptedParams, ScriptedStrategy, scripted_signal

__all__ = [
    "STRATEGIES",
    "MovingAverageCrossover",
    "MovingAverageCrossoverParams",
    "ScriptedParams",
    "ScriptedStrategy",
    "Strategy",
    "StrategyParams",
    "UnknownStrategyError",
    "build_strategy",
    "scripted_signal",
    "strategy_class",
]
