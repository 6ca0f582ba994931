"""A symbol actor's ports in memory: the portfolio's risk answer, the durable claim and the gateway, recorded.

A SymbolTrader talks to the rest of the system only through its ports (actors.symbol.SymbolPorts): risk
reservations and the intent claim (one wait), and tells for cancels, resizes, releases and events. These
FakePorts answer at once and record everything, so a symbol actor runs alone around a strategy.
"""

from __future__ import annotations

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
        self.abandoned.append(AbandonIntent(intent_hash=given_up.intent_hash, detail=given_up.detail,
                                              claimed_sent_at=given_up.sent_at))

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
