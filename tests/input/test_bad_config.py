"""Bad configuration values: refused with the key path, exit 2, no traceback, never echoing a secret."""

from __future__ import annotations

import math
import time
import typing
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import BaseModel

import run
from configuration import AppConfig, ConfigError, load_config
from configuration.loading import MAX_CONFIG_BYTES

pytestmark = pytest.mark.timeout(30)

SECRET = "rT+4xYz/Qk9sEcReT0123456789abcdefGHIJ=="  # shaped like a Kraken API secret (base64)
RANDOM_NAME_LIKE = "aB3dE5fG7hI9jK1lM3nOpQrS"  # a generated token that happens to be letters and digits


def write(folder: Path, text: str) -> Path:
    """A config file with `text` in `folder`."""
    path = folder / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Run run.py's main in-process; exit code and everything it printed."""
    code = run.main(list(argv))
    out, err = capsys.readouterr()
    return code, out + err


# --- secrets pasted where a variable's name belongs -------------------------------------------------


@pytest.mark.parametrize("key", ["exchange.api_key_env", "exchange.api_secret_env", "control.token_env"])
@pytest.mark.parametrize("value", [SECRET, RANDOM_NAME_LIKE, "my secret value"])
@pytest.mark.parametrize("command", ["check-config", "run"])
def test_a_secret_in_a_variable_name_key_is_refused_without_echo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, value: str, command: str
) -> None:
    section, name = key.split(".")
    path = write(tmp_path, f'[{section}]\n{name} = "{value}"\n')
    argv = ["check-config", str(path)] if command == "check-config" else ["run", "--config", str(path)]
    code, output = cli(capsys, *argv)
    assert code == 2
    assert f"{key}: must be the NAME of an environment variable" in output
    assert value not in output and value[:12] not in output
    assert "Traceback" not in output


@pytest.mark.parametrize("value", ["KRAKEN_FUTURES_API_KEY", "MY_KEY", "key2", "_X"])
def test_plain_variable_names_are_accepted(tmp_path: Path, value: str) -> None:
    loaded = load_config(write(tmp_path, f'[exchange]\napi_key_env = "{value}"\n'))
    assert loaded.config.exchange.api_key_env == value


def test_a_wrong_type_in_a_variable_name_key_is_not_echoed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, output = cli(capsys, "check-config", str(write(tmp_path, "[exchange]\napi_secret_env = 123456789012\n")))
    assert code == 2 and "exchange.api_secret_env: must be a string" in output
    assert "123456789012" not in output


# --- database URLs with a password ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("mysql://bot:PW-marker-9@db.example:3306/trading", "database.url: must start with sqlite:///"),
        ("postgresql://bot:PW-marker-9@127.0.0.1:5432", "database.url: names no database"),
        ("postgresql://bot:PW-marker-9@127.0.0.1:5432/", "database.url: names no database"),
        ("postgresql://bot:PW@marker-9@127.0.0.1:5432", "database.url: names no database"),
    ],
)
def test_a_database_password_is_never_printed_by_a_url_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str, words: str
) -> None:
    for argv in (["check-config", str(write(tmp_path, f'[database]\nurl = "{url}"\n'))],
                 ["run", "--config", str(tmp_path / "config.toml")]):
        code, output = cli(capsys, *argv)
        assert code == 2 and words in output
        assert "PW-marker-9" not in output and "marker-9" not in output
        assert "bot:***@" in output or "names no database" in output
        assert "Traceback" not in output


def test_an_exchange_url_password_is_masked_in_check_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, output = cli(capsys, "check-config", str(write(tmp_path, '[exchange]\nurl = "http://u:PW-marker-9@127.0.0.1:1"\n')))
    assert code == 0
    assert "PW-marker-9" not in output and "u:***@127.0.0.1" in output


# --- numbers -------------------------------------------------------------------------------------


def _numeric_fields() -> list[tuple[str, str, type]]:
    """(section, key, type) of every number in the schema."""
    found = []
    for section, field in AppConfig.model_fields.items():
        model = field.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        for key, sub in model.model_fields.items():
            kind = typing.get_origin(sub.annotation) and typing.get_args(sub.annotation)[0] or sub.annotation
            if kind in (int, float, Decimal):
                found.append((section, key, kind))
    return found


NUMERIC = _numeric_fields()


def test_the_schema_has_the_numbers_we_expect() -> None:
    keys = {f"{s}.{k}" for s, k, _ in NUMERIC}
    assert {"trading.intent_retention_hours", "exchange.reconcile_interval_s", "risk.max_open_positions",
            "control.port", "paper.speed", "exchange.process_before_s"} <= keys
    assert len(NUMERIC) >= 24


@pytest.mark.parametrize(("section", "key", "kind"), NUMERIC, ids=[f"{s}.{k}" for s, k, _ in NUMERIC])
@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e308", "-1e308", "true", "false", '"7"'])
def test_every_number_is_finite_bounded_and_not_a_boolean(
    tmp_path: Path, section: str, key: str, kind: type, value: str
) -> None:
    if value == '"7"' and kind is Decimal:
        pytest.skip("decimals may be written as strings, for exact values")
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, f"[{section}]\n{key} = {value}\n"))
    assert any(line.startswith(f"{section}.{key}: ") for line in info.value.errors), info.value.errors


@pytest.mark.parametrize(("section", "key", "kind"), NUMERIC, ids=[f"{s}.{k}" for s, k, _ in NUMERIC])
def test_every_number_has_an_upper_bound(section: str, key: str, kind: type) -> None:
    field = AppConfig.model_fields[section].annotation.model_fields[key]
    bounds = [getattr(m, "le", None) or getattr(m, "lt", None) for m in field.metadata]
    assert any(b is not None for b in bounds), f"{section}.{key} has no upper bound"


@pytest.mark.parametrize(
    ("section", "key"),
    [(s, k) for s, k, kind in NUMERIC if k.endswith("interval_s")],
)
def test_no_loop_interval_below_a_tenth_of_a_second(tmp_path: Path, section: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, f"[{section}]\n{key} = 0.09\n"))
    assert any(line.startswith(f"{section}.{key}: must be >=") for line in info.value.errors)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[trading]\nintent_retention_hours = inf\n", "trading.intent_retention_hours: must be a finite number"),
        ("[trading]\nintent_retention_hours = 1e308\n", "trading.intent_retention_hours: must be <="),
        ("[exchange]\nreconcile_interval_s = 1e-300\n", "exchange.reconcile_interval_s: must be >= 1"),
        ("[risk]\nmax_open_positions = true\n", "risk.max_open_positions: must be an integer, got true"),
        ("[risk]\nmax_open_positions = 2.0\n", "risk.max_open_positions: must be an integer"),
        ("[control]\nport = true\n", "control.port: must be an integer"),
        ("[logging]\nrotation = \"banana\"\n", "logging: rotation 'banana'"),
    ],
)
def test_the_reported_numbers_exit_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    for argv in (["check-config", str(path)], ["run", "--config", str(path)]):
        code, output = cli(capsys, *argv)
        assert code == 2 and expected in output and "Traceback" not in output


def test_the_shipped_config_still_loads() -> None:
    loaded = load_config(Path(run.__file__).with_name("config.toml"))
    assert math.isfinite(loaded.config.trading.intent_retention_hours)


# --- size and shape ------------------------------------------------------------------------------


def test_a_10_mb_config_is_refused_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    symbols = ", ".join(f'"S{i}/USD:USD"' for i in range(600_000))
    path = write(tmp_path, f"[trading]\nsymbols = [{symbols}]\n")
    assert path.stat().st_size > 10 * MAX_CONFIG_BYTES
    started = time.monotonic()
    code, output = cli(capsys, "check-config", str(path))
    assert time.monotonic() - started < 2
    assert code == 2 and f"larger than {MAX_CONFIG_BYTES // 1024} KiB" in output


def test_a_long_symbol_list_under_the_size_limit_is_refused_quickly(tmp_path: Path) -> None:
    symbols = ", ".join(f'"S{i}/USD:USD"' for i in range(50_000))
    path = write(tmp_path, f"[trading]\nsymbols = [{symbols}]\n")
    assert path.stat().st_size < MAX_CONFIG_BYTES
    started = time.monotonic()
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert time.monotonic() - started < 2
    assert info.value.errors == ["trading.symbols: must have at most 1000 entries, got 50000"]


def test_a_thousand_symbols_with_duplicates_are_checked_in_linear_time(tmp_path: Path) -> None:
    symbols = ", ".join(f'"S{i % 500}/USD:USD"' for i in range(1000))
    started = time.monotonic()
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, f"[trading]\nsymbols = [{symbols}]\n"))
    assert time.monotonic() - started < 2
    assert info.value.errors[0].startswith("trading.symbols: listed more than once: S0/USD:USD")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a = " + "[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ("[control]\nport = " + "9" * 5000 + "\n", "not usable TOML"),
        (b"\xff\xfe[control]".decode("latin-1"), "not UTF-8"),
    ],
    ids=["deep", "huge-int", "not-utf8"],
)
def test_unusable_toml_is_one_line_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(text.encode("latin-1"))
    code, output = cli(capsys, "check-config", str(path))
    assert code == 2 and expected in output and "Traceback" not in output


def test_a_value_quoted_in_an_error_is_clipped(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, f'[trading]\ntimeframe = "{"x" * 5000}"\n'))
    assert info.value.errors[0].startswith("trading.timeframe: must be one of")
    assert all(len(line) <= 500 for line in info.value.errors)
