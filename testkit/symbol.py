"""One symbol actor, alone, around your strategy: feed it candles, see its signals, the orders and the refusals.

    from testkit import make_candles, symbol_actor

    with symbol_actor(MyStrategy.from_params({"level": 100})) as actor:
        actor.close(90, 95, 101)           # three closed candles, one message each, as the market data sends them
        [order] = actor.orders             # the OrderIntent handed to the gateway
        actor.fill()                       # the exchange filled it: the strategy now sees a long position
        actor.close(99)
        assert actor.orders[-1].reduce_only

This is the real `actors.symbol.SymbolActor` running the real guard chain (`SymbolTrader`): the actor's
guarantees hold exactly as in the running system (one signal -> at most one order, a signal seen before refused
as DUPLICATE_INTENT, an entry refused while a position is open, ...). Around it, in memory (testkit.ports): the
portfolio grants every risk reservation (unless `grant=False`), the database claims each intent once, and the
gateway only records what it was handed: nothing reaches an exchange until you call `fill()`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from actors.symbol import Decision, SymbolActor, SymbolSettings, SymbolTrader
from messages import (
    Candle,
    Candles,
    ControlRecord,
    GetStatus,
    MarketSpec,
    OrderIntent,
    OrderState,
    OrderUpdate,
    Pause,
    Position,
    PositionSide,
    PositionSync,
    Resume,
    Side,
    Signal,
    SymbolBootstrap,
    SymbolStatus,
    timeframe_ms,
)
from simulator.instruments import INSTRUMENTS
from strategies.base import Strategy
from testkit.candles import T0, make_candles
from testkit.ports import FakePorts

ASK_TIMEOUT_S = 10.0


def market_spec(symbol: str) -> MarketSpec:
    """The trading rules of a market the simulator lists (simulator/instruments.py: Kraken's contract step and
    price tick), as the gateway reads them from the exchange."""
    for instrument in INSTRUMENTS.values():
        if instrument.unified_symbol == symbol:
            return MarketSpec(symbol=symbol, exchange_id=instrument.symbol, amount_step=instrument.size_step,
                              price_tick=instrument.tick_size, min_amount=instrument.size_step)
    known = ", ".join(sorted(i.unified_symbol for i in INSTRUMENTS.values()))
    raise ValueError(f"the simulator lists no market {symbol!r} (it lists {known}): pass market=MarketSpec(...)")


class SymbolHarness:
    """A running symbol actor around one strategy, with what came out of it; see the module docstring."""

    def __init__(self, actor: Any, trader: SymbolTrader, ports: FakePorts, timeframe: str) -> None:
        self.actor = actor  # the pykka ActorRef of the SymbolActor
        self.trader = trader  # read it only after an ask (the actor's thread owns it)
        self.ports = ports
        self.timeframe = timeframe
        self.decisions: list[Decision] = []  # every signal the strategy gave, and what became of it
        self._last_time: int | None = None
        self._seq = itertools.count(1)
        self._filled: set[str] = set()

    @property
    def symbol(self) -> str:
        """The market this actor trades."""
        return self.trader.symbol

    # --- in ----------------------------------------------------------------------------------------------------

    def feed(self, candles: Iterable[Candle], *, live: bool = True) -> list[Decision]:
        """Tell the actor these closed candles, one message per candle (as the market-data actor does at each close);
        return the decisions they led to. `live=False` is start-up history: stored, never traded on."""
        made: list[Decision] = []
        for candle in candles:
            decision = self.actor.ask(Candles(symbol=self.symbol, candles=(candle,), live=live),
                                      timeout=ASK_TIMEOUT_S)
            self._last_time = candle.open_time
            if decision is not None:
                made.append(decision)
        self.decisions.extend(made)
        return made

    def _next_start(self) -> int:
        return T0 if self._last_time is None else self._last_time + timeframe_ms(self.timeframe)

    def close(self, *closes: float | int | str | Decimal) -> list[Decision]:
        """Close one candle per price, each one timeframe after the last candle fed; return the decisions."""
        return self.feed(make_candles(closes, symbol=self.symbol, timeframe=self.timeframe,
                                      start=self._next_start()))

    def warm_up(self, closes: Iterable[float | int | str | Decimal]) -> None:
        """Feed candles as start-up history (the strategy's warm-up): kept, but no signal is traded on them."""
        self.feed(make_candles(closes, symbol=self.symbol, timeframe=self.timeframe, start=self._next_start()),
                  live=False)

    def signal(self, signal: Signal) -> Decision:
        """Send a signal straight to the guard chain (as if a strategy had given it)."""
        decision: Decision = self.actor.ask(signal, timeout=ASK_TIMEOUT_S)
        self.decisions.append(decision)
        return decision

    def fill(self, order: OrderIntent | None = None, price: float | int | str | Decimal | None = None) -> Position:
        """The exchange filled `order` (default: the newest order not filled yet) in full at `price` (default: its
        reference price): the actor is told the fill and the new position, as the gateway and portfolio tell it."""
        if order is None:
            unfilled = [o for o in self.orders if o.intent_hash not in self._filled]
            if not unfilled:
                raise AssertionError("no order to fill: the actor has placed none (see .decisions for why)")
            order = unfilled[-1]
        self._filled.add(order.intent_hash)
        at = Decimal(str(price)) if price is not None else order.price
        before = self.position().signed_contracts
        delta = order.amount if order.side is Side.BUY else -order.amount
        after = before + delta
        if order.reduce_only and (before == 0 or (after > 0) != (before > 0)):
            after = Decimal(0)  # Kraken cuts a reduce-only order to the position
        self.actor.tell(OrderUpdate(intent_hash=order.intent_hash, client_order_id=order.client_order_id,
                                    symbol=self.symbol, side=order.side, state=OrderState.FILLED,
                                    reduce_only=order.reduce_only, amount=order.amount, filled=order.amount,
                                    average_price=at, seq=next(self._seq)))
        side = PositionSide.LONG if after > 0 else PositionSide.SHORT if after < 0 else PositionSide.FLAT
        position = Position(symbol=self.symbol, side=side, contracts=abs(after),
                            entry_price=at if after != 0 else None)
        self.actor.tell(PositionSync(position=position, seq=next(self._seq)))
        self.status()  # both handled
        return position

    def pause(self, paused: bool = True) -> None:
        """Pause (no new orders; signals refused PAUSED) or resume the symbol, as `run.py pause` does."""
        self.actor.ask(Pause(symbol=self.symbol) if paused else Resume(symbol=self.symbol), timeout=ASK_TIMEOUT_S)

    # --- out ---------------------------------------------------------------------------------------------------

    @property
    def signals(self) -> list[Signal]:
        """Every signal the strategy gave (refused ones too), oldest first."""
        return [d.signal for d in self.decisions]

    @property
    def orders(self) -> list[OrderIntent]:
        """Every order handed to the gateway, oldest first (at most one per signal)."""
        return [placed.intent for placed in self.ports.placed]

    @property
    def refusals(self) -> list[Decision]:
        """The decisions that placed no order, each with its `reason` (a messages.Reason) and `detail`."""
        return [d for d in self.decisions if not d.accepted]

    def reasons(self) -> list[str]:
        """The reason codes of every refusal the actor recorded (events), e.g. ["DUPLICATE_INTENT"]."""
        return self.ports.reasons()

    def status(self) -> SymbolStatus:
        """The actor's status (state, position, pending orders, last signal and outcome, refusal counts)."""
        status: SymbolStatus = self.actor.ask(GetStatus(), timeout=ASK_TIMEOUT_S)
        return status

    def position(self) -> Position:
        """The position the actor holds as told (flat at the start)."""
        position = self.status().position
        return position if position is not None else Position.flat(self.symbol)


@contextmanager
def symbol_actor(strategy: Strategy, *, symbol: str = "BTC/USD:USD", timeframe: str = "1m",
                 market: MarketSpec | None = None, position: Position | None = None, grant: bool = True,
                 **settings: Any) -> Iterator[SymbolHarness]:
    """Start a SymbolActor around `strategy` on `symbol` (flat, reconciled, trading); stop it afterwards.

    `settings` are actors.symbol.SymbolSettings fields, e.g. order_notional=Decimal(250), order_type="limit",
    pyramiding=True; `position` starts it holding one; `grant=False` makes the portfolio refuse every entry
    (RISK_LIMIT). `market` is needed only for a symbol the simulator does not list.
    """
    spec = market or market_spec(symbol)
    ports = FakePorts(grant=grant)
    trader = SymbolTrader(
        market=spec,
        strategy=strategy,
        settings=SymbolSettings(**settings),
        ports=ports,  # SymbolPorts in memory (the protocol, structurally)
        bootstrap=SymbolBootstrap(symbol=symbol, recent_hashes=frozenset(), open_intents=(),
                                  control=ControlRecord(symbol=symbol)),
    )
    trader.on_position_sync(PositionSync(position=position or Position.flat(symbol), seq=0))
    ref = SymbolActor.start(trader)
    try:
        yield SymbolHarness(ref, trader, ports, timeframe)
    finally:
        if ref.is_alive():
            ref.stop(timeout=ASK_TIMEOUT_S)
