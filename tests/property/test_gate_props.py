"""Random intent streams against random market states: no accepted order ever breaches a
limit (position, exposure, leverage, notional, rate), and HALTED passes only cancels.
The limits are recomputed here from first principles (an oracle independent of the gate)."""
import numpy as np
from hypothesis import given, settings, strategies as st

from engine import schema
from engine.risk.limits import RiskLimits
from engine.testing.risk import BTC, ETH, NOW, intent, make_gate, make_state

LOTVAL = {BTC: 0.1 * 0.001, ETH: 0.01 * 0.001}
MARK = {BTC: 600_000, ETH: 300_000}
MIN_NOTIONAL = {BTC: 100.0, ETH: 20.0}

intents = st.lists(st.tuples(
    st.sampled_from([BTC, ETH]),
    st.sampled_from([schema.SIDE_BUY, schema.SIDE_SELL]),
    st.integers(1, 400),                                   # qty lots
    st.integers(-400, 400),                                # px offset from mark, ticks
    st.sampled_from([schema.OT_LIMIT, schema.OT_POST_ONLY, schema.OT_IOC, schema.OT_MARKET]),
    st.sampled_from([schema.ACT_NEW, schema.ACT_NEW, schema.ACT_NEW, schema.ACT_CANCEL]),
    st.booleans(),                                         # reduce-only flag
    st.integers(0, 300_000_000),                           # ns since the previous intent
    st.booleans(),                                         # fill it at once if accepted
), min_size=1, max_size=80)


@settings(max_examples=300, deadline=None)
@given(stream=intents,
       pos=st.tuples(st.integers(-300, 300), st.integers(-3000, 3000)),
       equity=st.floats(20_000, 500_000),
       regime=st.integers(0, 5),
       state=st.sampled_from([schema.TS_ACTIVE, schema.TS_ACTIVE, schema.TS_REDUCING, schema.TS_HALTED]),
       corr=st.floats(-1, 1),
       vol=st.floats(0.005, 0.12))
def test_no_accepted_order_breaches_a_limit(stream, pos, equity, regime, state, corr, vol):
    lim = RiskLimits()
    g = make_gate()
    s = make_state(equity=equity, vol=vol, corr=corr)
    s.regime = regime
    s.trading_state = state
    position = {BTC: pos[0], ETH: pos[1]}
    for i in (BTC, ETH):
        s.set_position(i, position[i])
    open_ = {BTC: [0, 0], ETH: [0, 0]}       # lots resting per side, as the gate counts them
    now = NOW
    accepted_times = []
    for inst, side, qty, off, otype, action, ro, dt, fill in stream:
        now += dt
        s.set_market(BTC, mark_px=MARK[BTC], mark_ns=now, data_ns=now)
        s.set_market(ETH, mark_px=MARK[ETH], mark_ns=now, data_ns=now)
        it = intent(inst=inst, side=side, qty=qty, px=MARK[inst] + off, otype=otype, action=action,
                    flags=schema.OF_REDUCE_ONLY if ro else 0)
        ok, _ = g.check(it, s, now)
        if not ok:
            continue
        if state == schema.TS_HALTED:
            assert action == schema.ACT_CANCEL, "HALTED let a non-cancel through"
        if action == schema.ACT_CANCEL:
            continue
        accepted_times.append(now)
        dq = qty if side == schema.SIDE_BUY else -qty
        p = position[inst]
        reduces = p != 0 and np.sign(dq) == -np.sign(p) and (p + dq == 0 or np.sign(p + dq) == np.sign(p))
        if state == schema.TS_REDUCING:
            assert reduces, "REDUCING let an order through that does not cut exposure"
        px = MARK[inst] if otype == schema.OT_MARKET else MARK[inst] + off
        if not ro:
            assert qty * px * LOTVAL[inst] >= MIN_NOTIONAL[inst] - 1e-9
        assert abs(px - MARK[inst]) / MARK[inst] <= lim.price_band + 1e-12
        if not reduces:
            worst = p + dq + (open_[inst][0] if dq > 0 else -open_[inst][1])
            mult = min(1.0, lim.regime_profiles[regime].position_mult)
            assert abs(worst) * MARK[inst] * LOTVAL[inst] / equity <= lim.max_position_size * mult + 1e-9
            gross = 0.0
            for j in (BTC, ETH):
                if j == inst:
                    gross += abs(worst) * MARK[j] * LOTVAL[j]
                else:
                    gross += (abs(position[j]) + max(open_[j])) * MARK[j] * LOTVAL[j]
            assert gross / equity <= lim.max_total_exposure + 1e-9
            assert gross / equity <= lim.max_leverage + 1e-9
        # the venue's answer: filled now, or resting
        if fill:
            position[inst] += dq
            s.set_position(inst, position[inst])
            open_side = 0 if dq > 0 else 1
            s.set_open_orders(inst, open_[inst][0], open_[inst][1])     # undo the gate's in-flight count
        else:
            open_[inst][0 if dq > 0 else 1] += qty
    # rate: never more than burst + rate x elapsed in any window
    t = np.array(accepted_times, dtype=np.int64)
    for a in range(len(t)):
        for b in range(a, len(t)):
            window = (t[b] - t[a]) / 1e9
            assert b - a + 1 <= lim.order_burst + lim.order_rate * window + 1e-9
