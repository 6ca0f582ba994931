"""The persistence actor: the only writer of the database.

Asks that need durability (claim an intent, set control state) are written at once, in their own
transaction, before the answer goes back. Tells (events, order updates) are gathered: every write
that arrives before the actor gets to them is committed in one transaction.

A write that fails is retried every `retry_interval_s`; a database that refuses every write for
`give_up_after_s` (locked, read-only, corrupt, gone) stops the actor, and with it the process: a
process that cannot claim intents cannot trade, and must not run on as if it could.
"""

from __future__ import annotations

import time
from typing import Any

import peewee
import pykka
from loguru import logger

from actors.timers import ActorTimers
from messages import (
    AbandonIntent,
    AccountLogEntries,
    ArchiveHistory,
    ClaimIntent,
    ClaimResult,
    Event,
    FindIntents,
    Flush,
    GetAccountLogCursor,
    LoadOpenIntents,
    LoadSymbol,
    OrderUpdate,
    Ping,
    PlaceOrders,
    PurgeIntents,
    QueryEvents,
    QueryMoney,
    QueryPnl,
    RecordSends,
    SetControl,
    Tick,
    now_ms,
)
from messages.control import ReportQuery
from persistence import StorageError, Store, describe_database, queries

UNBOOKED_WINDOW_MS = 7 * 24 * 3_600_000  # filled intents whose fills are not stored are looked for this far back
MAX_PENDING_WRITES = 100_000  # beyond this, the oldest unwritten events are dropped (and said so)
DATABASE_GIVE_UP_S = 20.0  # a database that refuses every write this long stops the process
WRITE_RETRY_S = 1.0
ARCHIVE_STEP_ROWS = 20_000  # rows per table per step: claims that arrive meanwhile wait at most one step


def _is_told(message: Any) -> bool:
    """True for the messages this actor only ever gets by `tell` (a claim with a reply future is told)."""
    if isinstance(message, (ClaimIntent, RecordSends)):
        return message.reply is not None
    return isinstance(message, (Event, OrderUpdate, AccountLogEntries, AbandonIntent, ArchiveHistory, Flush, Tick))


class DatabaseUnusable(RuntimeError):
    """The database refused every write for too long: the persistence actor (and the process) stops."""


class WriteFailures:
    """When writes started failing; whether it is time to give up. Plain logic, clock injectable."""

    def __init__(self, give_up_after_s: float, clock: Any = time.monotonic) -> None:
        self.give_up_after_s = give_up_after_s
        self.clock = clock
        self.since: float | None = None

    def failed(self) -> float:
        """Record a failed write; return for how long writes have been failing."""
        now = self.clock()
        if self.since is None:
            self.since = now
        return now - self.since

    def succeeded(self) -> bool:
        """Record a successful write; True if it ends a run of failures."""
        ended = self.since is not None
        self.since = None
        return ended

    def exhausted(self) -> bool:
        """True once writes have been failing for `give_up_after_s`."""
        return self.since is not None and self.clock() - self.since >= self.give_up_after_s


class PersistenceActor(pykka.ThreadingActor):
    """Owns the database connection; answers queries and writes in batches."""

    def __init__(self, database: peewee.Database, *, give_up_after_s: float = DATABASE_GIVE_UP_S,
                 retry_interval_s: float = WRITE_RETRY_S) -> None:
        super().__init__()
        self.database = database
        self.store = Store(database)
        self._pending: list[Event | OrderUpdate | ClaimIntent | RecordSends | AccountLogEntries] = []
        self._flush_scheduled = False
        self.failures = WriteFailures(give_up_after_s)
        self.retry_interval_s = retry_interval_s
        self.timers: ActorTimers | None = None
        self._retry_scheduled = False

    def on_start(self) -> None:
        self.store.open()
        self.timers = ActorTimers("persistence")
        logger.info("persistence: {} (schema version {})", describe_database(self.database),
                    self.store.schema_version())

    def on_stop(self) -> None:
        if self.timers:
            self.timers.stop()
        self._flush()
        if self._pending:
            logger.error("persistence: {} writes could not be stored at shutdown", len(self._pending))
        self.store.close()

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        """Report the death to the wiring, then close the database: a core actor never dies silently.

        Reported first: closing may take a checkpoint's time, while an actor that tells this dead one fails at once
        and would otherwise be reported as the first death."""
        if self.timers:
            self.timers.stop()
        if self._pending:
            logger.error("persistence: {} writes were not stored when the actor died", len(self._pending))
        from actors.system import report_core_failure

        report_core_failure(self, exception_value)
        try:
            self.store.close()
        except Exception:  # noqa: BLE001 - the database's trouble must not hide the death
            logger.exception("persistence: closing the database after the failure failed")

    def on_receive(self, message: Any) -> Any:
        if _is_told(message) and self.failures.exhausted():
            self._give_up(message)  # only a told message may stop the actor (an ask's error goes to its caller)
        match message:
            case ClaimIntent(reply=reply) | RecordSends(reply=reply) if reply is not None:
                self._pending.append(message)
                if not self._flush_scheduled:
                    self._flush_scheduled = True
                    self.actor_ref.tell(Flush())
                return None
            case Event() | OrderUpdate() | AccountLogEntries():  # fees and funding in order after the fills
                self._pending.append(message)
                if not self._flush_scheduled:
                    self._flush_scheduled = True
                    self.actor_ref.tell(Flush())
                return None
            case AbandonIntent():
                self._flush()
                try:
                    self.store.abandon_intent(message.intent_hash, message.detail,
                                              claimed_sent_at=message.claimed_sent_at)
                except (StorageError, peewee.PeeweeException) as exc:
                    logger.error("persistence: could not mark intent {} NOT_PLACED: {}; the next start does",
                                 message.intent_hash[:12], exc)
                return None
            case ArchiveHistory():
                self._flush()
                self._archive(message)
                return None
            case Ping():
                return True
            case Flush():
                self._flush_scheduled = False
                self._flush()
                if self.failures.exhausted():
                    self._give_up(message)
                return None
            case Tick(name="retry-writes"):
                self._retry_scheduled = False
                if not self._flush_scheduled:
                    self._flush_scheduled = True
                    self.actor_ref.tell(Flush())
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
            case LoadOpenIntents(with_unbooked=True):
                return self.store.open_intents() + self.store.unbooked_intents(now_ms() - UNBOOKED_WINDOW_MS)
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
            case GetAccountLogCursor():
                return self.store.account_log_cursor()
            case QueryMoney():
                return self.store.pnl_totals()
            case QueryEvents():
                return self.store.events(message.symbol, message.kind, message.reason, message.limit)
            case ReportQuery():  # the operator's read-only reports (trades, orders, pnl, why)
                return queries.answer(self.store, message)
            case _:
                raise TypeError(f"persistence: unexpected message {type(message).__name__}")

    def _archive(self, message: ArchiveHistory) -> None:
        """One step of an archive run; if a table had more, the rest follows as a new message (claims go between)."""
        try:
            moved = self.store.archive(message.before, message.tables, message.folder, max_rows=ARCHIVE_STEP_ROWS)
        except (StorageError, peewee.PeeweeException, OSError, ValueError) as exc:
            logger.error("persistence: archiving {} before {} to {} failed: {}: {}; nothing unwritten was deleted",
                         ", ".join(message.tables), message.before, message.folder, type(exc).__name__, exc)
            return
        if any(moved.values()):
            logger.info("persistence: archived to {} and deleted (older than {}): {}", message.folder, message.before,
                        ", ".join(f"{count} {table}" for table, count in moved.items()))
        rest = tuple(table for table, count in moved.items() if count >= ARCHIVE_STEP_ROWS)
        if rest:
            self.actor_ref.tell(message.model_copy(update={"tables": rest}))

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
            failing = self.failures.failed()
            logger.error(
                "persistence: writing {} records failed ({}); claims refused (no order is sent), other records "
                "kept in memory to retry. Check the disk and the database at {} (failing for {:.0f}s; the "
                "process stops after {:.0f}s)",
                len(batch),
                exc,
                describe_database(self.database),
                failing,
                self.failures.give_up_after_s,
            )
            self._schedule_retry()
            for item in batch:  # a claim or send record that could not be stored is refused now, never retried
                if isinstance(item, (ClaimIntent, RecordSends)) and item.reply is not None:
                    item.reply.set_exception(exc_info=(type(exc), exc, exc.__traceback__))
            kept: list[Event | OrderUpdate | ClaimIntent | RecordSends | AccountLogEntries] = [
                item for item in batch if not isinstance(item, (ClaimIntent, RecordSends))]
            if len(kept) > MAX_PENDING_WRITES:
                dropped = len(kept) - MAX_PENDING_WRITES
                kept = kept[dropped:]
                logger.error("persistence: dropped the {} oldest unwritten records", dropped)
            self._pending = kept
            if not kept:  # nothing left to retry: no evidence of how long the database stays unusable
                self.failures.succeeded()
            return
        self._pending = []
        if self.failures.succeeded():
            logger.info("persistence: the database takes writes again")
        handed = self._hand_over(batch, results)
        for item, result in zip(batch, results, strict=True):
            if isinstance(item, ClaimIntent) and item.reply is not None:
                item.reply.set(ClaimResult(claimed=True, handed=True) if id(item) in handed else result)
            elif isinstance(item, RecordSends) and item.reply is not None:
                item.reply.set(True)

    @staticmethod
    def _hand_over(batch: list[Any], results: list[Any]) -> set[int]:
        """Tell each gateway the intents this commit claimed for it, in one PlaceOrders; unless a symbol gave up.

        Only after the commit: durable before it can be sent. A claim whose symbol stopped waiting (its Handover
        taken) is not sent; the symbol's give-up abandons it. Returns the ids of the claims handed over.
        """
        places: dict[int, tuple[Any, list[ClaimIntent]]] = {}
        for item, result in zip(batch, results, strict=True):
            if (isinstance(item, ClaimIntent) and item.place is not None and isinstance(result, ClaimResult)
                    and result.claimed and (item.handover is None or item.handover.take("persistence"))):
                places.setdefault(id(item.place), (item.place, []))[1].append(item)
        handed: set[int] = set()
        for place, claims in places.values():
            try:
                place.tell(PlaceOrders(intents=tuple(c.intent for c in claims)))
            except pykka.ActorDeadError:
                logger.error("persistence: the gateway is gone; {} claimed orders not handed over (the next start "
                             "resolves them)", len(claims))
                continue
            handed.update(id(c) for c in claims)
        return handed

    def _give_up(self, message: Any) -> None:
        """Refuse what waits for an answer, then raise: the actor stops and reports its death."""
        error = DatabaseUnusable(
            f"the database at {describe_database(self.database)} refused every write for "
            f"{self.failures.give_up_after_s:.0f}s; {len(self._pending)} records not stored"
        )
        for item in [*self._pending, message]:
            reply = getattr(item, "reply", None)
            if isinstance(item, (ClaimIntent, RecordSends)) and reply is not None:
                reply.set_exception(exc_info=(DatabaseUnusable, error, None))
        raise error

    def _schedule_retry(self) -> None:
        if self.timers is not None and not self._retry_scheduled:
            self._retry_scheduled = True
            self.timers.after(self.retry_interval_s, self.actor_ref, Tick(name="retry-writes"))
