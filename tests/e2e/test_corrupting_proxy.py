"""The corrupting proxy: the real ccxt client through it to the simulator; each corruption reaches ccxt as meant."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import ccxt
import pytest

from simulator import SimulatorHandle, start_simulator
from tests.e2e.corrupting_proxy import (
    HTML_PAGE,
    CorruptingProxy,
    Corruption,
    drop_open_order,
    drop_position,
    reject_placed,
    repeat_fill,
)

pytestmark = pytest.mark.timeout(60)

BTC = "BTC/USD:USD"
ETH = "ETH/USD:USD"


@pytest.fixture
def stepped_sim() -> Iterator[SimulatorHandle]:
    """A stepped-clock simulator without rate limits, on a free port."""
    handle = start_simulator(clock="stepped", seed=7, rate_limit=False)
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def proxy(stepped_sim: SimulatorHandle) -> Iterator[CorruptingProxy]:
    with CorruptingProxy(stepped_sim.base_url) as running:
        yield running


@pytest.fixture
def client(stepped_sim: SimulatorHandle, proxy: CorruptingProxy) -> ccxt.krakenfutures:
    """The real ccxt client, pointed at the proxy, with the simulator's keys; markets loaded."""
    exchange = proxy.client(stepped_sim.api_key, stepped_sim.api_secret, timeout_ms=5_000)
    exchange.load_markets()
    return exchange


def outcome(call: Callable[[], Any]) -> Any:
    """What ccxt made of an answer: its return value, or the exception it raised."""
    try:
        return call()
    except Exception as exc:  # noqa: BLE001 - the test inspects it
        return exc


def rest(client: ccxt.krakenfutures, cid: str, symbol: str = BTC, price: float = 30_000) -> dict[str, Any]:
    """A resting limit buy far below the market, with a client order id."""
    return client.create_order(symbol, "limit", "buy", 0.01, price, {"clientOrderId": cid})


def cids(orders: Any) -> list[str]:
    return sorted(o["clientOrderId"] for o in orders)


# --- unchanged traffic ---------------------------------------------------------------------------


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[dict[str, Any]]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.seen.append({"method": self.command, "target": self.path, "body": body,
                          "headers": dict(self.headers.items())})
        out = b'{"result":"success","echo":"\xc3\xa9 exact bytes" }'
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Upstream", "echo")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = _answer


def test_requests_are_forwarded_unchanged_and_unmatched_answers_pass_byte_for_byte() -> None:
    import http.client

    echo = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=echo.serve_forever, daemon=True)
    thread.start()
    _Echo.seen = []
    try:
        with CorruptingProxy(f"http://127.0.0.1:{echo.server_address[1]}") as proxy:
            proxy.empty_body("sendorder")  # a rule for another endpoint: must not touch this traffic
            conn = http.client.HTTPConnection(proxy.host, proxy.port, timeout=5)
            body = b"orderType=lmt&symbol=PF_XBTUSD&size=1&cliOrdId=a%2Fb"
            conn.request("POST", "/derivatives/api/v3/editorder?x=1&y=%20z", body=body,
                         headers={"APIKey": "k", "Authent": "sig==", "Nonce": "17", "Content-Type":
                                  "application/x-www-form-urlencoded"})
            answer = conn.getresponse()
            received = answer.read()
            conn.close()
            assert answer.status == 201 and answer.getheader("X-Upstream") == "echo"
            assert received == b'{"result":"success","echo":"\xc3\xa9 exact bytes" }'
            [request] = _Echo.seen
            assert request["method"] == "POST" and request["target"] == "/derivatives/api/v3/editorder?x=1&y=%20z"
            assert request["body"] == body
            assert {k: request["headers"][k] for k in ("APIKey", "Authent", "Nonce", "Content-Type")} == {
                "APIKey": "k", "Authent": "sig==", "Nonce": "17", "Content-Type": "application/x-www-form-urlencoded"}
            assert proxy.corrupted() == 0 and proxy.rules()[0].applied == 0
    finally:
        echo.shutdown()
        echo.server_close()


def test_signed_ccxt_calls_through_the_proxy_see_what_a_direct_client_sees(
        stepped_sim: SimulatorHandle, proxy: CorruptingProxy, client: ccxt.krakenfutures) -> None:
    direct = stepped_sim.client(timeout_ms=5_000)
    direct.load_markets()
    proxy.html_page("openpositions", times=None)  # rules for other endpoints stay out of the way
    rest(client, "keep-1")
    client.create_order(ETH, "market", "buy", 0.1)
    assert cids(client.fetch_open_orders()) == cids(direct.fetch_open_orders()) == ["keep-1"]
    assert [t["id"] for t in client.fetch_my_trades()] == [t["id"] for t in direct.fetch_my_trades()]
    assert client.fetch_balance()["USD"] == direct.fetch_balance()["USD"]
    assert proxy.corrupted() == 0
    for answer in proxy.answers():
        assert answer.corrupted_by is None and answer.body == answer.upstream_body


def test_stop_releases_the_port(stepped_sim: SimulatorHandle) -> None:
    import socket

    proxy = CorruptingProxy(stepped_sim.base_url).start()
    port = proxy.port
    assert proxy.client().fetch_tickers()  # it serves
    proxy.stop()
    proxy.stop()  # idempotent
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


# --- each corruption --------------------------------------------------------------------------


def test_empty_body_n_times_then_the_real_answer(proxy: CorruptingProxy, client: ccxt.krakenfutures) -> None:
    rest(client, "rest-1")
    rule = proxy.empty_body("openorders", times=2)
    for _ in range(2):
        assert cids(client.fetch_open_orders()) == []  # ccxt turns an empty answer into "no open orders"
        assert client.last_http_response == ""
    assert cids(client.fetch_open_orders()) == ["rest-1"]
    assert rule.applied == 2 and rule.exhausted and proxy.corrupted("openorders") == 2
    assert rule not in proxy.rules()


def test_html_page_with_status_200(proxy: CorruptingProxy, client: ccxt.krakenfutures) -> None:
    client.create_order(BTC, "market", "buy", 0.01)
    rule = proxy.html_page("openpositions")
    result = outcome(client.fetch_positions)
    assert client.last_http_response == HTML_PAGE.decode()
    assert client.last_response_headers.get("Content-Type") == "text/html"
    [answer] = proxy.answers("openpositions")
    assert answer.status == 200 and answer.corrupted_by is Corruption.HTML
    assert isinstance(result, Exception) or result == []  # the real position never reaches ccxt
    assert rule.applied == 1
    [position] = client.fetch_positions()
    assert position["symbol"] == BTC


def test_success_without_the_list(proxy: CorruptingProxy, client: ccxt.krakenfutures) -> None:
    rest(client, "rest-2")
    proxy.success_without_list("openorders")
    assert cids(client.fetch_open_orders()) == []
    decoded = json.loads(client.last_http_response)
    assert decoded["result"] == "success" and "openOrders" not in decoded and "serverTime" in decoded
    assert cids(client.fetch_open_orders()) == ["rest-2"]


def test_until_cleared_and_clear(proxy: CorruptingProxy, client: ccxt.krakenfutures) -> None:
    rest(client, "rest-3")
    rule = proxy.empty_body("openorders", times=None)
    for _ in range(4):
        assert client.fetch_open_orders() == []
    assert rule.applied == 4 and rule.remaining is None and not rule.exhausted
    proxy.clear("openorders")
    assert cids(client.fetch_open_orders()) == ["rest-3"]
    assert proxy.corrupted() == 4


def test_drop_one_open_order_by_cli_ord_id(stepped_sim: SimulatorHandle, proxy: CorruptingProxy,
                                           client: ccxt.krakenfutures) -> None:
    rest(client, "visible")
    rule = proxy.transform("openorders", drop_open_order("hidden"))
    assert cids(client.fetch_open_orders()) == ["visible"]  # "hidden" is not there yet: answer left alone
    assert rule.applied == 0 and proxy.corrupted() == 0
    rest(client, "hidden", price=31_000)
    assert cids(client.fetch_open_orders()) == ["visible"]
    assert rule.applied == 1
    assert sorted(o["cliOrdId"] for o in stepped_sim.admin.orders() if o["status"] == "placed") == ["hidden", "visible"]
    assert cids(client.fetch_open_orders()) == ["hidden", "visible"]


def test_drop_a_position(proxy: CorruptingProxy, client: ccxt.krakenfutures) -> None:
    client.create_order(BTC, "market", "buy", 0.01)
    client.create_order(ETH, "market", "buy", 0.1)
    proxy.transform("openpositions", drop_position("PF_XBTUSD"))
    assert [p["symbol"] for p in client.fetch_positions()] == [ETH]
    assert sorted(p["symbol"] for p in client.fetch_positions()) == [BTC, ETH]


def test_repeat_a_fill_under_a_new_fill_id(proxy: CorruptingProxy, client: ccxt.krakenfutures) -> None:
    order = client.create_order(BTC, "market", "buy", 0.01)
    [real] = client.fetch_my_trades()
    rule = proxy.transform("fills", repeat_fill(new_fill_id="twin-fill"))
    trades = client.fetch_my_trades()
    assert sorted(t["id"] for t in trades) == sorted([real["id"], "twin-fill"])
    assert {t["order"] for t in trades} == {order["id"]} and {t["amount"] for t in trades} == {0.01}
    assert rule.applied == 1 and len(client.fetch_my_trades()) == 1


def test_sendorder_placed_reported_as_insufficient_funds(stepped_sim: SimulatorHandle, proxy: CorruptingProxy,
                                                         client: ccxt.krakenfutures) -> None:
    rule = proxy.transform("sendorder", reject_placed("insufficientAvailableFunds"))
    result = outcome(lambda: rest(client, "lied-about"))
    assert isinstance(result, ccxt.InsufficientFunds)
    [order] = stepped_sim.admin.orders(cli_ord_id="lied-about")
    assert order["status"] == "placed"  # it really rests on the exchange
    assert rule.applied == 1
    assert cids(client.fetch_open_orders()) == ["lied-about"]


def test_batchorder_placed_reported_as_rejected(stepped_sim: SimulatorHandle, proxy: CorruptingProxy,
                                                client: ccxt.krakenfutures) -> None:
    proxy.transform("batchorder", reject_placed("insufficientAvailableFunds", cli_ord_id="b-2"))
    results = client.create_orders([
        {"symbol": BTC, "type": "limit", "side": "buy", "amount": 0.01, "price": 30_000,
         "params": {"clientOrderId": "b-1"}},
        {"symbol": BTC, "type": "limit", "side": "buy", "amount": 0.01, "price": 30_500,
         "params": {"clientOrderId": "b-2"}},
    ])
    statuses = {r["info"].get("cliOrdId"): r["info"]["status"] for r in results}
    assert statuses == {"b-1": "placed", "b-2": "insufficientAvailableFunds"}
    assert {o["cliOrdId"]: o["status"] for o in stepped_sim.admin.orders()} == {"b-1": "placed", "b-2": "placed"}


def test_orders_status_and_order_history_can_be_emptied(stepped_sim: SimulatorHandle, proxy: CorruptingProxy,
                                                        client: ccxt.krakenfutures) -> None:
    rest(client, "looked-up")
    client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "done"})
    def lookup() -> Any:
        return client.fetch_orders(params={"orderIds": [], "cliOrdIds": ["looked-up"]})

    assert cids(lookup()) == ["looked-up"]
    proxy.empty_body("orders/status")
    assert outcome(lookup) == []  # ccxt: "no such order", though it rests on the exchange
    assert client.last_http_response == ""
    assert proxy.corrupted("orders/status") == 1
    assert cids(lookup()) == ["looked-up"]
    stepped_sim.admin.step(seconds=stepped_sim.config.history_lag_ms / 1000 + 1)  # history shows events late
    closed = client.fetch_closed_orders()
    assert "done" in [o["clientOrderId"] for o in closed]
    proxy.success_without_list("history/v2/orders")
    assert [o["clientOrderId"] for o in client.fetch_closed_orders()] == []
    assert proxy.corrupted("history/v2/orders") == 1
    assert "done" in [o["clientOrderId"] for o in client.fetch_closed_orders()]


def test_rules_are_thread_safe_exactly_n_answers_corrupted(stepped_sim: SimulatorHandle,
                                                          proxy: CorruptingProxy) -> None:
    rule = proxy.empty_body("tickers", times=5)
    clients = [proxy.client(timeout_ms=5_000) for _ in range(8)]
    start = threading.Barrier(len(clients))
    results: list[Any] = [None] * len(clients)

    def hammer(index: int) -> None:
        start.wait()
        results[index] = [outcome(clients[index].fetch_tickers) for _ in range(5)]

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    answers = proxy.answers("tickers")
    assert len(answers) == 40
    assert rule.applied == 5 and sum(1 for a in answers if a.corrupted_by is Corruption.EMPTY) == 5
    assert sum(1 for a in answers if a.body == b"") == 5
    assert proxy.wait_for(lambda: proxy.corrupted() == 5, timeout=1)


def test_a_dropped_upstream_answer_is_dropped_too(stepped_sim: SimulatorHandle, proxy: CorruptingProxy,
                                                  client: ccxt.krakenfutures) -> None:
    stepped_sim.admin.schedule_fault("reset", endpoint="openorders", count=1)
    assert isinstance(outcome(client.fetch_open_orders), ccxt.NetworkError)
    [answer] = proxy.answers("openorders")
    assert answer.status == 0
    assert client.fetch_open_orders() == []
