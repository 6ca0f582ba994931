"""The in-process transport (simulator/inprocess.py) answers ccxt exactly as the socket server does: the same parsed
answers, the same exception classes and messages, the same request log, for twin simulators (same seed, keys and
stepped clock), one reached through InProcessSession, the other over HTTP (start_simulator)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import ccxt
import pytest

from exchange.client import make_kraken_client
from simulator import SimulatorHandle, generate_credentials, start_simulator
from simulator.config import SimulatorConfig
from simulator.inprocess import IN_PROCESS_URL, InProcessSession, in_process_client
from simulator.simulation import Simulator

pytestmark = pytest.mark.timeout(10)

BTC = "BTC/USD:USD"
START = 1_700_000_000_000
UNKNOWN_ORDER = "00000000-0000-0000-0000-000000000000"
KEY, SECRET = generate_credentials()
_, OTHER_SECRET = generate_credentials()
LOG_FIELDS = ("time", "method", "endpoint", "fault", "status", "result")


class Twins:
    """A simulator served in this process and its twin served over HTTP, each with a real ccxt client."""

    def __init__(self) -> None:
        cfg = SimulatorConfig(clock="stepped", start_time_ms=START, seed=5, rate_limit=False, api_key=KEY,
                              api_secret=SECRET)
        self.sim = Simulator(cfg)
        self.handle: SimulatorHandle = start_simulator(cfg)
        self.local = in_process_client(self.sim)
        self.remote = self.handle.client(timeout_ms=5_000)

    def client(self, remote: bool, api_key: str | None = KEY, secret: str | None = SECRET) -> ccxt.krakenfutures:
        """Another ccxt client of one twin, with the given keys."""
        if remote:
            return make_kraken_client(self.handle.base_url, api_key, secret, timeout_ms=5_000)
        client = make_kraken_client(IN_PROCESS_URL, api_key, secret)
        client.session = InProcessSession(self.sim)
        return client

    def both(self, call: Callable[[ccxt.krakenfutures], Any]) -> tuple[tuple[str, Any], tuple[str, Any]]:
        """What `call` gives (answer or exception class and message) in process and over HTTP."""
        return outcome(lambda: call(self.local)), outcome(lambda: call(self.remote))

    def local_log(self) -> list[dict[str, object]]:
        """The in-process simulator's request log."""
        return list(self.sim.requests)

    def remote_log(self) -> list[dict[str, object]]:
        """The HTTP simulator's request log."""
        return list(self.handle.simulator.requests)


def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    """("ok", answer) or (exception class name, message) of one ccxt call."""
    try:
        return "ok", call()
    except ccxt.BaseError as exc:
        return type(exc).__name__, str(exc)


@pytest.fixture
def twins() -> Iterator[Twins]:
    """Twin simulators, markets loaded in both clients."""
    pair = Twins()
    try:
        pair.local.load_markets()
        pair.remote.load_markets()
        yield pair
    finally:
        pair.handle.stop()
        pair.sim.close(save=False)


def assert_same(twins: Twins, call: Callable[[ccxt.krakenfutures], Any], expected: str = "ok") -> Any:
    """`call` gives the same answer (or exception class and message) both ways, of kind `expected`."""
    local, remote = twins.both(call)
    assert local == remote
    assert local[0] == expected, local
    return local[1]


def test_parsed_answers_and_errors_match_http(twins: Twins) -> None:
    assert assert_same(twins, lambda c: c.fetch_positions()) == []
    balance = assert_same(twins, lambda c: c.fetch_balance())
    assert balance["USD"]["total"] == 100_000
    assert_same(twins, lambda c: c.create_order(BTC, "market", "buy", 1000), "InsufficientFunds")
    candles = assert_same(twins, lambda c: c.fetch_ohlcv(BTC, "1m", since=START - 10 * 60_000))
    assert len(candles) == 10
    order = assert_same(twins, lambda c: c.create_order(BTC, "market", "buy", 0.01))
    assert order["id"] and order["filled"] == 0.01
    positions = assert_same(twins, lambda c: c.fetch_positions())
    assert [p["contracts"] for p in positions] == [0.01]
    assert_same(twins, lambda c: c.fetch_balance())
    resting = assert_same(twins, lambda c: c.create_order(BTC, "limit", "buy", 0.01, 50_000.0))
    assert [o["id"] for o in assert_same(twins, lambda c: c.fetch_open_orders(BTC))] == [resting["id"]]
    assert_same(twins, lambda c: c.fetch_my_trades(BTC))
    assert_same(twins, lambda c: c.cancel_order(UNKNOWN_ORDER, BTC), "OrderNotFound")
    assert_same(twins, lambda c: c.fetch_ticker(BTC))


def test_order_requests_of_every_body_shape_match_http(twins: Twins) -> None:
    odd_id = "a b+c/\u00e9&x=1"  # quoted by ccxt in the query string; the signature covers the quoted form
    batch = [{"symbol": BTC, "type": "limit", "side": "buy", "amount": 0.01, "price": 50_000.0,
              "params": {"clientOrderId": "batch-1"}},
             {"symbol": BTC, "type": "limit", "side": "sell", "amount": 0.01, "price": 90_000.0}]
    placed = assert_same(twins, lambda c: c.create_orders(batch))  # batchorder: a json= form body
    assert [o["status"] for o in placed] == ["open", "open"]
    odd = assert_same(twins, lambda c: c.create_order(BTC, "limit", "buy", 0.01, 49_000.0, {"clientOrderId": odd_id}))
    assert odd["clientOrderId"] == odd_id
    edited = assert_same(twins, lambda c: c.edit_order(odd["id"], BTC, "limit", "buy", 0.02, 48_000.0))
    assert edited["info"]["editStatus"]["status"] == "edited"
    assert_same(twins, lambda c: c.cancel_orders([], BTC, {"clientOrderIds": [odd_id]}))
    assert len(assert_same(twins, lambda c: c.fetch_open_orders(BTC))) == 2
    assert_same(twins, lambda c: c.fetch_order_book(BTC))


@pytest.mark.parametrize(("api_key", "secret"), [(KEY, OTHER_SECRET), ("not-the-key", SECRET)],
                         ids=["wrong-secret", "wrong-key"])
def test_a_bad_signature_is_an_authentication_error_as_over_http(twins: Twins, api_key: str, secret: str) -> None:
    def call(remote: bool) -> tuple[str, Any]:
        client = twins.client(remote, api_key, secret)
        client.load_markets()
        return outcome(client.fetch_balance)

    local = call(remote=False)
    assert local == call(remote=True)
    assert local[0] == "AuthenticationError" and "authenticationError" in local[1]
    assert twins.local_log()[-1]["status"] == 401


def test_a_public_client_sends_no_private_request(twins: Twins) -> None:
    public = in_process_client(twins.sim, private=False)
    public.load_markets()
    before = len(twins.local_log())
    with pytest.raises(ccxt.AuthenticationError):
        public.fetch_balance()
    assert len(twins.local_log()) == before  # ccxt refused it for want of credentials: nothing was sent
    assert public.fetch_ticker(BTC)["last"] == twins.local.fetch_ticker(BTC)["last"]


def test_an_unknown_path_or_method_maps_to_the_ccxt_error_of_http(twins: Twins) -> None:
    message = assert_same(twins, lambda c: c.request("nosuchthing", ["public"], "GET"), "BadRequest")
    assert "notFound" in message
    assert_same(twins, lambda c: c.request("nosuchthing", ["private"], "POST", {"a": 1}), "BadRequest")
    assert_same(twins, lambda c: c.request("instruments", ["public"], "POST"), "ExchangeError")
    assert_same(twins, lambda c: c.publicGetTickersSymbol({"symbol": "PF_NOPE"}), "BadSymbol")
    assert [e["status"] for e in twins.local_log()[-4:]] == [404, 404, 405, 404]


def run_sequence(twins: Twins) -> None:
    """A few requests, answered and refused, sent to both twins."""
    for call in (lambda c: c.fetch_positions(), lambda c: c.create_order(BTC, "market", "buy", 1000),
                 lambda c: c.create_order(BTC, "market", "buy", 0.01), lambda c: c.fetch_ohlcv(BTC, "1m", since=START),
                 lambda c: c.publicGetTickersSymbol({"symbol": "PF_NOPE"}),
                 lambda c: c.request("nosuchthing", ["public"], "GET")):
        twins.both(call)


def test_the_request_log_records_in_process_requests(twins: Twins) -> None:
    start = len(twins.local_log())
    run_sequence(twins)
    local, remote = twins.local_log(), twins.remote_log()
    assert len(local) == len(remote) and len(local) - start == 6
    assert [{k: e.get(k) for k in LOG_FIELDS} for e in local] == [{k: e.get(k) for k in LOG_FIELDS} for e in remote]
    assert [e["endpoint"] for e in local[start:]] == ["openpositions", "sendorder", "sendorder", "charts",
                                                      "tickers/{symbol}", "/derivatives/api/v3/nosuchthing"]
    assert twins.sim.exchange.order_requests[-1]["status"] == "placed"  # the order record saw them too


def test_the_request_log_names_the_error_as_over_http(twins: Twins) -> None:
    run_sequence(twins)
    errors = [e.get("error") for e in twins.remote_log()]
    assert "contractNotFound" in errors and "notFound" in errors
    assert [e.get("error") for e in twins.local_log()] == errors


def test_the_request_log_target_is_the_request_target_as_over_http(twins: Twins) -> None:
    run_sequence(twins)
    assert [e["target"] for e in twins.local_log()] == [e["target"] for e in twins.remote_log()]
