"""PrivateApi.cancel_all_after: ccxt's implicit cancelallordersafter, Kraken's cost, the answer parsed at the edge."""

from __future__ import annotations

from typing import Any

import ccxt
import pytest

from exchange.budget import derivatives_cost
from exchange.private_api import PrivateApi
from exchange.reports import DeadMansSwitchStatus, UnreadableAnswer, parse_dead_mans_switch

NOW, LATER = "2026-12-02T08:00:00.000Z", "2026-12-02T08:01:00.000Z"
NOW_MS = 1_796_198_400_000


class Answering:
    """A ccxt stand-in that answers cancelallordersafter with a given body and records the request."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.requests: list[dict[str, Any]] = []

    def privatePostCancelallordersafter(self, params: dict[str, Any]) -> Any:  # noqa: N802 - ccxt's name
        self.requests.append(params)
        return self.answer


def ok(trigger: str) -> dict[str, Any]:
    return {"result": "success", "serverTime": NOW, "status": {"currentTime": NOW, "triggerTime": trigger}}


def test_ccxt_has_the_implicit_endpoint_and_kraken_charges_25() -> None:
    assert callable(ccxt.krakenfutures().privatePostCancelallordersafter)
    assert derivatives_cost("cancelallordersafter") == 25  # Kraken's Derivatives Rate Limits table


def test_arming_sends_the_timeout_in_seconds_and_reads_the_trigger_time() -> None:
    exchange = Answering(ok(LATER))
    assert PrivateApi(exchange).cancel_all_after(60) == DeadMansSwitchStatus(NOW_MS, NOW_MS + 60_000)
    assert exchange.requests == [{"timeout": 60}]


def test_disarming_reads_trigger_time_zero_as_no_countdown() -> None:
    status = PrivateApi(Answering(ok("0"))).cancel_all_after(0)
    assert status.trigger_ms is None and not status.armed and status.current_ms == NOW_MS


@pytest.mark.parametrize(
    ("answer", "timeout_s", "says"),
    [
        ("<html>maintenance</html>", 60, "not a JSON object"),
        ({"result": "error", "error": "apiLimitExceeded"}, 60, "result is 'error', not success"),
        ({"result": "success"}, 60, "no status object"),
        ({"result": "success", "status": {"currentTime": "soon", "triggerTime": LATER}}, 60,
         "currentTime is not a time"),
        ({"result": "success", "status": {"currentTime": NOW}}, 60, "triggerTime is not a time"),
        (ok("0"), 60, "asked for a 60 s countdown, the answer shows none"),
        (ok(NOW), 60, "shows one already due"),
        (ok(LATER), 0, "asked to disarm, the answer still shows a countdown"),
    ],
)
def test_an_answer_that_is_not_evidence_is_unreadable(answer: Any, timeout_s: int, says: str) -> None:
    with pytest.raises(UnreadableAnswer, match=says):
        parse_dead_mans_switch(answer, timeout_s)
    with pytest.raises(UnreadableAnswer, match="cancelallordersafter: "):
        PrivateApi(Answering(answer)).cancel_all_after(timeout_s)


def test_a_negative_timeout_is_refused_before_anything_is_sent() -> None:
    exchange = Answering(ok("0"))
    with pytest.raises(ValueError, match=">= 0"):
        PrivateApi(exchange).cancel_all_after(-1)
    assert exchange.requests == []
