"""Trading states and the automatic responses (off the hot path).

ACTIVE -> REDUCING (only orders that cut exposure pass) -> HALTED (only cancels pass), each
change recorded with its reason and time, and logged. Responses, from ``evaluate(now)``:
- drawdown from peak >= reduce_at_drawdown: REDUCING; >= max_drawdown: HALTED
- loss since the day's start >= max_daily_loss: HALTED
- consecutive losing trades >= max_consecutive_losses: cool-down for cooldown_s (the gate
  refuses new exposure until it ends), the loss count starts again
- market data older than max_data_age_s on an instrument we trade: HALTED; when the data is
  fresh again and nothing else holds the halt, back to ACTIVE
- exchange error storm (>= error_storm_n errors within error_storm_s): HALTED
- kill switch: REDUCING with the kill flag (only reduce-only orders that cut exposure pass),
  ``kill_switch()`` returns the cancels and reduce-only market orders that flatten; once
  flat, HALTED.
Manual ``halt``, ``reduce``, ``resume`` are the admin commands' entry points.
"""
from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

import numpy as np

from cext.risk import RiskState
from engine import schema
from engine.risk.limits import RiskLimits

log = logging.getLogger("cryptoscalp.risk")

STATE_NAMES = {schema.TS_ACTIVE: "ACTIVE", schema.TS_REDUCING: "REDUCING", schema.TS_HALTED: "HALTED"}


@dataclass(frozen=True)
class Transition:
    time_ns: int
    old: str
    new: str
    reason: str


class TradingMonitor:
    def __init__(self, limits: RiskLimits, state: RiskState, error_storm_n: int = 20,
                 error_storm_s: float = 60.0):
        self.limits = limits
        self.state = state
        self.transitions: list[Transition] = []
        self.reasons: set[str] = set()            # what currently holds the state down
        self.error_storm_n, self.error_storm_s = error_storm_n, error_storm_s
        self._errors: deque[int] = deque()
        self._losses_seen = 0

    # ---------------------------------------------------------------- transitions
    def _set(self, new: int, reason: str, now_ns: int) -> None:
        old = self.state.trading_state
        if old == new:
            return
        self.state.trading_state = new
        t = Transition(now_ns, STATE_NAMES[old], STATE_NAMES[new], reason)
        self.transitions.append(t)
        log.warning("trading state %s -> %s: %s", t.old, t.new, reason)

    def halt(self, reason: str, now_ns: int) -> None:
        self.reasons.add(reason)
        self._set(schema.TS_HALTED, reason, now_ns)

    def reduce(self, reason: str, now_ns: int) -> None:
        self.reasons.add(reason)
        if self.state.trading_state != schema.TS_HALTED:
            self._set(schema.TS_REDUCING, reason, now_ns)

    def hold(self, reason: str, now_ns: int) -> None:
        """HALTED while a condition lasts (the user stream reconnecting and reconciling, a
        stale feed): ``release`` with the same reason lifts it, and the state goes back to
        ACTIVE when nothing else holds it down."""
        self.halt(reason, now_ns)

    def release(self, reason: str, now_ns: int) -> None:
        if reason not in self.reasons:
            return
        self.reasons.discard(reason)
        if not self.reasons and not self.state.kill_switch:
            self._set(schema.TS_ACTIVE, f"{reason}: over", now_ns)

    def resume(self, now_ns: int, reason: str = "manual resume") -> None:
        """Back to ACTIVE (admin). The kill switch is cleared too; automatic conditions
        that still hold put the state back down on the next evaluate()."""
        self.reasons.clear()
        self.state.kill_switch = False
        self._set(schema.TS_ACTIVE, reason, now_ns)

    # ---------------------------------------------------------------- responses
    def on_exchange_error(self, now_ns: int) -> None:
        self._errors.append(now_ns)

    def evaluate(self, now_ns: int, consecutive_losses: int = 0, data_ns: dict[int, int] | None = None,
                 traded: set[int] | None = None) -> None:
        st, lim = self.state, self.limits
        eq = st.equity
        if st.peak_equity > 0:
            dd = (st.peak_equity - eq) / st.peak_equity
            if dd >= lim.max_drawdown:
                self.halt(f"drawdown {dd:.4f} >= max_drawdown {lim.max_drawdown}", now_ns)
            elif dd >= lim.reduce_at_drawdown:
                self.reduce(f"drawdown {dd:.4f} >= reduce_at_drawdown {lim.reduce_at_drawdown}", now_ns)
        if st.day_start_equity > 0:
            loss = (st.day_start_equity - eq) / st.day_start_equity
            if loss >= lim.max_daily_loss:
                self.halt(f"daily loss {loss:.4f} >= max_daily_loss {lim.max_daily_loss}", now_ns)
        if consecutive_losses >= lim.max_consecutive_losses and consecutive_losses != self._losses_seen:
            st.cooldown_until_ns = now_ns + int(lim.cooldown_s * 1e9)
            self._losses_seen = consecutive_losses
            self.transitions.append(Transition(now_ns, STATE_NAMES[st.trading_state], STATE_NAMES[st.trading_state],
                                               f"{consecutive_losses} consecutive losses: cool-down {lim.cooldown_s:.0f} s"))
            log.warning("%d consecutive losses: no new exposure for %.0f s", consecutive_losses, lim.cooldown_s)
        elif consecutive_losses < lim.max_consecutive_losses:
            self._losses_seen = 0
        # stale feed
        stale = [i for i, t in (data_ns or {}).items()
                 if (traded is None or i in traded) and now_ns - t > lim.max_data_age_s * 1e9]
        if stale:
            self.hold("stale feed", now_ns)
        else:
            self.release("stale feed", now_ns)
        # error storm
        while self._errors and now_ns - self._errors[0] > self.error_storm_s * 1e9:
            self._errors.popleft()
        if len(self._errors) >= self.error_storm_n:
            self.halt(f"exchange error storm: {len(self._errors)} errors in {self.error_storm_s:.0f} s", now_ns)

    def kill_switch(self, now_ns: int, positions: dict[int, int], open_orders: set[int],
                    client_id_base: int) -> np.ndarray:
        """Engage the kill switch: returns the intents (ORDER_DTYPE) that cancel everything
        and flatten with reduce-only market orders. They pass the gate (cancels always,
        the flatten orders because they cut exposure)."""
        self.state.kill_switch = True
        self.reasons.add("kill switch")
        self._set(schema.TS_REDUCING, "kill switch: cancel all and flatten", now_ns)
        out = []
        for inst in sorted(open_orders):
            r = np.zeros(1, schema.ORDER_DTYPE)
            r["action"], r["inst"] = schema.ACT_CANCEL_ALL, inst
            out.append(r)
        for inst, qty in sorted(positions.items()):
            if qty == 0:
                continue
            r = np.zeros(1, schema.ORDER_DTYPE)
            r["action"], r["inst"], r["otype"], r["flags"] = schema.ACT_NEW, inst, schema.OT_MARKET, schema.OF_REDUCE_ONLY
            r["side"] = schema.SIDE_SELL if qty > 0 else schema.SIDE_BUY
            r["qty"] = abs(qty)
            out.append(r)
        for k, r in enumerate(out):
            r["client_id"] = client_id_base + k
        return np.concatenate(out) if out else np.zeros(0, schema.ORDER_DTYPE)

    def on_flat(self, now_ns: int) -> None:
        """After a kill switch: everything is flat, halt."""
        if self.state.kill_switch:
            self.halt("kill switch: flat", now_ns)
