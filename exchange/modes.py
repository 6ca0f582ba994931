"""Where a mode trades: paper (the built-in simulator, in-process), demo, live, or any base URL.

Only the base URL and the keys differ between modes; the same ccxt client, signing and parsing run
in all of them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from configuration import LoadedConfig, register_secret
from exchange.client import KRAKEN_BASE_URLS


class CredentialsError(ValueError):
    """The API key or secret is missing from the environment."""


@dataclass
class ExchangeEndpoint:
    """A base URL, the key pair for it, and the in-process simulator behind it (paper mode)."""

    base_url: str
    api_key: str
    api_secret: str
    simulator: Any = None  # simulator.SimulatorHandle in paper mode

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


def open_endpoint(loaded: LoadedConfig, environ: Mapping[str, str] | None = None) -> ExchangeEndpoint:
    """Resolve the configured mode to a base URL and keys; start the paper simulator when needed."""
    env = os.environ if environ is None else environ
    cfg = loaded.config
    if cfg.exchange.url:
        key, secret = _keys(loaded, env, cfg.exchange.url)
        return ExchangeEndpoint(cfg.exchange.url, key, secret)
    if cfg.mode == "paper":
        from simulator import SimulatorConfig, start_simulator

        paper = cfg.paper
        state_file = str(loaded.resolve(paper.state_file)) if paper.state_file else None
        handle = start_simulator(
            SimulatorConfig(
                port=0,
                seed=paper.seed,
                speed=paper.speed,
                initial_balance=float(paper.initial_balance),
                volatility=paper.volatility,
                state_file=state_file,
            )
        )
        register_secret(handle.api_secret)
        return ExchangeEndpoint(handle.base_url, handle.api_key, handle.api_secret, simulator=handle)
    base = KRAKEN_BASE_URLS[cfg.mode]
    key, secret = _keys(loaded, env, base)
    return ExchangeEndpoint(base, key, secret)
