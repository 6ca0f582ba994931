"""The control endpoint under load and under hostile requests: every client answered, nothing reset, 400 not 500."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from configuration import ControlConfig
from control import ControlServer
from messages.control import ControlReply, Pause, PortfolioStatus, Resume
from tests.control.conftest import TOKEN, FakeTarget, sample_status

pytestmark = pytest.mark.timeout(60)


class SerialTarget(FakeTarget):
    """A target that, like the portfolio actor, serves one call at a time, each taking a little while."""

    def __init__(self, cost_s: float = 0.002) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.cost_s = cost_s
        self.paused: dict[str, bool] = {}

    def status(self) -> PortfolioStatus:
        with self._lock:
            time.sleep(self.cost_s)  # the work of an actor answering: deliberately slow, not a wait for an event
            self.status_calls += 1
            return sample_status()

    def control(self, message):  # type: ignore[no-untyped-def]
        with self._lock:
            time.sleep(self.cost_s)
            self.received.append(message)
            self.paused[message.symbol] = isinstance(message, Pause)
            return ControlReply(ok=True, detail=type(message).__name__.lower(), symbols=(message.symbol,))


@pytest.fixture
def serial() -> Iterator[tuple[ControlServer, SerialTarget]]:
    """A control server of its own (free port) in front of a serial target."""
    target = SerialTarget()
    server = ControlServer(target, ControlConfig(), TOKEN, port=0).start()
    try:
        yield server, target
    finally:
        server.stop()


def _request(server: ControlServer, method: str, path: str, body: dict | None, start: threading.Barrier,
             timeout: float = 10) -> tuple[int, float, dict]:
    start.wait()
    began = time.monotonic()
    conn = http.client.HTTPConnection(server.host, server.port, timeout=timeout)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    payload = json.dumps(body).encode() if body is not None else None
    try:
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        data = json.loads(response.read())
        return response.status, time.monotonic() - began, data
    finally:
        conn.close()


def test_200_concurrent_status_requests_are_all_answered_within_2_s(
    serial: tuple[ControlServer, SerialTarget]
) -> None:
    server, target = serial
    start = threading.Barrier(200)
    with ThreadPoolExecutor(max_workers=200) as pool:
        futures = [pool.submit(_request, server, "GET", "/v1/status", None, start) for _ in range(200)]
        results = [f.result() for f in futures]  # a reset or a time-out raises here
    assert [status for status, _, _ in results] == [200] * 200
    slowest = max(elapsed for _, elapsed, _ in results)
    assert slowest < 2.0, f"slowest status answer took {slowest:.2f} s"
    assert target.status_calls == 200


def test_50_concurrent_commands_are_all_delivered_and_the_state_is_the_last_acknowledged(
    serial: tuple[ControlServer, SerialTarget]
) -> None:
    server, target = serial
    start = threading.Barrier(50)
    bodies = [{"command": "pause" if i % 2 else "resume", "symbol": "BTC/USD:USD", "source": f"t{i}"}
              for i in range(50)]
    with ThreadPoolExecutor(max_workers=50) as pool:
        results = [f.result() for f in [pool.submit(_request, server, "POST", "/v1/control", b, start) for b in bodies]]
    assert [status for status, _, _ in results] == [200] * 50
    assert sorted(m.source for m in target.received) == sorted(b["source"] for b in bodies)
    last = target.received[-1]  # the one the target applied last: its answer was the last acknowledgement
    assert target.paused["BTC/USD:USD"] is isinstance(last, Pause)
    assert isinstance(last, (Pause, Resume))


def raw(server: ControlServer, request: bytes, *, half_close: bool = True) -> tuple[int, bytes]:
    """Send raw bytes, read the whole answer (a reset raises), return the status and the body."""
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(request)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, payload = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), payload


def post(body: bytes, *extra_headers: str, length: str | None = None) -> bytes:
    """A raw POST /v1/control with the right token."""
    headers = [f"Authorization: Bearer {TOKEN}", f"Content-Length: {len(body) if length is None else length}",
               *extra_headers]
    return ("POST /v1/control HTTP/1.1\r\nHost: x\r\n" + "".join(f"{h}\r\n" for h in headers) + "\r\n").encode() + body


def test_json_nested_10000_levels_is_400_not_500(serial: tuple[ControlServer, SerialTarget]) -> None:
    server, target = serial
    body = b'{"command": "pause", "symbol": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    status, payload = raw(server, post(body))
    assert status == 400
    assert b"nested" in payload
    assert target.received == []


@pytest.mark.parametrize(
    "body",
    [b'{"command": "pause", "all": ' + b"9" * 5000 + b"}", b'{"command": "pause", "all": NaN}',
     b'{"command": "pause", "all": Infinity}'],
    ids=["5000-digit-number", "NaN", "Infinity"],
)
def test_unreadable_numbers_are_400_not_500(serial: tuple[ControlServer, SerialTarget], body: bytes) -> None:
    server, target = serial
    status, payload = raw(server, post(body))
    assert status == 400, payload
    assert target.received == []


@pytest.mark.parametrize(
    ("headers", "length", "words"),
    [
        (("Content-Length: 999",), None, b"2 Content-Length headers"),
        (("Authorization: Bearer other",), None, b"2 Authorization headers"),
        (("Transfer-Encoding: chunked",), None, b"Transfer-Encoding and Content-Length"),
        ((), "+41", b"digits only"),
        ((), "4_1", b"digits only"),
        ((), "41.0", b"digits only"),
    ],
    ids=["two-content-length", "two-authorization", "te-and-cl", "plus-sign", "underscore", "decimal"],
)
def test_ambiguous_headers_are_400_and_nothing_is_applied(
    serial: tuple[ControlServer, SerialTarget], headers: tuple[str, ...], length: str | None, words: bytes
) -> None:
    server, target = serial
    body = json.dumps({"command": "pause", "symbol": "BTC/USD:USD"}).encode()
    if length is not None:
        length = length.replace("41", str(len(body)))
    status, payload = raw(server, post(body, *headers, length=length))
    assert status == 400, payload
    assert words in payload
    assert target.received == []


def test_an_answer_before_the_body_is_read_is_not_destroyed_by_a_reset(
    serial: tuple[ControlServer, SerialTarget]
) -> None:
    server, target = serial
    body = b"x" * 300_000  # the server answers 401 without reading any of it
    request = (f"POST /v1/control HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    for _ in range(5):
        status, payload = raw(server, request, half_close=False)
        assert status == 401
        assert b"control token" in payload
    assert target.received == []


def test_the_listen_backlog_and_the_pool_are_sized_for_a_burst(serial: tuple[ControlServer, SerialTarget]) -> None:
    server, _ = serial
    httpd = server._httpd
    assert httpd is not None and httpd.request_queue_size >= 256
    assert httpd._pool._max_workers >= 8
