"""The control token: from the environment, or generated once into `<storage_dir>/control.token` (mode 600)."""

from __future__ import annotations

import errno
import hmac
import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from loguru import logger

from configuration import ControlConfig, register_secret
from control.errors import TokenError

TOKEN_FILE_NAME = "control.token"
MIN_TOKEN_LENGTH = 16
_MAX_TOKEN_FILE_BYTES = 4096


@dataclass(frozen=True)
class ControlToken:
    """A control token and where it came from (the value is never in its repr)."""

    value: str = field(repr=False)
    source: str


def token_file(storage_dir: Path) -> Path:
    """The file a generated token lives in."""
    return Path(storage_dir) / TOKEN_FILE_NAME


def describe_token_source(config: ControlConfig, storage_dir: Path) -> str:
    """Where a running system takes its token from, in words."""
    return (
        f"environment variable {config.token_env} if it was set when the system started, "
        f"otherwise the file {token_file(storage_dir)}"
    )


def ensure_token(
    config: ControlConfig, storage_dir: Path, environ: Mapping[str, str] | None = None
) -> ControlToken:
    """The running system's token: the environment's, else the token file's, generated (mode 600) at first start."""
    token = _from_environment(config, environ)
    if token is not None:
        if len(token.value) < MIN_TOKEN_LENGTH:
            logger.warning(
                "control: the token in {} is shorter than {} characters; use a long random value",
                config.token_env,
                MIN_TOKEN_LENGTH,
            )
        return token
    path = token_file(storage_dir)
    try:
        value = _read_token_file(path)
    except FileNotFoundError:
        try:
            value = _create_token_file(path)
            logger.info("control: generated a control token in {} (readable by its owner only)", path)
        except FileExistsError:  # another process created it between our read and our create
            value = _read_token_file(path)
    register_secret(value)
    return ControlToken(value=value, source=f"file {path}")


def find_token(
    config: ControlConfig, storage_dir: Path, environ: Mapping[str, str] | None = None
) -> ControlToken | None:
    """The token a client should present: the environment's, else the token file's, else None (never creates one)."""
    token = _from_environment(config, environ)
    if token is not None:
        return token
    path = token_file(storage_dir)
    try:
        value = _read_token_file(path)
    except FileNotFoundError:
        return None
    register_secret(value)
    return ControlToken(value=value, source=f"file {path}")


def tokens_equal(expected: str, presented: str | None) -> bool:
    """Compare a presented token with the expected one in constant time."""
    if presented is None:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), presented.encode("utf-8"))


def _from_environment(config: ControlConfig, environ: Mapping[str, str] | None) -> ControlToken | None:
    env = os.environ if environ is None else environ
    value = env.get(config.token_env, "").strip()
    if not value:
        return None
    _check_token_text(value, f"environment variable {config.token_env}")
    register_secret(value)
    return ControlToken(value=value, source=f"environment variable {config.token_env}")


def _check_token_text(value: str, where: str) -> None:
    if not all(33 <= ord(ch) <= 126 for ch in value):
        raise TokenError(
            f"the control token in {where} contains spaces or characters outside printable ASCII; "
            "it must fit in an HTTP header"
        )


def _read_token_file(path: Path) -> str:
    """Read a token file that is a regular file owned by us and closed to group and others."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise TokenError(f"the control token file {path} is a symbolic link; refusing to follow it") from None
        raise TokenError(f"cannot read the control token file {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise TokenError(f"the control token file {path} is not a regular file")
        if hasattr(os, "getuid") and info.st_uid != os.getuid():
            raise TokenError(
                f"the control token file {path} belongs to user id {info.st_uid}, not to the user running this "
                f"(id {os.getuid()}); refusing to use it"
            )
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise TokenError(
                f"the control token file {path} has mode {mode:04o}: group or others can read or change it. "
                f"It must be readable by its owner only: run `chmod 600 {path}` "
                "(or delete it, and a new token is generated at the next start)"
            )
        data = os.read(fd, _MAX_TOKEN_FILE_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > _MAX_TOKEN_FILE_BYTES:
        raise TokenError(f"the control token file {path} is larger than {_MAX_TOKEN_FILE_BYTES} bytes; is it a token?")
    try:
        value = data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise TokenError(
            f"the control token file {path} is not ASCII text; delete it to generate a new token"
        ) from None
    if not value:
        raise TokenError(f"the control token file {path} is empty; delete it to generate a new token at the next start")
    _check_token_text(value, f"the file {path}")
    return value


def _create_token_file(path: Path) -> str:
    """Create the token file with mode 600 (never world-readable, not even for a moment) and return the token."""
    value = secrets.token_urlsafe(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        raise
    except OSError as exc:
        raise TokenError(f"cannot create the control token file {path}: {exc.strerror}") from None
    try:
        os.fchmod(fd, 0o600)  # whatever the umask did: exactly owner read/write
        os.write(fd, (value + "\n").encode("ascii"))
        os.fsync(fd)
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise TokenError(f"cannot write the control token file {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    return value
