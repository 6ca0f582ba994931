"""The gateway's reading of the money Kraken books beside the fills: trade fees and funding from the account log,
and the account's available margin. Plain logic (no threads); the gateway calls it after its looks.

Kraken's fills carry no fee: an execution's fee is an account-log entry ("futures trade", `execution` = the
fill's id), and funding is one ("funding rate change", `realized_funding`). The log may lag the fills, so a
fill booked here waits, in `awaiting`, until an entry with its fee is read: its stored fee stays unproven
(fee_currency NULL) until then, never "0" as if proven. Entries are read from the newest entry id seen (the
store's, at the first read), so each is read about once; the store counts each entry id once however often it
comes. The account log costs history tokens (Kraken's history pool: 100 per 10 minutes, shared with the order
history the gateway decides unknown outcomes by), so it is read at most every `interval_s` while fees are
awaited, and every `funding_interval_s` otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from loguru import logger

from exchange.private_api import PrivateApi
from exchange.reports import AccountLogPage
from messages import AccountLogEntries, AccountMargin, Fill, FundingPayment, TradeFee

HANDED_KEPT = 10_000  # entry ids remembered as handed on (persistence counts each id once in any case)
LOOKBACK_MS = 3_600_000  # a store with no entry yet reads the log from this far before the first read
# History tokens left for the order history (deciding unknown outcomes, which cannot wait): the account log is read
# only while more than this (and a page's cost) is in the pool, so a read never makes the gateway wait for tokens
HISTORY_RESERVE = 20


@dataclass(frozen=True)
class AccountLogSettings:
    """How often the account log is read (real seconds)."""

    interval_s: float = 20.0  # while fills wait for their fee
    funding_interval_s: float = 300.0  # otherwise (funding is charged hourly on Kraken)
    warn_after_s: float = 300.0  # a fill whose fee has not shown this long is said so (once)


class AccountMoney:
    """Reads fees and funding from the account log and the available margin from the accounts endpoint."""

    def __init__(self, api: PrivateApi, *, record: Callable[[AccountLogEntries], None],
                 route: Callable[[AccountMargin], None], cursor: Callable[[], int | None] = lambda: None,
                 exchange_now: Callable[[], int], settings: AccountLogSettings | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.api = api
        self.record = record
        self.route = route
        self.stored_cursor = cursor
        self.exchange_now = exchange_now
        self.settings = settings or AccountLogSettings()
        self.clock = clock
        self.awaiting: dict[str, float] = {}  # fill id -> when it was booked (monotonic)
        self.warned: set[str] = set()
        self.cursor: int | None = None  # the newest entry id read
        self.handed: dict[int, None] = {}  # entry ids handed on lately (`from` is read inclusive: the newest again)
        self.started = False
        self.since_ms: int | None = None  # with no entry stored yet: read from here (fixed at the first read)
        self.last_read: float | None = None
        self.margin_wanted = True  # never read yet
        self.margin: AccountMargin | None = None

    # --- fills booked ------------------------------------------------------------------

    def booked(self, fills: Iterable[Fill]) -> None:
        """Fills just booked: their fees are awaited, and the margin changed."""
        now = self.clock()
        for fill in fills:
            self.awaiting.setdefault(fill.fill_id, now)
            self.margin_wanted = True

    # --- the account log ---------------------------------------------------------------

    def due(self) -> bool:
        """True when the account log should be read now."""
        if self.last_read is None:
            return True
        waited = self.clock() - self.last_read
        return waited >= (self.settings.interval_s if self.awaiting else self.settings.funding_interval_s)

    def read_log(self, force: bool = False) -> bool:
        """Read the new account-log entries (if due or forced) and hand them to persistence; False if it failed."""
        if not force and not self.due():
            return True
        budget = self.api.budget
        if budget is not None and budget.history.available() < HISTORY_RESERVE + 10:
            logger.debug("gateway: the account log waits for history tokens ({:.0f} left)", budget.history.available())
            return True  # read at a later look, when the pool has refilled
        self.last_read = self.clock()
        try:
            if not self.started:
                self.cursor = self.stored_cursor()
                self.since_ms = self.exchange_now() - LOOKBACK_MS
                self.started = True
            page = self.api.account_log(from_id=self.cursor, since_ms=None if self.cursor is not None
                                        else self.since_ms)
        except Exception as exc:  # noqa: BLE001 - read again at the next look
            logger.warning("gateway: the account log could not be read ({}: {}); fees and funding are read at the "
                           "next look", type(exc).__name__, exc)
            return False
        self._take(page)
        return True

    def _take(self, page: AccountLogPage) -> None:
        for reason in page.skipped:
            logger.warning("gateway: account-log entry skipped, not counted: {}", reason)
        if page.ids:
            self.cursor = max(page.ids) if self.cursor is None else max(self.cursor, *page.ids)
        fees = tuple(TradeFee(entry_id=f.entry_id, execution=f.execution, symbol=f.symbol, fee=f.fee,
                              currency=f.currency, time=f.time_ms) for f in page.fees if f.entry_id not in self.handed)
        funding = tuple(FundingPayment(entry_id=p.entry_id, symbol=p.symbol, amount=p.amount, currency=p.currency,
                                       rate=p.rate, time=p.time_ms)
                        for p in page.funding if p.entry_id not in self.handed)
        for entry_id in [*(f.entry_id for f in fees), *(p.entry_id for p in funding)]:
            self.handed[entry_id] = None
        while len(self.handed) > HANDED_KEPT:
            self.handed.pop(next(iter(self.handed)))
        for fee in fees:
            if fee.currency != "USD":
                logger.warning("{}: fee of fill {} paid in {} (account-log entry {}): counted in its USD PnL as it "
                               "is, unconverted", fee.symbol, fee.execution, fee.currency, fee.entry_id)
            self.awaiting.pop(fee.execution, None)
            self.warned.discard(fee.execution)
        for payment in funding:
            logger.info("{}: funding {} {} (account-log entry {})", payment.symbol, payment.amount, payment.currency,
                        payment.entry_id)
        if fees or funding:
            self.record(AccountLogEntries(fees=fees, funding=funding))
        now = self.clock()
        for fill_id, since in self.awaiting.items():
            if now - since >= self.settings.warn_after_s and fill_id not in self.warned:
                self.warned.add(fill_id)
                logger.warning("gateway: fill {} has no fee in the account log after {:.0f}s; its fee stays unproven "
                               "until the entry shows", fill_id, now - since)

    # --- margin ------------------------------------------------------------------------

    def read_margin(self, force: bool = False) -> AccountMargin | None:
        """Read the available margin (when fills changed it, it was never read, or forced) and tell the portfolio."""
        if not force and not self.margin_wanted:
            return self.margin
        try:
            report = self.api.margin()
        except Exception as exc:  # noqa: BLE001 - unknown until the next read; entries wait for it
            logger.warning("gateway: the available margin could not be read ({}: {}); read again at the next look",
                           type(exc).__name__, exc)
            self.margin_wanted = True
            return self.margin
        self.margin_wanted = False
        self.margin = AccountMargin(available=report.available, initial=report.initial,
                                    portfolio_value=report.portfolio_value)
        self.route(self.margin)
        return self.margin

