"""The built-in strategies: a moving-average crossover that enters and exits, and the scripted one."""

from __future__ import annotations

from decimal import Decimal

import pytest

from messages import Candle, PositionSide, SignalKind, timeframe_ms
from strategies import MovingAverageCrossover, ScriptedParams, ScriptedStrategy, build_strategy, scripted_signal

MINUTE = timeframe_ms("1m")


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
