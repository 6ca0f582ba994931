"""The control endpoint: JSON over HTTP on loopback, every request authenticated with a bearer token.

Routes (every request needs the header `Authorization: Bearer <token>`, else 401 and nothing changes):

`GET /v1/status`
    200 with `PortfolioStatus.model_dump(mode="json")`: see `control.status_view` for every field.

`POST /v1/control` with a JSON object body (at most 64 KiB, `Content-Length` required):
    `{"command": "pause"|"resume"|"halt"|"unhalt"|"cancel"|"flatten"|"resolve"|"stop",
      "symbol": "BTC/USD:USD" | null, "all": false, "source": "who sends it", "reason": "halt only"}`
    - pause, resume, cancel, flatten need exactly one of `symbol` or `"all": true`;
    - halt and unhalt apply to every symbol, or to `symbol` when one is given;
    - resolve needs a symbol and refuses all: it unblocks that BLOCKED symbol after the operator checked the exchange;
    - stop takes neither; it asks the system to shut down cleanly.
    Unknown fields are errors. Answers:
    - 200 `{"ok": true, "detail": "...", "symbols": [...]}` (the system's ControlReply);
    - 400 `{"error": ...}` malformed JSON, unknown command (the message lists the allowed ones),
      a missing or doubled symbol/all, a wrong type;
    - 404 `{"error": detail, "ok": false, "detail": ..., "symbols": []}` unknown symbol;
    - 409 the same shape: the system refused for another reason;
    - 400 also for JSON nested deeper than a few levels, and for an ambiguous request: more than one
      Content-Length or Authorization header, Transfer-Encoding with Content-Length, a Content-Length that
      is not digits;
    - 411 no Content-Length; 413 body over 64 KiB;
    - 500 `{"error": ...}` the system raised: the command may or may not have taken effect.

`GET /v1/trades|orders|pnl|why|markets?symbol=&since=&limit=&open=&by=`
    200 `{"report", "traded", "rows", ...}` read-only reports (control/report_requests.py; keys in control/README.md);
    400 a bad parameter; 404 an unknown symbol (naming the traded ones); 501 a target without reports.

Any other path: 404 `{"error": ..., "routes": [...]}`; a known path with another method: 405 with `Allow`.

Concurrency: a listen backlog of LISTEN_BACKLOG connections and a pool of WORKERS threads; connections
accepted while every worker is busy wait their turn (they are never reset). Each connection is closed
gracefully: after the answer, the server stops writing and reads what the client still sends, so the
kernel never turns unread input into a reset that would destroy the answer.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import socketserver
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import TracebackType
from typing import Any

from loguru import logger

from configuration import ControlConfig, LoadedConfig, register_secret
from control.errors import ControlServerError
from control.service import ControlService, Response, error, format_traceback
from control.target import ControlTarget
from control.token import ensure_token

REQUEST_TIMEOUT_S = 10.0  # a client that sends its request slower than this is dropped
LISTEN_BACKLOG = 1024  # connections the kernel queues before we accept them (it caps this at somaxconn)
WORKERS = 32  # requests served at once; more wait in the pool's queue, never refused
LINGER_S = 2.0  # after an answer: how long to wait for the client to finish sending and close
LINGER_BYTES = 1024 * 1024  # ... and how much of its leftover input to read and drop
_SINGLE_HEADERS = ("Content-Length", "Authorization", "Host", "Content-Type")  # more than one: ambiguous, 400


def is_loopback(host: str) -> bool:
    """True when `host` is a loopback name or address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_for(host: str, port: int) -> str:
    """The http URL of a host and port (IPv6 addresses in brackets)."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class _HTTPServer(HTTPServer):
    """An HTTP server with a deep backlog and a worker pool; binds without a reverse DNS lookup; closes gracefully."""

    request_queue_size = LISTEN_BACKLOG
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], family: socket.AddressFamily, service: ControlService) -> None:
        self.address_family = family
        self.service = service
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="control-worker")
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Hand the accepted connection to a worker (it waits in the queue while all are busy)."""
        try:
            self._pool.submit(self._work, request, client_address)
        except RuntimeError:  # the pool is shut down: we are stopping
            self.shutdown_request(request)

    def _work(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def shutdown_request(self, request: Any) -> None:
        """Close gracefully: stop writing, read (and drop) what the client still sends, then close."""
        try:
            request.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        try:
            deadline = time.monotonic() + LINGER_S
            left = LINGER_BYTES
            while left > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                request.settimeout(remaining)
                chunk = request.recv(min(left, 65536))
                if not chunk:
                    break
                left -= len(chunk)
        except OSError:
            pass
        finally:
            request.close()

    def server_close(self) -> None:
        """Close the listening socket; requests in progress finish on their workers."""
        super().server_close()
        self._pool.shutdown(wait=False)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log a request that failed outside the service (a client that went away) instead of printing it."""
        exc = sys.exc_info()[1]
        client = f"{client_address[0]}:{client_address[1]}"
        if isinstance(exc, (ConnectionError, TimeoutError)):
            logger.debug("control: {} went away before its answer was written: {!r}", client, exc)
        else:
            text = format_traceback(exc) if exc is not None else "(no exception)"
            logger.error("control: a request from {} failed\n{}", client, text)

    def server_bind(self) -> None:
        """Bind, and name the server by its address (HTTPServer would look up the FQDN)."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)


class _Handler(BaseHTTPRequestHandler):
    """The HTTP shell around ControlService: read the request, write the answer."""

    server: _HTTPServer
    server_version = "trading-system-control/1"
    sys_version = ""
    protocol_version = "HTTP/1.0"
    timeout = REQUEST_TIMEOUT_S

    def version_string(self) -> str:
        """The Server header: our name only."""
        return self.server_version

    def _dispatch(self) -> None:
        ambiguity = self._ambiguity()
        if ambiguity is not None:
            self.close_connection = True
            logger.warning("control: refused {} from {}: {}", self.command, self._client(), ambiguity)
            self._send(error(400, ambiguity))
            return
        response = self.server.service.handle(
            self.command,
            self.path,
            self.headers.get("Authorization"),
            self.headers.get("Content-Length"),
            self.rfile.read,
            client=self._client(),
        )
        self._send(response)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _dispatch

    def _ambiguity(self) -> str | None:
        """Why the request's headers could be read two ways (request smuggling, confused proxies), or None."""
        for name in _SINGLE_HEADERS:
            count = len(self.headers.get_all(name) or [])
            if count > 1:
                return f"ambiguous request: {count} {name} headers; send exactly one"
        if self.headers.get_all("Transfer-Encoding") and self.headers.get_all("Content-Length"):
            return "ambiguous request: both Transfer-Encoding and Content-Length; send one Content-Length only"
        return None

    def _client(self) -> str:
        host, port = self.client_address[:2]
        return f"{host}:{port}"

    def _send(self, response: Response) -> None:
        body = response.encode()
        self.send_response(response.status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Answer a request that could not even be parsed, in JSON like every other answer."""
        self.close_connection = True
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "error"
        self.log_error("code %d, message %s", code, message or phrase)
        self._send(error(code, message or phrase))

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        """Send the stdlib's access and error lines to loguru at DEBUG."""
        logger.debug("control: {} {}", self._client(), format % args)


class ControlServer:
    """The control endpoint of a running system: `start()`, `stop()`, or use it as a context manager."""

    def __init__(self, target: ControlTarget, config: ControlConfig, token: str, *, port: int | None = None) -> None:
        register_secret(token)
        self.config = config
        self.service = ControlService(target, token)
        self._requested = (config.host, config.port if port is None else port)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """True between start() and stop()."""
        return self._httpd is not None

    @property
    def host(self) -> str:
        """The address it listens on."""
        return str(self._bound()[0])

    @property
    def port(self) -> int:
        """The port it listens on (the real one when the configured port was 0)."""
        return int(self._bound()[1])

    @property
    def url(self) -> str:
        """The base URL clients use, e.g. http://127.0.0.1:8765."""
        return url_for(self.host, self.port)

    def _bound(self) -> tuple[Any, ...]:
        if self._httpd is None:
            raise RuntimeError("the control server is not started")
        return tuple(self._httpd.server_address)

    def start(self) -> ControlServer:
        """Bind and serve in a daemon thread; raise ControlServerError when the address cannot be used."""
        if self._httpd is not None:
            return self
        host, port = self._requested
        try:
            family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
            self._httpd = _HTTPServer((host, port), family, self.service)
        except OSError as exc:
            hint = (
                "; is a trading system with this configuration already running? (control.port sets the port)"
                if getattr(exc, "errno", None) == errno.EADDRINUSE
                else ""
            )
            reason = exc.strerror or str(exc)
            raise ControlServerError(f"the control endpoint cannot listen on {host}:{port}: {reason}{hint}") from None
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="control-server", daemon=True
        )
        self._thread.start()
        if is_loopback(host):
            logger.info("control: listening on {}", self.url)
        else:
            logger.warning(
                "control: listening on {} which is NOT loopback (control.allow_remote = true): anyone who can reach "
                "it and holds the token can pause, flatten or stop this system, and plain HTTP carries the token "
                "unencrypted",
                self.url,
            )
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and close the socket; requests in progress finish on their own threads."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._httpd = self._thread = None
        httpd.shutdown()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout)
        logger.info("control: stopped")

    def __enter__(self) -> ControlServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_control_endpoint(target: ControlTarget, loaded: LoadedConfig) -> ControlServer:
    """Load (or generate) the token and start the control endpoint the configuration describes."""
    token = ensure_token(loaded.config.control, loaded.storage_dir)
    server = ControlServer(target, loaded.config.control, token.value).start()
    logger.info("control: commands need the token from the {}", token.source)
    return server
