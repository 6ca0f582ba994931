"""The store: every query and write the system makes, on one peewee database."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal

import peewee
from playhouse.migrate import SchemaMigrator, migrate

from messages import (
    ClaimIntent,
    ClaimResult,
    ControlRecord,
    Event,
    EventKind,
    IntentRecord,
    OrderIntent,
    OrderState,
    OrderUpdate,
    Reason,
    RecordSends,
    SymbolBootstrap,
    is_advance,
    now_ms,
)
from messages.orders import FINAL_STATES
from persistence.models import SCHEMA_VERSION, Models, build_models


def _order_event(update: OrderUpdate) -> Event:
    parts = [update.state.value, update.side.value, f"cliOrdId={update.client_order_id}"]
    if update.exchange_order_id:
        parts.append(f"orderId={update.exchange_order_id}")
    if update.filled:
        parts.append(f"filled={update.filled}")
    if update.detail:
        parts.append(update.detail)
    return Event(
        kind=EventKind.ORDER_UPDATE,
        symbol=update.symbol,
        reason=Reason(update.reason) if update.reason in Reason.__members__ else None,
        intent_hash=update.intent_hash,
        detail=" ".join(parts),
        time=update.time,
    )


def intent_row(intent: OrderIntent) -> dict[str, object]:
    """The intent table's columns for an intent: the one mapping (IntentRecord.to_intent reads it back)."""
    row: dict[str, object] = {}
    for name in IntentRecord.INTENT_FIELDS:
        value = getattr(intent, name)
        if isinstance(value, Decimal):
            value = str(value)
        elif hasattr(value, "value"):  # the enums (kind, side)
            value = value.value
        row[name] = value
    return row


class SchemaVersionError(RuntimeError):
    """The database was written by a newer version of this program."""


class StorageError(RuntimeError):
    """A write did not reach the database (full disk, lost connection, locked file); nothing was stored."""


@contextmanager
def _writing(database: peewee.Database, what: str) -> Iterator[None]:
    """Run a write transaction; turn any database failure into a StorageError naming its real cause."""
    try:
        with database.atomic():
            yield
    except peewee.IntegrityError:
        raise
    except peewee.PeeweeException as exc:
        raise StorageError(f"could not store {what}: {_root_cause(exc)}") from exc


def _root_cause(exc: BaseException) -> BaseException:
    """SQLite rolls back by itself on some errors (disk full); the failed rollback then hides the cause."""
    seen: BaseException | None = exc
    while seen is not None:
        if "no transaction is active" not in str(seen):
            return seen
        seen = seen.__cause__ or seen.__context__
    return exc




class Store:
    """Reads and writes intents, orders, fills, events and control state (use from one thread)."""

    def __init__(self, database: peewee.Database) -> None:
        self.database = database
        self.models: Models = build_models(database)

    # --- lifecycle -------------------------------------------------------------------------

    def open(self) -> None:
        """Connect and create the schema on first use; refuse a schema newer than this code."""
        self.database.connect(reuse_if_open=True)
        with self.database.atomic():
            self.database.create_tables(self.models.all, safe=True)
            info = self.models.SchemaInfo
            row = info.get_or_none(info.key == "version")
            if row is None:
                info.create(key="version", value=str(SCHEMA_VERSION))
            elif int(row.value) > SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"the database has schema version {row.value}, newer than this program's "
                    f"{SCHEMA_VERSION}: upgrade the program or point database.url elsewhere"
                )
            elif int(row.value) < SCHEMA_VERSION:
                self._migrate(int(row.value))
                info.update(value=str(SCHEMA_VERSION)).where(info.key == "version").execute()

    def _migrate(self, version: int) -> None:
        """Bring a database written by an older version up to SCHEMA_VERSION (inside open's transaction)."""
        if version < 2:
            Intent = self.models.Intent
            have = {column.name for column in self.database.get_columns(Intent._meta.table_name)}
            migrator = SchemaMigrator.from_database(self.database)
            added = [
                migrator.add_column(Intent._meta.table_name, name, getattr(Intent, name))
                for name in ("limit_price", "sent_at", "process_before", "sends", "schema_v1")
                if name not in have
            ]
            migrate(*added)
            # Unfinished intents of version 1 were sent without processBefore: their window is unknown.
            Intent.update(schema_v1=True).where(Intent.status.not_in([s.value for s in FINAL_STATES])).execute()

    def close(self) -> None:
        """Close this thread's connection."""
        if not self.database.is_closed():
            self.database.close()

    def schema_version(self) -> int:
        """The schema version recorded in the database."""
        return int(self.models.SchemaInfo.get(self.models.SchemaInfo.key == "version").value)

    # --- intents ---------------------------------------------------------------------------

    def claim_intent(self, intent: OrderIntent, event: Event | None = None) -> ClaimResult:
        """Insert the intent (unique hash and client order id), durably; say so if it existed."""
        result = self.apply_batch([ClaimIntent(intent=intent, event=event)])[0]
        assert result is not None
        return result

    def _claim(self, claim: ClaimIntent) -> ClaimResult:
        intent = claim.intent
        Intent = self.models.Intent
        try:
            with self.database.atomic():  # a savepoint: a duplicate undoes only itself
                Intent.insert(
                    **intent_row(intent), status=OrderState.INITIALIZED.value, updated_at=now_ms()
                ).execute()
        except peewee.IntegrityError:
            existing = Intent.get_or_none(
                (Intent.intent_hash == intent.intent_hash) | (Intent.client_order_id == intent.client_order_id)
            )
            return ClaimResult(claimed=False, existing_state=OrderState(existing.status) if existing else None)
        return ClaimResult(claimed=True)

    def intent(self, intent_hash: str) -> IntentRecord | None:
        """The stored intent with this hash, if any."""
        row = self.models.Intent.get_or_none(self.models.Intent.intent_hash == intent_hash)
        return self._records([row])[0] if row else None

    def open_intents(self, symbol: str | None = None) -> list[IntentRecord]:
        """Intents whose order is not final, oldest first."""
        Intent = self.models.Intent
        query = Intent.select().where(Intent.status.not_in([s.value for s in FINAL_STATES]))
        if symbol is not None:
            query = query.where(Intent.symbol == symbol)
        return self._records(list(query.order_by(Intent.created_at, Intent.id)))

    def unbooked_intents(self, since: int) -> list[IntentRecord]:
        """Final intents updated at or after `since` whose stored fills add up to less than their filled amount."""
        Intent = self.models.Intent
        query = (Intent.select()
                 .where(Intent.status.in_([OrderState.FILLED.value, OrderState.CANCELED.value])
                        & (Intent.updated_at >= since) & (Intent.filled != "0"))
                 .order_by(Intent.created_at, Intent.id))
        return [r for r in self._records(list(query)) if r.fills_booked < r.filled]

    def find_intents(self, client_order_ids: Iterable[str]) -> list[IntentRecord]:
        """The stored intents (final ones too) with these client order ids."""
        Intent = self.models.Intent
        ids = list(dict.fromkeys(client_order_ids))
        rows: list[peewee.Model] = []
        for start in range(0, len(ids), 500):
            rows.extend(Intent.select().where(Intent.client_order_id.in_(ids[start : start + 500])))
        return self._records(rows)

    def abandon_intent(self, intent_hash: str, detail: str) -> bool:
        """Mark an intent that was never handed to the exchange NOT_PLACED; False if it went further."""
        Intent = self.models.Intent
        with _writing(self.database, f"abandoned intent {intent_hash[:12]}"):
            changed = (
                Intent.update(status=OrderState.REJECTED.value, reason=Reason.NOT_PLACED.value, updated_at=now_ms())
                .where((Intent.intent_hash == intent_hash) & (Intent.status == OrderState.INITIALIZED.value)
                       & Intent.sent_at.is_null())
                .execute()
            )
            if changed:
                self._insert_events([Event(kind=EventKind.ORDER_UPDATE, reason=Reason.NOT_PLACED,
                                           intent_hash=intent_hash, detail=f"REJECTED never sent: {detail}")])
        return bool(changed)

    def recent_hashes(self, symbol: str, since: int) -> frozenset[str]:
        """Hashes of intents for `symbol` created at or after `since` (epoch ms)."""
        Intent = self.models.Intent
        query = Intent.select(Intent.intent_hash).where((Intent.symbol == symbol) & (Intent.created_at >= since))
        return frozenset(row.intent_hash for row in query)

    def purge_intents(self, before: int) -> int:
        """Delete final intents created before `before`; unfinished ones are kept whatever their age."""
        Intent = self.models.Intent
        return (
            Intent.delete()
            .where((Intent.created_at < before) & (Intent.status.in_([s.value for s in FINAL_STATES])))
            .execute()
        )

    # --- batched writes --------------------------------------------------------------------

    def apply_batch(self, items: Sequence[Event | OrderUpdate | ClaimIntent | RecordSends]
                    ) -> list[ClaimResult | None]:
        """Write claims, order updates and events in one transaction (one commit, one fsync), in order.

        Returns, for each item, its ClaimResult (claims) or None. Raises StorageError if the
        transaction fails: then nothing of the batch was stored and no claim succeeded.
        """
        results: list[ClaimResult | None] = []
        if not items:
            return results
        with _writing(self.database, f"{len(items)} records"):
            events = []
            for item in items:
                if isinstance(item, ClaimIntent):
                    result = self._claim(item)
                    results.append(result)
                    if result.claimed and item.event is not None:
                        events.append(item.event)
                    continue
                results.append(None)
                if isinstance(item, RecordSends):
                    for update in item.updates:
                        self._apply_order_update(update)
                        events.append(_order_event(update))
                elif isinstance(item, OrderUpdate):
                    self._apply_order_update(item)
                    events.append(_order_event(item))
                else:
                    events.append(item)
            self._insert_events(events)
        return results

    def _insert_events(self, events: Iterable[Event]) -> None:
        rows = [
            {
                "time": e.time,
                "kind": e.kind.value,
                "symbol": e.symbol,
                "reason": e.reason.value if e.reason else None,
                "intent_hash": e.intent_hash,
                "detail": e.detail,
            }
            for e in events
        ]
        for start in range(0, len(rows), 500):
            self.models.Event.insert_many(rows[start : start + 500]).execute()

    def _apply_order_update(self, update: OrderUpdate) -> None:
        m = self.models
        now = now_ms()
        if update.intent_hash is not None:
            row = m.Intent.get_or_none(m.Intent.intent_hash == update.intent_hash)
            if row is not None and is_advance(OrderState(row.status), update.state,
                                              filled_before=Decimal(row.filled or "0"), filled_after=update.filled):
                fields: dict[str, object] = {
                    "status": update.state.value,
                    "reason": update.reason,
                    "exchange_order_id": update.exchange_order_id or row.exchange_order_id,
                    "filled": str(update.filled),
                    "updated_at": now,
                }
                if update.sent_at is not None:
                    fields.update(sent_at=update.sent_at, process_before=update.process_before, schema_v1=False)
                if update.sends is not None:
                    fields["sends"] = update.sends
                m.Intent.update(**fields).where(m.Intent.id == row.id).execute()
        self._upsert_order(update, now)
        if update.fills:
            m.Fill.insert_many(
                [
                    {
                        "fill_id": f.fill_id,
                        "symbol": f.symbol,
                        "side": f.side.value,
                        "amount": str(f.amount),
                        "price": str(f.price),
                        "fee": str(f.fee),
                        "exchange_order_id": f.exchange_order_id or update.exchange_order_id,
                        "client_order_id": f.client_order_id or update.client_order_id,
                        "time": f.time,
                    }
                    for f in update.fills
                ]
            ).on_conflict_ignore().execute()

    def _upsert_order(self, update: OrderUpdate, now: int) -> None:
        Order = self.models.Order
        row = None
        if update.client_order_id:
            row = Order.get_or_none(Order.client_order_id == update.client_order_id)
        if row is None and update.exchange_order_id:
            row = Order.get_or_none(Order.exchange_order_id == update.exchange_order_id)
        fields = {
            "state": update.state.value,
            "reason": update.reason,
            "detail": update.detail,
            "filled": str(update.filled),
            "updated_at": now,
        }
        if update.average_price is not None:
            fields["average_price"] = str(update.average_price)
        if update.amount is not None:
            fields["amount"] = str(update.amount)
        if update.exchange_order_id:
            fields["exchange_order_id"] = update.exchange_order_id
        if row is None:
            Order.insert(
                client_order_id=update.client_order_id,
                intent_hash=update.intent_hash,
                origin="OURS" if update.intent_hash else "EXTERNAL",
                symbol=update.symbol,
                side=update.side.value,
                reduce_only=update.reduce_only,
                created_at=now,
                **fields,
            ).execute()
        elif is_advance(OrderState(row.state), update.state, filled_before=Decimal(row.filled or "0"),
                        filled_after=update.filled):
            Order.update(**fields).where(Order.id == row.id).execute()

    # --- control state ---------------------------------------------------------------------

    def set_control(
        self,
        symbol: str,
        *,
        paused: bool | None = None,
        halted: bool | None = None,
        reason: str = "",
        source: str = "",
    ) -> ControlRecord:
        """Store a symbol's control flags (None keeps a flag) and an event saying who changed what."""
        ControlState = self.models.ControlState
        now = now_ms()
        with _writing(self.database, f"control state of {symbol}"):
            row = ControlState.get_or_none(ControlState.symbol == symbol)
            if row is None:
                row = ControlState(symbol=symbol, updated_at=now)
                created = True
            else:
                created = False
            if paused is not None:
                row.paused = paused
            if halted is not None:
                row.halted = halted
            row.reason, row.source, row.updated_at = reason, source, now
            row.save(force_insert=created)
            self._insert_events(
                [
                    Event(
                        kind=EventKind.CONTROL,
                        symbol=symbol,
                        reason=Reason.PAUSED if paused else (Reason.HALTED if halted else None),
                        detail=f"paused={row.paused} halted={row.halted} by {source or 'unknown'}: {reason}".strip(),
                        time=now,
                    )
                ]
            )
        return self._control_record(row)

    def control(self, symbol: str) -> ControlRecord:
        """A symbol's control state (all flags off when never set)."""
        ControlState = self.models.ControlState
        row = ControlState.get_or_none(ControlState.symbol == symbol)
        return self._control_record(row) if row else ControlRecord(symbol=symbol)

    def load_symbol(self, symbol: str, since: int) -> SymbolBootstrap:
        """What a (re)starting symbol actor needs: recent hashes, unfinished intents, control state."""
        return SymbolBootstrap(
            symbol=symbol,
            recent_hashes=self.recent_hashes(symbol, since),
            open_intents=tuple(self.open_intents(symbol)),
            control=self.control(symbol),
        )

    # --- queries ---------------------------------------------------------------------------

    def events(
        self,
        symbol: str | None = None,
        kind: str | None = None,
        reason: str | None = None,
        limit: int = 1000,
    ) -> list[Event]:
        """The newest events (oldest first within the result), filtered as asked."""
        E = self.models.Event
        query = E.select()
        if symbol is not None:
            query = query.where(E.symbol == symbol)
        if kind is not None:
            query = query.where(E.kind == kind)
        if reason is not None:
            query = query.where(E.reason == reason)
        rows = list(query.order_by(E.id.desc()).limit(limit))
        return [
            Event(
                kind=EventKind(r.kind),
                symbol=r.symbol,
                reason=Reason(r.reason) if r.reason else None,
                intent_hash=r.intent_hash,
                detail=r.detail,
                time=r.time,
            )
            for r in reversed(rows)
        ]

    def orders(self, symbol: str | None = None) -> list[dict[str, object]]:
        """Every stored order as a plain mapping, oldest first."""
        Order = self.models.Order
        query = Order.select().order_by(Order.id)
        if symbol is not None:
            query = query.where(Order.symbol == symbol)
        return list(query.dicts())

    def fills(self, symbol: str | None = None) -> list[dict[str, object]]:
        """Every stored fill as a plain mapping, oldest first."""
        Fill = self.models.Fill
        query = Fill.select().order_by(Fill.id)
        if symbol is not None:
            query = query.where(Fill.symbol == symbol)
        return list(query.dicts())

    def realized_pnl(self) -> dict[str, Decimal]:
        """Realized PnL per symbol from this system's fills (average cost, fees subtracted)."""
        Fill = self.models.Fill
        result: dict[str, Decimal] = {}
        books: dict[str, tuple[Decimal, Decimal]] = {}  # symbol -> signed contracts, average entry
        for row in Fill.select().order_by(Fill.time, Fill.id):
            amount, price = Decimal(row.amount), Decimal(row.price)
            signed = amount if row.side == "buy" else -amount
            position, entry = books.get(row.symbol, (Decimal(0), Decimal(0)))
            pnl = result.get(row.symbol, Decimal(0)) - Decimal(row.fee or "0")
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
            books[row.symbol] = (position, entry if position != 0 else Decimal(0))
            result[row.symbol] = pnl
        return result

    # --- helpers ---------------------------------------------------------------------------

    def _records(self, rows: list[peewee.Model]) -> list[IntentRecord]:
        """Records of these intent rows, each with the ids of the fills stored for its order."""
        Fill = self.models.Fill
        fill_ids: dict[str, set[str]] = {}
        booked: dict[str, Decimal] = {}
        cids = [row.client_order_id for row in rows]
        for start in range(0, len(cids), 500):
            chunk = cids[start : start + 500]
            query = Fill.select(Fill.fill_id, Fill.client_order_id, Fill.amount).where(Fill.client_order_id.in_(chunk))
            for fill in query:
                fill_ids.setdefault(fill.client_order_id, set()).add(fill.fill_id)
                booked[fill.client_order_id] = booked.get(fill.client_order_id, Decimal(0)) + Decimal(fill.amount)
        return [self._intent_record(row, frozenset(fill_ids.get(row.client_order_id, ())),
                                    booked.get(row.client_order_id, Decimal(0))) for row in rows]

    @staticmethod
    def _intent_record(row: peewee.Model, fill_ids: frozenset[str] = frozenset(),
                       fills_booked: Decimal = Decimal(0)) -> IntentRecord:
        return IntentRecord(
            intent_hash=row.intent_hash,
            client_order_id=row.client_order_id,
            symbol=row.symbol,
            kind=row.kind,
            side=row.side,
            candle_time=row.candle_time,
            reduce_only=row.reduce_only,
            amount=Decimal(row.amount),
            price=Decimal(row.price),
            notional=Decimal(row.notional),
            order_type=row.order_type,
            limit_price=Decimal(row.limit_price) if row.limit_price else None,
            state=OrderState(row.status),
            filled=Decimal(row.filled or "0"),
            exchange_order_id=row.exchange_order_id,
            reason=row.reason,
            created_at=row.created_at,
            updated_at=row.updated_at,
            sent_at=row.sent_at,
            process_before=row.process_before,
            sends=row.sends or 0,
            fill_ids=fill_ids,
            fills_booked=fills_booked,
            schema_v1=bool(row.schema_v1),
        )

    @staticmethod
    def _control_record(row: peewee.Model) -> ControlRecord:
        return ControlRecord(
            symbol=row.symbol,
            paused=bool(row.paused),
            halted=bool(row.halted),
            reason=row.reason or "",
            source=row.source or "",
            updated_at=row.updated_at,
        )
