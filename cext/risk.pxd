# The 7-layer pre-trade risk gate and the state it reads. Compiled so that a check costs
# about a microsecond from Python; the state is fed by engine.risk (positions, marks,
# volatilities, correlations, trading state) off the hot path.

from libc.stdint cimport int64_t, uint64_t, uint32_t
from cext.schema cimport OrderRecord, RejectRecord

cdef struct InstRisk:
    # ---- rules (from the instrument and the limits)
    double value_per_tick_lot     # quote value of 1 lot at a price of 1 tick (tick_size * lot_size)
    int64_t min_qty_lots
    int64_t max_qty_lots          # 0 = no limit
    double min_notional
    double band_up                # PERCENT_PRICE multiplierUp (0 = none)
    double band_down
    double leverage               # the instrument's leverage setting
    int asset                     # asset group for single-asset exposure
    bint configured
    # ---- state
    int64_t position              # signed lots
    int64_t mark_px               # ticks, 0 = none yet
    int64_t mark_ns               # CLOCK_MONOTONIC of the mark
    int64_t data_ns               # last market-data update for the instrument
    bint book_valid
    double vol                    # daily volatility of returns (fraction), 0 = no estimate
    int64_t open_buy_lots
    int64_t open_sell_lots
    int64_t best_resting_buy      # ticks, 0 = none
    int64_t best_resting_sell     # ticks, 0 = none

cdef class RiskState:
    cdef InstRisk *inst
    cdef InstRisk *_get(self, int i) except NULL
    cdef double *corr             # n x n correlation matrix (NaN = unknown)
    cdef readonly int n
    cdef public double equity
    cdef public double peak_equity
    cdef public double day_start_equity
    cdef public int trading_state # TS_ACTIVE / TS_REDUCING / TS_HALTED
    cdef public int regime        # 0..5: NORMAL VOLATILE TRENDING CRASH BULL_RUN RECOVERY
    cdef public bint kill_switch
    cdef public int64_t cooldown_until_ns
    cdef public int64_t daily_trades
    # order-rate token bucket
    cdef public double tokens
    cdef public int64_t tokens_ns

cdef class RiskGate:
    # ---- hard limits (SPEC.md)
    cdef readonly double max_position_size
    cdef readonly double max_total_exposure
    cdef readonly double max_single_asset_exposure
    cdef readonly double max_daily_var
    cdef readonly double max_drawdown
    cdef readonly double max_leverage
    cdef readonly int64_t max_daily_trades
    cdef readonly double max_loss_per_trade
    # ---- further limits (documented in engine/risk/limits.py)
    cdef readonly double max_daily_loss
    cdef readonly double var_z
    cdef readonly double stop_sigmas
    cdef readonly double stop_horizon_days
    cdef readonly double max_daily_vol
    cdef readonly double max_correlation
    cdef readonly double max_correlated_exposure
    cdef readonly double price_band
    cdef readonly int64_t max_mark_age_ns
    cdef readonly int64_t max_data_age_ns
    cdef readonly double order_rate
    cdef readonly double order_burst
    # ---- regime profiles: position x, stop-loss x, risk per trade, max positions
    cdef double prof_pos[6]
    cdef double prof_stop[6]
    cdef double prof_risk[6]
    cdef int prof_maxpos[6]
    # ---- counters
    cdef uint64_t accepted_n
    cdef uint64_t rejected_by_layer[9]
    cdef uint64_t checks
    cdef public object _order
    cdef public object _reject_rec
    cdef OrderRecord *_optr
    cdef RejectRecord *_rptr

    cdef int _reject(self, const OrderRecord *it, RiskState st, RejectRecord *rej, int layer,
                     int reason, double observed, double limit) noexcept nogil
    cdef int check_ptr(self, const OrderRecord *intent, RiskState st, int64_t now_ns,
                       OrderRecord *order, RejectRecord *rej) noexcept nogil
    cdef int rehearse_ptr(self, const OrderRecord *intent, RiskState st, int64_t now_ns,
                          OrderRecord *order, RejectRecord *rej) noexcept nogil
