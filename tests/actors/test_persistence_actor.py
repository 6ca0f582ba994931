"""The persistence actor alone, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest

from actors.persistence import PersistenceActor
from messages import (
    ArchiveHistory,
    ClaimIntent,
    Event,
    EventKind,
    Fill,
    LoadOpenIntents,
    LoadSymbol,
    OrderIntent,
    OrderState,
    OrderUpdate,
    Ping,
    PurgeIntents,
    QueryEvents,
    QueryPnl,
    Reason,
    SetControl,
    Side,
    SignalKind,
    client_order_id_for,
    intent_hash,
    now_ms,
)
from persistence import (
    SCHEMA_VERSION,
    SchemaVersionError,
    StorageError,
    Store,
    open_database,
)

BTC = "BTC/USD:USD"


def make_intent(t: int = 1, created_at: int | None = None, symbol: str = BTC) -> OrderIntent:
    h = intent_hash(symbol, t, SignalKind.ENTER_LONG, Decimal(100))
    return OrderIntent(intent_hash=h, client_order_id=client_order_id_for(h), symbol=symbol,
                       kind=SignalKind.ENTER_LONG, side=Side.BUY, candle_time=t, notional=Decimal(100),
                       amount=Decimal("0.002"), price=Decimal(50_000), created_at=created_at or now_ms())


def update_for(intent: OrderIntent, state: OrderState, **fields) -> OrderUpdate:
    return OrderUpdate(intent_hash=intent.intent_hash, client_order_id=intent.client_order_id, symbol=intent.symbol,
                       side=intent.side, state=state, **fields)


def test_concurrent_claims_of_one_intent_succeed_exactly_once(db_url: str) -> None:
    ref = PersistenceActor.start(open_database(db_url))
    intent = make_intent()
    results: list[bool] = []
    barrier = threading.Barrier(20)

    def claim() -> None:
        barrier.wait()
        results.append(ref.ask(ClaimIntent(intent=intent), timeout=10).claimed)

    threads = [threading.Thread(target=claim) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 19 + [True]


def test_claim_is_durable_and_visible_to_a_fresh_actor(db_url: str) -> None:
    first = PersistenceActor.start(open_database(db_url))
    intent = make_intent()
    assert first.ask(ClaimIntent(intent=intent), timeout=10).claimed
    first.stop()
    second = PersistenceActor.start(open_database(db_url))
    again = second.ask(ClaimIntent(intent=intent), timeout=10)
    assert not again.claimed and again.existing_state is OrderState.INITIALIZED
    boot = second.ask(LoadSymbol(symbol=BTC, since=0), timeout=10)
    assert intent.intent_hash in boot.recent_hashes
    assert [r.client_order_id for r in boot.open_intents] == [intent.client_order_id]


def test_told_writes_are_batched_and_seen_by_the_next_ask(db_url: str) -> None:
    ref = PersistenceActor.start(open_database(db_url))
    intent = make_intent()
    ref.ask(ClaimIntent(intent=intent), timeout=10)
    fill = Fill(fill_id="f-1", symbol=BTC, side=Side.BUY, amount=Decimal("0.002"), price=Decimal(50_000))
    for i in range(200):
        ref.tell(Event(kind=EventKind.SIGNAL_REJECTED, symbol=BTC, reason=Reason.POSITION_OPEN, detail=str(i)))
    ref.tell(update_for(intent, OrderState.SUBMITTED))
    ref.tell(update_for(intent, OrderState.FILLED, exchange_order_id="ex-1", filled=Decimal("0.002"), fills=(fill,)))
    ref.tell(update_for(intent, OrderState.ACCEPTED))  # late and stale: must not move FILLED back
    events = ref.ask(QueryEvents(reason=Reason.POSITION_OPEN.value), timeout=10)
    assert [e.detail for e in events] == [str(i) for i in range(200)]
    assert ref.ask(LoadOpenIntents(), timeout=10) == []
    ref.stop()
    store = Store(open_database(db_url))
    store.open()
    assert store.intent(intent.intent_hash).state is OrderState.FILLED
    orders = store.orders()
    assert [(o["exchange_order_id"], o["state"]) for o in orders] == [("ex-1", "FILLED")]
    assert [f["fill_id"] for f in store.fills()] == ["f-1"]
    store.close()


def test_control_state_is_durable(db_url: str) -> None:
    ref = PersistenceActor.start(open_database(db_url))
    ref.ask(SetControl(symbol=BTC, paused=True, source="cli", reason="news"), timeout=10)
    ref.ask(SetControl(symbol=BTC, halted=True, source="cli"), timeout=10)
    ref.stop()
    ref = PersistenceActor.start(open_database(db_url))
    control = ref.ask(LoadSymbol(symbol=BTC, since=0), timeout=10).control
    assert control.paused and control.halted and control.source == "cli"
    events = ref.ask(QueryEvents(kind=EventKind.CONTROL.value), timeout=10)
    assert len(events) == 2 and "by cli: news" in events[0].detail


def test_purge_removes_only_old_finished_intents(db_url: str) -> None:
    ref = PersistenceActor.start(open_database(db_url))
    old_done, old_open, new_done = make_intent(1, created_at=1_000), make_intent(2, created_at=1_000), make_intent(3)
    for intent in (old_done, old_open, new_done):
        ref.ask(ClaimIntent(intent=intent), timeout=10)
    ref.tell(update_for(old_done, OrderState.REJECTED, reason="EXCHANGE_REJECTED"))
    ref.tell(update_for(new_done, OrderState.CANCELED))
    assert ref.ask(PurgeIntents(before=now_ms() - 3_600_000), timeout=10) == 1
    hashes = ref.ask(LoadSymbol(symbol=BTC, since=0), timeout=10).recent_hashes
    assert hashes == {old_open.intent_hash, new_done.intent_hash}


def test_schema_version_is_recorded_and_a_newer_one_is_refused(db_url: str) -> None:
    store = Store(open_database(db_url))
    store.open()
    assert store.schema_version() == SCHEMA_VERSION
    store.models.SchemaInfo.update(value=str(SCHEMA_VERSION + 1)).execute()
    store.close()
    with pytest.raises(SchemaVersionError, match="newer than this program"):
        Store(open_database(db_url)).open()


def test_a_full_disk_refuses_the_claim_and_loses_no_earlier_data(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'small.db'}"
    ref = PersistenceActor.start(open_database(url))
    first = make_intent(1)
    assert ref.ask(ClaimIntent(intent=first), timeout=10).claimed
    store = Store(open_database(url))
    store.open()
    pages = store.database.execute_sql("PRAGMA page_count").fetchone()[0]
    store.close()
    ref.stop()
    database = open_database(url)
    database._pragmas = [*database._pragmas, ("max_page_count", pages)]  # the disk is now full
    ref = PersistenceActor.start(database)
    blob = "x" * 20_000
    with pytest.raises(StorageError, match="database or disk is full"):
        ref.ask(ClaimIntent(intent=make_intent(2).model_copy(update={"symbol": BTC + blob[:0]}),
                            event=Event(kind=EventKind.INTENT_CLAIMED, detail=blob)), timeout=10)
    assert ref.is_alive()  # an ask that fails does not kill the only writer
    boot = ref.ask(LoadSymbol(symbol=BTC, since=0), timeout=10)
    assert boot.recent_hashes == {first.intent_hash}
    assert ref.ask(ClaimIntent(intent=make_intent(3)), timeout=10).claimed  # small writes still fit


def test_archive_history_is_a_tell_that_moves_final_rows_and_survives_a_bad_folder(db_url: str, tmp_path) -> None:
    ref = PersistenceActor.start(open_database(db_url))
    done, still_open = make_intent(1), make_intent(2)
    for intent in (done, still_open):
        ref.ask(ClaimIntent(intent=intent), timeout=10)
    fill = Fill(fill_id="f-1", symbol=BTC, side=Side.BUY, amount=Decimal("0.002"), price=Decimal(50_000), time=1)
    ref.tell(update_for(done, OrderState.FILLED, exchange_order_id="ex-1", filled=Decimal("0.002"), fills=(fill,)))
    ref.tell(update_for(still_open, OrderState.ACCEPTED, exchange_order_id="ex-2"))
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    ref.tell(ArchiveHistory(before=now_ms() + 60_000, folder=str(blocked / "sub")))  # cannot be created
    ref.tell(ArchiveHistory(before=now_ms() + 60_000, folder=str(tmp_path / "archive"), tables=("orders", "fills")))
    assert ref.ask(Ping(), timeout=10) and ref.is_alive()
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "archive").iterdir()) == ["fills", "orders"]
    assert ref.ask(LoadOpenIntents(with_unbooked=True), timeout=10)[0].intent_hash == still_open.intent_hash
    assert ref.ask(QueryPnl(), timeout=10) == {BTC: Decimal(0)}
    ref.stop()
    store = Store(open_database(db_url))
    store.open()
    assert [o["exchange_order_id"] for o in store.orders()] == ["ex-2"] and store.fills() == []
    store.close()


def test_a_claim_with_process_before_is_answered_after_submitted_is_on_disk(db_url: str) -> None:
    ref = PersistenceActor.start(open_database(db_url))
    intent = make_intent(1).model_copy(update={"sent_at": 5_000, "process_before": 35_000})
    assert ref.ask(ClaimIntent(intent=intent), timeout=10).claimed
    ref.stop()
    store = Store(open_database(db_url))
    store.open()
    record = store.intent(intent.intent_hash)
    assert (record.state, record.sent_at, record.process_before, record.sends) == (OrderState.SUBMITTED, 5_000,
                                                                                   35_000, 1)
    store.close()
