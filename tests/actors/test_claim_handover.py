"""One wait per signal: the entry's risk, its durable claim and the hand-over to the gateway.

An entry's claim goes to the portfolio (risk), which passes it on to the persistence; the persistence hands every
intent one commit claimed to the gateway in one PlaceOrders. A symbol that stops waiting takes the Handover and
gives the claim up; whichever side takes it first decides, so a late claim is never sent and a sent one is never
given up. Each test drives the real actors (no exchange)."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import pykka
import pytest

from actors.persistence import PersistenceActor
from actors.portfolio import PortfolioActor, PortfolioSettings
from actors.risk import RiskBook, RiskLimits
from actors.supervision import RestartPolicy
from actors.symbol import ActorPorts, ClaimUnanswered
from actors.system import make_trader_factory
from messages import (
    AbandonIntent,
    ClaimGivenUp,
    ClaimIntent,
    ClaimResult,
    Event,
    EventKind,
    GetStatus,
    Handover,
    OrderIntent,
    Ping,
    PlaceOrders,
    RiskRequest,
    Side,
    SignalKind,
    client_order_id_for,
    intent_hash,
    now_ms,
)
from persistence import Store, open_database
from tests.actors.test_portfolio_actor import BTC, ETH, MARKETS, persistence_reply
from tests.conftest import make_config
from tests.helpers import start_recorder, wait_until


def make_intent(t: int = 1, symbol: str = BTC) -> OrderIntent:
    h = intent_hash(symbol, t, SignalKind.ENTER_LONG, Decimal(100))
    return OrderIntent(intent_hash=h, client_order_id=client_order_id_for(h), symbol=symbol, kind=SignalKind.ENTER_LONG,
                       side=Side.BUY, candle_time=t, notional=Decimal(100), amount=Decimal("0.002"),
                       price=Decimal(50_000), created_at=now_ms())


def told_claim(intent: OrderIntent, gateway: Any, handover: Handover | None = None,
               risk: RiskRequest | None = None) -> tuple[ClaimIntent, pykka.ThreadingFuture]:
    reply: pykka.ThreadingFuture = pykka.ThreadingFuture()
    return ClaimIntent(intent=intent, reply=reply, place=gateway, handover=handover or Handover(), risk=risk), reply


@pytest.fixture
def persistence(tmp_path):
    ref = PersistenceActor.start(open_database(f"sqlite:///{tmp_path}/claims.db"))
    yield ref
    ref.stop()


def test_one_commit_hands_its_claims_to_the_gateway_in_one_place_orders_and_duplicates_not_at_all(
        persistence, monkeypatch: pytest.MonkeyPatch) -> None:
    gateway, inbox = start_recorder()
    held, released = threading.Event(), threading.Event()
    original = Store.apply_batch

    def first_write_held(self: Store, batch: list[Any]) -> list[Any]:
        if not held.is_set():  # the writer is busy with an earlier write while the three claims arrive
            held.set()
            released.wait(5)
        return original(self, batch)

    monkeypatch.setattr(Store, "apply_batch", first_write_held)
    try:
        first, second = make_intent(1), make_intent(2, ETH)
        (a, ra), (b, rb), (c, rc) = (told_claim(first, gateway), told_claim(second, gateway),
                                     told_claim(first, gateway))
        persistence.tell(Event(kind=EventKind.CONTROL, detail="an earlier write"))
        assert held.wait(5)
        for claim in (a, b, c):  # queued together behind it: one commit
            persistence.tell(claim)
        released.set()
        assert ra.get(timeout=5) == ClaimResult(claimed=True, handed=True)
        assert rb.get(timeout=5) == ClaimResult(claimed=True, handed=True)
        duplicate = rc.get(timeout=5)
        assert not duplicate.claimed and not duplicate.handed
        orders = inbox.wait_for(PlaceOrders)
        assert len(orders) == 1 and orders[0].intents == (first, second)
        assert a.handover.by == "persistence" and c.handover.by == ""  # the duplicate's is nobody's
    finally:
        gateway.stop()


def test_a_claim_the_symbol_gave_up_commits_but_is_never_handed_to_the_gateway(persistence, tmp_path) -> None:
    gateway, inbox = start_recorder()
    try:
        handover = Handover()
        assert handover.take("symbol")  # the symbol stopped waiting before the commit
        claim, reply = told_claim(make_intent(1), gateway, handover)
        persistence.tell(claim)
        result = reply.get(timeout=5)
        assert result.claimed and not result.handed
        persistence.ask(Ping(), timeout=5)
        assert inbox.received(PlaceOrders) == []
        assert not handover.take("persistence")
    finally:
        gateway.stop()


def test_a_symbol_that_times_out_after_the_hand_over_gets_the_answer_not_a_give_up() -> None:
    """The persistence took the Handover (the order is with the gateway) just as the symbol's wait ran out: the
    symbol waits for the answer being set and trades on; it must not report the signal lost."""

    answered_late = threading.Event()

    class SlowPersistence(pykka.ThreadingActor):
        def on_receive(self, message: Any) -> Any:
            if isinstance(message, ClaimIntent):
                assert message.handover.take("persistence")
                answered_late.wait(1.2)  # past both of the symbol's 0.5 s waits: taken means handed
                message.reply.set(ClaimResult(claimed=True, handed=True))

    slow = SlowPersistence.start()
    try:
        ports = ActorPorts(slow, slow, slow, ask_timeout=0.5)  # time enough for the persistence to take it first
        result = ports.claim(ClaimIntent(intent=make_intent(1)))
        assert result.claimed and result.handed
    finally:
        slow.stop()


def test_a_claim_nobody_answers_is_the_symbols_to_give_up_and_says_where_it_waited() -> None:
    silent, inbox = start_recorder()  # answers nothing
    try:
        ports = ActorPorts(silent, silent, silent, ask_timeout=0.05)
        with pytest.raises(ClaimUnanswered) as entry:
            ports.claim(ClaimIntent(intent=make_intent(1), risk=RiskRequest(symbol=BTC, intent_hash="h",
                                                                            notional=Decimal(100))))
        assert entry.value.at_portfolio  # the portfolio never passed it on
        with pytest.raises(ClaimUnanswered) as exit_:
            ports.claim(ClaimIntent(intent=make_intent(2)))
        assert not exit_.value.at_portfolio  # an exit waits on the persistence only
        claims = inbox.wait_for(ClaimIntent, 2)
        assert all(c.handover.given_up for c in claims)  # taken: a late commit never sends them
    finally:
        silent.stop()


@pytest.fixture
def portfolio():
    persistence, persistence_inbox = start_recorder(persistence_reply)
    gateway, _ = start_recorder()
    config = make_config(trading={"symbols": [BTC, ETH]}, risk={"max_open_positions": 1})
    ref = PortfolioActor.start(
        markets=MARKETS, trader_factory=make_trader_factory(config),
        risk=RiskBook(limits=RiskLimits(1, Decimal(1000), Decimal(5000)), markets=MARKETS),
        restart_policy=RestartPolicy(max_restarts=1, window_s=60, backoff_initial_s=0.01, backoff_max_s=0.01),
        settings=PortfolioSettings(position_sync_interval_s=3600, reconcile_retry_s=3600),
        persistence=persistence, gateway=gateway)
    ref.ask(Ping(), timeout=5)
    yield ref, persistence_inbox
    for actor in (ref, persistence, gateway):
        actor.stop()


def risk(symbol: str, t: int) -> RiskRequest:
    return RiskRequest(symbol=symbol, intent_hash=make_intent(t, symbol).intent_hash, notional=Decimal(100))


def test_the_portfolio_reserves_then_passes_the_claim_on_or_answers_the_refusal(portfolio) -> None:
    ref, persistence_inbox = portfolio
    granted, _ = told_claim(make_intent(1, BTC), None, risk=risk(BTC, 1))
    refused, refused_reply = told_claim(make_intent(1, ETH), None, risk=risk(ETH, 1))
    ref.tell(granted)
    ref.tell(refused)  # max_open_positions 1: BTC holds the slot
    answer = refused_reply.get(timeout=5)
    assert not answer.claimed and answer.refused is not None and not answer.refused.granted
    passed = persistence_inbox.wait_for(ClaimIntent)
    assert [c.intent.symbol for c in passed] == [BTC] and granted.handover.reserved


def test_a_give_up_releases_the_reservation_and_abandons_after_the_claim(portfolio) -> None:
    ref, persistence_inbox = portfolio
    claim, _ = told_claim(make_intent(1, BTC), None, risk=risk(BTC, 1))
    ref.tell(claim)
    claim.handover.take("symbol")
    ref.tell(ClaimGivenUp(symbol=BTC, intent_hash=claim.intent.intent_hash, detail="no answer"))
    abandoned = persistence_inbox.wait_for(AbandonIntent)
    assert abandoned[0].intent_hash == claim.intent.intent_hash
    kinds = [type(m) for m in persistence_inbox.messages if isinstance(m, (ClaimIntent, AbandonIntent))]
    assert kinds in ([ClaimIntent, AbandonIntent], [AbandonIntent])  # never the abandon before its claim
    other, _ = told_claim(make_intent(1, ETH), None, risk=risk(ETH, 1))
    ref.tell(other)  # max_open_positions 1: granted only because BTC's slot was released
    wait_until(lambda: [c for c in persistence_inbox.received(ClaimIntent) if c.intent.symbol == ETH],
               message="ETH's claim passed on: BTC's slot was released")


def test_a_claim_given_up_before_the_portfolio_reached_it_reserves_nothing(portfolio) -> None:
    ref, persistence_inbox = portfolio
    handover = Handover()
    handover.take("symbol")
    claim, _ = told_claim(make_intent(1, BTC), None, handover=handover, risk=risk(BTC, 1))
    ref.tell(claim)
    ref.ask(Ping(), timeout=5)
    assert persistence_inbox.received(ClaimIntent) == []
    assert ref.ask(GetStatus(), timeout=5).reserved_slots == 0
