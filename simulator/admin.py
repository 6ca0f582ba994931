"""Test and soak controls: faults, prices, clock, reset and state dump, in process or over HTTP (`/sim/`)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from simulator.config import ScheduledFault
from simulator.instruments import resolve_symbol
from simulator.orders import text
from simulator.prices import Quote, fmt
from simulator.simulation import Simulator

# Admin HTTP routes (under /sim/) and the SimulatorAdmin method each one calls.
ADMIN_ROUTES: dict[str, str] = {
    "state": "state",
    "now": "now",
    "quote": "quote",
    "orders": "orders",
    "order_requests": "order_requests",
    "faults": "set_faults",
    "faults/next": "schedule_fault",
    "faults/clear": "clear_faults",
    "price": "set_price",
    "suspend": "suspend",
    "clock/step": "step",
    "reset": "reset",
    "ratelimit": "set_rate_limit",
}


class AdminError(ValueError):
    """A bad admin request (unknown market, wrong clock mode, invalid fault...)."""


def _quote_json(quote: Quote) -> dict[str, object]:
    """A quote as JSON-able data."""
    return {
        "symbol": quote.symbol,
        "time": quote.time_ms,
        "bid": fmt(quote.bid),
        "ask": fmt(quote.ask),
        "last": fmt(quote.last),
        "mark": fmt(quote.mark),
        "index": fmt(quote.index),
    }


class SimulatorAdmin:
    """In-process admin operations on a running simulator; every result is JSON-able."""

    def __init__(self, simulator: Simulator) -> None:
        self.sim = simulator

    def _symbol(self, name: str) -> str:
        """Kraken symbol for a market name, or AdminError."""
        symbol = resolve_symbol(str(name))
        if symbol is None or symbol not in self.sim.instruments:
            raise AdminError(f"unknown market {name!r}")
        return symbol

    def state(self) -> dict[str, Any]:
        """Every order ever received, fills, positions, balances, faults, budgets and the request log."""
        sim = self.sim
        dump = sim.exchange.dump()
        now = sim.clock.now_ms()
        dump["faults"] = sim.faults.snapshot()
        dump["rate_limit"] = {
            "enabled": sim.limiter.enabled,
            "derivatives_tokens": round(sim.limiter.derivatives.tokens(now), 3),
            "history_tokens": round(sim.limiter.history.tokens(now), 3),
        }
        dump["clock"] = {"now": now, "stepped": sim.clock.stepped}
        dump["requests"] = list(sim.requests)
        dump["order_requests"] = [dict(r) for r in sim.exchange.order_requests]
        dump["late_pending"] = sim.pending_late()
        return dump

    def orders(self, cli_ord_id: str | None = None) -> list[dict[str, Any]]:
        """Every order ever received (optionally only those with this cliOrdId)."""
        orders = self.sim.exchange.dump()["orders"]
        assert isinstance(orders, list)
        return [o for o in orders if cli_ord_id is None or o["cliOrdId"] == cli_ord_id]

    def order_requests(self, cli_ord_id: str | None = None, symbol: str | None = None,
                       kind: str | None = None) -> list[dict[str, Any]]:
        """Every order instruction received (send / edit / cancel, from sendorder, batchorder, editorder and
        cancelorder), oldest first, with its outcome: `seq`, `time` (processed), `received`, `fault` (`late` for a
        held request), `endpoint`, `kind`, `cliOrdId`, `order_id`, `symbol`, `side`, `orderType`, `size`,
        `limitPrice`, `reduceOnly`, `processBefore`, `batch` (batchorder: the request's number, one per batch),
        `status` (Kraken's status string) and `filled`.
        Optionally only those with this cliOrdId / market / kind.
        """
        sym = None if symbol is None else self._symbol(symbol)
        with self.sim.exchange.lock:
            self.sim.run_due()
            return [dict(r) for r in self.sim.exchange.order_requests
                    if (cli_ord_id is None or r["cliOrdId"] == cli_ord_id) and (sym is None or r["symbol"] == sym)
                    and (kind is None or r["kind"] == kind)]

    def now(self) -> dict[str, int]:
        """Current simulated time in epoch ms."""
        return {"now": self.sim.exchange.sync()}

    def quote(self, symbol: str) -> dict[str, object]:
        """Current bid/ask/last/mark/index of a market."""
        sym = self._symbol(symbol)
        with self.sim.exchange.lock:
            self.sim.exchange.sync()
            return _quote_json(self.sim.market.quote(sym))

    def set_faults(self, **changes: Any) -> dict[str, object]:
        """Merge probabilistic fault settings (FaultConfig fields); `suspended` also (un)suspends markets."""
        try:
            config = self.sim.faults.configure(**changes)
        except ValueError as exc:
            raise AdminError(str(exc)) from exc
        if "suspended" in changes:
            wanted = {self._symbol(s) for s in config.suspended}
            for symbol in self.sim.instruments:
                self.sim.exchange.set_suspended(symbol, symbol in wanted)
        return self.sim.faults.snapshot()

    def schedule_fault(self, kind: str, endpoint: str = "sendorder", count: int = 1,
                       delay_ms: float = 0.0, late_ms: float | None = None) -> dict[str, object]:
        """Make the next `count` requests to `endpoint` (`*` = any) fail with `kind`.

        `late`: the client is held `delay_ms` (default FaultConfig.hold_ms, wall time) and then loses the
        connection; the exchange processes the request `late_ms` (default FaultConfig.late_ms) after receipt on
        the simulator clock, where processBefore applies.
        """
        try:
            fault = ScheduledFault(kind=kind, endpoint=endpoint, count=count, delay_ms=delay_ms, late_ms=late_ms)
        except ValueError as exc:
            raise AdminError(str(exc)) from exc
        self.sim.faults.schedule(fault)
        return self.sim.faults.snapshot()

    def clear_faults(self) -> dict[str, object]:
        """Remove every fault and resume every suspended market."""
        self.sim.faults.clear()
        for symbol in self.sim.instruments:
            self.sim.exchange.set_suspended(symbol, False)
        return self.sim.faults.snapshot()

    def set_price(self, symbol: str, price: float | None = None, move_pct: float | None = None,
                  mark_premium: float | None = None) -> dict[str, object]:
        """Jump a market to `price`, or move it by `move_pct` percent; resting orders and triggers react."""
        sym = self._symbol(symbol)
        ex = self.sim.exchange
        with ex.lock:
            ex.sync()
            current = self.sim.market.paths[sym].fair
            if price is None:
                target = current * (1 + float(move_pct or 0.0) / 100)
            else:
                target = float(price)
            if target <= 0:
                raise AdminError("price must be positive")
            return _quote_json(ex.set_price(sym, target, None if mark_premium is None else float(mark_premium)))

    def suspend(self, symbol: str, suspended: bool = True) -> dict[str, object]:
        """Suspend (or resume) a market: orders get `marketSuspended`, nothing fills."""
        sym = self._symbol(symbol)
        self.sim.exchange.set_suspended(sym, bool(suspended))
        return {"suspended": sorted(self.sim.exchange.suspended)}

    def step(self, seconds: float = 0.0, ms: float = 0.0) -> dict[str, int]:
        """Advance a stepped clock and process every tick in between."""
        if not self.sim.clock.stepped:
            raise AdminError("the clock is not stepped (start with clock='stepped')")
        delta = int(float(seconds) * 1000 + float(ms))
        if delta < 0:
            raise AdminError("time cannot go backwards")
        with self.sim.exchange.lock:
            return {"now": self.sim.step_to(self.sim.clock.now_ms() + delta)}

    def reset(self) -> dict[str, int]:
        """Fresh account, markets, budgets and faults; same seed and keys; a state file is overwritten at once."""
        self.sim.reset()
        return {"now": self.sim.clock.now_ms()}

    def set_rate_limit(self, enabled: bool) -> dict[str, bool]:
        """Turn the cost budgets on or off."""
        self.sim.limiter.enabled = bool(enabled)
        if enabled:
            self.sim.limiter.reset(self.sim.clock.now_ms())
        return {"enabled": self.sim.limiter.enabled}

    def position(self, symbol: str) -> str:
        """Signed position size of a market as a decimal string."""
        return text(self.sim.exchange.position(self._symbol(symbol))) or "0"


class AdminClient:
    """The admin operations over HTTP, for tests that run the bot (or the simulator) in another process."""

    def __init__(self, base_url: str, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    def _call(self, route: str, payload: dict[str, Any] | None = None) -> Any:
        """POST (or GET without payload) one admin route and decode its JSON answer."""
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            f"{self.base_url}/sim/{route}",
            data=data,
            method="GET" if payload is None else "POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            body = exc.read().decode(errors="replace")
            raise AdminError(f"{exc.code}: {body}") from exc

    def state(self) -> dict[str, Any]:
        """See SimulatorAdmin.state."""
        return self._call("state")

    def orders(self, cli_ord_id: str | None = None) -> list[dict[str, Any]]:
        """See SimulatorAdmin.orders."""
        return self._call("orders", {"cli_ord_id": cli_ord_id})

    def order_requests(self, cli_ord_id: str | None = None, symbol: str | None = None,
                       kind: str | None = None) -> list[dict[str, Any]]:
        """See SimulatorAdmin.order_requests."""
        payload = {"cli_ord_id": cli_ord_id, "symbol": symbol, "kind": kind}
        return self._call("order_requests", payload)

    def now(self) -> dict[str, int]:
        """See SimulatorAdmin.now."""
        return self._call("now")

    def quote(self, symbol: str) -> dict[str, object]:
        """See SimulatorAdmin.quote."""
        return self._call("quote", {"symbol": symbol})

    def set_faults(self, **changes: Any) -> dict[str, object]:
        """See SimulatorAdmin.set_faults."""
        return self._call("faults", changes)

    def schedule_fault(self, kind: str, endpoint: str = "sendorder", count: int = 1,
                       delay_ms: float = 0.0, late_ms: float | None = None) -> dict[str, object]:
        """See SimulatorAdmin.schedule_fault."""
        payload = {"kind": kind, "endpoint": endpoint, "count": count, "delay_ms": delay_ms, "late_ms": late_ms}
        return self._call("faults/next", payload)

    def clear_faults(self) -> dict[str, object]:
        """See SimulatorAdmin.clear_faults."""
        return self._call("faults/clear", {})

    def set_price(self, symbol: str, price: float | None = None, move_pct: float | None = None,
                  mark_premium: float | None = None) -> dict[str, object]:
        """See SimulatorAdmin.set_price."""
        payload = {"symbol": symbol, "price": price, "move_pct": move_pct, "mark_premium": mark_premium}
        return self._call("price", payload)

    def suspend(self, symbol: str, suspended: bool = True) -> dict[str, object]:
        """See SimulatorAdmin.suspend."""
        return self._call("suspend", {"symbol": symbol, "suspended": suspended})

    def step(self, seconds: float = 0.0, ms: float = 0.0) -> dict[str, int]:
        """See SimulatorAdmin.step."""
        return self._call("clock/step", {"seconds": seconds, "ms": ms})

    def reset(self) -> dict[str, int]:
        """See SimulatorAdmin.reset."""
        return self._call("reset", {})

    def set_rate_limit(self, enabled: bool) -> dict[str, bool]:
        """See SimulatorAdmin.set_rate_limit."""
        return self._call("ratelimit", {"enabled": enabled})
