"""`run.py check-config`: the effective configuration with secrets masked, or every error by key path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from configuration import ConfigError, load_config

REPO = Path(__file__).resolve().parents[1]


def check_config(path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "run.py"), "check-config", str(path)],
        capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})}, cwd=REPO,
    )


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_the_shipped_config_is_valid_paper_mode_on_sqlite() -> None:
    loaded = load_config(REPO / "config.toml")
    assert loaded.config.mode == "paper"
    assert loaded.database_url == f"sqlite:///{REPO / 'storage' / 'trading.db'}"
    result = check_config(REPO / "config.toml")
    assert result.returncode == 0 and 'mode = "paper"' in result.stdout


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mode = \"paper\"\n[risk\nmax_open_positions = 3\n", "not valid TOML"),
        ("[risk]\nmax_open_positionz = 3\n", "risk.max_open_positionz: unknown key; allowed keys here: "
                                              "max_notional_per_order, max_open_positions, max_total_notional"),
        ("[trading]\npyramiding = \"yes\"\n", "trading.pyramiding: must be true or false, got 'yes'"),
        ("[risk]\nmax_open_positions = \"three\"\n", "risk.max_open_positions: must be an integer, got 'three'"),
        ("[risk]\nmax_open_positions = -3\n", "risk.max_open_positions: must be >= 1, got -3"),
        ("[trading]\norder_notional = -50\n", "trading.order_notional: must be > 0, got -50"),
        ("[strategy]\nname = \"moonshot\"\n", "strategy.name: unknown strategy 'moonshot'; available: ma_crossover, "
                                               "scripted"),
        ("[strategy]\nname = \"ma_crossover\"\n[strategy.params]\nfast = 0\n",
         "strategy.params.fast: must be >= 1, got 0"),
        ("[trading]\nsymbols = [\"BTCUSD\"]\n", "trading.symbols: 'BTCUSD' is not a ccxt unified swap symbol"),
        ("mode = \"real\"\n", "mode: must be one of 'paper', 'demo' or 'live', got 'real'"),
        ("bogus = 1\n", "bogus: unknown key"),
    ],
)
def test_bad_configs_exit_2_naming_the_key_without_a_traceback(tmp_path: Path, text: str, expected: str) -> None:
    result = check_config(write(tmp_path, text))
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_every_error_is_listed_at_once(tmp_path: Path) -> None:
    result = check_config(write(tmp_path, "[risk]\nmax_open_positions = -3\n[trading]\norder_notional = -1\n"
                                          "[strategy]\nname = \"nope\"\n"))
    assert result.returncode == 2
    for key in ("risk.max_open_positions", "trading.order_notional", "strategy.name"):
        assert key in result.stderr


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = check_config(tmp_path / "absent.toml")
    assert result.returncode == 2 and "file not found" in result.stderr and "Traceback" not in result.stderr


def test_secrets_are_masked(tmp_path: Path) -> None:
    path = write(tmp_path, "mode = \"demo\"\n"  # paper mode needs no keys, so says nothing about them
                           "[database]\nurl = \"postgresql://bot:hunter2secret@db.example:5432/trading\"\n")
    result = check_config(path, env={"KRAKEN_FUTURES_API_KEY": "key-abcdef123456",
                                     "KRAKEN_FUTURES_API_SECRET": "c2VjcmV0LXNlY3JldA=="})
    assert result.returncode == 0
    assert "hunter2secret" not in result.stdout and "bot:***@db.example" in result.stdout
    assert "key-abcdef123456" not in result.stdout and "c2VjcmV0LXNlY3JldA==" not in result.stdout
    assert "KRAKEN_FUTURES_API_KEY is set (value hidden)" in result.stdout


def test_order_larger_than_the_per_order_limit_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "[trading]\norder_notional = 5000\n[risk]\nmax_notional_per_order = 1000\n"))
    assert info.value.errors == [
        "trading.order_notional: 5000 exceeds risk.max_notional_per_order (1000), so every entry would be refused"
    ]


PROTECTED_AND_SWITCHED = "[protection]\nenabled = true\ndead_man_timeout_s = 60\nheartbeat_interval_s = 20\n"


def test_exchange_side_stops_with_the_dead_mans_switch_are_warned_about_even_without_connect(tmp_path: Path) -> None:
    result = check_config(write(tmp_path, PROTECTED_AND_SWITCHED))
    assert result.returncode == 0
    warnings = [line for line in result.stdout.splitlines() if line.startswith("# warning: ")]
    assert warnings == [
        "# warning: protection: enabled = true with dead_man_timeout_s = 60: Kraken's dead man's switch cancels ALL "
        "orders when its timer runs out, the protective stop-loss and take-profit included, so after a crash (or a "
        "network cut) the position is left without its stop once the timer fires (60 s after the last heartbeat); "
        "choose one: dead_man_timeout_s = 0 keeps the stops on the exchange while the bot is down, enabled = false "
        "lets the switch clear resting orders instead"
    ]


@pytest.mark.parametrize("text", ["", "[protection]\nenabled = true\n",
                                  "[protection]\ndead_man_timeout_s = 60\n"])
def test_either_alone_draws_no_warning(tmp_path: Path, text: str) -> None:
    from configuration import config_warnings

    assert config_warnings(load_config(write(tmp_path, text)).config) == []


def test_preflight_carries_the_configuration_warnings(tmp_path: Path) -> None:
    from actors.preflight import preflight

    loaded = load_config(write(tmp_path, 'storage_dir = "storage"\n[logging]\nfile = ""\n' + PROTECTED_AND_SWITCHED))
    report = preflight(loaded, environ={}, exchange=False)
    assert [line for line in report.warnings if line.startswith("protection: enabled = true with dead_man")]


def test_the_printed_configuration_loads_back_as_the_same_configuration(tmp_path: Path) -> None:
    """check-config prints TOML: an optional key left unset (e.g. protection.stop_loss_abs) is a comment, never
    the string "None" that would not load again."""
    from configuration import render_config

    loaded = load_config(write(tmp_path, "[protection]\nenabled = true\nstop_loss_abs = 150\n"))
    text = render_config(loaded, environ={})
    assert "# stop_loss_pct is not set" in text and "# take_profit_abs is not set" in text and "None" not in text
    again = load_config(write(tmp_path, text))
    assert again.config.protection == loaded.config.protection


@pytest.mark.parametrize(("text", "expected"), [
    ("[protection]\nstop_loss_pct = 2\nstop_loss_abs = 100\n", "give stop_loss_pct or stop_loss_abs, not both"),
    ("[protection]\ntrailing_stop_pct = 1\nstop_loss_abs = 100\n", "give trailing_stop_pct or stop_loss_abs"),
    ("[protection]\ndead_man_timeout_s = 30\nheartbeat_interval_s = 20\n", "at most half of dead_man_timeout_s"),
    ("[protection]\ntrigger_signal = \"bid\"\n", "protection.trigger_signal"),
])
def test_protection_settings_that_contradict_each_other_are_refused_naming_the_keys(
        tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    assert any(expected in line for line in caught.value.errors), caught.value.errors


def test_a_trailing_stop_replaces_the_default_fixed_stop_loss(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path, "[protection]\nenabled = true\ntrailing_stop_pct = 1.5\n"))
    protection = loaded.config.protection
    assert protection.stop_loss_pct is None and protection.trailing_stop_pct == 1.5


@pytest.mark.parametrize("value", ["0.05", "1.25", "51"])
def test_a_trailing_deviation_kraken_would_refuse_is_refused_at_load(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, f"[protection]\ntrailing_stop_pct = {value}\n"))
    assert any("protection.trailing_stop_pct" in line for line in caught.value.errors), caught.value.errors
