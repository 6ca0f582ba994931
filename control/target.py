"""What the running trading system offers the control endpoint."""

from __future__ import annotations

from typing import Protocol, TypeAlias, runtime_checkable

from messages.control import (
    CancelOrders,
    ControlReply,
    Flatten,
    Halt,
    Pause,
    PortfolioStatus,
    ReportQuery,
    ReportReply,
    Resolve,
    Resume,
    Shutdown,
    Unhalt,
)

ControlMessage: TypeAlias = Pause | Resume | Halt | Unhalt | CancelOrders | Flatten | Resolve


@runtime_checkable
class ControlTarget(Protocol):
    """The running system as the control endpoint sees it; every method is called from a request thread."""

    def status(self) -> PortfolioStatus:
        """Portfolio totals and one row per symbol."""
        ...

    def control(self, message: ControlMessage) -> ControlReply:
        """Apply a control message; an unknown symbol gives ok=False with a detail starting "unknown symbol"."""
        ...

    def shutdown(self, message: Shutdown) -> ControlReply:
        """Start a clean stop and return at once (the stop itself must not wait on this request)."""
        ...


@runtime_checkable
class ReportTarget(Protocol):
    """A running system that also answers the read-only reports (trades, orders, pnl, why, markets)."""

    def report(self, query: ReportQuery) -> ReportReply:
        """One report; a symbol it does not trade gives ok=False, code UNKNOWN_SYMBOL, naming the traded ones."""
        ...
