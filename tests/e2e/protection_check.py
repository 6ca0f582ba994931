"""The protection promises, checked from the simulator's own records (every order and fill with its times).

- never two resting stop-losses (or two take-profits) at once on one market;
- no protective order rests on a flat market (or on the wrong side of the position) for longer than `allowance_ms`
  of the time the bot was running;
- no open position goes without a resting stop-loss of the right side for longer than `allowance_ms` of the time
  the bot was running (from the moment the position opened, or the bot started).

Times are the simulator's clock (ms). `runs` are the bot's lives, (started, stopped) in that clock: while the bot
is down nothing can cancel or place, so only the time it ran counts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

Interval = tuple[int, int]
PROTECTIVE_TYPES = {"stp": "stop-loss", "trailing_stop": "stop-loss", "take_profit": "take-profit"}
STOP_TYPES = ("stp", "trailing_stop")


def resting_intervals(orders: Iterable[dict[str, Any]], now: int) -> list[dict[str, Any]]:
    """Each placed protective order with the time it rested untriggered: [placed, triggered or closed or now)."""
    rows = []
    for order in orders:
        if order.get("orderType") not in PROTECTIVE_TYPES or order.get("status") != "placed":
            continue
        ends = [t for t in (order.get("triggeredTime"), order.get("closedTime")) if t is not None]
        rows.append({**order, "start": int(order["time"]), "end": int(min(ends)) if ends else now})
    return rows


def position_timeline(fills: Iterable[dict[str, Any]]) -> dict[str, list[tuple[int, Decimal]]]:
    """symbol -> [(time, signed position after the fills at that time)], in time order."""
    position: dict[str, Decimal] = defaultdict(Decimal)
    timeline: dict[str, list[tuple[int, Decimal]]] = defaultdict(list)
    for fill in sorted(fills, key=lambda f: (f["time"], f["fill_id"])):
        size = Decimal(str(fill["size"]))
        position[fill["symbol"]] += size if fill["side"] == "buy" else -size
        line = timeline[fill["symbol"]]
        if line and line[-1][0] == fill["time"]:
            line[-1] = (fill["time"], position[fill["symbol"]])
        else:
            line.append((fill["time"], position[fill["symbol"]]))
    return timeline


def _segments(line: list[tuple[int, Decimal]], now: int) -> list[tuple[int, int, Decimal]]:
    """(start, end, position) pieces of a market's position timeline, flat before the first fill."""
    pieces, start, size = [], 0, Decimal(0)
    for time, after in line:
        pieces.append((start, time, size))
        start, size = time, after
    pieces.append((start, now, size))
    return [p for p in pieces if p[1] > p[0]]


def _overlap(a: Interval, b: Interval) -> int:
    return max(0, min(a[1], b[1]) - max(a[0], b[0]))


def protection_problems(orders: Iterable[dict[str, Any]], fills: Iterable[dict[str, Any]], runs: Sequence[Interval],
                        now: int, allowance_ms: int) -> list[str]:
    """Every broken protection promise, one line each."""
    problems: list[str] = []
    resting = resting_intervals(orders, now)
    by_market: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in resting:  # a fixed and a trailing stop-loss are both stops: never two at once
        by_market[(row["symbol"], "stp" if row["orderType"] in STOP_TYPES else row["orderType"])].append(row)
    for (symbol, kind), rows in sorted(by_market.items()):
        rows.sort(key=lambda r: r["start"])
        for earlier, later in zip(rows, rows[1:], strict=False):
            if later["start"] < earlier["end"]:
                problems.append(f"{symbol}: two {PROTECTIVE_TYPES[kind]} orders rested at once: {earlier['cliOrdId']} "
                                f"and {later['cliOrdId']} ({later['start']}-{min(earlier['end'], later['end'])})")
    timeline = position_timeline(fills)
    for row in resting:  # orphans: resting while the market is flat or the position is the other way
        for run in runs:  # measured within each run: a restart has its own reconciliation to cancel it
            wrong = 0
            for start, end, size in _segments(timeline.get(row["symbol"], []), now):
                protects = (size > 0 and row["side"] == "sell") or (size < 0 and row["side"] == "buy")
                if not protects:
                    wrong += _overlap((max(start, row["start"]), min(end, row["end"])), run)
            if wrong > allowance_ms:
                problems.append(f"{row['symbol']}: {PROTECTIVE_TYPES[row['orderType']]} {row['cliOrdId']} rested "
                                f"{wrong} ms of a run without a position to protect, more than {allowance_ms}")
    for symbol, line in sorted(timeline.items()):  # unprotected positions
        stops = [r for r in resting if r["symbol"] == symbol and r["orderType"] in STOP_TYPES]
        for start, end, size in _segments(line, now):
            if size == 0:
                continue
            side = "sell" if size > 0 else "buy"
            covered = sorted((max(start, r["start"]), min(end, r["end"])) for r in stops if r["side"] == side
                             and min(end, r["end"]) > max(start, r["start"]))
            gaps, cursor = [], start
            for lo, hi in covered:
                if lo > cursor:
                    gaps.append((cursor, lo))
                cursor = max(cursor, hi)
            if cursor < end:
                gaps.append((cursor, end))
            for gap in gaps:
                for run in runs:  # measured within each run: a restart begins its own count
                    unprotected = _overlap(gap, run)
                    if unprotected > allowance_ms:
                        problems.append(f"{symbol}: position {size} had no stop-loss for {unprotected} ms of a run "
                                        f"({max(gap[0], run[0])}-{min(gap[1], run[1])}), more than {allowance_ms}")
    return problems
