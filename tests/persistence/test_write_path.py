"""The write path: claims, order updates, fills and events of one batch in one transaction, decided in memory."""

from __future__ import annotations

from decimal import Decimal

import peewee
import pytest

from messages import (
    ClaimIntent,
    Event,
    EventKind,
    OrderState,
    OrderUpdate,
    Reason,
    RecordSends,
    Side,
)
from persistence import StorageError, Store
from tests.persistence.common import BTC, fill_for, make_intent, update_for

pytestmark = pytest.mark.timeout(60)


def claimed_event(detail: str) -> Event:
    return Event(kind=EventKind.INTENT_CLAIMED, symbol=BTC, detail=detail)


def test_a_duplicate_claim_in_a_batch_undoes_only_itself(store: Store) -> None:
    a, b, c = make_intent(1), make_intent(2), make_intent(3)
    same_cid = make_intent(4).model_copy(update={"client_order_id": c.client_order_id})
    results = store.apply_batch([
        ClaimIntent(intent=a, event=claimed_event("a")),
        ClaimIntent(intent=a, event=claimed_event("a again")),
        ClaimIntent(intent=b, event=claimed_event("b")),
        Event(kind=EventKind.SIGNAL_REJECTED, symbol=BTC, reason=Reason.POSITION_OPEN, detail="between"),
        ClaimIntent(intent=c, event=claimed_event("c")),
        ClaimIntent(intent=same_cid, event=claimed_event("same cid")),
    ])
    assert [r.claimed if r else None for r in results] == [True, False, True, None, True, False]
    assert results[1].existing_state is OrderState.INITIALIZED
    assert results[5].existing_state is OrderState.INITIALIZED
    assert [e.detail for e in store.events()] == ["a", "b", "between", "c"]
    assert {r.intent_hash for r in store.open_intents()} == {a.intent_hash, b.intent_hash, c.intent_hash}


def test_a_duplicate_of_a_row_stored_before_the_restart_is_refused(store: Store, reopen) -> None:
    a = make_intent(1)
    store.claim_intent(a)
    store.apply_batch([update_for(a, OrderState.SUBMITTED, sent_at=5, process_before=9, sends=1)])
    fresh = reopen()  # cold cache: the answer comes from the unique index
    results = fresh.apply_batch([ClaimIntent(intent=a), ClaimIntent(intent=make_intent(2))])
    assert [r.claimed for r in results] == [False, True]
    assert results[0].existing_state is OrderState.SUBMITTED


@pytest.mark.parametrize("cold", [False, True])
def test_an_illegal_transition_changes_nothing(store: Store, reopen, cold: bool) -> None:
    a = make_intent(1)
    store.claim_intent(a)
    fill = fill_for(a, "f-1")
    store.apply_batch([update_for(a, OrderState.FILLED, exchange_order_id="ex-1", filled=Decimal("0.002"),
                                  average_price=Decimal(50_000), fills=(fill,))])
    writer = reopen() if cold else store
    writer.apply_batch([update_for(a, OrderState.ACCEPTED, exchange_order_id="ex-1", detail="stale"),
                        update_for(a, OrderState.SUBMITTED, sent_at=1, process_before=2, sends=3)])
    record = writer.intent(a.intent_hash)
    assert record.state is OrderState.FILLED and record.filled == Decimal("0.002") and record.sends == 0
    assert [(o["state"], o["detail"], o["average_price"]) for o in writer.orders()] == [("FILLED", "", "50000")]
    # The events still say what was reported.
    assert [e.detail.split()[0] for e in writer.events()] == ["FILLED", "ACCEPTED", "SUBMITTED"]


def test_updates_of_one_batch_are_applied_in_order_and_written_once(store: Store) -> None:
    a = make_intent(1)
    store.claim_intent(a)
    store.apply_batch([RecordSends(updates=(update_for(a, OrderState.SUBMITTED, sent_at=10, process_before=20,
                                                       sends=1),)),
                       update_for(a, OrderState.ACCEPTED, exchange_order_id="ex-1", amount=Decimal("0.002")),
                       update_for(a, OrderState.PARTIALLY_FILLED, exchange_order_id="ex-1", filled=Decimal("0.001"),
                                  fills=(fill_for(a, "f-1", amount="0.001"),)),
                       update_for(a, OrderState.PARTIALLY_FILLED, exchange_order_id="ex-1", filled=Decimal("0.001")),
                       update_for(a, OrderState.FILLED, exchange_order_id="ex-1", filled=Decimal("0.002"),
                                  fills=(fill_for(a, "f-2", amount="0.001"),))])
    record = store.intent(a.intent_hash)
    assert (record.state, record.filled, record.fills_booked, record.sent_at, record.process_before, record.sends,
            record.exchange_order_id) == (OrderState.FILLED, Decimal("0.002"), Decimal("0.002"), 10, 20, 1, "ex-1")
    assert record.fill_ids == {"f-1", "f-2"}
    orders = store.orders()
    assert [(o["state"], o["amount"], o["filled"], o["exchange_order_id"]) for o in orders] == [
        ("FILLED", "0.002", "0.002", "ex-1")]
    row = store.models.Intent.get(store.models.Intent.intent_hash == a.intent_hash)
    assert row.booked == "0.002" and row.fills_complete


def test_an_order_first_seen_without_our_id_is_the_row_later_updated(store: Store) -> None:
    a = make_intent(1)
    store.claim_intent(a)
    store.apply_batch([OrderUpdate(intent_hash=None, client_order_id=None, symbol=BTC, side=Side.BUY,
                                   state=OrderState.ACCEPTED, exchange_order_id="ex-9")])
    store.apply_batch([update_for(a, OrderState.PARTIALLY_FILLED, exchange_order_id="ex-9", filled=Decimal("0.001"))])
    store.apply_batch([update_for(a, OrderState.FILLED, filled=Decimal("0.002"))])  # by client order id alone
    assert [(o["exchange_order_id"], o["state"], o["origin"]) for o in store.orders()] == [
        ("ex-9", "FILLED", "EXTERNAL")]
    assert store.intent(a.intent_hash).state is OrderState.FILLED


def test_a_claim_carrying_process_before_is_stored_submitted(store: Store, reopen) -> None:
    sent = make_intent(1, sent_at=1_000, process_before=31_000)
    plain = make_intent(2)
    assert all(r.claimed for r in store.apply_batch([ClaimIntent(intent=sent), ClaimIntent(intent=plain)]))
    for s in (store, reopen()):
        record = s.intent(sent.intent_hash)
        assert (record.state, record.sent_at, record.process_before, record.sends, record.schema_v1) == (
            OrderState.SUBMITTED, 1_000, 31_000, 1, False)
        other = s.intent(plain.intent_hash)
        assert (other.state, other.sent_at, other.process_before, other.sends) == (OrderState.INITIALIZED, None,
                                                                                   None, 0)
    assert not store.abandon_intent(sent.intent_hash, "late answer")  # may have been sent: never abandoned
    assert store.abandon_intent(plain.intent_hash, "late answer")
    assert store.intent(sent.intent_hash).state is OrderState.SUBMITTED
    assert store.intent(plain.intent_hash).state is OrderState.REJECTED
    # The abandoned one is final with nothing to book; the sent one's later report still advances it.
    store.apply_batch([update_for(sent, OrderState.ACCEPTED, exchange_order_id="ex-1")])
    assert store.intent(sent.intent_hash).state is OrderState.ACCEPTED
    assert store.unbooked_intents(0) == []


def test_a_failed_batch_stores_nothing_and_forgets_what_it_decided(store: Store, monkeypatch) -> None:
    a, b = make_intent(1), make_intent(2)
    store.claim_intent(a)

    def fail(*args: object) -> None:
        raise peewee.OperationalError("disk I/O error")

    monkeypatch.setattr(store, "_write_batch", fail)
    with pytest.raises(StorageError, match="disk I/O error"):
        store.apply_batch([ClaimIntent(intent=b), update_for(a, OrderState.FILLED, exchange_order_id="ex-1",
                                                             filled=Decimal("0.002"),
                                                             fills=(fill_for(a, "f-1"),))])
    monkeypatch.undo()
    assert store.intent(b.intent_hash) is None and store.fills() == [] and store.orders() == []
    assert store.realized_pnl() == {}
    # The cache was rolled back with the transaction: the same writes succeed now, and count once.
    results = store.apply_batch([ClaimIntent(intent=b), update_for(a, OrderState.FILLED, exchange_order_id="ex-1",
                                                                   filled=Decimal("0.002"),
                                                                   fills=(fill_for(a, "f-1"),))])
    assert results[0].claimed
    assert store.intent(a.intent_hash).state is OrderState.FILLED
    assert store.intent(a.intent_hash).fills_booked == Decimal("0.002")
    assert store.pnl_totals()[BTC]["fill_count"] == 1


def test_the_cache_stays_bounded_and_a_miss_reads_the_row(db_url: str) -> None:
    from persistence import open_database

    store = Store(open_database(db_url), cache_limit=10)
    store.open()
    try:
        intents = [make_intent(t) for t in range(40)]
        for i in intents:
            store.apply_batch([ClaimIntent(intent=i)])
            store.apply_batch([update_for(i, OrderState.FILLED, exchange_order_id=f"ex-{i.candle_time}",
                                          filled=Decimal("0.002"))])
            assert len(store._intents) <= 12 and len(store._orders) <= 12
        first = intents[0]  # long forgotten: read back, and a stale report still changes nothing
        store.apply_batch([update_for(first, OrderState.ACCEPTED, exchange_order_id="ex-0"),
                           update_for(first, OrderState.FILLED, exchange_order_id="ex-0", filled=Decimal("0.002"),
                                      fills=(fill_for(first, "late"),))])
        assert store.intent(first.intent_hash).state is OrderState.FILLED
        assert store.intent(first.intent_hash).fills_booked == Decimal("0.002")
        assert len(store.orders()) == 40
        assert not store.claim_intent(first).claimed
    finally:
        store.close()


def test_a_given_up_claim_recorded_submitted_by_its_claim_alone_is_abandoned(store: Store) -> None:
    """The give-up took the Handover, so the persistence never handed it to the gateway: the claim's own send
    record (sent_at, processBefore) does not keep it SUBMITTED until a restart. A row with another sent_at (claimed
    and sent earlier), or one the exchange already answered, is never abandoned."""
    mine = make_intent(1, sent_at=1_000, process_before=31_000)
    earlier = make_intent(2, sent_at=500, process_before=30_500)
    answered = make_intent(3, sent_at=1_000, process_before=31_000)
    store.apply_batch([ClaimIntent(intent=i) for i in (mine, earlier, answered)])
    store.apply_batch([update_for(answered, OrderState.ACCEPTED, exchange_order_id="ex-3")])
    assert store.abandon_intent(mine.intent_hash, "late answer", claimed_sent_at=1_000)
    assert not store.abandon_intent(earlier.intent_hash, "late answer", claimed_sent_at=1_000)
    assert not store.abandon_intent(answered.intent_hash, "late answer", claimed_sent_at=1_000)
    assert store.intent(mine.intent_hash).state is OrderState.REJECTED
    assert store.intent(earlier.intent_hash).state is OrderState.SUBMITTED
    assert store.intent(answered.intent_hash).state is OrderState.ACCEPTED
