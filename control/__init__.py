"""Control a running system from outside: the local HTTP endpoint, its client, the CLI and the status view."""

from control.cli import EXIT_FAILED, EXIT_NOT_RUNNING, EXIT_OK, EXIT_REFUSED, EXIT_USAGE, client_for, main, register
from control.client import ControlClient, default_source
from control.commands import COMMANDS, CommandRequest, RequestError, parse_command, reply_status, to_message
from control.errors import (
    CommandRefused,
    ControlError,
    ControlServerError,
    NotRunningError,
    ServerError,
    TokenError,
    UnauthorizedError,
)
from control.server import ControlServer, is_loopback, start_control_endpoint, url_for
from control.service import MAX_BODY_BYTES, ROUTES, ControlService, Response
from control.status_view import render_status
from control.target import ControlMessage, ControlTarget
from control.token import ControlToken, describe_token_source, ensure_token, find_token, token_file, tokens_equal

__all__ = [
    "COMMANDS",
    "EXIT_FAILED",
    "EXIT_NOT_RUNNING",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "MAX_BODY_BYTES",
    "ROUTES",
    "CommandRefused",
    "CommandRequest",
    "ControlClient",
    "ControlError",
    "ControlMessage",
    "ControlServer",
    "ControlServerError",
    "ControlService",
    "ControlTarget",
    "ControlToken",
    "NotRunningError",
    "RequestError",
    "Response",
    "ServerError",
    "TokenError",
    "UnauthorizedError",
    "client_for",
    "default_source",
    "describe_token_source",
    "ensure_token",
    "find_token",
    "is_loopback",
    "main",
    "parse_command",
    "register",
    "render_status",
    "start_control_endpoint",
    "reply_status",
    "to_message",
    "token_file",
    "tokens_equal",
    "url_for",
]
