"""Portfolio-wide risk: open-position slots and notional, reserved one request at a time."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from messages import (
    IntentRecord,
    MarketSpec,
    OrderState,
    OrderUpdate,
    Position,
    PositionsSnapshot,
    Reason,
    RiskDecision,
    RiskRequest,
)


@dataclass(frozen=True)
class RiskLimits:
    """The configured limits."""

    max_open_positions: int
    max_notional_per_order: Decimal
    max_total_notional: Decimal


@dataclass
class RiskBook:
    """Counts open positions, entry orders in flight and filled-but-not-yet-synced entries against the limits."""

    limits: RiskLimits
    markets: dict[str, MarketSpec]
    positions: dict[str, Position] = field(default_factory=dict)
    reservations: dict[str, tuple[str, Decimal]] = field(default_factory=dict)  # intent hash -> symbol, notional
    provisional: dict[str, tuple[int, Decimal]] = field(default_factory=dict)  # symbol -> report seq, notional

    def load_open_intents(self, records: list[IntentRecord]) -> None:
        """Reserve for every unfinished entry found in the database (after a restart)."""
        for record in records:
            if not record.reduce_only and not record.state.is_final:
                market = self.markets.get(record.symbol)
                notional = market.notional_of(record.amount, record.price) if market else record.notional
                self.reservations[record.intent_hash] = (record.symbol, notional)

    def open_symbols(self) -> set[str]:
        """Symbols that hold a position or a risk slot (open, filling, or reserved)."""
        symbols = {s for s, p in self.positions.items() if p.is_open}
        symbols.update(self.provisional)
        symbols.update(symbol for symbol, _ in self.reservations.values())
        return symbols

    def total_notional(self) -> Decimal:
        """Notional of positions (at entry price) plus unsynced fills plus reservations."""
        total = Decimal(0)
        for symbol, position in self.positions.items():
            if position.is_open and position.entry_price is not None:
                market = self.markets.get(symbol)
                size = market.contract_size if market else Decimal(1)
                total += position.contracts * position.entry_price * size
        total += sum((n for _, n in self.provisional.values()), Decimal(0))
        total += sum((n for _, n in self.reservations.values()), Decimal(0))
        return total

    def reserve(self, request: RiskRequest) -> RiskDecision:
        """Grant or deny room for one entry order; grants are remembered until the order ends."""
        if request.intent_hash in self.reservations:
            return RiskDecision(granted=True, detail="already reserved")
        limits = self.limits
        if request.notional > limits.max_notional_per_order:
            return self._deny(f"order notional {request.notional:.2f} > max_notional_per_order {limits.max_notional_per_order}")
        symbols = self.open_symbols()
        if request.symbol not in symbols and len(symbols) >= limits.max_open_positions:
            held = ", ".join(sorted(symbols))
            return self._deny(f"max_open_positions {limits.max_open_positions} reached ({held})")
        total = self.total_notional()
        if total + request.notional > limits.max_total_notional:
            return self._deny(
                f"total notional {total:.2f} + {request.notional:.2f} > max_total_notional {limits.max_total_notional}"
            )
        self.reservations[request.intent_hash] = (request.symbol, request.notional)
        return RiskDecision(granted=True)

    def release(self, intent_hash: str) -> None:
        """Give back a reservation whose order was not sent or ended unfilled."""
        self.reservations.pop(intent_hash, None)

    def on_order_update(self, update: OrderUpdate) -> None:
        """Turn reservations into provisional positions on fills; release them when orders end."""
        if update.intent_hash is None or update.intent_hash not in self.reservations:
            return
        symbol, notional = self.reservations[update.intent_hash]
        if update.filled > 0 and update.state in (OrderState.PARTIALLY_FILLED, OrderState.FILLED, OrderState.CANCELED):
            price = update.average_price
            filled_notional = notional
            market = self.markets.get(symbol)
            if price is not None and market is not None:
                filled_notional = market.notional_of(update.filled, price)
            self.provisional[symbol] = (update.seq, filled_notional)
        if update.state.is_final:
            self.reservations.pop(update.intent_hash, None)

    def on_snapshot(self, snapshot: PositionsSnapshot) -> None:
        """Replace positions; provisional entries the snapshot already includes are dropped."""
        self.positions = {p.symbol: p for p in snapshot.positions}
        self.provisional = {s: (seq, n) for s, (seq, n) in self.provisional.items() if seq > snapshot.seq}

    @staticmethod
    def _deny(detail: str) -> RiskDecision:
        return RiskDecision(granted=False, reason=Reason.RISK_LIMIT.value, detail=detail)
