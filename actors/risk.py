"""Portfolio-wide risk: open-position slots, notional and margin, reserved one request at a time.

Margin (`RiskBook.check_margin`): an entry needs its initial margin — its notional times the market's initial
margin rate for the position it would make (Kraken's `marginLevels`, the highest level reached; no schedule: no
leverage) plus a taker-fee allowance — within the account's available margin as the exchange last reported it
(accounts: flex `availableMargin`, read by the gateway at reconciliation and after fills), less the initial margin
of the entries reserved and not yet ended (the harsher reading: one already resting on the exchange is counted
there too). A margin never read is not proven: every entry is refused (MARGIN_UNKNOWN). Exits never ask for room.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from messages import (
    AccountMargin,
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

# Room an entry keeps for its taker fee beside the initial margin (0.1 % of its notional, above Kraken's listed taker
# fees: the exchange asks initial margin plus the fee of what an order opens, so an entry refused here is not sent
# to be refused there).
FEE_ALLOWANCE = Decimal("0.001")


@dataclass(frozen=True)
class RiskLimits:
    """The configured limits."""

    max_open_positions: int
    max_notional_per_order: Decimal
    max_total_notional: Decimal


@dataclass
class RiskBook:
    """Counts open positions, entry orders in flight and filled-but-not-yet-synced entries against the limits.

    Every reserve is O(1): the book keeps running totals (symbols holding a slot, notional of positions, of
    unsynced fills and of reservations) and updates them on each change, so a burst of 300 entries at one candle
    close costs 300 constant-time decisions, not 300 sums over every position. Change the book only through its
    methods; the dictionaries are for reading.
    """

    limits: RiskLimits
    markets: dict[str, MarketSpec]
    positions: dict[str, Position] = field(default_factory=dict)
    reservations: dict[str, tuple[str, Decimal]] = field(default_factory=dict)  # intent hash -> symbol, notional
    provisional: dict[str, tuple[int, Decimal]] = field(default_factory=dict)  # symbol -> report seq, notional
    _slots: Counter[str] = field(init=False, default_factory=Counter)  # symbol -> what holds its slot (> 0)
    _positions_total: Decimal = field(init=False, default=Decimal(0))
    _provisional_total: Decimal = field(init=False, default=Decimal(0))
    _reserved_total: Decimal = field(init=False, default=Decimal(0))
    check_margin: bool = False  # the running system checks margin; a book built without it (tests) does not
    margin: AccountMargin | None = None  # the exchange's latest report; None: never read
    _reserved_margin: dict[str, Decimal] = field(init=False, default_factory=dict)  # intent hash -> its margin

    def __post_init__(self) -> None:
        positions, reservations, provisional = self.positions, self.reservations, self.provisional
        self.positions, self.reservations, self.provisional = {}, {}, {}
        self._set_positions(positions.values())
        for intent_hash, (symbol, notional) in reservations.items():
            self._reserve(intent_hash, symbol, notional)
        for symbol, (seq, notional) in provisional.items():
            self._set_provisional(symbol, seq, notional)

    # --- the running totals ----------------------------------------------------------------

    def _hold(self, symbol: str, count: int) -> None:
        self._slots[symbol] += count
        if self._slots[symbol] <= 0:
            del self._slots[symbol]

    def _position_notional(self, position: Position) -> Decimal:
        if not position.is_open or position.entry_price is None:
            return Decimal(0)
        market = self.markets.get(position.symbol)
        size = market.contract_size if market else Decimal(1)
        return abs(position.contracts) * position.entry_price * size

    def _set_positions(self, positions: Iterable[Position]) -> None:
        for position in self.positions.values():
            if position.is_open:
                self._hold(position.symbol, -1)
        self.positions = {p.symbol: p for p in positions}
        self._positions_total = Decimal(0)
        for position in self.positions.values():
            if position.is_open:
                self._hold(position.symbol, 1)
                self._positions_total += self._position_notional(position)

    def _reserve(self, intent_hash: str, symbol: str, notional: Decimal) -> None:
        self._unreserve(intent_hash)
        self._reserved_margin[intent_hash] = self.initial_margin(symbol, notional)
        self.reservations[intent_hash] = (symbol, notional)
        self._reserved_total += notional
        self._hold(symbol, 1)

    def _unreserve(self, intent_hash: str) -> None:
        held = self.reservations.pop(intent_hash, None)
        self._reserved_margin.pop(intent_hash, None)
        if held is not None:
            self._reserved_total -= held[1]
            self._hold(held[0], -1)

    def _set_provisional(self, symbol: str, seq: int, notional: Decimal) -> None:
        self._drop_provisional(symbol)
        self.provisional[symbol] = (seq, notional)
        self._provisional_total += notional
        self._hold(symbol, 1)

    def _drop_provisional(self, symbol: str) -> None:
        held = self.provisional.pop(symbol, None)
        if held is not None:
            self._provisional_total -= held[1]
            self._hold(symbol, -1)

    # --- reading ---------------------------------------------------------------------------

    def load_open_intents(self, records: list[IntentRecord]) -> None:
        """Reserve for every unfinished entry found in the database (after a restart)."""
        for record in records:
            if not record.reduce_only and not record.state.is_final:
                market = self.markets.get(record.symbol)
                notional = market.notional_of(record.amount, record.price) if market else record.notional
                self._reserve(record.intent_hash, record.symbol, notional)

    def open_symbols(self) -> set[str]:
        """Symbols that hold a position or a risk slot (open, filling, or reserved)."""
        return set(self._slots)

    def open_count(self) -> int:
        """How many symbols hold a slot (O(1))."""
        return len(self._slots)

    def total_notional(self) -> Decimal:
        """Notional of positions (at entry price) plus unsynced fills plus reservations (O(1))."""
        return self._positions_total + self._provisional_total + self._reserved_total

    # --- margin ----------------------------------------------------------------------------

    def initial_margin(self, symbol: str, notional: Decimal) -> Decimal:
        """The margin an entry of `notional` needs: initial margin at the rate of the position it makes, plus the
        fee allowance. A market we have no spec of: no leverage."""
        market = self.markets.get(symbol)
        position = self.positions.get(symbol)
        held = self._position_notional(position) if position is not None else Decimal(0)
        rate = market.initial_margin_rate(held + notional) if market is not None else Decimal(1)
        return notional * rate + notional * FEE_ALLOWANCE

    def on_margin(self, margin: AccountMargin) -> None:
        """The exchange's latest available margin."""
        self.margin = margin

    def reserved_margin(self) -> Decimal:
        """Initial margin of the entries reserved and not ended yet."""
        return sum(self._reserved_margin.values(), Decimal(0))

    def _margin_denial(self, request: RiskRequest) -> RiskDecision | None:
        if not self.check_margin:
            return None
        if self.margin is None:
            return RiskDecision(granted=False, reason=Reason.MARGIN_UNKNOWN.value,
                                detail="the account's available margin has not been read from the exchange yet "
                                       "(it is read at reconciliation and after fills): entries wait for it")
        needed = self.initial_margin(request.symbol, request.notional)
        reserved = self.reserved_margin()
        if needed + reserved > self.margin.available:
            return RiskDecision(granted=False, reason=Reason.INSUFFICIENT_MARGIN.value,
                                detail=f"initial margin {needed:.2f} + reserved {reserved:.2f} > available margin "
                                       f"{self.margin.available:.2f} (accounts, flex availableMargin)")
        return None

    # --- deciding --------------------------------------------------------------------------

    def reserve(self, request: RiskRequest) -> RiskDecision:
        """Grant or deny room for one entry order; grants are remembered until the order ends."""
        if request.intent_hash in self.reservations:
            return RiskDecision(granted=True, detail="already reserved")
        limits = self.limits
        if request.notional > limits.max_notional_per_order:
            return self._deny(f"order notional {request.notional:.2f} > max_notional_per_order "
                              f"{limits.max_notional_per_order}")
        if request.symbol not in self._slots and len(self._slots) >= limits.max_open_positions:
            held = sorted(self._slots)
            shown = ", ".join(held[:10]) + (f" and {len(held) - 10} more" if len(held) > 10 else "")
            return self._deny(f"max_open_positions {limits.max_open_positions} reached ({shown})")
        total = self.total_notional()
        if total + request.notional > limits.max_total_notional:
            return self._deny(
                f"total notional {total:.2f} + {request.notional:.2f} > max_total_notional {limits.max_total_notional}"
            )
        denied = self._margin_denial(request)
        if denied is not None:
            return denied
        self._reserve(request.intent_hash, request.symbol, request.notional)
        return RiskDecision(granted=True)

    def release(self, intent_hash: str) -> None:
        """Give back a reservation whose order was not sent or ended unfilled."""
        self._unreserve(intent_hash)

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
            self._set_provisional(symbol, update.seq, filled_notional)
        if update.state.is_final:
            self._unreserve(update.intent_hash)

    def on_snapshot(self, snapshot: PositionsSnapshot) -> None:
        """Replace positions; provisional entries the snapshot already includes are dropped."""
        self._set_positions(snapshot.positions)
        for symbol in [s for s, (seq, _) in self.provisional.items() if seq <= snapshot.seq]:
            self._drop_provisional(symbol)

    @staticmethod
    def _deny(detail: str) -> RiskDecision:
        return RiskDecision(granted=False, reason=Reason.RISK_LIMIT.value, detail=detail)
