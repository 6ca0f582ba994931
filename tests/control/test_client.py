"""The client: replies as dicts, and every failure as a ControlError a person can act on."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from loguru import logger

from control import CommandRefused, ControlClient, ControlServer, NotRunningError, ServerError, UnauthorizedError
from messages.control import Flatten, Pause
from tests.control.conftest import TOKEN, FakeTarget, free_port, sample_status

pytestmark = pytest.mark.timeout(10)


def test_status_returns_the_status_json(client: ControlClient) -> None:
    assert client.status() == sample_status().model_dump(mode="json")


def test_command_returns_the_reply_and_sends_the_source(client: ControlClient, target: FakeTarget) -> None:
    reply = client.command("pause", "BTC/USD:USD", source="cli:alice@desk")
    assert reply == {"ok": True, "detail": "pause applied", "symbols": ["BTC/USD:USD"], "code": "done"}
    assert target.received == [Pause(symbol="BTC/USD:USD", source="cli:alice@desk")]


def test_the_default_source_names_the_user_and_host(client: ControlClient, target: FakeTarget) -> None:
    client.command("flatten", all=True)
    [message] = target.received
    assert isinstance(message, Flatten) and message.symbol is None
    assert message.source.startswith("cli:") and "@" in message.source


def test_nothing_listening_is_not_running_error() -> None:
    port = free_port()
    client = ControlClient(f"http://127.0.0.1:{port}", TOKEN, timeout=2, config_path="/srv/bot/config.toml")
    with pytest.raises(NotRunningError) as caught:
        client.status()
    assert str(caught.value) == (
        f"no trading system is running for /srv/bot/config.toml: nothing listens on 127.0.0.1:{port}"
    )


def test_a_wrong_token_says_where_tokens_come_from(server: ControlServer, target: FakeTarget) -> None:
    client = ControlClient(
        server.url,
        "not-the-token-0123456789",
        token_hint="environment variable KRAKEN_BOT_CONTROL_TOKEN if set, otherwise the file /s/control.token",
        token_source="file /s/control.token",
    )
    with pytest.raises(UnauthorizedError) as caught:
        client.command("pause", all=True)
    message = str(caught.value)
    assert "refused the control token from the file /s/control.token" in message
    assert "KRAKEN_BOT_CONTROL_TOKEN" in message
    assert "not-the-token" not in message
    assert target.saw_nothing


def test_no_token_at_all_says_none_was_found(server: ControlServer) -> None:
    with pytest.raises(UnauthorizedError, match="none was found"):
        ControlClient(server.url, None).status()


def test_a_refusal_carries_the_servers_message(client: ControlClient) -> None:
    with pytest.raises(CommandRefused) as caught:
        client.command("pause", "DOGE/USD:USD")
    assert caught.value.status == 404
    assert str(caught.value).startswith("unknown symbol 'DOGE/USD:USD'")
    assert caught.value.payload["ok"] is False


def test_a_validation_error_is_a_refusal(client: ControlClient) -> None:
    with pytest.raises(CommandRefused, match="unknown command 'explode'") as caught:
        client.command("explode", all=True)
    assert caught.value.status == 400


def test_a_failing_system_is_a_server_error_that_says_the_outcome_is_unknown(
    client: ControlClient, target: FakeTarget
) -> None:
    target.fail = RuntimeError("boom")
    with pytest.raises(ServerError, match="may or may not have taken effect"):
        client.command("cancel", all=True)


def test_a_slow_system_is_a_server_error(server: ControlServer, target: FakeTarget) -> None:
    target.hold = threading.Event()
    try:
        with pytest.raises(ServerError, match=r"did not answer within 0\.2 s; the command may or may not"):
            ControlClient(server.url, TOKEN, timeout=0.2).command("pause", all=True)
    finally:
        target.hold.set()


class _HtmlHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html>hello</html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def html_server() -> Iterator[HTTPServer]:
    """Some other web server on a free port."""
    httpd = HTTPServer(("127.0.0.1", 0), _HtmlHandler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_something_else_on_the_port_is_named_as_such(html_server: HTTPServer) -> None:
    port = html_server.server_address[1]
    with pytest.raises(ServerError, match=f"something else answers on 127.0.0.1:{port}.*text/html"):
        ControlClient(f"http://127.0.0.1:{port}", TOKEN).status()


def test_proxies_in_the_environment_are_not_used(client: ControlClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{free_port()}")
    assert client.status()["max_open_positions"] == 3


@pytest.mark.parametrize("url", ["127.0.0.1:8765", "https://127.0.0.1:8765", "http://127.0.0.1", "http://:8765"])
def test_a_bad_base_url_is_rejected(url: str) -> None:
    with pytest.raises(ValueError, match=r"must look like http://127\.0\.0\.1:8765"):
        ControlClient(url, TOKEN)


def test_a_client_that_gave_up_is_logged_not_printed(
    server: ControlServer, target: FakeTarget, capfd: pytest.CaptureFixture[str]
) -> None:
    answered = threading.Event()

    def sink(message: object) -> None:
        text = str(message)
        if '"POST /v1/control HTTP/1.1"' in text or "went away" in text:
            answered.set()

    handler = logger.add(sink, format="{message}", level="DEBUG")
    try:
        target.hold = threading.Event()
        with pytest.raises(ServerError):
            ControlClient(server.url, TOKEN, timeout=0.2).command("pause", all=True)
        target.hold.set()
        assert answered.wait(5)  # the late answer was written (or failed) and logged
    finally:
        logger.remove(handler)
    assert "Traceback" not in capfd.readouterr().err
