"""Read `config.toml` into the validated model, and explain every error by its key path."""

from __future__ import annotations

import importlib.util
import json
import os
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from configuration.database_url import DatabaseUrl, DatabaseUrlError, parse_database_url
from configuration.masking import mask_url
from configuration.model import AppConfig
from strategies.base import StrategyParams
from strategies.registry import UnknownStrategyError, strategy_class

MAX_CONFIG_BYTES = 1024 * 1024  # a configuration is a few kilobytes; a larger file is a mistake


class ConfigError(Exception):
    """The configuration cannot be used; `errors` holds one line per problem, each naming its key (passwords masked)."""

    def __init__(self, path: Path, errors: list[str]) -> None:
        self.path = path
        self.errors = [_clip_line(mask_url(line)) for line in errors]
        errors = self.errors
        super().__init__(f"{path}: " + "; ".join(errors))


@dataclass(frozen=True)
class LoadedConfig:
    """A validated configuration, the file it came from, and its strategy parameters."""

    config: AppConfig
    path: Path
    strategy_params: StrategyParams

    @property
    def base_dir(self) -> Path:
        """The folder relative paths in the configuration are resolved against."""
        return self.path.parent

    def resolve(self, relative: str) -> Path:
        """Resolve a path from the configuration against the configuration file's folder."""
        path = Path(relative).expanduser()
        return path if path.is_absolute() else (self.base_dir / path)

    @property
    def storage_dir(self) -> Path:
        """The storage folder (lock file, control token, logs)."""
        return self.resolve(self.config.storage_dir)

    @property
    def database(self) -> DatabaseUrl:
        """The database URL, read, with a relative SQLite path resolved like `resolve`; raises DatabaseUrlError."""
        return parse_database_url(self.config.database.url, base_dir=self.base_dir)

    @property
    def database_url(self) -> str:
        """The database URL with a relative SQLite path made absolute (as written if it cannot be read)."""
        try:
            return self.database.url
        except DatabaseUrlError:
            return self.config.database.url  # opening it says what is wrong


MAX_ERROR_LINE = 500


def _clip_line(line: str) -> str:
    """One error line, never longer than MAX_ERROR_LINE characters (a value quoted in it may be huge)."""
    return line if len(line) <= MAX_ERROR_LINE else f"{line[:MAX_ERROR_LINE - 30]}... (clipped, {len(line)} characters)"


def load_config(path: str | Path) -> LoadedConfig:
    """Load and validate a configuration file; raise ConfigError listing every problem."""
    path = Path(path).expanduser().resolve()
    return validate_config(read_config(path), path)


def read_config(path: str | Path) -> dict[str, Any]:
    """A configuration file's TOML as a mapping, not yet validated; ConfigError if it cannot be read or parsed."""
    path = Path(path).expanduser().resolve()
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(path, [f"file not found: {path} (pass --config PATH, or copy config.toml)"]) from None
    except OSError as exc:
        raise ConfigError(path, [f"cannot read {path}: {exc.strerror or type(exc).__name__}"]) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(
            path,
            [f"the file is larger than {MAX_CONFIG_BYTES // 1024} KiB: not a configuration (a few KiB); "
             "check the path"],
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(path, [f"not UTF-8 text (byte {exc.start}): save the file as UTF-8"]) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, [f"not valid TOML: {exc}"]) from None
    except RecursionError:
        raise ConfigError(path, ["not usable TOML: arrays or tables nested too deeply"]) from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise ConfigError(path, [f"not usable TOML: {str(exc).split(':')[0]}"]) from None
    return raw


def validate_config(raw: dict[str, Any], path: Path) -> LoadedConfig:
    """Validate a parsed configuration mapping; raise ConfigError listing every problem."""
    errors: list[str] = []
    config: AppConfig | None = None
    try:
        config = AppConfig.model_validate(raw)
    except ValidationError as exc:
        errors.extend(describe_errors(exc, AppConfig))
    params = _validate_strategy(raw, errors, path.parent)
    if config is not None:
        errors.extend(_cross_checks(config))
    if errors or config is None or params is None:
        raise ConfigError(path, errors or ["invalid configuration"])
    return LoadedConfig(config=config, path=path, strategy_params=params)


def _cross_checks(config: AppConfig) -> list[str]:
    problems = []
    if config.trading.order_notional > config.risk.max_notional_per_order:
        problems.append(
            f"trading.order_notional: {config.trading.order_notional} exceeds risk.max_notional_per_order "
            f"({config.risk.max_notional_per_order}), so every entry would be refused"
        )
    if config.risk.max_total_notional < config.trading.order_notional:
        problems.append(
            f"risk.max_total_notional: {config.risk.max_total_notional} is below trading.order_notional "
            f"({config.trading.order_notional}), so every entry would be refused"
        )
    return problems


def config_warnings(config: AppConfig) -> list[str]:
    """Choices that run but deserve a word before they do (one line each, key first): `check-config` prints them,
    with or without --connect, and so does every `run` (through preflight)."""
    warnings = []
    if config.database.url.startswith(("postgres://", "postgresql://")) and not _installed("psycopg2"):
        warnings.append("database.url: PostgreSQL needs its driver, psycopg2, which is not installed here: install "
                        "the postgres extra: pip install 'kraken-actors[postgres]'")
    protection = config.protection
    if protection.enabled and protection.dead_man_timeout_s > 0:
        warnings.append(
            f"protection: enabled = true with dead_man_timeout_s = {protection.dead_man_timeout_s}: Kraken's dead "
            "man's switch cancels ALL orders when its timer runs out, the protective stop-loss and take-profit "
            "included, so after a crash (or a network cut) the position is left without its stop once the timer "
            f"fires ({protection.dead_man_timeout_s} s after the last heartbeat); choose one: dead_man_timeout_s = 0 "
            "keeps the stops on the exchange while the bot is down, enabled = false lets the switch clear resting "
            "orders instead"
        )
    return warnings


def strategy_search_path(path_key: str, base_dir: Path) -> list[Path]:
    """Where `[strategy] name = "package.module:Class"` is imported from: `[strategy] path` (relative to the
    configuration file's folder; empty: that folder), then the current folder (then the installed packages)."""
    folder = Path(path_key).expanduser()
    return [folder if folder.is_absolute() else (base_dir / folder).resolve(), Path.cwd()]


def _installed(module: str) -> bool:
    """True when `module` can be imported here (found, not blocked)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: blocked (None in sys.modules) or without a spec
        return False


def _validate_strategy(raw: dict[str, Any], errors: list[str], base_dir: Path) -> StrategyParams | None:
    section = raw.get("strategy", {})
    if not isinstance(section, dict):
        return None  # already reported by the model
    name = section.get("name", AppConfig().strategy.name)
    params = section.get("params", {})
    path_key = section.get("path", "")
    if not isinstance(name, str) or not isinstance(params, dict) or not isinstance(path_key, str):
        return None
    try:
        cls = strategy_class(name, strategy_search_path(path_key, base_dir))
    except UnknownStrategyError as exc:
        errors.append(f"strategy.name: {exc}")
        return None
    try:
        return cls.Params.model_validate(params)
    except ValidationError as exc:
        errors.extend(describe_errors(exc, cls.Params, prefix=("strategy", "params")))
        return None


def describe_errors(exc: ValidationError, model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[str]:
    """Turn pydantic errors into lines like `risk.max_open_positions: must be >= 1, got -3`."""
    lines = []
    for error in exc.errors():
        loc = prefix + tuple(str(part) for part in error["loc"])
        key = _key_path(loc) or "(top level)"
        text = _describe(error, model, loc[len(prefix):])
        if loc and loc[-1].endswith("_env") and error["type"] != "value_error":
            text = text.split(", got ")[0]  # the value of a variable-name key may be a secret pasted by mistake
        lines.append(f"{key}: {text}")
    return lines


def _key_path(loc: tuple[str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if part.isdigit() else (f".{part}" if path else part)
    return path


_TYPE_WORDS = {
    "int_parsing": "an integer",
    "int_type": "an integer",
    "int_from_float": "a whole number",
    "float_parsing": "a number",
    "float_type": "a number",
    "decimal_parsing": "a number",
    "decimal_type": "a number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "a string",
    "dict_type": "a table",
    "model_type": "a table",
    "tuple_type": "a list",
    "list_type": "a list",
}

_BOUNDS = {
    "greater_than": ("gt", ">"),
    "greater_than_equal": ("ge", ">="),
    "less_than": ("lt", "<"),
    "less_than_equal": ("le", "<="),
}


def _describe(error: Any, model: type[BaseModel], loc: tuple[str, ...]) -> str:
    kind = error["type"]
    value = _show(error.get("input"))
    ctx = error.get("ctx") or {}
    if kind in _BOUNDS:
        key, symbol = _BOUNDS[kind]
        return f"must be {symbol} {ctx.get(key)}, got {value}"
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, loc[:-1])
        hint = f"; allowed keys here: {', '.join(allowed)}" if allowed else ""
        return f"unknown key{hint}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}, got {value}"
    if kind in ("too_short", "string_too_short"):
        return f"must not be empty, got {value}"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} entries, got {ctx.get('actual_length', 'more')}"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters long, got {len(str(error.get('input')))}"
    if kind == "finite_number":
        return f"must be a finite number (no inf or nan), got {value}"
    if kind in _TYPE_WORDS:
        return f"must be {_TYPE_WORDS[kind]}, got {value}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    return f"{error['msg'][0].lower()}{error['msg'][1:]}, got {value}"


def _show(value: Any, limit: int = 80) -> str:
    """A value as an error line quotes it: repr, clipped (a 10 MB list must not become a 10 MB message)."""
    if isinstance(value, (list, tuple, dict)) and len(value) > 20:
        return f"a {type(value).__name__} of {len(value)} entries"
    if isinstance(value, bool):
        return "true" if value else "false"  # as TOML writes it
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _allowed_keys(model: type[BaseModel], loc: tuple[str, ...]) -> list[str]:
    current: Any = model
    for part in loc:
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        current = field.annotation
    fields = getattr(current, "model_fields", None)
    return sorted(fields) if fields else []


def render_config(loaded: LoadedConfig, environ: os._Environ[str] | dict[str, str] | None = None) -> str:
    """Render the effective configuration as TOML, with secrets masked and key variables checked."""
    env = os.environ if environ is None else environ
    data = loaded.config.model_dump()
    data["strategy"]["params"] = loaded.strategy_params.model_dump()
    data["database"]["url"] = mask_url(data["database"]["url"])
    lines = [f"# effective configuration from {loaded.path}", f"# database: {mask_url(loaded.database_url)}"]
    ex = loaded.config.exchange
    if loaded.config.mode == "paper" and not ex.url:
        lines.append("# API keys: none needed (paper mode generates its own for the built-in simulator)")
    else:
        for label, var in (("API key", ex.api_key_env), ("API secret", ex.api_secret_env)):
            state = "set (value hidden)" if env.get(var) else "not set"
            lines.append(f"# {label}: environment variable {var} is {state}")
    lines.append("")
    lines.extend(_toml_lines(data, ()))
    return mask_url("\n".join(lines))  # a password in any URL (exchange.url too) stays hidden


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, Decimal)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def _toml_lines(data: dict[str, Any], path: tuple[str, ...]) -> list[str]:
    scalars = [(k, v) for k, v in data.items() if not isinstance(v, dict)]
    tables = [(k, v) for k, v in data.items() if isinstance(v, dict)]
    # TOML has no null: a key whose value is None (an optional one left unset) is shown as a comment
    lines = [f"# {k} is not set" if v is None else f"{k} = {_toml_value(v)}" for k, v in scalars]
    for key, value in tables:
        lines.append("")
        lines.append(f"[{'.'.join(path + (key,))}]")
        lines.extend(_toml_lines(value, path + (key,)))
    return lines


__all__ = [
    "ConfigError",
    "LoadedConfig",
    "describe_errors",
    "load_config",
    "mask_url",
    "render_config",
    "validate_config",
]
