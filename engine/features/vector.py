"""The 25-feature vector, one numba kernel for live and batch.

``update(S, recs, n, top, out, ready)`` consumes one market message (its MARKET records
and the book's top levels after it) and writes the 25 features and their readiness.
``FeatureEngine`` calls it per message (the brain); ``batch_features`` calls the very same
kernel over a whole recording (training). Same inputs -> bit-identical outputs.

Time is the exchange time of the message (``exch_ts``), never a clock read, so a replay,
a backtest and training see what the live engine saw. All windows are in time:

| # | name | definition | ready after |
|---|---|---|---|
| 0 | ret_1s | log(mid_t / mid_{t-1s}) | 1 s of history |
| 1 | ret_10s | log(mid_t / mid_{t-10s}) | 10 s |
| 2 | mom_60s | log(mid_t / mid_{t-60s}) | 60 s |
| 3 | rvol_60s | sqrt(sum of squared 1-s mid log returns over 60 s) | 60 one-second bars |
| 4 | accel_10s | ret_10s(t) - ret_10s(t - 10 s) | 20 s |
| 5 | vol_60s | traded quantity over 60 s (base asset) | 60 s |
| 6 | vol_chg | log((vol_60s + e) / (volume of the 60 s before + e)), e = 1 lot | 120 s |
| 7 | vwap_dev_60s | mid / VWAP(60 s of trades) - 1 | 60 s and a trade |
| 8 | vol_spike | volume of the last 10 s / (average 10 s volume over 300 s) | 300 s |
| 9 | flow_imb_10s | (buy - sell aggressor quantity) / total over 10 s (0 if none) | 10 s |
| 10 | best_bid | best bid price | a valid book |
| 11 | best_ask | best ask price | a valid book |
| 12 | bid_qty | best bid quantity | a valid book |
| 13 | ask_qty | best ask quantity | a valid book |
| 14 | spread_bps | (ask - bid) / mid x 1e4 | a valid book |
| 15 | book_imb_5 | (bid qty - ask qty) / total over 5 levels | a valid book |
| 16 | rsi_14 | RSI(14) of 1-s mid closes | 15 bars |
| 17-19 | macd, macd_signal, macd_hist | MACD(12, 26, 9) of 1-s closes | 26 / 34 / 34 bars |
| 20-21 | stoch_k, stoch_d | STOCH(14, 3, 3) of 1-s high/low/close | 16 / 18 bars |
| 22 | bb_width | (upper - lower) / middle, BBANDS(20, 2) of 1-s closes | 20 bars |
| 23 | bb_pos | (close - lower) / (upper - lower) | 20 bars |
| 24 | willr_14 | Williams %R(14) of 1-s bars | 14 bars |

Mid-price history is kept in 100 ms buckets (last mid of each), 3,000 of them (300 s);
trade volume in the same buckets, with running window sums (re-based exactly every 300 s so
that rounding cannot accumulate). Technical indicators run on completed 1-second bars of
the mid (open/high/low/close), through the same step functions as
``engine.features.indicators`` (so they equal those functions on the bar series).
Prices and quantities are floats here (features only): ticks x tick_size, lots x lot_size.
A feature that is not ready is NaN and its ``ready`` flag is False; strategies and
models must not act unless ``ready.all()``.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from engine import schema
from engine.features.indicators import bbands_step, macd_step, rsi_step, stoch_step, willr_step

N_FEATURES = 25
NAMES = ("ret_1s", "ret_10s", "mom_60s", "rvol_60s", "accel_10s",
         "vol_60s", "vol_chg", "vwap_dev_60s", "vol_spike", "flow_imb_10s",
         "best_bid", "best_ask", "bid_qty", "ask_qty", "spread_bps", "book_imb_5",
         "rsi_14", "macd", "macd_signal", "macd_hist", "stoch_k", "stoch_d", "bb_width", "bb_pos", "willr_14")
SCHEMA_HASH_SOURCE = "|".join(NAMES) + "|v1|100ms buckets x3000|1s bars|RSI14 MACD12,26,9 STOCH14,3,3 BB20,2 WILLR14"

BUCKET_NS = 100_000_000
NB = 3000                       # 300 s of buckets

# ---- state layout (float64 array S)
P_TICK, P_LOT, P_T0, P_LAST_B, P_LAST_MID, P_BAR_SEC, P_BO, P_BH, P_BL, P_BC, P_PREV_CLOSE, P_NBARS, \
    P_VALID_BOOK, P_BUY100, P_SELL100, P_VOL600, P_VOL1200, P_NOTI600, P_VOL2999, P_RESUM = range(20)
O_MID = 24                      # NB mids (NaN = no mid in that bucket yet: carry forward)
O_BUY = O_MID + NB              # NB buy volumes
O_SELL = O_BUY + NB             # NB sell volumes
O_NOTI = O_SELL + NB            # NB traded notional (for VWAP)
O_R2 = O_NOTI + NB              # 2 + 60: window of squared 1-s returns
O_RSI = O_R2 + 62               # 6
O_MACD = O_RSI + 6              # 9
O_STOCH = O_MACD + 9            # 8 + 2*14 + 3 + 3 = 42
O_BB = O_STOCH + 42             # 2 + 20
O_WR = O_BB + 22                # 4 + 2*14 = 32
O_TECH = O_WR + 32              # 9 last technical values
STATE_SIZE = O_TECH + 9

F_LAST = schema.F_LAST_IN_MESSAGE
MK_TRADE = schema.MK_TRADE
SIDE_BUY = schema.SIDE_BUY


def new_state(tick_size: float, lot_size: float) -> np.ndarray:
    S = np.zeros(STATE_SIZE)
    S[P_TICK] = tick_size
    S[P_LOT] = lot_size
    S[P_T0] = -1.0
    S[P_LAST_B] = -1.0
    S[P_BAR_SEC] = -1.0
    S[O_MID:O_MID + NB] = np.nan
    S[O_TECH:O_TECH + 9] = np.nan
    return S


@njit(cache=True)
def _mid_at(S, b):
    """Mid at bucket b (the last one known at or before b)."""
    return S[O_MID + (b % NB)]


@njit(cache=True)
def _vol_sum(S, off, b_from, b_to):
    """Sum of a volume ring over buckets (b_from, b_to] (exact; used to re-base the
    running sums every NB buckets so that rounding cannot accumulate)."""
    t = 0.0
    b = b_from + 1
    while b <= b_to:
        t += S[off + (b % NB)]
        b += 1
    return t


@njit(cache=True)
def _leave(S, x):
    """Bucket x enters the windows: subtract the buckets that leave each window."""
    y = x - 100
    if y >= 0:
        S[P_BUY100] -= S[O_BUY + (y % NB)]
        S[P_SELL100] -= S[O_SELL + (y % NB)]
    y = x - 600
    if y >= 0:
        S[P_VOL600] -= S[O_BUY + (y % NB)] + S[O_SELL + (y % NB)]
        S[P_NOTI600] -= S[O_NOTI + (y % NB)]
    y = x - 1200
    if y >= 0:
        S[P_VOL1200] -= S[O_BUY + (y % NB)] + S[O_SELL + (y % NB)]
    y = x - (NB - 1)
    if y >= 0:
        S[P_VOL2999] -= S[O_BUY + (y % NB)] + S[O_SELL + (y % NB)]


@njit(cache=True)
def _rebase(S, b):
    S[P_BUY100] = _vol_sum(S, O_BUY, b - 100, b)
    S[P_SELL100] = _vol_sum(S, O_SELL, b - 100, b)
    S[P_VOL600] = _vol_sum(S, O_BUY, b - 600, b) + _vol_sum(S, O_SELL, b - 600, b)
    S[P_NOTI600] = _vol_sum(S, O_NOTI, b - 600, b)
    S[P_VOL1200] = _vol_sum(S, O_BUY, b - 1200, b) + _vol_sum(S, O_SELL, b - 1200, b)
    S[P_VOL2999] = _vol_sum(S, O_BUY, b - (NB - 1), b) + _vol_sum(S, O_SELL, b - (NB - 1), b)


@njit(cache=True)
def _close_bar(S, close, high, low):
    """A completed 1-s bar: the technical indicators and the 1-s return window."""
    tech = S[O_TECH:O_TECH + 9]
    tmp = np.empty(3)
    if S[P_NBARS] > 0:
        r = np.log(close / S[P_PREV_CLOSE])
        w = S[O_R2:O_R2 + 62]
        w[2 + int(w[1])] = r * r
        w[1] = (w[1] + 1) % 60
        if w[0] < 60:
            w[0] += 1
    S[P_PREV_CLOSE] = close
    S[P_NBARS] += 1
    tech[0] = rsi_step(S[O_RSI:O_RSI + 6], close, 14)
    macd_step(S[O_MACD:O_MACD + 9], close, 12, 26, 9, tmp)
    tech[1] = tmp[0]
    tech[2] = tmp[1]
    tech[3] = tmp[2]
    stoch_step(S[O_STOCH:O_STOCH + 42], high, low, close, 14, 3, 3, tmp)
    tech[4] = tmp[0]
    tech[5] = tmp[1]
    bbands_step(S[O_BB:O_BB + 22], close, 20, 2.0, tmp)
    if np.isnan(tmp[1]):
        tech[6] = np.nan
        tech[7] = np.nan
    else:
        tech[6] = (tmp[0] - tmp[2]) / tmp[1]
        tech[7] = (close - tmp[2]) / (tmp[0] - tmp[2]) if tmp[0] > tmp[2] else 0.5
    tech[8] = willr_step(S[O_WR:O_WR + 32], high, low, close, 14)


@njit(cache=True)
def update(S, recs, tops, out, ready):
    """One message: ``recs`` (its MARKET records), ``tops[0]`` (the BOOK_TOP record after it).
    Writes out[25] and ready[25]. Returns the message's time (ns) or -1 if it had none."""
    n = recs.shape[0]
    top = tops[0]
    ts = -1
    for i in range(n):
        if recs[i].exch_ts > ts:
            ts = recs[i].exch_ts
    if top.exch_ts > ts:
        ts = top.exch_ts
    if ts < 0:
        return -1
    tick = S[P_TICK]
    lot = S[P_LOT]
    b = ts // BUCKET_NS
    if S[P_T0] < 0:
        S[P_T0] = b
        S[P_LAST_B] = b
    last_b = int(S[P_LAST_B])
    if b < last_b:
        b = last_b                     # never move back in time (late message): same bucket
    # roll buckets forward: the windows lose their oldest buckets, new buckets start empty
    # and carry the last mid
    if b > last_b:
        carry = S[O_MID + (last_b % NB)]
        if b - last_b > NB:
            for k in range(NB):
                S[O_BUY + k] = 0.0
                S[O_SELL + k] = 0.0
                S[O_NOTI + k] = 0.0
                S[O_MID + k] = carry
            for k in range(P_BUY100, P_VOL2999 + 1):
                S[k] = 0.0
        else:
            for x in range(last_b + 1, b + 1):
                _leave(S, x)
                jj = x % NB
                S[O_BUY + jj] = 0.0
                S[O_SELL + jj] = 0.0
                S[O_NOTI + jj] = 0.0
                S[O_MID + jj] = carry
        S[P_LAST_B] = b
        S[P_RESUM] += b - last_b
        if S[P_RESUM] >= NB:
            S[P_RESUM] = 0.0
            _rebase(S, b)
    j = b % NB
    # trades
    for i in range(n):
        if recs[i].kind == MK_TRADE and (recs[i].flags & 8) == 0:     # F_NON_MARKET excluded
            q = recs[i].qty * lot
            if recs[i].side == SIDE_BUY:
                S[O_BUY + j] += q
                S[P_BUY100] += q
            else:
                S[O_SELL + j] += q
                S[P_SELL100] += q
            S[P_VOL600] += q
            S[P_VOL1200] += q
            S[P_VOL2999] += q
            S[O_NOTI + j] += q * recs[i].px * tick
            S[P_NOTI600] += q * recs[i].px * tick
    # book
    bid = top.bid_px[0] * tick
    ask = top.ask_px[0] * tick
    book_ok = top.bid_px[0] > 0 and top.ask_px[0] > 0 and (top.flags & 4) == 0 and ask > bid
    mid = np.nan
    if book_ok:
        mid = 0.5 * (bid + ask)
        S[O_MID + j] = mid
        S[P_LAST_MID] = mid
        # 1-s bars of the mid
        sec = ts // 1_000_000_000
        if S[P_BAR_SEC] < 0:
            S[P_BAR_SEC] = sec
            S[P_BO] = mid
            S[P_BH] = mid
            S[P_BL] = mid
            S[P_BC] = mid
        elif sec > S[P_BAR_SEC]:
            _close_bar(S, S[P_BC], S[P_BH], S[P_BL])
            # seconds without a mid change repeat the last close
            gap = int(sec - S[P_BAR_SEC]) - 1
            if gap > 120:
                gap = 120
            for g in range(gap):
                _close_bar(S, S[P_BC], S[P_BC], S[P_BC])
            S[P_BAR_SEC] = sec
            S[P_BO] = mid
            S[P_BH] = mid
            S[P_BL] = mid
            S[P_BC] = mid
        else:
            if mid > S[P_BH]:
                S[P_BH] = mid
            if mid < S[P_BL]:
                S[P_BL] = mid
            S[P_BC] = mid
    age = b - int(S[P_T0])            # buckets of history
    m = S[O_MID + j]
    for k in range(25):
        out[k] = np.nan
        ready[k] = False
    # ---- price dynamics
    if not np.isnan(m):
        for k, h in ((0, 10), (1, 100), (2, 600)):
            if age >= h:
                m0 = S[O_MID + ((b - h) % NB)]
                if not np.isnan(m0) and m0 > 0:
                    out[k] = np.log(m / m0)
                    ready[k] = True
        if age >= 200:
            m1 = S[O_MID + ((b - 100) % NB)]
            m2 = S[O_MID + ((b - 200) % NB)]
            if not (np.isnan(m1) or np.isnan(m2)) and m1 > 0 and m2 > 0:
                out[4] = np.log(m / m1) - np.log(m1 / m2)
                ready[4] = True
    w = S[O_R2:O_R2 + 62]
    if w[0] >= 60:
        t = 0.0
        for k in range(60):
            t += w[2 + k]
        out[3] = np.sqrt(t)
        ready[3] = True
    # ---- volume
    if age >= 600:
        v60 = max(S[P_VOL600], 0.0)
        out[5] = v60
        ready[5] = True
        if age >= 1200:
            vp = max(S[P_VOL1200] - S[P_VOL600], 0.0)
            out[6] = np.log((v60 + lot) / (vp + lot))
            ready[6] = True
        noti = S[P_NOTI600]
        if v60 > 0 and noti > 0 and not np.isnan(m):
            out[7] = m / (noti / v60) - 1.0
            ready[7] = True
    if age >= 100:
        bv = max(S[P_BUY100], 0.0)
        sv = max(S[P_SELL100], 0.0)
        out[9] = (bv - sv) / (bv + sv) if bv + sv > 0 else 0.0
        ready[9] = True
        if age >= NB - 1:
            v300 = max(S[P_VOL2999], 0.0)
            avg10 = v300 / ((NB - 1) / 100.0)
            out[8] = (bv + sv) / avg10 if avg10 > 0 else 0.0
            ready[8] = True
    # ---- book
    if book_ok:
        out[10] = bid
        out[11] = ask
        out[12] = top.bid_qty[0] * lot
        out[13] = top.ask_qty[0] * lot
        out[14] = (ask - bid) / mid * 1e4
        bq = 0.0
        aq = 0.0
        for k in range(5):
            bq += top.bid_qty[k]
            aq += top.ask_qty[k]
        out[15] = (bq - aq) / (bq + aq) if bq + aq > 0 else 0.0
        for k in range(10, 16):
            ready[k] = True
    # ---- technical (last completed 1-s bar)
    tech = S[O_TECH:O_TECH + 9]
    for k in range(9):
        out[16 + k] = tech[k]
        ready[16 + k] = not np.isnan(tech[k])
    return ts


@njit(cache=True)
def batch_update(S, recs, starts, ends, tops, out, ready, times):
    """The same kernel over many messages: message i is recs[starts[i]:ends[i]] with book
    top tops[i]. Fills out[i], ready[i], times[i]."""
    for i in range(starts.shape[0]):
        times[i] = update(S, recs[starts[i]:ends[i]], tops[i:i + 1], out[i], ready[i])
    return starts.shape[0]


class FeatureEngine:
    """Incremental features for one instrument (the brain calls ``on_message`` per message)."""

    def __init__(self, tick_size: float, lot_size: float):
        self.S = new_state(tick_size, lot_size)
        self.out = np.full(N_FEATURES, np.nan)
        self.ready = np.zeros(N_FEATURES, np.bool_)

    def on_message(self, recs: np.ndarray, top: np.ndarray) -> int:
        """recs: MARKET_DTYPE array of one message; top: BOOK_TOP_DTYPE 1-element array.
        Results in ``self.out`` / ``self.ready``; returns the message time (ns)."""
        return update(self.S, recs, top, self.out, self.ready)

    @property
    def all_ready(self) -> bool:
        return np.count_nonzero(self.ready) == N_FEATURES      # ~5x cheaper than ready.all()

    def warmup(self) -> None:
        """Compile (or load from the cache) every kernel before the first real message."""
        S = new_state(float(self.S[P_TICK]), float(self.S[P_LOT]))
        recs = np.zeros(2, schema.MARKET_DTYPE)
        top = np.zeros(1, schema.BOOK_TOP_DTYPE)
        update(S, recs, top, np.empty(N_FEATURES), np.empty(N_FEATURES, np.bool_))
        batch_update(S, recs, np.zeros(1, np.int64), np.ones(1, np.int64), top,
                     np.empty((1, N_FEATURES)), np.empty((1, N_FEATURES), np.bool_), np.empty(1, np.int64))


def batch_features(recs: np.ndarray, starts: np.ndarray, ends: np.ndarray, tops: np.ndarray,
                   tick_size: float, lot_size: float):
    """Features after every message of a recording: (values [m, 25], ready [m, 25], times [m])."""
    m = len(starts)
    out = np.full((m, N_FEATURES), np.nan)
    ready = np.zeros((m, N_FEATURES), np.bool_)
    times = np.zeros(m, np.int64)
    batch_update(new_state(tick_size, lot_size), recs, starts.astype(np.int64), ends.astype(np.int64),
                 tops, out, ready, times)
    return out, ready, times
