"""The simulator inside this process, reached through a `requests.Session` instead of a socket (backtests).

ccxt's sync client sends every request through `self.session.request(...)` and reads a `requests.Response`. An
`InProcessSession` in that place hands the request (method, path, query, body, headers) to the simulator's
Kraken API directly and answers with a real `requests.Response` built from its status and JSON body. Everything
on ccxt's side stays in the path: request building, signing (the simulator checks every signature), the nonce,
the error mapping (`raise_for_status`, Kraken's error strings) and the parsing of every answer. What is not: the
TCP connection, HTTP framing and the simulator's fault injection (a backtest has no faults).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.structures import CaseInsensitiveDict

from simulator.api import route
from simulator.simulation import Simulator

IN_PROCESS_URL = "http://simulator.in-process"  # the base URL a client of an InProcessSession is given


class InProcessSession(requests.Session):
    """A requests session whose every request is served by `simulator` in this thread."""

    def __init__(self, simulator: Simulator) -> None:
        super().__init__()
        self.simulator = simulator

    def request(self, method: str | bytes, url: str | bytes, params: Any = None,  # type: ignore[override]
                data: Any = None, headers: Any = None, **_ignored: Any) -> requests.Response:
        """Serve one request; the keywords ccxt passes for the network (timeout, proxies, verify) do not apply."""
        method_text = method.decode() if isinstance(method, bytes) else str(method)
        url_text = url.decode() if isinstance(url, bytes) else str(url)
        parts = urlsplit(url_text)
        body = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else (data or "")
        sim = self.simulator
        sim.run_due()
        received = sim.clock.now_ms()
        answer = sim.api.handle(method_text.upper(), parts.path, parts.query, str(body), dict(headers or {}),
                                {"received_ms": received, "fault": None})
        endpoint = route(method_text.upper(), parts.path).endpoint
        sim.after_request(endpoint)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        sim.log_answer({"time": received, "method": method_text.upper(), "endpoint": endpoint or parts.path,
                        "target": target[:500], "fault": None}, answer)  # as the socket server logs it
        response = requests.Response()
        response.status_code = answer.status
        response._content = answer.encode()
        response.headers = CaseInsensitiveDict({"Content-Type": "application/json",
                                                "Content-Length": str(len(response._content))})
        response.reason = _reason(answer.status)
        response.url = url_text
        response.encoding = "utf-8"
        return response


def _reason(status: int) -> str:
    """The HTTP reason phrase of a status code."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def in_process_client(simulator: Simulator, private: bool = True, **options: Any) -> Any:
    """A real ccxt.krakenfutures client (exchange.client's) whose requests the simulator serves in this process."""
    from exchange.client import make_kraken_client

    if private:
        client = make_kraken_client(IN_PROCESS_URL, simulator.api_key, simulator.api_secret, **options)
    else:
        client = make_kraken_client(IN_PROCESS_URL, **options)
    client.session = InProcessSession(simulator)
    return client
