"""Request validation and the control message each command becomes, without HTTP."""

from __future__ import annotations

import json

import pytest

from control import COMMANDS, RequestError, parse_command, reply_status, to_message
from messages._base import Message
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

pytestmark = pytest.mark.timeout(10)


def body(**fields: object) -> bytes:
    """A JSON request body."""
    return json.dumps(fields).encode()


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"command": "pause", "symbol": "BTC/USD:USD"}, Pause(symbol="BTC/USD:USD")),
        ({"command": "pause", "all": True}, Pause(symbol=None)),
        ({"command": "resume", "symbol": "ETH/USD:USD"}, Resume(symbol="ETH/USD:USD")),
        ({"command": "resume", "all": True}, Resume(symbol=None)),
        ({"command": "halt"}, Halt(symbol=None)),
        ({"command": "halt", "all": True, "reason": "news"}, Halt(symbol=None, reason="news")),
        ({"command": "halt", "symbol": "BTC/USD:USD"}, Halt(symbol="BTC/USD:USD")),
        ({"command": "unhalt"}, Unhalt(symbol=None)),
        ({"command": "cancel", "symbol": "BTC/USD:USD"}, CancelOrders(symbol="BTC/USD:USD")),
        ({"command": "cancel", "all": True}, CancelOrders(symbol=None)),
        ({"command": "flatten", "symbol": "BTC/USD:USD"}, Flatten(symbol="BTC/USD:USD")),
        ({"command": "flatten", "all": True}, Flatten(symbol=None)),
        ({"command": "resolve", "symbol": "xrp/usd:usd"}, Resolve(symbol="XRP/USD:USD")),
        ({"command": "stop"}, Shutdown()),
        ({"command": " PAUSE ", "symbol": " btc/usd:usd "}, Pause(symbol="BTC/USD:USD")),
    ],
)
def test_each_command_becomes_its_control_message(fields: dict[str, object], expected: Message) -> None:
    message = to_message(parse_command(body(**fields, source="ops")))
    assert message == expected.model_copy(update={"source": "ops"})
    assert type(message) is type(expected)


def test_the_source_defaults_to_api() -> None:
    assert to_message(parse_command(body(command="pause", all=True))) == Pause(symbol=None, source="api")


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"", "malformed JSON: the body is empty"),
        (b"   ", "malformed JSON: the body is empty"),
        (b"{", "malformed JSON"),
        (b"{'command': 'pause'}", "malformed JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[1, 2]", "must be a JSON object, got list"),
        (b'"pause"', "must be a JSON object, got str"),
        (body(command="explode", all=True), "unknown command 'explode'; allowed commands: " + ", ".join(COMMANDS)),
        (body(symbol="BTC/USD:USD"), "command is required"),
        (body(command=3), "command: input should be a valid string"),
        (body(command="pause"), "pause needs a symbol"),
        (body(command="flatten", all=False), "flatten needs a symbol"),
        (body(command="cancel", symbol="BTC/USD:USD", all=True), "either a symbol or all=true, not both"),
        (body(command="halt", symbol="BTC/USD:USD", all=True), "either a symbol or all=true, not both"),
        (body(command="stop", all=True), "stop stops the whole system: it takes no symbol"),
        (body(command="pause", all="yes"), "all: input should be a valid boolean"),
        (body(command="pause", all=True, force=True), "unknown field 'force'; allowed fields: command, symbol, all"),
        (body(command="pause", symbol=""), "symbol must be a market symbol"),
        (body(command="pause", symbol="BTC USD"), "symbol must be a market symbol"),
        (body(command="pause", symbol=["BTC/USD:USD"]), "symbol: input should be a valid string"),
        (body(command="pause", all=True, source=""), "source must not be empty"),
        (body(command="pause", all=True, source="a\nb"), "source: must be printable"),
        (body(command="pause", all=True, source="x" * 201), "source: must be printable text of at most 200"),
        (body(command="pause", all=True, reason="news"), "reason is only accepted with the halt command"),
    ],
)
def test_bad_bodies_are_refused_with_what_is_wrong(raw: bytes, words: str) -> None:
    with pytest.raises(RequestError) as caught:
        parse_command(raw)
    assert words in str(caught.value)


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        (ControlReply(ok=True, detail="pause applied", symbols=("BTC/USD:USD",)), 200),
        (ControlReply(ok=True, detail="BTC/USD:USD: nothing to flatten", code=ControlCode.NOTHING_TO_DO), 200),
        (ControlReply.unknown_symbol("X/Y:Z", ["BTC/USD:USD"]), 404),
        (ControlReply(ok=False, detail="Unknown symbol 'X/Y:Z'"), 409),  # the code says it, not the words
        (ControlReply(ok=False, detail="SOL/USD:USD is restarting; try again"), 409),
        (ControlReply(ok=False), 409),
    ],
)
def test_replies_map_to_http_statuses(reply: ControlReply, status: int) -> None:
    assert reply_status(reply) == status


@pytest.mark.parametrize(
    "fields",
    [
        {"command": "resolve"},
        {"command": "resolve", "all": True},
        {"command": "resolve", "symbol": "BTC/USD:USD", "all": True},
    ],
    ids=["no-symbol", "all", "symbol-and-all"],
)
def test_resolve_needs_exactly_one_symbol_and_never_all(fields: dict[str, object]) -> None:
    with pytest.raises(RequestError, match="resolve needs one symbol"):
        parse_command(body(**fields))


# --- safe stops and clear control (issue 13) -------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"command": "cancel", "symbol": "BTC/USD:USD", "pause": True},
         CancelOrders(symbol="BTC/USD:USD", source="api", pause=True)),
        ({"command": "flatten", "all": True, "pause": True}, Flatten(symbol=None, source="api", pause=True)),
        ({"command": "stop", "cancel_orders": True}, Shutdown(source="api", cancel_orders=True)),
        ({"command": "stop", "flatten": True}, Shutdown(source="api", flatten=True)),
    ],
)
def test_pause_and_the_stop_actions_reach_the_message(fields: dict[str, object], expected: Message) -> None:
    assert to_message(parse_command(json.dumps(fields).encode())) == expected


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"command": "pause", "all": True, "pause": True}, "pause is only accepted with the cancel and flatten"),
        ({"command": "cancel", "all": True, "flatten": True}, "only accepted with the stop command"),
        ({"command": "halt", "cancel_orders": True}, "only accepted with the stop command"),
        ({"command": "stop", "pause": "yes"}, "pause"),
    ],
)
def test_pause_and_the_stop_actions_are_refused_elsewhere(fields: dict[str, object], words: str) -> None:
    with pytest.raises(RequestError, match=words):
        parse_command(json.dumps(fields).encode())


def test_the_summary_says_which_stop_and_whether_paused_first() -> None:
    assert parse_command(b'{"command": "stop", "flatten": true}').summary == "stop --flatten"
    assert parse_command(b'{"command": "stop", "cancel_orders": true}').summary == "stop --cancel-orders"
    assert parse_command(b'{"command": "cancel", "all": true, "pause": true}').summary == "cancel all --pause"
