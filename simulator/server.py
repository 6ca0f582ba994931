"""The HTTP shell: Kraken paths and the `/sim/` admin endpoint on a background ThreadingHTTPServer."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from loguru import logger

from simulator.admin import ADMIN_ROUTES, AdminError, SimulatorAdmin
from simulator.api import ApiResponse, route
from simulator.config import SimulatorConfig
from simulator.faults import FaultAction
from simulator.orders import iso
from simulator.simulation import Simulator

if TYPE_CHECKING:
    import ccxt

MAX_BODY_BYTES = 1_000_000
IDLE_CONNECTION_TIMEOUT_S = 120.0


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer carrying the simulator; daemon handler threads, no join on close."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], simulator: Simulator) -> None:
        self.sim = simulator
        self.admin = SimulatorAdmin(simulator)
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def close_connections(self) -> None:
        """Shut down every open keep-alive connection so no handler keeps serving after stop."""
        with self.connections_lock:
            for conn in list(self.connections):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.connections.clear()


class _Handler(BaseHTTPRequestHandler):
    """One connection; keep-alive (HTTP/1.1) like Kraken's front end."""

    protocol_version = "HTTP/1.1"
    server_version = "KrakenFuturesSimulator/1.0"
    sys_version = ""
    timeout = IDLE_CONNECTION_TIMEOUT_S
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        """Register the connection so `stop()` can close it."""
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        """Unregister the connection."""
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Route http.server's own logging to loguru at trace level."""
        logger.trace("simulator http: " + format, *args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Malformed HTTP gets Kraken's JSON error shape, never an HTML page."""
        body = json.dumps({"result": "error", "serverTime": iso(int(time.time() * 1000)),
                           "error": message or "Bad Request"}).encode()
        try:
            self.send_response(code, message)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD" and code >= 200 and code not in (204, 304):
                self.wfile.write(body)
        except OSError:
            pass
        self.close_connection = True

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        """Serve GET."""
        self._dispatch()

    def do_POST(self) -> None:  # noqa: N802
        """Serve POST."""
        self._dispatch()

    def do_PUT(self) -> None:  # noqa: N802
        """Serve PUT (Kraken has a few; the simulator answers methodNotAllowed/notFound)."""
        self._dispatch()

    def do_DELETE(self) -> None:  # noqa: N802
        """Serve DELETE."""
        self._dispatch()

    def do_HEAD(self) -> None:  # noqa: N802
        """Answer HEAD with an empty 405."""
        self.send_error(405, "methodNotAllowed")

    # -- plumbing -------------------------------------------------------------------
    def _read_body(self) -> str | None:
        """The request body as text; None after answering a bad body."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.send_error(411, "Length Required")
            return None
        raw_length = self.headers.get("Content-Length", "0") or "0"
        try:
            length = int(raw_length)
        except ValueError:
            self.send_error(400, "Bad Request")
            return None
        if length < 0:
            self.send_error(400, "Bad Request")
            return None
        if length > MAX_BODY_BYTES:
            self.send_error(413, "Request Entity Too Large")
            return None
        data = self.rfile.read(length) if length else b""
        if len(data) < length:
            self.close_connection = True
            return None
        return data.decode("utf-8", errors="replace")

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        """Write a complete response with Content-Length."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self._headers_buffer.append(b"\r\n" + body)  # type: ignore[attr-defined]  # headers and body leave in one segment
        self.flush_headers()

    def _reset_connection(self) -> None:
        """Abort the TCP connection with a RST, as a broken network path would."""
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass
        self.close_connection = True

    def _dispatch(self) -> None:
        """Split target, read body, hand to admin or Kraken handling."""
        if self.server.sim.stop_event.is_set():
            self._reset_connection()
            return
        path, _, query = self.path.partition("?")
        body = self._read_body()
        if body is None:
            return
        self.server.sim.run_due()  # held (`late`) requests due by now are processed before anything else
        if path.startswith("/sim/") or path == "/sim":
            self._admin(path[len("/sim/"):].strip("/"), query, body)
            return
        self._kraken(path, query, body)

    # -- admin ----------------------------------------------------------------------
    def _admin(self, name: str, query: str, body: str) -> None:
        """Run one admin operation; JSON in, JSON out."""
        method_name = ADMIN_ROUTES.get(name)
        if method_name is None:
            answer = {"error": f"unknown admin route {name!r}", "routes": sorted(ADMIN_ROUTES)}
            self._send(404, json.dumps(answer).encode())
            return
        try:
            if self.command == "POST" and body.strip():
                kwargs = json.loads(body)
                if not isinstance(kwargs, dict):
                    raise AdminError("admin body must be a JSON object")
            else:
                kwargs = {k: v[0] for k, v in parse_qs(query).items()}
            kwargs = {k: v for k, v in kwargs.items() if v is not None}
            result = getattr(self.server.admin, method_name)(**kwargs)
        except (AdminError, ValueError, TypeError) as exc:
            self._send(400, json.dumps({"error": str(exc)}).encode())
            return
        except Exception as exc:  # noqa: BLE001 - keep serving
            logger.exception("simulator: admin {} failed", name)
            self._send(500, json.dumps({"error": repr(exc)}).encode())
            return
        self._send(200, json.dumps(result, default=str).encode())

    # -- Kraken ---------------------------------------------------------------------
    def _kraken(self, path: str, query: str, body: str) -> None:
        """Apply faults around one Kraken request."""
        sim = self.server.sim
        r = route(self.command, path)
        action = sim.faults.decide(r.endpoint) if r.family != "unknown" else FaultAction()
        if action.delay_ms > 0:
            sim.stop_event.wait(action.delay_ms / 1000)
        kind = action.kind
        entry: dict[str, object] = {
            "time": sim.clock.now_ms(),
            "method": self.command,
            "endpoint": r.endpoint or path,
            "target": self.path[:500],
            "fault": kind if kind != "latency" else None,
        }
        if kind == "reset":
            entry["status"] = None
            sim.log_request(entry)
            self._reset_connection()
            return
        if kind == "late":  # held inside the exchange: processed late_ms after receipt, after the client gave up
            received = sim.clock.now_ms()
            entry["status"] = None
            sim.log_request(entry)
            sim.defer(received + int(action.late_ms), {
                "method": self.command, "path": path, "query": query, "body": body,
                "headers": {k: v for k, v in self.headers.items()}, "endpoint": r.endpoint, "target": entry["target"],
                "received_ms": received,
            })
            sim.stop_event.wait(action.hold_ms / 1000)
            self._reset_connection()
            return
        if kind == "timeout":  # the client gives up before the exchange ever processes the request
            entry["status"] = None
            sim.log_request(entry)
            sim.stop_event.wait(action.hold_ms / 1000)
            self._reset_connection()
            return
        if kind in ("unavailable", "http_500", "http_429", "api_limit"):
            status, payload = self._fault_response(kind)
            entry["status"] = status
            sim.log_request(entry)
            self._send(status, payload, "application/json" if kind in ("unavailable", "api_limit") else "text/plain")
            return
        headers = {k: v for k, v in self.headers.items()}
        context = {"received_ms": entry["time"], "fault": entry["fault"]}
        response: ApiResponse = sim.api.handle(self.command, path, query, body, headers, context)
        sim.after_request(r.endpoint)  # order changes reach the state file before the answer leaves
        sim.log_answer(entry, response)
        if kind == "accept_then_drop":
            self._reset_connection()
            return
        if kind == "accept_then_timeout":
            sim.stop_event.wait(action.hold_ms / 1000)
            self._reset_connection()
            return
        if kind == "accept_then_unavailable":
            status, payload = self._fault_response("unavailable")
            self._send(status, payload)
            return
        self._send(response.status, response.encode())

    def _fault_response(self, kind: str) -> tuple[int, bytes]:
        """Status and body of an injected error response."""
        now = iso(self.server.sim.clock.now_ms())
        if kind == "unavailable":
            return 503, json.dumps({"result": "error", "serverTime": now, "error": "unavailable"}).encode()
        if kind == "api_limit":
            return 200, json.dumps({"result": "error", "serverTime": now, "error": "apiLimitExceeded"}).encode()
        if kind == "http_429":
            return 429, b"Too Many Requests"
        return 500, b"Internal Server Error"


class SimulatorHandle:
    """A running simulator: its URL and keys, admin controls, and `stop()`; a context manager."""

    def __init__(self, simulator: Simulator, server: _Server, thread: threading.Thread,
                 advancer: threading.Thread | None) -> None:
        self.simulator = simulator
        self.admin = server.admin
        self._server = server
        self._thread = thread
        self._advancer = advancer
        host, port = server.server_address[:2]
        self.host = str(host)
        self.port = int(port)
        self.base_url = f"http://{self.host}:{self.port}"
        self._stopped = False

    @property
    def api_key(self) -> str:
        """The API key the simulator accepts."""
        return self.simulator.api_key

    @property
    def api_secret(self) -> str:
        """The base64 API secret the simulator accepts."""
        return self.simulator.api_secret

    @property
    def config(self) -> SimulatorConfig:
        """The configuration it was started with."""
        return self.simulator.config

    def client(self, **options: Any) -> ccxt.krakenfutures:
        """A real ccxt.krakenfutures client pointed at this simulator with its keys."""
        from exchange.client import make_kraken_client

        return make_kraken_client(self.base_url, self.api_key, self.api_secret, **options)

    def stop(self) -> None:
        """Stop serving and release the port (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        self.simulator.stop_event.set()
        stopper = threading.Thread(target=self._server.shutdown, name="kraken-simulator-stop", daemon=True)
        stopper.start()
        while stopper.is_alive():  # wake the accept loop so shutdown need not wait for its poll interval
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
            except OSError:
                pass
            stopper.join(timeout=0.01)
        self._server.server_close()
        self._server.close_connections()
        self._thread.join(timeout=5)
        if self._advancer is not None:
            self._advancer.join(timeout=5)
        self.simulator.close()
        logger.info("simulator: stopped {}", self.base_url)

    def __enter__(self) -> SimulatorHandle:
        """Use as `with start_simulator(...) as sim:`."""
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Stop on leaving the block."""
        self.stop()


def _advance_loop(simulator: Simulator, interval_s: float) -> None:
    """Keep a real-time simulation's markets moving between requests."""
    while not simulator.stop_event.wait(interval_s):
        try:
            simulator.exchange.sync()
            simulator.run_due()
        except Exception:  # noqa: BLE001 - the loop must survive
            logger.exception("simulator: background advance failed")


def start_simulator(config: SimulatorConfig | None = None, **overrides: Any) -> SimulatorHandle:
    """Start a simulator on a background daemon thread and return its handle."""
    cfg = config or SimulatorConfig()
    if overrides:
        cfg = SimulatorConfig.model_validate({**cfg.model_dump(), **overrides})
    simulator = Simulator(cfg)
    try:
        server = _Server((cfg.host, cfg.port), simulator)
    except BaseException:
        simulator.close()
        raise
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              name="kraken-simulator", daemon=True)
    thread.start()
    advancer = None
    if cfg.clock == "real":
        advancer = threading.Thread(target=_advance_loop, args=(simulator, cfg.advance_interval_s),
                                    name="kraken-simulator-clock", daemon=True)
        advancer.start()
    handle = SimulatorHandle(simulator, server, thread, advancer)
    logger.info("simulator: serving Kraken Futures on {} (seed {}, clock {}, speed {}, state file {})",
                handle.base_url, cfg.seed, cfg.clock, cfg.speed, cfg.state_file or "none")
    return handle
