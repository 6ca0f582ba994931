"""Messages and domain values: frozen pydantic models passed between actors.

Every message an actor sends or receives is defined here (a module per subject: orders, records, control, ...),
derives from messages._base.Message (frozen, validated, no unknown fields) and is exported from this package.
Fields that hold pykka ActorRefs or futures are typed Any.

Glossary: the order-like types (what it is -- who owns it -- where it lives)
    OrderIntent       one signal turned into an order to place: hash, client order id, side, amount, price -- made by
                      the SymbolActor (SymbolTrader), carried in ClaimIntent and PlaceOrder(s) -- messages/orders.py
    IntentRecord      a stored intent read back with its order's state (status, filled, exchange id, sends) --
                      produced by the PersistenceActor (persistence/store.py) for LoadSymbol, LoadOpenIntents and
                      FindIntents; the portfolio, gateway and symbol rebuild their state from it -- messages/records.py
    Tracked           the gateway's working record of one of our orders until its final state is proven (fills
                      booked, sends, processBefore, lookups) -- OrderGateway.orders, by client order id, inside the
                      ExchangeGatewayActor -- actors/gateway.py
    TrackedOrder      the symbol's record of one of its orders that is not final yet (the L5 pending check, flatten,
                      status) -- SymbolTrader.orders, by client order id, inside the SymbolActor -- actors/symbol.py
    PendingOrderView  a read-only copy of a TrackedOrder for status output -- made by SymbolTrader.status() in
                      SymbolStatus.pending_orders -- messages/control.py
    ProtectionView    a position's protective order (stop-loss, take-profit: an OrderIntent of kind STOP_LOSS or
                      TAKE_PROFIT, tracked like any other) for status output -- SymbolStatus.protection
    ExchangeOrder     an order resting on the exchange, ours or not, as the last reconciliation saw it -- made by
                      the gateway, kept per symbol by the portfolio, pushed to symbols in OpenOrdersSync --
                      messages/reconciliation.py
    OrderUpdate       what became of an order (state, fills, reason): the gateway's report, told to persistence,
                      then to the portfolio, which routes it to the symbol -- messages/orders.py
    Intent (peewee)   the `intent` table: one row per claimed intent, unique by hash and by client order id, written
                      before the send -- written only by the PersistenceActor -- persistence/models.py
    Order (peewee)    the `order` table: one row per exchange order, ours (with its intent hash) or EXTERNAL --
                      written only by the PersistenceActor -- persistence/models.py

Who handles what (A = ask: the sender waits for the answer, with a time-out; T = tell: no answer;
T+reply = a tell that carries a pykka future the sender waits on, so that claims arriving together share a commit)
    SymbolActor (actors/symbol.py; one per symbol; the logic is SymbolTrader)
        Candles T (portfolio, from market data), Signal T (tests, benchmarks), OrderUpdate T, PositionSync T,
        OpenOrdersSync T, OrderBlocked T, ExchangeMismatch T, NotReady T (all from the portfolio),
        Pause/Resume/Halt/Unhalt T (the portfolio, after it stored the flag), Tick("purge") T (portfolio),
        Flatten A, Resolve A, GetStatus A (TradingSystem), Ping A
    PortfolioActor (actors/portfolio.py; the logic is Portfolio.handle)
        ClaimIntent T+reply (an entry's claim, from a symbol: risk reserved, then passed on to persistence),
        RiskRelease T, ClaimGivenUp T (symbol), SymbolDied T (a dying symbol actor), Candles T (market data),
        OrderUpdate T, PositionsSnapshot T, PositionsUnavailable T, ReconciliationReport T, OrderBlocked T,
        ExchangeMismatch T (gateway), RestartSymbol T (its own back-off timer),
        Tick("sync"|"reconcile"|"reconcile-retry"|"purge"|"archive") T (its own timers),
        ConnectMarketData T (the market-data actor's first message), Pause/Resume/Halt/Unhalt A, GetStatus A,
        GetSymbolActors A (TradingSystem), RiskRequest A (tests; when running, it rides inside ClaimIntent.risk),
        Ping A
    PersistenceActor (actors/persistence.py)
        ClaimIntent T+reply (exits from a symbol, entries from the portfolio), RecordSends T+reply (gateway),
        Event T (everyone), OrderUpdate T (gateway), AbandonIntent T (symbol, portfolio), ArchiveHistory T,
        PurgeIntents T (portfolio; its count is returned but unread), Flush T, Tick("retry-writes") T (itself),
        LoadSymbol A, LoadOpenIntents A, SetControl A (portfolio), FindIntents A (gateway), QueryPnl A
        (TradingSystem), QueryEvents A (tests, benchmarks), ClaimIntent A without reply (tests), Ping A
    ExchangeGatewayActor (actors/gateway.py; the logic is OrderGateway)
        PlaceOrders T (persistence, the intents one commit claimed), PlaceOrder T (tests), SyncPositions T,
        Reconcile T (portfolio), CancelOrder T (a symbol's flatten cancelling its resting limit exit; a symbol
        cancelling the protective orders of a closed position), ResizeOrder T (a symbol resizing its stop-loss or
        take-profit to the position), Flush T,
        Tick("poll") T (itself), ConnectGateway T (the portfolio's first message), CancelOrders A, Resolve A,
        GetInFlight A (TradingSystem), Ping A (also a barrier: orders gathered before it are sent first)
    MarketDataActor (actors/market_data.py)
        Tick T (its own timer: "candle-close"; "candles" polls every symbol), SendHistory T (portfolio, after a
        restart), GetMarketDataStats A (tests), Ping A
    Replies "up" are tells: the gateway reports to persistence and the portfolio; the portfolio routes to symbols.
"""

from messages._base import Message, now_ms
from messages.control import (
    CancelOrders,
    ControlCode,
    ControlReply,
    Flatten,
    GetStatus,
    Halt,
    Pause,
    PendingOrderView,
    PortfolioStatus,
    ProtectionView,
    Resolve,
    Resume,
    Shutdown,
    SymbolState,
    SymbolStatus,
    Unhalt,
)
from messages.events import Event, EventKind, Reason
from messages.lifecycle import Candles, Ping, RestartSymbol, SendHistory, SymbolDied, Tick
from messages.market import TIMEFRAME_MS, Candle, MarketSpec, timeframe_ms
from messages.money import (
    AccountLogEntries,
    AccountMargin,
    FundingPayment,
    GetAccountLogCursor,
    QueryMoney,
    TradeFee,
)
from messages.orders import (
    FINAL_STATES,
    TRANSITIONS,
    UNRESOLVED_STATES,
    CancelOrder,
    Fill,
    OrderIntent,
    OrderState,
    OrderUpdate,
    PlaceOrder,
    PlaceOrders,
    ResizeOrder,
    Side,
    client_order_id_for,
    intent_hash,
    is_advance,
)
from messages.positions import (
    Position,
    PositionSide,
    PositionsSnapshot,
    PositionsUnavailable,
    PositionSync,
    SyncPositions,
)
from messages.reconciliation import (
    ExchangeMismatch,
    ExchangeOrder,
    GetInFlight,
    NotReady,
    OpenOrdersSync,
    OrderBlocked,
    Reconcile,
    ReconciliationReport,
)
from messages.records import (
    AbandonIntent,
    ArchiveHistory,
    ClaimIntent,
    ClaimResult,
    ControlRecord,
    FindIntents,
    Flush,
    Handover,
    IntentRecord,
    LoadOpenIntents,
    LoadSymbol,
    PurgeIntents,
    QueryEvents,
    QueryPnl,
    RecordSends,
    SetControl,
    SymbolBootstrap,
)
from messages.risk import ClaimGivenUp, RiskDecision, RiskRelease, RiskRequest
from messages.signals import Signal, SignalKind
from messages.wiring import ConnectGateway, ConnectMarketData, GetMarketDataStats, GetSymbolActors

__all__ = [
    "AbandonIntent",
    "AccountLogEntries",
    "AccountMargin",
    "FundingPayment",
    "GetAccountLogCursor",
    "QueryMoney",
    "TradeFee",
    "ArchiveHistory",
    "CancelOrder",
    "ResizeOrder",
    "CancelOrders",
    "Candle",
    "Candles",
    "ClaimGivenUp",
    "ClaimIntent",
    "ClaimResult",
    "ConnectGateway",
    "ConnectMarketData",
    "ControlRecord",
    "ControlCode",
    "ControlReply",
    "Event",
    "EventKind",
    "ExchangeMismatch",
    "ExchangeOrder",
    "FINAL_STATES",
    "Fill",
    "FindIntents",
    "Flatten",
    "Flush",
    "GetInFlight",
    "GetMarketDataStats",
    "GetStatus",
    "GetSymbolActors",
    "Halt",
    "Handover",
    "IntentRecord",
    "LoadOpenIntents",
    "LoadSymbol",
    "MarketSpec",
    "Message",
    "NotReady",
    "OpenOrdersSync",
    "OrderBlocked",
    "OrderIntent",
    "OrderState",
    "OrderUpdate",
    "Pause",
    "PendingOrderView",
    "ProtectionView",
    "Ping",
    "PlaceOrder",
    "PlaceOrders",
    "PortfolioStatus",
    "Position",
    "PositionSide",
    "PositionSync",
    "PositionsSnapshot",
    "PositionsUnavailable",
    "PurgeIntents",
    "QueryEvents",
    "QueryPnl",
    "Reason",
    "Reconcile",
    "ReconciliationReport",
    "RecordSends",
    "Resolve",
    "RestartSymbol",
    "Resume",
    "RiskDecision",
    "RiskRelease",
    "RiskRequest",
    "SendHistory",
    "SetControl",
    "Shutdown",
    "Side",
    "Signal",
    "SignalKind",
    "SymbolBootstrap",
    "SymbolDied",
    "SymbolState",
    "SymbolStatus",
    "SyncPositions",
    "TIMEFRAME_MS",
    "TRANSITIONS",
    "Tick",
    "UNRESOLVED_STATES",
    "Unhalt",
    "client_order_id_for",
    "intent_hash",
    "is_advance",
    "now_ms",
    "timeframe_ms",
]
