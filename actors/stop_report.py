"""What a stop leaves on the exchange, in words: the open orders (ours by kind, and external) and the positions.

Plain functions: the gateway reads the exchange (OrderGateway.holdings), the system composes the stop's reply.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from actors.startup import COMMAND
from exchange.reports import OpenOrderReport
from messages.control import HeldOrder, Holdings
from messages.positions import Position
from messages.signals import SignalKind

KIND_NAMES: dict[SignalKind, str] = {
    SignalKind.ENTER_LONG: "entry", SignalKind.ENTER_SHORT: "entry", SignalKind.EXIT: "exit",
    SignalKind.STOP_LOSS: "stop-loss", SignalKind.TAKE_PROFIT: "take-profit",
}
KIND_ORDER = ("entry", "exit", "stop-loss", "take-profit", "external")
_PLURAL = {"entry": "entries", "exit": "exits", "stop-loss": "stop-losses", "take-profit": "take-profits",
           "external": "external"}


def held_orders(open_orders: Iterable[OpenOrderReport], kind_of: Callable[[OpenOrderReport], SignalKind | None],
                traded: Iterable[str]) -> tuple[HeldOrder, ...]:
    """The open orders on the traded symbols, each named by kind (`kind_of`: our intent's kind, None: external)."""
    scope = set(traded)
    held = []
    for order in open_orders:
        if order.symbol not in scope:
            continue
        kind = kind_of(order)
        held.append(HeldOrder(symbol=order.symbol, kind=KIND_NAMES[kind] if kind is not None else "external",
                              side=order.side, amount=order.unfilled, client_order_id=order.client_order_id,
                              exchange_order_id=order.exchange_order_id, price=order.price))
    return tuple(held)


def count_by_kind(orders: Iterable[HeldOrder]) -> Mapping[str, int]:
    """How many orders of each kind, in KIND_ORDER."""
    counts = dict.fromkeys(KIND_ORDER, 0)
    for order in orders:
        counts[order.kind] = counts.get(order.kind, 0) + 1
    return {kind: n for kind, n in counts.items() if n}


def describe_orders(orders: tuple[HeldOrder, ...]) -> str:
    """"3 open orders (1 entry, 1 stop-loss, 1 external)", or "no open order"."""
    if not orders:
        return "no open order"
    counts = count_by_kind(orders)
    parts = ", ".join(f"{n} {kind if n == 1 else _PLURAL.get(kind, kind)}" for kind, n in counts.items())
    return f"{len(orders)} open order{'s' if len(orders) != 1 else ''} ({parts})"


def describe_positions(positions: tuple[Position, ...]) -> str:
    """"1 open position (BTC/USD:USD long 0.01)", or "no open position"."""
    open_ = [p for p in positions if p.is_open]
    if not open_:
        return "no open position"
    parts = ", ".join(f"{p.symbol} {p.side.value} {p.contracts}" for p in open_)
    return f"{len(open_)} open position{'s' if len(open_) != 1 else ''} ({parts})"


def describe_left(holdings: Holdings, *, acted: bool) -> str:
    """What stays on the exchange after the stop, and how to close it (`acted`: the stop cancelled or flattened)."""
    if holdings.problem:
        return (f"what stays on the exchange could not be read ({holdings.problem}): check open orders and positions "
                "on Kraken")
    positions = tuple(p for p in holdings.positions if p.is_open)
    if not holdings.orders and not positions:
        return "nothing stays on the exchange: no open order, no open position"
    text = f"stays on the exchange: {describe_orders(holdings.orders)}; {describe_positions(positions)}"
    if holdings.orders:
        text += "; " + ", ".join(_order_line(o) for o in holdings.orders)
    if not acted:
        text += (f". To close them: `{COMMAND} stop --cancel-orders` (cancels every open order) or `{COMMAND} stop "
                 f"--flatten` (closes positions and cancels orders); once stopped: start again and `{COMMAND} cancel "
                 "--all --pause` / `flatten --all --pause`, or close them on Kraken")
    else:
        text += ": close them on Kraken, or start again and retry"
    return text


def _order_line(order: HeldOrder) -> str:
    at = f" @ {order.price}" if order.price is not None else ""
    name = order.client_order_id or order.exchange_order_id
    return f"{order.symbol} {order.kind} {order.side.value} {order.amount}{at} ({name})"


__all__ = ["KIND_NAMES", "count_by_kind", "describe_left", "describe_orders", "describe_positions", "held_orders"]
