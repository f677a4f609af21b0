"""Instrument rules: how an exchange's decimal strings map to int64 ticks and lots.

A price is held as ``ticks`` where ``price = ticks * tick_size``. Internally a price
string is first read as an integer in units of ``10**-price_decimals`` (the decimals the
exchange prints), then divided by ``tick_units`` (the tick size in those units). The same
for quantities with ``qty_decimals`` / ``lot_units``. Nothing here uses floats.

Instruments come from the exchange's rules (``from_binance_exchange_info``) or, for a
capture with no rules, from the decimals printed in the data (``infer_from_messages``):
then the tick is one unit of the last printed decimal, and a later value printed with more
decimals is an error, not a rounding.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Iterable

import msgspec


class Instrument(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """One tradable instrument and its exchange filters."""

    symbol: str                  # exchange symbol, e.g. "BTCUSDT" or "BTCUSD_PERP"
    inst: int                    # engine-wide instrument id (0..2**32-1)
    price_decimals: int          # decimals the exchange prints for prices
    qty_decimals: int            # decimals the exchange prints for quantities
    tick_units: int = 1          # tick size in units of 10**-price_decimals
    lot_units: int = 1           # lot size in units of 10**-qty_decimals
    venue: str = "binance-usdm"  # binance-usdm | binance-coinm
    min_qty_lots: int = 1        # LOT_SIZE minQty, lots
    max_qty_lots: int = 0        # LOT_SIZE maxQty, lots (0 = no limit known)
    min_notional: str = "0"      # MIN_NOTIONAL notional, quote currency (decimal string)
    contract_size: str = "1"     # COIN-M: USD per contract; USD-M: 1 (qty in base asset)
    multiplier_up: str = "0"     # PERCENT_PRICE multiplierUp (0 = unknown)
    multiplier_down: str = "0"   # PERCENT_PRICE multiplierDown

    def __post_init__(self):
        if not self.symbol or len(self.symbol) > 24:
            raise ValueError(f"Instrument.symbol {self.symbol!r}: 1-24 characters")
        if not 0 <= self.inst < 2 ** 32:
            raise ValueError(f"Instrument.inst {self.inst} for {self.symbol}: must fit in uint32")
        for name in ("price_decimals", "qty_decimals"):
            v = getattr(self, name)
            if not 0 <= v <= 12:
                raise ValueError(f"Instrument.{name} = {v} for {self.symbol}: must be 0..12")
        if self.tick_units < 1 or self.lot_units < 1:
            raise ValueError(f"Instrument {self.symbol}: tick_units and lot_units must be >= 1")

    # ---------------------------------------------------------------- conversions
    @property
    def tick_size(self) -> Decimal:
        return Decimal(self.tick_units).scaleb(-self.price_decimals)

    @property
    def lot_size(self) -> Decimal:
        return Decimal(self.lot_units).scaleb(-self.qty_decimals)

    def price_to_ticks(self, s: str) -> int:
        """Exact; raises ValueError for a price off the tick grid or printed too finely."""
        return _to_units(s, self.price_decimals, self.tick_units, self.symbol, "price")

    def qty_to_lots(self, s: str) -> int:
        return _to_units(s, self.qty_decimals, self.lot_units, self.symbol, "quantity")

    def ticks_to_price(self, ticks: int) -> str:
        """The decimal string as the exchange prints it (fixed ``price_decimals``)."""
        return _fmt(ticks * self.tick_units, self.price_decimals)

    def lots_to_qty(self, lots: int) -> str:
        return _fmt(lots * self.lot_units, self.qty_decimals)


def _fmt(units: int, decimals: int) -> str:
    sign = "-" if units < 0 else ""
    units = abs(units)
    if decimals == 0:
        return f"{sign}{units}"
    s = str(units).rjust(decimals + 1, "0")
    return f"{sign}{s[:-decimals]}.{s[-decimals:]}"


def _to_units(s: str, decimals: int, step: int, symbol: str, what: str) -> int:
    try:
        d = Decimal(s)
    except Exception:
        raise ValueError(f"{symbol}: {what} {s!r} is not a decimal number") from None
    if not d.is_finite():
        raise ValueError(f"{symbol}: {what} {s!r} is not finite")
    scaled = d.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{symbol}: {what} {s!r} has more than {decimals} decimals")
    units = int(scaled)
    if units % step:
        raise ValueError(f"{symbol}: {what} {s!r} is not a multiple of the step "
                         f"{_fmt(step, decimals)}")
    return units // step


def _decimals(s: str) -> int:
    return len(s) - s.index(".") - 1 if "." in s else 0


def _step_units(step: str, decimals: int) -> int:
    """A filter step (e.g. "0.10") in units of 10**-decimals."""
    d = Decimal(step).scaleb(decimals)
    if d != d.to_integral_value() or d <= 0:
        raise ValueError(f"step {step!r} is not a positive multiple of 10**-{decimals}")
    return int(d)


def from_binance_exchange_info(info: dict, symbols: Iterable[str] | None = None,
                               first_inst: int = 0, venue: str = "binance-usdm") -> list[Instrument]:
    """Instruments from a Binance futures ``exchangeInfo`` response (USD-M or COIN-M).

    Prices and quantities are kept at ``pricePrecision`` / ``quantityPrecision`` decimals
    (what the streams print), or finer if a filter step needs it.
    """
    wanted = None if symbols is None else {s.upper() for s in symbols}
    out = []
    for sym in info.get("symbols", []):
        if wanted is not None and sym["symbol"] not in wanted:
            continue
        f = {x["filterType"]: x for x in sym.get("filters", [])}
        tick = f.get("PRICE_FILTER", {}).get("tickSize")
        lot = f.get("LOT_SIZE", {}).get("stepSize")
        if tick is None or lot is None:
            raise ValueError(f"exchangeInfo for {sym['symbol']} lacks PRICE_FILTER or LOT_SIZE")
        pdec = max(int(sym.get("pricePrecision", 0)), _decimals(tick.rstrip("0")) if "." in tick else 0)
        qdec = max(int(sym.get("quantityPrecision", 0)), _decimals(lot.rstrip("0")) if "." in lot else 0)
        tick_units = _step_units(tick, pdec)
        lot_units = _step_units(lot, qdec)
        min_qty = f["LOT_SIZE"].get("minQty", lot)
        max_qty = f["LOT_SIZE"].get("maxQty", "0")
        mn = f.get("MIN_NOTIONAL", {})
        pp = f.get("PERCENT_PRICE", {})
        out.append(Instrument(
            symbol=sym["symbol"], inst=first_inst + len(out), price_decimals=pdec, qty_decimals=qdec,
            tick_units=tick_units, lot_units=lot_units, venue=venue,
            min_qty_lots=_step_units(min_qty, qdec) // lot_units if Decimal(min_qty) > 0 else 1,
            max_qty_lots=_step_units(max_qty, qdec) // lot_units if Decimal(max_qty) > 0 else 0,
            min_notional=str(mn.get("notional", mn.get("minNotional", "0"))),
            contract_size=str(sym.get("contractSize", "1")),
            multiplier_up=str(pp.get("multiplierUp", "0")),
            multiplier_down=str(pp.get("multiplierDown", "0")),
        ))
    if wanted is not None:
        missing = wanted - {i.symbol for i in out}
        if missing:
            raise ValueError(f"exchangeInfo has no symbol(s) {sorted(missing)}")
    return out


def infer_from_messages(messages, first_inst: int = 0, venue: str = "binance-usdm",
                        default_symbol: str | None = None) -> list[Instrument]:
    """Instruments from the data alone: for each symbol, the price and quantity decimals
    are the most decimals printed in its first depth message or snapshot (Binance prints a
    fixed number per symbol), and the tick and lot are one unit of that last decimal.

    ``messages``: iterable of raw frames (bytes). A snapshot carries no symbol: it is
    attributed to ``default_symbol``. Symbols are numbered in order of appearance.
    """
    import orjson

    found: dict[str, tuple[int, int]] = {}
    order: list[str] = []
    for frame in messages:
        try:
            msg = orjson.loads(frame)
        except orjson.JSONDecodeError:
            continue
        data = msg.get("data", msg) if isinstance(msg, dict) else None
        if not isinstance(data, dict):
            continue
        levels = None
        sym = data.get("s")
        if data.get("e") == "depthUpdate":
            levels = (data.get("b") or []) + (data.get("a") or [])
        elif "lastUpdateId" in data and ("bids" in data or "asks" in data):
            levels = (data.get("bids") or []) + (data.get("asks") or [])
            sym = sym or default_symbol
        if not levels or not sym or sym in found:
            continue
        pd = max(_decimals(lv[0]) for lv in levels)
        qd = max(_decimals(lv[1]) for lv in levels)
        found[sym] = (pd, qd)
        order.append(sym)
    return [Instrument(symbol=s, inst=first_inst + k, price_decimals=found[s][0],
                       qty_decimals=found[s][1], venue=venue) for k, s in enumerate(order)]
