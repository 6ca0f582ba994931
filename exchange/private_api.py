"""Kraken's private endpoints through the real ccxt client, paced by the cost budget, answers parsed at the edge.

ccxt builds and signs every request (`create_order_request`, its implicit raw endpoints) and maps
Kraken's errors to its exceptions; this module turns each raw answer into the typed reports of
`exchange.reports` and raises `UnreadableAnswer` for anything that is not evidence. Searches that
page (fills by `lastFillTime`, history by continuation token) are complete for the asked window or
raise: a search cut short never reads as "absent".

The fills endpoint pages by time only ("the 100 entries before lastFillTime"), so it cannot page through a
millisecond holding 100 fills or more (a batchorder of market orders filled at once). Those milliseconds, and only
those, are read from the execution history (history/v2/executions, paged by continuation token), which publishes
late: a millisecond not yet settled (older than the caller's `settled_before_ms`) raises FillsPending, carrying
every other fill of the window. One fill never comes from both sources in one search: Kraken does not document
that an execution's uid equals the fills endpoint's fill_id.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import Any

import ccxt
from loguru import logger

from exchange.budget import CostBudget
from exchange.client import BATCH_PROCESS_BEFORE
from exchange.reports import (
    AccountLogPage,
    DeadMansSwitchStatus,
    FillReport,
    HistoryReport,
    MarginReport,
    OpenOrderReport,
    OrderStatusReport,
    SendReport,
    UnreadableAnswer,
    parse_account_log,
    parse_accounts_margin,
    parse_batch_status,
    parse_cancel_status,
    parse_dead_mans_switch,
    parse_edit_status,
    parse_executions,
    parse_fills,
    parse_history,
    parse_open_orders,
    parse_order_status,
    parse_positions,
    parse_send_status,
    time_ms,
)
from messages import OrderIntent, Position

# OrderIntent.order_type of a stop-loss (fixed or trailing) or a take-profit
PROTECTIVE_ORDER_TYPES = frozenset({"stop", "trailing_stop", "take_profit"})
FILLS_PAGE = 100  # Kraken's fills endpoint returns the newest 100 (get-fills docs)
MAX_FILL_PAGES = 50
HISTORY_PAGE = 500
MAX_HISTORY_PAGES = 40
# The account log's first page is small (25 entries cost 1 history token, Kraken's rate-limit guide), later pages
# large (500 cost 3): a look with little new costs the least, a long gap the fewest tokens per entry.
ACCOUNT_LOG_FIRST_PAGE = 25
ACCOUNT_LOG_PAGE = 500
MAX_ACCOUNT_LOG_PAGES = 20
SETTLED_CACHE = 512  # milliseconds whose executions were read after they settled (immutable): kept, not re-read


class FillsPending(UnreadableAnswer):
    """The fills endpoint cannot page through these milliseconds and the execution history may not show all of
    them yet: `fills` holds every fill of the window outside them (complete there), `pending_ms` the milliseconds."""

    def __init__(self, fills: list[FillReport], pending_ms: list[int]) -> None:
        super().__init__(f"fills: more than {FILLS_PAGE} fills at {', '.join(iso_ms(t) for t in pending_ms)}; "
                         "the execution history has not settled that far yet")
        self.fills = fills
        self.pending_ms = pending_ms


def iso_ms(ms: int) -> str:
    """Epoch ms as the ISO-8601 text Kraken takes (processBefore, lastFillTime)."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


# Reads are idempotent: a transient failure (time-out, 5xx, 429) is retried at once a few times, so one
# dropped answer does not cost a whole search. Writes (sendorder, batchorder, cancelorder) are never retried here.
TRANSIENT = (ccxt.NetworkError, ccxt.ExchangeNotAvailable, ccxt.RateLimitExceeded, ccxt.DDoSProtection)
READ_ATTEMPTS = 3


class PrivateApi:
    """The gateway's only way to the exchange: every call spends from Kraken's budget first."""

    def __init__(self, exchange: Any, budget: CostBudget | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.exchange = exchange
        self.budget = budget
        self.sleep = sleep
        self._settled: dict[int, list[FillReport]] = {}  # ms -> its executions, read after the ms settled

    def _read(self, endpoint: str, call: Callable[[], Any], **cost: Any) -> Any:
        """Spend, call, and retry a transient failure (reads only)."""
        for attempt in range(READ_ATTEMPTS):
            self._spend(endpoint, **cost)
            try:
                return call()
            except TRANSIENT as exc:
                if attempt == READ_ATTEMPTS - 1:
                    raise
                logger.debug("gateway: {} failed ({}: {}); reading again", endpoint, type(exc).__name__, exc)
                self.sleep(0.1 * (attempt + 1))
        raise AssertionError("unreachable")

    # --- plumbing ----------------------------------------------------------------------

    def _spend(self, endpoint: str, **cost: Any) -> None:
        if self.budget is not None:
            waited = self.budget.spend(endpoint, **cost)
            if waited > 0.5:
                logger.info("gateway: waited {:.1f}s for Kraken's cost budget ({})", waited, endpoint)

    def symbol_of(self, market_id: str) -> str | None:
        """The unified symbol of a Kraken market id (PF_XBTUSD -> BTC/USD:USD), None if not listed."""
        by_id = getattr(self.exchange, "markets_by_id", None) or {}
        found = by_id.get(market_id) or by_id.get(market_id.upper())
        if isinstance(found, list):
            found = found[0] if found else None
        return found.get("symbol") if isinstance(found, dict) else None

    def market_id(self, symbol: str) -> str:
        """Kraken's id for a unified symbol."""
        return str(self.exchange.market(symbol)["id"])

    # --- reads ---------------------------------------------------------------------------

    def open_orders(self) -> list[OpenOrderReport]:
        """Every order resting on the account."""
        return parse_open_orders(self._read("openorders", self.exchange.privateGetOpenorders), self.symbol_of)

    def positions(self) -> list[Position]:
        """Every open position."""
        return self.positions_read()[0]

    def positions_read(self, clock_rate: float = 1.0) -> tuple[list[Position], int | None]:
        """Every open position, and the exchange time before which every fill is surely in them: the answer's
        serverTime less the call's duration (on the exchange's clock); None when the answer carries no time."""
        started = time.monotonic()
        answer = self._read("openpositions", self.exchange.privateGetOpenpositions)
        took_ms = (time.monotonic() - started) * 1000 * clock_rate
        positions = parse_positions(answer, self.symbol_of)
        stamp = answer.get("serverTime") if isinstance(answer, dict) else None
        try:
            server_ms = time_ms(stamp, "openpositions: serverTime") if stamp is not None else None
        except UnreadableAnswer:
            server_ms = None
        return positions, (None if server_ms is None else int(server_ms - took_ms) - 1)

    def order_status(self, client_order_ids: Sequence[str] = (), order_ids: Sequence[str] = ()
                     ) -> list[OrderStatusReport]:
        """orders/status for these ids: open orders, and closed ones for 5 s only."""
        if not client_order_ids and not order_ids:
            return []
        request = {"orderIds": list(order_ids), "cliOrdIds": list(client_order_ids)}
        answer = self._read("orders/status", lambda: self.exchange.privateGetOrdersStatus(request))
        return parse_order_status(answer, self.symbol_of)

    def fills_since(self, since_ms: int, settled_before_ms: int | None = None) -> list[FillReport]:
        """Every fill at or after `since_ms`, paging back by lastFillTime; raises if the search is cut short.

        A millisecond the fills endpoint cannot page through (a page holding only fills of that millisecond) raises
        UnreadableAnswer when `settled_before_ms` is None. Otherwise its fills are read from the execution history
        if it is older than `settled_before_ms` (the caller's rule for "published": the history lag has passed),
        paging the fills endpoint on past it (lastFillTime = that millisecond: the fills strictly before); if it is
        not, FillsPending carries the other fills. Each fill comes from one source: a stalled millisecond's fills
        from the execution history only, every other millisecond's from the fills endpoint only.
        """
        fills: dict[str, FillReport] = {}
        stalled: list[int] = []
        params: dict[str, Any] = {}
        for _ in range(MAX_FILL_PAGES):
            asked = dict(params)
            page = parse_fills(self._read("fills", partial(self.exchange.privateGetFills, asked),
                                          fills_since=bool(asked)), self.symbol_of)
            fresh = [f for f in page if f.time_ms not in stalled]
            for fill in fresh:
                if fill.time_ms >= since_ms:
                    fills.setdefault(fill.fill_id, fill)
            if len(page) < FILLS_PAGE or not page:
                break
            oldest = min(f.time_ms for f in page)
            if oldest < since_ms:
                break
            if not fresh:
                raise UnreadableAnswer(f"fills: lastFillTime {asked.get('lastFillTime')} answered fills of "
                                       f"{iso_ms(oldest)} again; paging stalls")
            if all(f.time_ms == oldest for f in page):
                if settled_before_ms is None:
                    raise UnreadableAnswer(f"fills: more than {FILLS_PAGE} fills at {iso_ms(oldest)}; paging stalls")
                stalled.append(oldest)  # read from the execution history; the fills endpoint goes on before it
                params = {"lastFillTime": iso_ms(oldest)}
                continue
            # lastFillTime pages to fills before that time; same-millisecond fills are re-read and deduplicated
            params = {"lastFillTime": iso_ms(oldest + 1)}
        else:
            raise UnreadableAnswer(f"fills: the search since {iso_ms(since_ms)} needs more than {MAX_FILL_PAGES} "
                                   "pages")
        if not stalled:
            return sorted(fills.values(), key=lambda f: (f.time_ms, f.fill_id))
        found = {fid: f for fid, f in fills.items() if f.time_ms not in stalled}
        pending = []
        for ms in stalled:
            if settled_before_ms is None or ms >= settled_before_ms:
                pending.append(ms)
                continue
            shown = sum(1 for f in fills.values() if f.time_ms == ms)  # at least a page's worth
            for fill in self._executions_at(ms, shown):
                found.setdefault(fill.fill_id, fill)
        result = sorted(found.values(), key=lambda f: (f.time_ms, f.fill_id))
        if pending:
            raise FillsPending(result, sorted(pending))
        logger.debug("gateway: fills of {} read from the execution history (the fills endpoint cannot page "
                     "through them)", ", ".join(iso_ms(ms) for ms in stalled))
        return result

    def _executions_at(self, ms: int, shown: int) -> list[FillReport]:
        """The account's executions of one settled millisecond (read once: settled history does not change);
        fewer than the `shown` fills the fills endpoint listed there: not settled after all, UnreadableAnswer."""
        known = self._settled.get(ms)
        if known is None or len(known) < shown:
            known = [f for f in self.executions_since(ms, before_ms=ms + 1) if f.time_ms == ms]
            if len(known) < shown:
                raise UnreadableAnswer(f"executions: {len(known)} executions at {iso_ms(ms)}, the fills endpoint "
                                       f"lists {shown} there; the execution history is not complete yet")
            if len(self._settled) >= SETTLED_CACHE:
                self._settled.pop(min(self._settled))
            self._settled[ms] = known
        return known

    def executions_since(self, since_ms: int, before_ms: int | None = None) -> list[FillReport]:
        """Every execution of the account at or after `since_ms` (and before `before_ms`), from the execution
        history, oldest first, paged by continuation token; raises if the search is cut short. The history
        publishes late: executions newer than the history lag may be missing (the caller decides what is settled)."""
        found: dict[str, FillReport] = {}
        base: dict[str, Any] = {"since": since_ms, "sort": "asc", "count": HISTORY_PAGE}
        if before_ms is not None:
            base["before"] = before_ms
        params = dict(base)
        for _ in range(MAX_HISTORY_PAGES):
            asked = dict(params)
            page, token = parse_executions(
                self._read_history(partial(self.exchange.historyGetExecutions, asked), "executions"),
                self.symbol_of)
            for fill in page:
                if fill.time_ms >= since_ms and (before_ms is None or fill.time_ms < before_ms):
                    found.setdefault(fill.fill_id, fill)
            if token is None:
                return sorted(found.values(), key=lambda f: (f.time_ms, f.fill_id))
            params = {**base, "continuation_token": token}
        raise UnreadableAnswer(f"executions: the search since {iso_ms(since_ms)} needs more than "
                               f"{MAX_HISTORY_PAGES} pages")

    def history_since(self, since_ms: int, *, triggers: bool = False) -> list[HistoryReport]:
        """Every order-history event at or after `since_ms`, oldest first; raises if cut short.

        `triggers`: the trigger history instead (/history/v2/triggers: stop-loss and take-profit orders until they
        fire; one cancelled before it fired appears only there)."""
        events: list[HistoryReport] = []
        params: dict[str, Any] = {"since": since_ms, "sort": "asc", "count": HISTORY_PAGE}
        endpoint, read = ("triggers", self.exchange.historyGetTriggers) if triggers else \
            ("orders", self.exchange.historyGetOrders)
        for _ in range(MAX_HISTORY_PAGES):
            asked = dict(params)
            page, token = parse_history(self._read_history(partial(read, asked), endpoint), self.symbol_of)
            events.extend(page)
            if token is None:
                return events
            params = {"since": since_ms, "sort": "asc", "count": HISTORY_PAGE, "continuation_token": token}
        raise UnreadableAnswer(f"history: the search since {iso_ms(since_ms)} needs more than "
                               f"{MAX_HISTORY_PAGES} pages")

    def account_log(self, *, from_id: int | None = None, since_ms: int | None = None) -> AccountLogPage:
        """Every account-log entry from entry id `from_id` (inclusive: Kraken does not say, so the entry is read again
        and deduplicated rather than missed), else since `since_ms`, oldest first, paged by id; raises if cut short.

        Each page asks `sort=asc`, a `count`, and `from` (the newest id read so far on later pages); a page shorter
        than its count is the last. Entries that cannot be read are in `skipped`, with the reason."""
        fees: dict[int, Any] = {}
        funding: dict[int, Any] = {}
        skipped: list[str] = []
        ids: set[int] = set()
        base: dict[str, Any] = {"sort": "asc"}
        if from_id is not None:
            base["from"] = from_id
        elif since_ms is not None:
            base["since"] = since_ms
        params = {**base, "count": ACCOUNT_LOG_FIRST_PAGE}
        for _ in range(MAX_ACCOUNT_LOG_PAGES):
            asked = dict(params)
            page = parse_account_log(self._read_history(partial(self.exchange.historyGetAccountLog, asked),
                                                        "account-log", count=asked["count"]), self.symbol_of)
            fresh = [i for i in page.ids if i not in ids]
            for fee in page.fees:
                fees.setdefault(fee.entry_id, fee)
            for payment in page.funding:
                funding.setdefault(payment.entry_id, payment)
            skipped.extend(page.skipped)
            ids.update(page.ids)
            if page.entries < asked["count"] or not page.ids:
                break
            if not fresh:
                raise UnreadableAnswer(f"account-log: from {asked.get('from')} answered entries read before; "
                                       "paging stalls")
            params = {"sort": "asc", "from": max(page.ids), "count": ACCOUNT_LOG_PAGE}
        else:
            raise UnreadableAnswer(f"account-log: the search needs more than {MAX_ACCOUNT_LOG_PAGES} pages")
        return AccountLogPage(fees=sorted(fees.values(), key=lambda f: f.entry_id),
                              funding=sorted(funding.values(), key=lambda f: f.entry_id),
                              skipped=skipped, ids=sorted(ids), entries=len(ids))

    def margin(self) -> MarginReport:
        """The flex account's available margin (accounts)."""
        return parse_accounts_margin(self._read("accounts", self.exchange.privateGetAccounts))

    def _read_history(self, call: Callable[[], Any], endpoint: str = "orders", count: int | None = None) -> Any:
        for attempt in range(READ_ATTEMPTS):
            if self.budget is not None:
                self.budget.spend_history(endpoint, count)
            try:
                return call()
            except TRANSIENT:
                if attempt == READ_ATTEMPTS - 1:
                    raise
                self.sleep(0.1 * (attempt + 1))
        raise AssertionError("unreachable")

    # --- writes --------------------------------------------------------------------------

    def order_request(self, intent: OrderIntent, process_before_ms: int | None, **extra: Any) -> dict[str, Any]:
        """The sendorder request for an intent, built by ccxt, with its cliOrdId and processBefore (if given)."""
        params: dict[str, Any] = {"clientOrderId": intent.client_order_id, **extra}
        if process_before_ms is not None:
            params["processBefore"] = iso_ms(process_before_ms)
        if intent.reduce_only:
            params["reduceOnly"] = True
        if intent.order_type == "trailing_stop":
            # send-order: trailing_stop with trailingStopMaxDeviation / trailingStopDeviationUnit, no stopPrice and no
            # limitPrice ("if placing a trailing_stop then leave undefined"); ccxt passes the fields through
            if intent.trailing_pct is None:
                raise ValueError(f"{intent.client_order_id}: a trailing stop without its deviation")
            params.update({"orderType": "trailing_stop", "trailingStopMaxDeviation": float(intent.trailing_pct),
                           "trailingStopDeviationUnit": "PERCENT", "triggerSignal": intent.trigger_signal or "mark",
                           "reduceOnly": True})
            return self.exchange.create_order_request(intent.symbol, "market", intent.side.value,
                                                      float(intent.amount), None, params)
        if intent.order_type in PROTECTIVE_ORDER_TYPES:
            # ccxt builds Kraken's `stp` from stopLossPrice and `take_profit` from takeProfitPrice, both with
            # `stopPrice`, `triggerSignal` and reduceOnly (krakenfutures.create_order_request)
            if intent.trigger_price is None:
                raise ValueError(f"{intent.client_order_id}: a {intent.order_type} order without a trigger price")
            price_key = "stopLossPrice" if intent.order_type == "stop" else "takeProfitPrice"
            params.update({price_key: float(intent.trigger_price), "triggerSignal": intent.trigger_signal or "mark",
                           "reduceOnly": True})
            return self.exchange.create_order_request(intent.symbol, "market", intent.side.value,
                                                      float(intent.amount), None, params)
        if intent.order_type == "limit":
            if intent.limit_price is None:
                raise ValueError(f"{intent.client_order_id}: a limit order without a limit price")
            return self.exchange.create_order_request(intent.symbol, "limit", intent.side.value,
                                                      float(intent.amount), float(intent.limit_price), params)
        return self.exchange.create_order_request(intent.symbol, "market", intent.side.value, float(intent.amount),
                                                  None, params)

    def batch_instruction(self, intent: OrderIntent, order_tag: str) -> dict[str, Any]:
        """One `send` instruction of a batchorder, built by ccxt as for sendorder (no processBefore inside: Kraken
        documents it for the whole request only), with `order: "send"` and an order_tag unique in the batch."""
        return self.order_request(intent, None, order="send", order_tag=order_tag)

    def send_batch(self, intents: Sequence[OrderIntent], process_before_ms: int) -> list[SendReport]:
        """One batchorder carrying a send instruction per intent and the request-level ProcessBefore; one report
        per intent, in order (matched by order_tag). ccxt's exceptions pass to the caller; an answer that does
        not account for every instruction exactly once raises UnreadableAnswer."""
        tags = [str(index + 1) for index in range(len(intents))]
        request = {"batchOrder": [self.batch_instruction(intent, tag)
                                  for intent, tag in zip(intents, tags, strict=True)],
                   BATCH_PROCESS_BEFORE: iso_ms(process_before_ms)}
        self._spend("batchorder", batch_size=len(intents))
        answer = self.exchange.privatePostBatchorder(request)
        return parse_batch_status(answer, [(tag, intent.client_order_id)
                                           for intent, tag in zip(intents, tags, strict=True)])

    def send(self, intent: OrderIntent, process_before_ms: int) -> SendReport:
        """One sendorder; ccxt's exceptions (time-outs, 5xx, Kraken errors) pass to the caller."""
        request = self.order_request(intent, process_before_ms)
        self._spend("sendorder")
        answer = self.exchange.privatePostSendorder(request)
        if not isinstance(answer, dict) or str(answer.get("result", "")).lower() != "success":
            raise UnreadableAnswer(f"sendorder: not a success answer: {str(answer)[:200]}")
        return parse_send_status(answer.get("sendStatus"), "sendorder")

    def resize(self, exchange_order_id: str, amount: Decimal, stop_price: Decimal | None,
               process_before_ms: int | None = None) -> str:
        """editorder: set a resting order's size (Kraken's `size`); the answer's status ("edited", or why not).

        A trigger order's `stopPrice` goes with it, unchanged: the edit-order docs say it is "Required if old
        orderType is stp" (take_profit too, the harsher reading)."""
        request: dict[str, Any] = {"orderId": exchange_order_id, "size": str(amount)}
        if stop_price is not None:
            request["stopPrice"] = str(stop_price)
        if process_before_ms is not None:
            request["processBefore"] = iso_ms(process_before_ms)
        self._spend("editorder")
        return parse_edit_status(self.exchange.privatePostEditorder(request))

    def cancel(self, exchange_order_id: str) -> tuple[str, Decimal | None]:
        """cancelorder by order id -> (status, filled at the cancel when the answer shows it)."""
        self._spend("cancelorder")
        return parse_cancel_status(self.exchange.privatePostCancelorder({"order_id": exchange_order_id}))

    def cancel_all_after(self, timeout_s: int) -> DeadMansSwitchStatus:
        """cancelallordersafter: Kraken cancels every order of the account (stops and take-profits too) unless
        called again within `timeout_s` seconds; 0 disarms. Not retried here (the next heartbeat is the retry);
        ccxt's exceptions pass to the caller."""
        if timeout_s < 0:
            raise ValueError(f"cancelallordersafter: timeout_s must be >= 0, got {timeout_s}")
        self._spend("cancelallordersafter")
        answer = self.exchange.privatePostCancelallordersafter({"timeout": int(timeout_s)})
        return parse_dead_mans_switch(answer, int(timeout_s))
