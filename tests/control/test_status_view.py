"""The status table: every symbol with its state and position, totals, and no surprises from odd input."""

from __future__ import annotations

from typing import Any

import pytest

from control import render_status
from control.status_view import terminal_columns
from tests.control.conftest import SYMBOLS, sample_status

pytestmark = pytest.mark.timeout(10)


def status_json() -> dict[str, Any]:
    """The sample status as the endpoint sends it."""
    return sample_status().model_dump(mode="json")


def row_of(text: str, symbol: str) -> str:
    """The table line of one symbol."""
    [line] = [line for line in text.splitlines() if line.startswith(symbol + " ")]
    return line


@pytest.mark.parametrize(
    ("symbol", "state", "position"),
    [
        ("ADA/USD:USD", "syncing (waiting for reconciliation)", " - "),
        ("BTC/USD:USD", "trading", "long 0.002  60,123.5"),
        ("ETH/USD:USD", "paused", "flat"),
        ("SOL/USD:USD", "halted (3 restarts in 600 s)", " - "),
        ("XRP/USD:USD", "blocked: unknown order", "flat"),
    ],
)
def test_every_symbol_has_a_row_with_its_state_and_position(symbol: str, state: str, position: str) -> None:
    line = row_of(render_status(status_json()), symbol)
    assert f"  {state}  " in line
    assert position in line


def test_the_btc_row_has_orders_candle_signal_outcome_rejections_and_pnl() -> None:
    text = render_status(status_json())
    line = row_of(text, "BTC/USD:USD")
    assert "sell reduce ACCEPTED; exch 2 (1 not ours)" in line
    assert "  12:02  " in line  # the last candle, in UTC, on the report's day
    assert "ENTER_LONG @ 12:00" in line  # the signal's candle time, readable
    assert "FILLED 7d1c1a7e  " in line  # client order ids shortened
    assert "POSITION_OPEN×3 RISK_LIMIT×1" in line
    assert "60,748.5" in line and "+1.25" in line and "-0.40" in line
    assert line.rstrip().endswith(" 0")  # restarts
    assert row_of(text, "SOL/USD:USD").rstrip().endswith(" 3")
    assert "buy UNKNOWN" in row_of(text, "XRP/USD:USD")


def test_headline_and_totals() -> None:
    lines = render_status(status_json()).splitlines()
    assert lines[0] == (
        "Trading system as of 2024-05-01 12:03:03 UTC: 5 symbols "
        "(1 syncing, 1 trading, 1 paused, 1 halted, 1 blocked)"
    )
    tail = "\n".join(lines[-5:])
    assert "Exposure    120.25 of 3,000.00 max notional (4%)" in tail
    assert "Protection  off: positions are closed only by the strategy" in tail
    assert "Positions   1 open; risk slots 2 of 3 used" in tail
    assert "Reconciled  yes" in tail
    assert "PnL         realized -0.40  unrealized +1.25" in tail


def test_protective_orders_and_a_protection_problem_are_shown_per_symbol() -> None:
    data = status_json()
    btc = data["symbols"][1]
    btc["protection_enabled"] = True
    btc["protection"] = [{"kind": "STOP_LOSS", "client_order_id": "7d1c1a7e-0000-4000-8000-000000000009",
                          "side": "sell", "amount": "0.02", "trigger_price": "49000", "trigger_signal": "mark",
                          "state": "ACCEPTED"}]
    btc["protection_problem"] = "take-profit refused 5 times: the position is NOT protected on the exchange"
    text = render_status(data)
    assert "BTC/USD:USD: stop-loss 49000 (mark) sell 0.02 accepted 7d1c1a7e" in text
    assert "BTC/USD:USD: protection: take-profit refused 5 times" in text
    assert "Protection  stop-loss / take-profit rest on the exchange" in text


def test_columns_line_up() -> None:
    lines = render_status(status_json()).splitlines()
    header = next(line for line in lines if line.startswith("SYMBOL"))
    rows = [line for line in lines if line.split(" ")[0] in SYMBOLS]
    assert len(rows) == len(SYMBOLS)
    for title in ("STATE", "POSITION", "ORDERS", "CANDLE UTC", "REJECTIONS"):
        column = header.index(title)
        for line in rows:
            assert line[column - 2 : column] == "  ", (title, line)  # the cell to the left ends before it
            assert line[column] != " ", (title, line)  # left-aligned cells start under their title


def test_ascii_output_has_no_other_characters() -> None:
    text = render_status(status_json(), unicode=False)
    assert text.isascii()
    assert "POSITION_OPENx3 RISK_LIMITx1" in text


def test_a_candle_from_another_day_shows_its_date() -> None:
    data = status_json()
    data["symbols"][1]["last_candle_time"] = 1_714_478_400_000  # 2024-04-30 12:00 UTC
    assert "2024-04-30 12:00" in row_of(render_status(data), "BTC/USD:USD")


def test_a_paused_flag_on_a_trading_row_and_a_halt_reason_show() -> None:
    data = {
        "symbols": [
            {"symbol": "BTC/USD:USD", "state": "TRADING", "paused": True, "halted": True, "halt_reason": "operator"}
        ]
    }
    assert "trading, paused, halted (operator)" in row_of(render_status(data), "BTC/USD:USD")


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"symbols": None, "as_of": None},
        {"symbols": [{}]},
        {"symbols": [{"symbol": "BTC/USD:USD"}]},
        {"symbols": [{"symbol": "BTC/USD:USD", "state": None, "position": None, "pending_orders": None}]},
        {
            "symbols": [
                {
                    "symbol": "BTC/USD:USD",
                    "state": "SOMETHING_NEW",
                    "position": {"side": "long", "contracts": "n/a", "entry_price": "NaN"},
                    "pending_orders": ["odd"],
                    "last_candle_time": "soon",
                    "rejections": {"X": "many"},
                    "restarts": None,
                }
            ],
            "total_notional": "lots",
            "max_total_notional": "0",
            "as_of": "later",
        },
        {"symbols": "BTC", "open_positions": "2"},
    ],
)
def test_missing_or_odd_fields_render_without_error(data: dict[str, Any]) -> None:
    text = render_status(data)
    assert text.startswith("Trading system")


def test_an_empty_status_says_so() -> None:
    assert "(no symbols)" in render_status({})


def test_fields_added_later_are_shown() -> None:
    data = status_json()
    btc = data["symbols"][1]
    btc["notional"] = "121.5"
    btc["funding_pnl"] = "-0.03"
    btc["exchange_open_order_count"] = 1
    btc["leverage"] = "2"
    data["symbols"][4]["unknown_orders"] = ["7d1c1a7e-0000-4000-8000-000000000002"]
    data["gross_exposure"] = "240.5"
    data["daily_pnl"] = "3.5"
    data["mode"] = "paper"
    text = render_status(data)
    header = next(line for line in text.splitlines() if line.startswith("SYMBOL"))
    assert "NOTIONAL" in header and "FUNDING PNL" in header
    line = row_of(text, "BTC/USD:USD")
    assert "121.50" in line and "-0.03" in line and "exch 3 (1 not ours)" in line
    assert "blocked: 1 unknown order" in row_of(text, "XRP/USD:USD")
    assert "BTC/USD:USD: leverage=2" in text
    assert "Gross exposure  240.50" in text
    assert "daily +3.50" in text
    assert "Mode            paper" in text


def test_a_blocked_row_says_why_and_a_halted_one_that_its_strategy_is_off() -> None:
    data = status_json()
    data["symbols"][4]["blocked"] = "an order with unknown outcome; check the exchange, then: resolve XRP/USD:USD"
    data["symbols"][3]["strategy_off"] = True
    text = render_status(data)
    assert "blocked: unknown order (an order with unknown outcome; check the exchange" in row_of(text, "XRP/USD:USD")
    assert "strategy off" in row_of(text, "SOL/USD:USD")
    assert "strategy_off=" not in text and "blocked=" not in text


def with_protection(data: dict[str, Any]) -> dict[str, Any]:
    btc = data["symbols"][1]
    btc["protection_enabled"] = True
    btc["protection"] = [
        {"kind": "STOP_LOSS", "client_order_id": "7d1c1a7e-0000-4000-8000-000000000009", "side": "sell",
         "amount": "0.02", "trigger_price": "49000", "trigger_signal": "mark", "state": "ACCEPTED"},
        {"kind": "TAKE_PROFIT", "client_order_id": "8e2d2b8f-0000-4000-8000-000000000010", "side": "sell",
         "amount": "0.02", "trigger_price": "71000", "trigger_signal": "mark", "state": "ACCEPTED"},
    ]
    btc["protection_problem"] = "take-profit refused 5 times: the position is NOT protected on the exchange; see why"
    return data


@pytest.mark.parametrize("width", [60, 80, 100, 119, 120, 160])
def test_no_line_is_wider_than_the_terminal(width: int) -> None:
    text = render_status(with_protection(status_json()), width=width)
    too_wide = [line for line in text.splitlines() if len(line) > width]
    assert not too_wide, "\n".join(too_wide)


def test_below_120_columns_the_layout_is_compact_and_keeps_what_the_full_one_says() -> None:
    text = render_status(with_protection(status_json()), width=100)
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("SYMBOL"))
    assert "CANDLE UTC" not in header and "OUTCOME" not in header and "ORDERS" in header
    btc = row_of(text, "BTC/USD:USD")
    assert "long 0.002" in btc and "60,123.5" in btc and "+1.25" in btc and "-0.40" in btc
    under = " ".join(line.strip() for line in lines[lines.index(btc) + 1:lines.index(btc) + 3])
    assert "ENTER_LONG @ 12:00 → FILLED 7d1c1a7e" in under
    assert "candle 12:02" in under and "POSITION_OPEN×3 RISK_LIMIT×1" in under
    assert "sell reduce ACCEPTED; exch 2 (1 not ours)" in under  # cut in the row, whole under it
    sol = row_of(text, "SOL/USD:USD")
    assert "halted (3 restarts in 600 s) · restarts 3" in lines[lines.index(sol) + 1]
    assert "BTC/USD:USD: stop-loss 49000 (mark) sell 0.02 accepted 7d1c1a7e" in lines
    assert "BTC/USD:USD: take-profit 71000 (mark) sell 0.02 accepted 8e2d2b8f" in lines
    assert "NOT protected on the exchange" in text
    assert "Trading system as of 2024-05-01 12:03:03 UTC" in lines


def test_at_120_columns_and_more_the_layout_is_the_full_one() -> None:
    text = render_status(status_json(), width=400)
    assert text == render_status(status_json(), width=None)
    data = {"symbols": [{"symbol": "BTC/USD:USD", "state": "TRADING", "restarts": 0}], "as_of": 1_714_564_983_000}
    header = next(line for line in render_status(data, width=120).splitlines() if line.startswith("SYMBOL"))
    assert "STATE" in header and "POSITION" in header and "ORDERS" in header and "CANDLE UTC" in header


def test_the_width_comes_from_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    assert terminal_columns() == 100
    assert max(len(line) for line in render_status(status_json()).splitlines()) <= 100
    monkeypatch.delenv("COLUMNS")
    assert terminal_columns() is None  # pytest's stdout is no terminal: the full layout, whole


def test_numbers_are_plain_decimals_never_exponents() -> None:
    data = with_protection(status_json())
    btc = data["symbols"][1]
    btc["position"]["contracts"] = "1.8E+2"
    btc["position"]["entry_price"] = "6.0E+4"
    btc["last_outcome"] = "SENT buy 1.8E+2"
    btc["protection"][0]["trigger_price"] = "4.9E+4"
    btc["protection"][0]["amount"] = "1.80E+2"
    for width in (None, 100):
        text = render_status(data, width=width)
        assert "E+" not in text, text
        assert "long 180" in row_of(text, "BTC/USD:USD") and "60,000" in row_of(text, "BTC/USD:USD")
        assert "SENT buy 180" in text
        assert "stop-loss 49000 (mark) sell 180 accepted" in text


def test_a_totals_line_wider_than_the_terminal_continues_under_its_value() -> None:
    data = status_json()
    words = " ".join(f"part{n}" for n in range(30))
    data["mode"] = words
    lines = render_status(data, width=100).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Mode "))
    column = lines[start].index("part0")
    continued = [lines[start]]
    for line in lines[start + 1:]:
        if not line.startswith(" " * column):
            break
        continued.append(line)
    assert len(continued) > 1 and max(len(line) for line in continued) <= 100
    assert " ".join(line.strip() for line in continued).endswith(words)
