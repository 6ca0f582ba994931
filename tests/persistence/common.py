"""Intents, updates and fills for the store tests, and the old full-scan PnL as an oracle."""

from __future__ import annotations

from decimal import Decimal

from messages import (
    Fill,
    OrderIntent,
    OrderState,
    OrderUpdate,
    Side,
    SignalKind,
    client_order_id_for,
    intent_hash,
    now_ms,
)

BTC = "BTC/USD:USD"
ETH = "ETH/USD:USD"


def make_intent(t: int = 1, *, symbol: str = BTC, created_at: int | None = None, **extra: object) -> OrderIntent:
    h = intent_hash(symbol, t, SignalKind.ENTER_LONG, Decimal(100))
    return OrderIntent(intent_hash=h, client_order_id=client_order_id_for(h), symbol=symbol,
                       kind=SignalKind.ENTER_LONG, side=Side.BUY, candle_time=t, notional=Decimal(100),
                       amount=Decimal("0.002"), price=Decimal(50_000),
                       created_at=created_at if created_at is not None else now_ms(), **extra)


def update_for(intent: OrderIntent, state: OrderState, **fields: object) -> OrderUpdate:
    return OrderUpdate(intent_hash=intent.intent_hash, client_order_id=intent.client_order_id, symbol=intent.symbol,
                       side=intent.side, state=state, **fields)


def fill_for(intent: OrderIntent, fill_id: str, amount: str = "0.002", price: str = "50000", fee: str = "0.01",
             side: Side | None = None, time: int = 1_000) -> Fill:
    return Fill(fill_id=fill_id, symbol=intent.symbol, side=side or intent.side, amount=Decimal(amount),
                price=Decimal(price), fee=Decimal(fee), client_order_id=intent.client_order_id, time=time)


def full_scan_pnl(rows: list[dict]) -> dict[str, Decimal]:
    """The algorithm realized_pnl used before running totals (schema 2), over fill rows in the given order."""
    result: dict[str, Decimal] = {}
    books: dict[str, tuple[Decimal, Decimal]] = {}  # symbol -> signed contracts, average entry
    for row in rows:
        amount, price = Decimal(row["amount"]), Decimal(row["price"])
        signed = amount if row["side"] == "buy" else -amount
        position, entry = books.get(row["symbol"], (Decimal(0), Decimal(0)))
        pnl = result.get(row["symbol"], Decimal(0)) - Decimal(row["fee"] or "0")
        if position == 0 or (position > 0) == (signed > 0):
            total = abs(position) + amount
            entry = (entry * abs(position) + price * amount) / total
            position += signed
        else:
            closing = min(abs(position), amount)
            pnl += closing * (price - entry) * (1 if position > 0 else -1)
            position += signed
            if position != 0 and (position > 0) == (signed > 0):
                entry = price  # reversed through zero: the rest opens at this price
        books[row["symbol"]] = (position, entry if position != 0 else Decimal(0))
        result[row["symbol"]] = pnl
    return result
