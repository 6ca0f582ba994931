"""Schema 5: fees from the account log set on their fills, funding payments, PnL net of both; each log entry once."""

from __future__ import annotations

from decimal import Decimal

from messages import AccountLogEntries, FundingPayment, OrderState, Side, TradeFee
from persistence import SCHEMA_VERSION, Store, queries
from tests.persistence.common import BTC, fill_for, make_intent, update_for


def fee(entry_id: int, execution: str, amount: str, symbol: str = BTC) -> TradeFee:
    return TradeFee(entry_id=entry_id, execution=execution, symbol=symbol, fee=Decimal(amount), currency="USD",
                    time=2_000)


def funding(entry_id: int, amount: str, symbol: str = BTC) -> FundingPayment:
    return FundingPayment(entry_id=entry_id, symbol=symbol, amount=Decimal(amount), currency="USD",
                          rate=Decimal("0.0001"), time=3_000)


def round_trip(store: Store) -> None:
    """A long of 0.002 bought at 50000 and sold at 51000: 2 USD gross, fills stored without fees (fills carry none)."""
    intent = make_intent(1)
    store.claim_intent(intent)
    store.apply_batch([update_for(intent, OrderState.FILLED, filled=Decimal("0.002"), fills=(
        fill_for(intent, "buy-1", fee="0"),
        fill_for(intent, "sell-1", price="51000", side=Side.SELL, fee="0", time=1_500)))])


def test_a_fee_read_after_its_fill_is_set_on_the_fill_and_subtracted_once(store: Store) -> None:
    round_trip(store)
    before = {f["fill_id"]: f for f in store.fills()}
    assert before["buy-1"]["fee_currency"] is None  # no entry yet: the 0 is not proven
    assert store.pnl_totals()[BTC]["realized"] == Decimal(2)
    entries = AccountLogEntries(fees=(fee(10, "buy-1", "0.05"), fee(11, "sell-1", "0.051")))
    store.apply_batch([entries])
    store.apply_batch([entries])  # the same entries again (a re-read): nothing changes
    fills = {f["fill_id"]: f for f in store.fills()}
    assert (fills["buy-1"]["fee"], fills["buy-1"]["fee_currency"]) == ("0.05", "USD")
    assert Decimal(fills["sell-1"]["fee"]) == Decimal("0.051")
    totals = store.pnl_totals()[BTC]
    assert totals["fees"] == Decimal("0.101")
    assert totals["gross"] == Decimal(2)
    assert totals["realized"] == totals["net"] == Decimal("1.899")


def test_a_fee_read_before_its_fill_is_stored_goes_onto_the_fill_when_it_comes(store: Store, reopen) -> None:
    store.apply_batch([AccountLogEntries(fees=(fee(10, "buy-1", "0.05"),))])
    store.close()
    later = reopen()  # the fee survives a restart: it is in the trade_fee table, not in memory
    round_trip(later)
    fills = {f["fill_id"]: f for f in later.fills()}
    assert (fills["buy-1"]["fee"], fills["buy-1"]["fee_currency"]) == ("0.05", "USD")
    assert fills["sell-1"]["fee_currency"] is None
    assert later.pnl_totals()[BTC]["net"] == Decimal("1.95")


def test_funding_is_counted_once_per_entry_and_shown_apart(store: Store, reopen) -> None:
    round_trip(store)
    store.apply_batch([AccountLogEntries(funding=(funding(20, "-0.25"), funding(21, "0.05")))])
    store.apply_batch([AccountLogEntries(funding=(funding(20, "-0.25"),))])  # entry 20 again
    totals = store.pnl_totals()[BTC]
    assert totals["funding"] == Decimal("-0.20")
    assert totals["realized"] == Decimal(2)  # fees subtracted, funding not: as before schema 5
    assert totals["net"] == Decimal("1.80")
    assert store.account_log_cursor() == 21
    store.close()
    again = reopen()
    assert again.pnl_totals()[BTC]["funding"] == Decimal("-0.20")  # the running total survives the restart
    again.apply_batch([AccountLogEntries(funding=(funding(21, "0.05"),))])
    assert again.pnl_totals()[BTC]["net"] == Decimal("1.80")
    report = queries.pnl(again)  # the operator's pnl report reads the same table
    assert report["total"]["funding"] == Decimal("-0.20") and report["funding_recorded"]


def test_funding_of_a_symbol_without_fills_has_its_own_totals(store: Store) -> None:
    store.apply_batch([AccountLogEntries(funding=(funding(5, "0.10", symbol="ETH/USD:USD"),))])
    totals = store.pnl_totals()["ETH/USD:USD"]
    assert (totals["funding"], totals["net"], totals["fill_count"]) == (Decimal("0.10"), Decimal("0.10"), 0)


def _downgrade_to_version_4(store: Store) -> None:
    """Make this database look as schema version 4 left it: no fee currency, no funding, no log tables."""
    db = store.database
    db.execute_sql('ALTER TABLE "fill" DROP COLUMN "fee_currency"')
    db.execute_sql('ALTER TABLE "pnl_total" DROP COLUMN "funding"')
    db.execute_sql('DROP TABLE "trade_fee"')
    db.execute_sql('DROP TABLE "funding"')
    store.models.SchemaInfo.update(value="4").execute()


def test_migration_from_version_4_keeps_the_totals_and_takes_fees_and_funding(store: Store, reopen) -> None:
    round_trip(store)
    before = store.pnl_totals()[BTC]
    _downgrade_to_version_4(store)
    store.close()
    migrated = reopen()
    assert migrated.schema_version() == SCHEMA_VERSION == 5
    totals = migrated.pnl_totals()[BTC]
    assert {k: totals[k] for k in ("position", "realized", "fees", "fill_count")} == \
        {k: before[k] for k in ("position", "realized", "fees", "fill_count")}
    assert totals["funding"] == 0
    assert all(f["fee_currency"] is None for f in migrated.fills())
    migrated.apply_batch([AccountLogEntries(fees=(fee(1, "buy-1", "0.05"),), funding=(funding(2, "0.01"),))])
    assert migrated.pnl_totals()[BTC]["net"] == Decimal("1.96")
    migrated.close()
    assert reopen().schema_version() == 5  # opening a migrated database again changes nothing
