"""Retention: final orders, fills and events are archived to fsynced gzip files, then deleted; nothing else is."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal
from pathlib import Path

import pytest

import persistence.store as store_module
from messages import ClaimIntent, Event, EventKind, OrderState, OrderUpdate, Side
from persistence import Store
from tests.persistence.common import BTC, fill_for, make_intent, update_for

pytestmark = pytest.mark.timeout(60)

OLD = 1_000  # exchange time of the old fills; events and orders are dated old by hand below


def _history(store: Store) -> dict[str, object]:
    done, open_, unbooked = make_intent(1), make_intent(2), make_intent(3)
    store.apply_batch([ClaimIntent(intent=i) for i in (done, open_, unbooked)])
    store.apply_batch([
        update_for(done, OrderState.FILLED, exchange_order_id="x-done", filled=Decimal("0.002"),
                   fills=(fill_for(done, "f-done", time=OLD),)),
        update_for(open_, OrderState.PARTIALLY_FILLED, exchange_order_id="x-open", filled=Decimal("0.001"),
                   fills=(fill_for(open_, "f-open", amount="0.001", time=OLD),)),
        update_for(unbooked, OrderState.FILLED, exchange_order_id="x-unbooked", filled=Decimal("0.002"),
                   fills=(fill_for(unbooked, "f-unbooked", amount="0.001", time=OLD),)),
        OrderUpdate(intent_hash=None, client_order_id=None, symbol=BTC, side=Side.SELL, state=OrderState.CANCELED,
                    exchange_order_id="x-external"),
        OrderUpdate(intent_hash=None, client_order_id=None, symbol=BTC, side=Side.SELL, state=OrderState.ACCEPTED,
                    exchange_order_id="x-external-open"),
        Event(kind=EventKind.SIGNAL_REJECTED, symbol=BTC, detail="no intent", time=OLD),
    ])
    m = store.models
    m.Order.update(updated_at=OLD).execute()
    m.Event.update(time=OLD).execute()
    store.apply_batch([Event(kind=EventKind.SIGNAL_REJECTED, symbol=BTC, detail="new")])
    return {"done": done, "open": open_, "unbooked": unbooked}


def _read(path: Path) -> list[dict]:
    with gzip.open(path, "rt") as handle:
        return [json.loads(line) for line in handle]


def test_archive_moves_only_final_rows_and_writes_them_first(store: Store, tmp_path: Path) -> None:
    i = _history(store)
    before = {"orders": store.orders(), "fills": store.fills(), "events": store.events()}
    moved = store.archive(10_000, ["orders", "fills", "events"], tmp_path, batch_size=2)
    kept_orders = {o["exchange_order_id"] for o in store.orders()}
    assert kept_orders == {"x-open", "x-unbooked", "x-external-open"}  # unfinished, fills to book, open external
    assert {f["fill_id"] for f in store.fills()} == {"f-open", "f-unbooked"}  # unfinished, and fills still to book
    done, open_, unbooked = i["done"].intent_hash, i["open"].intent_hash, i["unbooked"].intent_hash
    kept_events = store.events()
    assert all(e.intent_hash in (None, open_, unbooked) for e in kept_events)
    assert {e.detail for e in kept_events if e.intent_hash is None} == {"new"}
    assert any(e.intent_hash == open_ for e in kept_events)
    assert moved == {"orders": 2, "fills": 1, "events": len(before["events"]) - len(kept_events)}
    archived = {kind: _read(tmp_path / f"{kind}-10000.jsonl.gz") for kind in moved}
    assert {o["exchange_order_id"] for o in archived["orders"]} == {"x-done", "x-external"}
    assert [f["fill_id"] for f in archived["fills"]] == ["f-done"]
    assert archived["fills"][0]["amount"] == "0.002"
    assert any(e["intent_hash"] == done for e in archived["events"])
    assert len(archived["orders"]) + len(kept_orders) == len(before["orders"])
    # The running totals and the intents are untouched by retention.
    assert store.pnl_totals()[BTC]["fill_count"] == 3
    assert store.intent(done).state is OrderState.FILLED
    # A second run finds nothing more; an update of the archived order's intent still works.
    assert store.archive(10_000, ["orders", "fills", "events"], tmp_path) == {"orders": 0, "fills": 0, "events": 0}
    store.apply_batch([update_for(i["open"], OrderState.FILLED, exchange_order_id="x-open", filled=Decimal("0.002"))])
    assert store.intent(open_).state is OrderState.FILLED


def test_nothing_is_deleted_when_the_archive_cannot_be_written(store: Store, tmp_path: Path, monkeypatch) -> None:
    _history(store)
    counts = (len(store.orders()), len(store.fills()), len(store.events()))
    seen: list[int] = []

    def refuse(path: Path, data: bytes) -> None:
        seen.append(len(store.orders()))  # the rows are all still there while their file is written
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store_module, "_append_fsynced", refuse)
    with pytest.raises(OSError, match="No space"):
        store.archive(10_000, ["orders"], tmp_path)
    assert seen == [counts[0]]
    assert (len(store.orders()), len(store.fills()), len(store.events())) == counts


def test_archive_keeps_everything_newer_and_refuses_unknown_tables(store: Store, tmp_path: Path) -> None:
    _history(store)
    counts = (len(store.orders()), len(store.fills()), len(store.events()))
    assert store.archive(OLD, ["orders", "fills", "events"], tmp_path) == {"orders": 0, "fills": 0, "events": 0}
    assert (len(store.orders()), len(store.fills()), len(store.events())) == counts
    with pytest.raises(ValueError, match="unknown archive tables"):
        store.archive(10_000, ["intents"], tmp_path)


def test_archive_in_steps_goes_on_where_it_stopped(store: Store, tmp_path: Path) -> None:
    store.apply_batch([Event(kind=EventKind.SIGNAL_REJECTED, symbol=BTC, detail=str(n), time=OLD + n)
                       for n in range(25)])
    assert store.archive(10_000, ["events"], tmp_path, batch_size=4, max_rows=10) == {"events": 12}
    assert store.archive(10_000, ["events"], tmp_path, batch_size=4, max_rows=10) == {"events": 12}
    assert store.archive(10_000, ["events"], tmp_path, batch_size=4, max_rows=10) == {"events": 1}
    assert [e["detail"] for e in _read(tmp_path / "events-10000.jsonl.gz")] == [str(n) for n in range(25)]
    assert store.events() == []
