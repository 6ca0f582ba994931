"""Small test helpers: waiting on a condition, recording actors, fake ports."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pykka

from messages import (
    AbandonIntent,
    CancelOrder,
    ClaimGivenUp,
    ClaimIntent,
    ClaimResult,
    Event,
    OrderState,
    PlaceOrder,
    ResizeOrder,
    RiskDecision,
    RiskRelease,
    RiskRequest,
)


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, message: str = "condition") -> Any:
    """Poll `predicate` (every 5 ms) until it is truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        pause.wait(0.005)


class Inbox:
    """What a Recorder actor received; read and waited on from the test's thread."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self._changed = threading.Condition()

    def add(self, message: Any) -> None:
        """Record one message."""
        with self._changed:
            self.messages.append(message)
            self._changed.notify_all()

    def received(self, kind: type | tuple[type, ...]) -> list[Any]:
        """The messages of a type received so far."""
        with self._changed:
            return [m for m in self.messages if isinstance(m, kind)]

    def wait_for(self, kind: type, count: int = 1, timeout: float = 5.0) -> list[Any]:
        """Wait until `count` messages of a type arrived; return them."""
        with self._changed:
            self._changed.wait_for(lambda: len([m for m in self.messages if isinstance(m, kind)]) >= count, timeout)
        found = self.received(kind)
        assert len(found) >= count, f"expected {count} {kind.__name__}, got {len(found)}"
        return found


class Recorder(pykka.ThreadingActor):
    """An actor that records every message in an Inbox; asks are answered by `reply(message)`."""

    def __init__(self, inbox: Inbox, reply: Callable[[Any], Any] | None = None) -> None:
        super().__init__()
        self.inbox = inbox
        self.reply = reply or (lambda message: None)

    def on_receive(self, message: Any) -> Any:
        self.inbox.add(message)
        return self.reply(message)


def start_recorder(reply: Callable[[Any], Any] | None = None) -> tuple[pykka.ActorRef[Any], Inbox]:
    """Start a Recorder; return its reference and its inbox."""
    inbox = Inbox()
    return Recorder.start(inbox, reply), inbox


class FakePorts:
    """SymbolPorts in memory: grants risk unless told not to, claims each hash once, records the rest.

    `fail_risk` is raised before the reservation (as the portfolio not answering), `fail_claim` after it (as the
    database failing or not answering): the symbol gives the claim up in both cases.
    """

    def __init__(self, grant: bool = True) -> None:
        self.grant = grant
        self.claimed: set[str] = set()
        self.placed: list[PlaceOrder] = []
        self.events: list[Event] = []
        self.released: list[RiskRelease] = []
        self.risk_requests: list[RiskRequest] = []
        self.fail_claim: Exception | None = None
        self.fail_risk: Exception | None = None
        self.cancels: list[CancelOrder] = []
        self.abandoned: list[AbandonIntent] = []
        self.given_up: list[ClaimGivenUp] = []
        self.resizes: list[ResizeOrder] = []
        self.states: dict[str, OrderState] = {}  # each claimed hash's order state, as the store would answer it

    def claim(self, claim: ClaimIntent) -> ClaimResult:
        if claim.risk is not None:
            self.risk_requests.append(claim.risk)
            if self.fail_risk is not None:
                raise self.fail_risk
            if not self.grant:
                return ClaimResult(claimed=False, refused=RiskDecision(granted=False, reason="RISK_LIMIT",
                                                                       detail="test limit"))
        if self.fail_claim is not None:
            raise self.fail_claim
        if claim.intent.intent_hash in self.claimed:  # the store answers a duplicate with the state it holds
            return ClaimResult(claimed=False, existing_state=self.states.get(claim.intent.intent_hash))
        self.claimed.add(claim.intent.intent_hash)
        self.states[claim.intent.intent_hash] = (OrderState.SUBMITTED if claim.intent.process_before is not None
                                                 else OrderState.INITIALIZED)
        self.placed.append(PlaceOrder(intent=claim.intent))  # handed to the gateway after the commit
        return ClaimResult(claimed=True, handed=True)

    def give_up(self, given_up: ClaimGivenUp, *, entry: bool) -> None:
        self.given_up.append(given_up)
        if entry:  # the portfolio releases the reservation and passes the abandon on
            self.released.append(RiskRelease(symbol=given_up.symbol, intent_hash=given_up.intent_hash))
        self.abandoned.append(AbandonIntent(intent_hash=given_up.intent_hash, detail=given_up.detail))

    def release_risk(self, release: RiskRelease) -> None:
        self.released.append(release)

    def cancel_order(self, command: CancelOrder) -> None:
        self.cancels.append(command)

    def resize_order(self, command: ResizeOrder) -> None:
        self.resizes.append(command)

    def record(self, event: Event) -> None:
        self.events.append(event)

    def reasons(self) -> list[str]:
        """Reasons of the rejection events so far."""
        return [e.reason.value for e in self.events if e.reason is not None]
