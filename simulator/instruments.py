"""Kraken Futures perpetual instrument metadata (tick size, size precision, margin tiers)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

# Margin tiers: (position value in USD from which the tier applies, initial margin, maintenance margin).
MarginTiers = tuple[tuple[Decimal, Decimal, Decimal], ...]


def _tiers(*rows: tuple[str, str, str]) -> MarginTiers:
    """Build a margin tier table from string rows."""
    return tuple((Decimal(a), Decimal(b), Decimal(c)) for a, b, c in rows)


_MAJOR = _tiers(
    ("0", "0.02", "0.01"),
    ("500000", "0.04", "0.02"),
    ("2000000", "0.1", "0.05"),
    ("5000000", "0.2", "0.1"),
    ("10000000", "0.3", "0.15"),
    ("30000000", "0.5", "0.25"),
)
_MID = _tiers(
    ("0", "0.02", "0.01"),
    ("250000", "0.04", "0.02"),
    ("500000", "0.1", "0.05"),
    ("2000000", "0.2", "0.1"),
    ("5000000", "0.3", "0.15"),
    ("10000000", "0.5", "0.25"),
)
_FTM = _tiers(
    ("0", "0.04", "0.02"),
    ("250000", "0.1", "0.05"),
    ("1000000", "0.2", "0.1"),
    ("2000000", "0.5", "0.25"),
)
_PEPE = _tiers(
    ("0", "0.05", "0.025"),
    ("10000", "0.1", "0.05"),
    ("250000", "0.3", "0.15"),
    ("1250000", "0.5", "0.25"),
)

FEE_SCHEDULE_PGB = "abb50ea3-4fc9-401c-8d83-518610b16d8c"
FEE_SCHEDULE_LINEAR = "97ae0cc8-2964-43ea-91e9-d8e720b02b19"


@dataclass(frozen=True)
class Instrument:
    """One linear perpetual ("flexible futures") market as Kraken describes it."""

    symbol: str
    base: str
    tick_size: Decimal
    contract_value_precision: int
    impact_mid_size: str
    max_position_size: Decimal
    opening_date: str
    fee_schedule_uid: str
    category: str
    margin_tiers: MarginTiers
    initial_price: float
    volatility_factor: float = 1.0

    @property
    def size_step(self) -> Decimal:
        """Smallest order size increment (10^-contractValueTradePrecision)."""
        return Decimal(1).scaleb(-self.contract_value_precision)

    @property
    def pair(self) -> str:
        """Kraken's pair label, e.g. `XBT:USD`."""
        return f"{self.base}:USD"

    @property
    def unified_symbol(self) -> str:
        """The ccxt unified symbol, e.g. `BTC/USD:USD`."""
        base = "BTC" if self.base == "XBT" else self.base
        return f"{base}/USD:USD"

    def margin_rates(self, notional: Decimal) -> tuple[Decimal, Decimal]:
        """Initial and maintenance margin rates for a position of this USD value."""
        initial, maintenance = self.margin_tiers[0][1], self.margin_tiers[0][2]
        for threshold, im, mm in self.margin_tiers:
            if notional >= threshold:
                initial, maintenance = im, mm
        return initial, maintenance

    def is_valid_size(self, size: Decimal) -> bool:
        """True if the size is positive, a multiple of the size step and within the position limit."""
        try:
            return size > 0 and size % self.size_step == 0
        except ArithmeticError:
            return False

    def is_valid_price(self, price: Decimal) -> bool:
        """True if the price is positive and a multiple of the tick size."""
        try:
            return price > 0 and price % self.tick_size == 0
        except ArithmeticError:
            return False

    def to_json(self) -> dict[str, object]:
        """The instrument as Kraken's `/instruments` endpoint returns it."""
        levels = [
            {
                "numNonContractUnits": str(threshold),
                "initialMargin": str(im),
                "maintenanceMargin": str(mm),
            }
            for threshold, im, mm in self.margin_tiers
        ]
        return {
            "symbol": self.symbol,
            "type": "flexible_futures",
            "tickSize": str(self.tick_size),
            "contractSize": "1",
            "tradeable": True,
            "impactMidSize": self.impact_mid_size,
            "maxPositionSize": str(self.max_position_size),
            "openingDate": self.opening_date,
            "marginLevels": levels,
            "fundingRateCoefficient": "24",
            "maxRelativeFundingRate": "0.0025",
            "contractValueTradePrecision": str(self.contract_value_precision),
            "postOnly": False,
            "feeScheduleUid": self.fee_schedule_uid,
            "retailMarginLevels": levels,
            "category": self.category,
            "tags": [],
        }


def _inst(
    symbol: str,
    base: str,
    tick: str,
    cvtp: int,
    impact: str,
    max_pos: str,
    opened: str,
    fee: str,
    category: str,
    tiers: MarginTiers,
    price: float,
    vol: float = 1.0,
) -> Instrument:
    """Shorthand constructor for the table below."""
    return Instrument(
        symbol=symbol,
        base=base,
        tick_size=Decimal(tick),
        contract_value_precision=cvtp,
        impact_mid_size=impact,
        max_position_size=Decimal(max_pos),
        opening_date=opened,
        fee_schedule_uid=fee,
        category=category,
        margin_tiers=tiers,
        initial_price=price,
        volatility_factor=vol,
    )


INSTRUMENTS: dict[str, Instrument] = {
    i.symbol: i
    for i in (
        _inst("PF_XBTUSD", "XBT", "1", 4, "0.01", "1200", "2022-03-22T13:15:36.000Z",
              FEE_SCHEDULE_PGB, "Layer 1", _MAJOR, 65000.0),
        _inst("PF_ETHUSD", "ETH", "0.1", 3, "0.09", "16000", "2022-03-22T13:18:45.000Z",
              FEE_SCHEDULE_LINEAR, "Layer 1", _MAJOR, 3200.0, 1.2),
        _inst("PF_LTCUSD", "LTC", "0.01", 2, "1.50", "200000", "2022-03-22T14:39:25.000Z",
              FEE_SCHEDULE_LINEAR, "Layer 1", _MID, 70.0, 1.3),
        _inst("PF_DOGEUSD", "DOGE", "0.000001", 0, "2000.00", "150000000", "2022-06-20T12:57:30.000Z",
              FEE_SCHEDULE_LINEAR, "Community", _MID, 0.1, 1.6),
        _inst("PF_PEPEUSD", "PEPE", "0.0000000001", -3, "125000000.00", "1000000000000",
              "2023-05-25T10:52:25.000Z", FEE_SCHEDULE_LINEAR, "Community", _PEPE, 0.00001, 2.0),
        _inst("PF_FTMUSD", "FTM", "0.00001", 0, "600.00", "25000000", "2022-06-20T12:57:33.000Z",
              FEE_SCHEDULE_LINEAR, "Layer 1", _FTM, 0.5, 1.6),
        _inst("PF_SOLUSD", "SOL", "0.01", 2, "1.00", "250000", "2022-06-20T12:57:36.000Z",
              FEE_SCHEDULE_LINEAR, "Layer 1", _MAJOR, 150.0, 1.4),
        _inst("PF_XRPUSD", "XRP", "0.0001", 0, "400.00", "30000000", "2022-06-20T12:57:40.000Z",
              FEE_SCHEDULE_LINEAR, "Layer 1", _MID, 0.55, 1.4),
    )
}

_BY_UNIFIED: dict[str, str] = {i.unified_symbol: i.symbol for i in INSTRUMENTS.values()}

# Synthetic markets (SimulatorConfig.extra_markets): PF_X001USD ... PF_X999USD, ccxt's X001/USD:USD ...
_SYNTHETIC = re.compile(r"PF_X(\d{3})USD")
_SYNTHETIC_UNIFIED = re.compile(r"X(\d{3})/USD:USD")


def synthetic_symbol(number: int) -> str:
    """The Kraken id of synthetic market `number` (1..999), e.g. PF_X001USD."""
    if not 1 <= number <= 999:
        raise ValueError(f"synthetic market numbers run from 1 to 999, not {number}")
    return f"PF_X{number:03d}USD"


def synthetic_instrument(number: int) -> Instrument:
    """Synthetic linear perpetual `number`: a price between 5 and about 200 USD, tick 0.001, size step 0.1, a
    best book level worth about 2,000 USD (so a 100-1000 USD market order fills at once), Kraken's mid tiers."""
    price = round(5 + (number * 37 % 196) + (number % 7) / 10, 3)
    impact = max(Decimal("0.1"), (Decimal(400) / Decimal(repr(price))).quantize(Decimal("0.1")))
    return _inst(synthetic_symbol(number), f"X{number:03d}", "0.001", 1, f"{impact:.2f}", "1000000",
                 "2024-01-02T00:00:00.000Z", FEE_SCHEDULE_LINEAR, "Synthetic", _MID, price, 1.0)


def synthetic_markets(count: int) -> dict[str, Instrument]:
    """The first `count` synthetic markets, by Kraken id."""
    return {i.symbol: i for i in (synthetic_instrument(n) for n in range(1, count + 1))}


def resolve_symbol(name: str) -> str | None:
    """Kraken symbol for `PF_XBTUSD`, `pf_xbtusd` or ccxt's `BTC/USD:USD` (and the synthetic `PF_X001USD` /
    `X001/USD:USD`, listed only by a simulator with extra markets); None if unknown."""
    upper = name.strip().upper()
    if upper in INSTRUMENTS:
        return upper
    if _SYNTHETIC.fullmatch(upper) and upper != "PF_X000USD":
        return upper
    found = _BY_UNIFIED.get(name.strip())
    if found is None:
        match = _SYNTHETIC_UNIFIED.fullmatch(name.strip())
        if match and match.group(1) != "000":
            return f"PF_X{match.group(1)}USD"
    return found
