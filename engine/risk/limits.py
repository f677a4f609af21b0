"""Risk limits and regime profiles.

The first group of limits and the regime table are the user's (../shared/docs/SPEC.md).
The second group are ours: the SPEC names the layers but not every number a layer needs;
each default and its reason is written next to it. All fractions are of portfolio equity.
"""
from __future__ import annotations

import msgspec

REGIMES = ("NORMAL", "VOLATILE", "TRENDING", "CRASH", "BULL_RUN", "RECOVERY")


class RegimeProfile(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    position_mult: float     # scales position size (never lifts a limit above the hard one)
    stop_mult: float         # scales stop distance
    risk_per_trade: float    # fraction of equity at risk per trade
    max_positions: int       # open positions allowed


# SPEC.md, "Regime risk profiles" (order = REGIMES)
DEFAULT_PROFILES = (
    RegimeProfile(position_mult=1.0, stop_mult=1.0, risk_per_trade=0.020, max_positions=10),   # NORMAL
    RegimeProfile(position_mult=0.5, stop_mult=1.5, risk_per_trade=0.010, max_positions=5),    # VOLATILE
    RegimeProfile(position_mult=1.2, stop_mult=0.8, risk_per_trade=0.025, max_positions=12),   # TRENDING
    RegimeProfile(position_mult=0.2, stop_mult=2.0, risk_per_trade=0.005, max_positions=2),    # CRASH
    RegimeProfile(position_mult=1.5, stop_mult=0.7, risk_per_trade=0.030, max_positions=15),   # BULL_RUN
    RegimeProfile(position_mult=0.7, stop_mult=1.3, risk_per_trade=0.015, max_positions=6),    # RECOVERY
)


class RiskLimits(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    # ---- SPEC.md "Default limits"
    max_position_size: float = 0.10          # one instrument's notional (worst case with our resting orders)
    max_total_exposure: float = 0.80         # gross notional over all instruments
    max_single_asset_exposure: float = 0.20  # gross notional of one asset (e.g. BTC across BTCUSDT and BTCUSD_PERP)
    max_daily_var: float = 0.05              # portfolio 1-day VaR at var_z
    max_drawdown: float = 0.15               # from the equity peak
    max_leverage: float = 3.0                # gross notional incl. resting orders / equity
    max_daily_trades: int = 100              # fills per UTC day before new exposure is refused
    max_loss_per_trade: float = 0.02         # loss at the volatility stop, per order
    max_consecutive_losses: int = 5          # then a cool-down
    # ---- ours
    max_daily_loss: float = 0.05             # from the day's starting equity; = max_daily_var, the loss the VaR budget allows
    reduce_at_drawdown: float = 0.10         # monitor: REDUCING from here, HALTED at max_drawdown
    var_z: float = 2.326                     # one-sided 99% normal quantile
    stop_sigmas: float = 2.0                 # volatility stop: 2 sigma ...
    stop_horizon_s: float = 3600.0           # ... of the return over one hour (a scalper's horizon, generous)
    max_daily_vol: float = 0.15              # refuse new exposure above 15% daily volatility (crash-like)
    max_correlation: float = 0.80            # |rho| at or above this counts as the same bet
    max_correlated_exposure: float = 0.20    # = max_single_asset_exposure: a correlated pair is one asset
    price_band: float = 0.02                 # fat-finger: limit price within 2% of the mark
    max_mark_age_s: float = 5.0              # a mark older than this is no mark
    max_data_age_s: float = 5.0              # market data older than this is a stale feed
    order_rate: float = 10.0                 # orders per second (sustained), below Binance's 300 per 10 s
    order_burst: float = 20.0                # bucket depth
    cooldown_s: float = 900.0                # after max_consecutive_losses
    regime_profiles: tuple[RegimeProfile, ...] = DEFAULT_PROFILES

    def __post_init__(self):
        for name in ("max_position_size", "max_total_exposure", "max_single_asset_exposure", "max_daily_var",
                     "max_drawdown", "max_loss_per_trade", "max_daily_loss", "reduce_at_drawdown", "max_daily_vol",
                     "max_correlated_exposure", "price_band"):
            v = getattr(self, name)
            if not 0 < v <= 1:
                raise ValueError(f"RiskLimits.{name} = {v}: must be a fraction in (0, 1]")
        if self.reduce_at_drawdown > self.max_drawdown:
            raise ValueError("RiskLimits.reduce_at_drawdown must not exceed max_drawdown")
        if self.max_leverage <= 0 or self.max_daily_trades < 0 or self.max_consecutive_losses < 1:
            raise ValueError("RiskLimits: max_leverage > 0, max_daily_trades >= 0, max_consecutive_losses >= 1")
        if len(self.regime_profiles) != len(REGIMES):
            raise ValueError(f"RiskLimits.regime_profiles needs {len(REGIMES)} profiles ({', '.join(REGIMES)})")
        if self.order_rate <= 0 or self.order_burst < 1:
            raise ValueError("RiskLimits: order_rate > 0 and order_burst >= 1")
