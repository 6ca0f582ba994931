"""Unit tests of the simulator's plain classes: prices, clock, budgets, auth, faults, positions and the engine."""

from __future__ import annotations

from decimal import Decimal

import ccxt
import pytest

from simulator.auth import Authenticator, endpoint_path, generate_credentials, sign
from simulator.clock import RealClock, SteppedClock
from simulator.config import FaultConfig, ScheduledFault
from simulator.engine import Exchange
from simulator.faults import FaultInjector
from simulator.instruments import INSTRUMENTS, resolve_symbol
from simulator.orders import Position
from simulator.prices import MINUTE_MS, MarketData
from simulator.ratelimit import RateLimiter, TokenBucket, derivatives_cost

START = 1_780_000_000_000


def make_exchange(seed: int = 1, balance: str = "100000") -> tuple[Exchange, SteppedClock]:
    """A stepped-clock exchange over all markets."""
    clock = SteppedClock(START)
    market = MarketData(INSTRUMENTS, seed, START)
    return Exchange(market, clock, INSTRUMENTS, Decimal(balance), seed=seed), clock


# -- instruments ---------------------------------------------------------------------------
def test_instruments_cover_required_markets_with_kraken_precision() -> None:
    for symbol in ("PF_XBTUSD", "PF_ETHUSD", "PF_LTCUSD", "PF_DOGEUSD", "PF_PEPEUSD", "PF_FTMUSD", "PF_SOLUSD",
                   "PF_XRPUSD"):
        assert symbol in INSTRUMENTS
    assert INSTRUMENTS["PF_XBTUSD"].tick_size == Decimal("1")
    assert INSTRUMENTS["PF_XBTUSD"].size_step == Decimal("0.0001")
    assert INSTRUMENTS["PF_PEPEUSD"].size_step == Decimal("1000")
    assert INSTRUMENTS["PF_PEPEUSD"].is_valid_size(Decimal("98000"))
    assert not INSTRUMENTS["PF_PEPEUSD"].is_valid_size(Decimal("98123"))
    assert not INSTRUMENTS["PF_LTCUSD"].is_valid_price(Decimal("55.001"))
    assert resolve_symbol("BTC/USD:USD") == "PF_XBTUSD"
    assert resolve_symbol("pf_ethusd") == "PF_ETHUSD"
    assert resolve_symbol("BTC/USD:BTC") is None


def test_margin_tiers_rise_with_position_value() -> None:
    xbt = INSTRUMENTS["PF_XBTUSD"]
    assert xbt.margin_rates(Decimal(1000)) == (Decimal("0.02"), Decimal("0.01"))
    assert xbt.margin_rates(Decimal(600_000)) == (Decimal("0.04"), Decimal("0.02"))


# -- prices ----------------------------------------------------------------------------------
def _run(seed: int) -> tuple[list[str], list[dict[str, object]]]:
    """Quotes along an hour and the candles of a seeded market."""
    market = MarketData(INSTRUMENTS, seed, START, history_days=1)
    quotes = []
    for minute in range(1, 61):
        for _ in market.advance_to(START + minute * MINUTE_MS):
            pass
        q = market.quote("PF_XBTUSD")
        quotes.append(f"{q.bid}/{q.ask}/{q.last}/{q.mark}")
    candles, _ = market.candles("PF_ETHUSD", "trade", "5m", START - 6 * 3_600_000, START + 3_600_000)
    return quotes, candles


def test_same_seed_gives_same_prices_and_candles() -> None:
    assert _run(5) == _run(5)


def test_different_seed_gives_different_prices() -> None:
    assert _run(5)[0] != _run(6)[0]


def test_candles_are_built_from_the_path() -> None:
    market = MarketData(INSTRUMENTS, 3, START, history_days=1)
    for _ in market.advance_to(START + 3 * 3_600_000):
        pass
    minutes, _ = market.candles("PF_XBTUSD", "trade", "1m", START - 3_600_000, START + 3 * 3_600_000)
    hours, _ = market.candles("PF_XBTUSD", "trade", "1h", START - 3_600_000, START + 3 * 3_600_000)
    assert all(b["time"] - a["time"] == MINUTE_MS for a, b in zip(minutes, minutes[1:], strict=False))  # type: ignore[operator]
    for hour in hours:
        inside = [m for m in minutes if hour["time"] <= m["time"] < hour["time"] + 3_600_000]  # type: ignore[operator]
        assert inside, hour
        assert Decimal(hour["open"]) == Decimal(inside[0]["open"])  # type: ignore[arg-type]
        assert Decimal(hour["close"]) == Decimal(inside[-1]["close"])  # type: ignore[arg-type]
        assert Decimal(hour["high"]) == max(Decimal(m["high"]) for m in inside)  # type: ignore[arg-type]
        assert Decimal(hour["low"]) == min(Decimal(m["low"]) for m in inside)  # type: ignore[arg-type]
    for c in minutes:
        o, h, low, cl = (Decimal(c[k]) for k in ("open", "high", "low", "close"))  # type: ignore[arg-type]
        assert low <= min(o, cl) <= max(o, cl) <= h


def test_quote_has_spread_on_tick_grid() -> None:
    market = MarketData(INSTRUMENTS, 1, START, spread=0.001)
    for symbol, inst in INSTRUMENTS.items():
        q = market.quote(symbol)
        assert q.bid < q.ask
        assert q.bid % inst.tick_size == 0 and q.ask % inst.tick_size == 0
        assert q.bid <= q.index <= q.ask


def test_set_price_moves_the_walk() -> None:
    market = MarketData(INSTRUMENTS, 1, START)
    market.paths["PF_ETHUSD"].set_fair(1234.5, START)
    q = market.quote("PF_ETHUSD")
    assert q.bid <= Decimal("1234.5") <= q.ask


# -- clock, budgets, auth, faults --------------------------------------------------------------
def test_stepped_clock_moves_only_when_advanced() -> None:
    clock = SteppedClock(1000)
    assert clock.now_ms() == 1000
    assert clock.advance(500) == 1500
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_real_clock_runs_accelerated() -> None:
    clock = RealClock(0, speed=1000)
    first = clock.now_ms()
    while clock.now_ms() - first < 50:
        pass
    with pytest.raises(RuntimeError):
        clock.advance(1)


def test_token_bucket_refills_continuously() -> None:
    bucket = TokenBucket(500, 10_000, 0)
    assert all(bucket.spend(10, 0) for _ in range(50))
    assert not bucket.spend(10, 0)
    assert bucket.spend(10, 200)  # 200 ms refill 10 units
    assert not bucket.spend(10, 200)


def test_costs_follow_kraken_table() -> None:
    assert derivatives_cost("sendorder", {}) == 10
    assert derivatives_cost("batchorder", {}, 5) == 14
    assert derivatives_cost("fills", {}) == 2
    assert derivatives_cost("fills", {"lastFillTime": "2024-01-01T00:00:00.000Z"}) == 25
    assert derivatives_cost("cancelallorders", {}) == 25
    limiter = RateLimiter(0, enabled=False)
    assert all(limiter.allow("derivatives", 100, 0) for _ in range(100))


def test_signature_matches_ccxt() -> None:
    key, secret = generate_credentials()
    exchange = ccxt.krakenfutures({"apiKey": key, "secret": secret})
    signed = exchange.sign("sendorder", ["private"], "POST", {"symbol": "PF_XBTUSD", "size": "1"})
    query = signed["url"].split("?", 1)[1]
    assert signed["headers"]["Authent"] == sign(secret, "/api/v3/sendorder", query)
    auth = Authenticator(key, secret)
    assert auth.check(signed["headers"], "/derivatives/api/v3/sendorder", [query]) is None
    assert auth.check(signed["headers"], "/derivatives/api/v3/sendorder", ["size=2"]) == "authenticationError"
    assert endpoint_path("/api/history/v2/orders") == "/api/history/v2/orders"
    wrong = Authenticator(key, generate_credentials()[1])
    assert wrong.check(signed["headers"], "/derivatives/api/v3/sendorder", [query]) == "authenticationError"


def test_nonce_is_signed_and_not_reusable() -> None:
    key, secret = generate_credentials()
    auth = Authenticator(key, secret)
    headers = {"APIKey": key, "Nonce": "17", "Authent": sign(secret, "/api/v3/accounts", "", "17")}
    assert auth.check(headers, "/derivatives/api/v3/accounts", [""]) is None
    assert auth.check(headers, "/derivatives/api/v3/accounts", [""]) == "nonceDuplicate"


def test_scheduled_faults_hit_exactly_the_next_n_requests() -> None:
    faults = FaultInjector(seed=1)
    faults.schedule(ScheduledFault(kind="accept_then_drop", endpoint="sendorder", count=2))
    assert faults.decide("accounts").kind is None
    assert [faults.decide("sendorder").kind for _ in range(3)] == ["accept_then_drop", "accept_then_drop", None]


def test_probabilistic_faults_are_seeded_and_respect_endpoints() -> None:
    def run() -> list[str | None]:
        f = FaultInjector(FaultConfig(unavailable=0.3, accept_then_drop=0.5), seed=9)
        return [f.decide(e).kind for e in ["sendorder", "accounts"] * 50]

    kinds = run()
    assert kinds == run()
    assert "unavailable" in kinds and "accept_then_drop" in kinds
    assert all(k != "accept_then_drop"
               for k, e in zip(kinds, ["sendorder", "accounts"] * 50, strict=True) if e == "accounts")


# -- positions and the engine -------------------------------------------------------------------
def test_position_netting_average_price_and_realized_pnl() -> None:
    pos = Position("PF_XBTUSD")
    assert pos.apply(Decimal("2"), Decimal("100"), 1) == 0
    assert pos.apply(Decimal("1"), Decimal("130"), 2) == 0
    assert pos.avg_price == Decimal("110")
    assert pos.apply(Decimal("-1"), Decimal("120"), 3) == Decimal("10")
    assert pos.apply(Decimal("-4"), Decimal("90"), 4) == Decimal("-40")  # closes 2 @ 110, opens short 2 @ 90
    assert pos.size == Decimal("-2") and pos.avg_price == Decimal("90")
    assert pos.unrealized(Decimal("80")) == Decimal("20")


def _order(ex: Exchange, **params: str) -> dict[str, object]:
    """Send one order with defaults for a BTC buy."""
    base = {"symbol": "PF_XBTUSD", "side": "buy", "size": "0.01", "orderType": "mkt"}
    return ex.send_order({**base, **params})


def test_rejection_statuses() -> None:
    ex, _ = make_exchange()
    q = ex.market.quote("PF_XBTUSD")
    assert _order(ex, size="0.00001")["status"] == "invalidSize"
    assert _order(ex, size="abc")["status"] == "invalidSize"
    assert _order(ex, orderType="lmt", limitPrice="100.5")["status"] == "invalidPrice"
    assert _order(ex, orderType="lmt")["status"] == "invalidPrice"
    assert _order(ex, orderType="foo")["status"] == "invalidOrderType"
    assert _order(ex, side="up")["status"] == "invalidSide"
    assert _order(ex, orderType="post", limitPrice=str(q.ask))["status"] == "postWouldExecute"
    assert _order(ex, orderType="ioc", limitPrice=str(q.bid - 100))["status"] == "iocWouldNotExecute"
    assert _order(ex, reduceOnly="true")["status"] == "wouldNotReducePosition"
    assert _order(ex, size="100")["status"] == "insufficientAvailableFunds"
    assert _order(ex, cliOrdId="x" * 101)["status"] == "clientOrderIdTooLong"
    assert _order(ex, cliOrdId="a", orderType="lmt", limitPrice=str(q.bid - 100))["status"] == "placed"
    assert _order(ex, cliOrdId="a")["status"] == "clientOrderIdAlreadyExist"
    ex.set_suspended("PF_XBTUSD", True)
    assert _order(ex)["status"] == "marketSuspended"
    assert sum(1 for o in ex.orders.values() if o.state == "rejected") == 13
    assert ex.position("PF_XBTUSD") == 0


def test_market_order_fills_at_ask_with_taker_fee() -> None:
    ex, _ = make_exchange()
    status = _order(ex, size="0.05")  # the best level's size
    q = ex.market.quote("PF_XBTUSD")
    fill = ex.fills[-1]
    assert status["status"] == "placed"
    assert fill.price == q.ask and fill.fill_type == "taker"
    assert ex.balance == Decimal("100000") - Decimal("0.05") * q.ask * Decimal("0.0005")


def test_resting_limit_fills_when_path_crosses_as_maker() -> None:
    ex, _ = make_exchange()
    q = ex.market.quote("PF_XBTUSD")
    limit = q.bid - 500
    status = _order(ex, orderType="lmt", limitPrice=str(limit))
    assert status["orderEvents"][0]["type"] == "PLACE"  # type: ignore[index]
    assert len(ex.open_orders()) == 1
    ex.set_price("PF_XBTUSD", float(limit) - 100)
    assert not ex.open_orders()
    assert ex.fills[-1].price == limit and ex.fills[-1].fill_type == "maker"
    assert ex.balance == Decimal("100000") - Decimal("0.01") * limit * Decimal("0.0002")


def test_reduce_only_is_clamped_to_the_position() -> None:
    ex, _ = make_exchange()
    _order(ex, size="0.02")
    status = _order(ex, side="sell", size="0.05", reduceOnly="true")
    assert status["orderEvents"][0]["takerReducedQuantity"] == pytest.approx(0.03)  # type: ignore[index]
    assert ex.position("PF_XBTUSD") == 0


def test_stop_triggers_on_mark_and_take_profit_on_last() -> None:
    ex, _ = make_exchange()
    _order(ex, size="0.02")
    fair = ex.market.paths["PF_XBTUSD"].fair
    stop = Decimal(int(fair * 0.95))
    tp = Decimal(int(fair * 1.05))
    ex.send_order({"symbol": "PF_XBTUSD", "side": "sell", "size": "0.01", "orderType": "stp",
                   "stopPrice": str(stop), "triggerSignal": "mark", "reduceOnly": "true"})
    ex.send_order({"symbol": "PF_XBTUSD", "side": "sell", "size": "0.01", "orderType": "take_profit",
                   "stopPrice": str(tp), "triggerSignal": "last", "reduceOnly": "true"})
    assert len(ex.open_orders()) == 2
    ex.set_price("PF_XBTUSD", fair, mark_premium=-0.06)  # only the mark falls through the stop
    assert ex.position("PF_XBTUSD") == Decimal("0.01")
    ex.set_price("PF_XBTUSD", fair * 1.06)
    assert ex.position("PF_XBTUSD") == 0
    assert not ex.open_orders()


def test_orders_status_shows_closed_orders_for_five_seconds() -> None:
    ex, clock = make_exchange()
    _order(ex, cliOrdId="gone-soon")
    assert [o.cli_ord_id for o in ex.orders_status([], ["gone-soon"])] == ["gone-soon"]
    clock.advance(5_001)
    assert ex.orders_status([], ["gone-soon"]) == []


def test_dead_man_switch_cancels_everything() -> None:
    ex, clock = make_exchange()
    q = ex.market.quote("PF_XBTUSD")
    _order(ex, orderType="lmt", limitPrice=str(q.bid - 1000))
    ex.cancel_all_after(60)
    clock.advance(59_000)
    assert len(ex.open_orders()) == 1
    clock.advance(2_000)
    assert ex.open_orders() == []
    assert ex.order_history[-1].name == "OrderCancelled"


def test_available_margin_counts_positions_and_orders() -> None:
    ex, _ = make_exchange(balance="1000")
    q = ex.market.quote("PF_ETHUSD")
    # 2% initial margin: 1000 USD carries about 50000 USD of ETH.
    ok = ex.send_order({"symbol": "PF_ETHUSD", "side": "buy", "size": "5", "orderType": "lmt",
                        "limitPrice": str(q.bid - Decimal("100"))})
    assert ok["status"] == "placed"
    too_much = ex.send_order({"symbol": "PF_ETHUSD", "side": "buy", "size": "15", "orderType": "mkt"})
    assert too_much["status"] == "insufficientAvailableFunds"
    flex = ex.accounts()["flex"]
    assert Decimal(flex["initialMarginWithOrders"]) > 0  # type: ignore[index]
    assert Decimal(flex["availableMargin"]) < Decimal(1000)  # type: ignore[index]


def test_client_order_id_scope_open_only_blocks_working_orders() -> None:
    clock = SteppedClock(START)
    ex = Exchange(MarketData(INSTRUMENTS, 1, START), clock, INSTRUMENTS, Decimal(100000), cli_ord_id_scope="open")
    q = ex.market.quote("PF_XBTUSD")
    assert _order(ex, cliOrdId="r", orderType="lmt", limitPrice=str(q.bid - 100))["status"] == "placed"
    assert _order(ex, cliOrdId="r")["status"] == "clientOrderIdAlreadyExist"
    assert _order(ex, cliOrdId="m")["status"] == "placed"  # filled at once, so no longer open
    assert _order(ex, cliOrdId="m")["status"] == "placed"
    # orders/status by a reused cliOrdId answers every order inside the 5 s window
    assert [o.cli_ord_id for o in ex.orders_status([], ["m"])] == ["m", "m"]


def test_client_order_id_scope_history_and_none() -> None:
    clock = SteppedClock(START)
    strict = Exchange(MarketData(INSTRUMENTS, 1, START), clock, INSTRUMENTS, Decimal(100000),
                      cli_ord_id_scope="history")
    assert _order(strict, cliOrdId="m")["status"] == "placed"
    assert _order(strict, cliOrdId="m")["status"] == "clientOrderIdAlreadyExist"
    none = Exchange(MarketData(INSTRUMENTS, 1, START), clock, INSTRUMENTS, Decimal(100000), cli_ord_id_scope="none")
    q = none.market.quote("PF_XBTUSD")
    first = _order(none, cliOrdId="r", orderType="lmt", limitPrice=str(q.bid - 100))
    second = _order(none, cliOrdId="r", orderType="lmt", limitPrice=str(q.bid - 200))
    assert first["status"] == second["status"] == "placed" and len(none.open_orders()) == 2
    # cancel by cliOrdId acts on the oldest open order that carries it
    assert none.cancel_order({"cliOrdId": "r"})["order_id"] == first["order_id"]
    assert [o.order_id for o in none.open_orders()] == [second["order_id"]]
