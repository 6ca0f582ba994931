"""The control endpoint over real HTTP with a fake target: auth, routes, validation, replies, failures."""

from __future__ import annotations

import http.client
import socket
import threading
from decimal import Decimal

import pytest
from loguru import logger

from configuration import ControlConfig
from control import MAX_BODY_BYTES, ControlServer, ControlServerError, ControlService
from messages.control import CancelOrders, Flatten, Halt, Pause, PortfolioStatus, Resume, Shutdown, Unhalt
from tests.control.conftest import SYMBOLS, TOKEN, FakeTarget, raw_request, sample_status

pytestmark = pytest.mark.timeout(10)

PAUSE_BTC = {"command": "pause", "symbol": "BTC/USD:USD", "source": "test"}


# --- authentication ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token-0123456789abcdef"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
        {"Authorization": "Bearer "},
    ],
    ids=["no-header", "wrong", "longer", "basic-scheme", "no-scheme", "empty"],
)
def test_no_or_wrong_token_is_401_and_the_target_sees_nothing(
    server: ControlServer, target: FakeTarget, headers: dict[str, str], log_lines: list[str]
) -> None:
    for method, path, body in (("GET", "/v1/status", None), ("POST", "/v1/control", PAUSE_BTC), ("GET", "/nope", None)):
        answer = raw_request(server, method, path, body, token=None, headers=headers)
        assert answer.status == 401
        assert "control token" in answer.body["error"]
        assert answer.headers.get("WWW-Authenticate", "").startswith("Bearer")
    assert target.saw_nothing
    assert any("refused" in line and "token" in line for line in log_lines)


def test_the_bearer_scheme_is_case_insensitive(server: ControlServer, target: FakeTarget) -> None:
    answer = raw_request(server, "GET", "/v1/status", token=None, headers={"Authorization": f"bearer {TOKEN}"})
    assert answer.status == 200


def test_the_token_never_reaches_the_log(server: ControlServer, log_lines: list[str]) -> None:
    raw_request(server, "POST", "/v1/control", PAUSE_BTC)
    raw_request(server, "GET", "/v1/status", token=TOKEN + "x")
    raw_request(server, "GET", "/v1/status")
    assert log_lines
    assert not any(TOKEN in line for line in log_lines)


def test_an_empty_token_is_not_accepted_for_a_server() -> None:
    with pytest.raises(ValueError, match="non-empty token"):
        ControlService(FakeTarget(), "")


# --- status --------------------------------------------------------------------------------------


def test_status_is_the_portfolio_status_as_json(server: ControlServer) -> None:
    answer = raw_request(server, "GET", "/v1/status")
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("application/json")
    assert answer.body == sample_status().model_dump(mode="json")
    assert PortfolioStatus.model_validate(answer.body) == sample_status()
    btc = answer.body["symbols"][1]
    assert btc["position"]["entry_price"] == "60123.50"
    assert Decimal(answer.body["total_notional"]) == Decimal("120.247")


def test_a_query_string_or_trailing_slash_still_finds_the_route(server: ControlServer) -> None:
    assert raw_request(server, "GET", "/v1/status/").status == 200
    assert raw_request(server, "GET", "/v1/status?verbose=1").status == 200


# --- commands ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_body", "expected"),
    [
        ({"command": "pause", "symbol": "BTC/USD:USD"}, Pause(symbol="BTC/USD:USD", source="alice")),
        ({"command": "pause", "all": True}, Pause(symbol=None, source="alice")),
        ({"command": "resume", "symbol": "ETH/USD:USD"}, Resume(symbol="ETH/USD:USD", source="alice")),
        ({"command": "resume", "all": True}, Resume(symbol=None, source="alice")),
        ({"command": "halt"}, Halt(symbol=None, source="alice")),
        ({"command": "halt", "reason": "CPI at 14:30"}, Halt(symbol=None, source="alice", reason="CPI at 14:30")),
        ({"command": "halt", "symbol": "SOL/USD:USD"}, Halt(symbol="SOL/USD:USD", source="alice")),
        ({"command": "unhalt", "all": True}, Unhalt(symbol=None, source="alice")),
        ({"command": "cancel", "symbol": "BTC/USD:USD"}, CancelOrders(symbol="BTC/USD:USD", source="alice")),
        ({"command": "cancel", "all": True}, CancelOrders(symbol=None, source="alice")),
        ({"command": "flatten", "symbol": "ETH/USD:USD"}, Flatten(symbol="ETH/USD:USD", source="alice")),
        ({"command": "flatten", "all": True}, Flatten(symbol=None, source="alice")),
        ({"command": "stop"}, Shutdown(source="alice")),
    ],
)
def test_each_command_reaches_the_target_as_its_message(
    server: ControlServer, target: FakeTarget, request_body: dict[str, object], expected: object, log_lines: list[str]
) -> None:
    answer = raw_request(server, "POST", "/v1/control", {**request_body, "source": "alice"})
    assert answer.status == 200, answer.body
    assert answer.body["ok"] is True
    assert target.received == [expected]
    assert type(target.received[0]) is type(expected)
    accepted = [line for line in log_lines if "accepted from source 'alice' at 127.0.0.1:" in line]
    assert len(accepted) == 1 and str(request_body["command"]) in accepted[0]


def test_stop_asks_the_target_to_shut_down(server: ControlServer, target: FakeTarget, log_lines: list[str]) -> None:
    answer = raw_request(server, "POST", "/v1/control", {"command": "stop", "source": "ops"})
    assert answer.status == 200 and answer.body["detail"] == "shutdown requested"
    assert target.shutdown_requested.is_set()
    assert any(line.startswith("INFO control: stop accepted from source 'ops' at 127.0.0.1:") for line in log_lines)


def test_the_reply_is_passed_back(server: ControlServer) -> None:
    answer = raw_request(server, "POST", "/v1/control", {"command": "pause", "all": True})
    assert answer.body == {"ok": True, "detail": "pause applied", "symbols": list(SYMBOLS), "code": "done"}


def test_an_unknown_symbol_is_404_with_the_systems_message(server: ControlServer, target: FakeTarget) -> None:
    answer = raw_request(server, "POST", "/v1/control", {"command": "pause", "symbol": "DOGE/USD:USD"})
    assert answer.status == 404
    assert answer.body["error"].startswith("unknown symbol 'DOGE/USD:USD'; this system trades ADA/USD:USD")
    assert answer.body["ok"] is False


def test_another_refusal_is_409(server: ControlServer, target: FakeTarget) -> None:
    target.refuse = "SOL/USD:USD is restarting; try again in a moment"
    answer = raw_request(server, "POST", "/v1/control", {"command": "pause", "symbol": "SOL/USD:USD"})
    assert answer.status == 409
    assert answer.body["error"] == "SOL/USD:USD is restarting; try again in a moment"


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"{not json", "malformed JSON"),
        ({"command": "explode", "all": True}, "unknown command 'explode'; allowed commands: pause, resume, halt"),
        ({"command": "pause"}, "pause needs a symbol"),
        ({"command": "flatten", "symbol": "BTC/USD:USD", "all": True}, "not both"),
        ({"command": "pause", "all": True, "extra": 1}, "unknown field 'extra'"),
    ],
    ids=["malformed-json", "unknown-command", "no-symbol-no-all", "symbol-and-all", "unknown-field"],
)
def test_bad_requests_are_400_and_nothing_reaches_the_target(
    server: ControlServer, target: FakeTarget, raw: bytes | dict[str, object], words: str
) -> None:
    answer = raw_request(server, "POST", "/v1/control", raw)
    assert answer.status == 400
    assert words in answer.body["error"]
    assert target.saw_nothing


def test_an_oversized_body_is_413_and_nothing_reaches_the_target(server: ControlServer, target: FakeTarget) -> None:
    padding = "x" * MAX_BODY_BYTES
    raw = f'{{"command": "pause", "all": true, "source": "{padding}"}}'.encode()
    answer = raw_request(server, "POST", "/v1/control", raw)
    assert answer.status == 413
    assert "limit is 65536 bytes" in answer.body["error"]
    assert target.saw_nothing


def test_a_body_of_exactly_the_limit_is_read(server: ControlServer, target: FakeTarget) -> None:
    head = b'{"command": "pause", "all": true}'
    answer = raw_request(server, "POST", "/v1/control", head + b" " * (MAX_BODY_BYTES - len(head)))
    assert answer.status == 200
    assert target.received == [Pause(symbol=None, source="api")]


def raw_exchange(server: ControlServer, request: bytes) -> tuple[int, bytes]:
    """Send raw bytes, read the whole answer, return the status and the body."""
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, payload = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), payload


def test_a_post_without_content_length_is_411(server: ControlServer, target: FakeTarget) -> None:
    status, payload = raw_exchange(
        server,
        f"POST /v1/control HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n".encode(),
    )
    assert status == 411
    assert b"Content-Length header is required" in payload
    assert target.saw_nothing


def test_an_unparseable_request_gets_a_json_error(server: ControlServer, target: FakeTarget) -> None:
    status, payload = raw_exchange(server, b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n")
    assert status == 414
    assert payload.startswith(b'{"error":')
    assert target.saw_nothing


# --- routes --------------------------------------------------------------------------------------


def test_an_unknown_path_is_404_with_the_routes(server: ControlServer) -> None:
    answer = raw_request(server, "GET", "/v2/everything")
    assert answer.status == 404
    assert "no such route: /v2/everything" in answer.body["error"]
    assert answer.body["routes"][:2] == ["GET /v1/status", "POST /v1/control"]
    assert {"GET /v1/trades", "GET /v1/orders", "GET /v1/pnl", "GET /v1/why", "GET /v1/markets"} <= set(
        answer.body["routes"])


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("POST", "/v1/status", "GET"),
        ("GET", "/v1/control", "POST"),
        ("DELETE", "/v1/control", "POST"),
        ("PUT", "/v1/status", "GET"),
    ],
)
def test_a_wrong_method_is_405(server: ControlServer, target: FakeTarget, method: str, path: str, allow: str) -> None:
    answer = raw_request(server, method, path, b"{}")
    assert answer.status == 405
    assert answer.headers["Allow"] == allow
    assert f"use {allow}" in answer.body["error"]
    assert target.saw_nothing


# --- failures ------------------------------------------------------------------------------------


def test_an_exception_in_the_target_is_500_and_the_server_keeps_serving(
    server: ControlServer, target: FakeTarget, log_lines: list[str]
) -> None:
    target.fail = TimeoutError("portfolio did not answer in 5 s")
    answer = raw_request(server, "POST", "/v1/control", PAUSE_BTC)
    assert answer.status == 500
    assert "TimeoutError: portfolio did not answer in 5 s" in answer.body["error"]
    assert "may or may not have taken effect" in answer.body["error"]
    status = raw_request(server, "GET", "/v1/status")
    assert status.status == 500 and "could not report its status" in status.body["error"]
    assert any("Traceback" in line for line in log_lines)
    target.fail = None
    assert raw_request(server, "GET", "/v1/status").status == 200


def test_status_answers_while_a_command_is_still_running(server: ControlServer, target: FakeTarget) -> None:
    target.hold = threading.Event()
    answers: list[int] = []
    worker = threading.Thread(
        target=lambda: answers.append(raw_request(server, "POST", "/v1/control", PAUSE_BTC).status)
    )
    worker.start()
    try:
        assert target.entered.wait(5)
        assert raw_request(server, "GET", "/v1/status").status == 200
    finally:
        target.hold.set()
        worker.join(5)
    assert answers == [200]


# --- lifecycle -----------------------------------------------------------------------------------


def test_a_taken_port_is_a_clear_error(server: ControlServer) -> None:
    other = ControlServer(FakeTarget(), ControlConfig(), TOKEN, port=server.port)
    with pytest.raises(ControlServerError, match=f"cannot listen on 127.0.0.1:{server.port}.*already running"):
        other.start()


def test_stop_frees_the_port_and_is_idempotent() -> None:
    with ControlServer(FakeTarget(), ControlConfig(), TOKEN, port=0) as srv:
        port = srv.port
        assert srv.url == f"http://127.0.0.1:{port}"
        assert srv.running
    assert not srv.running
    srv.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    with pytest.raises(RuntimeError, match="not started"):
        _ = srv.port


def test_a_non_loopback_bind_warns(log_lines: list[str]) -> None:
    config = ControlConfig(host="0.0.0.0", allow_remote=True)
    with ControlServer(FakeTarget(), config, TOKEN, port=0) as srv:
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
        conn.request("GET", "/v1/status", headers={"Authorization": f"Bearer {TOKEN}"})
        assert conn.getresponse().status == 200
        conn.close()
    warnings = [line for line in log_lines if line.startswith("WARNING") and "NOT loopback" in line]
    assert len(warnings) == 1


def test_a_loopback_bind_does_not_warn(log_lines: list[str]) -> None:
    with ControlServer(FakeTarget(), ControlConfig(), TOKEN, port=0):
        pass
    assert not any(line.startswith("WARNING") for line in log_lines)


def test_a_failure_log_never_shows_the_token_even_with_loguru_diagnose(
    server: ControlServer, target: FakeTarget
) -> None:
    # loguru's `diagnose` prints local variables of every frame in a traceback; the request's
    # Authorization header is one of them, so failures are logged with plain stdlib tracebacks
    lines: list[str] = []
    handler = logger.add(lambda m: lines.append(str(m)), level="DEBUG", backtrace=True, diagnose=True)
    try:
        target.fail = RuntimeError("boom")
        assert raw_request(server, "POST", "/v1/control", PAUSE_BTC).status == 500
        assert raw_request(server, "GET", "/v1/status").status == 500
        target.fail = None
        target.reply_override = "not a reply"
        assert raw_request(server, "POST", "/v1/control", PAUSE_BTC).status == 500
    finally:
        logger.remove(handler)
    text = "\n".join(lines)
    assert "Traceback" in text and "RuntimeError: boom" in text
    assert TOKEN not in text


def test_a_target_that_returns_no_reply_is_500_not_a_crash(server: ControlServer, target: FakeTarget) -> None:
    target.reply_override = None
    answer = raw_request(server, "POST", "/v1/control", {"command": "cancel", "all": True})
    assert answer.status == 500
    assert "did not answer cancel (it returned NoneType)" in answer.body["error"]
