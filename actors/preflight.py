"""Before anything starts: can this configuration run here? One line per problem, naming the key or the fix.

`check-config --connect` and `run` call `preflight(loaded)`: storage folder (and the log, database and
paper state folders) writable, no other instance, database reachable and its schema created or
migrated, control port free, keys present (demo/live or a custom URL), exchange reachable and every
symbol listed (paper mode: the built-in simulator's markets). Nothing here raises; every check
turns its failure into a line. The configuration's own warnings (`config_warnings`) come first among the warnings.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from configuration.control_port import ControlPortError, listening_process, port_in_use_line
from configuration.control_port import check_control_port as control_port_free
from configuration.loading import LoadedConfig, config_warnings
from configuration.logs import scrub


@dataclass
class PreflightReport:
    """What was checked (`passed`, one line each) and what is wrong (`problems`, one line each)."""

    passed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems


def preflight(
    loaded: LoadedConfig,
    environ: Mapping[str, str] | None = None,
    *,
    exchange: bool = True,
    unreachable_is_problem: bool = True,
) -> PreflightReport:
    """Run every check; `exchange=False` skips the exchange; `unreachable_is_problem=False` makes a network
    failure a warning (a run retries it) while garbage or unlisted symbols stay problems."""
    env = os.environ if environ is None else environ
    report = PreflightReport(warnings=config_warnings(loaded.config))
    _check(report, lambda: check_control_port(loaded))  # first: `run` refuses a taken port before anything starts
    storage_ok = _check(report, lambda: check_folder("storage_dir", loaded.storage_dir))
    if loaded.config.logging.file:
        _check(report, lambda: check_file("logging.file", loaded.resolve(loaded.config.logging.file)))
    if loaded.config.mode == "paper" and not loaded.config.exchange.url and loaded.config.paper.state_file:
        _check(report, lambda: check_file("paper.state_file", loaded.resolve(loaded.config.paper.state_file)))
    free = True
    if storage_ok:
        free = _check(report, lambda: check_no_other_instance(loaded))
    if free:  # never create or migrate tables under a running instance
        _check(report, lambda: check_database(loaded))
    keys_ok = _check(report, lambda: check_keys(loaded, env))
    if exchange and keys_ok:
        _check(report, lambda: check_exchange(loaded, env, unreachable_is_problem, report))
    return report


class Problem(Exception):
    """A check failed; the message is the one line to show."""


def _check(report: PreflightReport, check: Callable[[], str]) -> bool:
    try:
        report.passed.append(check())
        return True
    except Problem as exc:
        report.problems.append(scrub(str(exc)))
    except Exception as exc:  # noqa: BLE001 - a check must never crash the command that runs it
        report.problems.append(scrub(f"unexpected {type(exc).__name__} while checking: {_first(exc)}"))
    return False


def _first(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__


def _why(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


# --- files and folders ---------------------------------------------------------------------------


def check_folder(key: str, folder: Path) -> str:
    """The folder exists or can be created, and a file can be written in it."""
    existing = folder
    while not existing.exists():
        if existing.is_symlink():
            raise Problem(f"{key}: {existing} is a dangling symbolic link; fix or remove it")
        existing = existing.parent
    if not existing.is_dir():
        raise Problem(f"{key}: {existing} is a file, not a folder; point {key} at a folder (or move the file away)")
    try:
        with tempfile.TemporaryFile(dir=existing, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise Problem(f"{key}: cannot write in {existing} ({_why(exc)}); make it writable by this user or point "
                      f"{key} elsewhere") from None
    created = "" if existing == folder else f" (will be created under {existing})"
    return f"{key}: {folder} is writable{created}"


def check_file(key: str, path: Path) -> str:
    """The file's folder is writable, and the file itself (if it exists) is a writable file."""
    check_folder(key, path.parent)
    if path.is_dir():
        raise Problem(f"{key}: {path} is a folder; name a file")
    if path.exists():
        try:
            with path.open("a"):
                pass
        except OSError as exc:
            raise Problem(f"{key}: cannot write {path} ({_why(exc)}); make it writable or point {key} elsewhere") \
                from None
    return f"{key}: {path} is writable"


# --- instance, database, control port ---------------------------------------------------------------


def check_no_other_instance(loaded: LoadedConfig) -> str:
    """No other instance holds the storage folder's lock (taken and given back at once)."""
    from persistence.database import DatabaseUrlError
    from persistence.instance_lock import AlreadyRunningError, InstanceLock

    lock = InstanceLock(loaded.storage_dir, None)  # the database's lock is checked with the database
    try:
        lock.acquire()
    except AlreadyRunningError as exc:
        raise Problem(str(exc)) from None
    except DatabaseUrlError as exc:
        raise Problem(f"storage_dir: {exc}") from None
    finally:
        lock.release()
    return "no other instance runs on this storage folder"


def check_database(loaded: LoadedConfig) -> str:
    """The database is reachable, writable, and its schema is created or migrated (as a start would)."""
    from persistence.database import DatabaseUnavailableError, DatabaseUrlError, require_driver
    from persistence.database import check_database as open_and_migrate
    from persistence.instance_lock import AlreadyRunningError, InstanceLock

    try:
        database = loaded.database
        require_driver(database)  # before the lock, which talks to PostgreSQL through the driver too
    except DatabaseUrlError as exc:
        raise Problem(f"database.url: {exc}") from None
    lock = InstanceLock(loaded.storage_dir, database)  # first: never create or migrate tables under a running instance
    try:
        lock.acquire()
        where = open_and_migrate(database, sqlite_synchronous=loaded.config.database.sqlite_synchronous)
    except AlreadyRunningError as exc:
        raise Problem(str(exc)) from None
    except DatabaseUnavailableError as exc:
        raise Problem(f"database.url: {exc} (set [database] url in {loaded.path})") from None
    except DatabaseUrlError as exc:
        raise Problem(f"database.url: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - SchemaVersionError and anything a driver raises
        raise Problem(f"database.url: {_first(exc)}") from None
    finally:
        lock.release()
    return f"database.url: {where} is reachable and its schema is up to date"


def check_control_port(loaded: LoadedConfig) -> str:
    """The control endpoint's address can be bound (configuration/control_port.py, which `run` asks first of all).

    A port held by an instance of this very configuration says so, with its pid (through the existing lock file
    only: a refused start creates nothing).
    """
    try:
        return control_port_free(loaded)
    except ControlPortError as exc:
        if exc.in_use and (loaded.storage_dir / "instance.lock").is_file():
            check_no_other_instance(loaded)
        raise Problem(str(exc)) from None


# --- keys and the exchange ---------------------------------------------------------------------


def _needs_keys(loaded: LoadedConfig) -> bool:
    return loaded.config.mode != "paper" or bool(loaded.config.exchange.url)


def check_keys(loaded: LoadedConfig, environ: Mapping[str, str]) -> str:
    """In demo/live (or with exchange.url) both key variables are set and not empty; their values stay hidden."""
    if not _needs_keys(loaded):
        return "keys: paper mode generates its own"
    ex = loaded.config.exchange
    missing = [f"exchange.{key}: the environment variable {name} is not set"
               for key, name in (("api_key_env", ex.api_key_env), ("api_secret_env", ex.api_secret_env))
               if not environ.get(name)]
    if missing:
        raise Problem("; ".join(missing) + f" (mode {loaded.config.mode!r} trades with real keys: export them first)")
    return f"keys: {ex.api_key_env} and {ex.api_secret_env} are set (values hidden)"


def check_exchange(
    loaded: LoadedConfig, environ: Mapping[str, str], unreachable_is_problem: bool, report: PreflightReport
) -> str:
    """The exchange answers its market list with markets, and lists every configured symbol."""
    import ccxt

    from exchange.client import KRAKEN_BASE_URLS, make_kraken_client
    from exchange.markets import UnknownSymbolError, load_market_specs

    cfg = loaded.config
    simulator: Any = None
    if cfg.exchange.url:
        base, where = cfg.exchange.url, f"exchange.url {cfg.exchange.url}"
    elif cfg.mode == "paper":
        from simulator import SimulatorConfig, start_simulator

        # The paper simulator's markets, served through the same ccxt client a run uses (in memory: the
        # paper account's state file is not touched by a check).
        simulator = start_simulator(SimulatorConfig(port=0, seed=cfg.paper.seed, speed=cfg.paper.speed))
        base, where = simulator.base_url, "the paper simulator"
    else:
        base, where = KRAKEN_BASE_URLS[cfg.mode], f"mode {cfg.mode!r} ({KRAKEN_BASE_URLS[cfg.mode]})"
    client = make_kraken_client(base, timeout_ms=int(min(cfg.exchange.timeout_s, 10) * 1000))
    try:
        try:
            markets = client.load_markets()
        except (ccxt.NetworkError, ccxt.ExchangeNotAvailable) as exc:
            line = (f"exchange: cannot reach {where} ({type(exc).__name__}); check exchange.url, the network, or "
                    "Kraken's status page")
            if unreachable_is_problem:
                raise Problem(line) from None
            report.warnings.append(line + "; the run keeps trying")
            return f"exchange: {where} not reached yet"
        except ccxt.BaseError as exc:
            raise Problem(f"exchange: {where} refused the market list ({type(exc).__name__}: {_first(exc)})") from None
        if not markets:
            body = str(getattr(client, "last_http_response", "") or "").lstrip()[:1]
            what = "an HTML page" if body == "<" else "no markets"
            raise Problem(f"exchange: {where} answered the market list with {what}, not Kraken's instrument list; "
                          "check exchange.url (or wait for a maintenance to end)")
        try:
            load_market_specs(client, cfg.trading.symbols)
        except UnknownSymbolError as exc:
            raise Problem(f"{exc} (asked {where})") from None
        return f"exchange: {where} lists {', '.join(cfg.trading.symbols)}"
    finally:
        if simulator is not None:
            simulator.stop()


__all__ = [
    "PreflightReport",
    "check_control_port",
    "check_database",
    "check_exchange",
    "check_file",
    "check_folder",
    "check_keys",
    "check_no_other_instance",
    "listening_process",
    "port_in_use_line",
    "preflight",
]
