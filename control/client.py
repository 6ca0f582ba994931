"""The client side of the control endpoint: one HTTP request per call, errors a person can act on."""

from __future__ import annotations

import getpass
import http.client
import json
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from control.errors import CommandRefused, NotRunningError, ServerError, UnauthorizedError

DEFAULT_TIMEOUT_S = 10.0


def default_source() -> str:
    """Who sends a command from this shell: `cli:user@host`."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}@{socket.gethostname()}"


class ControlClient:
    """Talks to a running system's control endpoint at `base_url` (e.g. http://127.0.0.1:8765)."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        timeout: float = DEFAULT_TIMEOUT_S,
        *,
        config_path: Path | str | None = None,
        token_hint: str | None = None,
        token_source: str | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname or parts.port is None:
            raise ValueError(f"the control URL must look like http://127.0.0.1:8765, got {base_url!r}")
        self.host: str = parts.hostname
        self.port: int = parts.port
        self.token = token
        self.timeout = timeout
        self.config_path = config_path
        self.token_hint = token_hint  # where the running system takes its token from, for the 401 message
        self.token_source = token_source  # where this client's token came from, for the 401 message

    @property
    def address(self) -> str:
        """host:port, as messages show it."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def status(self) -> dict[str, Any]:
        """The running system's status (PortfolioStatus as JSON)."""
        return self._request("GET", "/v1/status", None)

    def command(
        self,
        command: str,
        symbol: str | None = None,
        all: bool = False,  # noqa: A002 - the wire field is called "all"
        source: str | None = None,
        reason: str = "",
        *,
        pause: bool = False,
        cancel_orders: bool = False,
        flatten: bool = False,
    ) -> dict[str, Any]:
        """Send a control command; return the system's reply `{"ok", "detail", "symbols"}`.

        The flags (pause, cancel_orders, flatten) go on the wire only when set, as the endpoint takes them."""
        body: dict[str, Any] = {"command": command, "symbol": symbol, "all": all, "source": source or default_source()}
        if reason:
            body["reason"] = reason
        flags = {"pause": pause, "cancel_orders": cancel_orders, "flatten": flatten}
        body.update({name: True for name, value in flags.items() if value})
        return self._request("POST", "/v1/control", body)

    def report(self, name: str, **params: str | int | bool | None) -> dict[str, Any]:
        """A read-only report, `GET /v1/<name>?<params>` (trades, orders, pnl, why, markets; None leaves one out)."""
        query = urlencode({k: str(v).lower() if isinstance(v, bool) else v for k, v in params.items()
                           if v is not None})
        return self._request("GET", f"/v1/{name}" + (f"?{query}" if query else ""), None)

    def _request(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        # http.client, not urllib: urllib would honour HTTP(S)_PROXY and hand the token to a proxy.
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        payload = None
        if body is not None:
            payload = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        try:
            try:
                conn.connect()
            except OSError as exc:
                raise self._not_running(exc) from None
            try:
                conn.request(method, path, body=payload, headers=headers)
                response = conn.getresponse()
                raw = response.read()
            except TimeoutError:
                raise ServerError(
                    f"the trading system at {self.address} did not answer within {self.timeout:g} s"
                    + self._maybe_applied(method)
                ) from None
            except (http.client.HTTPException, OSError) as exc:
                raise ServerError(
                    f"the trading system at {self.address} closed the connection without an answer ({exc!r})"
                    + self._maybe_applied(method)
                ) from None
        finally:
            conn.close()
        return self._decode(response.status, response.getheader("Content-Type", ""), raw, method)

    def _not_running(self, exc: OSError) -> NotRunningError:
        where = f" for {self.config_path}" if self.config_path else ""
        if isinstance(exc, ConnectionRefusedError):
            return NotRunningError(f"no trading system is running{where}: nothing listens on {self.address}")
        reason = exc.strerror or type(exc).__name__
        return NotRunningError(f"no trading system is running{where}: cannot reach {self.address} ({reason})")

    @staticmethod
    def _maybe_applied(method: str) -> str:
        return "; the command may or may not have taken effect: check `status`" if method == "POST" else ""

    def _decode(self, status: int, content_type: str, raw: bytes, method: str) -> dict[str, Any]:
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            data = None
        if not isinstance(data, dict):
            raise ServerError(
                f"something else answers on {self.address} (HTTP {status}, {content_type or 'no content type'}): "
                "not a trading system's control endpoint; check control.port in the configuration"
            )
        message = str(data.get("error") or data.get("detail") or "")
        if status == 401:
            raise UnauthorizedError(self._unauthorized_message())
        if 400 <= status < 500:
            raise CommandRefused(status, message or f"refused (HTTP {status})", data)
        if status >= 500:
            raise ServerError(message or f"the trading system at {self.address} failed (HTTP {status})")
        if not 200 <= status < 300:
            raise ServerError(f"unexpected answer from {self.address}: HTTP {status} {message}".rstrip())
        return data

    def _unauthorized_message(self) -> str:
        hint = f" The running system takes its token from the {self.token_hint}." if self.token_hint else ""
        if not self.token:
            return f"the trading system at {self.address} wants a control token and none was found.{hint}"
        sent = f" from the {self.token_source}" if self.token_source else ""
        return (
            f"the trading system at {self.address} refused the control token{sent}: it is not the one the system "
            f"started with.{hint} Make sure this shell sees the same value (or restart the system)."
        )
