"""The errors of the control endpoint's client side, one class per thing that can go wrong."""

from __future__ import annotations

from typing import Any


class ControlError(Exception):
    """A control command could not be carried out; the message says why, for a person."""


class TokenError(ControlError):
    """The control token cannot be used: a token file with loose permissions, unreadable, or empty."""


class NotRunningError(ControlError):
    """Nothing listens on the control endpoint: no trading system runs for this configuration."""


class UnauthorizedError(ControlError):
    """The running system refused the control token (401)."""


class CommandRefused(ControlError):
    """The running system refused the request (a 4xx answer) and changed nothing."""

    def __init__(self, status: int, message: str, payload: dict[str, Any] | None = None) -> None:
        self.status = status
        self.message = message
        self.payload = payload or {}
        super().__init__(message)


class ServerError(ControlError):
    """The system failed to answer (5xx, time-out, dropped connection, not our protocol): the outcome is unknown."""


class ControlServerError(ControlError):
    """The control endpoint cannot start (e.g. its port is taken)."""
