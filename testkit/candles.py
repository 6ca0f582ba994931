"""Candles for a strategy test, built from a list of closes."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from messages import Candle, timeframe_ms

T0 = 1_800_000_000_000  # 2027-01-15 08:00 UTC: a minute, hour and day boundary


def _decimal(value: float | int | str | Decimal) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def make_candles(closes: Iterable[float | int | str | Decimal], *, symbol: str = "BTC/USD:USD",
                 timeframe: str = "1m", start: int = T0) -> list[Candle]:
    """One closed candle per close, oldest first, `timeframe` apart from `start` (epoch ms, aligned to the
    timeframe). Each candle opens at the previous close (the first at its own close), high and low span both."""
    step = timeframe_ms(timeframe)
    if start % step:
        raise ValueError(f"start {start} is not aligned to the timeframe {timeframe} ({step} ms)")
    out: list[Candle] = []
    previous: Decimal | None = None
    for i, value in enumerate(closes):
        close = _decimal(value)
        opened = previous if previous is not None else close
        out.append(Candle(symbol=symbol, timeframe=timeframe, open_time=start + i * step, open=opened,
                          high=max(opened, close), low=min(opened, close), close=close, volume=Decimal(1)))
        previous = close
    return out
