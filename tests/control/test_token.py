"""The control token: environment first, else a generated owner-only file, reused; loose files refused."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from configuration import ControlConfig, scrub
from control import ControlToken, TokenError, ensure_token, find_token, token_file, tokens_equal

pytestmark = pytest.mark.timeout(10)

ENV = "KRAKEN_BOT_CONTROL_TOKEN"


def mode_of(path: Path) -> int:
    """The permission bits of a file."""
    return stat.S_IMODE(path.stat().st_mode)


def test_first_start_generates_an_owner_only_token_file_and_later_starts_reuse_it(tmp_path: Path) -> None:
    storage = tmp_path / "storage"
    first = ensure_token(ControlConfig(), storage, environ={})
    path = token_file(storage)
    assert path.is_file()
    assert mode_of(path) == 0o600
    assert len(first.value) >= 40
    assert first.source == f"file {path}"
    again = ensure_token(ControlConfig(), storage, environ={})
    assert again.value == first.value
    found = find_token(ControlConfig(), storage, environ={})
    assert found is not None and found.value == first.value


def test_the_token_file_is_owner_only_even_under_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        ensure_token(ControlConfig(), tmp_path, environ={})
    finally:
        os.umask(old)
    assert mode_of(token_file(tmp_path)) == 0o600


def test_the_environment_token_wins_over_the_file(tmp_path: Path) -> None:
    ensure_token(ControlConfig(), tmp_path, environ={})
    env = {ENV: "from-the-environment-0123456789"}
    server = ensure_token(ControlConfig(), tmp_path, environ=env)
    client = find_token(ControlConfig(), tmp_path, environ=env)
    assert server.value == "from-the-environment-0123456789"
    assert server.source == f"environment variable {ENV}"
    assert client == server


def test_the_variable_named_in_the_config_is_used(tmp_path: Path) -> None:
    config = ControlConfig(token_env="MY_BOT_TOKEN")
    token = ensure_token(config, tmp_path, environ={"MY_BOT_TOKEN": "mine-0123456789abcdef", ENV: "other-0123456789"})
    assert token.value == "mine-0123456789abcdef"
    assert not token_file(tmp_path).exists()


def test_an_empty_environment_variable_falls_back_to_the_file(tmp_path: Path) -> None:
    token = ensure_token(ControlConfig(), tmp_path, environ={ENV: "  "})
    assert token.source.startswith("file ")
    assert token_file(tmp_path).exists()


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o620])
def test_a_token_file_open_to_group_or_others_is_refused(tmp_path: Path, mode: int) -> None:
    ensure_token(ControlConfig(), tmp_path, environ={})
    path = token_file(tmp_path)
    path.chmod(mode)
    for load in (ensure_token, find_token):
        with pytest.raises(TokenError) as caught:
            load(ControlConfig(), tmp_path, environ={})
        message = str(caught.value)
        assert f"{mode:04o}" in message and f"chmod 600 {path}" in message


def test_a_symlinked_token_file_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "elsewhere"
    real.write_text("some-token-0123456789abcdef\n")
    real.chmod(0o600)
    token_file(tmp_path).symlink_to(real)
    with pytest.raises(TokenError, match="symbolic link"):
        find_token(ControlConfig(), tmp_path, environ={})


def test_an_empty_token_file_is_refused_with_the_way_out(tmp_path: Path) -> None:
    path = token_file(tmp_path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.close(fd)
    with pytest.raises(TokenError, match="empty; delete it"):
        ensure_token(ControlConfig(), tmp_path, environ={})


def test_a_token_with_spaces_in_the_environment_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TokenError, match="printable ASCII"):
        find_token(ControlConfig(), tmp_path, environ={ENV: "two words-0123456789"})


def test_a_client_never_creates_a_token_file(tmp_path: Path) -> None:
    assert find_token(ControlConfig(), tmp_path, environ={}) is None
    assert not token_file(tmp_path).exists()


def test_tokens_compare_exactly() -> None:
    assert tokens_equal("abc-0123456789", "abc-0123456789")
    assert not tokens_equal("abc-0123456789", "abc-0123456788")
    assert not tokens_equal("abc-0123456789", "")
    assert not tokens_equal("abc-0123456789", None)
    assert not tokens_equal("abc-0123456789", "abc-0123456789é")


def test_the_token_stays_out_of_reprs_and_logs(tmp_path: Path) -> None:
    token = ensure_token(ControlConfig(), tmp_path, environ={})
    assert token.value not in repr(token)
    assert isinstance(token, ControlToken)
    assert scrub(f"token is {token.value}") == "token is ***"
