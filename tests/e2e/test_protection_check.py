"""The soak's protection checker on hand-made timelines: it must see each broken promise, and only those."""

from __future__ import annotations

from tests.e2e.protection_check import protection_problems

RUNS = [(0, 1_000_000)]


def order(cid: str, start: int, end: int | None, kind: str = "stp", side: str = "sell", triggered: bool = False
          ) -> dict:
    return {"cliOrdId": cid, "symbol": "PF_XBTUSD", "orderType": kind, "side": side, "status": "placed",
            "time": start, "closedTime": None if triggered else end, "triggeredTime": end if triggered else None}


def fill(fill_id: str, time: int, side: str, size: str) -> dict:
    return {"fill_id": fill_id, "symbol": "PF_XBTUSD", "time": time, "side": side, "size": size}


def test_a_position_with_its_stop_from_open_to_close_is_clean() -> None:
    fills = [fill("a", 100, "buy", "1"), fill("b", 5_000, "sell", "1")]
    orders = [order("s1", 150, 5_000, triggered=True), order("t1", 150, 5_100, kind="take_profit")]
    assert protection_problems(orders, fills, RUNS, 10_000, allowance_ms=1_000) == []


def test_two_stops_resting_at_once_are_found() -> None:
    fills = [fill("a", 100, "buy", "1")]
    orders = [order("s1", 150, None), order("s2", 900, None)]
    problems = protection_problems(orders, fills, RUNS, 10_000, allowance_ms=1_000)
    assert any("two stop-loss orders rested at once: s1 and s2" in p for p in problems)


def test_a_stop_left_on_a_flat_market_beyond_the_allowance_is_found_only_while_the_bot_ran() -> None:
    fills = [fill("a", 100, "buy", "1"), fill("b", 2_000, "sell", "1")]
    orders = [order("s1", 150, 8_000)]
    assert any("s1 rested 6000 ms" in p for p in protection_problems(orders, fills, RUNS, 10_000, 1_000))
    down = [(0, 2_500), (7_500, 10_000)]  # the bot was down from 2.5 s to 7.5 s: 500 + 500 ms, within each run
    assert protection_problems(orders, fills, down, 10_000, 1_000) == []


def test_a_position_without_a_stop_beyond_the_allowance_is_found() -> None:
    fills = [fill("a", 100, "buy", "1")]
    orders = [order("s1", 3_000, None)]  # 2.9 s late
    problems = protection_problems(orders, fills, RUNS, 10_000, allowance_ms=1_000)
    assert any("had no stop-loss for 2900 ms" in p for p in problems)
    assert protection_problems([order("s1", 600, None)], fills, RUNS, 10_000, 1_000) == []


def test_a_stop_on_the_wrong_side_does_not_protect() -> None:
    fills = [fill("a", 100, "sell", "1")]  # short: needs a buy stop
    problems = protection_problems([order("s1", 150, None, side="sell")], fills, RUNS, 10_000, 1_000)
    assert any("had no stop-loss" in p for p in problems) and any("without a position" in p for p in problems)
