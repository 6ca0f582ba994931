"""The schema 3 migration (one streaming pass, batched updates) against the slow reference it replaced."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from messages import ClaimIntent, now_ms
from persistence import SCHEMA_VERSION, Store, open_database
from persistence.store import _FINAL, _Totals
from tests.persistence.common import BTC, ETH, make_intent

pytestmark = pytest.mark.timeout(300)

SOL = "SOL/USD:USD"
STATES = ["FILLED", "CANCELED", "REJECTED", "PARTIALLY_FILLED", "ACCEPTED", "SUBMITTED", "UNKNOWN", "INITIALIZED"]


class SlowReferenceStore(Store):
    """The migration as it was before it was made fast: kept as the oracle (same DDL, the old data steps)."""

    def _migrate(self, version: int) -> None:
        Intent = self.models.Intent
        self._add_columns()
        if version < 2:
            Intent.update(schema_v1=True).where(Intent.status.not_in(list(_FINAL))).execute()
        self.database.create_tables([self.models.PnlTotal], safe=True)
        cursor = self.database.execute_sql(
            'SELECT "client_order_id", "symbol", "side", "amount", "price", "fee" FROM "fill" ORDER BY "time", "id"')
        booked: dict[str, Decimal] = {}
        totals: dict[str, _Totals] = {}
        for cid, symbol, side, amount, price, fee in cursor.fetchall():
            amount = Decimal(amount)
            if cid is not None:
                booked[cid] = booked.get(cid, Decimal(0)) + amount
            totals[symbol] = totals.get(symbol, _Totals()).add(side, amount, Decimal(price), Decimal(fee or "0"))
        p = self.database.param
        self.database.execute_sql(f'UPDATE "intent" SET "booked" = {p}, "fills_complete" = {p}', ("0", False))
        for cid, amount in booked.items():
            self.database.execute_sql(f'UPDATE "intent" SET "booked" = {p} WHERE "client_order_id" = {p}',
                                      (str(amount), cid))
        query = Intent.select(Intent.id, Intent.filled, Intent.booked).where(Intent.status.in_(list(_FINAL)))
        for row in query.tuples():
            if Decimal(row[2] or "0") >= Decimal(row[1] or "0"):
                Intent.update(fills_complete=True).where(Intent.id == row[0]).execute()
        for symbol, t in totals.items():
            self.models.PnlTotal.insert(symbol=symbol, position=str(t.position), entry=str(t.entry),
                                        realized=str(t.realized), fees=str(t.fees), fill_count=t.fill_count,
                                        updated_at=now_ms()).execute()


def _amount(rng: random.Random) -> str:
    """Decimal texts of every shape a fill or filled amount may have."""
    return rng.choice([
        lambda: str(Decimal(rng.randint(1, 5000)) / 1000),
        lambda: "0.001",
        lambda: "0.0010",  # a trailing zero: the sum keeps the exponent
        lambda: "0",
        lambda: str(Decimal(rng.randint(1, 10**30)) / 10**29),  # more digits than the context keeps
        lambda: f"{rng.randint(1, 9)}E-{rng.randint(7, 9)}",
        lambda: f"{rng.randint(1, 9)}E+{rng.randint(1, 3)}",
        lambda: str(rng.randint(1, 20)),
    ])()


def _random_history(store: Store, seed: int) -> None:
    """Intents in every state with random filled amounts, and fills (ours, foreign, without an id) stored raw."""
    rng = random.Random(seed)
    intents = [make_intent(t, symbol=rng.choice([BTC, ETH, SOL])) for t in range(300)]
    store.apply_batch([ClaimIntent(intent=i) for i in intents])
    db, p = store.database, store.database.param
    fills: list[tuple[object, ...]] = []
    for n, intent in enumerate(intents):
        amounts = [_amount(rng) for _ in range(rng.choice([0, 0, 1, 1, 2, 3, 7]))]
        total = sum((Decimal(a) for a in amounts), Decimal(0))
        filled = rng.choice([str(total), "0", _amount(rng), str(total + Decimal("0.001")), str(total) + "0",
                             str(max(total - Decimal("0.001"), Decimal(0)))])
        db.execute_sql(f'UPDATE "intent" SET "status" = {p}, "filled" = {p} WHERE "intent_hash" = {p}',
                       (rng.choice(STATES), filled, intent.intent_hash))
        for a in amounts:
            fills.append((intent.client_order_id, intent.symbol, a))
        if rng.random() < 0.1:
            fills.append((f"foreign-{n}", intent.symbol, _amount(rng)))  # an order placed outside the system
        if rng.random() < 0.1:
            fills.append((None, intent.symbol, _amount(rng)))
    rng.shuffle(fills)  # stored out of time order, with ties in time
    for n, (cid, symbol, amount) in enumerate(fills):
        db.execute_sql(
            f'INSERT INTO "fill" ("fill_id", "symbol", "side", "amount", "price", "fee", "client_order_id", "time") '
            f"VALUES ({', '.join([p] * 8)})",
            (f"f-{n}", symbol, rng.choice(["buy", "sell"]), amount, str(Decimal(rng.randint(1, 10**7)) / 100),
             rng.choice(["0", "0.01", str(Decimal(rng.randint(0, 999)) / 10**5), ""]), cid, rng.randint(1, 60)))


def _downgrade(store: Store, version: int) -> None:
    db = store.database
    for index in ("intent_fills_complete", "intent_symbol_created_at"):
        db.execute_sql(f'DROP INDEX IF EXISTS "{index}"')
    columns = ["booked", "fills_complete"]
    if version < 2:
        columns += ["limit_price", "sent_at", "process_before", "sends", "schema_v1"]
    for column in columns:
        db.execute_sql(f'ALTER TABLE "intent" DROP COLUMN "{column}"')
    db.execute_sql('DROP TABLE IF EXISTS "pnl_total"')
    store.models.SchemaInfo.update(value=str(version)).execute()


def _state(store: Store) -> tuple[dict[str, tuple[object, ...]], dict[str, tuple[object, ...]]]:
    Intent, T = store.models.Intent, store.models.PnlTotal
    intents = {row.intent_hash: (row.booked, bool(row.fills_complete), bool(row.schema_v1), row.sends)
               for row in Intent.select()}
    totals = {row.symbol: (row.position, row.entry, row.realized, row.fees, row.fill_count) for row in T.select()}
    return intents, totals


@pytest.mark.parametrize("version", [2, 1])
@pytest.mark.parametrize("seed", [11, 12])
def test_the_fast_migration_leaves_exactly_what_the_slow_reference_left(db_url: str, version: int,
                                                                        seed: int) -> None:
    store = Store(open_database(db_url))
    store.open()
    _random_history(store, seed)
    _downgrade(store, version)
    store.close()
    reference = SlowReferenceStore(open_database(db_url))
    reference.open()
    expected = _state(reference)
    _downgrade(reference, version)
    reference.close()
    fast = Store(open_database(db_url))
    fast.open()
    try:
        assert fast.schema_version() == SCHEMA_VERSION
        got = _state(fast)
        assert got[1] == expected[1]  # the same texts: every Decimal step the same
        assert got[0] == expected[0]
        booked = {b for b, *_ in got[0].values()}
        assert any("E" in b for b in booked) and any(len(b) > 20 for b in booked)  # the data reached the edges
        assert {c for _, c, *_ in got[0].values()} == {True, False}
        assert len(fast.recent_hashes(BTC, 0, limit=3)) == 3
    finally:
        fast.close()
