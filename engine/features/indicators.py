"""Technical indicators, classic definitions, as numba kernels.

Each indicator is an incremental *step* over a small float64 state array (what the live
feature engine calls once per bar) and an array function that runs the same step over a
series (what training and the tests use). NaN marks "not enough data yet".

Conventions (they match TA-Lib's defaults, which the tests check on real candles):
- ``ema(x, period)``: k = 2 / (period + 1), seeded with the simple mean of the first
  ``period`` values (first output at index period - 1).
- ``rsi(close, period=14)``: Wilder's smoothing (1/period), seeded with the simple means of
  the first ``period`` gains and losses (first output at index period); 100 when there
  are no losses (TA-Lib's convention gives 0 only when there is no movement at all).
- ``macd(close, 12, 26, 9)``: line = EMA12 - EMA26, signal = EMA9 of the line, histogram =
  line - signal. TA-Lib seeds the fast EMA at the slow EMA's start, so the two differ in the
  first bars; they agree to 1e-9 once the seeds have decayed (the tests compare after 1000 bars).
- ``stoch(high, low, close, k=14, smooth_k=3, d=3)``: raw %K = 100 (C - LL) / (HH - LL) over
  k bars (0 when HH == LL), %K = SMA(raw, smooth_k), %D = SMA(%K, d) (TA-Lib STOCH with SMA).
- ``bbands(close, period=20, nbdev=2.0)``: middle = SMA, bands = middle +/- nbdev x population
  standard deviation.
- ``willr(high, low, close, period=14)``: -100 (HH - C) / (HH - LL), 0 when HH == LL.
"""
from __future__ import annotations

import numpy as np
from numba import njit

NAN = np.nan


# ---------------------------------------------------------------- EMA
# state: [count, sum, value]
@njit(cache=True)
def ema_step(s, x, period):
    if s[0] < period:
        s[0] += 1
        s[1] += x
        if s[0] == period:
            s[2] = s[1] / period
            return s[2]
        return NAN
    k = 2.0 / (period + 1.0)
    s[2] = s[2] + k * (x - s[2])
    return s[2]


@njit(cache=True)
def ema(x, period):
    """Exponential moving average (TA-Lib seeding)."""
    out = np.full(x.shape[0], NAN)
    s = np.zeros(3)
    for i in range(x.shape[0]):
        out[i] = ema_step(s, x[i], period)
    return out


# ---------------------------------------------------------------- RSI
# state: [count, prev, sum_gain, sum_loss, avg_gain, avg_loss]
@njit(cache=True)
def rsi_step(s, close, period):
    if s[0] == 0:
        s[0] = 1
        s[1] = close
        return NAN
    ch = close - s[1]
    s[1] = close
    g = ch if ch > 0 else 0.0
    l = -ch if ch < 0 else 0.0
    if s[0] <= period:
        s[2] += g
        s[3] += l
        s[0] += 1
        if s[0] <= period:
            return NAN
        s[4] = s[2] / period
        s[5] = s[3] / period
    else:
        s[4] = (s[4] * (period - 1) + g) / period
        s[5] = (s[5] * (period - 1) + l) / period
    tot = s[4] + s[5]
    if tot == 0.0:
        return 0.0
    return 100.0 * s[4] / tot


@njit(cache=True)
def rsi(close, period=14):
    """Relative strength index (Wilder)."""
    out = np.full(close.shape[0], NAN)
    s = np.zeros(6)
    for i in range(close.shape[0]):
        out[i] = rsi_step(s, close[i], period)
    return out


# ---------------------------------------------------------------- MACD
# state: fast ema [0:3], slow ema [3:6], signal ema [6:9]
@njit(cache=True)
def macd_step(s, close, fast, slow, signal, out3):
    f = ema_step(s[0:3], close, fast)
    sl = ema_step(s[3:6], close, slow)
    if np.isnan(sl) or np.isnan(f):
        out3[0] = NAN
        out3[1] = NAN
        out3[2] = NAN
        return
    line = f - sl
    sig = ema_step(s[6:9], line, signal)
    out3[0] = line
    out3[1] = sig
    out3[2] = line - sig if not np.isnan(sig) else NAN


@njit(cache=True)
def macd(close, fast=12, slow=26, signal=9):
    """(line, signal, histogram)."""
    n = close.shape[0]
    line = np.full(n, NAN)
    sig = np.full(n, NAN)
    hist = np.full(n, NAN)
    s = np.zeros(9)
    o = np.zeros(3)
    for i in range(n):
        macd_step(s, close[i], fast, slow, signal, o)
        line[i] = o[0]
        sig[i] = o[1]
        hist[i] = o[2]
    return line, sig, hist


# ---------------------------------------------------------------- rolling window helpers
# window state: [count, pos, v_0 .. v_{n-1}]
@njit(cache=True)
def win_push(w, x, n):
    w[2 + int(w[1])] = x
    w[1] = (w[1] + 1) % n
    if w[0] < n:
        w[0] += 1


@njit(cache=True)
def win_max(w, n):
    m = -np.inf
    for i in range(int(w[0])):
        if w[2 + i] > m:
            m = w[2 + i]
    return m


@njit(cache=True)
def win_min(w, n):
    m = np.inf
    for i in range(int(w[0])):
        if w[2 + i] < m:
            m = w[2 + i]
    return m


@njit(cache=True)
def win_mean(w, n):
    t = 0.0
    for i in range(int(w[0])):
        t += w[2 + i]
    return t / w[0]


# ---------------------------------------------------------------- Stochastic
def stoch_state_size(k, smooth_k, d):
    return 3 * 2 + k * 2 + smooth_k + d


@njit(cache=True)
def stoch_step(s, high, low, close, k, smooth_k, d, out2):
    # layout: hi window [0 : 2+k], lo window [2+k : 4+2k], rawk window, %k window
    hi = s[0:2 + k]
    lo = s[2 + k:4 + 2 * k]
    rk = s[4 + 2 * k:6 + 2 * k + smooth_k]
    kk = s[6 + 2 * k + smooth_k:8 + 2 * k + smooth_k + d]
    win_push(hi, high, k)
    win_push(lo, low, k)
    out2[0] = NAN
    out2[1] = NAN
    if hi[0] < k:
        return
    hh = win_max(hi, k)
    ll = win_min(lo, k)
    raw = 100.0 * (close - ll) / (hh - ll) if hh > ll else 0.0
    win_push(rk, raw, smooth_k)
    if rk[0] < smooth_k:
        return
    kv = win_mean(rk, smooth_k)
    out2[0] = kv
    win_push(kk, kv, d)
    if kk[0] < d:
        return
    out2[1] = win_mean(kk, d)


@njit(cache=True)
def stoch(high, low, close, k=14, smooth_k=3, d=3):
    """(%K smoothed over smooth_k, %D)."""
    n = close.shape[0]
    ko = np.full(n, NAN)
    do = np.full(n, NAN)
    s = np.zeros(8 + 2 * k + smooth_k + d)
    o = np.zeros(2)
    for i in range(n):
        stoch_step(s, high[i], low[i], close[i], k, smooth_k, d, o)
        ko[i] = o[0]
        do[i] = o[1]
    return ko, do


# ---------------------------------------------------------------- Bollinger bands
@njit(cache=True)
def bbands_step(s, close, period, nbdev, out3):
    win_push(s, close, period)
    out3[0] = NAN
    out3[1] = NAN
    out3[2] = NAN
    if s[0] < period:
        return
    m = win_mean(s, period)
    v = 0.0
    for i in range(period):
        dlt = s[2 + i] - m
        v += dlt * dlt
    sd = np.sqrt(v / period)
    out3[0] = m + nbdev * sd
    out3[1] = m
    out3[2] = m - nbdev * sd


@njit(cache=True)
def bbands(close, period=20, nbdev=2.0):
    """(upper, middle, lower)."""
    n = close.shape[0]
    up = np.full(n, NAN)
    mid = np.full(n, NAN)
    lo = np.full(n, NAN)
    s = np.zeros(2 + period)
    o = np.zeros(3)
    for i in range(n):
        bbands_step(s, close[i], period, nbdev, o)
        up[i] = o[0]
        mid[i] = o[1]
        lo[i] = o[2]
    return up, mid, lo


# ---------------------------------------------------------------- Williams %R
@njit(cache=True)
def willr_step(s, high, low, close, period):
    hi = s[0:2 + period]
    lo = s[2 + period:4 + 2 * period]
    win_push(hi, high, period)
    win_push(lo, low, period)
    if hi[0] < period:
        return NAN
    hh = win_max(hi, period)
    ll = win_min(lo, period)
    return -100.0 * (hh - close) / (hh - ll) if hh > ll else 0.0


@njit(cache=True)
def willr(high, low, close, period=14):
    n = close.shape[0]
    out = np.full(n, NAN)
    s = np.zeros(4 + 2 * period)
    for i in range(n):
        out[i] = willr_step(s, high[i], low[i], close[i], period)
    return out
