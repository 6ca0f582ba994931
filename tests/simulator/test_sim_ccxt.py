"""The unchanged ccxt.krakenfutures client trading against the simulator (only base URL and keys changed)."""

from __future__ import annotations

import ccxt
import pytest

from simulator import SimulatorHandle, start_simulator

BTC = "BTC/USD:USD"
ETH = "ETH/USD:USD"
TAKER = 0.0005
MAKER = 0.0002


def quote(sim: SimulatorHandle, symbol: str) -> dict[str, float]:
    """Current bid/ask/last/mark as floats."""
    q = sim.admin.quote(symbol)
    return {k: float(q[k]) for k in ("bid", "ask", "last", "mark")}  # type: ignore[arg-type]


def usd(client: ccxt.krakenfutures) -> dict[str, float]:
    """USD total/free of the flex account."""
    balance = client.fetch_balance()
    return {"total": balance["USD"]["total"], "free": balance["USD"]["free"]}


def publish(sim: SimulatorHandle) -> None:
    """Step the clock past the order history's publication lag."""
    sim.admin.step(ms=sim.config.history_lag_ms + 1)


def test_load_markets_has_kraken_metadata(client: ccxt.krakenfutures) -> None:
    markets = client.markets
    for symbol in (BTC, ETH, "LTC/USD:USD", "DOGE/USD:USD", "PEPE/USD:USD", "FTM/USD:USD", "SOL/USD:USD",
                   "XRP/USD:USD"):
        assert markets[symbol]["swap"] and markets[symbol]["linear"], symbol
    assert markets[BTC]["id"] == "PF_XBTUSD"
    assert markets[BTC]["precision"] == {"amount": 0.0001, "price": 1.0}
    assert markets["PEPE/USD:USD"]["precision"]["amount"] == 1000
    assert markets["DOGE/USD:USD"]["precision"]["price"] == 0.000001


def test_fetch_ticker_and_tickers_follow_prices(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    ticker = client.fetch_ticker(BTC)
    assert ticker["bid"] < ticker["ask"]
    assert ticker["bid"] <= ticker["last"] <= ticker["ask"]
    tickers = client.fetch_tickers()
    assert set(tickers) == set(client.markets)
    sim.admin.set_price(BTC, 50_000)
    moved = client.fetch_ticker(BTC)
    assert moved["bid"] <= 50_000 <= moved["ask"]
    assert client.fetch_order_book(BTC)["bids"][0][0] == moved["bid"]


def test_fetch_ohlcv_trade_mark_and_index(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    now = sim.admin.now()["now"]
    since = (now - 30 * 60_000) // 60_000 * 60_000
    candles = client.fetch_ohlcv(BTC, "1m", since=since, limit=20)
    assert len(candles) == 20
    assert candles[0][0] == since
    assert all(b[0] - a[0] == 60_000 for a, b in zip(candles, candles[1:], strict=False))
    assert all(c[3] <= min(c[1], c[4]) <= max(c[1], c[4]) <= c[2] for c in candles)
    mark = client.fetch_ohlcv(BTC, "1m", since=since, limit=20, params={"price": "mark"})
    index = client.fetch_ohlcv(BTC, "1m", since=since, limit=20, params={"price": "index"})
    assert [c[0] for c in mark] == [c[0] for c in candles] == [c[0] for c in index]
    assert [c[4] for c in mark] != [c[4] for c in candles]
    later = sim.admin.step(seconds=180)["now"]
    # ccxt caps `to` at the wall clock; a clock ahead of it needs an explicit `to` (seconds).
    latest = client.fetch_ohlcv(BTC, "1m", since=since, params={"to": later // 1000})
    assert latest[-1][0] == later // 60_000 * 60_000
    assert latest[-1][0] >= now // 60_000 * 60_000 + 180_000


def test_fetch_balance_after_market_order(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    assert usd(client) == {"total": 100_000.0, "free": 100_000.0}
    ask = quote(sim, BTC)["ask"]
    order = client.create_order(BTC, "market", "buy", 0.04)  # within the best level (0.05 BTC)
    assert order["status"] == "closed" and order["filled"] == 0.04 and order["average"] == ask
    after = usd(client)
    assert after["total"] == pytest.approx(100_000 - 0.04 * ask * TAKER)
    assert after["free"] < after["total"] - 0.04 * ask * 0.019  # 2% initial margin is in use
    [position] = client.fetch_positions()
    assert position["symbol"] == BTC and position["side"] == "long" and position["contracts"] == 0.04
    assert position["entryPrice"] == ask


def test_limit_order_rests_then_fills_as_maker(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    bid = quote(sim, ETH)["bid"]
    limit = round(bid - 50, 1)
    order = client.create_order(ETH, "limit", "buy", 0.4, limit)  # within one tick's fill (0.45 ETH)
    assert order["status"] == "open" and order["price"] is None or order["price"] == limit
    [open_order] = client.fetch_open_orders(ETH)
    assert open_order["id"] == order["id"] and open_order["remaining"] == 0.4
    assert client.fetch_positions() == []
    sim.admin.set_price(ETH, limit - 20)
    assert client.fetch_open_orders() == []
    [trade] = client.fetch_my_trades(ETH)
    assert trade["order"] == order["id"] and trade["price"] == limit and trade["amount"] == 0.4
    assert trade["takerOrMaker"] == "maker"
    assert usd(client)["total"] == pytest.approx(100_000 - 0.4 * limit * MAKER)
    publish(sim)
    closed = client.fetch_closed_orders(ETH)
    assert any(o["id"] == order["id"] and o["status"] == "closed" for o in closed)


def test_post_only_order(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    q = quote(sim, BTC)
    with pytest.raises(ccxt.OrderImmediatelyFillable):
        client.create_order(BTC, "limit", "buy", 0.01, q["ask"] + 10, {"postOnly": True})
    order = client.create_order(BTC, "limit", "buy", 0.01, q["bid"] - 10, {"postOnly": True})
    assert order["postOnly"] is True and order["status"] == "open"
    assert len(client.fetch_open_orders()) == 1


def test_ioc_order(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    q = quote(sim, BTC)
    with pytest.raises(ccxt.OrderNotFillable):
        client.create_order(BTC, "limit", "buy", 0.01, q["bid"] - 100, {"timeInForce": "ioc"})
    order = client.create_order(BTC, "limit", "buy", 0.01, q["ask"] + 100, {"timeInForce": "ioc"})
    assert order["status"] == "closed" and order["filled"] == 0.01 and order["average"] == q["ask"]
    assert client.fetch_open_orders() == []


def test_stop_loss_order_triggers_and_closes_position(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    client.create_order(BTC, "market", "buy", 0.02)
    sim.admin.step(seconds=1)  # distinct fill times keep ccxt's time-sorted trades in order
    entry = client.fetch_positions()[0]["entryPrice"]
    stop = int(entry * 0.97)
    order = client.create_order(BTC, "market", "sell", 0.02, None, {"stopLossPrice": stop})
    assert order["triggerPrice"] == stop and order["reduceOnly"] is True
    [working] = client.fetch_open_orders()
    assert working["id"] == order["id"] and working["type"] == "stop"
    sim.admin.set_price(BTC, stop - 200)
    assert client.fetch_positions() == []
    assert client.fetch_open_orders() == []
    publish(sim)
    fills = client.fetch_my_trades(BTC)
    assert [f["side"] for f in fills] == ["buy", "sell"]
    realized = (fills[1]["price"] - entry) * 0.02
    fees = sum(f["price"] * 0.02 * TAKER for f in fills)
    assert usd(client)["total"] == pytest.approx(100_000 + realized - fees)
    triggers = client.fetch_closed_orders(params={"trigger": True})
    assert any(o["id"] == order["id"] for o in triggers)


def test_take_profit_order_on_mark_price(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    client.create_order(BTC, "market", "sell", 0.01)
    sim.admin.step(seconds=1)
    mark = quote(sim, BTC)["mark"]
    target = int(mark * 0.96)
    order = client.create_order(BTC, "limit", "buy", 0.01, target + 500,
                                {"takeProfitPrice": target, "triggerSignal": "mark"})
    assert order["status"] == "open"
    fair = quote(sim, BTC)["last"]
    sim.admin.set_price(BTC, fair, mark_premium=0.0)
    assert len(client.fetch_open_orders()) == 1
    sim.admin.set_price(BTC, fair * 0.95)
    assert client.fetch_positions() == []
    buy = client.fetch_my_trades(BTC)[-1]
    assert buy["side"] == "buy" and buy["price"] <= target + 500


def test_trigger_entry_order(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    ask = quote(sim, BTC)["ask"]
    client.create_order(BTC, "market", "buy", 0.01, None, {"triggerPrice": int(ask * 1.02)})
    assert client.fetch_positions() == []
    sim.admin.set_price(BTC, ask * 1.03)
    assert client.fetch_positions()[0]["contracts"] == 0.01


def test_reduce_only_orders(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    with pytest.raises(ccxt.ExchangeError, match="wouldNotReducePosition"):
        client.create_order(ETH, "market", "sell", 1, None, {"reduceOnly": True})
    client.create_order(ETH, "market", "buy", 2)
    order = client.create_order(ETH, "market", "sell", 5, None, {"reduceOnly": True})
    assert order["filled"] == 2
    assert client.fetch_positions() == []


def test_client_order_id_and_duplicate(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    bid = quote(sim, BTC)["bid"]
    order = client.create_order(BTC, "limit", "buy", 0.01, bid - 100, {"clientOrderId": "intent-123"})
    assert order["clientOrderId"] == "intent-123"
    with pytest.raises(ccxt.DuplicateOrderId):  # refused while the first order is open
        client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "intent-123"})
    with pytest.raises(ccxt.BadRequest):
        client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "x" * 101})
    client.cancel_order(order["id"])
    client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "intent-123"})  # free again
    assert client.fetch_positions()[0]["contracts"] == 0.01
    [trade] = client.fetch_my_trades()
    assert trade["info"]["cliOrdId"] == "intent-123"


def test_create_orders_batch(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    bid = quote(sim, BTC)["bid"]
    orders = client.create_orders([
        {"symbol": BTC, "type": "limit", "side": "buy", "amount": 0.01, "price": bid - 100},
        {"symbol": BTC, "type": "limit", "side": "buy", "amount": 0.02, "price": bid - 200,
         "params": {"clientOrderId": "batch-2"}},
        {"symbol": ETH, "type": "market", "side": "buy", "amount": 0.5},
    ])
    assert [o["status"] for o in orders] == ["open", "open", "closed"]
    open_orders = client.fetch_open_orders()
    assert sorted(o["amount"] for o in open_orders) == [0.01, 0.02]
    assert {o["clientOrderId"] for o in open_orders} >= {"batch-2"}
    assert client.fetch_positions()[0]["symbol"] == ETH
    cancelled = client.cancel_orders([o["id"] for o in open_orders])
    assert [o["status"] for o in cancelled] == ["canceled", "canceled"]
    assert client.fetch_open_orders() == []


def test_edit_order(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    bid = quote(sim, BTC)["bid"]
    order = client.create_order(BTC, "limit", "buy", 0.01, bid - 300)
    edited = client.edit_order(order["id"], BTC, "limit", "buy", 0.03, bid - 250)
    assert edited["id"] == order["id"]
    [working] = client.fetch_open_orders()
    assert working["amount"] == 0.03 and float(working["info"]["limitPrice"]) == bid - 250
    ask = quote(sim, BTC)["ask"]
    client.edit_order(order["id"], BTC, "limit", "buy", 0.03, ask + 50)
    assert client.fetch_open_orders() == []
    [trade] = client.fetch_my_trades()
    assert trade["info"]["fillType"] == "takerAfterEdit" and trade["price"] == ask
    with pytest.raises(ccxt.OrderNotFound):
        client.edit_order(order["id"], BTC, "limit", "buy", 0.03, bid - 250)


def test_cancel_order_and_cancel_all(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    btc_bid, eth_bid = quote(sim, BTC)["bid"], quote(sim, ETH)["bid"]
    first = client.create_order(BTC, "limit", "buy", 0.01, btc_bid - 100)
    client.create_order(BTC, "limit", "buy", 0.01, btc_bid - 200)
    client.create_order(ETH, "limit", "buy", 0.1, round(eth_bid - 10, 1))
    cancelled = client.cancel_order(first["id"])
    assert cancelled["id"] == first["id"] and cancelled["status"] == "canceled"
    with pytest.raises(ccxt.OrderNotFound):
        client.cancel_order(first["id"])
    assert len(client.fetch_open_orders()) == 2
    client.cancel_all_orders(BTC)
    assert [o["symbol"] for o in client.fetch_open_orders()] == [ETH]
    client.cancel_all_orders()
    assert client.fetch_open_orders() == []
    publish(sim)
    canceled = client.fetch_canceled_orders(BTC)
    assert first["id"] in {o["id"] for o in canceled if o["status"] == "canceled"}


def test_fetch_order_by_id_and_by_client_order_id(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    bid = quote(sim, BTC)["bid"]
    resting = client.create_order(BTC, "limit", "buy", 0.01, bid - 100, {"clientOrderId": "rest-1"})
    by_id = client.fetch_order(resting["id"])
    assert by_id["status"] == "open" and by_id["clientOrderId"] == "rest-1"
    [by_cli] = client.fetch_orders(params={"cliOrdIds": "rest-1"})
    assert by_cli["id"] == resting["id"]
    done = client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "done-1"})
    several = client.fetch_orders(params={"orderIds": [], "cliOrdIds": ["rest-1", "done-1"]})
    assert {o["id"]: o["status"] for o in several} == {resting["id"]: "open", done["id"]: "closed"}
    assert client.fetch_order(done["id"])["filled"] == 0.01
    # Pitfalls: ccxt sends a bare list as its Python repr, and fetch_order(None) sends orderIds=None.
    assert client.fetch_orders(params={"cliOrdIds": ["rest-1", "done-1"]}) == []
    with pytest.raises(ccxt.BadRequest):
        client.fetch_order(None, None, {"cliOrdIds": "rest-1"})
    sim.admin.step(seconds=6)  # Kraken keeps closed orders in orders/status for 5 seconds only
    with pytest.raises(ccxt.OrderNotFound):
        client.fetch_order(done["id"])
    assert client.fetch_order(resting["id"])["status"] == "open"


def test_positions_net_with_average_entry_and_realized_pnl() -> None:
    with start_simulator(clock="stepped", seed=7, rate_limit=False, market_fill="touch") as sim:
        client = sim.client(timeout_ms=5_000)
        client.load_markets()
        _positions_net(sim, client)


def _positions_net(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    """Netting with every market order filled at the touch (market_fill="touch"), so averages are exact."""
    p1 = client.create_order(ETH, "market", "buy", 2)["average"]
    sim.admin.set_price(ETH, p1 * 1.01)
    p2 = client.create_order(ETH, "market", "buy", 1)["average"]
    [pos] = client.fetch_positions()
    assert pos["contracts"] == 3 and pos["entryPrice"] == pytest.approx((2 * p1 + p2) / 3)
    sim.admin.set_price(ETH, p1 * 1.02)
    p3 = client.create_order(ETH, "market", "sell", 4)["average"]
    [pos] = client.fetch_positions()
    assert pos["side"] == "short" and pos["contracts"] == 1 and pos["entryPrice"] == p3
    realized = 3 * (p3 - (2 * p1 + p2) / 3)
    fees = (2 * p1 + p2 + 4 * p3) * TAKER
    assert usd(client)["total"] == pytest.approx(100_000 + realized - fees)
    assert len(client.fetch_my_trades(limit=2)) == 2


def test_closed_and_canceled_orders_history(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    market = client.create_order(BTC, "market", "buy", 0.01)
    bid = quote(sim, BTC)["bid"]
    resting = client.create_order(BTC, "limit", "buy", 0.01, bid - 500)
    client.cancel_order(resting["id"])
    assert client.fetch_canceled_orders(BTC) == []  # not published yet: the history lags
    publish(sim)
    closed = client.fetch_closed_orders(BTC)
    assert market["id"] in {o["id"] for o in closed}
    assert all(o["status"] == "closed" for o in closed)
    canceled = client.fetch_canceled_orders(BTC)
    assert resting["id"] in {o["id"] for o in canceled}
    assert market["id"] not in {o["id"] for o in canceled}
    assert len(client.fetch_closed_orders(BTC, limit=1)) <= 1


def test_wrong_secret_is_authentication_error(sim: SimulatorHandle) -> None:
    from exchange.client import make_kraken_client
    from simulator import generate_credentials

    bad = make_kraken_client(sim.base_url, sim.api_key, generate_credentials()[1])
    bad.load_markets()  # public endpoints need no keys
    with pytest.raises(ccxt.AuthenticationError):
        bad.fetch_balance()
    with pytest.raises(ccxt.AuthenticationError):
        make_kraken_client(sim.base_url, "wrong-key", sim.api_secret).fetch_open_orders()
    assert sim.admin.state()["orders"] == []


def test_suspended_market_rejects_orders(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    sim.admin.suspend(BTC)
    assert client.fetch_ticker(BTC)["info"]["suspended"] is True
    with pytest.raises(ccxt.ExchangeNotAvailable):
        client.create_order(BTC, "market", "buy", 0.01)
    client.create_order(ETH, "market", "buy", 0.1)
    sim.admin.suspend(BTC, False)
    client.create_order(BTC, "market", "buy", 0.01)
    assert {p["symbol"] for p in client.fetch_positions()} == {BTC, ETH}


def test_insufficient_funds(client: ccxt.krakenfutures) -> None:
    with pytest.raises(ccxt.InsufficientFunds):
        client.create_order(BTC, "market", "buy", 100)


def test_trading_fees(client: ccxt.krakenfutures) -> None:
    fees = client.fetch_trading_fees()
    assert fees[BTC]["maker"] == 0.0002 and fees[BTC]["taker"] == 0.0005


def test_state_dump_records_every_order(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    bid = quote(sim, BTC)["bid"]
    client.create_order(BTC, "limit", "buy", 0.01, bid - 100, {"clientOrderId": "d-0"})
    client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "d-1"})
    with pytest.raises(ccxt.DuplicateOrderId):
        client.create_order(BTC, "market", "sell", 0.02, None, {"clientOrderId": "d-0"})
    state = sim.admin.state()
    orders = state["orders"]
    assert [(o["cliOrdId"], o["status"], o["side"], o["size"]) for o in orders] == [
        ("d-0", "placed", "buy", "0.01"),
        ("d-1", "placed", "buy", "0.01"),
        ("d-0", "clientOrderIdAlreadyExist", "sell", "0.02"),
    ]
    assert all(o["symbol"] == "PF_XBTUSD" and o["reduceOnly"] is False and o["time"] for o in orders)
    assert len(state["fills"]) == 1 and state["positions"][0]["size"] == "0.01"
    assert float(state["balances"]["USD"]) < 100_000
    assert [r["endpoint"] for r in state["requests"] if r["endpoint"] == "sendorder"] == ["sendorder"] * 3
    assert [(r["cliOrdId"], r["status"]) for r in state["order_requests"]] == [
        ("d-0", "placed"), ("d-1", "placed"), ("d-0", "clientOrderIdAlreadyExist")]


def test_cancel_by_client_order_id(sim: SimulatorHandle, client: ccxt.krakenfutures) -> None:
    bid = quote(sim, BTC)["bid"]
    for cid in ("c-1", "c-2", "c-3"):
        client.create_order(BTC, "limit", "buy", 0.01, bid - 100, {"clientOrderId": cid})
    # Pitfall: cancel_order(None, ...) sends order_id=None, which names no order.
    with pytest.raises(ccxt.OrderNotFound):
        client.cancel_order(None, BTC, {"cliOrdId": "c-1"})
    assert client.privatePostCancelorder({"cliOrdId": "c-1"})["cancelStatus"]["status"] == "cancelled"
    cancelled = client.cancel_orders([], BTC, {"clientOrderIds": ["c-2", "c-3"]})
    assert [o["status"] for o in cancelled] == ["canceled", "canceled"]
    assert client.fetch_open_orders() == []
