"""The tables: intents, orders, fills, the event log, control state and the schema version."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import peewee

# 2: intents keep limit_price, sent_at, process_before and sends; 3: booked, fills_complete, PnL totals
# 4: intents carry a protective order's trigger price and signal, an entry's own levels
SCHEMA_VERSION = 5  # 5: fees from the account log (fill.fee_currency, trade_fee), funding payments, pnl_total.funding


@dataclass(frozen=True)
class Models:
    """The model classes bound to one database.

    Typed Any: the classes are made at run time, per database, so a type checker cannot see their fields
    (`Intent.status` would be "no attribute" on `type[peewee.Model]`)."""

    SchemaInfo: Any
    Intent: Any
    Order: Any
    Fill: Any
    Event: Any
    ControlState: Any
    PnlTotal: Any
    TradeFee: Any
    Funding: Any

    @property
    def all(self) -> list[type[peewee.Model]]:
        """Every model, in creation order."""
        return [self.SchemaInfo, self.Intent, self.Order, self.Fill, self.Event, self.ControlState, self.PnlTotal,
                self.TradeFee, self.Funding]


def build_models(database: peewee.Database) -> Models:
    """Define the models bound to `database` (each store gets its own, so stores never share state)."""

    bound_database = database

    class Base(peewee.Model):
        class Meta:
            database = bound_database
            legacy_table_names = False

    class SchemaInfo(Base):
        """One row per setting; `version` holds the schema version."""

        key = peewee.CharField(primary_key=True, max_length=64)
        value = peewee.TextField()

    class Intent(Base):
        """A claimed order intent: unique by hash and by client order id, durable before the send."""

        intent_hash = peewee.CharField(unique=True, max_length=64)
        client_order_id = peewee.CharField(unique=True, max_length=100)
        symbol = peewee.CharField(max_length=64, index=True)
        kind = peewee.CharField(max_length=16)
        side = peewee.CharField(max_length=4)
        candle_time = peewee.BigIntegerField()
        notional = peewee.TextField()
        amount = peewee.TextField()
        price = peewee.TextField()
        reduce_only = peewee.BooleanField(default=False)
        order_type = peewee.CharField(max_length=16, default="market")
        limit_price = peewee.TextField(null=True)
        trigger_price = peewee.TextField(null=True)  # a stop-loss / take-profit's stop price
        trigger_signal = peewee.CharField(max_length=8, null=True)  # mark, index or last
        trailing_pct = peewee.TextField(null=True)  # a trailing stop-loss's distance, percent
        stop_loss = peewee.TextField(null=True)  # an entry's own protective levels (the strategy's)
        take_profit = peewee.TextField(null=True)
        status = peewee.CharField(max_length=20, index=True)
        reason = peewee.CharField(max_length=40, null=True)
        exchange_order_id = peewee.CharField(max_length=100, null=True)
        filled = peewee.TextField(default="0")
        created_at = peewee.BigIntegerField(index=True)
        updated_at = peewee.BigIntegerField()
        sent_at = peewee.BigIntegerField(null=True)  # exchange ms of the latest send
        process_before = peewee.BigIntegerField(null=True)  # no copy of the order executes after this (exchange ms)
        sends = peewee.IntegerField(default=0)
        schema_v1 = peewee.BooleanField(default=False)  # stored by version 1, before sends recorded processBefore
        booked = peewee.TextField(default="0")  # the amount of the fills stored for this intent's order
        # True once the intent is final and its stored fills cover its filled amount: start-up looks only at False.
        fills_complete = peewee.BooleanField(default=False, index=True)

        class Meta:
            indexes = ((("symbol", "created_at"), False),)  # the newest hashes of one symbol (recent_hashes)

    class Order(Base):
        """An order on the exchange: ours (with its intent) or EXTERNAL (placed outside the system)."""

        client_order_id = peewee.CharField(max_length=100, null=True, index=True)
        exchange_order_id = peewee.CharField(max_length=100, null=True, unique=True)
        intent_hash = peewee.CharField(max_length=64, null=True, index=True)
        origin = peewee.CharField(max_length=16, default="OURS")
        symbol = peewee.CharField(max_length=64, index=True)
        side = peewee.CharField(max_length=4)
        reduce_only = peewee.BooleanField(default=False)
        amount = peewee.TextField(null=True)
        filled = peewee.TextField(default="0")
        average_price = peewee.TextField(null=True)
        state = peewee.CharField(max_length=20, index=True)
        reason = peewee.CharField(max_length=40, null=True)
        detail = peewee.TextField(default="")
        created_at = peewee.BigIntegerField()
        updated_at = peewee.BigIntegerField()

    class Fill(Base):
        """One execution; unique by the exchange's fill id."""

        fill_id = peewee.CharField(unique=True, max_length=100)
        symbol = peewee.CharField(max_length=64, index=True)
        side = peewee.CharField(max_length=4)
        amount = peewee.TextField()
        price = peewee.TextField()
        fee = peewee.TextField(default="0")  # the sum of its account-log fee entries; 0 until one is there
        fee_currency = peewee.CharField(max_length=16, null=True)  # None: no fee entry seen yet (0 is not proven)
        exchange_order_id = peewee.CharField(max_length=100, null=True, index=True)
        client_order_id = peewee.CharField(max_length=100, null=True, index=True)
        time = peewee.BigIntegerField()

    class Event(Base):
        """The append-only event log: every decision and rejection, with its reason."""

        time = peewee.BigIntegerField(index=True)
        kind = peewee.CharField(max_length=32)
        symbol = peewee.CharField(max_length=64, null=True, index=True)
        reason = peewee.CharField(max_length=40, null=True, index=True)
        intent_hash = peewee.CharField(max_length=64, null=True, index=True)
        detail = peewee.TextField(default="")

    class ControlState(Base):
        """Per-symbol control state that survives restarts."""

        symbol = peewee.CharField(primary_key=True, max_length=64)
        paused = peewee.BooleanField(default=False)
        halted = peewee.BooleanField(default=False)
        reason = peewee.TextField(default="")
        source = peewee.CharField(max_length=64, default="")
        updated_at = peewee.BigIntegerField()

    class PnlTotal(Base):
        """Running average-cost totals per symbol, kept by the writer with every fill it stores."""

        symbol = peewee.CharField(primary_key=True, max_length=64)
        position = peewee.TextField(default="0")  # signed contracts
        entry = peewee.TextField(default="0")  # average entry price of the open position
        realized = peewee.TextField(default="0")  # realized PnL, fees subtracted (funding not)
        fees = peewee.TextField(default="0")
        fill_count = peewee.IntegerField(default=0)
        updated_at = peewee.BigIntegerField(default=0)
        funding = peewee.TextField(default="0")  # funding received (+) or paid (-)

    class TradeFee(Base):
        """An execution's fee from Kraken's account log; unique by the log entry id (counted once)."""

        entry_id = peewee.BigIntegerField(unique=True)
        execution = peewee.CharField(max_length=100, index=True)  # the fill's fill_id
        symbol = peewee.CharField(max_length=64)
        fee = peewee.TextField()
        currency = peewee.CharField(max_length=16)
        time = peewee.BigIntegerField()

    class Funding(Base):
        """A funding payment from Kraken's account log; unique by the log entry id."""

        entry_id = peewee.BigIntegerField(unique=True)
        symbol = peewee.CharField(max_length=64, index=True)
        amount = peewee.TextField()  # received (+) or paid (-)
        currency = peewee.CharField(max_length=16)
        rate = peewee.TextField(null=True)
        time = peewee.BigIntegerField(index=True)

    return Models(SchemaInfo, Intent, Order, Fill, Event, ControlState, PnlTotal, TradeFee, Funding)
