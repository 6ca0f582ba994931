"""The account log: every balance and position change of the flex account, as Kraken's account-log endpoint lists it.

Kraken (https://docs.kraken.com/api/docs/futures-api/history/account-log, `GET /api/history/v3/account-log`):
answer `{accountUid, logs: [...]}`; each entry `{id (>= 1), date (RFC 3339), asset, info, booking_uid, margin_account,
old_balance, new_balance, old_average_entry_price, new_average_entry_price, trade_price, mark_price, realized_pnl, fee,
execution, collateral, contract, funding_rate, realized_funding, conversion_spread_percentage, liquidation_fee}`, the
numbers as JSON numbers (null where not applicable). Query: `since` / `before` (epoch ms), `from` / `to` (entry ids,
inclusive), `sort` (`asc` | `desc`, default `desc`), `info` (one or more entry types), `count` (default 500).

ccxt's recorded Kraken answers (`../shared/peers/ccxt-krakenfutures/response.json`, fetchLedger, and the comments
in ccxt's krakenfutures.fetch_ledger / fetch_funding_history) show the shape of the entries the simulator writes:
- a fill writes TWO `futures trade` entries sharing `execution` (the fill id): first the position leg (`asset` the
  contract in lower case, `old_balance` / `new_balance` the signed position size), then the cash leg (`asset` `usd`,
  `fee`, `realized_pnl`, `old_balance` / `new_balance` the USD balance: new = old + realized_pnl - fee);
- funding writes one `funding rate change` entry (`asset` `usd`, `funding_rate` the absolute rate, USD per contract,
  `realized_funding`, new = old + realized_funding, `fee` null);
- `contract` is the market in lower case (`pf_xbtusd`), `margin_account` `flex`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from simulator.orders import iso, whole_param

# every `info` value the account-log page documents (the query's enum)
INFO_TYPES = frozenset({
    "futures trade", "futures liquidation", "futures assignor", "futures assignee", "futures unwind counterparty",
    "futures unwind bankrupt", "covered liquidation", "funding rate change", "conversion", "interest payment",
    "transfer", "cross-exchange transfer", "kfee applied", "subaccount transfer", "settlement", "admin transfer",
    "tax withheld", "tax refund",
})
TRADE = "futures trade"
FUNDING = "funding rate change"
DEFAULT_COUNT = 500  # account-log: count "Default value: 500"

_NUMBERS = ("old_balance", "new_balance", "old_average_entry_price", "new_average_entry_price", "trade_price",
            "mark_price", "realized_pnl", "fee", "funding_rate", "realized_funding", "conversion_spread_percentage",
            "liquidation_fee")


@dataclass(frozen=True)
class LogEntry:
    """One account-log entry; amounts are exact Decimals (None where Kraken answers null)."""

    id: int
    time_ms: int
    asset: str
    info: str
    booking_uid: str
    old_balance: Decimal
    new_balance: Decimal
    contract: str | None = None
    execution: str | None = None
    old_average_entry_price: Decimal | None = None
    new_average_entry_price: Decimal | None = None
    trade_price: Decimal | None = None
    mark_price: Decimal | None = None
    realized_pnl: Decimal | None = None
    fee: Decimal | None = None
    funding_rate: Decimal | None = None
    realized_funding: Decimal | None = None

    def to_json(self) -> dict[str, object]:
        """The entry as the account-log endpoint lists it (numbers as JSON numbers)."""
        out: dict[str, object] = {
            "id": self.id,
            "date": iso(self.time_ms),
            "asset": self.asset,
            "info": self.info,
            "booking_uid": self.booking_uid,
            "margin_account": "flex",
            "contract": self.contract,
            "execution": self.execution,
            "collateral": None,
            "conversion_spread_percentage": None,
            "liquidation_fee": None,
        }
        for name in _NUMBERS:
            if name in out:
                continue
            value = getattr(self, name)
            out[name] = None if value is None else _number(value)
        return out

    def to_state(self) -> dict[str, object]:
        """Every field, exact, for the state file."""
        out: dict[str, object] = {"id": self.id, "time_ms": self.time_ms, "asset": self.asset, "info": self.info,
                                  "booking_uid": self.booking_uid, "contract": self.contract,
                                  "execution": self.execution}
        for name in _NUMBERS:
            if hasattr(self, name):
                value = getattr(self, name)
                out[name] = None if value is None else str(value)
        return out

    @classmethod
    def from_state(cls, data: Mapping[str, Any]) -> LogEntry:
        """An entry back from `to_state`; KeyError/ValueError on a malformed one."""
        numbers: dict[str, Decimal | None] = {}
        for name in _NUMBERS:
            if name in cls.__dataclass_fields__:
                raw = data.get(name)
                numbers[name] = None if raw is None else Decimal(str(raw))
        old, new = numbers.pop("old_balance"), numbers.pop("new_balance")
        if old is None or new is None:
            raise ValueError("account log entry without balances")
        return cls(id=int(data["id"]), time_ms=int(data["time_ms"]), asset=str(data["asset"]), info=str(data["info"]),
                   booking_uid=str(data["booking_uid"]), old_balance=old, new_balance=new,
                   contract=data.get("contract"), execution=data.get("execution"), **numbers)


def _number(value: Decimal) -> int | float:
    """A Decimal as a JSON number; its shortest float form prints the same digits for up to 15 significant ones."""
    if value == value.to_integral_value() and abs(value) < 10**15:
        return int(value)
    return float(value)


class AccountLog:
    """The account's log entries, oldest first, ids from 1."""

    def __init__(self, entries: Sequence[LogEntry] = ()) -> None:
        self.entries: list[LogEntry] = list(entries)

    def add(self, time_ms: int, asset: str, info: str, old_balance: Decimal, new_balance: Decimal,
            **fields: Any) -> LogEntry:
        """Append one entry (its id the next number, its booking uid derived from it)."""
        entry_id = len(self.entries) + 1
        booking = str(uuid.uuid5(uuid.NAMESPACE_URL, f"sim-account-log/{entry_id}/{time_ms}"))
        entry = LogEntry(id=entry_id, time_ms=time_ms, asset=asset, info=info, booking_uid=booking,
                         old_balance=old_balance, new_balance=new_balance, **fields)
        self.entries.append(entry)
        return entry

    def query(self, params: Mapping[str, object], infos: Sequence[str], visible_until_ms: int,
              page_max: int = DEFAULT_COUNT) -> list[LogEntry]:
        """The entries a request asks for; ValueError naming the bad parameter.

        `since` inclusive and `before` exclusive (undocumented: the reading shared with the other history endpoints),
        `from` / `to` inclusive ids (documented), `sort` default `desc`, `count` default 500 and at most `page_max`
        (no maximum documented: the harsher reading caps it at the default), `info` one or more documented types.
        Entries are published `visible_until_ms` late like the order history (harsher reading).
        """
        since = whole_param(params.get("since"), "since")
        before = whole_param(params.get("before"), "before")
        first = whole_param(params.get("from"), "from")
        last = whole_param(params.get("to"), "to")
        sort = str(params.get("sort") or "desc").lower()
        if sort not in ("asc", "desc"):
            raise ValueError("sort")
        count = whole_param(params.get("count"), "count")
        if count is not None and count < 1:
            raise ValueError("count")
        wanted = {i.strip().lower() for i in infos if i.strip()}
        if wanted - INFO_TYPES:
            raise ValueError("info")
        limit = min(count or DEFAULT_COUNT, page_max)
        entries = self.entries  # in id order, ids 1, 2, 3...: a `from` id starts the scan there
        if first is not None and 1 < first <= len(entries) and entries[first - 1].id == first:
            entries = entries[first - 1:]
        selected = [
            e for e in entries
            if e.time_ms <= visible_until_ms
            and (since is None or e.time_ms >= since)
            and (before is None or e.time_ms < before)
            and (first is None or e.id >= first)
            and (last is None or e.id <= last)
            and (not wanted or e.info in wanted)
        ]
        if sort == "desc":
            selected.reverse()
        return selected[:limit]


def response(account_uid: str, entries: Sequence[LogEntry], now_ms: int) -> dict[str, object]:
    """The account-log answer; the documented schema has only `accountUid` and `logs` (no serverTime)."""
    del now_ms
    return {"accountUid": account_uid, "logs": [e.to_json() for e in entries]}
