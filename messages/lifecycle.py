"""Messages actors send each other about their own lives: candles, ticks, deaths, restarts, history after a restart."""

from __future__ import annotations

from pydantic import Field

from messages._base import Message, now_ms
from messages.market import Candle


class Candles(Message):
    """Newly closed candles for one symbol; `live` is False for start-up history (no trading)."""

    symbol: str
    candles: tuple[Candle, ...]
    live: bool = True


class Ping(Message):
    """Are you running? Every actor answers True (used right after start: on_start failures are silent)."""


class Tick(Message):
    """A timer's tick; `name` says which timer."""

    name: str = "tick"
    time: int = Field(default_factory=now_ms)


class SymbolDied(Message):
    """A symbol actor tells its supervisor that it died, and of what."""

    symbol: str
    actor_urn: str
    error: str


class RestartSymbol(Message):
    """The supervisor's own reminder to start a fresh actor for a symbol after its back-off."""

    symbol: str


class SendHistory(Message):
    """Ask the market-data actor to send a symbol's recent closed candles again (after a restart)."""

    symbol: str
