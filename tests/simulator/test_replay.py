"""History as the simulator's price path (simulator/replay.py, README "Replay of history"): candles served as given,
four ticks a candle in path order, orders meeting only prices the data had, gaps, fixed funding, determinism.

Everything but the unit tests of `tick_prices` goes through the real ccxt client that `in_process_client` makes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import ccxt
import pytest

from backtest.data import synthetic_candles
from messages.market import TIMEFRAME_MS, Candle
from simulator.admin import SimulatorAdmin
from simulator.config import SimulatorConfig
from simulator.engine import AMOUNT_STEP, FUNDING_RATE_STEP, HOUR_MS
from simulator.inprocess import in_process_client
from simulator.instruments import INSTRUMENTS, resolve_symbol
from simulator.prices import DAY_MS, MINUTE_MS, ceil_tick, floor_tick
from simulator.replay import ReplayMarketData, ReplayPath, replay_tick_ms, tick_prices
from simulator.simulation import Simulator

ETH = "ETH/USD:USD"
BTC = "BTC/USD:USD"
ETH_TICK = INSTRUMENTS["PF_ETHUSD"].tick_size
SPREAD = 0.0002
T0 = 1_699_920_000_000  # 2023-11-14 00:00 UTC (a Tuesday), aligned to every timeframe up to 1d
TF_MS = {"1m": MINUTE_MS, "5m": 5 * MINUTE_MS, "1h": HOUR_MS, "1d": DAY_MS}
HISTORY_LAG_MS = 3_000  # SimulatorConfig's default: the account log and fills history publish this late


def candle(index: int, o: str, h: str, low: str, c: str, volume: str = "12.5", timeframe: str = "1m",
           symbol: str = ETH) -> Candle:
    """One hand-made candle, the `index`-th of its timeframe after T0."""
    return Candle(symbol=symbol, timeframe=timeframe, open_time=T0 + index * TF_MS[timeframe], open=Decimal(o),
                  high=Decimal(h), low=Decimal(low), close=Decimal(c), volume=Decimal(volume))


UP = candle(0, "3000.0", "3010.0", "2990.0", "3005.0")  # replayed 3000 -> 2990 -> 3010 -> 3005
DOWN = candle(1, "3005.3", "3012.0", "2995.0", "2998.0")  # replayed 3005.3 -> 3012 -> 2995 -> 2998
HIGH_AFTER = candle(2, "3001.0", "3020.0", "3000.5", "3015.0")  # never back below 3000


def replay_sim(candles: Mapping[str, Sequence[Candle]], timeframe: str = "1m", funding_rate: float = 0.0,
               seed: int = 7) -> Simulator:
    """A simulator replaying `candles` (by ccxt symbol), wired as backtest.driver.Backtest._simulator wires it."""
    by_kraken: dict[str, Sequence[Candle]] = {}
    for symbol, rows in candles.items():
        kraken = resolve_symbol(symbol)
        assert kraken is not None
        by_kraken[kraken] = rows
    start = min(rows[0].open_time for rows in candles.values())
    cfg = SimulatorConfig(clock="stepped", start_time_ms=start, symbols=list(candles), seed=seed,
                          spread=SPREAD, rate_limit=False, funding_rate=funding_rate, history_days=0)
    tf_ms = TF_MS[timeframe]
    return Simulator(cfg, market_factory=lambda instruments, _start: ReplayMarketData(
        instruments, by_kraken, tf_ms, cfg.spread))


def client_of(sim: Simulator) -> ccxt.krakenfutures:
    """The real ccxt client served by `sim` in this process, markets loaded."""
    client = in_process_client(sim)
    client.enableLastJsonResponse = True  # the tests read the charts answer's strings
    client.load_markets()
    return client


def bid_of(price: Decimal, tick: Decimal = ETH_TICK) -> Decimal:
    """The bid the replay quotes around `price`: floor to the tick of price * (1 - spread / 2)."""
    return floor_tick(price - price * Decimal(repr(SPREAD)) / 2, tick)


def ask_of(price: Decimal, tick: Decimal = ETH_TICK) -> Decimal:
    """The ask the replay quotes around `price`: ceil to the tick of price * (1 + spread / 2)."""
    return ceil_tick(price + price * Decimal(repr(SPREAD)) / 2, tick)


def ticker(client: ccxt.krakenfutures, symbol: str = ETH) -> dict[str, Decimal]:
    """last, bid, ask, mark and index of the ccxt ticker, as Decimals of the strings Kraken's answer holds."""
    info = client.fetch_ticker(symbol)["info"]
    return {key: Decimal(str(info[field])) for key, field in
            (("last", "last"), ("bid", "bid"), ("ask", "ask"), ("mark", "markPrice"), ("index", "indexPrice"))}


def served(client: ccxt.krakenfutures, timeframe: str, symbol: str = ETH, since: int = T0,
           price: str | None = None) -> list[dict[str, Any]]:
    """The candles the charts endpoint answers through ccxt's fetch_ohlcv (the raw JSON of the answer)."""
    params = {} if price is None else {"price": price}
    rows = client.fetch_ohlcv(symbol, timeframe, since=since, params=params)
    raw = client.last_json_response["candles"]
    assert [r[0] for r in rows] == [c["time"] for c in raw]  # ccxt parsed what was sent
    return raw


def as_given(c: Candle) -> dict[str, Any]:
    """A given candle in the charts format, its strings exactly the data's."""
    return {"time": c.open_time, "open": format(c.open, "f"), "high": format(c.high, "f"),
            "low": format(c.low, "f"), "close": format(c.close, "f"), "volume": format(c.volume, "f")}


# -- tick_prices ------------------------------------------------------------------------------------


def test_tick_prices_of_an_up_candle_visit_the_low_first() -> None:
    assert tick_prices(UP) == (3000.0, 2990.0, 3010.0, 3005.0)


def test_tick_prices_of_a_down_candle_visit_the_high_first() -> None:
    assert tick_prices(DOWN) == (3005.3, 3012.0, 2995.0, 2998.0)


def test_tick_prices_of_a_doji_read_it_as_an_up_candle() -> None:
    doji = candle(0, "3000.0", "3010.0", "2990.0", "3000.0")
    assert tick_prices(doji) == (3000.0, 2990.0, 3010.0, 3000.0)


@pytest.mark.parametrize("timeframe", list(TIMEFRAME_MS))
def test_every_timeframe_ticks_on_its_quarters_and_on_every_hour(timeframe: str) -> None:
    tf_ms = TIMEFRAME_MS[timeframe]
    tick = replay_tick_ms(tf_ms)
    assert (tf_ms // 4) % tick == 0  # each quarter point is a tick
    assert HOUR_MS % tick == 0 and tick <= HOUR_MS  # so is each hour boundary (funding, README rule 26)
    assert tick == (tf_ms // 4 if tf_ms <= 4 * HOUR_MS else HOUR_MS)


# -- the candles endpoint ---------------------------------------------------------------------------


def test_fetch_ohlcv_returns_exactly_the_given_candles() -> None:
    given = synthetic_candles(ETH, "1m", T0, 30, seed=3)
    sim = replay_sim({ETH: given})
    client = client_of(sim)
    sim.step_to(given[-1].open_time + MINUTE_MS)  # past the last close
    rows = client.fetch_ohlcv(ETH, "1m", since=T0)
    raw = client.last_json_response["candles"]
    assert [{**c, "volume": Decimal(c["volume"])} for c in raw] == [
        {**as_given(c), "volume": c.volume} for c in given]  # prices as the data's strings, volumes as its values
    assert rows == [[c.open_time, float(c.open), float(c.high), float(c.low), float(c.close), float(c.volume)]
                    for c in given]


def test_volume_strings_are_served_as_given() -> None:
    given = [candle(0, "3000.0", "3010.0", "2990.0", "3005.0", volume="28.580")]
    sim = replay_sim({ETH: given})
    client = client_of(sim)
    sim.step_to(T0 + MINUTE_MS)  # closed: served whole
    assert served(client, "1m") == [as_given(given[0])]


def test_fetch_ohlcv_serves_only_candles_the_clock_has_opened() -> None:
    given = synthetic_candles(ETH, "1m", T0, 6, seed=4)
    sim = replay_sim({ETH: given})
    client = client_of(sim)
    for tick in range(len(given) * 4 + 4):
        now = T0 + tick * MINUTE_MS // 4
        sim.step_to(now)
        times = [c["time"] for c in served(client, "1m")]
        assert times == [c.open_time for c in given if c.open_time <= now], f"at tick {tick}"
        if now % MINUTE_MS == 0 and now <= given[-1].open_time:  # a close time: the next candle is forming
            assert times[-1] == now


def test_the_forming_candle_shows_no_price_the_replay_has_not_reached() -> None:
    sim = replay_sim({ETH: [UP, DOWN]})
    client = client_of(sim)
    for quarter in range(8):
        now = T0 + quarter * MINUTE_MS // 4
        sim.step_to(now)
        (forming,) = [c for c in served(client, "1m") if c["time"] <= now < c["time"] + MINUTE_MS]
        current = [UP, DOWN][quarter // 4]
        seen = [Decimal(repr(p)) for p in tick_prices(current)[: quarter % 4 + 1]]
        assert Decimal(forming["open"]) == current.open, f"at quarter {quarter}"
        assert Decimal(forming["high"]) == max(seen), f"at quarter {quarter}"
        assert Decimal(forming["low"]) == min(seen), f"at quarter {quarter}"
        assert Decimal(forming["close"]) == seen[-1], f"at quarter {quarter}"
        assert Decimal(forming["volume"]) == current.volume * len(seen) / 4, f"at quarter {quarter}"
    sim.step_to(T0 + 2 * MINUTE_MS)
    assert served(client, "1m") == [as_given(UP), as_given(DOWN)]  # whole once closed


def test_a_longer_interval_is_served_as_whole_candle_aggregates() -> None:
    given = synthetic_candles(ETH, "1m", T0, 12, seed=5)
    sim = replay_sim({ETH: given})
    client = client_of(sim)
    sim.step_to(T0 + 12 * MINUTE_MS)
    raw = served(client, "5m")
    groups = [given[0:5], given[5:10], given[10:12]]
    assert [c["time"] for c in raw] == [T0, T0 + 5 * MINUTE_MS, T0 + 10 * MINUTE_MS]
    for answer, group in zip(raw, groups, strict=True):
        assert Decimal(answer["open"]) == group[0].open
        assert Decimal(answer["high"]) == max(c.high for c in group)
        assert Decimal(answer["low"]) == min(c.low for c in group)
        assert Decimal(answer["close"]) == group[-1].close
        assert Decimal(answer["volume"]) == sum((c.volume for c in group), Decimal(0))


def test_the_forming_aggregate_holds_only_what_was_replayed() -> None:
    sim = replay_sim({ETH: [UP, DOWN, HIGH_AFTER]})
    client = client_of(sim)
    sim.step_to(T0 + MINUTE_MS + MINUTE_MS // 2)  # DOWN replayed up to its second extreme (the low, 2995)
    (bucket,) = served(client, "5m")
    assert [Decimal(bucket[k]) for k in ("open", "high", "low", "close", "volume")] == \
        [UP.open, DOWN.high, UP.low, DOWN.low, UP.volume + DOWN.volume * 3 / 4]
    sim.step_to(T0 + 3 * MINUTE_MS)
    (bucket,) = served(client, "5m")
    assert [Decimal(bucket[k]) for k in ("high", "low", "close")] == [HIGH_AFTER.high, UP.low, HIGH_AFTER.close]


def test_a_shorter_interval_than_the_data_is_empty() -> None:
    given = [candle(i, "3000.0", "3010.0", "2990.0", "3005.0", timeframe="5m") for i in range(3)]
    sim = replay_sim({ETH: given}, "5m")
    client = client_of(sim)
    sim.step_to(T0 + 15 * MINUTE_MS)
    assert client.fetch_ohlcv(ETH, "1m", since=T0) == []
    assert len(client.fetch_ohlcv(ETH, "5m", since=T0)) == 3


def test_mark_and_index_candles_are_the_same_prices_without_volume() -> None:
    sim = replay_sim({ETH: [UP, DOWN]})
    client = client_of(sim)
    sim.step_to(T0 + 2 * MINUTE_MS)
    trade = served(client, "1m")
    for kind in ("mark", "index"):
        other = served(client, "1m", price=kind)
        assert [{**c, "volume": 0} for c in trade] == other


def test_weekly_aggregates_of_daily_data_open_on_mondays() -> None:
    given = synthetic_candles(ETH, "1d", T0, 14, seed=6)  # Tuesday 2023-11-14 to Monday 2023-11-27
    sim = replay_sim({ETH: given}, "1d")
    client = client_of(sim)
    sim.step_to(T0 + 14 * DAY_MS)
    raw = served(client, "1w")
    assert raw, "no weekly candles"
    for week in raw:
        opened = datetime.fromtimestamp(week["time"] / 1000, UTC)
        assert (opened.weekday(), opened.hour) == (0, 0), f"week opening {opened}"
        days = [c for c in given if week["time"] <= c.open_time < week["time"] + 7 * DAY_MS]
        assert Decimal(week["open"]) == days[0].open and Decimal(week["close"]) == days[-1].close


# -- the price path ------------------------------------------------------------------------------------


def test_an_up_and_a_down_candle_are_replayed_in_path_order() -> None:
    sim = replay_sim({ETH: [UP, DOWN]})
    client = client_of(sim)
    expected = [Decimal(repr(p)) for p in tick_prices(UP) + tick_prices(DOWN)]
    for quarter, price in enumerate(expected):
        sim.step_to(T0 + quarter * MINUTE_MS // 4)
        quote = ticker(client)
        assert quote["last"] == price, f"quarter {quarter}"
        assert quote["mark"] == quote["index"] == price, f"quarter {quarter}"
        assert (quote["bid"], quote["ask"]) == (bid_of(price), ask_of(price)), f"quarter {quarter}"
        engine = sim.market.quote("PF_ETHUSD")
        assert engine.mark == engine.index == price and engine.time_ms == T0 + quarter * MINUTE_MS // 4


def test_daily_candles_tick_hourly_and_the_price_stands_between_quarters() -> None:
    day = candle(0, "3000.0", "3100.0", "2900.0", "3050.0", volume="240", timeframe="1d")
    sim = replay_sim({ETH: [day]}, "1d")
    client = client_of(sim)
    ticks = [Decimal(repr(p)) for p in tick_prices(day)]
    for hour in range(24):
        sim.step_to(T0 + hour * HOUR_MS)
        assert ticker(client)["last"] == ticks[hour // 6], f"hour {hour}"
        assert sim.market.quote("PF_ETHUSD").time_ms == T0 + hour * HOUR_MS  # a tick every hour
        if hour == 7:  # the forming day: its open and the low reached at 6 h, 8 of its 24 ticks' volume
            (forming,) = served(client, "1d")
            assert [Decimal(forming[k]) for k in ("open", "high", "low", "close", "volume")] == \
                [day.open, day.open, day.low, day.low, Decimal(240) * 8 / 24]


def test_a_gap_between_candles_holds_the_price() -> None:
    after_gap = candle(4, "3050.0", "3060.0", "3040.0", "3055.0")
    sim = replay_sim({ETH: [UP, DOWN, after_gap]})
    client = client_of(sim)
    held = DOWN.close
    for quarter in range(7, 16):  # DOWN's close tick, then minutes 2 and 3 (no data)
        sim.step_to(T0 + quarter * MINUTE_MS // 4)
        quote = ticker(client)
        assert quote["last"] == quote["mark"] == held, f"quarter {quarter}"
        assert (quote["bid"], quote["ask"]) == (bid_of(held), ask_of(held))
    assert [c["time"] for c in served(client, "1m")] == [UP.open_time, DOWN.open_time]
    order = client.create_order(ETH, "market", "buy", 0.1)  # traded in the gap: at the held price's ask
    assert [Decimal(str(t["price"])) for t in client.fetch_my_trades(ETH)] == [ask_of(held)]
    assert order["id"]
    sim.step_to(T0 + 4 * MINUTE_MS)
    assert ticker(client)["last"] == after_gap.open


def test_a_later_market_stands_at_its_first_open_until_its_data_starts() -> None:
    later = [candle(2, "65000", "65100", "64900", "65050", symbol=BTC, volume="1")]
    sim = replay_sim({ETH: [UP, DOWN, HIGH_AFTER], BTC: later})
    client = client_of(sim)
    assert ticker(client, BTC)["last"] == Decimal("65000")
    sim.step_to(T0 + MINUTE_MS)
    assert ticker(client, BTC)["last"] == Decimal("65000")
    assert client.fetch_ohlcv(BTC, "1m", since=T0) == []
    sim.step_to(T0 + 2 * MINUTE_MS + MINUTE_MS // 4)
    assert ticker(client, BTC)["last"] == Decimal("64900")  # an up candle: the low first
    assert ticker(client)["last"] == HIGH_AFTER.low


def test_a_later_market_counts_its_volume_once() -> None:
    later = [candle(2, "65000", "65100", "64900", "65050", symbol=BTC, volume="1")]
    sim = replay_sim({ETH: [UP, DOWN, HIGH_AFTER], BTC: later})
    client = client_of(sim)
    sim.step_to(T0 + 3 * MINUTE_MS)
    assert Decimal(client.fetch_ticker(ETH)["info"]["vol24h"]) == UP.volume + DOWN.volume + HIGH_AFTER.volume
    assert Decimal(client.fetch_ticker(BTC)["info"]["vol24h"]) == Decimal(1)


# -- orders on the replay ----------------------------------------------------------------------------


def test_a_market_buy_sent_at_a_close_fills_at_the_next_open_ask() -> None:
    sim = replay_sim({ETH: [UP, DOWN]})
    client = client_of(sim)
    sim.step_to(T0 + MINUTE_MS)  # UP's close time = DOWN's open
    client.create_order(ETH, "market", "buy", 0.1)
    (trade,) = client.fetch_my_trades(ETH)
    assert Decimal(str(trade["price"])) == ask_of(DOWN.open) == Decimal("3005.7")  # ceil(3005.3 * 1.0001)
    assert trade["timestamp"] == DOWN.open_time
    assert trade["takerOrMaker"] == "taker"


def test_a_resting_limit_buy_inside_the_range_fills_during_the_candle_at_its_limit() -> None:
    # The engine (engine._match_book): a resting buy trades on a tick whose ask <= its limit, at its limit, as
    # maker, at most one best-level size per tick. At UP's low tick (2990) the ask is ceil(2990 * 1.0001) = 2990.3.
    sim = replay_sim({ETH: [UP, HIGH_AFTER]})
    client = client_of(sim)
    inside = client.create_order(ETH, "limit", "buy", 0.1, 2995.0)
    within_spread = client.create_order(ETH, "limit", "buy", 0.1, 2990.2)  # above the low, below the ask there
    below = client.create_order(ETH, "limit", "buy", 0.1, 2989.9)  # below the low
    sim.step_to(T0 + MINUTE_MS // 4 - 1)
    assert client.fetch_my_trades(ETH) == []
    sim.step_to(T0 + MINUTE_MS // 4)  # the low tick
    (trade,) = client.fetch_my_trades(ETH)
    assert trade["order"] == inside["id"]
    assert Decimal(str(trade["price"])) == Decimal("2995.0")
    assert trade["timestamp"] == T0 + MINUTE_MS // 4 and trade["takerOrMaker"] == "maker"
    sim.step_to(T0 + 2 * MINUTE_MS + HISTORY_LAG_MS)  # through both candles
    assert len(client.fetch_my_trades(ETH)) == 1
    assert sorted(o["id"] for o in client.fetch_open_orders(ETH)) == sorted([within_spread["id"], below["id"]])


def test_a_stop_loss_triggers_on_the_mark_when_the_low_crosses_it() -> None:
    sim = replay_sim({ETH: [UP, HIGH_AFTER]})
    client = client_of(sim)
    client.create_order(ETH, "market", "buy", 0.1)  # long at UP's open ask
    params = {"stopLossPrice": 2995.0, "triggerSignal": "mark", "reduceOnly": True}
    stop = client.create_order(ETH, "market", "sell", 0.1, None, params)
    untouched = client.create_order(ETH, "market", "sell", 0.1, None, {**params, "stopLossPrice": 2985.0})
    sim.step_to(T0 + MINUTE_MS // 4)  # the low tick: the mark is 2990
    trades = client.fetch_my_trades(ETH)
    assert len(trades) == 2
    exit_fill = trades[-1]
    assert exit_fill["order"] == stop["id"] and exit_fill["side"] == "sell"
    assert Decimal(str(exit_fill["price"])) == bid_of(UP.low) == Decimal("2989.7")
    assert exit_fill["timestamp"] == T0 + MINUTE_MS // 4
    assert client.fetch_positions([ETH]) == []
    sim.step_to(T0 + 2 * MINUTE_MS)
    assert [o["id"] for o in client.fetch_open_orders(ETH)] == [untouched["id"]]


# -- funding -----------------------------------------------------------------------------------------------


def funding_entries(client: ccxt.krakenfutures) -> list[dict[str, Any]]:
    """The account log's funding entries through ccxt (fetch_funding_history), oldest first."""
    rows = client.fetch_funding_history(ETH, since=T0)
    return sorted((r["info"] for r in rows), key=lambda e: e["id"])


def expected_funding(size: Decimal, rate: Decimal, mark: Decimal) -> Decimal:
    """One hour's payment: - size x (relative rate x mark to 1e-12), to 1e-8 towards the account's loss."""
    absolute = (rate * mark).quantize(FUNDING_RATE_STEP)
    return (-size * absolute).quantize(AMOUNT_STEP, rounding=ROUND_FLOOR)


def test_funding_of_hourly_candles_is_paid_once_per_hour_at_the_fixed_rate() -> None:
    given = [candle(i, o, h, low, c, timeframe="1h") for i, (o, h, low, c) in enumerate(
        [("3000.0", "3010.0", "2990.0", "3005.0"), ("3006.0", "3020.0", "3001.0", "3002.0"),
         ("3002.0", "3030.0", "2999.0", "3025.0")])]
    sim = replay_sim({ETH: given}, "1h", funding_rate=0.0001)
    client = client_of(sim)
    client.create_order(ETH, "market", "buy", 0.4)  # within the best level (0.45 ETH): one fill
    sim.step_to(T0 + 3 * HOUR_MS + HISTORY_LAG_MS)
    entries = funding_entries(client)
    assert [e["date"] for e in entries] == [datetime.fromtimestamp((T0 + h * HOUR_MS) / 1000, UTC)
                                            .strftime("%Y-%m-%dT%H:%M:%S.000Z") for h in (1, 2, 3)]
    marks = [given[1].open, given[2].open, given[2].close]  # the price at each boundary (the last one held)
    for entry, mark in zip(entries, marks, strict=True):
        assert Decimal(str(entry["mark_price"])) == mark
        assert Decimal(str(entry["realized_funding"])) == expected_funding(Decimal("0.4"), Decimal("0.0001"), mark)


def test_funding_of_daily_candles_is_paid_24_times_a_day() -> None:
    given = [candle(0, "3000.0", "3100.0", "2900.0", "3050.0", timeframe="1d"),
             candle(1, "3050.0", "3080.0", "2950.0", "2960.0", timeframe="1d")]
    sim = replay_sim({ETH: given}, "1d", funding_rate=0.0001)
    client = client_of(sim)
    client.create_order(ETH, "market", "buy", 0.4)  # within the best level (0.45 ETH): one fill
    sim.step_to(T0 + DAY_MS + HISTORY_LAG_MS)
    assert len(funding_entries(client)) == 24
    sim.step_to(T0 + 2 * DAY_MS + HISTORY_LAG_MS)
    entries = funding_entries(client)
    assert len(entries) == 48
    assert len(sim.exchange.account_log.entries) == 2 + 48  # the buy's two legs, then one entry an hour
    hours = [datetime.strptime(e["date"], "%Y-%m-%dT%H:%M:%S.000Z").replace(tzinfo=UTC) for e in entries]
    assert [int(h.timestamp() * 1000) for h in hours] == [T0 + h * HOUR_MS for h in range(1, 49)]
    assert all(Decimal(str(e["realized_funding"])) < 0 for e in entries)  # a long pays a positive rate


def test_funding_between_ticks_is_paid_at_the_price_standing_at_the_boundary() -> None:
    day = candle(0, "3000.0", "3100.0", "2900.0", "3050.0", timeframe="1d")
    sim = replay_sim({ETH: [day]}, "1d", funding_rate=0.0001)
    client = client_of(sim)
    client.create_order(ETH, "market", "buy", 0.4)  # within the best level (0.45 ETH): one fill
    sim.step_to(T0 + DAY_MS + HISTORY_LAG_MS)
    ticks = [Decimal(repr(p)) for p in tick_prices(day)]
    standing = [ticks[min(hour // 6, 3)] for hour in range(1, 25)]  # the last tick at or before each boundary
    assert [Decimal(str(e["mark_price"])) for e in funding_entries(client)] == standing


# -- refusals ---------------------------------------------------------------------------------------------


def test_setting_a_replayed_price_is_refused() -> None:
    sim = replay_sim({ETH: [UP, DOWN]})
    with pytest.raises(ValueError, match="data's"):
        sim.market.paths["PF_ETHUSD"].set_fair(3100.0, T0)
    with pytest.raises(ValueError, match="data's"):
        SimulatorAdmin(sim).set_price(ETH, price=3100.0)
    assert ticker(client_of(sim))["last"] == UP.open


def test_replay_market_data_refuses_a_market_without_candles() -> None:
    instruments = {s: INSTRUMENTS[s] for s in ("PF_ETHUSD", "PF_XBTUSD")}
    with pytest.raises(ValueError, match="PF_XBTUSD"):
        ReplayMarketData(instruments, {"PF_ETHUSD": [UP]}, MINUTE_MS, SPREAD)
    with pytest.raises(ValueError, match="PF_XBTUSD"):
        ReplayMarketData(instruments, {"PF_ETHUSD": [UP], "PF_XBTUSD": []}, MINUTE_MS, SPREAD)
    cfg = SimulatorConfig(clock="stepped", start_time_ms=T0, symbols=[ETH, BTC], rate_limit=False, history_days=0)
    with pytest.raises(ValueError, match="PF_XBTUSD"):
        Simulator(cfg, market_factory=lambda inst, _start: ReplayMarketData(inst, {"PF_ETHUSD": [UP]}, MINUTE_MS,
                                                                            SPREAD))


def test_a_replay_needs_whole_minutes() -> None:
    with pytest.raises(ValueError, match="whole minutes"):
        ReplayPath(INSTRUMENTS["PF_ETHUSD"], [UP], 30_000, SPREAD)


# -- determinism ------------------------------------------------------------------------------------------


def scenario(seed: int) -> tuple[list[Any], list[Any], list[Any]]:
    """A few orders over synthetic candles: the order ids, the fills and the account log a run leaves."""
    given = synthetic_candles(ETH, "1m", T0, 20, seed=9)
    sim = replay_sim({ETH: given}, funding_rate=0.0001, seed=seed)
    client = client_of(sim)
    ids = [client.create_order(ETH, "market", "buy", 0.3)["id"]]
    low = float(min(c.low for c in given[:10]))
    ids.append(client.create_order(ETH, "limit", "buy", 0.2, low + 1.0)["id"])
    ids.append(client.create_order(ETH, "market", "sell", 0.3, None,
                                   {"stopLossPrice": low + 0.5, "triggerSignal": "mark", "reduceOnly": True})["id"])
    for minute in range(1, 21):
        sim.step_to(T0 + minute * MINUTE_MS)
        if minute == 10:
            ids.append(client.create_order(ETH, "market", "sell", 0.1)["id"])
    sim.step_to(T0 + 20 * MINUTE_MS + HISTORY_LAG_MS)
    fills = [(t["id"], t["order"], t["timestamp"], t["side"], t["price"], t["amount"], t["fee"])
             for t in client.fetch_my_trades(ETH)]
    ledger = [(e["id"], e["timestamp"], e["amount"], e["info"]) for e in client.fetch_ledger(since=T0)]
    return ids, fills, ledger


def test_the_same_candles_and_orders_give_the_same_fills_and_ids() -> None:
    first, second = scenario(11), scenario(11)
    assert len(first[1]) >= 2
    assert first == second
    assert scenario(12)[0] != first[0]  # the ids come from the seed
