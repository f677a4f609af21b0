# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The 7-layer pre-trade risk gate.

``RiskGate.check(intent, state, now_ns)`` runs, in order:
  1 position size   2 portfolio exposure   3 daily VaR   4 drawdown   5 volatility
  6 correlation     7 emergency            8 exchange filters
and returns ``(True, order)`` or ``(False, reject)`` (ORDER_DTYPE / REJECT_DTYPE records:
the reject names the layer, the reason code and the two numbers compared). It fails
closed: a missing or stale input (no equity, no mark, no volatility, unknown correlation,
stale or invalid book) denies.

Cancels (CANCEL, CANCEL_ALL) never add risk and always pass. An order "reduces" when it
moves the position toward zero without crossing it; reducing orders skip the limits of
layers 1-6 (a limit breach must never trap a position) but not the filters.
Worst-case exposure counts our resting orders on the same side as filled.
"""
import numpy as np

from libc.math cimport sqrt, fabs, isnan, NAN
from libc.stdint cimport int64_t, uint64_t, uint32_t
from libc.stdlib cimport calloc, free
from libc.string cimport memset, memcpy
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE, PyBUF_ANY_CONTIGUOUS

from cext.schema cimport (OrderRecord, RejectRecord, ACT_NEW, ACT_CANCEL, ACT_REPLACE, ACT_CANCEL_ALL, SIDE_BUY,
                          SIDE_SELL, OT_LIMIT, OT_POST_ONLY, OT_IOC, OT_MARKET, OT_FOK, OF_REDUCE_ONLY)
from cext.shm_core cimport cs_mono_ns

# schema constants (engine/schema.py; tests check they agree); the order enums are cext/schema.pxd's
cdef enum:
    TS_ACTIVE = 1
    TS_REDUCING = 2
    TS_HALTED = 3
    L_POSITION = 1
    L_EXPOSURE = 2
    L_VAR = 3
    L_DRAWDOWN = 4
    L_VOLATILITY = 5
    L_CORRELATION = 6
    L_EMERGENCY = 7
    L_FILTERS = 8

# reason codes (unique across layers)
cdef enum:
    R_NO_MARK = 1
    R_STALE_MARK = 2
    R_POSITION_LIMIT = 3
    R_DAILY_TRADES = 4
    R_GROSS_EXPOSURE = 10
    R_ASSET_EXPOSURE = 11
    R_LEVERAGE = 12
    R_MAX_POSITIONS = 13
    R_VAR_NO_VOL = 20
    R_VAR_LIMIT = 21
    R_DRAWDOWN = 30
    R_DAILY_LOSS = 31
    R_NO_VOL = 40
    R_LOSS_PER_TRADE = 41
    R_VOL_CEILING = 42
    R_NO_CORRELATION = 50
    R_CORRELATED_EXPOSURE = 51
    R_HALTED = 60
    R_REDUCING = 61
    R_KILL_SWITCH = 62
    R_COOLDOWN = 63
    R_STALE_DATA = 64
    R_BOOK_INVALID = 65
    R_BAD_INSTRUMENT = 70
    R_BAD_ORDER = 71
    R_MIN_QTY = 72
    R_MAX_QTY = 73
    R_MIN_NOTIONAL = 74
    R_PRICE_BAND = 75
    R_MARGIN = 76
    R_RATE_LIMIT = 77
    R_SELF_TRADE = 78
    R_NO_EQUITY = 79

SCHEMA_CONSTANTS = {"ACT_NEW": ACT_NEW, "ACT_CANCEL": ACT_CANCEL, "ACT_REPLACE": ACT_REPLACE,
                    "ACT_CANCEL_ALL": ACT_CANCEL_ALL, "SIDE_BUY": SIDE_BUY, "SIDE_SELL": SIDE_SELL,
                    "OT_LIMIT": OT_LIMIT, "OT_POST_ONLY": OT_POST_ONLY, "OT_IOC": OT_IOC, "OT_MARKET": OT_MARKET,
                    "OT_FOK": OT_FOK, "OF_REDUCE_ONLY": OF_REDUCE_ONLY, "TS_ACTIVE": TS_ACTIVE,
                    "TS_REDUCING": TS_REDUCING, "TS_HALTED": TS_HALTED, "LAYER_POSITION": L_POSITION,
                    "LAYER_EXPOSURE": L_EXPOSURE, "LAYER_VAR": L_VAR, "LAYER_DRAWDOWN": L_DRAWDOWN,
                    "LAYER_VOLATILITY": L_VOLATILITY, "LAYER_CORRELATION": L_CORRELATION,
                    "LAYER_EMERGENCY": L_EMERGENCY, "LAYER_FILTERS": L_FILTERS}

REASONS = {
    R_NO_MARK: "no_mark_price", R_STALE_MARK: "stale_mark_price", R_POSITION_LIMIT: "position_limit",
    R_DAILY_TRADES: "daily_trades", R_GROSS_EXPOSURE: "gross_exposure", R_ASSET_EXPOSURE: "asset_exposure",
    R_LEVERAGE: "leverage", R_MAX_POSITIONS: "max_positions", R_VAR_NO_VOL: "var_no_volatility",
    R_VAR_LIMIT: "daily_var", R_DRAWDOWN: "drawdown", R_DAILY_LOSS: "daily_loss",
    R_NO_VOL: "no_volatility", R_LOSS_PER_TRADE: "loss_per_trade", R_VOL_CEILING: "volatility_ceiling",
    R_NO_CORRELATION: "no_correlation", R_CORRELATED_EXPOSURE: "correlated_exposure",
    R_HALTED: "halted", R_REDUCING: "reducing_only", R_KILL_SWITCH: "kill_switch", R_COOLDOWN: "cooldown",
    R_STALE_DATA: "stale_market_data", R_BOOK_INVALID: "book_invalid", R_BAD_INSTRUMENT: "unknown_instrument",
    R_BAD_ORDER: "bad_order", R_MIN_QTY: "min_qty", R_MAX_QTY: "max_qty", R_MIN_NOTIONAL: "min_notional",
    R_PRICE_BAND: "price_band", R_MARGIN: "margin", R_RATE_LIMIT: "order_rate", R_SELF_TRADE: "self_trade",
    R_NO_EQUITY: "no_equity",
}
LAYERS = {1: "position_size", 2: "portfolio_exposure", 3: "daily_var", 4: "drawdown",
          5: "volatility", 6: "correlation", 7: "emergency", 8: "exchange_filters"}


cdef class RiskState:
    """What the gate reads: per-instrument rules and state, account figures, trading
    state. Fed by engine.risk (PositionBook, the monitor, estimators)."""

    def __cinit__(self, int n):
        if n < 1 or n > 4096:
            raise ValueError("RiskState needs 1..4096 instruments")
        self.n = n
        self.inst = <InstRisk *>calloc(n, sizeof(InstRisk))
        self.corr = <double *>calloc(n * n, sizeof(double))
        if self.inst == NULL or self.corr == NULL:
            raise MemoryError()
        for i in range(n * n):
            self.corr[i] = NAN
        for i in range(n):
            self.corr[i * n + i] = 1.0
        self.trading_state = TS_ACTIVE
        self.tokens = -1        # filled to the burst on first use

    def __dealloc__(self):
        free(self.inst)
        free(self.corr)

    cdef InstRisk *_get(self, int i) except NULL:
        if not 0 <= i < self.n:
            raise IndexError(f"instrument {i} out of range 0..{self.n - 1}")
        return &self.inst[i]

    def configure(self, int i, *, double tick_size, double lot_size, int64_t min_qty_lots=1,
                  int64_t max_qty_lots=0, double min_notional=0.0, double band_up=0.0,
                  double band_down=0.0, double leverage=1.0, int asset=-1):
        """Rules of instrument i (from engine.venues.instruments.Instrument)."""
        if tick_size <= 0 or lot_size <= 0 or leverage <= 0:
            raise ValueError("tick_size, lot_size and leverage must be positive")
        cdef InstRisk *r = self._get(i)
        r.value_per_tick_lot = tick_size * lot_size
        r.min_qty_lots = min_qty_lots
        r.max_qty_lots = max_qty_lots
        r.min_notional = min_notional
        r.band_up = band_up
        r.band_down = band_down
        r.leverage = leverage
        r.asset = i if asset < 0 else asset
        r.configured = True

    def set_market(self, int i, *, int64_t mark_px, int64_t mark_ns, int64_t data_ns, bint book_valid=True):
        cdef InstRisk *r = self._get(i)
        r.mark_px = mark_px
        r.mark_ns = mark_ns
        r.data_ns = data_ns
        r.book_valid = book_valid

    def set_vol(self, int i, double daily_vol):
        if not daily_vol >= 0:
            raise ValueError("volatility must be >= 0 (0 = no estimate)")
        self._get(i).vol = daily_vol

    def set_position(self, int i, int64_t lots):
        self._get(i).position = lots

    def set_open_orders(self, int i, int64_t buy_lots, int64_t sell_lots, int64_t best_buy_px=0,
                        int64_t best_sell_px=0):
        """Our resting orders: total lots per side and the best price per side (0 = none)."""
        cdef InstRisk *r = self._get(i)
        r.open_buy_lots = buy_lots
        r.open_sell_lots = sell_lots
        r.best_resting_buy = best_buy_px
        r.best_resting_sell = best_sell_px

    def set_correlation(self, corr):
        """The n x n correlation matrix (NaN where unknown)."""
        a = np.asarray(corr, dtype=np.float64)
        if a.shape != (self.n, self.n):
            raise ValueError(f"correlation must be {self.n}x{self.n}")
        cdef double[:, ::1] v = np.ascontiguousarray(a)
        for i in range(self.n):
            for j in range(self.n):
                self.corr[i * self.n + j] = v[i, j]

    def position(self, int i):
        return self._get(i).position

    def open_orders(self, int i):
        cdef InstRisk *r = self._get(i)
        return r.open_buy_lots, r.open_sell_lots

    def snapshot(self):
        return {"equity": self.equity, "peak_equity": self.peak_equity,
                "day_start_equity": self.day_start_equity, "trading_state": self.trading_state,
                "regime": self.regime, "kill_switch": bool(self.kill_switch),
                "daily_trades": self.daily_trades,
                "positions": {i: self.inst[i].position for i in range(self.n) if self.inst[i].position}}


cdef inline int _sgn(int64_t x) noexcept nogil:
    return (x > 0) - (x < 0)


cdef class RiskGate:
    """RiskGate(limits) -- limits: engine.risk.limits.RiskLimits."""

    def __init__(self, limits):
        self.max_position_size = limits.max_position_size
        self.max_total_exposure = limits.max_total_exposure
        self.max_single_asset_exposure = limits.max_single_asset_exposure
        self.max_daily_var = limits.max_daily_var
        self.max_drawdown = limits.max_drawdown
        self.max_leverage = limits.max_leverage
        self.max_daily_trades = limits.max_daily_trades
        self.max_loss_per_trade = limits.max_loss_per_trade
        self.max_daily_loss = limits.max_daily_loss
        self.var_z = limits.var_z
        self.stop_sigmas = limits.stop_sigmas
        self.stop_horizon_days = limits.stop_horizon_s / 86400.0
        self.max_daily_vol = limits.max_daily_vol
        self.max_correlation = limits.max_correlation
        self.max_correlated_exposure = limits.max_correlated_exposure
        self.price_band = limits.price_band
        self.max_mark_age_ns = int(limits.max_mark_age_s * 1e9)
        self.max_data_age_ns = int(limits.max_data_age_s * 1e9)
        self.order_rate = limits.order_rate
        self.order_burst = limits.order_burst
        for k, prof in enumerate(limits.regime_profiles):
            self.prof_pos[k] = prof.position_mult
            self.prof_stop[k] = prof.stop_mult
            self.prof_risk[k] = prof.risk_per_trade
            self.prof_maxpos[k] = prof.max_positions

    cdef int _reject(self, const OrderRecord *it, RiskState st, RejectRecord *rej, int layer,
                            int reason, double observed, double limit) noexcept nogil:
        rej.layer = layer
        rej.action = it.action
        rej.side = it.side
        rej.state = st.trading_state
        rej.inst = it.inst
        rej.reason = reason
        rej.strategy = it.strategy
        rej._pad = 0
        rej.client_id = it.client_id
        rej.px = it.px
        rej.qty = it.qty
        rej.observed = observed
        rej.limit = limit
        rej.mono_origin = it.mono_origin
        self.rejected_by_layer[layer] += 1
        return 0

    cdef int check_ptr(self, const OrderRecord *it, RiskState st, int64_t now_ns,
                       OrderRecord *order, RejectRecord *rej) noexcept nogil:
        cdef InstRisk *r
        cdef InstRisk *o
        cdef int64_t dq, pos, pos_after, worst_after, px, i, j, n = st.n
        cdef int regime, npos, k
        cdef bint reduces, opens
        cdef double eq, mark, notional_after, lim, gross, asset_exp, xi, xj, var, vol, loss, stop, q, dd
        cdef double order_notional, margin_used, corr_exp, rho
        self.checks += 1
        # ------------------------------------------------------------ cancels pass
        if it.action == ACT_CANCEL or it.action == ACT_CANCEL_ALL:
            if it.inst >= <uint32_t>n:
                return self._reject(it, st, rej, L_FILTERS, R_BAD_INSTRUMENT, it.inst, n - 1)
            memcpy(order, it, sizeof(OrderRecord))
            order.t_risk = now_ns
            self.accepted_n += 1
            return 1
        # ------------------------------------------------------------ well-formed?
        if it.inst >= <uint32_t>n or not st.inst[it.inst].configured:
            return self._reject(it, st, rej, L_FILTERS, R_BAD_INSTRUMENT, it.inst, n - 1)
        if (it.action != ACT_NEW and it.action != ACT_REPLACE) or (it.side != SIDE_BUY and it.side != SIDE_SELL) \
                or it.qty <= 0 or it.otype < OT_LIMIT or it.otype > OT_FOK \
                or (it.otype != OT_MARKET and it.px <= 0):
            return self._reject(it, st, rej, L_FILTERS, R_BAD_ORDER, it.qty, 0)
        eq = st.equity
        if not eq > 0:
            return self._reject(it, st, rej, L_FILTERS, R_NO_EQUITY, eq, 0)
        r = &st.inst[it.inst]
        regime = st.regime if 0 <= st.regime < 6 else 0
        dq = it.qty if it.side == SIDE_BUY else -it.qty
        pos = r.position
        pos_after = pos + dq
        # reduces: toward zero without crossing (a replace is judged like a new order)
        reduces = pos != 0 and _sgn(dq) == -_sgn(pos) and (pos_after == 0 or _sgn(pos_after) == _sgn(pos))
        # worst case: our resting orders on the same side fill too
        worst_after = pos_after + (r.open_buy_lots if dq > 0 else -r.open_sell_lots)
        # ------------------------------------------------------------ 1 position size
        if r.mark_px <= 0:
            return self._reject(it, st, rej, L_POSITION, R_NO_MARK, 0, 0)
        if now_ns - r.mark_ns > self.max_mark_age_ns:
            return self._reject(it, st, rej, L_POSITION, R_STALE_MARK, (now_ns - r.mark_ns) / 1e9,
                                self.max_mark_age_ns / 1e9)
        mark = <double>r.mark_px * r.value_per_tick_lot          # quote value of one lot
        order_notional = it.qty * mark
        if not reduces:
            notional_after = fabs(<double>worst_after) * mark / eq
            lim = self.max_position_size * (self.prof_pos[regime] if self.prof_pos[regime] < 1.0 else 1.0)
            if notional_after > lim + 1e-12:
                return self._reject(it, st, rej, L_POSITION, R_POSITION_LIMIT, notional_after, lim)
            if st.daily_trades >= self.max_daily_trades:
                return self._reject(it, st, rej, L_POSITION, R_DAILY_TRADES, st.daily_trades, self.max_daily_trades)
        # ------------------------------------------------------------ 2 portfolio exposure
        if not reduces:
            gross = 0.0
            asset_exp = 0.0
            npos = 0
            for i in range(n):
                o = &st.inst[i]
                if i == it.inst:
                    xi = fabs(<double>worst_after) * mark / eq
                else:
                    if not o.configured:
                        continue
                    if (o.position or o.open_buy_lots or o.open_sell_lots) and o.mark_px <= 0:
                        return self._reject(it, st, rej, L_EXPOSURE, R_NO_MARK, i, 0)
                    # worst case of the other instrument: the larger side of its orders fills
                    xi = fabs(<double>o.position) + (o.open_buy_lots if o.open_buy_lots > o.open_sell_lots else o.open_sell_lots)
                    xi = xi * o.mark_px * o.value_per_tick_lot / eq
                gross += xi
                if o.asset == r.asset:
                    asset_exp += xi
                if (i == it.inst and pos_after != 0) or (i != it.inst and o.position != 0):
                    npos += 1
            if gross > self.max_total_exposure + 1e-12:
                return self._reject(it, st, rej, L_EXPOSURE, R_GROSS_EXPOSURE, gross, self.max_total_exposure)
            if asset_exp > self.max_single_asset_exposure + 1e-12:
                return self._reject(it, st, rej, L_EXPOSURE, R_ASSET_EXPOSURE, asset_exp, self.max_single_asset_exposure)
            if gross > self.max_leverage + 1e-12:
                return self._reject(it, st, rej, L_EXPOSURE, R_LEVERAGE, gross, self.max_leverage)
            opens = pos == 0 and pos_after != 0
            if opens and npos > self.prof_maxpos[regime]:
                return self._reject(it, st, rej, L_EXPOSURE, R_MAX_POSITIONS, npos, self.prof_maxpos[regime])
        # ------------------------------------------------------------ 3 daily VaR
        if not reduces:
            var = 0.0
            for i in range(n):
                o = &st.inst[i]
                xi = (<double>pos_after if i == it.inst else <double>o.position)
                if xi == 0:
                    continue
                if o.vol <= 0:
                    return self._reject(it, st, rej, L_VAR, R_VAR_NO_VOL, i, 0)
                xi = xi * o.mark_px * o.value_per_tick_lot / eq * o.vol
                for j in range(n):
                    xj = (<double>pos_after if j == it.inst else <double>st.inst[j].position)
                    if xj == 0:
                        continue
                    rho = st.corr[i * n + j]
                    if isnan(rho):
                        rho = 1.0      # unknown correlation: assume the worst for VaR
                    xj = xj * st.inst[j].mark_px * st.inst[j].value_per_tick_lot / eq * st.inst[j].vol
                    var += xi * xj * rho
            var = self.var_z * sqrt(var if var > 0 else 0.0)
            if var > self.max_daily_var + 1e-12:
                return self._reject(it, st, rej, L_VAR, R_VAR_LIMIT, var, self.max_daily_var)
        # ------------------------------------------------------------ 4 drawdown
        if not reduces:
            if st.peak_equity > 0:
                dd = (st.peak_equity - eq) / st.peak_equity
                if dd >= self.max_drawdown:
                    return self._reject(it, st, rej, L_DRAWDOWN, R_DRAWDOWN, dd, self.max_drawdown)
            if st.day_start_equity > 0:
                dd = (st.day_start_equity - eq) / st.day_start_equity
                if dd >= self.max_daily_loss:
                    return self._reject(it, st, rej, L_DRAWDOWN, R_DAILY_LOSS, dd, self.max_daily_loss)
        # ------------------------------------------------------------ 5 volatility
        if not reduces:
            vol = r.vol
            if vol <= 0:
                return self._reject(it, st, rej, L_VOLATILITY, R_NO_VOL, 0, 0)
            if vol > self.max_daily_vol:
                return self._reject(it, st, rej, L_VOLATILITY, R_VOL_CEILING, vol, self.max_daily_vol)
            stop = self.prof_stop[regime] * self.stop_sigmas * vol * sqrt(self.stop_horizon_days)
            loss = order_notional * stop / eq
            lim = self.max_loss_per_trade if self.max_loss_per_trade < self.prof_risk[regime] else self.prof_risk[regime]
            if loss > lim + 1e-12:
                return self._reject(it, st, rej, L_VOLATILITY, R_LOSS_PER_TRADE, loss, lim)
        # ------------------------------------------------------------ 6 correlation
        if not reduces:
            corr_exp = fabs(<double>worst_after) * mark / eq
            for j in range(n):
                if j == it.inst or st.inst[j].position == 0:
                    continue
                rho = st.corr[it.inst * n + j]
                if isnan(rho):
                    return self._reject(it, st, rej, L_CORRELATION, R_NO_CORRELATION, j, 0)
                # the same bet: highly correlated and the same direction of risk
                if fabs(rho) >= self.max_correlation and _sgn(st.inst[j].position) * (1 if rho > 0 else -1) == _sgn(dq):
                    corr_exp += fabs(<double>st.inst[j].position) * st.inst[j].mark_px * st.inst[j].value_per_tick_lot / eq
            if corr_exp > self.max_correlated_exposure + 1e-12:
                return self._reject(it, st, rej, L_CORRELATION, R_CORRELATED_EXPOSURE, corr_exp, self.max_correlated_exposure)
        # ------------------------------------------------------------ 7 emergency
        if st.trading_state == TS_HALTED:
            return self._reject(it, st, rej, L_EMERGENCY, R_HALTED, st.trading_state, TS_ACTIVE)
        if st.kill_switch and not (reduces and it.flags & OF_REDUCE_ONLY):
            return self._reject(it, st, rej, L_EMERGENCY, R_KILL_SWITCH, 1, 0)
        if st.trading_state == TS_REDUCING and not reduces:
            return self._reject(it, st, rej, L_EMERGENCY, R_REDUCING, st.trading_state, TS_ACTIVE)
        if not reduces and now_ns < st.cooldown_until_ns:
            return self._reject(it, st, rej, L_EMERGENCY, R_COOLDOWN, (st.cooldown_until_ns - now_ns) / 1e9, 0)
        if not (reduces and it.flags & OF_REDUCE_ONLY):
            if not r.book_valid:
                return self._reject(it, st, rej, L_EMERGENCY, R_BOOK_INVALID, 0, 1)
            if now_ns - r.data_ns > self.max_data_age_ns:
                return self._reject(it, st, rej, L_EMERGENCY, R_STALE_DATA, (now_ns - r.data_ns) / 1e9,
                                    self.max_data_age_ns / 1e9)
        # ------------------------------------------------------------ 8 exchange filters
        if it.qty < r.min_qty_lots:
            return self._reject(it, st, rej, L_FILTERS, R_MIN_QTY, it.qty, r.min_qty_lots)
        if r.max_qty_lots and it.qty > r.max_qty_lots:
            return self._reject(it, st, rej, L_FILTERS, R_MAX_QTY, it.qty, r.max_qty_lots)
        px = it.px if it.otype != OT_MARKET else r.mark_px
        if not (it.flags & OF_REDUCE_ONLY) and <double>it.qty * px * r.value_per_tick_lot < r.min_notional:
            return self._reject(it, st, rej, L_FILTERS, R_MIN_NOTIONAL, <double>it.qty * px * r.value_per_tick_lot, r.min_notional)
        if it.otype != OT_MARKET:
            q = (<double>it.px - r.mark_px) / r.mark_px
            if fabs(q) > self.price_band:
                return self._reject(it, st, rej, L_FILTERS, R_PRICE_BAND, q, self.price_band)
            if r.band_up > 0 and <double>it.px > r.mark_px * r.band_up:
                return self._reject(it, st, rej, L_FILTERS, R_PRICE_BAND, <double>it.px / r.mark_px, r.band_up)
            if r.band_down > 0 and <double>it.px < r.mark_px * r.band_down:
                return self._reject(it, st, rej, L_FILTERS, R_PRICE_BAND, <double>it.px / r.mark_px, r.band_down)
        if not reduces:
            margin_used = 0.0
            for i in range(n):
                o = &st.inst[i]
                if o.configured and o.mark_px > 0:
                    xi = fabs(<double>o.position) + o.open_buy_lots + o.open_sell_lots
                    margin_used += xi * o.mark_px * o.value_per_tick_lot / o.leverage
            if margin_used + order_notional / r.leverage > eq + 1e-9:
                return self._reject(it, st, rej, L_FILTERS, R_MARGIN, margin_used + order_notional / r.leverage, eq)
        # self-trade prevention: never cross our own resting order
        if it.side == SIDE_BUY and r.best_resting_sell > 0 and (it.otype == OT_MARKET or it.px >= r.best_resting_sell):
            return self._reject(it, st, rej, L_FILTERS, R_SELF_TRADE, px, r.best_resting_sell)
        if it.side == SIDE_SELL and r.best_resting_buy > 0 and (it.otype == OT_MARKET or it.px <= r.best_resting_buy):
            return self._reject(it, st, rej, L_FILTERS, R_SELF_TRADE, px, r.best_resting_buy)
        # order rate: token bucket (order_rate per second, order_burst deep)
        if st.tokens < 0:
            st.tokens = self.order_burst
            st.tokens_ns = now_ns
        st.tokens += (now_ns - st.tokens_ns) * 1e-9 * self.order_rate
        if st.tokens > self.order_burst:
            st.tokens = self.order_burst
        st.tokens_ns = now_ns
        if st.tokens < 1.0:
            return self._reject(it, st, rej, L_FILTERS, R_RATE_LIMIT, st.tokens, 1.0)
        st.tokens -= 1.0
        # ------------------------------------------------------------ accepted
        memcpy(order, it, sizeof(OrderRecord))
        order.t_risk = now_ns
        if it.side == SIDE_BUY:
            r.open_buy_lots += it.qty       # in flight: counts until the venue says otherwise
        else:
            r.open_sell_lots += it.qty
        self.accepted_n += 1
        return 1

    # -------------------------------------------------------------- Python API
    def check(self, intent, RiskState state, now_ns=None):
        """(True, order) or (False, reject): 1-element ORDER_DTYPE / REJECT_DTYPE arrays
        owned by the gate (copy them to keep them past the next call). The order's
        ``t_risk``: ``now_ns`` when given (a backtest's clock), else CLOCK_MONOTONIC read
        as the gate finished with it."""
        cdef Py_buffer b
        cdef int ok
        cdef int64_t now = cs_mono_ns() if now_ns is None else now_ns
        PyObject_GetBuffer(intent, &b, PyBUF_SIMPLE | PyBUF_ANY_CONTIGUOUS)
        try:
            if b.len != sizeof(OrderRecord):
                raise ValueError(f"intent must be one ORDER_DTYPE record ({sizeof(OrderRecord)} bytes), got {b.len}")
            ok = self.check_ptr(<const OrderRecord *>b.buf, state, now, self._optr, self._rptr)
        finally:
            PyBuffer_Release(&b)
        if ok and now_ns is None:
            self._optr.t_risk = cs_mono_ns()        # on the clock: when the gate was done with it
        return (True, self._order) if ok else (False, self._reject_rec)

    def rehearse(self, intent, RiskState state, now_ns=None):
        """``check`` for the CPU caches, changing nothing: the same code on the same state
        and buffers, then everything a check changes put back (the rate limiter's tokens,
        the instrument's open lots, the counters). Returns whether the intent would pass.
        A busy-polling engine runs it between messages on a realistic intent, so that the
        next real check does not find the gate's code and data cold (fused ``--wait spin``).
        Returns what ``check`` returns, from the same buffers."""
        cdef Py_buffer b
        cdef int ok
        cdef int64_t now = cs_mono_ns() if now_ns is None else now_ns
        PyObject_GetBuffer(intent, &b, PyBUF_SIMPLE | PyBUF_ANY_CONTIGUOUS)
        try:
            if b.len != sizeof(OrderRecord):
                raise ValueError(f"intent must be one ORDER_DTYPE record ({sizeof(OrderRecord)} bytes), got {b.len}")
            ok = self.rehearse_ptr(<const OrderRecord *>b.buf, state, now, self._optr, self._rptr)
        finally:
            PyBuffer_Release(&b)
        return (True, self._order) if ok else (False, self._reject_rec)

    cdef int rehearse_ptr(self, const OrderRecord *it, RiskState state, int64_t now_ns,
                          OrderRecord *order, RejectRecord *rej) noexcept nogil:
        """``check_ptr`` with everything it changes put back (``rehearse``)."""
        cdef int ok
        cdef InstRisk saved
        cdef uint64_t by_layer[9]
        cdef uint64_t checks = self.checks, accepted = self.accepted_n
        cdef double tokens = state.tokens
        cdef int64_t tokens_ns = state.tokens_ns
        cdef bint have_inst = it.inst < <uint32_t>state.n
        memcpy(by_layer, self.rejected_by_layer, sizeof(by_layer))
        if have_inst:
            memcpy(&saved, &state.inst[it.inst], sizeof(InstRisk))
        ok = self.check_ptr(it, state, now_ns, order, rej)
        if have_inst:
            memcpy(&state.inst[it.inst], &saved, sizeof(InstRisk))
        memcpy(self.rejected_by_layer, by_layer, sizeof(by_layer))
        self.checks, self.accepted_n = checks, accepted
        state.tokens, state.tokens_ns = tokens, tokens_ns
        return ok

    def __cinit__(self, limits=None):
        from engine.schema import ORDER_DTYPE, REJECT_DTYPE
        self._order = np.zeros(1, ORDER_DTYPE)
        self._reject_rec = np.zeros(1, REJECT_DTYPE)
        # the arrays live as long as the gate: keep raw pointers (no buffer dance per call)
        self._optr = <OrderRecord *><size_t>self._order.ctypes.data
        self._rptr = <RejectRecord *><size_t>self._reject_rec.ctypes.data

    def stats(self):
        return {"checks": self.checks, "accepted": self.accepted_n,
                "rejected": {LAYERS[k]: self.rejected_by_layer[k] for k in range(1, 9) if self.rejected_by_layer[k]}}

    @staticmethod
    def reason_name(int code):
        return REASONS.get(code, str(code))

    @staticmethod
    def layer_name(int layer):
        return LAYERS.get(layer, str(layer))
