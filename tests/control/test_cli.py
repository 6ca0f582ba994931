"""The control commands end to end against a running control endpoint (fake target), and with none running."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import control.cli
from configuration import ControlConfig, load_config
from control import ControlServer, main, register, start_control_endpoint, token_file
from messages.control import (
    CancelOrders,
    ControlReply,
    Flatten,
    Halt,
    Pause,
    PortfolioStatus,
    Resolve,
    Resume,
    Shutdown,
    Unhalt,
)
from messages.positions import Position
from tests.control.conftest import SYMBOLS, TOKEN, FakeTarget, free_port, sample_status, write_config

pytestmark = pytest.mark.timeout(20)

ENV = "KRAKEN_BOT_CONTROL_TOKEN"
REPO = Path(__file__).resolve().parents[2]


def write_token(storage: Path, value: str, mode: int = 0o600) -> Path:
    """Put a token file where a running system would have generated it."""
    storage.mkdir(parents=True, exist_ok=True)
    path = token_file(storage)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, value.encode() + b"\n")
    os.close(fd)
    path.chmod(mode)
    return path


@pytest.fixture(autouse=True)
def _no_token_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)


@pytest.fixture
def config(tmp_path: Path, server: ControlServer) -> Path:
    """A configuration whose control endpoint is the running test server, with its token in the storage folder."""
    write_token(tmp_path / "storage", TOKEN)
    return write_config(tmp_path, server.port)


@pytest.fixture
def no_tty(monkeypatch: pytest.MonkeyPatch) -> None:
    """Standard input is not a terminal."""
    monkeypatch.setattr(control.cli, "_stdin_is_tty", lambda: False)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process; return exit code, stdout, stderr."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- status --------------------------------------------------------------------------------------


def test_status_json_is_the_documented_structure(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "status", "--json", "--config", str(config))
    assert code == 0, err
    assert json.loads(out) == sample_status().model_dump(mode="json")


def test_status_prints_the_table(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "status", "--config", str(config))
    assert code == 0
    assert out.startswith("Trading system as of 2024-05-01 12:03:03 UTC: 5 symbols")
    for symbol in SYMBOLS:
        assert f"\n{symbol}  " in out
    assert "Positions   1 open; risk slots 2 of 3 used" in out


# --- commands ------------------------------------------------------------------------------------


def test_pause_prints_the_result(config: Path, target: FakeTarget, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "pause", "BTC/USD:USD", "--config", str(config))
    assert (code, err) == (0, "")
    assert out == "pause: pause applied [BTC/USD:USD]\n"
    [message] = target.received
    assert isinstance(message, Pause) and message.symbol == "BTC/USD:USD"
    assert message.source.startswith("cli:")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["pause", "--all"], Pause(symbol=None)),
        (["pause", "eth/usd:usd"], Pause(symbol="ETH/USD:USD")),
        (["resume", "ETH/USD:USD"], Resume(symbol="ETH/USD:USD")),
        (["resume", "--all"], Resume(symbol=None)),
        (["halt"], Halt(symbol=None)),
        (["halt", "--reason", "CPI at 14:30"], Halt(symbol=None, reason="CPI at 14:30")),
        (["halt", "SOL/USD:USD"], Halt(symbol="SOL/USD:USD")),
        (["unhalt"], Unhalt(symbol=None)),
        (["unhalt", "--all"], Unhalt(symbol=None)),
        (["cancel", "BTC/USD:USD"], CancelOrders(symbol="BTC/USD:USD")),
        (["cancel", "--all"], CancelOrders(symbol=None)),
        (["flatten", "BTC/USD:USD", "--yes"], Flatten(symbol="BTC/USD:USD")),
        (["flatten", "--all", "--yes"], Flatten(symbol=None)),
        (["resolve", "xrp/usd:usd"], Resolve(symbol="XRP/USD:USD")),
        (["stop"], Shutdown()),
        (["cancel", "BTC/USD:USD", "--pause"], CancelOrders(symbol="BTC/USD:USD", pause=True)),
        (["flatten", "--all", "--yes", "--pause"], Flatten(symbol=None, pause=True)),
        (["stop", "--cancel-orders"], Shutdown(cancel_orders=True)),
        (["stop", "--flatten"], Shutdown(flatten=True)),
    ],
)
def test_each_command_sends_its_message(
    config: Path, target: FakeTarget, capsys: pytest.CaptureFixture[str], argv: list[str], expected: object
) -> None:
    code, out, err = run(capsys, *argv, "--config", str(config))
    assert code == 0, err
    assert out.startswith(f"{argv[0]}: ") and out.count("\n") == 1
    [message] = target.received
    assert message.model_copy(update={"source": "operator"}) == expected


def test_the_top_level_config_option_works_too(
    config: Path, target: FakeTarget, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, _ = run(capsys, "--config", str(config), "cancel", "--all")
    assert code == 0
    assert target.received == [CancelOrders(symbol=None, source=target.received[0].source)]


def test_an_unknown_symbol_exits_1_with_the_systems_message(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "pause", "DOGE/USD:USD", "--config", str(config))
    assert code == 1
    assert out == ""
    assert err.startswith("pause: unknown symbol 'DOGE/USD:USD'; this system trades ADA/USD:USD")


def test_a_refusal_exits_1(config: Path, target: FakeTarget, capsys: pytest.CaptureFixture[str]) -> None:
    target.refuse = "SOL/USD:USD is restarting"
    code, _, err = run(capsys, "resume", "SOL/USD:USD", "--config", str(config))
    assert (code, err) == (1, "resume: SOL/USD:USD is restarting\n")


def test_a_failing_system_exits_4(config: Path, target: FakeTarget, capsys: pytest.CaptureFixture[str]) -> None:
    target.fail = RuntimeError("portfolio gone")
    code, _, err = run(capsys, "pause", "--all", "--config", str(config))
    assert code == 4
    assert err.startswith("pause: the trading system failed to carry out pause: RuntimeError: portfolio gone; ")
    assert "may or may not have taken effect" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["pause"], "pause: give a SYMBOL (e.g. BTC/USD:USD) or --all"),
        (["cancel", "BTC/USD:USD", "--all"], "cancel: give either a SYMBOL or --all, not both"),
        (["halt", "BTC/USD:USD", "--all"], "halt: give either a SYMBOL or --all, not both"),
        (["flatten", "--yes"], "flatten: give a SYMBOL"),
    ],
)
def test_usage_errors_exit_2_and_send_nothing(
    config: Path, target: FakeTarget, capsys: pytest.CaptureFixture[str], argv: list[str], words: str
) -> None:
    code, _, err = run(capsys, *argv, "--config", str(config))
    assert code == 2
    assert err.startswith("usage: ")
    assert words in err
    assert target.saw_nothing


# --- flatten's confirmation ------------------------------------------------------------------------


def test_flatten_without_yes_and_without_a_terminal_refuses(
    config: Path, target: FakeTarget, capsys: pytest.CaptureFixture[str], no_tty: None
) -> None:
    code, out, err = run(capsys, "flatten", "--all", "--config", str(config))
    assert code == 2
    assert "pass --yes to confirm" in err
    assert out == ""
    assert target.saw_nothing


def test_flatten_on_a_terminal_shows_positions_and_sends_on_yes(
    config: Path, target: FakeTarget, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(control.cli, "_stdin_is_tty", lambda: True)
    prompts: list[str] = []

    def answer_yes(prompt: str) -> str:
        prompts.append(prompt)
        return "yes"

    monkeypatch.setattr("builtins.input", answer_yes)
    code, out, _ = run(capsys, "flatten", "--all", "--config", str(config))
    assert code == 0
    assert "BTC/USD:USD: long 0.0020 @ 60123.50" in out
    assert prompts == ["Proceed? [y/N] "]
    assert [type(m) for m in target.received] == [Flatten]


@pytest.mark.parametrize("answer", ["", "n", "no", "whatever"])
def test_flatten_on_a_terminal_sends_nothing_unless_confirmed(
    config: Path,
    target: FakeTarget,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
) -> None:
    monkeypatch.setattr(control.cli, "_stdin_is_tty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: answer)
    code, _, err = run(capsys, "flatten", "BTC/USD:USD", "--config", str(config))
    assert code == 1
    assert "not confirmed; nothing was sent" in err
    assert target.received == []


# --- tokens ----------------------------------------------------------------------------------------


def test_the_environment_token_is_used(
    tmp_path: Path, server: ControlServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_token(tmp_path / "storage", "a-stale-file-token-0123456789")
    monkeypatch.setenv(ENV, TOKEN)
    code, _, err = run(capsys, "status", "--config", str(write_config(tmp_path, server.port)))
    assert code == 0, err


def test_a_wrong_token_exits_2_and_says_where_tokens_come_from(
    tmp_path: Path,
    server: ControlServer,
    target: FakeTarget,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV, "a-wrong-token-0123456789")
    code, _, err = run(capsys, "pause", "--all", "--config", str(write_config(tmp_path, server.port)))
    assert code == 2
    assert f"refused the control token from the environment variable {ENV}" in err
    assert str(tmp_path / "storage" / "control.token") in err
    assert "a-wrong-token" not in err
    assert target.saw_nothing


def test_no_token_anywhere_exits_2(
    tmp_path: Path, server: ControlServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "status", "--config", str(write_config(tmp_path, server.port)))
    assert code == 2
    assert "wants a control token and none was found" in err


def test_a_group_readable_token_file_exits_2(
    tmp_path: Path, server: ControlServer, target: FakeTarget, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_token(tmp_path / "storage", TOKEN, mode=0o640)
    code, _, err = run(capsys, "status", "--config", str(write_config(tmp_path, server.port)))
    assert code == 2
    assert f"chmod 600 {path}" in err
    assert target.saw_nothing


# --- configuration and no running system -----------------------------------------------------------


def test_an_invalid_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[control]\nport = 0\n")
    code, _, err = run(capsys, "status", "--config", str(path))
    assert code == 2
    assert "control.port: must be >= 1, got 0" in err


def test_a_missing_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "stop", "--config", str(tmp_path / "nope.toml"))
    assert code == 2
    assert "file not found" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["status"],
        ["status", "--json"],
        ["pause", "BTC/USD:USD"],
        ["pause", "--all"],
        ["resume", "--all"],
        ["halt"],
        ["unhalt"],
        ["cancel", "--all"],
        ["flatten", "--all", "--yes"],
        ["stop"],
    ],
)
def test_with_no_system_running_every_command_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    port = free_port()
    config = write_config(tmp_path, port)
    code, out, err = run(capsys, *argv, "--config", str(config))
    assert code == 3
    assert out == ""
    assert err == f"{argv[0]}: no trading system is running for {config}: nothing listens on 127.0.0.1:{port}\n"


# --- wiring ----------------------------------------------------------------------------------------


def test_register_adds_the_commands_to_a_parser_like_run_pys(
    config: Path, target: FakeTarget, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser(prog="run.py")
    parser.add_argument("--config", default="config.toml")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("run")
    register(sub)
    args = parser.parse_args(["pause", "ETH/USD:USD", "--config", str(config)])
    assert args.command == "pause"
    assert args.func(args) == 0
    assert target.received[0] == Pause(symbol="ETH/USD:USD", source=target.received[0].source)
    assert parser.parse_args(["status"]).config == "config.toml"


def test_start_control_endpoint_generates_the_token_the_cli_then_uses(
    tmp_path: Path, target: FakeTarget, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, free_port())
    loaded = load_config(config)
    server = start_control_endpoint(target, loaded)
    try:
        assert server.port == loaded.config.control.port
        assert (token_file(loaded.storage_dir).stat().st_mode & 0o777) == 0o600
        code, out, err = run(capsys, "halt", "--config", str(config))
    finally:
        server.stop()
    assert (code, err) == (0, "")
    assert out == f"halt: halt applied [{', '.join(SYMBOLS)}]\n"


def test_python_m_control_runs_without_run_py(config: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    done = subprocess.run(
        [sys.executable, "-m", "control", "status", "--json", "--config", str(config)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=15,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["max_open_positions"] == 3
    (tmp_path / "idle").mkdir()
    idle = write_config(tmp_path / "idle", free_port())
    done = subprocess.run(
        [sys.executable, "-m", "control", "stop", "--config", str(idle)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=15,
    )
    assert done.returncode == 3
    assert "no trading system is running" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_loopback_default_is_what_the_cli_connects_to() -> None:
    assert control.cli.connect_host(ControlConfig().host) == "127.0.0.1"
    assert control.cli.connect_host("0.0.0.0") == "127.0.0.1"
    assert control.cli.connect_host("::") == "::1"


@pytest.mark.parametrize("value", ["0", "-1", "soon", "99999"])
def test_a_bad_timeout_is_a_usage_error(config: Path, capsys: pytest.CaptureFixture[str], value: str) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["status", "--timeout", value, "--config", str(config)])
    assert caught.value.code == 2
    assert "--timeout" in capsys.readouterr().err


def test_status_into_a_closed_pipe_is_quiet(config: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written, as with `status | head` after head quit
    try:
        done = subprocess.run(
            [sys.executable, "-m", "control", "status", "--config", str(config)],
            cwd=REPO, env=env, stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=15,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


@pytest.mark.parametrize("argv", [["resolve"], ["resolve", "--all"], ["resolve", "BTC/USD:USD", "--all"]])
def test_resolve_without_one_symbol_is_a_usage_error_and_sends_nothing(
    config: Path, target: FakeTarget, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    try:
        code = main([*argv, "--config", str(config)])
    except SystemExit as exc:  # argparse: --all is not an option of resolve
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    assert "resolve" in err and ("SYMBOL" in err or "--all" in err)
    assert "Traceback" not in err
    assert target.received == []


def test_resolve_of_an_unknown_symbol_exits_1(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "resolve", "DOGE/USD:USD", "--config", str(config))
    assert (code, out) == (1, "")
    assert err.startswith("resolve: unknown symbol 'DOGE/USD:USD'")


# --- safe stops and clear control (issue 13) -------------------------------------------------------


def test_stop_takes_cancel_orders_or_flatten_not_both(config: Path, target: FakeTarget,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        run(capsys, "stop", "--cancel-orders", "--flatten", "--config", str(config))
    assert exit_.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
    assert target.saw_nothing


def test_pause_is_offered_only_to_cancel_and_flatten(config: Path, target: FakeTarget,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run(capsys, "resume", "--all", "--pause", "--config", str(config))
    assert target.saw_nothing


def flat_status() -> PortfolioStatus:
    status = sample_status()
    return status.model_copy(update={"symbols": tuple(
        row.model_copy(update={"position": Position.flat(row.symbol)}) for row in status.symbols)})


def test_flatten_all_with_nothing_open_says_so_and_neither_asks_nor_sends(
    config: Path, target: FakeTarget, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(control.cli, "_stdin_is_tty", lambda: True)
    monkeypatch.setattr(target, "status", flat_status)
    asked: list[str] = []
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or "yes")
    code, out, _ = run(capsys, "flatten", "--all", "--config", str(config))
    assert code == 0
    assert out == "flatten: nothing to flatten: every symbol is flat; nothing was sent\n"
    assert asked == [] and target.received == []


def test_flatten_of_a_flat_symbol_says_it_is_flat_without_asking(
    config: Path, target: FakeTarget, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(control.cli, "_stdin_is_tty", lambda: True)
    monkeypatch.setattr(target, "status", flat_status)
    monkeypatch.setattr("builtins.input", lambda prompt: pytest.fail("asked for confirmation"))
    code, out, _ = run(capsys, "flatten", "BTC/USD:USD", "--config", str(config))
    assert code == 0 and "nothing to flatten: BTC/USD:USD is flat" in out
    assert target.received == []


def test_stop_prints_every_line_of_what_stays_on_the_exchange(
    config: Path, target: FakeTarget, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    detail = "stopping\n  stays on the exchange: 1 open order (1 stop-loss); 1 open position (BTC/USD:USD long 1)"
    monkeypatch.setattr(target, "shutdown", lambda message: ControlReply(ok=True, detail=detail))
    code, out, _ = run(capsys, "stop", "--config", str(config))
    assert code == 0
    assert out == f"stop: {detail}\n"


def test_stop_with_an_action_waits_longer_than_the_default(config: Path, target: FakeTarget,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    timeouts: list[float] = []
    real = control.cli.client_for
    monkeypatch.setattr(control.cli, "client_for", lambda loaded, timeout: timeouts.append(timeout) or real(
        loaded, timeout=timeout))
    assert run(capsys, "stop", "--flatten", "--config", str(config))[0] == 0
    assert timeouts == [control.cli.STOP_ACTION_TIMEOUT_S]


def test_a_reply_on_a_terminal_fits_its_width_with_short_ids_and_piped_it_is_whole(
    config: Path, target: FakeTarget, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cid = "9abcd670-8ef4-b658-75e7-93d61711f39a"
    detail = ("stopping\n  stays on the exchange: 1 open order (1 take-profit); BTC/USD:USD take-profit sell 0.0014 "
              f"({cid}). To close them: `kraken-actors stop --cancel-orders` (cancels every open order) or "
              "`kraken-actors stop --flatten` (closes positions and cancels orders)")
    monkeypatch.setattr(target, "shutdown", lambda message: ControlReply(ok=True, detail=detail))
    monkeypatch.setenv("COLUMNS", "100")
    code, out, _ = run(capsys, "stop", "--config", str(config))
    assert code == 0
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 100 and len(lines) > 2
    assert "(9abcd670)" in out and cid not in out
    assert all(line.startswith("    ") for line in lines[2:])  # continued under its own indent
    monkeypatch.delenv("COLUMNS")
    code, out, _ = run(capsys, "stop", "--config", str(config))
    assert out == f"stop: {detail}\n"  # piped: whole, the full id
