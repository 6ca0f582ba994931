"""PnL running totals, the booked flags, bounded start-up queries and the migration that builds them."""

from __future__ import annotations

import random
from decimal import Decimal

import peewee
import pytest

from messages import ClaimIntent, OrderState, OrderUpdate, Side
from persistence import SCHEMA_VERSION, Store
from tests.persistence.common import (
    BTC,
    ETH,
    fill_for,
    full_scan_pnl,
    make_intent,
    update_for,
)

pytestmark = pytest.mark.timeout(120)


def stored_fills_by_id(store: Store) -> list[dict]:
    return store.fills()  # oldest first by id: the order the writer stored them


def test_a_fill_stored_twice_is_counted_once(store: Store, reopen) -> None:
    a = make_intent(1)
    store.claim_intent(a)
    f1, f2 = fill_for(a, "f-1", amount="0.001"), fill_for(a, "f-2", amount="0.001", price="51000", side=Side.SELL)
    store.apply_batch([update_for(a, OrderState.PARTIALLY_FILLED, filled=Decimal("0.001"), fills=(f1, f1)),
                       update_for(a, OrderState.PARTIALLY_FILLED, filled=Decimal("0.001"), fills=(f1,))])
    store.apply_batch([update_for(a, OrderState.FILLED, filled=Decimal("0.002"), fills=(f1, f2))])
    again = reopen()
    again.apply_batch([update_for(a, OrderState.FILLED, filled=Decimal("0.002"), fills=(f2, f1))])
    totals = again.pnl_totals()[BTC]
    assert totals["fill_count"] == 2 and totals["position"] == 0 and totals["fees"] == Decimal("0.02")
    assert again.realized_pnl() == {BTC: Decimal("0.001") * 1000 - Decimal("0.02")}
    assert again.realized_pnl() == full_scan_pnl(stored_fills_by_id(again))
    assert again.intent(a.intent_hash).fills_booked == Decimal("0.002")
    row = again.models.Intent.get(again.models.Intent.intent_hash == a.intent_hash)
    assert row.booked == "0.002" and row.fills_complete


def test_running_totals_equal_the_full_scan_on_random_fills(store: Store, reopen) -> None:
    rng = random.Random(7)
    intents = [make_intent(t, symbol=rng.choice([BTC, ETH])) for t in range(60)]
    store.apply_batch([ClaimIntent(intent=i) for i in intents])
    sent: list = []
    time = 1_000
    writer = store
    for round_ in range(25):
        batch = []
        for _ in range(rng.randint(1, 6)):
            intent = rng.choice(intents)
            fills = []
            for _ in range(rng.randint(1, 3)):
                if sent and rng.random() < 0.2:
                    fills.append(rng.choice(sent))  # a fill reported again
                    continue
                time += rng.randint(0, 3)
                f = fill_for(intent, f"f-{len(sent)}", amount=str(Decimal(rng.randint(1, 5000)) / 1000),
                             price=str(Decimal(rng.randint(90_000, 110_000)) / 2),
                             fee=str(Decimal(rng.randint(0, 99)) / 10_000),
                             side=rng.choice([Side.BUY, Side.SELL]), time=time)
                sent.append(f)
                fills.append(f)
            batch.append(OrderUpdate(intent_hash=intent.intent_hash, client_order_id=intent.client_order_id,
                                     symbol=intent.symbol, side=intent.side, state=OrderState.PARTIALLY_FILLED,
                                     filled=Decimal(round_ + 1), fills=tuple(fills)))
        writer.apply_batch(batch)
        if round_ == 12:
            writer = reopen()  # totals go on from the table after a restart
    stored = stored_fills_by_id(writer)
    assert len(stored) == len(sent)
    assert writer.realized_pnl() == full_scan_pnl(stored)
    totals = writer.pnl_totals()
    assert sum(t["fill_count"] for t in totals.values()) == len(sent)
    for symbol, t in totals.items():
        position = sum((Decimal(f["amount"]) * (1 if f["side"] == "buy" else -1) for f in stored
                        if f["symbol"] == symbol), Decimal(0))
        assert t["position"] == position
    # The status query reads the totals, never the fills.
    statements: list[str] = []
    writer.database._log_query = lambda sql, params: statements.append(sql)  # type: ignore[method-assign]
    writer.realized_pnl()
    assert statements and all('"fill"' not in sql for sql in statements)


def _book(store: Store) -> dict[str, object]:
    """Intents in every situation the unbooked query must tell apart; returns them by name."""
    names = ["complete", "no_fills", "partly", "canceled_empty", "canceled_short", "rejected", "open", "old_short"]
    intents = {name: make_intent(t) for t, name in enumerate(names)}
    store.apply_batch([ClaimIntent(intent=i) for i in intents.values()])
    i = intents
    two = Decimal("0.002")
    store.apply_batch([
        update_for(i["complete"], OrderState.FILLED, filled=two, fills=(fill_for(i["complete"], "c1"),)),
        update_for(i["no_fills"], OrderState.FILLED, filled=two),
        update_for(i["partly"], OrderState.FILLED, filled=two, fills=(fill_for(i["partly"], "p1", amount="0.001"),)),
        update_for(i["canceled_empty"], OrderState.CANCELED),
        update_for(i["canceled_short"], OrderState.CANCELED, filled=Decimal("0.001")),
        update_for(i["rejected"], OrderState.REJECTED, reason="EXCHANGE_REJECTED"),
        update_for(i["open"], OrderState.PARTIALLY_FILLED, filled=Decimal("0.001")),
        update_for(i["old_short"], OrderState.FILLED, filled=two),
    ])
    Intent = store.models.Intent
    Intent.update(updated_at=1_000).where(Intent.intent_hash == i["old_short"].intent_hash).execute()
    return intents


def test_unbooked_finds_exactly_the_final_intents_whose_fills_are_short(store: Store, reopen) -> None:
    i = _book(store)
    expected = {i["no_fills"].intent_hash, i["partly"].intent_hash, i["canceled_short"].intent_hash}
    assert {r.intent_hash for r in store.unbooked_intents(since=10_000)} == expected
    assert {r.intent_hash for r in store.unbooked_intents(since=0)} == expected | {i["old_short"].intent_hash}
    partly = next(r for r in store.unbooked_intents(since=10_000) if r.intent_hash == i["partly"].intent_hash)
    assert partly.fills_booked == Decimal("0.001") and partly.fill_ids == {"p1"}
    # The missing fills arrive (reconciliation books them): the intents leave the list.
    store.apply_batch([update_for(i["partly"], OrderState.FILLED, filled=Decimal("0.002"),
                                  fills=(fill_for(i["partly"], "p2", amount="0.001"),)),
                       update_for(i["no_fills"], OrderState.FILLED, filled=Decimal("0.002"),
                                  fills=(fill_for(i["no_fills"], "n1"),))])
    fresh = reopen()
    assert {r.intent_hash for r in fresh.unbooked_intents(since=10_000)} == {i["canceled_short"].intent_hash}
    assert [r.intent_hash for r in fresh.open_intents()] == [i["open"].intent_hash]


def test_start_up_queries_use_indexes_on_sqlite(sqlite_url: str) -> None:
    from persistence import open_database

    store = Store(open_database(sqlite_url))
    store.open()
    try:
        def plan(query: peewee.Query) -> str:
            sql, params = query.sql()
            return " ".join(str(r[-1]) for r in store.database.execute_sql(f"EXPLAIN QUERY PLAN {sql}", params))

        Intent = store.models.Intent
        unbooked = Intent.select().where((Intent.fills_complete == False)  # noqa: E712 - a peewee expression
                                         & Intent.status.in_(["FILLED", "CANCELED"]) & (Intent.updated_at >= 0))
        assert "USING INDEX intent_fills_complete" in plan(unbooked)
        recent = (Intent.select(Intent.intent_hash).where((Intent.symbol == BTC) & (Intent.created_at >= 0))
                  .order_by(Intent.created_at.desc()).limit(10))
        assert "intent_symbol_created_at" in plan(recent)
        assert "USING INDEX intent_status" in plan(Intent.select().where(Intent.status.in_(["SUBMITTED", "UNKNOWN"])))
    finally:
        store.close()


def test_recent_hashes_are_the_newest_few(store: Store) -> None:
    btc = [make_intent(t, created_at=10_000 + t) for t in range(30)]
    eth = [make_intent(t, symbol=ETH, created_at=20_000 + t) for t in range(5)]
    store.apply_batch([ClaimIntent(intent=i) for i in btc + eth])
    assert store.recent_hashes(BTC, since=0, limit=10) == {i.intent_hash for i in btc[-10:]}
    assert store.recent_hashes(BTC, since=10_025) == {i.intent_hash for i in btc[25:]}
    assert store.recent_hashes(ETH, since=0) == {i.intent_hash for i in eth}
    assert len(store.load_symbol(BTC, since=0).recent_hashes) == 30


def _downgrade_to_version_2(store: Store) -> None:
    """Make this database look as schema version 2 left it: no booked columns, no totals, no new index."""
    db = store.database
    for index in ("intent_fills_complete", "intent_symbol_created_at"):
        db.execute_sql(f'DROP INDEX IF EXISTS "{index}"')
    for column in ("booked", "fills_complete"):
        db.execute_sql(f'ALTER TABLE "intent" DROP COLUMN "{column}"')
    db.execute_sql('DROP TABLE "pnl_total"')
    store.models.SchemaInfo.update(value="2").execute()


def test_migration_from_version_2_builds_the_same_totals_and_booked_flags(store: Store, reopen) -> None:
    i = _book(store)
    rng = random.Random(3)
    extra = make_intent(99, symbol=ETH)
    store.claim_intent(extra)
    fills = [fill_for(extra, f"e{n}", amount=str(Decimal(rng.randint(1, 900)) / 1000),
                      price=str(rng.randint(1900, 2100)), side=rng.choice([Side.BUY, Side.SELL]),
                      time=rng.randint(1, 50)) for n in range(40)]  # stored out of time order
    store.apply_batch([update_for(extra, OrderState.PARTIALLY_FILLED, filled=Decimal(1), fills=tuple(fills))])
    unbooked_before = {r.intent_hash for r in store.unbooked_intents(0)}
    _downgrade_to_version_2(store)
    store.close()
    migrated = reopen()
    assert migrated.schema_version() == SCHEMA_VERSION == 5
    # The old realized_pnl scanned every fill ordered by time, then id: the migration starts from exactly that.
    by_time = sorted(migrated.fills(), key=lambda f: (f["time"], f["id"]))
    assert migrated.realized_pnl() == full_scan_pnl(by_time)
    assert migrated.pnl_totals()[ETH]["fill_count"] == 40
    assert {r.intent_hash for r in migrated.unbooked_intents(0)} == unbooked_before
    Intent = migrated.models.Intent
    flags = {row.intent_hash: (row.booked, bool(row.fills_complete)) for row in Intent.select()}
    assert flags[i["complete"].intent_hash] == ("0.002", True)
    assert flags[i["partly"].intent_hash] == ("0.001", False)
    assert flags[i["canceled_empty"].intent_hash] == ("0", True)
    assert flags[i["rejected"].intent_hash] == ("0", True)
    assert flags[i["open"].intent_hash] == ("0", False)
    assert Decimal(flags[extra.intent_hash][0]) == sum((f.amount for f in fills), Decimal(0))
    assert len(migrated.recent_hashes(BTC, 0, limit=3)) == 3  # the new index is there
    # Fills booked after the migration go on from the rebuilt totals.
    late = fill_for(i["partly"], "p2", amount="0.001", time=100)
    migrated.apply_batch([update_for(i["partly"], OrderState.FILLED, filled=Decimal("0.002"), fills=(late,))])
    assert migrated.realized_pnl() == full_scan_pnl(by_time + [migrated.fills()[-1]])
    assert i["partly"].intent_hash not in {r.intent_hash for r in migrated.unbooked_intents(0)}


def test_a_database_of_this_schema_version_that_lacks_a_column_gains_it_at_open(store: Store, reopen) -> None:
    """A column added within one schema version (a build of the same version wrote the database before it had it,
    as a shared test database can be) is added empty at the next open, not a failing query at every read."""
    kept = make_intent(1)
    store.claim_intent(kept)
    store.database.execute_sql('ALTER TABLE "intent" DROP COLUMN "trailing_pct"')
    store.close()
    again = reopen()
    assert "trailing_pct" in {c.name for c in again.database.get_columns("intent")}
    assert [r.intent_hash for r in again.open_intents()] == [kept.intent_hash]
