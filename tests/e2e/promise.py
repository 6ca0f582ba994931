"""The promise, checked from the simulator's record of every order it received (shared by the e2e case tests).

    check_promise(sim, database_url, status) -> list of problems (empty when the promise held):
    - at most one order placed per intent (client order id) — from the simulator's request record;
    - no position above one entry with pyramiding off — the simulator's fills replayed in order;
    - every order the exchange placed with one of our client order ids is known to the database, and every
      one of its fills is stored (by fill id);
    - no symbol BLOCKED without a reason and a way out in `status`.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from messages import PortfolioStatus, SymbolState
from persistence import Store, open_database
from simulator import SimulatorHandle
from simulator.instruments import resolve_symbol


def placed_per_intent(sim: SimulatorHandle) -> dict[str, int]:
    """Client order id -> how many of its sends the exchange placed."""
    counts: dict[str, int] = defaultdict(int)
    for row in sim.admin.order_requests(kind="send"):
        if row.get("cliOrdId") and row.get("status") == "placed":
            counts[str(row["cliOrdId"])] += 1
    return dict(counts)


def largest_positions(sim: SimulatorHandle) -> dict[str, Decimal]:
    """Kraken market id -> the largest absolute position the account ever held (fills replayed in order)."""
    position: dict[str, Decimal] = defaultdict(Decimal)
    largest: dict[str, Decimal] = defaultdict(Decimal)
    fills = sorted(sim.admin.state()["fills"], key=lambda f: (f["time"], f["fill_id"]))
    for fill in fills:
        size = Decimal(str(fill["size"]))
        position[fill["symbol"]] += size if fill["side"] == "buy" else -size
        largest[fill["symbol"]] = max(largest[fill["symbol"]], abs(position[fill["symbol"]]))
    return dict(largest)


def _stored(database_url: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    store = Store(open_database(database_url))
    store.database.connect(reuse_if_open=True)
    try:
        intents = list(store.models.Intent.select().dicts())
        return intents, store.orders(), store.fills()
    finally:
        store.close()


def check_promise(sim: SimulatorHandle, database_url: str, status: PortfolioStatus | None = None,
                  pyramiding: bool = False) -> list[str]:
    """Every way the promise could have been broken in this run; empty when it held."""
    problems = []
    intents, orders, fills = _stored(database_url)
    ours = {row["client_order_id"] for row in intents}
    for cid, count in placed_per_intent(sim).items():
        if cid in ours and count > 1:
            problems.append(f"intent {cid} has {count} orders on the exchange")
    if not pyramiding:
        entry = {}
        for row in intents:
            if not row["reduce_only"]:
                market = resolve_symbol(row["symbol"]) or row["symbol"]
                entry[market] = max(entry.get(market, Decimal(0)), Decimal(row["amount"]))
        for market, size in largest_positions(sim).items():
            if market in entry and size > entry[market]:
                problems.append(f"{market}: a position of {size} > one entry of {entry[market]}")
    known_orders = {row["client_order_id"] for row in orders if row["client_order_id"]}
    known_orders |= {row["exchange_order_id"] for row in orders if row["exchange_order_id"]}
    known_fills = {row["fill_id"] for row in fills}
    exchange_orders = {o["order_id"]: o for o in sim.admin.state()["orders"]}
    for fill in sim.admin.state()["fills"]:
        order = exchange_orders.get(fill["order_id"], {})
        cid = order.get("cliOrdId") or fill.get("cliOrdId")
        if cid not in ours:
            continue
        if cid not in known_orders and fill["order_id"] not in known_orders:
            problems.append(f"exchange order {fill['order_id']} (cliOrdId {cid}) is not in the database")
        if fill["fill_id"] not in known_fills:
            problems.append(f"fill {fill['fill_id']} of {cid} ({fill['size']} @ {fill['price']}) is not stored")
    if status is not None:
        for row in status.symbols:
            if row.state is SymbolState.BLOCKED and not row.blocked:
                problems.append(f"{row.symbol} is BLOCKED without a reason or a way out in status")
    return problems


__all__ = ["check_promise", "largest_positions", "placed_per_intent"]
