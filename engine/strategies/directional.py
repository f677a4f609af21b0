"""Directional strategies on the 25 features: mean reversion and momentum breakout.

Both trade one instrument with IOC limit orders at the touch (enter and exit), hold at most
one position, take time from the messages, and wait a second after a rejection. ``signal`` is the model's score in [-1, 1]
(0 without a model): mean reversion needs it not to disagree (confirmation), momentum uses
it as a veto the same way. Nothing is sent unless the features used are ready.

Mean reversion: enter long when RSI(14) < ``rsi_low`` and the mid is below the lower
Bollinger band (bb_pos < 0); short on the mirror image. Exit when the mid touches the band's
middle (bb_pos crosses 0.5), at a stop of ``stop_sigmas`` x the 60-s volatility, or after
``max_hold_s``.

Momentum breakout: enter in the direction of a 10-s move larger than ``breakout_sigmas`` x
the 60-s volatility, confirmed by a volume spike (vol_spike >= ``spike_min``) and trade flow
on the same side; exit on a trailing stop of ``trail_sigmas`` x volatility from the best mid
since entry, or after ``max_hold_s``.
"""
from __future__ import annotations

import math

import numpy as np

from engine import schema

IDX = {n: i for i, n in enumerate(("ret_1s", "ret_10s", "mom_60s", "rvol_60s", "accel_10s", "vol_60s", "vol_chg",
                                   "vwap_dev_60s", "vol_spike", "flow_imb_10s", "best_bid", "best_ask", "bid_qty",
                                   "ask_qty", "spread_bps", "book_imb_5", "rsi_14", "macd", "macd_signal",
                                   "macd_hist", "stoch_k", "stoch_d", "bb_width", "bb_pos", "willr_14"))}


class _OneShot:
    """Shared plumbing: one position at a time, IOC orders at the touch, fills tracked."""

    uses: tuple = ()

    def __init__(self, inst: int, *, lots: int, strategy_id: int, max_hold_s: float, client_id_base: int):
        if lots <= 0 or max_hold_s <= 0:
            raise ValueError("lots and max_hold_s must be positive")
        self.inst, self.lots, self.strategy_id = inst, lots, strategy_id
        self.max_hold_ns = int(max_hold_s * 1e9)
        self.next_id = client_id_base
        self.owner = client_id_base >> 40       # client ids [base, base + 2^40) are ours
        self.position = 0
        self.entry_ts = 0
        self.entry_mid = 0.0
        self.pending = 0          # client id of an order in flight (one at a time)
        self.size_mult = 1.0      # set by a regime switcher
        self.enabled = True
        self.entries = self.exits = 0
        self.uses_idx = np.array([IDX[n] for n in self.uses])
        self.now = 0
        self.quiet_until = 0            # after a rejection: wait before trying again
        self.backoff_ns = 1_000_000_000

    def _order(self, side: int, px: int, lots: int, ts: int, reduce: bool, score: float) -> np.ndarray:
        a = np.zeros(1, schema.ORDER_DTYPE)
        a["action"], a["side"], a["otype"], a["inst"] = schema.ACT_NEW, side, schema.OT_IOC, self.inst
        a["flags"] = schema.OF_REDUCE_ONLY if reduce else 0
        a["client_id"], a["px"], a["qty"], a["strategy"], a["score"], a["event_ts"] = \
            self.next_id, px, lots, self.strategy_id, score, ts
        self.pending = self.next_id
        self.next_id += 1
        return a

    def _enter(self, direction: int, bb: int, ba: int, ts: int, mid: float, score: float):
        lots = max(1, int(self.lots * self.size_mult))
        self.entries += 1
        self.entry_ts, self.entry_mid = ts, mid
        return [self._order(schema.SIDE_BUY if direction > 0 else schema.SIDE_SELL, ba if direction > 0 else bb,
                            lots, ts, False, score)]

    def _exit(self, bb: int, ba: int, ts: int):
        self.exits += 1
        long = self.position > 0
        return [self._order(schema.SIDE_SELL if long else schema.SIDE_BUY, bb if long else ba, abs(self.position),
                            ts, True, 0.0)]

    def on_exec(self, e) -> None:
        if int(e["client_id"]) >> 40 != self.owner:
            return
        kind = int(e["kind"])
        if kind in (schema.EX_PARTIAL, schema.EX_FILL):
            q = int(e["qty"])
            self.position += q if int(e["side"]) == schema.SIDE_BUY else -q
        if kind == schema.EX_REJECT:
            self.quiet_until = self.now + self.backoff_ns
        if int(e["client_id"]) == self.pending and kind in (schema.EX_FILL, schema.EX_CANCELED, schema.EX_EXPIRED,
                                                             schema.EX_REJECT):
            self.pending = 0

    def _ready(self, ts, valid, bb, ba, ready) -> bool:
        self.now = ts
        return (valid and bb > 0 and ba > bb and bool(ready[self.uses_idx].all()) and not self.pending
                and ts >= self.quiet_until)


class MeanReversion(_OneShot):
    uses = ("rsi_14", "bb_pos", "bb_width", "rvol_60s", "best_bid", "best_ask")

    def __init__(self, inst: int, *, lots: int = 10, rsi_low: float = 25.0, rsi_high: float = 75.0,
                 stop_sigmas: float = 2.0, max_hold_s: float = 120.0, strategy_id: int = 2,
                 client_id_base: int = 2 << 40):
        super().__init__(inst, lots=lots, strategy_id=strategy_id, max_hold_s=max_hold_s, client_id_base=client_id_base)
        self.rsi_low, self.rsi_high, self.stop_sigmas = rsi_low, rsi_high, stop_sigmas

    def on_market(self, ts, bb, ba, f, ready, valid, signal: float = 0.0):
        if not self._ready(ts, valid, bb, ba, ready):
            return []
        mid = 0.5 * (bb + ba)
        if self.position:
            long = self.position > 0
            stop = self.stop_sigmas * f[IDX["rvol_60s"]] * self.entry_mid
            adverse = (self.entry_mid - mid) if long else (mid - self.entry_mid)
            touched = f[IDX["bb_pos"]] >= 0.5 if long else f[IDX["bb_pos"]] <= 0.5
            if touched or adverse > stop or ts - self.entry_ts > self.max_hold_ns:
                return self._exit(bb, ba, ts)
            return []
        if not self.enabled:
            return []
        rsi, pos = f[IDX["rsi_14"]], f[IDX["bb_pos"]]
        if rsi < self.rsi_low and pos < 0 and signal >= 0:
            return self._enter(+1, bb, ba, ts, mid, signal)
        if rsi > self.rsi_high and pos > 1 and signal <= 0:
            return self._enter(-1, bb, ba, ts, mid, signal)
        return []


class MomentumBreakout(_OneShot):
    uses = ("ret_10s", "rvol_60s", "vol_spike", "flow_imb_10s", "best_bid", "best_ask")

    def __init__(self, inst: int, *, lots: int = 10, breakout_sigmas: float = 1.0, spike_min: float = 2.0,
                 flow_min: float = 0.3, trail_sigmas: float = 1.0, max_hold_s: float = 300.0, strategy_id: int = 3,
                 client_id_base: int = 3 << 40):
        super().__init__(inst, lots=lots, strategy_id=strategy_id, max_hold_s=max_hold_s, client_id_base=client_id_base)
        self.k, self.spike_min, self.flow_min, self.trail = breakout_sigmas, spike_min, flow_min, trail_sigmas
        self.best_mid = 0.0

    def on_market(self, ts, bb, ba, f, ready, valid, signal: float = 0.0):
        if not self._ready(ts, valid, bb, ba, ready):
            return []
        mid = 0.5 * (bb + ba)
        vol = f[IDX["rvol_60s"]]
        if self.position:
            long = self.position > 0
            self.best_mid = max(self.best_mid, mid) if long else min(self.best_mid, mid)
            giveback = (self.best_mid - mid) if long else (mid - self.best_mid)
            if giveback > self.trail * vol * self.entry_mid or ts - self.entry_ts > self.max_hold_ns:
                return self._exit(bb, ba, ts)
            return []
        if not self.enabled:
            return []
        r10, spike, flow = f[IDX["ret_10s"]], f[IDX["vol_spike"]], f[IDX["flow_imb_10s"]]
        move = self.k * vol / math.sqrt(6.0)          # 60-s vol scaled to 10 s
        if spike >= self.spike_min and move > 0:
            if r10 > move and flow >= self.flow_min and signal >= 0:
                self.best_mid = mid
                return self._enter(+1, bb, ba, ts, mid, signal)
            if r10 < -move and flow <= -self.flow_min and signal <= 0:
                self.best_mid = mid
                return self._enter(-1, bb, ba, ts, mid, signal)
        return []
