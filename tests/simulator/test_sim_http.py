"""Raw HTTP against the simulator: bad input gets Kraken's error shape and the server keeps serving."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from simulator import SimulatorHandle, sign

REPO = Path(__file__).resolve().parents[2]


def call(sim: SimulatorHandle, method: str, path: str, query: str = "", body: str | bytes = b"",
         signed: bool = True, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """One request with Kraken's signature over query (or body); returns status and decoded JSON."""
    data = body.encode() if isinstance(body, str) else body
    all_headers = dict(headers or {})
    if signed:
        post_data = query or (data.decode(errors="replace") if data else "")
        endpoint = path[len("/derivatives"):] if path.startswith("/derivatives/") else path
        all_headers.update({"APIKey": sim.api_key, "Authent": sign(sim.api_secret, endpoint, post_data)})
    url = sim.base_url + path + (f"?{query}" if query else "")
    request = urllib.request.Request(url, data=data if method != "GET" else None, method=method,
                                     headers=all_headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, raw.decode(errors="replace")


def alive(sim: SimulatorHandle) -> bool:
    """True if the server still answers a public request."""
    status, body = call(sim, "GET", "/derivatives/api/v3/tickers/PF_XBTUSD", signed=False)
    return status == 200 and body["result"] == "success"


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("", "invalidOrderType"),
        ("orderType=lmt&symbol=PF_XBTUSD&side=buy&size=1&limitPrice=abc", "invalidPrice"),
        ("orderType=mkt&symbol=PF_XBTUSD&side=buy&size=-1", "invalidSize"),
        ("orderType=mkt&symbol=PF_XBTUSD&side=buy&size=NaN", "invalidSize"),
        ("orderType=mkt&symbol=PF_XBTUSD&side=sideways&size=1", "invalidSide"),
        ("orderType=mkt&symbol=PF_NOPE&side=buy&size=1", "invalidArgument"),
        ("orderType=stp&symbol=PF_XBTUSD&side=buy&size=1", "invalidPrice"),
        ("orderType=stp&symbol=PF_XBTUSD&side=buy&size=1&stopPrice=1&triggerSignal=moon", "invalidArgument"),
        ("orderType=mkt&symbol=PF_XBTUSD&side=buy&size=1e9999", "invalidSize"),
        ("orderType=%ff%fe&symbol=%00&side=buy&size=1", "invalidOrderType"),
    ],
)
def test_malformed_sendorder_gets_a_send_status(sim: SimulatorHandle, query: str, status: str) -> None:
    code, body = call(sim, "POST", "/derivatives/api/v3/sendorder", query)
    assert code == 200 and body["result"] == "success"
    assert body["sendStatus"]["status"] == status
    assert alive(sim)


def test_bad_requests_get_kraken_error_shape(sim: SimulatorHandle) -> None:
    cases = [
        ("POST", "/derivatives/api/v3/batchorder", "", "json={not json", "Json Parse Error"),
        ("POST", "/derivatives/api/v3/batchorder", "", "nothing", "Json Parse Error"),
        ("POST", "/derivatives/api/v3/cancelorder", "", "", "requiredArgumentMissing"),
        ("POST", "/derivatives/api/v3/editorder", "size=1", "", "requiredArgumentMissing"),
        ("POST", "/derivatives/api/v3/cancelallordersafter", "timeout=soon", "", "requiredArgumentMissing"),
        ("GET", "/derivatives/api/v3/fills", "lastFillTime=yesterday", "", "invalidArgument: lastFillTime"),
        ("GET", "/derivatives/api/v3/sendorder", "", "", "methodNotAllowed"),
        ("GET", "/derivatives/api/v3/nothing-here", "", "", "notFound"),
        ("GET", "/api/charts/v1/trade/PF_XBTUSD/7m", "", "", "invalidArgument: resolution"),
        ("GET", "/api/charts/v1/volume/PF_XBTUSD/1m", "", "", "invalidArgument: tick_type"),
        ("GET", "/api/charts/v1/trade/PF_XBTUSD/1m", "from=abc", "", "invalidArgument: from"),
        ("GET", "/derivatives/api/v3/tickers/PF_NOPE", "", "", "contractNotFound"),
    ]
    for method, path, query, body, error in cases:
        code, answer = call(sim, method, path, query, body)
        assert isinstance(answer, dict) and answer["result"] == "error", (path, answer)
        assert answer["error"] == error, (path, answer)
        assert code in (200, 400, 404, 405), (path, code)
    status, answer = call(sim, "POST", "/derivatives/api/v3/batchorder", "",
                          'json={"batchOrder":[{"order":"explode"},7,{"order":"cancel","order_id":"x"}]}')
    assert [s["status"] for s in answer["batchStatus"]] == ["invalidArgument", "invalidArgument", "notFound"]
    assert alive(sim)


def test_authentication_errors(sim: SimulatorHandle) -> None:
    code, body = call(sim, "GET", "/derivatives/api/v3/accounts", signed=False)
    assert body["error"] == "authenticationError" and code == 401
    code, body = call(sim, "GET", "/derivatives/api/v3/accounts", signed=False,
                      headers={"APIKey": sim.api_key, "Authent": "bm90IGEgc2lnbmF0dXJl"})
    assert body["error"] == "authenticationError"
    code, body = call(sim, "GET", "/api/history/v2/orders", signed=False)
    assert body["error"] == "authenticationError"
    assert alive(sim)


def test_form_body_and_post_orders_status(sim: SimulatorHandle) -> None:
    query = "orderType=mkt&symbol=PF_XBTUSD&side=buy&size=0.01&cliOrdId=form-1"
    code, body = call(sim, "POST", "/derivatives/api/v3/sendorder", body=query,
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert body["sendStatus"]["status"] == "placed"
    code, body = call(sim, "POST", "/derivatives/api/v3/orders/status", body="cliOrdIds=form-1")
    assert [o["order"]["cliOrdId"] for o in body["orders"]] == ["form-1"]
    assert body["orders"][0]["status"] == "FULLY_EXECUTED"


def raw_exchange(sim: SimulatorHandle, payload: bytes, read: bool = True) -> bytes:
    """Send raw bytes on a fresh socket and return what comes back."""
    url = urlparse(sim.base_url)
    with socket.create_connection((url.hostname, url.port), timeout=5) as conn:
        conn.sendall(payload)
        if not read:
            return b""
        chunks = []
        while True:
            try:
                chunk = conn.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def test_broken_http_never_hangs_or_kills_the_server(sim: SimulatorHandle) -> None:
    answers = [
        raw_exchange(sim, b"GARBAGE\r\n\r\n"),
        raw_exchange(sim, b"POST /derivatives/api/v3/sendorder HTTP/1.1\r\nContent-Length: banana\r\n\r\n"),
        raw_exchange(sim, b"POST /derivatives/api/v3/sendorder HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n"),
        raw_exchange(sim, b"POST /derivatives/api/v3/sendorder HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
        raw_exchange(sim, b"HEAD /derivatives/api/v3/tickers HTTP/1.1\r\nConnection: close\r\n\r\n"),
    ]
    assert json.loads(answers[0])["result"] == "error"  # no HTTP version: an HTTP/0.9-style bare body
    for answer in answers[1:]:
        assert answer.startswith(b"HTTP/1."), answer
        assert b"<html" not in answer.lower() and b"Traceback" not in answer
    raw_exchange(sim, b"POST /derivatives/api/v3/sendorder HTTP/1.1\r\nContent-Length: 50\r\n\r\nshort", read=False)
    raw_exchange(sim, b"\xff\xfe\x00\x01" * 100, read=False)
    code, body = call(sim, "POST", "/derivatives/api/v3/sendorder", body=b"\xff\xfe not utf8")
    assert body["sendStatus"]["status"] == "invalidOrderType"
    assert alive(sim)


def test_admin_route_errors(sim: SimulatorHandle) -> None:
    status, body = call(sim, "GET", "/sim/unknown", signed=False)
    assert status == 404 and "routes" in body
    status, body = call(sim, "POST", "/sim/price", body="[1,2]", signed=False)
    assert status == 400
    status, body = call(sim, "POST", "/sim/clock/step", body='{"seconds": -5}', signed=False)
    assert status == 400
    status, body = call(sim, "GET", "/sim/state", signed=False)
    assert status == 200 and body["orders"] == []


def test_cli_runs_until_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "simulator", "--port", "0", "--seed", "3", "--api-key", "k",
         "--api-secret", "c2VjcmV0"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "listening on http://127.0.0.1:" in first
        base_url = first.rsplit(" ", 1)[1].strip()
        assert process.stdout.readline().split() == ["api", "key:", "k"]
        assert process.stdout.readline().split() == ["api", "secret:", "c2VjcmV0"]
        with urllib.request.urlopen(base_url + "/derivatives/api/v3/instruments", timeout=5) as response:
            assert len(json.loads(response.read())["instruments"]) == 8
        process.terminate()
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_cli_rejects_half_a_key_pair() -> None:
    from simulator.cli import main

    assert main(["--api-key", "only-the-key"]) == 2
    assert main(["--api-key", "k", "--api-secret", "not base64!"]) == 2


def test_fills_paging_with_last_fill_time(sim: SimulatorHandle) -> None:
    for i in range(3):
        call(sim, "POST", "/derivatives/api/v3/sendorder",
             f"orderType=mkt&symbol=PF_XBTUSD&side=buy&size=0.001&cliOrdId=f-{i}")
        sim.admin.step(seconds=1)
    _, body = call(sim, "GET", "/derivatives/api/v3/fills")
    assert [f["cliOrdId"] for f in body["fills"]] == ["f-2", "f-1", "f-0"]  # newest first
    _, older = call(sim, "GET", "/derivatives/api/v3/fills", f"lastFillTime={body['fills'][0]['fillTime']}")
    assert [f["cliOrdId"] for f in older["fills"]] == ["f-1", "f-0"]


def _candles(seed: int) -> list[Any]:
    """Hourly and minute candles of a fresh stepped simulator with a fixed start."""
    from simulator import start_simulator

    with start_simulator(clock="stepped", seed=seed, start_time_ms=1_780_000_000_000, history_days=1) as s:
        s.admin.step(seconds=600)
        out = []
        for kind in ("trade", "mark", "spot"):
            for interval, since in (("1m", 1_779_999_000), ("1h", 1_779_950_000)):
                _, body = call(s, "GET", f"/api/charts/v1/{kind}/PF_SOLUSD/{interval}", f"from={since}",
                               signed=False)
                out.append(body["candles"])
        _, ticker = call(s, "GET", "/derivatives/api/v3/tickers/PF_SOLUSD", signed=False)
        out.append({k: ticker["ticker"][k] for k in ("bid", "ask", "last", "markPrice")})
        return out


def test_same_seed_same_candles_over_http() -> None:
    first, again, other = _candles(11), _candles(11), _candles(12)
    assert first == again
    assert first != other
    assert len(first[0]) > 20 and len(first[1]) >= 13


def test_real_clock_runs_accelerated_without_requests() -> None:
    import time

    from simulator import start_simulator

    with start_simulator(speed=100, seed=1, advance_interval_s=0.02) as s:
        start = s.simulator.market.now_ms
        deadline = time.monotonic() + 5
        while s.simulator.market.now_ms - start < 10_000 and time.monotonic() < deadline:
            time.sleep(0.01)  # polling a real clock: nothing to wait on
        assert s.simulator.market.now_ms - start >= 10_000
        with pytest.raises(Exception, match="not stepped"):
            s.admin.step(seconds=1)
