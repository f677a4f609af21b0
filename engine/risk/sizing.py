"""Position sizing: fractional Kelly, risk per trade from the stop distance, volatility
scaling. Sizes are fractions of equity or lots; the gate still checks every order."""
from __future__ import annotations

import math


def kelly_fraction(win_rate: float, payoff: float, fraction: float = 0.5) -> float:
    """Fraction of equity to risk: ``fraction`` x Kelly, Kelly = p - (1 - p) / b for a win
    probability p and a win/loss payoff ratio b; 0 when the edge is not positive."""
    if not 0 <= win_rate <= 1:
        raise ValueError(f"win_rate must be in [0, 1], got {win_rate}")
    if payoff <= 0:
        raise ValueError(f"payoff (average win / average loss) must be > 0, got {payoff}")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    k = win_rate - (1 - win_rate) / payoff
    return max(0.0, k * fraction)


def size_from_stop(equity: float, risk_fraction: float, entry_px: float, stop_px: float,
                   lot_value_per_px: float) -> int:
    """Lots such that the loss at the stop is at most ``risk_fraction`` of equity.
    ``lot_value_per_px``: quote value of one lot per unit of price (lot size for USD-M)."""
    dist = abs(entry_px - stop_px)
    if dist <= 0:
        raise ValueError("stop must differ from entry")
    if equity <= 0 or risk_fraction <= 0 or lot_value_per_px <= 0:
        return 0
    return int(math.floor(equity * risk_fraction / (dist * lot_value_per_px)))


def vol_scaled_fraction(target_vol: float, asset_vol: float, cap: float = 1.0) -> float:
    """Notional fraction of equity so that the position's volatility is ``target_vol``
    (both volatilities over the same horizon), capped at ``cap``."""
    if asset_vol <= 0:
        return 0.0
    return min(cap, target_vol / asset_vol)


def position_lots(equity: float, price: float, lot_size: float, *, win_rate: float, payoff: float,
                  target_vol: float, asset_vol: float, max_fraction: float, regime_mult: float = 1.0,
                  kelly_frac: float = 0.5) -> int:
    """The smallest of fractional Kelly and volatility scaling, times the regime's
    position multiplier, never above ``max_fraction`` (the hard limit)."""
    f = min(kelly_fraction(win_rate, payoff, kelly_frac), vol_scaled_fraction(target_vol, asset_vol))
    f = min(f * regime_mult, max_fraction)
    return int(math.floor(equity * f / (price * lot_size))) if price > 0 and lot_size > 0 else 0
