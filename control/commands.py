"""The body of `POST /v1/control`: strict validation, and the control message each command becomes."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, StrictBool, StrictStr, ValidationError, field_validator, model_validator

from control.target import ControlMessage
from messages.control import (
    CancelOrders,
    ControlCode,
    ControlReply,
    Flatten,
    Halt,
    Pause,
    Resolve,
    Resume,
    Shutdown,
    Unhalt,
)

COMMANDS: tuple[str, ...] = ("pause", "resume", "halt", "unhalt", "cancel", "flatten", "resolve", "stop")
SYMBOL_COMMANDS: frozenset[str] = frozenset({"pause", "resume", "cancel", "flatten"})  # need a symbol or all=true
ONE_SYMBOL_COMMANDS: frozenset[str] = frozenset({"resolve"})  # need exactly one symbol; all=true is refused
MAX_JSON_DEPTH = 8  # a command is one flat object; deeper nesting is refused before parsing
MAX_SOURCE_LENGTH = 200
MAX_SYMBOL_LENGTH = 64


class RequestError(ValueError):
    """A request body that cannot be accepted; the message says what is wrong."""


class CommandRequest(BaseModel):
    """One control command as a client sends it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: StrictStr
    symbol: StrictStr | None = None
    all: StrictBool = False
    source: StrictStr = "api"
    reason: StrictStr = ""  # halt only: why, recorded with the halt
    pause: StrictBool = False  # cancel and flatten only: pause the symbol(s) first, durably
    cancel_orders: StrictBool = False  # stop only: cancel every open order first
    flatten: StrictBool = False  # stop only: close positions and cancel every open order first

    @field_validator("command")
    @classmethod
    def _known_command(cls, value: str) -> str:
        command = value.strip().lower()
        if command not in COMMANDS:
            raise ValueError(f"unknown command {value!r}; allowed commands: {', '.join(COMMANDS)}")
        return command

    @field_validator("symbol")
    @classmethod
    def _plausible_symbol(cls, value: str | None) -> str | None:
        if value is None:
            return None
        symbol = value.strip().upper()
        if not symbol or len(symbol) > MAX_SYMBOL_LENGTH or not all(33 <= ord(ch) <= 126 for ch in symbol):
            raise ValueError(f"symbol must be a market symbol such as 'BTC/USD:USD', got {value[:80]!r}")
        return symbol

    @field_validator("source", "reason")
    @classmethod
    def _printable(cls, value: str) -> str:
        text = value.strip()
        if len(text) > MAX_SOURCE_LENGTH or not text.isprintable():
            raise ValueError(f"must be printable text of at most {MAX_SOURCE_LENGTH} characters")
        return text

    @model_validator(mode="after")
    def _target_is_clear(self) -> CommandRequest:
        if not self.source:
            raise ValueError("source must not be empty: say who sends the command")
        if self.reason and self.command != "halt":
            raise ValueError("reason is only accepted with the halt command")
        if self.pause and self.command not in ("cancel", "flatten"):
            raise ValueError("pause is only accepted with the cancel and flatten commands")
        if (self.cancel_orders or self.flatten) and self.command != "stop":
            raise ValueError("cancel_orders and flatten are only accepted with the stop command")
        if self.command == "stop":
            if self.symbol is not None or self.all:
                raise ValueError("stop stops the whole system: it takes no symbol and no all")
        elif self.command in ONE_SYMBOL_COMMANDS and (self.all or self.symbol is None):
            raise ValueError(
                f"{self.command} needs one symbol (e.g. \"BTC/USD:USD\"), never all: check that symbol on the "
                "exchange first"
            )
        elif self.symbol is not None and self.all:
            raise ValueError(f"{self.command}: give either a symbol or all=true, not both")
        elif self.command in SYMBOL_COMMANDS and self.symbol is None and not self.all:
            raise ValueError(f"{self.command} needs a symbol (e.g. \"BTC/USD:USD\") or all=true")
        return self

    @property
    def summary(self) -> str:
        """The command and what it applies to, for the log: "pause BTC/USD:USD", "halt all", "stop"."""
        if self.command == "stop":
            return "stop --flatten" if self.flatten else "stop --cancel-orders" if self.cancel_orders else "stop"
        pause = " --pause" if self.pause else ""
        return f"{self.command} {self.symbol if self.symbol is not None else 'all'}{pause}"


def parse_command(body: bytes) -> CommandRequest:
    """Parse and validate a request body; raise RequestError saying what is wrong."""
    if not body.strip():
        raise RequestError("malformed JSON: the body is empty; send {\"command\": ..., \"symbol\": ...}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError("malformed JSON: the body is not UTF-8 text") from None
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise RequestError(f"the JSON is nested {depth} levels deep; a command is one flat object (at most "
                           f"{MAX_JSON_DEPTH} levels are read)")
    try:
        data: Any = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise RequestError(f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except (ValueError, RecursionError) as exc:  # a number of more than 4300 digits, NaN, Infinity
        raise RequestError(f"malformed JSON: {str(exc).split(':')[0]}") from None
    if not isinstance(data, dict):
        raise RequestError(f"the body must be a JSON object, got {type(data).__name__}")
    try:
        return CommandRequest.model_validate(data)
    except ValidationError as exc:
        raise RequestError("; ".join(_describe(error) for error in exc.errors())) from None


def json_depth(text: str) -> int:
    """How deeply arrays and objects nest in JSON text (brackets inside strings do not count); linear."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_JSON_DEPTH:
                    return deepest  # no need to read on
        elif ch in "]}":
            depth -= 1
    return deepest


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def to_message(request: CommandRequest) -> ControlMessage | Shutdown:
    """The control message a validated command becomes (symbol None means all)."""
    symbol = None if request.all else request.symbol
    source = request.source
    match request.command:
        case "pause":
            return Pause(symbol=symbol, source=source)
        case "resume":
            return Resume(symbol=symbol, source=source)
        case "halt":
            return Halt(symbol=symbol, source=source, reason=request.reason)
        case "unhalt":
            return Unhalt(symbol=symbol, source=source)
        case "cancel":
            return CancelOrders(symbol=symbol, source=source, pause=request.pause)
        case "flatten":
            return Flatten(symbol=symbol, source=source, pause=request.pause)
        case "resolve":
            assert request.symbol is not None  # the model refuses resolve without a symbol
            return Resolve(symbol=request.symbol, source=source)
        case "stop":
            return Shutdown(source=source, cancel_orders=request.cancel_orders, flatten=request.flatten)
    raise AssertionError(f"unhandled command {request.command!r}")  # pragma: no cover


def reply_status(reply: ControlReply) -> int:
    """The HTTP status of a control reply: 200 done (or nothing to do), 404 unknown symbol, 409 refused."""
    return _STATUS_OF[reply.code]


_STATUS_OF = {ControlCode.DONE: 200, ControlCode.NOTHING_TO_DO: 200, ControlCode.UNKNOWN_SYMBOL: 404,
              ControlCode.REFUSED: 409}


def _describe(error: Any) -> str:
    loc = ".".join(str(part) for part in error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"unknown field {loc!r}; allowed fields: {', '.join(CommandRequest.model_fields)}"
    if kind == "missing":
        return f"{loc} is required (one of: {', '.join(COMMANDS)})" if loc == "command" else f"{loc} is required"
    if kind == "value_error":
        message = str((error.get("ctx") or {}).get("error", error["msg"]))
        return message if loc in ("", "command") or message.startswith(loc) else f"{loc}: {message}"
    return f"{loc}: {error['msg'][0].lower()}{error['msg'][1:]}"
