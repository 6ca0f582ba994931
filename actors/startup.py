"""What the start-up log says about the operator's durable controls: which symbols are paused or halted, since
when, by whom, and the command that lifts it (pause and halt survive a restart, so a start must say so)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from messages import ControlRecord, LoadSymbol, now_ms

COMMAND = "kraken-actors"


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if ms else "unknown time"


def _describe(record: ControlRecord) -> str:
    by = record.source or "unknown"
    reason = f": {record.reason}" if record.reason else ""
    return f"{record.symbol} (since {_when(record.updated_at)}, by {by}{reason})"


def control_lines(records: Iterable[ControlRecord]) -> list[str]:
    """Two lines: the paused symbols and the halted ones (each `none` when none), each with how to lift it.

    A record's time and source are those of its last change (pause and halt share one row per symbol).
    """
    rows = list(records)
    paused = [r for r in rows if r.paused]
    halted = [r for r in rows if r.halted]
    lines = []
    if paused:
        lines.append("paused (no new orders; orders and positions stay): " + "; ".join(map(_describe, paused))
                     + f" - resume with `{COMMAND} resume SYMBOL` (or --all)")
    else:
        lines.append("paused: none")
    if halted:
        lines.append("halted (exits only): " + "; ".join(map(_describe, halted))
                     + f" - lift with `{COMMAND} unhalt` (or `unhalt SYMBOL`)")
    else:
        lines.append("halted: none")
    return lines


def read_controls(symbols: Iterable[str], ask: Callable[[LoadSymbol], object]) -> list[ControlRecord]:
    """Every symbol's durable control state, read through the persistence actor's LoadSymbol (`ask`)."""
    since = now_ms()  # no intent hashes wanted: only the control row
    records = []
    for symbol in symbols:
        boot = ask(LoadSymbol(symbol=symbol, since=since))
        control = getattr(boot, "control", None)
        if isinstance(control, ControlRecord):
            records.append(control)
    return records


__all__ = ["COMMAND", "control_lines", "read_controls"]
