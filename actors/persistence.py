"""The persistence actor: the only writer of the database.

Asks that need durability (claim an intent, set control state) are written at once, in their own
transaction, before the answer goes back. Tells (events, order updates) are gathered: every write
that arrives before the actor gets to them is committed in one transaction.
"""

from __future__ import annotations

from typing import Any

import peewee
import pykka
from loguru import logger

from messages import (
    AbandonIntent,
    ClaimIntent,
    ClaimResult,
    Event,
    FindIntents,
    Flush,
    LoadOpenIntents,
    LoadSymbol,
    OrderUpdate,
    Ping,
    PurgeIntents,
    QueryEvents,
    QueryPnl,
    RecordSends,
    SetControl,
)
from persistence import StorageError, Store, describe_database

MAX_PENDING_WRITES = 100_000  # beyond this, the oldest unwritten events are dropped (and said so)


class PersistenceActor(pykka.ThreadingActor):
    """Owns the database connection; answers queries and writes in batches."""

    def __init__(self, database: peewee.Database) -> None:
        super().__init__()
        self.database = database
        self.store = Store(database)
        self._pending: list[Event | OrderUpdate | ClaimIntent | RecordSends] = []
        self._flush_scheduled = False

    def on_start(self) -> None:
        self.store.open()
        logger.info("persistence: {} (schema version {})", describe_database(self.database), self.store.schema_version())

    def on_stop(self) -> None:
        self._flush()
        if self._pending:
            logger.error("persistence: {} writes could not be stored at shutdown", len(self._pending))
        self.store.close()

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        logger.opt(exception=(exception_type, exception_value, traceback)).critical("persistence actor died")
        self.store.close()

    def on_receive(self, message: Any) -> Any:
        match message:
            case ClaimIntent(reply=reply) | RecordSends(reply=reply) if reply is not None:
                self._pending.append(message)
                if not self._flush_scheduled:
                    self._flush_scheduled = True
                    self.actor_ref.tell(Flush())
                return None
            case Event() | OrderUpdate():
                self._pending.append(message)
                if not self._flush_scheduled:
                    self._flush_scheduled = True
                    self.actor_ref.tell(Flush())
                return None
            case AbandonIntent():
                self._flush()
                try:
                    self.store.abandon_intent(message.intent_hash, message.detail)
                except (StorageError, peewee.PeeweeException) as exc:
                    logger.error("persistence: could not mark intent {} NOT_PLACED: {}; the next start does",
                                 message.intent_hash[:12], exc)
                return None
            case Ping():
                return True
            case Flush():
                self._flush_scheduled = False
                self._flush()
                return None
        # Everything below is an ask: write what is pending first, so answers see every earlier tell.
        self._flush()
        match message:
            case ClaimIntent():
                return self._claim(message)
            case SetControl():
                return self.store.set_control(
                    message.symbol,
                    paused=message.paused,
                    halted=message.halted,
                    reason=message.reason,
                    source=message.source,
                )
            case LoadSymbol():
                return self.store.load_symbol(message.symbol, message.since)
            case LoadOpenIntents():
                return self.store.open_intents()
            case FindIntents():
                return self.store.find_intents(message.client_order_ids)
            case PurgeIntents():
                removed = self.store.purge_intents(message.before)
                if removed:
                    logger.info("persistence: purged {} finished intents past retention", removed)
                return removed
            case QueryPnl():
                return self.store.realized_pnl()
            case QueryEvents():
                return self.store.events(message.symbol, message.kind, message.reason, message.limit)
            case _:
                raise TypeError(f"persistence: unexpected message {type(message).__name__}")

    def _claim(self, message: ClaimIntent) -> ClaimResult:
        try:
            return self.store.claim_intent(message.intent, message.event)
        except (StorageError, peewee.PeeweeException) as exc:
            logger.error(
                "persistence: cannot claim intent {} ({}): {}; the order is not sent",
                message.intent.client_order_id,
                message.intent.symbol,
                exc,
            )
            raise

    def _flush(self) -> None:
        if not self._pending:
            return
        batch = self._pending
        try:
            results = self.store.apply_batch(batch)
        except (StorageError, peewee.PeeweeException) as exc:
            logger.error(
                "persistence: writing {} records failed ({}); claims refused (no order is sent), other records "
                "kept in memory to retry. Check the disk and the database at {}",
                len(batch),
                exc,
                describe_database(self.database),
            )
            for item in batch:  # a claim or send record that could not be stored is refused now, never retried
                if isinstance(item, (ClaimIntent, RecordSends)) and item.reply is not None:
                    item.reply.set_exception(exc_info=(type(exc), exc, exc.__traceback__))
            kept = [item for item in batch if not isinstance(item, (ClaimIntent, RecordSends))]
            if len(kept) > MAX_PENDING_WRITES:
                dropped = len(kept) - MAX_PENDING_WRITES
                kept = kept[dropped:]
                logger.error("persistence: dropped the {} oldest unwritten records", dropped)
            self._pending = kept
            return
        self._pending = []
        for item, result in zip(batch, results, strict=True):
            if isinstance(item, ClaimIntent) and item.reply is not None:
                item.reply.set(result)
            elif isinstance(item, RecordSends) and item.reply is not None:
                item.reply.set(True)
