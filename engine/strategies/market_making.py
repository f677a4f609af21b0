"""Market making around an Avellaneda-Stoikov reservation price.

In ticks and lots: reservation r = mid - q * gamma * sigma^2 * tau, half-spread
h = (gamma * sigma^2 * tau + (2 / gamma) * ln(1 + gamma / kappa)) / 2, where q is the
inventory in lots, sigma the mid's volatility in ticks per sqrt(second) (from the 60-s
realised volatility feature), tau the horizon in seconds, kappa the order-flow intensity
decay per tick. A model signal in [-1, 1] moves r by ``skew_ticks`` x signal. Quotes are
post-only, one bid and one ask of ``quote_lots``, never crossing the touch; a side is
dropped at the inventory limit. A quote is replaced only when its price moves by at least
``min_change_ticks`` or its size changes (no churn). Nothing is quoted until the features
it uses (rvol_60s and the six book features) are ready and the book is valid.

Units: with BTCUSDT (tick 0.10) a 1-minute volatility of 0.05% is ~39 ticks per
sqrt(second), sigma^2 ~ 1,500; gamma = 1e-4 then gives a half-spread of ~1.4 ticks and moves
the reservation price ~1.5 ticks per lot held for tau = 10 s.
"""
from __future__ import annotations

import math

import numpy as np

from engine import schema

USES = np.array([3, 10, 11, 12, 13, 14, 15])     # rvol_60s and the book features


class MarketMaker:
    def __init__(self, inst: int, tick_size: float, *, quote_lots: int = 10, max_inventory_lots: int = 50,
                 gamma: float = 1e-4, kappa: float = 1.5, horizon_s: float = 10.0, skew_ticks: float = 2.0,
                 min_change_ticks: int = 2, reject_backoff_ms: int = 1000, strategy_id: int = 1,
                 client_id_base: int = 1 << 40):
        if quote_lots <= 0 or max_inventory_lots < quote_lots or gamma <= 0 or kappa <= 0 or horizon_s <= 0:
            raise ValueError("MarketMaker: quote_lots > 0, max_inventory_lots >= quote_lots, gamma, kappa, horizon_s > 0")
        self.inst, self.tick = inst, tick_size
        self.quote_lots, self.max_inv = quote_lots, max_inventory_lots
        self.gamma, self.kappa, self.tau = gamma, kappa, horizon_s
        self.skew, self.min_change = skew_ticks, min_change_ticks
        self.strategy_id = strategy_id
        self.next_id = client_id_base
        self.owner = client_id_base >> 40       # client ids [base, base + 2^40) are ours
        self.inventory = 0
        self.quotes = {schema.SIDE_BUY: None, schema.SIDE_SELL: None}   # side -> (client_id, px, lots)
        self.quotes_sent = 0
        self.cancels_sent = 0
        self.backoff_ns = reject_backoff_ms * 1_000_000
        self.quiet_until = 0          # after a rejection: no new quotes before this time
        self.now = 0

    # ---------------------------------------------------------------- intents
    def _intent(self, action: int, side: int, px: int, lots: int, ts: int, ref: int = 0, score: float = 0.0):
        a = np.zeros(1, schema.ORDER_DTYPE)
        a["action"], a["side"], a["otype"], a["inst"] = action, side, schema.OT_POST_ONLY, self.inst
        a["client_id"] = self.next_id
        a["ref_client_id"] = ref
        a["px"], a["qty"], a["strategy"], a["score"], a["event_ts"] = px, lots, self.strategy_id, score, ts
        self.next_id += 1
        return a

    def quote_prices(self, mid_ticks: float, sigma_ticks: float, signal: float = 0.0) -> tuple[float, float]:
        g, s2 = self.gamma, sigma_ticks * sigma_ticks
        r = mid_ticks - self.inventory * g * s2 * self.tau + self.skew * max(-1.0, min(1.0, signal))
        half = 0.5 * (g * s2 * self.tau + (2.0 / g) * math.log(1.0 + g / self.kappa))
        return r - half, r + half

    def on_market(self, ts_ns: int, best_bid: int, best_ask: int, features: np.ndarray, ready: np.ndarray,
                  book_valid: bool, signal: float = 0.0) -> list[np.ndarray]:
        """New quotes (and cancels of the ones they replace) for the current market."""
        out: list[np.ndarray] = []
        self.now = ts_ns
        if not book_valid or not ready[USES].all() or best_bid <= 0 or best_ask <= best_bid:
            for side, q in self.quotes.items():       # cannot quote safely: pull quotes
                if q is not None:
                    out.append(self._intent(schema.ACT_CANCEL, side, q[1], 0, ts_ns, ref=q[0]))
                    self.cancels_sent += 1
                    self.quotes[side] = None
            return out
        mid = 0.5 * (best_bid + best_ask)
        sigma = features[3] / math.sqrt(60.0) * mid        # rvol_60s -> ticks per sqrt(second)
        lo, hi = self.quote_prices(mid, sigma, signal)
        want = {schema.SIDE_BUY: (min(int(math.floor(lo)), best_ask - 1),
                                  self.quote_lots if self.inventory + self.quote_lots <= self.max_inv else 0),
                schema.SIDE_SELL: (max(int(math.ceil(hi)), best_bid + 1),
                                   self.quote_lots if self.inventory - self.quote_lots >= -self.max_inv else 0)}
        for side, (px, lots) in want.items():
            cur = self.quotes[side]
            if cur is not None and lots and abs(cur[1] - px) < self.min_change and cur[2] == lots:
                continue
            if cur is not None:
                out.append(self._intent(schema.ACT_CANCEL, side, cur[1], 0, ts_ns, ref=cur[0]))
                self.cancels_sent += 1
                self.quotes[side] = None
            if lots and ts_ns >= self.quiet_until:
                it = self._intent(schema.ACT_NEW, side, px, lots, ts_ns, score=signal)
                self.quotes[side] = (int(it["client_id"][0]), px, lots)
                self.quotes_sent += 1
                out.append(it)
        return out

    # ---------------------------------------------------------------- fills
    def on_exec(self, e) -> None:
        kind = int(e["kind"])
        cid = int(e["client_id"])
        if cid >> 40 != self.owner:
            return
        if kind in (schema.EX_PARTIAL, schema.EX_FILL):
            q = int(e["qty"])
            self.inventory += q if int(e["side"]) == schema.SIDE_BUY else -q
        if kind == schema.EX_REJECT:
            self.quiet_until = self.now + self.backoff_ns      # do not hammer a gate that said no
        if kind in (schema.EX_FILL, schema.EX_CANCELED, schema.EX_EXPIRED, schema.EX_REJECT):
            for side, cur in self.quotes.items():
                if cur is not None and cur[0] == cid:
                    self.quotes[side] = None
