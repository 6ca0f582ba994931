"""Open the exchange a run trades on: paper mode's built-in simulator (started here, in-process), or a remote one.

The exchange layer knows the remote endpoints (demo, live, exchange.url) and their keys; starting the
simulator is wiring, so it lives up here with the runner, and `exchange/` never imports `simulator/`.
"""

from __future__ import annotations

from collections.abc import Mapping

from configuration import LoadedConfig, register_secret
from exchange.modes import ExchangeEndpoint, remote_endpoint, runs_on_paper_simulator
from simulator import SimulatorConfig, start_simulator


def open_endpoint(loaded: LoadedConfig, environ: Mapping[str, str] | None = None) -> ExchangeEndpoint:
    """Resolve the configured mode to a base URL and keys; start the paper simulator when needed."""
    if not runs_on_paper_simulator(loaded):
        return remote_endpoint(loaded, environ)
    paper = loaded.config.paper
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


__all__ = ["open_endpoint"]
