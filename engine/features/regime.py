"""Market regime detection on 1-minute bars: NORMAL, VOLATILE, TRENDING, CRASH, BULL_RUN,
RECOVERY, from realized volatility, trend strength and drawdown, with hysteresis.

Measures, at each closed minute t (only bars up to t):
- ``vol``: standard deviation of 1-minute log returns over the last 60 minutes;
  ``vol_ratio`` = vol / mean of ``vol`` over the last 7 days (how unusual it is now);
- ``trend``: log(close_t / close_{t-240}) / (vol x sqrt(240)): the 4-hour move in units of
  its own noise (a t-statistic of the drift);
- ``drawdown``: 1 - close_t / max(close over the last 24 hours).

Rules, first match wins (entry thresholds; exits are looser, see below):
| regime | enter when | why |
|---|---|---|
| CRASH | drawdown >= 6% and trend <= -3 | a deep, fast, one-sided fall |
| RECOVERY | coming from CRASH (or VOLATILE with drawdown >= 4%) and trend >= +2 while drawdown >= 2% | rebounding but still below the high |
| BULL_RUN | trend >= +4 and vol_ratio <= 2 | a strong, orderly rise |
| VOLATILE | vol_ratio >= 2 | noise twice its usual level |
| TRENDING | abs(trend) >= 2.5 | a directional 4-hour move |
| NORMAL | otherwise | |

Hysteresis: a new regime must have held its entry condition for 10 consecutive minutes.
Moving to a *more severe* regime (severity CRASH > VOLATILE > RECOVERY > BULL_RUN >
TRENDING > NORMAL) then happens at once: risk must not wait. Moving to a less severe one
also needs the current regime's own condition to fail by a margin (CRASH until trend > -1
or drawdown < 3%; BULL_RUN until trend < 2.5; VOLATILE until vol_ratio < 1.5; TRENDING
until abs(trend) < 1.5; RECOVERY until trend < 1 or drawdown < 1%) and the current regime
to have lasted 30 minutes. So it does not flip every tick.

The thresholds were set by reading the plot of a month of BTC and ETH 1-minute data
(``cryptoscalp regimes``): 2 sigma-of-noise 4-hour drifts are common (TRENDING a
minority of the time), 4 sigma ones are rare, a 6% drawdown within a day is exceptional
for BTC in 2025. They are parameters, not truths.
"""
from __future__ import annotations

from collections import deque

import numpy as np
from numba import njit

NORMAL, VOLATILE, TRENDING, CRASH, BULL_RUN, RECOVERY = range(6)
NAMES = ("NORMAL", "VOLATILE", "TRENDING", "CRASH", "BULL_RUN", "RECOVERY")

VOL_WIN, TREND_WIN, DD_WIN, REF_WIN = 60, 240, 1440, 7 * 1440
CONFIRM, MIN_DWELL = 10, 30
SEVERITY = np.array([0, 4, 1, 5, 2, 3])     # by regime id: NORMAL VOLATILE TRENDING CRASH BULL_RUN RECOVERY


@njit(cache=True)
def _raw(trend, vol_ratio, dd, prev):
    if dd >= 0.06 and trend <= -3.0:
        return CRASH
    if (prev == CRASH or (prev == VOLATILE and dd >= 0.04)) and trend >= 2.0 and dd >= 0.02:
        return RECOVERY
    if trend >= 4.0 and vol_ratio <= 2.0:
        return BULL_RUN
    if vol_ratio >= 2.0:
        return VOLATILE
    if abs(trend) >= 2.5:
        return TRENDING
    return NORMAL


@njit(cache=True)
def _holds(reg, trend, vol_ratio, dd):
    """Is the current regime's (looser) exit condition still satisfied?"""
    if reg == CRASH:
        return trend <= -1.0 and dd >= 0.03
    if reg == BULL_RUN:
        return trend >= 2.5
    if reg == VOLATILE:
        return vol_ratio >= 1.5
    if reg == TRENDING:
        return abs(trend) >= 1.5
    if reg == RECOVERY:
        return trend >= 1.0 and dd >= 0.01
    return False                  # NORMAL has no condition of its own to hold it


@njit(cache=True)
def _step(raw, reg, cand, cand_n, dwell, trend, vol_ratio, dd):
    """The hysteresis for one minute whose raw regime is ``raw``: (reg, cand, cand_n, dwell)
    after it (the rules in the module docstring)."""
    dwell += 1
    if raw == reg:
        cand_n = 0
    else:
        if raw == cand:
            cand_n += 1
        else:
            cand = raw
            cand_n = 1
        escalate = SEVERITY[cand] > SEVERITY[reg]
        if cand_n >= CONFIRM and (escalate or (dwell >= MIN_DWELL and not _holds(reg, trend, vol_ratio, dd))):
            reg = cand
            cand_n = 0
            dwell = 0
    return reg, cand, cand_n, dwell


@njit(cache=True)
def detect(close, out_regime, out_trend, out_vol_ratio, out_dd):
    n = close.shape[0]
    logc = np.log(close)
    r = np.zeros(n)
    r[1:] = logc[1:] - logc[:-1]
    vol = np.full(n, np.nan)
    for t in range(VOL_WIN, n):
        vol[t] = np.std(r[t - VOL_WIN + 1:t + 1])
    csum = np.zeros(n + 1)          # running sums of vol for the 7-day mean (O(n))
    ccnt = np.zeros(n + 1)
    for t in range(n):
        ok = not np.isnan(vol[t])
        csum[t + 1] = csum[t] + (vol[t] if ok else 0.0)
        ccnt[t + 1] = ccnt[t] + (1.0 if ok else 0.0)
    reg = NORMAL
    cand = NORMAL
    cand_n = 0
    dwell = 0
    for t in range(n):
        v = vol[t]
        out_regime[t] = NORMAL
        out_trend[t] = np.nan
        out_vol_ratio[t] = np.nan
        out_dd[t] = np.nan
        if t < TREND_WIN or np.isnan(v) or v <= 0:
            continue
        lo = t - REF_WIN + 1 if t >= REF_WIN else 0
        cnt = ccnt[t + 1] - ccnt[lo]
        ref = (csum[t + 1] - csum[lo]) / cnt if cnt > 0 else 0.0
        vr = v / ref if ref > 0 else 1.0
        tr = (logc[t] - logc[t - TREND_WIN]) / (v * np.sqrt(TREND_WIN))
        hi = np.max(close[max(0, t - DD_WIN + 1):t + 1])
        dd = 1.0 - close[t] / hi
        out_trend[t] = tr
        out_vol_ratio[t] = vr
        out_dd[t] = dd
        reg, cand, cand_n, dwell = _step(_raw(tr, vr, dd, reg), reg, cand, cand_n, dwell, tr, vr, dd)
        out_regime[t] = reg
    return n


def detect_regimes(close: np.ndarray) -> dict:
    """Regime per minute and the measures behind it (NaN before enough history)."""
    c = np.asarray(close, dtype=np.float64)
    n = c.size
    out = {"regime": np.zeros(n, np.int64), "trend": np.empty(n), "vol_ratio": np.empty(n),
           "drawdown": np.empty(n)}
    detect(c, out["regime"], out["trend"], out["vol_ratio"], out["drawdown"])
    return out


_warm = False


def warmup() -> None:
    """Compile the detector now (numba; from its disk cache when there is one) instead of
    at the first closed minute, inside the trading loop: a cold compile takes seconds."""
    global _warm
    if not _warm:
        detect_regimes(np.linspace(100.0, 101.0, 8))
        _warm = True


def regime_table(ts_ns: np.ndarray, regime: np.ndarray) -> dict:
    """Share of time in each regime, number of transitions, transitions per day."""
    n = regime.size
    days = (ts_ns[-1] - ts_ns[0]) / 86_400e9 if n > 1 else 0.0
    trans = int(np.sum(regime[1:] != regime[:-1]))
    return {"minutes": int(n), "days": round(days, 2),
            "share": {NAMES[k]: round(float(np.mean(regime == k)), 4) for k in range(6)},
            "transitions": trans, "transitions_per_day": round(trans / days, 2) if days else None}


def plot_regimes(ts_ns, close, regime, path: str, title: str = "") -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection
    import matplotlib.dates as mdates
    colors = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860"]
    t = mdates.date2num(ts_ns.astype("datetime64[ns]").astype("datetime64[ms]").astype(object))
    pts = np.column_stack([t, close])
    segs = np.stack([pts[:-1], pts[1:]], axis=1)
    fig, ax = plt.subplots(figsize=(13, 5))
    lc = LineCollection(segs, colors=[colors[k] for k in regime[1:]], linewidths=0.8)
    ax.add_collection(lc)
    ax.set_xlim(t[0], t[-1])
    ax.set_ylim(close.min() * 0.995, close.max() * 1.005)
    ax.xaxis_date()
    for k, name in enumerate(NAMES):
        ax.plot([], [], color=colors[k], label=f"{name} ({np.mean(regime == k):.0%})")
    ax.legend(loc="upper left", fontsize=8, ncol=3)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@njit(cache=True)
def _minute(c, t, csum_lo, ccnt_lo, csum_prev, ccnt_prev, hyst):
    """``detect``'s work for one more minute t, carried over from the minute before instead
    of recomputed from the first: ``c`` the last min(t + 1, DD_WIN) closes (c[-1] the close
    of minute t), ``csum_prev``/``ccnt_prev`` the running sums of vol and of its count over
    minutes 0..t-1 and ``csum_lo``/``ccnt_lo`` those over 0..t-REF_WIN (0 before), ``hyst``
    [reg, cand, cand_n, dwell] updated in place. The same arithmetic in the same order as
    ``detect``, so the same answers. Returns (regime of minute t, vol sum, count) after it."""
    v = np.nan
    if t >= VOL_WIN:
        lc = np.log(c[c.shape[0] - VOL_WIN - 1:])
        v = np.std(lc[1:] - lc[:-1])
    ok = not np.isnan(v)
    csum = csum_prev + (v if ok else 0.0)
    ccnt = ccnt_prev + (1.0 if ok else 0.0)
    if t < TREND_WIN or np.isnan(v) or v <= 0:
        return NORMAL, csum, ccnt
    reg, cand, cand_n, dwell = hyst[0], hyst[1], hyst[2], hyst[3]
    cnt = ccnt - ccnt_lo
    ref = (csum - csum_lo) / cnt if cnt > 0 else 0.0
    vr = v / ref if ref > 0 else 1.0
    n = c.shape[0]
    tr = (np.log(c[n - 1]) - np.log(c[n - 1 - TREND_WIN])) / (v * np.sqrt(TREND_WIN))
    dd = 1.0 - c[n - 1] / np.max(c)
    reg, cand, cand_n, dwell = _step(_raw(tr, vr, dd, reg), reg, cand, cand_n, dwell, tr, vr, dd)
    hyst[0], hyst[1], hyst[2], hyst[3] = reg, cand, cand_n, dwell
    return reg, csum, ccnt


class OnlineRegime:
    """Regimes as market time passes: 1-minute closes of the mid built from (time, mid)
    updates, the detector advanced by one minute at every closed minute (``_minute``: the
    same answers as ``detect_regimes`` over ``history`` (earlier 1-minute closes, e.g. from
    candles) plus every minute seen, in constant time and memory: the last day of closes
    and a week of volatility sums, not a list growing for as long as the engine runs and
    the whole of it run through the detector every minute). ``on_mid`` returns the new
    regime when it changes, else None. With less history than the detector needs it stays
    NORMAL."""

    def __init__(self, history=None):
        warmup()
        self._buf = np.empty(2 * DD_WIN)              # closes, the last day of them at [_n - DD_WIN, _n)
        self._n = 0
        # running (vol sum, count) of the minutes before each of the last REF_WIN minutes, the newest last
        self.sums = deque([(0.0, 0.0)], maxlen=REF_WIN)
        self.hyst = np.array([NORMAL, NORMAL, 0, 0], np.int64)
        self.t = -1                                   # minutes closed so far - 1
        self.minute = -1
        self.last_mid = 0.0
        self.regime = NORMAL
        self.changes = 0
        for c in (np.asarray(history, np.float64) if history is not None else ()):
            self._close(float(c))     # the regime reported stays NORMAL until the first minute closes here

    @property
    def closes(self) -> np.ndarray:
        """The last day of 1-minute closes (at most DD_WIN), the newest last (a view)."""
        return self._buf[max(0, self._n - DD_WIN):self._n]

    def _close(self, close: float) -> int:
        if self._n == self._buf.size:                 # full: the last day moved to the front
            self._buf[:DD_WIN - 1] = self._buf[self._n - DD_WIN + 1:self._n]
            self._n = DD_WIN - 1
        self._buf[self._n] = close
        self._n += 1
        self.t += 1
        lo_sum, lo_cnt = self.sums[0] if self.t >= REF_WIN else (0.0, 0.0)    # minutes before t - REF_WIN + 1
        prev_sum, prev_cnt = self.sums[-1]
        r, s, n = _minute(self.closes, self.t, lo_sum, lo_cnt, prev_sum, prev_cnt, self.hyst)
        self.sums.append((s, n))
        return int(r)

    def on_mid(self, t_ns: int, mid: float):
        m = t_ns // 60_000_000_000
        changed = None
        if self.minute >= 0 and m != self.minute:
            r = self._close(self.last_mid)
            if r != self.regime:
                self.regime = changed = r
                self.changes += 1
        self.minute = m
        self.last_mid = mid
        return changed
