"""The store: every query and write the system makes, on one peewee database."""

from __future__ import annotations

import gzip
import json
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import peewee
from loguru import logger
from playhouse.migrate import SchemaMigrator, migrate

from messages import (
    AccountLogEntries,
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
        reason=Reason(update.reason) if update.reason is not None and update.reason in Reason.__members__ else None,
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


_wrap_driver_errors = peewee.__exception_wrapper__  # type: ignore[attr-defined]  # DB-API errors as peewee's

_MISSING = object()
CACHE_LIMIT = 20_000  # final intents and orders kept in memory beyond the open ones (an optimisation only)
RECENT_HASHES_LIMIT = 2_000
ARCHIVE_TABLES = ("orders", "fills", "events")
ARCHIVE_BATCH = 5_000
_MIGRATION_BATCH = 50_000  # intent rows updated per statement batch by the schema 3 migration

_NOT_FINAL = tuple(s.value for s in OrderState if s not in FINAL_STATES)
_FINAL = tuple(s.value for s in FINAL_STATES)


@dataclass(frozen=True, slots=True)
class _IntentRow:
    """The columns of one intent row that the writer decides on (its cache entry; replaced, never mutated)."""

    intent_hash: str
    client_order_id: str
    status: OrderState
    filled: Decimal
    exchange_order_id: str | None
    reason: str | None
    sent_at: int | None
    process_before: int | None
    sends: int
    schema_v1: bool
    booked: Decimal
    fills_complete: bool
    updated_at: int

    def params(self) -> tuple[object, ...]:
        """The parameters of the intent UPDATE statement."""
        return (self.status.value, self.reason, self.exchange_order_id, str(self.filled), self.updated_at,
                self.sent_at, self.process_before, self.sends, self.schema_v1, str(self.booked),
                self.fills_complete, self.intent_hash)


@dataclass(frozen=True, slots=True)
class _OrderRow:
    """The columns of one order row that the writer decides on."""

    id: int
    client_order_id: str | None
    exchange_order_id: str | None
    state: OrderState
    filled: Decimal
    reason: str | None
    detail: str
    amount: str | None
    average_price: str | None
    updated_at: int

    def params(self) -> tuple[object, ...]:
        """The parameters of the order UPDATE statement."""
        return (self.state.value, self.reason, self.detail, str(self.filled), self.updated_at, self.average_price,
                self.amount, self.exchange_order_id, self.id)


@dataclass(frozen=True, slots=True)
class _Totals:
    """A symbol's running average-cost book (the pnl_total row)."""

    position: Decimal = Decimal(0)
    entry: Decimal = Decimal(0)
    realized: Decimal = Decimal(0)  # fees subtracted
    fees: Decimal = Decimal(0)
    fill_count: int = 0
    funding: Decimal = Decimal(0)  # received (+) or paid (-)

    def add(self, side: str, amount: Decimal, price: Decimal, fee: Decimal) -> _Totals:
        """The book after one fill: the same steps, in the same order, as the full scan it replaces."""
        position, entry, pnl = _average_cost_step(self.position, self.entry, self.realized - fee, side, amount, price)
        return _Totals(position, entry, pnl, self.fees + fee, self.fill_count + 1, self.funding)

    def charged(self, fee: Decimal) -> _Totals:
        """The book after a stored fill's fee arrived (from the account log, after the fill)."""
        return replace(self, realized=self.realized - fee, fees=self.fees + fee)

    def funded(self, amount: Decimal) -> _Totals:
        """The book after a funding payment (received: positive)."""
        return replace(self, funding=self.funding + amount)

    def row(self, symbol: str, now: int) -> tuple[object, ...]:
        """The parameters of the pnl_total upsert."""
        return (symbol, str(self.position), str(self.entry), str(self.realized), str(self.fees), self.fill_count, now,
                str(self.funding))


def _average_cost_step(position: Decimal, entry: Decimal, pnl: Decimal, side: str, amount: Decimal,
                       price: Decimal) -> tuple[Decimal, Decimal, Decimal]:
    """One fill on an average-cost book: (position, entry, realized) after it; the full scan's steps, in its order."""
    signed = amount if side == "buy" else -amount
    if amount == 0:
        pass  # nothing traded (a fee-only report): the full scan divided by zero here
    elif position == 0 or (position > 0) == (signed > 0):
        total = abs(position) + amount
        entry = (entry * abs(position) + price * amount) / total
        position += signed
    else:
        closing = min(abs(position), amount)
        pnl += closing * (price - entry) * (1 if position > 0 else -1)
        position += signed
        if position != 0 and (position > 0) == (signed > 0):
            entry = price  # reversed through zero: the rest opens at this price
    return position, entry if position != 0 else Decimal(0), pnl


def _replay_fills(rows: Iterable[tuple[Any, ...]]) -> tuple[dict[str, Decimal], dict[str, _Totals]]:
    """Booked amounts per client order id and the totals per symbol from (cid, symbol, side, amount, price, fee) rows.

    The books are plain lists (the migration's one pass over every fill: a frozen dataclass per fill cost
    ~7 us); each fill goes through the same `_average_cost_step` as the write path, so every Decimal is the same.
    """
    zero = Decimal(0)
    booked: dict[str, Decimal] = {}
    books: dict[str, list[Any]] = {}  # symbol -> [position, entry, realized, fees, fill_count]
    parsed: dict[str, Decimal] = {}  # amounts, prices and fees repeat: parse each text once (Decimals are immutable)
    for cid, symbol, side, amount, price, fee in rows:
        if len(parsed) > 100_000:
            parsed.clear()
        text = amount
        amount = parsed.get(text)
        if amount is None:
            amount = parsed[text] = Decimal(text)
        if cid is not None:
            booked[cid] = booked.get(cid, zero) + amount
        text = price
        price = parsed.get(text)
        if price is None:
            price = parsed[text] = Decimal(text)
        text = fee or "0"
        fee = parsed.get(text)
        if fee is None:
            fee = parsed[text] = Decimal(text)
        book = books.get(symbol)
        if book is None:
            book = books[symbol] = [zero, zero, zero, zero, 0]
        position, entry, realized, fees, count = book
        position, entry, pnl = _average_cost_step(position, entry, realized - fee, side, amount, price)
        book[0], book[1], book[2], book[3], book[4] = position, entry, pnl, fees + fee, count + 1
    return booked, {symbol: _Totals(*book) for symbol, book in books.items()}


@dataclass
class _Batch:
    """What one apply_batch writes at its end (rows decided in memory, written with executemany)."""

    intents: dict[str, None] = field(default_factory=dict)  # intent hashes to UPDATE, in first-touch order
    orders: dict[int, None] = field(default_factory=dict)  # order row ids to UPDATE
    totals: dict[str, None] = field(default_factory=dict)  # symbols whose pnl_total row to upsert
    events: list[Event] = field(default_factory=list)


_INTENT_INSERT_COLUMNS = (
    *IntentRecord.INTENT_FIELDS, "status", "filled", "exchange_order_id", "reason", "updated_at", "sent_at",
    "process_before", "sends", "schema_v1", "booked", "fills_complete",
)
_INTENT_STATE_COLUMNS = ("intent_hash", "client_order_id", "status", "filled", "exchange_order_id", "reason",
                         "sent_at", "process_before", "sends", "schema_v1", "booked", "fills_complete", "updated_at")
_ORDER_STATE_COLUMNS = ("id", "client_order_id", "exchange_order_id", "state", "filled", "reason", "detail",
                        "amount", "average_price", "updated_at")


def _columns(names: Iterable[str]) -> str:
    return ", ".join(f'"{name}"' for name in names)


class _Sql:
    """The hot path's fixed statements, in the database's parameter style.

    The write path bypasses peewee's query builder: peewee rebuilds every statement's SQL on every
    call (tens of Context.sql calls per column), which cost the single writer ~5 ms per intent;
    these strings are built once, and sqlite3 / psycopg2 keep them prepared.
    """

    def __init__(self, database: peewee.Database) -> None:
        p = database.param
        self.postgres = isinstance(database, peewee.PostgresqlDatabase)

        def marks(count: int) -> str:
            return ", ".join([p] * count)

        self.claim = (f'INSERT INTO "intent" ({_columns(_INTENT_INSERT_COLUMNS)}) '
                      f"VALUES ({marks(len(_INTENT_INSERT_COLUMNS))}) ON CONFLICT DO NOTHING")
        self.claim_existing = (f'SELECT "status" FROM "intent" WHERE "intent_hash" = {p} OR "client_order_id" = {p} '
                               "LIMIT 1")
        self.intent_by_hash = f'SELECT {_columns(_INTENT_STATE_COLUMNS)} FROM "intent" WHERE "intent_hash" = {p}'
        self.intent_by_cid = f'SELECT {_columns(_INTENT_STATE_COLUMNS)} FROM "intent" WHERE "client_order_id" = {p}'
        self.intent_update = (
            f'UPDATE "intent" SET "status" = {p}, "reason" = {p}, "exchange_order_id" = {p}, "filled" = {p}, '
            f'"updated_at" = {p}, "sent_at" = {p}, "process_before" = {p}, "sends" = {p}, "schema_v1" = {p}, '
            f'"booked" = {p}, "fills_complete" = {p} WHERE "intent_hash" = {p}'
        )
        order_insert = ("client_order_id", "exchange_order_id", "intent_hash", "origin", "symbol", "side",
                        "reduce_only", "amount", "filled", "average_price", "state", "reason", "detail",
                        "created_at", "updated_at")
        self.order_insert = (f'INSERT INTO "order" ({_columns(order_insert)}) VALUES ({marks(len(order_insert))}) '
                             'ON CONFLICT ("exchange_order_id") DO NOTHING' + (' RETURNING "id"' if self.postgres
                                                                               else ""))
        self.order_by_cid = (f'SELECT {_columns(_ORDER_STATE_COLUMNS)} FROM "order" WHERE "client_order_id" = {p} '
                             'ORDER BY "id" LIMIT 1')
        self.order_by_xid = f'SELECT {_columns(_ORDER_STATE_COLUMNS)} FROM "order" WHERE "exchange_order_id" = {p}'
        self.order_update = (
            f'UPDATE "order" SET "state" = {p}, "reason" = {p}, "detail" = {p}, "filled" = {p}, "updated_at" = {p}, '
            f'"average_price" = {p}, "amount" = {p}, "exchange_order_id" = {p} WHERE "id" = {p}'
        )
        fill = ("fill_id", "symbol", "side", "amount", "price", "fee", "exchange_order_id", "client_order_id", "time",
                "fee_currency")
        self.fill_insert = (f'INSERT INTO "fill" ({_columns(fill)}) VALUES ({marks(len(fill))}) '
                            'ON CONFLICT ("fill_id") DO NOTHING')
        event = ("time", "kind", "symbol", "reason", "intent_hash", "detail")
        self.event_insert = f'INSERT INTO "event" ({_columns(event)}) VALUES ({marks(len(event))})'
        totals = ("symbol", "position", "entry", "realized", "fees", "fill_count", "updated_at", "funding")
        self.fees_of_execution = f'SELECT "fee", "currency" FROM "trade_fee" WHERE "execution" = {p}'
        trade_fee = ("entry_id", "execution", "symbol", "fee", "currency", "time")
        self.trade_fee_insert = (f'INSERT INTO "trade_fee" ({_columns(trade_fee)}) VALUES ({marks(len(trade_fee))}) '
                                 'ON CONFLICT ("entry_id") DO NOTHING')
        self.fill_fee = f'SELECT "symbol", "fee", "fee_currency" FROM "fill" WHERE "fill_id" = {p}'
        self.fill_fee_update = f'UPDATE "fill" SET "fee" = {p}, "fee_currency" = {p} WHERE "fill_id" = {p}'
        funding = ("entry_id", "symbol", "amount", "currency", "rate", "time")
        self.funding_insert = (f'INSERT INTO "funding" ({_columns(funding)}) VALUES ({marks(len(funding))}) '
                               'ON CONFLICT ("entry_id") DO NOTHING')
        self.totals_upsert = (
            f'INSERT INTO "pnl_total" ({_columns(totals)}) VALUES ({marks(len(totals))}) '
            'ON CONFLICT ("symbol") DO UPDATE SET '
            + ", ".join(f'"{c}" = excluded."{c}"' for c in totals[1:])
        )

    def many(self, cursor: Any, sql: str, rows: list[tuple[object, ...]]) -> None:
        """Run one statement for many rows (psycopg2's executemany is a loop of round trips: page them)."""
        if not rows:
            return
        if self.postgres:
            from psycopg2.extras import execute_batch

            execute_batch(cursor, sql, rows, page_size=500)
        else:
            cursor.executemany(sql, rows)


def _intent_from(row: Sequence[Any]) -> _IntentRow:
    (h, cid, status, filled, xid, reason, sent_at, process_before, sends, schema_v1, booked, complete,
     updated_at) = row
    return _IntentRow(h, cid, OrderState(status), Decimal(filled or "0"), xid, reason, sent_at, process_before,
                      sends or 0, bool(schema_v1), Decimal(booked or "0"), bool(complete), updated_at)


def _order_from(row: Sequence[Any]) -> _OrderRow:
    oid, cid, xid, state, filled, reason, detail, amount, average_price, updated_at = row
    return _OrderRow(oid, cid, xid, OrderState(state), Decimal(filled or "0"), reason, detail or "", amount,
                     average_price, updated_at)


def _event_params(e: Event) -> tuple[object, ...]:
    return (e.time, e.kind.value, e.symbol, e.reason.value if e.reason else None, e.intent_hash, e.detail)


def _append_fsynced(path: Path, data: bytes) -> None:
    """Append one complete gzip member to `path` and fsync it (and, when it is new, its folder)."""
    new = not path.exists()
    with open(path, "ab") as handle:
        handle.write(gzip.compress(data))
        handle.flush()
        os.fsync(handle.fileno())
    if new:
        descriptor = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


class Store:
    """Reads and writes intents, orders, fills, events and control state (use from one thread).

    The store is the database's only writer, so it keeps in memory the state of the intents and
    orders it writes (every unfinished one it has touched, a bounded number of finished ones) and the
    PnL totals: it decides transitions without reading, and a cache miss costs one indexed SELECT.
    """

    def __init__(self, database: peewee.Database, *, cache_limit: int = CACHE_LIMIT) -> None:
        self.database = database
        self.models: Models = build_models(database)
        self._sql = _Sql(database)
        self._cache_limit = cache_limit
        self._trim_at = (cache_limit, cache_limit)  # sizes of the intent and order caches that start a trim
        self._intents: dict[str, _IntentRow] = {}  # hash -> row: every intent touched since open (bounded)
        self._intent_by_cid: dict[str, str] = {}  # client order id -> hash, for the rows in _intents
        self._foreign_cids: dict[str, None] = {}  # client order ids known to have no intent (external orders)
        self._orders: dict[int, _OrderRow] = {}  # row id -> order row
        self._order_by_cid: dict[str, int] = {}
        self._order_by_xid: dict[str, int] = {}
        self._no_order: dict[str, None] = {}  # client order ids claimed here that have no order row yet
        self._totals: dict[str, _Totals] = {}
        self._undo: list[tuple[dict[Any, Any], Any, Any]] | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def open(self) -> None:
        """Connect and create the schema on first use; refuse a schema newer than this code."""
        self.database.connect(reuse_if_open=True)
        self._forget()
        with self.database.atomic():
            info = self.models.SchemaInfo
            version: int | None = None
            if self.database.table_exists(info._meta.table_name):
                row = info.get_or_none(info.key == "version")
                version = int(row.value) if row is not None else None
            if version is not None and version > SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"the database has schema version {version}, newer than this program's "
                    f"{SCHEMA_VERSION}: upgrade the program or point database.url elsewhere"
                )
            if version is not None and version < SCHEMA_VERSION:
                self._migrate(version)  # before create_tables: it then indexes the filled columns in one pass each
            elif version is not None:
                self._add_columns()  # a column this version added that the database lacks (written by a build of
                # the same version before it had the column): added empty, as a migration would
            self.database.create_tables(self.models.all, safe=True)
            if version is None:
                info.create(key="version", value=str(SCHEMA_VERSION))
            elif version < SCHEMA_VERSION:
                info.update(value=str(SCHEMA_VERSION)).where(info.key == "version").execute()
        self._load_totals()

    # The intent columns that versions 1 to 3 lacked, with the database default each gets when added.
    _ADDED_COLUMNS = (("limit_price", None), ("sent_at", None), ("process_before", None), ("sends", "0"),
                      ("schema_v1", "FALSE"), ("booked", "'0'"), ("fills_complete", "FALSE"),
                      ("trigger_price", None), ("trigger_signal", None), ("trailing_pct", None),
                      ("stop_loss", None), ("take_profit", None))

    def _add_columns(self) -> None:
        """Add the intent columns that versions 1 and 2 lacked, without their indexes (create_tables adds those).

        A NOT NULL column is added with a database default in the same statement: SQLite and PostgreSQL
        (11+) then store nothing per row. (peewee's add_column adds it nullable, fills it with an UPDATE
        and, on SQLite, rebuilds the whole table and its indexes to make it NOT NULL: 35 s of the old
        migration's 89 s at 1M intents.)
        """
        Intent = self.models.Intent
        table = Intent._meta.table_name
        have = {column.name for column in self.database.get_columns(table)}
        migrator = SchemaMigrator.from_database(self.database)
        added = []
        for name, default in self._ADDED_COLUMNS:
            if name in have:
                continue
            column = getattr(Intent, name).clone()
            column.index = column.unique = False
            if default is not None:
                column.constraints = [*(column.constraints or ()), peewee.SQL(f"DEFAULT {default}")]
            added.append(migrator.alter_add_column(table, name, column, allow_not_null=True))
        # 5: a fill's fee currency (None: no account-log entry yet) and the totals' funding
        later = ((self.models.Fill, "fee_currency", None), (self.models.PnlTotal, "funding", "'0'"))
        for model, name, default in later:
            table = model._meta.table_name
            if not self.database.table_exists(table):
                continue  # created whole by create_tables
            if name in {column.name for column in self.database.get_columns(table)}:
                continue
            column = getattr(model, name).clone()
            if default is not None:
                column.constraints = [*(column.constraints or ()), peewee.SQL(f"DEFAULT {default}")]
            added.append(migrator.alter_add_column(table, name, column, allow_not_null=True))
        if added:
            migrate(*added)

    def _migrate(self, version: int) -> None:
        """Bring the data of an older version up to SCHEMA_VERSION (inside open's transaction, before create_tables).

        One streaming pass over the fills in (time, id) order builds every intent's booked amount and the
        PnL totals with exact Decimal arithmetic; the intents are then read once in id order and only
        those whose columns differ from the defaults are updated, in batches. The indexes on the new
        columns are built afterwards by create_tables, over the filled table.
        """
        Intent = self.models.Intent
        intents = self.database.execute_sql(f'SELECT count(*) FROM "{Intent._meta.table_name}"').fetchone()[0]
        fills = self.database.execute_sql(f'SELECT count(*) FROM "{self.models.Fill._meta.table_name}"'
                                          ).fetchone()[0]
        logger.info("migrating the database to schema {}: {} intents, {} fills; this runs once", SCHEMA_VERSION,
                    intents, fills)
        started = time.monotonic()
        self._add_columns()
        if version < 2:
            # Unfinished intents of version 1 were sent without processBefore: their window is unknown.
            Intent.update(schema_v1=True).where(Intent.status.not_in(list(_FINAL))).execute()
        if version < 3:
            self.database.create_tables([self.models.PnlTotal], safe=True)
            self._build_booked_and_totals()
        logger.info("migrated the database to schema {} in {:.1f} s", SCHEMA_VERSION, time.monotonic() - started)

    def _stream(self, sql: str, name: str) -> Iterator[tuple[Any, ...]]:
        """The rows of one query, without holding them all in memory (a server-side cursor on PostgreSQL).

        On PostgreSQL a SQL cursor inside open's transaction (peewee runs psycopg2 in autocommit mode with
        its own BEGIN, so psycopg2's named cursors refuse to run).
        """
        with _wrap_driver_errors:
            cursor = self.database.cursor()
            try:
                if self._sql.postgres:
                    cursor.execute(f"DECLARE {name} NO SCROLL CURSOR FOR {sql}")
                    fetch = f"FETCH FORWARD 20000 FROM {name}"
                    while True:
                        cursor.execute(fetch)
                        rows = cursor.fetchall()
                        if not rows:
                            break
                        yield from rows
                    cursor.execute(f"CLOSE {name}")
                else:
                    cursor.execute(sql)
                    while rows := cursor.fetchmany(20_000):
                        yield from rows
            finally:
                cursor.close()

    def _build_booked_and_totals(self) -> None:
        """Version 3: each intent's booked amount and fills_complete flag, and the PnL totals, from every fill once.

        The same Decimal steps in the same order as the write path (_Totals.add, booked += amount), so the
        result is exactly what storing every fill in (time, id) order would have left.
        """
        booked, totals = _replay_fills(self._stream(
            'SELECT "client_order_id", "symbol", "side", "amount", "price", "fee" FROM "fill" ORDER BY "time", "id"',
            "migration_fills"))
        final = frozenset(_FINAL)
        zero = Decimal(0)
        p = self.database.param
        # Values left by an interrupted earlier attempt (the columns just added hold the defaults already).
        self.database.execute_sql(f'UPDATE "intent" SET "booked" = {p}, "fills_complete" = {p} '
                                  f'WHERE "booked" <> {p} OR "fills_complete" <> {p}', ("0", False, "0", False))
        last_id = 0
        while True:  # a page of intents at a time, read before its updates (no update under an open SELECT)
            rows = self.database.execute_sql(
                f'SELECT "id", "client_order_id", "status", "filled" FROM "intent" WHERE "id" > {p} ORDER BY "id" '
                f"LIMIT {_MIGRATION_BATCH}", (last_id,)).fetchall()
            if not rows:
                break
            changed: list[tuple[object, ...]] = []
            for row_id, cid, status, filled in rows:
                amount = booked.pop(cid, None)
                # The write path's rule: final, and the stored fills cover the filled amount.
                complete = status in final and (zero if amount is None else amount) >= Decimal(filled or "0")
                if amount is not None or complete:
                    changed.append((row_id, "0" if amount is None else str(amount), complete))
            self._update_booked(changed)
            last_id = rows[-1][0]
        now = now_ms()
        with _wrap_driver_errors:
            self._sql.many(self.database.cursor(), self._sql.totals_upsert, [
                t.row(symbol, now) for symbol, t in totals.items()
            ])

    def _update_booked(self, rows: list[tuple[object, ...]]) -> None:
        """Set booked and fills_complete of these (id, booked, fills_complete) intent rows."""
        if not rows:
            return
        with _wrap_driver_errors:
            cursor = self.database.cursor()
            if self._sql.postgres:
                from psycopg2.extras import execute_values

                execute_values(cursor, 'UPDATE "intent" AS i SET "booked" = v.b, "fills_complete" = v.c '
                                       'FROM (VALUES %s) AS v (id, b, c) WHERE i."id" = v.id', rows,
                               page_size=5_000)
            else:
                p = self.database.param
                cursor.executemany(f'UPDATE "intent" SET "booked" = {p}, "fills_complete" = {p} WHERE "id" = {p}',
                                   [(b, c, i) for i, b, c in rows])

    def _load_totals(self) -> None:
        T = self.models.PnlTotal
        self._totals = {
            row.symbol: _Totals(Decimal(row.position), Decimal(row.entry), Decimal(row.realized), Decimal(row.fees),
                                row.fill_count, Decimal(row.funding or "0"))
            for row in T.select()
        }

    def _forget(self) -> None:
        """Drop every cached row (the database may have been written by someone else since)."""
        for cache in (self._intents, self._intent_by_cid, self._foreign_cids, self._orders, self._order_by_cid,
                      self._order_by_xid, self._no_order):
            cache.clear()

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

    def _claim(self, cursor: Any, claim: ClaimIntent, now: int) -> ClaimResult:
        """Insert one intent; a duplicate (hash or client order id) inserts nothing and undoes nothing else."""
        intent = claim.intent
        known = self._intents.get(intent.intent_hash)
        if known is None and intent.client_order_id in self._intent_by_cid:
            known = self._intents.get(self._intent_by_cid[intent.client_order_id])
        if known is not None:
            return ClaimResult(claimed=False, existing_state=known.status)
        row = intent_row(intent)
        if intent.process_before is not None:  # the first send is recorded by the claim itself
            status, sent_at, process_before, sends = (OrderState.SUBMITTED, intent.sent_at if intent.sent_at
                                                      is not None else now, intent.process_before, 1)
        else:
            status, sent_at, process_before, sends = OrderState.INITIALIZED, None, None, 0
        params = (*(row[name] for name in IntentRecord.INTENT_FIELDS), status.value, "0", None, None, now, sent_at,
                  process_before, sends, False, "0", False)
        cursor.execute(self._sql.claim, params)
        if cursor.rowcount != 1:
            cursor.execute(self._sql.claim_existing, (intent.intent_hash, intent.client_order_id))
            existing = cursor.fetchone()
            return ClaimResult(claimed=False, existing_state=OrderState(existing[0]) if existing else None)
        self._put_intent(_IntentRow(intent.intent_hash, intent.client_order_id, status, Decimal(0), None, None,
                                    sent_at, process_before, sends, False, Decimal(0), False, now))
        self._put(self._no_order, intent.client_order_id, None)
        self._foreign_cids.pop(intent.client_order_id, None)  # it has an intent now (a miss only costs a read)
        return ClaimResult(claimed=True)

    def intent(self, intent_hash: str) -> IntentRecord | None:
        """The stored intent with this hash, if any."""
        row = self.models.Intent.get_or_none(self.models.Intent.intent_hash == intent_hash)
        return self._records([row])[0] if row else None

    def open_intents(self, symbol: str | None = None) -> list[IntentRecord]:
        """Intents whose order is not final, oldest first (an indexed read of the few unfinished rows)."""
        Intent = self.models.Intent
        query = Intent.select().where(Intent.status.in_(list(_NOT_FINAL)))
        rows = list(query.order_by(Intent.created_at, Intent.id))
        if symbol is not None:  # filtered here: the status index finds the few open rows, a symbol has many
            rows = [row for row in rows if row.symbol == symbol]
        return self._records(rows)

    def unbooked_intents(self, since: int) -> list[IntentRecord]:
        """Final intents updated at or after `since` whose stored fills add up to less than their filled amount.

        An indexed read: fills_complete is False only for unfinished intents and for these.
        """
        Intent = self.models.Intent
        query = (Intent.select()
                 .where((Intent.fills_complete == False)  # noqa: E712 - a peewee expression
                        & Intent.status.in_([OrderState.FILLED.value, OrderState.CANCELED.value])
                        & (Intent.updated_at >= since))
                 .order_by(Intent.created_at, Intent.id))
        return [r for r in self._records(list(query)) if r.fills_booked < r.filled]

    def find_intents(self, client_order_ids: Iterable[str]) -> list[IntentRecord]:
        """The stored intents (final ones too) with these client order ids."""
        Intent = self.models.Intent
        ids = list(dict.fromkeys(client_order_ids))
        rows: list[Any] = []  # rows of the run-time models (see Models)
        for start in range(0, len(ids), 500):
            rows.extend(Intent.select().where(Intent.client_order_id.in_(ids[start : start + 500])))
        return self._records(rows)

    def abandon_intent(self, intent_hash: str, detail: str, *, claimed_sent_at: int | None = None) -> bool:
        """Mark an intent that was never handed to the exchange NOT_PLACED; False if it went further.

        Never sent: INITIALIZED with no send; or, given `claimed_sent_at`, SUBMITTED by its claim alone (the one send
        record its claim wrote: that sent_at, no exchange order id) — the give-up took the Handover before the
        persistence could hand it to the gateway. A row claimed earlier (another sent_at) or sent again is left."""
        Intent = self.models.Intent
        never_sent = (Intent.status == OrderState.INITIALIZED.value) & Intent.sent_at.is_null()
        if claimed_sent_at is not None:
            never_sent |= ((Intent.status == OrderState.SUBMITTED.value) & (Intent.sent_at == claimed_sent_at)
                           & (Intent.sends <= 1) & Intent.exchange_order_id.is_null())
        with _writing(self.database, f"abandoned intent {intent_hash[:12]}"):
            changed = (
                Intent.update(status=OrderState.REJECTED.value, reason=Reason.NOT_PLACED.value, updated_at=now_ms(),
                              fills_complete=True)
                .where((Intent.intent_hash == intent_hash) & never_sent)
                .execute()
            )
            if changed:
                self._insert_events([Event(kind=EventKind.ORDER_UPDATE, reason=Reason.NOT_PLACED,
                                           intent_hash=intent_hash, detail=f"REJECTED never sent: {detail}")])
        if changed:
            self._drop_intent(intent_hash)
        return bool(changed)

    def recent_hashes(self, symbol: str, since: int, limit: int = RECENT_HASHES_LIMIT) -> frozenset[str]:
        """The newest `limit` hashes of intents for `symbol` created at or after `since` (epoch ms).

        A cache for the symbol actor: the unique hash at claim is the authority, so a bounded set is enough.
        """
        Intent = self.models.Intent
        query = (Intent.select(Intent.intent_hash)
                 .where((Intent.symbol == symbol) & (Intent.created_at >= since))
                 .order_by(Intent.created_at.desc())
                 .limit(limit))
        return frozenset(row[0] for row in query.tuples())

    def purge_intents(self, before: int) -> int:
        """Delete final intents created before `before`; unfinished ones are kept whatever their age."""
        Intent = self.models.Intent
        removed = (
            Intent.delete()
            .where((Intent.created_at < before) & (Intent.status.in_(list(_FINAL))))
            .execute()
        )
        if removed:
            for h in [h for h, row in self._intents.items() if row.status.is_final]:
                self._drop_intent(h)
        return removed

    # --- batched writes --------------------------------------------------------------------

    def apply_batch(self, items: Sequence[Event | OrderUpdate | ClaimIntent | RecordSends | AccountLogEntries]
                    ) -> list[ClaimResult | None]:
        """Write claims, order updates, fills and events in one transaction (one commit, one fsync), in order.

        Returns, for each item, its ClaimResult (claims) or None. Raises StorageError if the
        transaction fails: then nothing of the batch was stored and no claim succeeded.
        Claims and fills are inserted as they come (each answer needs its row count); the intent and
        order rows they change are decided in memory and written once each at the end.
        """
        results: list[ClaimResult | None] = []
        if not items:
            return results
        batch = _Batch()
        self._undo = []
        try:
            with _writing(self.database, f"{len(items)} records"), _wrap_driver_errors:
                cursor = self.database.cursor()
                now = now_ms()
                for item in items:
                    if isinstance(item, ClaimIntent):
                        result = self._claim(cursor, item, now)
                        results.append(result)
                        if result.claimed and item.event is not None:
                            batch.events.append(item.event)
                        continue
                    results.append(None)
                    if isinstance(item, RecordSends):
                        for update in item.updates:
                            self._apply_order_update(cursor, update, now, batch)
                            batch.events.append(_order_event(update))
                    elif isinstance(item, OrderUpdate):
                        self._apply_order_update(cursor, item, now, batch)
                        batch.events.append(_order_event(item))
                    elif isinstance(item, AccountLogEntries):
                        self._apply_account_log(cursor, item, batch)
                    else:
                        batch.events.append(item)
                self._write_batch(cursor, batch, now)
        except BaseException:
            self._rollback_cache()
            raise
        finally:
            self._undo = None
        self._trim_cache()
        return results

    def _write_batch(self, cursor: Any, batch: _Batch, now: int) -> None:
        sql = self._sql
        sql.many(cursor, sql.intent_update, [self._intents[h].params() for h in batch.intents])
        sql.many(cursor, sql.order_update, [self._orders[oid].params() for oid in batch.orders])
        sql.many(cursor, sql.totals_upsert, [self._totals[symbol].row(symbol, now) for symbol in batch.totals])
        sql.many(cursor, sql.event_insert, [_event_params(e) for e in batch.events])

    def _apply_order_update(self, cursor: Any, update: OrderUpdate, now: int, batch: _Batch) -> None:
        intent = self._intent_for_hash(cursor, update.intent_hash) if update.intent_hash is not None else None
        if intent is not None and is_advance(intent.status, update.state, filled_before=intent.filled,
                                             filled_after=update.filled):
            changes: dict[str, Any] = {
                "status": update.state, "reason": update.reason, "filled": update.filled, "updated_at": now,
                "exchange_order_id": update.exchange_order_id or intent.exchange_order_id,
                "fills_complete": update.state.is_final and intent.booked >= update.filled,
            }
            if update.sent_at is not None:
                changes.update(sent_at=update.sent_at, process_before=update.process_before, schema_v1=False)
            if update.sends is not None:
                changes["sends"] = update.sends
            intent = replace(intent, **changes)  # one copy: the writer's CPU is the pipeline's budget
            self._put_intent(intent)
            batch.intents[intent.intent_hash] = None
        self._upsert_order(cursor, update, now, batch)
        for f in update.fills:
            cid = f.client_order_id or update.client_order_id
            fee, currency = self._logged_fee(cursor, f.fill_id, f.fee)
            cursor.execute(self._sql.fill_insert, (
                f.fill_id, f.symbol, f.side.value, str(f.amount), str(f.price), str(fee),
                f.exchange_order_id or update.exchange_order_id, cid, f.time, currency))
            if cursor.rowcount != 1:
                continue  # stored before: counted then, never twice
            totals = self._totals.get(f.symbol, _Totals()).add(f.side.value, f.amount, f.price, fee)
            self._put(self._totals, f.symbol, totals)
            batch.totals[f.symbol] = None
            if cid is None:
                continue
            booked = (self._intents.get(update.intent_hash) if update.intent_hash is not None
                      and cid == update.client_order_id else None) or self._intent_for_cid(cursor, cid)
            if booked is not None:
                total = booked.booked + f.amount
                self._put_intent(replace(booked, booked=total,
                                         fills_complete=booked.status.is_final and total >= booked.filled))
                batch.intents[booked.intent_hash] = None

    def _logged_fee(self, cursor: Any, fill_id: str, reported: Decimal) -> tuple[Decimal, str | None]:
        """A fill's fee from the account-log entries stored for its execution (they may come before the fill); none
        there: the reported fee, its currency unknown (not proven: the entry fills it in when it comes)."""
        cursor.execute(self._sql.fees_of_execution, (fill_id,))
        rows = cursor.fetchall()
        if not rows:
            return reported, None
        return sum((Decimal(fee) for fee, _ in rows), Decimal(0)), str(rows[-1][1])

    def _apply_account_log(self, cursor: Any, entries: AccountLogEntries, batch: _Batch) -> None:
        """Store new fee and funding entries (each entry id once) and count them in the symbol's totals: a fee on
        its fill (stored already; a fill stored later takes it from the trade_fee table), funding on its symbol."""
        sql = self._sql
        for fee in entries.fees:
            cursor.execute(sql.trade_fee_insert, (fee.entry_id, fee.execution, fee.symbol, str(fee.fee), fee.currency,
                                                  fee.time))
            if cursor.rowcount != 1:
                continue  # this entry was stored before: counted then
            cursor.execute(sql.fill_fee, (fee.execution,))
            found = cursor.fetchone()
            if found is None:
                continue  # the fill is not stored yet: it takes the fee when it is
            symbol, old_fee, old_currency = found
            total = (Decimal(old_fee or "0") if old_currency is not None else Decimal(0)) + fee.fee
            reported = Decimal(old_fee or "0") if old_currency is None else Decimal(0)  # an unproven fee, replaced
            cursor.execute(sql.fill_fee_update, (str(total), fee.currency, fee.execution))
            self._put(self._totals, symbol, self._totals.get(symbol, _Totals()).charged(fee.fee - reported))
            batch.totals[symbol] = None
        for payment in entries.funding:
            cursor.execute(sql.funding_insert, (payment.entry_id, payment.symbol, str(payment.amount),
                                                payment.currency, None if payment.rate is None else str(payment.rate),
                                                payment.time))
            if cursor.rowcount != 1:
                continue
            self._put(self._totals, payment.symbol, self._totals.get(payment.symbol, _Totals()).funded(payment.amount))
            batch.totals[payment.symbol] = None

    def account_log_cursor(self) -> int | None:
        """The newest account-log entry id stored (fees and funding), None when there is none."""
        newest = [self.database.execute_sql(f'SELECT max("entry_id") FROM "{table}"').fetchone()[0]
                  for table in ("trade_fee", "funding")]
        found = [int(value) for value in newest if value is not None]
        return max(found) if found else None

    def _upsert_order(self, cursor: Any, update: OrderUpdate, now: int, batch: _Batch) -> None:
        row = self._order_for(cursor, update)
        if row is None:
            amount = str(update.amount) if update.amount is not None else None
            average = str(update.average_price) if update.average_price is not None else None
            cursor.execute(self._sql.order_insert, (
                update.client_order_id, update.exchange_order_id, update.intent_hash,
                "OURS" if update.intent_hash else "EXTERNAL", update.symbol, update.side.value, update.reduce_only,
                amount, str(update.filled), average, update.state.value, update.reason, update.detail, now, now))
            if cursor.rowcount == 1:
                oid = cursor.fetchone()[0] if self._sql.postgres else cursor.lastrowid
                self._put_order(_OrderRow(oid, update.client_order_id, update.exchange_order_id, update.state,
                                          update.filled, update.reason, update.detail, amount, average, now))
                return
            # Another row holds this exchange order id (an order first recorded without our client order id).
            cursor.execute(self._sql.order_by_xid, (update.exchange_order_id,))
            found = cursor.fetchone()
            if found is None:
                raise StorageError(f"order {update.exchange_order_id} was neither inserted nor found")
            row = self._found_by_xid(_order_from(found), update.client_order_id)
        if not is_advance(row.state, update.state, filled_before=row.filled, filled_after=update.filled):
            return
        row = replace(
            row, state=update.state, reason=update.reason, detail=update.detail, filled=update.filled, updated_at=now,
            average_price=str(update.average_price) if update.average_price is not None else row.average_price,
            amount=str(update.amount) if update.amount is not None else row.amount,
            exchange_order_id=update.exchange_order_id or row.exchange_order_id,
        )
        self._put_order(row)
        batch.orders[row.id] = None

    # --- the writer's cache ----------------------------------------------------------------

    def _put(self, cache: dict[Any, Any], key: Any, value: Any) -> None:
        """Set a cache entry, remembering the old one while a batch may still roll back."""
        if self._undo is not None:
            self._undo.append((cache, key, cache.get(key, _MISSING)))
        cache[key] = value

    def _pop(self, cache: dict[Any, Any], key: Any) -> None:
        if key in cache:
            if self._undo is not None:
                self._undo.append((cache, key, cache[key]))
            del cache[key]

    def _rollback_cache(self) -> None:
        """The transaction failed: put back every entry the batch changed, newest change first."""
        for cache, key, old in reversed(self._undo or []):
            if old is _MISSING:
                cache.pop(key, None)
            else:
                cache[key] = old

    def _put_intent(self, row: _IntentRow) -> None:
        self._put(self._intents, row.intent_hash, row)
        if self._intent_by_cid.get(row.client_order_id) != row.intent_hash:
            self._put(self._intent_by_cid, row.client_order_id, row.intent_hash)

    def _drop_intent(self, intent_hash: str) -> None:
        row = self._intents.pop(intent_hash, None)
        if row is not None and self._intent_by_cid.get(row.client_order_id) == intent_hash:
            del self._intent_by_cid[row.client_order_id]

    def _put_order(self, row: _OrderRow) -> None:
        self._put(self._orders, row.id, row)
        if row.client_order_id is not None:
            self._pop(self._no_order, row.client_order_id)
            if row.client_order_id not in self._order_by_cid:
                self._put(self._order_by_cid, row.client_order_id, row.id)
        if row.exchange_order_id is not None and self._order_by_xid.get(row.exchange_order_id) != row.id:
            self._put(self._order_by_xid, row.exchange_order_id, row.id)

    def _intent_for_hash(self, cursor: Any, intent_hash: str) -> _IntentRow | None:
        row = self._intents.get(intent_hash)
        if row is None:
            cursor.execute(self._sql.intent_by_hash, (intent_hash,))
            found = cursor.fetchone()
            if found is not None:
                row = _intent_from(found)
                self._put_intent(row)
        return row

    def _intent_for_cid(self, cursor: Any, client_order_id: str) -> _IntentRow | None:
        known = self._intent_by_cid.get(client_order_id)
        if known is not None:
            return self._intents[known]
        if client_order_id in self._foreign_cids:
            return None
        cursor.execute(self._sql.intent_by_cid, (client_order_id,))
        found = cursor.fetchone()
        if found is None:
            self._foreign_cids[client_order_id] = None  # true whatever the batch does: it holds no such claim
            return None
        row = _intent_from(found)
        self._put_intent(row)
        return row

    def _order_for(self, cursor: Any, update: OrderUpdate) -> _OrderRow | None:
        """The order row an update is about: by client order id first, then by exchange order id."""
        cid, xid = update.client_order_id, update.exchange_order_id
        if cid:
            oid = self._order_by_cid.get(cid)
            if oid is not None:
                return self._orders[oid]
            if cid in self._no_order:
                return None  # claimed here, no order row yet: insert (an exchange id taken elsewhere is caught)
            cursor.execute(self._sql.order_by_cid, (cid,))
            found = cursor.fetchone()
            if found is not None:
                row = _order_from(found)
                self._put_order(row)
                return row
        if xid:
            oid = self._order_by_xid.get(xid)
            if oid is not None:
                return self._found_by_xid(self._orders[oid], cid)
            cursor.execute(self._sql.order_by_xid, (xid,))
            found = cursor.fetchone()
            if found is not None:
                return self._found_by_xid(_order_from(found), cid)
        return None

    def _found_by_xid(self, row: _OrderRow, client_order_id: str | None) -> _OrderRow:
        """Cache a row found by exchange order id; the update's client order id finds it from now on."""
        self._put_order(row)
        if client_order_id and row.client_order_id != client_order_id:
            self._pop(self._no_order, client_order_id)
            self._put(self._order_by_cid, client_order_id, row.id)
        return row

    def _trim_cache(self) -> None:
        """Keep the cache bounded: past the limit, forget the finished rows (a miss reads them back)."""
        for cache in (self._no_order, self._foreign_cids):
            if len(cache) > self._cache_limit:
                cache.clear()
        if len(self._intents) > self._trim_at[0]:
            for h in [h for h, row in self._intents.items() if row.status.is_final]:
                self._drop_intent(h)
            self._trim_at = (self._cache_limit + len(self._intents), self._trim_at[1])  # the open ones stay
        if len(self._orders) > self._trim_at[1]:
            for oid in [oid for oid, row in self._orders.items() if row.state.is_final]:
                del self._orders[oid]
            for mapping in (self._order_by_cid, self._order_by_xid):
                for key in [key for key, oid in mapping.items() if oid not in self._orders]:
                    del mapping[key]
            self._trim_at = (self._trim_at[0], self._cache_limit + len(self._orders))

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
            last_entry=self.last_filled_entry(symbol),
        )

    def last_filled_entry(self, symbol: str) -> IntentRecord | None:
        """The newest entry intent of a symbol that filled at least in part (the position protective orders guard)."""
        Intent = self.models.Intent
        query = (Intent.select().where((Intent.symbol == symbol) & (Intent.reduce_only == False))  # noqa: E712
                 .order_by(Intent.created_at.desc(), Intent.id.desc()).limit(500))
        for row in query.iterator():  # newest first; the filled amount is text, compared as a number
            if Decimal(row.filled or "0") > 0:
                return self._intent_record(row)
        return None

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
        """Realized PnL per symbol from this system's fills (average cost, fees subtracted): the running totals."""
        T = self.models.PnlTotal
        return {symbol: Decimal(realized) for symbol, realized in T.select(T.symbol, T.realized).tuples()}

    def pnl_totals(self) -> dict[str, dict[str, object]]:
        """The running totals per symbol: position, average entry, realized (fees subtracted, funding not), fees,
        fill count; and gross (before fees and funding), funding (received +), net = gross - fees + funding."""
        T = self.models.PnlTotal
        result: dict[str, dict[str, object]] = {}
        for row in T.select():
            realized, fees, funding = Decimal(row.realized), Decimal(row.fees), Decimal(row.funding or "0")
            result[row.symbol] = {"position": Decimal(row.position), "entry": Decimal(row.entry),
                                  "realized": realized, "fees": fees, "fill_count": row.fill_count,
                                  "updated_at": row.updated_at, "gross": realized + fees, "funding": funding,
                                  "net": realized + funding}
        return result

    def net_pnl(self) -> Decimal:
        """Realized PnL of every symbol, net of fees and funding."""
        return sum((Decimal(str(t["net"])) for t in self.pnl_totals().values()), Decimal(0))

    # --- retention -------------------------------------------------------------------------

    def archive(self, before_ms: int, kinds: Iterable[str], folder: str | Path,
                batch_size: int = ARCHIVE_BATCH, max_rows: int | None = None) -> dict[str, int]:
        """Move final orders, fills and events older than `before_ms` to gzip JSON-lines files, then delete them.

        `kinds` names the tables ("orders", "fills", "events"). Each batch of rows is appended to
        `folder/<table>-<before_ms>.jsonl.gz` as one gzip member and fsynced before the same rows are
        deleted, so a crash in between leaves them in both places, never in neither. Nothing that is
        not final is touched: orders not in a final state, and no order, fill or event of an intent
        whose fills are not complete (unfinished, or final with fills still to book). Returns the rows moved
        per table; `max_rows` stops each table after about that many (call again to go on).
        """
        unknown = set(kinds) - set(ARCHIVE_TABLES)
        if unknown:
            raise ValueError(f"unknown archive tables {sorted(unknown)}; choose from {list(ARCHIVE_TABLES)}")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        p = self.database.param
        final_states = ", ".join([p] * len(_FINAL))
        # An intent whose fills_complete is False is unfinished, or final with fills still to book: keep all of it.
        keep = f'(SELECT "{{}}" FROM "intent" WHERE "fills_complete" = {p})'
        where = {
            "orders": ((f'"updated_at" < {p} AND "state" IN ({final_states}) AND '
                       f'("intent_hash" IS NULL OR "intent_hash" NOT IN {keep.format("intent_hash")})'),
                       (before_ms, *_FINAL, False)),
            "fills": ((f'"time" < {p} AND ("client_order_id" IS NULL OR "client_order_id" NOT IN '
                      f'{keep.format("client_order_id")})'), (before_ms, False)),
            "events": ((f'"time" < {p} AND ("intent_hash" IS NULL OR "intent_hash" NOT IN '
                       f'{keep.format("intent_hash")})'), (before_ms, False)),
        }
        tables = {"orders": self.models.Order, "fills": self.models.Fill, "events": self.models.Event}
        moved: dict[str, int] = {}
        for kind in dict.fromkeys(kinds):
            model = tables[kind]
            table = model._meta.table_name
            columns = [f.column_name for f in model._meta.sorted_fields]
            condition, params = where[kind]
            path = folder / f"{kind}-{before_ms}.jsonl.gz"
            moved[kind] = 0
            last_id = 0
            while max_rows is None or moved[kind] < max_rows:
                rows = self.database.execute_sql(
                    f'SELECT {_columns(columns)} FROM "{table}" WHERE "id" > {p} AND {condition} '
                    f'ORDER BY "id" LIMIT {int(batch_size)}', (last_id, *params)).fetchall()
                if not rows:
                    break
                records = [dict(zip(columns, row, strict=True)) for row in rows]
                _append_fsynced(path, "".join(json.dumps(r, default=str) + "\n" for r in records).encode())
                ids = [r["id"] for r in records]
                with _writing(self.database, f"archived {kind}"):
                    self.database.execute_sql(
                        f'DELETE FROM "{table}" WHERE "id" IN ({", ".join([p] * len(ids))}) AND {condition}',
                        (*ids, *params))
                if kind == "orders":
                    self._forget_orders()  # only final rows went, but the cache is cheap to rebuild
                moved[kind] += len(ids)
                last_id = ids[-1]
        return moved

    def _forget_orders(self) -> None:
        self._orders.clear()
        self._order_by_cid.clear()
        self._order_by_xid.clear()

    def _insert_events(self, events: Iterable[Event]) -> None:
        with _wrap_driver_errors:
            self._sql.many(self.database.cursor(), self._sql.event_insert, [_event_params(e) for e in events])

    # --- helpers ---------------------------------------------------------------------------

    def _records(self, rows: list[Any]) -> list[IntentRecord]:
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
    def _intent_record(row: Any, fill_ids: frozenset[str] = frozenset(),
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
            trigger_price=Decimal(row.trigger_price) if row.trigger_price else None,
            trigger_signal=row.trigger_signal or None,
            trailing_pct=Decimal(row.trailing_pct) if row.trailing_pct else None,
            stop_loss=Decimal(row.stop_loss) if row.stop_loss else None,
            take_profit=Decimal(row.take_profit) if row.take_profit else None,
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
    def _control_record(row: Any) -> ControlRecord:
        return ControlRecord(
            symbol=row.symbol,
            paused=bool(row.paused),
            halted=bool(row.halted),
            reason=row.reason or "",
            source=row.source or "",
            updated_at=row.updated_at,
        )
