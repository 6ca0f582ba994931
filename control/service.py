"""The control endpoint's logic, without HTTP: authenticate, route, validate, call the target, answer."""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from loguru import logger

from configuration import scrub
from control.commands import CommandRequest, RequestError, parse_command, reply_status, to_message
from control.report_requests import REPORT_ROUTES, parse_report_query, report_body
from control.target import ControlTarget, ReportTarget
from control.token import tokens_equal
from messages.control import ControlCode, ControlReply, ReportReply, Shutdown

MAX_BODY_BYTES = 64 * 1024
_MAX_DRAIN_BYTES = 1024 * 1024  # read and drop at most this much of an oversized body, so the client sees the 413
ROUTES: dict[str, tuple[str, ...]] = {"/v1/status": ("GET",), "/v1/control": ("POST",),
                                     **{route: ("GET",) for route in REPORT_ROUTES}}
ROUTE_LIST: tuple[str, ...] = tuple(f"{method} {path}" for path, methods in ROUTES.items() for method in methods)


@dataclass(frozen=True)
class Response:
    """An answer: HTTP status, JSON body, extra headers."""

    status: int
    body: dict[str, Any]
    headers: tuple[tuple[str, str], ...] = field(default=())

    def encode(self) -> bytes:
        """The body as UTF-8 JSON."""
        return json.dumps(self.body, ensure_ascii=False).encode("utf-8")


def error(status: int, message: str, **extra: Any) -> Response:
    """An error answer: {"error": message, ...extra}."""
    return Response(status, {"error": message, **extra})


class ControlService:
    """Turns authenticated HTTP requests into calls on a ControlTarget; thread-safe if the target is."""

    def __init__(self, target: ControlTarget, token: str) -> None:
        if not token:
            raise ValueError("the control endpoint needs a non-empty token")
        self.target = target
        self._token = token

    def handle(
        self,
        method: str,
        path: str,
        authorization: str | None,
        content_length: str | None,
        read_body: Callable[[int], bytes],
        client: str,
    ) -> Response:
        """Answer one request; never raises."""
        try:
            return self._handle(method, path, authorization, content_length, read_body, client)
        except Exception as exc:
            logger.error(
                "control: internal error on {} {} from {}\n{}", method, _clip(path), client, format_traceback(exc)
            )
            return error(500, "internal error in the control endpoint; see the trading system's log")

    def _handle(
        self,
        method: str,
        path: str,
        authorization: str | None,
        content_length: str | None,
        read_body: Callable[[int], bytes],
        client: str,
    ) -> Response:
        if not self.authorized(authorization):
            why = "no token" if not authorization else "wrong token"
            logger.warning("control: refused {} {} from {}: {}", method, _clip(path), client, why)
            return Response(
                401,
                {"error": "missing or wrong control token: send the header 'Authorization: Bearer <token>'"},
                (("WWW-Authenticate", 'Bearer realm="trading-system-control"'),),
            )
        route = urlsplit(path).path.rstrip("/") or "/"
        allowed = ROUTES.get(route)
        if allowed is None:
            return error(404, f"no such route: {_clip(route)}", routes=list(ROUTE_LIST))
        if method not in allowed:
            return Response(
                405,
                {"error": f"{route} does not accept {method}; use {' or '.join(allowed)}", "routes": list(ROUTE_LIST)},
                (("Allow", ", ".join(allowed)),),
            )
        if route == "/v1/status":
            return self.status()
        if route in REPORT_ROUTES:
            return self.report(route, urlsplit(path).query, client)
        body = _read_body(content_length, read_body)
        if isinstance(body, Response):
            logger.warning("control: refused a command from {}: {}", client, body.body["error"])
            return body
        return self.command(body, client)

    def authorized(self, authorization: str | None) -> bool:
        """True when the Authorization header carries our bearer token (compared in constant time)."""
        if not authorization:
            return False
        scheme, _, presented = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        return tokens_equal(self._token, presented.strip())

    def status(self) -> Response:
        """GET /v1/status: the target's PortfolioStatus as JSON."""
        try:
            status = self.target.status()
        except Exception as exc:
            logger.error("control: status failed\n{}", format_traceback(exc))
            return error(500, f"the trading system could not report its status: {_short(exc)}; see its log")
        return Response(200, status.model_dump(mode="json"))

    def report(self, route: str, query_string: str, client: str) -> Response:
        """GET /v1/trades|orders|pnl|why|markets: a read-only report (control/report_requests.py)."""
        kind = REPORT_ROUTES[route]
        try:
            query = parse_report_query(kind, query_string)
        except RequestError as exc:
            logger.warning("control: refused a {} report from {}: {}", kind.value, client, exc)
            return error(400, str(exc))
        if not isinstance(self.target, ReportTarget):
            return error(501, "this trading system does not answer reports; upgrade and restart it")
        try:
            reply = self.target.report(query)
        except Exception as exc:
            logger.error("control: the {} report failed\n{}", kind.value, format_traceback(exc))
            return error(500, f"the trading system could not make the {kind.value} report: {_short(exc)}; "
                              "see its log")
        if not isinstance(reply, ReportReply):
            return error(500, f"the trading system answered the {kind.value} report with {type(reply).__name__}")
        if not reply.ok:
            status = 404 if reply.code is ControlCode.UNKNOWN_SYMBOL else 409
            return error(status, reply.detail or f"{kind.value} refused", code=reply.code.value,
                         **{k: v for k, v in reply.extra.items() if k == "traded"})
        return Response(200, report_body(kind, reply))

    def command(self, body: bytes, client: str) -> Response:
        """POST /v1/control: validate the body, send its control message, answer with the reply."""
        try:
            request = parse_command(body)
        except RequestError as exc:
            logger.warning("control: refused a command from {}: {}", client, exc)
            return error(400, str(exc))
        message = to_message(request)
        logger.info(
            "control: {} accepted from source {!r} at {}", request.summary, request.source, client
        )
        try:
            if isinstance(message, Shutdown):
                reply = self.target.shutdown(message)
            else:
                reply = self.target.control(message)
        except Exception as exc:
            logger.error("control: {} failed\n{}", request.summary, format_traceback(exc))
            return error(
                500,
                f"the trading system failed to carry out {request.command}: {_short(exc)}; "
                "it may or may not have taken effect: check status and the system's log",
            )
        if not isinstance(reply, ControlReply):
            logger.error("control: {} got no ControlReply from the system but {!r}", request.summary, reply)
            return error(
                500,
                f"the trading system did not answer {request.command} (it returned {type(reply).__name__}); "
                "it may or may not have taken effect: check status and the system's log",
            )
        return self._answer(request, reply)

    @staticmethod
    def _answer(request: CommandRequest, reply: ControlReply) -> Response:
        status = reply_status(reply)
        body = reply.model_dump(mode="json")
        if status == 200:
            logger.info("control: {} done: {}", request.summary, reply.detail)
        else:
            logger.warning("control: {} refused by the system: {}", request.summary, reply.detail)
            body = {"error": reply.detail or f"{request.command} refused", **body}
        return Response(status, body)


def _read_body(content_length: str | None, read_body: Callable[[int], bytes]) -> bytes | Response:
    if content_length is None:
        return error(411, "a Content-Length header is required (chunked bodies are not accepted)")
    text = content_length.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 12:  # int() would take "+5", "1_0", "-3", " ５"
        return error(400, f"Content-Length must be a number of bytes (digits only), got {_clip(content_length)!r}")
    length = int(text)
    if length > MAX_BODY_BYTES:
        _drain(read_body, length)
        return error(413, f"the body has {length} bytes; the limit is {MAX_BODY_BYTES} bytes")
    body = read_body(length) if length else b""
    if len(body) < length:
        return error(400, f"the body ended after {len(body)} of the {length} bytes Content-Length announced")
    return body


def _drain(read_body: Callable[[int], bytes], length: int) -> None:
    remaining = min(length, _MAX_DRAIN_BYTES)
    while remaining > 0:
        chunk = read_body(min(remaining, 65536))
        if not chunk:
            return
        remaining -= len(chunk)


def format_traceback(exc: BaseException) -> str:
    """The traceback of `exc` as plain text, without local variables (they may hold the token), scrubbed."""
    return scrub("".join(traceback.format_exception(exc)).rstrip())


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = scrub(text)[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _clip(text: str, limit: int = 120) -> str:
    clipped = text[:limit] + ("..." if len(text) > limit else "")
    return clipped.encode("unicode_escape").decode("ascii")  # no newlines or escapes reach the log
