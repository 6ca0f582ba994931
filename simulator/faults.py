"""Decides which fault, if any, hits each Kraken request."""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass

from simulator.config import FaultConfig, ScheduledFault
from simulator.prices import stable_seed

ACCEPT_KINDS = frozenset({"accept_then_drop", "accept_then_timeout", "accept_then_unavailable"})
ORDER_FAULT_KINDS = ACCEPT_KINDS | {"late"}  # probabilistic only on `drop_endpoints` (order entry)
_PROBABILISTIC = (
    "reset",
    "timeout",
    "unavailable",
    "http_500",
    "http_429",
    "api_limit",
    "accept_then_drop",
    "accept_then_timeout",
    "accept_then_unavailable",
    "late",
)


@dataclass(frozen=True)
class FaultAction:
    """What to do to one request: delay it, then optionally break it in one way."""

    kind: str | None = None
    delay_ms: float = 0.0
    hold_ms: float = 0.0
    late_ms: float = 0.0  # `late`: processing delay after receipt, on the simulator clock

    @property
    def processes(self) -> bool:
        """True if the request reaches the exchange (no fault, latency, or an accept-then-* fault)."""
        return self.kind is None or self.kind == "latency" or self.kind in ACCEPT_KINDS


class FaultInjector:
    """Seeded probabilistic faults plus a queue of deterministic "next N requests" faults."""

    def __init__(self, config: FaultConfig | None = None, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(stable_seed(seed, "faults"))
        self.config = config or FaultConfig()
        self.scheduled: list[ScheduledFault] = []
        self.injected: Counter[str] = Counter()

    def configure(self, **changes: object) -> FaultConfig:
        """Merge changes into the probabilistic fault configuration."""
        with self._lock:
            merged = {**self.config.model_dump(), **changes}
            self.config = FaultConfig.model_validate(merged)
            return self.config

    def replace(self, config: FaultConfig) -> None:
        """Replace the whole configuration."""
        with self._lock:
            self.config = config

    def schedule(self, fault: ScheduledFault) -> None:
        """Queue a deterministic fault."""
        with self._lock:
            self.scheduled.append(fault)

    def clear(self) -> None:
        """Remove every fault, probabilistic and scheduled."""
        with self._lock:
            self.config = FaultConfig()
            self.scheduled.clear()

    def decide(self, endpoint: str) -> FaultAction:
        """The fault for one request to `endpoint` (a Kraken endpoint name such as `sendorder`)."""
        with self._lock:
            cfg = self.config
            delay = cfg.latency_ms + (cfg.latency_jitter_ms * self._rng.random() if cfg.latency_jitter_ms else 0.0)
            for fault in self.scheduled:
                if fault.endpoint in ("*", endpoint):
                    fault.count -= 1
                    if fault.count <= 0:
                        self.scheduled.remove(fault)
                    self.injected[fault.kind] += 1
                    if fault.kind == "latency":
                        return FaultAction("latency", delay + fault.delay_ms)
                    hold = fault.delay_ms or cfg.hold_ms
                    late = cfg.late_ms if fault.late_ms is None else fault.late_ms
                    return FaultAction(fault.kind, delay, hold, late)
            if cfg.endpoints is None or endpoint in cfg.endpoints:
                for kind in _PROBABILISTIC:
                    p: float = getattr(cfg, kind)
                    if p <= 0:
                        continue
                    if kind in ORDER_FAULT_KINDS and endpoint not in cfg.drop_endpoints:
                        continue
                    if self._rng.random() < p:
                        self.injected[kind] += 1
                        return FaultAction(kind, delay, cfg.hold_ms, cfg.late_ms)
            return FaultAction("latency" if delay else None, delay)

    def snapshot(self) -> dict[str, object]:
        """Current configuration, queue and counts, as JSON-able data."""
        with self._lock:
            return {
                "config": self.config.model_dump(),
                "scheduled": [f.model_dump() for f in self.scheduled],
                "injected": dict(self.injected),
            }
