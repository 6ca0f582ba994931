"""A corrupting HTTP proxy between the real ccxt client and the simulator, for end-to-end tests.

Every request is forwarded unchanged (method, path, query, body, end-to-end headers: Kraken's
signature still verifies; only `Host` names the upstream). A test adds rules at run time, from any
thread, that rewrite the *answer* of one endpoint (matched by path suffix: `openorders`,
`openpositions`, `fills`, `sendorder`, `batchorder`, `orders/status`, `history/v2/orders`, ...)
N times or until cleared, and reads how many answers each rule corrupted::

    with CorruptingProxy(sim.base_url) as proxy:
        client = proxy.client(sim.api_key, sim.api_secret)
        rule = proxy.html_page("openorders", times=2)
        ...
        assert rule.applied == 2

Unmatched traffic (and answers a transform leaves alone) passes byte for byte.
"""

from __future__ import annotations

import copy
import http.client
import json
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

from loguru import logger

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
    "transfer-encoding", "upgrade", "host", "content-length",
})
HTML_PAGE = (
    b"<!DOCTYPE html><html><head><title>503 Service Temporarily Unavailable</title></head>"
    b"<body><h1>Service Temporarily Unavailable</h1><p>cloudflare</p></body></html>"
)
MAX_BODY_BYTES = 10_000_000

Transform = Callable[[Any], Any]
"""Gets the decoded JSON answer (a private copy); returns the new answer, or None to leave it alone."""


class Corruption(StrEnum):
    """What a rule does to a matched answer."""

    EMPTY = "empty"  # status kept, body empty
    HTML = "html"  # status 200, an HTML error page
    SUCCESS_WITHOUT_LIST = "success_without_list"  # {"result": "success"} (and serverTime), nothing else
    TRANSFORM = "transform"  # a function of the decoded JSON answer


@dataclass(frozen=True)
class ProxiedRequest:
    """One request as the proxy forwarded it."""

    method: str
    path: str  # without the query
    query: str
    body: bytes
    headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ProxiedAnswer:
    """One answer as the proxy sent it on."""

    request: ProxiedRequest
    status: int  # 0: the upstream dropped the connection, and so did the proxy
    body: bytes
    corrupted_by: Corruption | None
    upstream_status: int
    upstream_body: bytes


@dataclass(eq=False)
class Rule:
    """Rewrite the answers of the endpoint whose path ends with `endpoint`; `times` None: until cleared."""

    endpoint: str
    kind: Corruption
    times: int | None = 1
    transform: Transform | None = None
    method: str | None = None  # e.g. "POST"; None: any
    applied: int = 0
    _proxy: CorruptingProxy | None = field(default=None, repr=False)

    def matches(self, request: ProxiedRequest) -> bool:
        """True if this rule is for the request's endpoint (and method), whether or not it has turns left."""
        suffix = self.endpoint.strip("/")
        path = request.path.rstrip("/")
        if not (path == "/" + suffix or path.endswith("/" + suffix)):
            return False
        return self.method is None or self.method.upper() == request.method

    @property
    def remaining(self) -> int | None:
        """Answers it will still corrupt (None: until cleared)."""
        return None if self.times is None else max(0, self.times - self.applied)

    @property
    def exhausted(self) -> bool:
        """True when it has used every turn."""
        return self.times is not None and self.applied >= self.times

    def clear(self) -> None:
        """Remove this rule from its proxy."""
        if self._proxy is not None:
            self._proxy.remove(self)

    def wait(self, count: int = 1, timeout: float = 10.0) -> int:
        """Wait until this rule corrupted `count` answers; return how many (fail after `timeout`)."""
        assert self._proxy is not None
        return self._proxy.wait_for(lambda: self.applied >= count, timeout, f"{count} corrupted {self.endpoint}")


class CorruptingProxy:
    """A threaded HTTP proxy on a free loopback port that corrupts chosen answers; a context manager."""

    def __init__(self, upstream: str, host: str = "127.0.0.1", timeout_s: float = 30.0) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"upstream must be an http:// URL, got {upstream!r}")
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port or 80
        self.timeout_s = timeout_s
        self._rules: list[Rule] = []
        self._answers: list[ProxiedAnswer] = []
        self._changed = threading.Condition()
        self._server = _Server((host, 0), self)
        self.host, self.port = str(self._server.server_address[0]), int(self._server.server_address[1])
        self.base_url = f"http://{self.host}:{self.port}"
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        """Serve on a background thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                            name="corrupting-proxy", daemon=True)
            self._thread.start()
            logger.info("corrupting proxy: {} -> http://{}:{}", self.base_url, self.upstream_host, self.upstream_port)
        return self

    def stop(self) -> None:
        """Stop serving, close every connection, release the port (idempotent)."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()
        self._server.close_connections()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def client(self, api_key: str | None = None, api_secret: str | None = None, **options: Any) -> Any:
        """A real ccxt.krakenfutures client whose base URL is this proxy."""
        from exchange.client import make_kraken_client

        return make_kraken_client(self.base_url, api_key, api_secret, **options)

    # --- rules -------------------------------------------------------------------------------

    def add(self, rule: Rule) -> Rule:
        """Add a rule; the oldest matching rule with turns left wins."""
        if rule.kind is Corruption.TRANSFORM and rule.transform is None:
            raise ValueError("a TRANSFORM rule needs a transform")
        if rule.times is not None and rule.times < 1:
            raise ValueError(f"times must be >= 1 or None, got {rule.times}")
        rule._proxy = self
        with self._changed:
            self._rules.append(rule)
        return rule

    def empty_body(self, endpoint: str, times: int | None = 1, method: str | None = None) -> Rule:
        """Answer `endpoint` with its status and an empty body."""
        return self.add(Rule(endpoint, Corruption.EMPTY, times, method=method))

    def html_page(self, endpoint: str, times: int | None = 1, method: str | None = None) -> Rule:
        """Answer `endpoint` with status 200 and an HTML error page."""
        return self.add(Rule(endpoint, Corruption.HTML, times, method=method))

    def success_without_list(self, endpoint: str, times: int | None = 1, method: str | None = None) -> Rule:
        """Answer `endpoint` with `{"result": "success"}` (and the real serverTime), without its payload."""
        return self.add(Rule(endpoint, Corruption.SUCCESS_WITHOUT_LIST, times, method=method))

    def transform(self, endpoint: str, function: Transform, times: int | None = 1, method: str | None = None) -> Rule:
        """Answer `endpoint` with `function(decoded answer)`; an answer it returns None for passes unchanged."""
        return self.add(Rule(endpoint, Corruption.TRANSFORM, times, transform=function, method=method))

    def remove(self, rule: Rule) -> None:
        """Remove one rule (no error if already gone)."""
        with self._changed:
            if rule in self._rules:
                self._rules.remove(rule)

    def clear(self, endpoint: str | None = None) -> None:
        """Remove every rule, or those for one endpoint."""
        with self._changed:
            self._rules = [r for r in self._rules if endpoint is not None and r.endpoint != endpoint]

    def rules(self) -> list[Rule]:
        """The rules in force."""
        with self._changed:
            return list(self._rules)

    # --- what happened -------------------------------------------------------------------------

    def answers(self, endpoint: str | None = None) -> list[ProxiedAnswer]:
        """Every answer sent on (optionally for one endpoint), oldest first."""
        probe = Rule(endpoint or "", Corruption.EMPTY)
        with self._changed:
            return [a for a in self._answers if endpoint is None or probe.matches(a.request)]

    def corrupted(self, endpoint: str | None = None) -> int:
        """How many answers were corrupted (optionally for one endpoint)."""
        return sum(1 for a in self.answers(endpoint) if a.corrupted_by is not None)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> Any:
        """Wait (on the proxy's own events, no polling) until `predicate()` holds; fail after `timeout`."""
        with self._changed:
            if not self._changed.wait_for(predicate, timeout):
                raise AssertionError(f"corrupting proxy: timed out after {timeout}s waiting for {what}")
            return predicate()

    # --- the work ------------------------------------------------------------------------------

    def _take_rule(self, request: ProxiedRequest) -> Rule | None:
        with self._changed:
            return next((r for r in self._rules if not r.exhausted and r.matches(request)), None)

    def _corrupt(self, request: ProxiedRequest, status: int, headers: list[tuple[str, str]],
                 body: bytes) -> tuple[int, list[tuple[str, str]], bytes, Corruption | None]:
        """Apply the first matching rule with turns left; count it only if it changed the answer."""
        while True:
            rule = self._take_rule(request)
            if rule is None:
                return status, headers, body, None
            result = _apply(rule, status, headers, body)
            with self._changed:
                if rule.exhausted or rule not in self._rules:
                    continue  # another thread used its last turn meanwhile: look again
                if result is None:
                    return status, headers, body, None
                rule.applied += 1
                if rule.exhausted:
                    self._rules.remove(rule)
            logger.debug("corrupting proxy: {} {} answered {} ({})", request.method, request.path, rule.kind.value,
                         rule.applied)
            return (*result, rule.kind)

    def _record(self, answer: ProxiedAnswer) -> None:
        with self._changed:
            self._answers.append(answer)
            self._changed.notify_all()

    def forward(self, request: ProxiedRequest) -> tuple[int, list[tuple[str, str]], bytes] | None:
        """Send the request upstream as it came; None when the upstream dropped the connection."""
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=self.timeout_s)
        try:
            target = request.path + (f"?{request.query}" if request.query else "")
            conn.putrequest(request.method, target, skip_accept_encoding=True)
            for name, value in request.headers:
                conn.putheader(name, value)
            if request.body or request.method in ("POST", "PUT"):
                conn.putheader("Content-Length", str(len(request.body)))
            conn.endheaders(request.body or None)
            response = conn.getresponse()
            body = response.read()
            headers = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
            return response.status, headers, body
        except (OSError, http.client.HTTPException) as exc:
            logger.debug("corrupting proxy: upstream dropped {} {}: {!r}", request.method, request.path, exc)
            return None
        finally:
            conn.close()


def _apply(rule: Rule, status: int, headers: list[tuple[str, str]],
           body: bytes) -> tuple[int, list[tuple[str, str]], bytes] | None:
    """The corrupted (status, headers, body), or None when the rule leaves this answer alone."""
    json_headers = [(k, v) for k, v in headers if k.lower() != "content-type"] + [("Content-Type", "application/json")]
    if rule.kind is Corruption.EMPTY:
        return status, headers, b""
    if rule.kind is Corruption.HTML:
        html = [(k, v) for k, v in headers if k.lower() != "content-type"] + [("Content-Type", "text/html")]
        return 200, html, HTML_PAGE
    try:
        decoded = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None  # nothing to rewrite: not JSON (already an error page, a dropped answer...)
    if rule.kind is Corruption.SUCCESS_WITHOUT_LIST:
        bare: dict[str, Any] = {"result": "success"}
        if isinstance(decoded, dict) and "serverTime" in decoded:
            bare["serverTime"] = decoded["serverTime"]
        return status, json_headers, json.dumps(bare).encode()
    assert rule.transform is not None
    try:
        changed = rule.transform(copy.deepcopy(decoded))
    except Exception:  # noqa: BLE001 - a broken transform is a test bug: say so, pass the answer on
        logger.exception("corrupting proxy: transform for {} raised", rule.endpoint)
        return None
    if changed is None:
        return None
    return status, json_headers, json.dumps(changed).encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], proxy: CorruptingProxy) -> None:
        self.proxy = proxy
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def close_connections(self) -> None:
        with self.connections_lock:
            for conn in list(self.connections):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.connections.clear()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        logger.trace("corrupting proxy http: " + format, *args)

    def do_GET(self) -> None:
        self._proxy()

    def do_POST(self) -> None:
        self._proxy()

    def do_PUT(self) -> None:
        self._proxy()

    def do_DELETE(self) -> None:
        self._proxy()

    def _proxy(self) -> None:
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.send_error(413)
            return
        body = self.rfile.read(length) if length else b""
        headers = tuple((k, v) for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP)
        request = ProxiedRequest(self.command, path, query, body, headers)
        proxy = self.server.proxy
        answer = proxy.forward(request)
        if answer is None:  # the upstream dropped it: so does the proxy (the client sees a reset)
            self.close_connection = True
            proxy._record(ProxiedAnswer(request, 0, b"", None, 0, b""))
            return
        status, out_headers, out_body, kind = proxy._corrupt(request, *answer)
        # Recorded before it is sent: whoever got the answer can count it at once.
        proxy._record(ProxiedAnswer(request, status, out_body, kind, answer[0], answer[2]))
        try:
            self.send_response(status)
            for name, value in out_headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(out_body)))
            self.end_headers()
            self.wfile.write(out_body)
        except OSError:
            self.close_connection = True


# --- transforms for the usual corruptions ---------------------------------------------------------


def _same_symbol(a: Any, b: str) -> bool:
    return isinstance(a, str) and a.lower() == b.lower()


def drop_open_order(cli_ord_id: str) -> Transform:
    """`openorders`: remove the open order with this cliOrdId (leave answers without it alone)."""

    def change(doc: Any) -> Any:
        orders = doc.get("openOrders") if isinstance(doc, dict) else None
        if not isinstance(orders, list):
            return None
        kept = [o for o in orders if not (isinstance(o, dict) and o.get("cliOrdId") == cli_ord_id)]
        if len(kept) == len(orders):
            return None
        doc["openOrders"] = kept
        return doc

    return change


def drop_position(symbol: str) -> Transform:
    """`openpositions`: remove the position of this Kraken symbol (e.g. `PF_XBTUSD`)."""

    def change(doc: Any) -> Any:
        positions = doc.get("openPositions") if isinstance(doc, dict) else None
        if not isinstance(positions, list):
            return None
        kept = [p for p in positions if not (isinstance(p, dict) and _same_symbol(p.get("symbol"), symbol))]
        if len(kept) == len(positions):
            return None
        doc["openPositions"] = kept
        return doc

    return change


def repeat_fill(fill_id: str | None = None, new_fill_id: str | None = None) -> Transform:
    """`fills`: append a copy of the fill `fill_id` (default: the newest) under a new fill_id."""

    def change(doc: Any) -> Any:
        fills = doc.get("fills") if isinstance(doc, dict) else None
        if not isinstance(fills, list) or not fills:
            return None
        original = next((f for f in fills if isinstance(f, dict) and f.get("fill_id") == fill_id), None) \
            if fill_id is not None else max(fills, key=lambda f: str(f.get("fillTime", "")))
        if original is None:
            return None
        twin = dict(original)
        twin["fill_id"] = new_fill_id or str(uuid.uuid4())
        fills.append(twin)
        return doc

    return change


def reject_placed(status: str = "insufficientAvailableFunds", cli_ord_id: str | None = None) -> Transform:
    """`sendorder` / `batchorder`: report a `placed` order (optionally only this cliOrdId) as rejected.

    The order really rests or filled on the exchange; only the answer says otherwise.
    """

    def reject(item: dict[str, Any]) -> bool:
        if item.get("status") != "placed" or (cli_ord_id is not None and item.get("cliOrdId") != cli_ord_id):
            return False
        item["status"] = status
        item.pop("order_id", None)
        item["orderEvents"] = []
        return True

    def change(doc: Any) -> Any:
        if not isinstance(doc, dict):
            return None
        changed = False
        send = doc.get("sendStatus")
        if isinstance(send, dict):
            changed = reject(send)
        batch = doc.get("batchStatus")
        if isinstance(batch, list):
            for item in batch:
                if isinstance(item, dict) and reject(item):
                    changed = True
        return doc if changed else None

    return change


__all__ = [
    "CorruptingProxy",
    "Corruption",
    "ProxiedAnswer",
    "ProxiedRequest",
    "Rule",
    "drop_open_order",
    "drop_position",
    "reject_placed",
    "repeat_fill",
]
