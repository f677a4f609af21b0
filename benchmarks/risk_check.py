#!/usr/bin/env python
"""RiskGate.check per intent, all seven layers and the filters on (an accepted order
walks every layer), from Python as the risk process calls it.

    python benchmarks/risk_check.py

Cases: an accepted 2-instrument check; a rejection at the first layer (the cheapest path);
an accepted check with 16 instruments held (layers 2, 3 and 6 loop over them, VaR is
O(n^2)). The alternative measured in the same run is the bare cost of a Python call that
does nothing with the same arguments (the floor any Python-called gate pays).
Excluded: building the state.
"""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import emit, host, latency_stats  # noqa: E402

from cext.risk import RiskGate, RiskState  # noqa: E402
from engine import schema  # noqa: E402
from engine.risk.limits import RiskLimits  # noqa: E402
from engine.testing.risk import NOW, intent, make_state  # noqa: E402

N = 200_000


def timed(fn, *args):
    lat = np.empty(N, np.int64)
    pc = time.perf_counter_ns
    for k in range(N):
        t0 = pc()
        fn(*args)
        lat[k] = pc() - t0
    return lat


def big_state(n):
    st = RiskState(n)
    st.equity = st.peak_equity = st.day_start_equity = 1_000_000.0
    for i in range(n):
        st.configure(i, tick_size=0.1, lot_size=0.001, min_notional=100.0, leverage=3.0)
        st.set_market(i, mark_px=600_000, mark_ns=NOW, data_ns=NOW)
        st.set_vol(i, 0.03)
        st.set_position(i, 5)                # 16 open positions, the order adds to one
    c = np.full((n, n), 0.3)
    np.fill_diagonal(c, 1.0)
    st.set_correlation(c)
    return st


def main():
    h = host()
    lim = RiskLimits(order_rate=1e12, order_burst=1e12,      # the rate bucket never empties in a loop
                     regime_profiles=tuple(p.__class__(position_mult=p.position_mult, stop_mult=p.stop_mult,
                                                       risk_per_trade=p.risk_per_trade, max_positions=20)
                                           for p in RiskLimits().regime_profiles))
    g = RiskGate(lim)
    st = make_state()
    it = intent(qty=10)

    def accepted(gate, state, i):
        gate.check(i, state, NOW)
        state.set_open_orders(0, 0, 0)        # keep the state identical between calls

    lat = timed(accepted, g, st, it)
    base = {"bench": "risk_check", "unit": "ns", "excluded": "state construction"}
    emit({**base, "case": "check accepted, 2 instruments, all layers (+ set_open_orders reset)", **latency_stats(lat)}, h)
    rej = intent(qty=100_000)
    emit({**base, "case": "check rejected at layer 1", **latency_stats(timed(g.check, rej, st, NOW))}, h)
    bst = big_state(16)
    lat = timed(accepted, g, bst, it)
    emit({**base, "case": "check accepted, 16 instruments held, all layers", **latency_stats(lat)}, h)

    def noop(a, b, c):
        return None

    emit({**base, "case": "Python call floor: noop(intent, state, now)", "vs": "check accepted",
          **latency_stats(timed(noop, it, st, NOW))}, h)
    s = g.stats()
    assert s["accepted"] == 2 * N and s["rejected"] == {"position_size": N}, s


if __name__ == "__main__":
    main()
