"""Where a mode trades: demo, live, or any base URL; paper mode's built-in simulator is started above, by the runner.

Only the base URL and the keys differ between modes; the same ccxt client, signing and parsing run
in all of them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from configuration import LoadedConfig, register_secret
from exchange.client import KRAKEN_BASE_URLS


class CredentialsError(ValueError):
    """The API key or secret is missing from the environment."""


class LocalExchange(Protocol):
    """An exchange this process runs itself (the paper simulator): stopped with the endpoint."""

    def stop(self) -> None:
        """Stop serving."""


@dataclass
class ExchangeEndpoint:
    """A base URL, the key pair for it, and the in-process simulator behind it (paper mode)."""

    base_url: str
    api_key: str
    api_secret: str
    simulator: LocalExchange | None = None  # simulator.SimulatorHandle in paper mode

    @property
    def description(self) -> str:
        """Where orders go, in words (no secrets)."""
        where = "the built-in paper simulator" if self.simulator is not None else self.base_url
        return f"{where} ({self.base_url})" if self.simulator is not None else where

    def close(self) -> None:
        """Stop the in-process simulator, if any."""
        if self.simulator is not None:
            self.simulator.stop()
            self.simulator = None


def runs_on_paper_simulator(loaded: LoadedConfig) -> bool:
    """True when the configuration trades on the built-in simulator: paper mode without exchange.url."""
    return loaded.config.mode == "paper" and not loaded.config.exchange.url


def _keys(loaded: LoadedConfig, environ: Mapping[str, str], where: str) -> tuple[str, str]:
    ex = loaded.config.exchange
    key, secret = environ.get(ex.api_key_env, ""), environ.get(ex.api_secret_env, "")
    missing = [name for name, value in ((ex.api_key_env, key), (ex.api_secret_env, secret)) if not value]
    if missing:
        raise CredentialsError(
            f"mode {loaded.config.mode!r} trades on {where} and needs API keys: set the environment "
            f"variable{'s' if len(missing) > 1 else ''} {' and '.join(missing)} "
            f"(their names come from exchange.api_key_env / exchange.api_secret_env in {loaded.path})"
        )
    register_secret(key)
    register_secret(secret)
    return key, secret


def remote_endpoint(loaded: LoadedConfig, environ: Mapping[str, str] | None = None) -> ExchangeEndpoint:
    """The base URL and keys of exchange.url, or of the demo or live exchange; raise CredentialsError without keys.

    Paper mode without exchange.url has no remote endpoint: `actors.endpoint.open_endpoint` starts the simulator.
    """
    env = os.environ if environ is None else environ
    cfg = loaded.config
    if cfg.exchange.url:
        key, secret = _keys(loaded, env, cfg.exchange.url)
        return ExchangeEndpoint(cfg.exchange.url, key, secret)
    if runs_on_paper_simulator(loaded):
        raise ValueError("paper mode without exchange.url trades on the built-in simulator, which has no remote "
                         "endpoint: open it with actors.endpoint.open_endpoint")
    base = KRAKEN_BASE_URLS[cfg.mode]
    key, secret = _keys(loaded, env, base)
    return ExchangeEndpoint(base, key, secret)


__all__ = ["CredentialsError", "ExchangeEndpoint", "LocalExchange", "remote_endpoint", "runs_on_paper_simulator"]
