"""The portfolio's margin check: an entry's initial margin (Kraken's margin schedule) within the available margin
the exchange reported, locally and with its own reason; a margin never read refuses entries. Exits never ask
(tests/e2e/test_money.py shows one going with the margin used up)."""

from __future__ import annotations

from decimal import Decimal

from actors.risk import FEE_ALLOWANCE, RiskBook, RiskLimits
from exchange.markets import margin_levels_from_ccxt
from messages import (
    AccountMargin,
    MarketSpec,
    OrderState,
    OrderUpdate,
    Position,
    PositionSide,
    PositionsSnapshot,
    Reason,
    RiskRequest,
    Side,
)

BTC = "BTC/USD:USD"
# Kraken's flexible-futures schedule as /instruments lists it (ccxt's recorded markets: PF_XBTUSD)
LEVELS = [{"numNonContractUnits": "0E-20", "initialMargin": "0.02", "maintenanceMargin": "0.01"},
          {"numNonContractUnits": "500000.00000000000000000000", "initialMargin": "0.04", "maintenanceMargin": "0.02"}]
SPEC = MarketSpec(symbol=BTC, exchange_id="PF_XBTUSD", amount_step=Decimal("0.0001"), price_tick=Decimal("0.5"),
                  margin_levels=margin_levels_from_ccxt({"info": {"marginLevels": LEVELS}}))


def book(available: str | None, **markets: MarketSpec) -> RiskBook:
    risk = RiskBook(limits=RiskLimits(10, Decimal(10**9), Decimal(10**12)), markets=markets or {BTC: SPEC},
                    check_margin=True)
    if available is not None:
        risk.on_margin(AccountMargin(available=Decimal(available)))
    return risk


def req(h: str, notional: int, symbol: str = BTC) -> RiskRequest:
    return RiskRequest(symbol=symbol, intent_hash=h * 64, notional=Decimal(notional))


def test_the_schedule_gives_the_rate_of_the_position_an_entry_makes() -> None:
    assert SPEC.initial_margin_rate(Decimal(1000)) == Decimal("0.02")
    assert SPEC.initial_margin_rate(Decimal(600_000)) == Decimal("0.04")
    unlisted = MarketSpec(symbol="X", exchange_id="PF_X", amount_step=Decimal(1), price_tick=Decimal(1))
    assert unlisted.initial_margin_rate(Decimal(10)) == 1  # no schedule: no leverage (the harsher reading)
    inverse = margin_levels_from_ccxt({"info": {"marginLevels": [{"contracts": "0", "initialMargin": "0.02"},
                                                                 {"contracts": "500000", "initialMargin": "0.04"}]}})
    assert MarketSpec(symbol="I", exchange_id="PI_X", amount_step=Decimal(1), price_tick=Decimal(1),
                      margin_levels=inverse).initial_margin_rate(Decimal(10)) == Decimal("0.04")


def test_an_entry_beyond_the_available_margin_is_refused_with_its_own_reason() -> None:
    risk = book("25")
    needed = Decimal(1000) * (Decimal("0.02") + FEE_ALLOWANCE)  # 21
    assert risk.initial_margin(BTC, Decimal(1000)) == needed
    granted = risk.reserve(req("a", 1000))
    assert granted.granted
    refused = risk.reserve(req("b", 1000))  # 21 + 21 reserved > 25
    assert not refused.granted and refused.reason == Reason.INSUFFICIENT_MARGIN.value
    assert "available margin 25" in refused.detail and "reserved 21" in refused.detail
    risk.on_order_update(OrderUpdate(intent_hash="a" * 64, client_order_id="x", symbol=BTC, side=Side.BUY,
                                     state=OrderState.REJECTED, seq=1))
    assert risk.reserve(req("b", 1000)).granted  # the rejected entry's margin is free again


def test_a_margin_never_read_refuses_every_entry_saying_so() -> None:
    risk = book(None)
    refused = risk.reserve(req("a", 10))
    assert not refused.granted and refused.reason == Reason.MARGIN_UNKNOWN.value
    assert "not been read" in refused.detail
    risk.on_margin(AccountMargin(available=Decimal(100)))
    assert risk.reserve(req("a", 10)).granted


def test_the_rate_follows_the_position_already_held() -> None:
    risk = book("30000")
    risk.on_snapshot(PositionsSnapshot(positions=(Position(symbol=BTC, side=PositionSide.LONG, contracts=Decimal(10),
                                                           entry_price=Decimal(50_000)),), seq=1))
    # 500000 held + 100000 more reaches the 4 % level: 4000 + 100 fee allowance
    assert risk.initial_margin(BTC, Decimal(100_000)) == Decimal(100_000) * (Decimal("0.04") + FEE_ALLOWANCE)

