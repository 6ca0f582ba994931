"""The control commands of the command line: status, pause, resume, halt, unhalt, cancel, flatten, resolve, stop.

Exit codes: 0 done; 1 refused by the running system (e.g. unknown symbol) or not confirmed, nothing
changed; 2 usage, configuration or token error; 3 no trading system is running for the configuration;
4 the system failed to answer (error, time-out): the command may or may not have taken effect.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from configuration import ConfigError, LoadedConfig, load_config
from configuration.formatting import plain_numbers, short_ids
from configuration.logs import terminal_width
from control.client import DEFAULT_TIMEOUT_S, ControlClient
from control.errors import (
    CommandRefused,
    ControlError,
    NotRunningError,
    ServerError,
    TokenError,
    UnauthorizedError,
)
from control.server import url_for
from control.status_view import render_status
from control.token import describe_token_source, find_token

DEFAULT_CONFIG = "config.toml"
EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3
EXIT_FAILED = 4
STOP_ACTION_TIMEOUT_S = 120.0  # stop --cancel-orders / --flatten: the reply waits for the cancels and the flatten

_HELP = {
    "pause": "stop new orders for SYMBOL or --all (open orders and positions stay)",
    "resume": "undo a pause for SYMBOL or --all",
    "halt": "exits only: no new entries anywhere (or for SYMBOL); exits and cancels still go through",
    "unhalt": "lift a halt (everywhere, or for SYMBOL)",
    "cancel": "cancel every open order on SYMBOL or on all traded symbols (--all), ours and adopted ones "
              "(--pause: pause first, so no new entry follows)",
    "flatten": "close positions with reduce-only market orders for SYMBOL or --all (asks first unless --yes; "
               "--pause: pause first, so no new entry follows)",
    "resolve": "after checking the exchange: unblock a BLOCKED SYMBOL (status says why it is blocked)",
    "stop": "stop the running system cleanly and say what stays on the exchange (--cancel-orders: cancel every "
            "open order first; --flatten: close positions and cancel every open order first)",
}


def register(subparsers: Any) -> None:
    """Add the control subcommands to an argparse subparsers object (run.py's)."""
    status = subparsers.add_parser("status", help="show what the running system is doing (--json: the raw structure)")
    _common(status)
    status.add_argument(
        "--json", action="store_true", help="print the status as JSON (documented in control/README.md)"
    )
    status.set_defaults(func=cmd_status)
    for name in ("pause", "resume", "cancel", "flatten"):
        parser = subparsers.add_parser(name, help=_HELP[name], description=_HELP[name])
        _common(parser)
        parser.add_argument("symbol", nargs="?", metavar="SYMBOL", help="market, e.g. BTC/USD:USD")
        parser.add_argument("--all", dest="all_symbols", action="store_true", help="every symbol")
        if name == "flatten":
            parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        if name in ("cancel", "flatten"):
            parser.add_argument("--pause", action="store_true",
                                help="pause the symbol(s) first (durably, as `pause` does): no new entry follows")
        parser.set_defaults(func=cmd_control, control_command=name, control_parser=parser, symbol_required=True)
    for name in ("halt", "unhalt"):
        parser = subparsers.add_parser(name, help=_HELP[name], description=_HELP[name])
        _common(parser)
        parser.add_argument("symbol", nargs="?", metavar="SYMBOL", help="only this market (default: all)")
        parser.add_argument("--all", dest="all_symbols", action="store_true", help="every symbol (the default)")
        if name == "halt":
            parser.add_argument("--reason", default="", help="why, recorded with the halt")
        parser.set_defaults(func=cmd_control, control_command=name, control_parser=parser, symbol_required=False)
    resolve = subparsers.add_parser("resolve", help=_HELP["resolve"], description=_HELP["resolve"])
    _common(resolve)
    resolve.add_argument("symbol", nargs="?", metavar="SYMBOL", help="the blocked market, e.g. BTC/USD:USD")
    resolve.add_argument("--all", dest="all_symbols", action="store_true", help=argparse.SUPPRESS)  # refused, clearly
    resolve.set_defaults(func=cmd_control, control_command="resolve", control_parser=resolve, symbol_required=True,
                         one_symbol=True)
    stop = subparsers.add_parser("stop", help=_HELP["stop"], description=_HELP["stop"])
    _common(stop)
    then = stop.add_mutually_exclusive_group()
    then.add_argument("--cancel-orders", action="store_true",
                      help="cancel every open order on the traded symbols first (each result waited for)")
    then.add_argument("--flatten", action="store_true",
                      help="close positions (reduce-only market) and cancel every open order first")
    stop.set_defaults(func=cmd_control, control_command="stop", control_parser=stop, symbol_required=False)
    from control import report_cli  # trades, orders, pnl, why, markets (it imports this module)

    report_cli.register(subparsers)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", default=argparse.SUPPRESS, help=f"configuration of the running system (default: {DEFAULT_CONFIG})"
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT_S,
        help=f"seconds to wait for an answer (default: {DEFAULT_TIMEOUT_S:g})",
    )


def _seconds(text: str) -> float:
    """An argparse type: a positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"must be between 0 and 3600 seconds, got {text!r}")
    return value


def cmd_status(args: argparse.Namespace) -> int:
    """`status [--json]`: print the running system's status table, or its JSON."""

    def act(client: ControlClient) -> int:
        data = client.status()
        if args.json:
            print(json.dumps(data, indent=2, sort_keys=False))
        else:
            print(render_status(data, unicode=_stdout_takes_unicode()))
        return EXIT_OK

    return _with_client(args, "status", act)


def cmd_control(args: argparse.Namespace) -> int:
    """`pause|resume|halt|unhalt|cancel|flatten|resolve|stop`: send the command and print the system's answer."""
    command: str = args.control_command
    symbol: str | None = getattr(args, "symbol", None)
    all_symbols: bool = getattr(args, "all_symbols", False)
    usage = _usage_problem(command, symbol, all_symbols, args.symbol_required, getattr(args, "one_symbol", False))
    if usage:
        print(args.control_parser.format_usage().rstrip(), file=sys.stderr)
        print(f"{command}: {usage}", file=sys.stderr)
        return EXIT_USAGE
    confirm = command == "flatten" and not args.yes
    if confirm and not _stdin_is_tty():
        print(
            "flatten: refusing to close positions without confirmation and there is no terminal to ask on; "
            "pass --yes to confirm",
            file=sys.stderr,
        )
        return EXIT_USAGE

    def act(client: ControlClient) -> int:
        if confirm:
            answer = _confirm_flatten(client, symbol)
            if answer == "nothing":
                return EXIT_OK
            if answer != "yes":
                print("flatten: not confirmed; nothing was sent", file=sys.stderr)
                return EXIT_REFUSED
        extra = {key: True for key in ("pause", "cancel_orders", "flatten") if getattr(args, key, False) is True}
        reply = send_command(client, command, symbol=symbol, all_symbols=all_symbols,
                             reason=getattr(args, "reason", "") or "", **extra)
        symbols = reply.get("symbols") or []
        suffix = f" [{', '.join(str(s) for s in symbols)}]" if symbols else ""
        print(reply_text(f"{command}: {reply.get('detail') or 'done'}{suffix}", terminal_width(sys.stdout)))
        return EXIT_OK

    if command == "stop" and (args.cancel_orders or args.flatten) and args.timeout == DEFAULT_TIMEOUT_S:
        args.timeout = STOP_ACTION_TIMEOUT_S  # cancels wait for Kraken's cost budget, a flatten for its fills
    return _with_client(args, command, act)


def send_command(client: ControlClient, command: str, *, symbol: str | None, all_symbols: bool, reason: str = "",
                 **flags: bool) -> dict[str, Any]:
    """Send a control command with its flags (pause, cancel_orders, flatten: only when set, as the wire takes)."""
    return client.command(command, symbol=symbol, all=all_symbols, reason=reason, pause=flags.get("pause", False),
                          cancel_orders=flags.get("cancel_orders", False), flatten=flags.get("flatten", False))


def reply_text(text: str, width: int | None) -> str:
    """A control reply as printed: plain numbers (never 1.8E+2); on a terminal of `width` columns, client order
    ids shortened as on the console and every line wrapped under its own indent (piped: whole, full ids)."""
    text = plain_numbers(text)
    if width is None:
        return text
    out: list[str] = []
    for line in short_ids(text).splitlines():
        indent = " " * (len(line) - len(line.lstrip()) + 2)
        out.extend(textwrap.wrap(line, width=max(width, 40), subsequent_indent=indent, break_on_hyphens=False)
                   or [""])
    return "\n".join(out)


def _usage_problem(
    command: str, symbol: str | None, all_symbols: bool, required: bool, one_symbol: bool = False
) -> str | None:
    if one_symbol and (symbol is None or all_symbols):
        return "give the one SYMBOL to unblock (e.g. BTC/USD:USD) after checking it on the exchange; there is no --all"
    if symbol is not None and all_symbols:
        return "give either a SYMBOL or --all, not both"
    if required and symbol is None and not all_symbols:
        return "give a SYMBOL (e.g. BTC/USD:USD) or --all"
    return None


def _with_client(args: argparse.Namespace, name: str, act: Callable[[ControlClient], int]) -> int:
    """Build the client from the configuration, run `act`, and turn every expected error into a line and a code."""
    try:
        loaded = load_config(getattr(args, "config", DEFAULT_CONFIG))
    except ConfigError as exc:
        print(f"{name}: {exc.path}: configuration is not valid:", file=sys.stderr)
        for line in exc.errors:
            print(f"  - {line}", file=sys.stderr)
        return EXIT_USAGE
    try:
        client = client_for(loaded, timeout=args.timeout)
        return act(client)
    except NotRunningError as exc:
        return _fail(name, exc, EXIT_NOT_RUNNING)
    except (UnauthorizedError, TokenError) as exc:
        return _fail(name, exc, EXIT_USAGE)
    except CommandRefused as exc:
        return _fail(name, exc, EXIT_REFUSED)
    except ServerError as exc:
        return _fail(name, exc, EXIT_FAILED)
    except ControlError as exc:
        return _fail(name, exc, EXIT_FAILED)
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `status | head`: the reader is gone, which is fine
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_OK


def client_for(loaded: LoadedConfig, timeout: float = DEFAULT_TIMEOUT_S) -> ControlClient:
    """A client for the system running with this configuration (its control address and token)."""
    control = loaded.config.control
    token = find_token(control, loaded.storage_dir)
    return ControlClient(
        url_for(connect_host(control.host), control.port),
        token.value if token else None,
        timeout,
        config_path=loaded.path,
        token_hint=describe_token_source(control, loaded.storage_dir),
        token_source=token.source if token else None,
    )


def connect_host(host: str) -> str:
    """The address to connect to for a bind address (a wildcard bind is reached on loopback)."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def _fail(name: str, exc: Exception, code: int) -> int:
    print(f"{name}: {exc}", file=sys.stderr)
    return code


def _confirm_flatten(client: ControlClient, symbol: str | None) -> str:
    """Show what flatten would close and ask: "yes" only on an explicit yes; "nothing" (not asked, nothing sent)
    when the running system knows of no open position there."""
    status = client.status()
    rows = [r for r in status.get("symbols") or [] if isinstance(r, dict)]
    wanted = symbol.strip().upper() if symbol else None
    open_rows, unknown = [], 0
    for row in rows:
        position = row.get("position") or {}
        if wanted is not None and row.get("symbol") != wanted:
            continue
        if not position:
            unknown += 1  # not synced yet: not known to be flat
        if position.get("side") in ("long", "short") and _positive(position.get("contracts")):
            entry = position.get("entry_price")
            at = f" @ {entry}" if entry else ""
            open_rows.append(f"  {row.get('symbol')}: {position.get('side')} {position.get('contracts')}{at}")
    where = wanted or "every symbol"
    if not open_rows and unknown:
        print(f"flatten {where}: no open position is known right now; the system will check again.")
    elif not open_rows:
        print(f"flatten: nothing to flatten: {wanted + ' is' if wanted else 'every symbol is'} flat; nothing was sent")
        return "nothing"
    else:
        print(f"flatten {where}: these positions will be closed with reduce-only market orders:")
        print("\n".join(open_rows))
    try:
        answer = input("Proceed? [y/N] ")
    except (EOFError, KeyboardInterrupt):
        print()
        return "no"
    return "yes" if answer.strip().lower() in ("y", "yes") else "no"


def _positive(value: Any) -> bool:
    try:
        return Decimal(str(value)) > 0
    except InvalidOperation:
        return False


def _stdin_is_tty() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def _stdout_takes_unicode() -> bool:
    try:
        "×─…".encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def build_parser() -> argparse.ArgumentParser:
    """A standalone parser with the control subcommands (as `python -m control`)."""
    parser = argparse.ArgumentParser(prog="python -m control", description="Control a running trading system.")
    parser.add_argument("--config", default=DEFAULT_CONFIG, help=f"configuration file (default: {DEFAULT_CONFIG})")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one control command; return its exit code."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    return int(args.func(args))
