"""Strategy components on hand-made feature vectors: entries, exits, sizing, switching."""
import numpy as np
import pytest

from engine import schema
from engine.features.regime import CRASH, NORMAL, TRENDING
from engine.strategies.directional import IDX, MeanReversion, MomentumBreakout
from engine.strategies.market_making import MarketMaker
from engine.strategies.switcher import RegimeSwitcher

READY = np.ones(25, np.bool_)


def feats(**kw):
    f = np.zeros(25)
    f[IDX["rvol_60s"]] = 0.0006
    f[IDX["bb_pos"]] = 0.5
    f[IDX["rsi_14"]] = 50
    for k, v in kw.items():
        f[IDX[k]] = v
    return f


def fill(strategy_order, qty=None):
    o = strategy_order[0]
    e = np.zeros(1, schema.EXEC_DTYPE)[0]
    e["kind"], e["client_id"], e["side"], e["qty"], e["px"] = schema.EX_FILL, o["client_id"], o["side"], qty or o["qty"], o["px"]
    return e


def test_mean_reversion_enters_and_exits_on_mean_touch_stop_or_time():
    s = MeanReversion(0, lots=5, max_hold_s=60)
    bb, ba = 600_000, 600_001
    assert s.on_market(1, bb, ba, feats(rsi_14=20, bb_pos=-0.1), READY, True, signal=-0.5) == []   # model disagrees
    [o] = s.on_market(1, bb, ba, feats(rsi_14=20, bb_pos=-0.1), READY, True)
    assert (o["side"][0], o["otype"][0], o["qty"][0], o["px"][0]) == (schema.SIDE_BUY, schema.OT_IOC, 5, ba)
    assert s.on_market(2, bb, ba, feats(rsi_14=20, bb_pos=-0.1), READY, True) == []      # one order at a time
    s.on_exec(fill(o))
    assert s.position == 5 and s.on_market(3, bb, ba, feats(bb_pos=0.3), READY, True) == []
    [x] = s.on_market(4, bb + 5, ba + 5, feats(bb_pos=0.55), READY, True)                # mean touched
    assert x["side"][0] == schema.SIDE_SELL and x["flags"][0] == schema.OF_REDUCE_ONLY and x["qty"][0] == 5
    s.on_exec(fill(x))
    assert s.position == 0
    [o] = s.on_market(10, bb, ba, feats(rsi_14=80, bb_pos=1.2), READY, True)             # short entry
    s.on_exec(fill(o))
    [x] = s.on_market(10 + 61 * 10**9, bb, ba, feats(bb_pos=0.9), READY, True)           # held too long
    assert x["side"][0] == schema.SIDE_BUY
    nr = READY.copy()
    nr[IDX["rsi_14"]] = False
    assert MeanReversion(0).on_market(1, bb, ba, feats(rsi_14=20, bb_pos=-0.1), nr, True) == []  # not ready


def test_momentum_breakout_and_trailing_stop():
    s = MomentumBreakout(0, lots=4, spike_min=2, flow_min=0.3)
    bb, ba = 600_000, 600_001
    move = 0.0006 / np.sqrt(6)
    assert s.on_market(1, bb, ba, feats(ret_10s=2 * move, vol_spike=1.0, flow_imb_10s=0.5), READY, True) == []  # no spike
    [o] = s.on_market(1, bb, ba, feats(ret_10s=2 * move, vol_spike=3.0, flow_imb_10s=0.5), READY, True)
    assert o["side"][0] == schema.SIDE_BUY and o["qty"][0] == 4
    s.on_exec(fill(o))
    assert s.on_market(2, bb + 100, ba + 100, feats(), READY, True) == []               # new high: trail moves up
    [x] = s.on_market(3, bb + 100 - 400, ba + 100 - 400, feats(), READY, True)          # gave back > 1 sigma
    assert x["side"][0] == schema.SIDE_SELL and x["flags"][0] == schema.OF_REDUCE_ONLY


def test_market_maker_skews_with_inventory_and_never_crosses():
    mm = MarketMaker(0, 0.1, quote_lots=10, max_inventory_lots=20)
    f = feats(rvol_60s=0.0005)
    out = mm.on_market(1, 600_000, 600_001, f, READY, True)
    bid = next(o for o in out if o["side"][0] == schema.SIDE_BUY)
    ask = next(o for o in out if o["side"][0] == schema.SIDE_SELL)
    assert bid["px"][0] < 600_001 and ask["px"][0] > 600_000 and bid["otype"][0] == schema.OT_POST_ONLY
    lo0, hi0 = mm.quote_prices(600_000.5, 0.0005 / np.sqrt(60) * 600_000.5)
    mm.on_exec(fill(bid))                        # long 10 lots: quotes move down
    lo1, hi1 = mm.quote_prices(600_000.5, 0.0005 / np.sqrt(60) * 600_000.5)
    assert lo1 < lo0 and hi1 < hi0
    foreign = fill(bid)
    foreign["client_id"] = 5 << 40                # another strategy's fill is not ours
    mm.on_exec(foreign)
    assert mm.inventory == 10
    out = mm.on_market(2, 600_000, 600_001, f, READY, False)      # book invalid: pull quotes
    assert all(o["action"][0] == schema.ACT_CANCEL for o in out) and len(out) >= 1


def test_switcher_enables_by_regime_and_sizes_by_profile():
    mm, mr, mom = MarketMaker(0, 0.1), MeanReversion(0, lots=10), MomentumBreakout(0, lots=10)
    sw = RegimeSwitcher({"mm": mm, "mr": mr, "mom": mom})
    assert (mr.enabled, mom.enabled, sw.mm_on) == (True, False, True)
    sw.set_regime(TRENDING)
    assert (mr.enabled, mom.enabled, sw.mm_on) == (False, True, False) and mom.size_mult == pytest.approx(1.2)
    sw.set_regime(CRASH)
    assert (mr.enabled, mom.enabled, sw.mm_on) == (False, False, False)
    out = sw.on_market(1, 600_000, 600_001, feats(rsi_14=10, bb_pos=-1), READY, True)
    assert all(o["action"][0] == schema.ACT_CANCEL for o in out)      # nothing new in a crash
    sw.set_regime(NORMAL)
    out = sw.on_market(2, 600_000, 600_001, feats(rsi_14=10, bb_pos=-1), READY, True)
    assert {int(o["strategy"][0]) for o in out} == {1, 2}
    with pytest.raises(ValueError):
        RegimeSwitcher({"x": mm})


def test_touch_quoter_rule():
    """One bid one tick behind the bid, one ask one tick behind the ask; cancel/replace a side
    whose wanted price changed; the position limit; quotes cleared by their ends."""
    from engine.strategies.touch import TouchQuoter
    q = TouchQuoter(0, quote_lots=2, max_position_lots=3, strategy_id=4, client_id_base=4 << 40)
    base = 4 << 40

    def acts(out):
        return [(int(a["action"][0]), int(a["side"][0]), int(a["px"][0]), int(a["qty"][0]), int(a["client_id"][0]),
                 int(a["ref_client_id"][0]), int(a["otype"][0])) for a in out]

    po = schema.OT_POST_ONLY
    assert acts(q.on_market(1, 100, 101, None, None, True)) == [
        (schema.ACT_NEW, schema.SIDE_BUY, 99, 2, base, 0, po), (schema.ACT_NEW, schema.SIDE_SELL, 102, 2, base + 1, 0, po)]
    assert q.on_market(2, 100, 101, None, None, True) == []                  # nothing changed: nothing sent
    assert acts(q.on_market(3, 101, 102, None, None, True)) == [
        (schema.ACT_CANCEL, schema.SIDE_BUY, 99, 0, base + 2, base, po), (schema.ACT_NEW, schema.SIDE_BUY, 100, 2, base + 3, 0, po),
        (schema.ACT_CANCEL, schema.SIDE_SELL, 102, 0, base + 4, base + 1, po),
        (schema.ACT_NEW, schema.SIDE_SELL, 103, 2, base + 5, 0, po)]
    e = np.zeros(1, schema.EXEC_DTYPE)[0]
    e["kind"], e["client_id"], e["side"], e["qty"], e["px"] = schema.EX_FILL, base + 3, schema.SIDE_BUY, 2, 100
    q.on_exec(e)                                                              # bought 2: another 2 would pass 3
    assert q.position == 2 and q.quotes[schema.SIDE_BUY] is None
    assert acts(q.on_market(4, 101, 102, None, None, True)) == []            # no new bid at the limit
    other = e.copy()
    other["client_id"] = (5 << 40) + 1                                       # not ours: ignored
    q.on_exec(other)
    assert q.position == 2
    assert acts(q.on_market(5, 101, 102, None, None, False)) == [            # invalid book: pull everything
        (schema.ACT_CANCEL, schema.SIDE_SELL, 103, 0, base + 6, base + 5, po)]
    assert q.quotes_sent == 4 and q.cancels_sent == 3
    with pytest.raises(ValueError):
        TouchQuoter(0, quote_lots=3, max_position_lots=2)


def test_market_maker_rule_intent_by_intent():
    """The compiled rule's prices, ids and churn guard exactly: reservation and half-spread
    from the Avellaneda-Stoikov formulas, bounded by the touch; a quote moved by less than
    min_change_ticks is kept; a rejection quiets new quotes for the back-off."""
    import math
    base = 1 << 40
    mm = MarketMaker(0, 0.1, quote_lots=2, max_inventory_lots=4, gamma=1e-4, kappa=1.5, horizon_s=10.0,
                     skew_ticks=2.0, min_change_ticks=2, reject_backoff_ms=1000, client_id_base=base)
    rv = 0.0005
    bb, ba = 600_000, 600_001
    mid = 0.5 * (bb + ba)
    sigma = rv / math.sqrt(60.0) * mid
    half = 0.5 * (1e-4 * sigma ** 2 * 10 + (2 / 1e-4) * math.log(1 + 1e-4 / 1.5))

    def acts(out):
        return [(int(a["action"][0]), int(a["side"][0]), int(a["px"][0]), int(a["qty"][0]), int(a["client_id"][0]),
                 int(a["ref_client_id"][0]), round(float(a["score"][0]), 6)) for a in out]

    r = mid + 2.0 * 0.25                                   # no inventory; signal 0.25 skews by 0.5 tick
    want_b, want_a = min(math.floor(r - half), ba - 1), max(math.ceil(r + half), bb + 1)
    assert acts(mm.on_market(1, bb, ba, feats(rvol_60s=rv), READY, True, 0.25)) == [
        (schema.ACT_NEW, schema.SIDE_BUY, want_b, 2, base, 0, 0.25),
        (schema.ACT_NEW, schema.SIDE_SELL, want_a, 2, base + 1, 0, 0.25)]
    assert mm.quotes == {schema.SIDE_BUY: (base, want_b, 2), schema.SIDE_SELL: (base + 1, want_a, 2)}
    assert mm.on_market(2, bb + 1, ba + 1, feats(rvol_60s=rv), READY, True, 0.25) == []   # moved < 2 ticks: kept
    out = acts(mm.on_market(3, bb + 5, ba + 5, feats(rvol_60s=rv), READY, True, 0.25))
    assert [a[:2] for a in out] == [(schema.ACT_CANCEL, schema.SIDE_BUY), (schema.ACT_NEW, schema.SIDE_BUY),
                                    (schema.ACT_CANCEL, schema.SIDE_SELL), (schema.ACT_NEW, schema.SIDE_SELL)]
    assert out[0][5] == base and out[2][5] == base + 1 and out[1][2] == want_b + 5
    rej = np.zeros(1, schema.EXEC_DTYPE)[0]
    rej["kind"], rej["client_id"] = schema.EX_REJECT, out[3][4]
    mm.on_exec(rej)                                        # the ask refused: no new quote for 1 s
    assert mm.quotes[schema.SIDE_SELL] is None and mm.quiet_until == 3 + 1_000_000_000
    out = acts(mm.on_market(4, bb + 9, ba + 9, feats(rvol_60s=rv), READY, True, 0.25))
    assert [a[:2] for a in out] == [(schema.ACT_CANCEL, schema.SIDE_BUY)]      # cancels still go out
    assert mm.quotes_sent == 4 and mm.cancels_sent == 3


def test_intents_are_separate_writable_records():
    """Each intent its own 1-element ORDER_DTYPE array (the engine stamps them in place)."""
    mm = MarketMaker(0, 0.1, quote_lots=1, max_inventory_lots=4)
    out = mm.on_market(1, 600_000, 600_010, feats(rvol_60s=0.0005), READY, True, 0.0)
    assert len(out) == 2 and all(a.dtype == schema.ORDER_DTYPE and a.shape == (1,) and a.flags.writeable for a in out)
    out[0]["px"] = 7
    assert int(out[1]["px"][0]) != 7 and int(out[0]["px"][0]) == 7


def test_market_maker_pulls_quotes_on_unusable_inputs():
    """Not ready, a non-finite volatility, an invalid book: every working quote cancelled,
    nothing new; a NaN model signal counts as no signal; a short vector is refused."""
    mm = MarketMaker(0, 0.1, quote_lots=2)
    out = mm.on_market(1, 600_000, 600_001, feats(rvol_60s=0.0005), READY, True, float("nan"))
    same = MarketMaker(0, 0.1, quote_lots=2).on_market(1, 600_000, 600_001, feats(rvol_60s=0.0005), READY, True, 0.0)
    assert [int(a["px"][0]) for a in out] == [int(a["px"][0]) for a in same] and len(out) == 2
    not_ready = READY.copy()
    not_ready[IDX["rvol_60s"]] = False
    pulled = mm.on_market(2, 600_000, 600_001, feats(rvol_60s=0.0005), not_ready, True)
    assert [int(a["action"][0]) for a in pulled] == [schema.ACT_CANCEL, schema.ACT_CANCEL]
    assert mm.on_market(3, 600_000, 600_001, feats(rvol_60s=float("inf")), READY, True) == []    # nothing left
    assert all(q is None for q in mm.quotes.values())
    assert mm.on_market(4, 600_000, 600_001, feats(rvol_60s=float("nan")), READY, True) == []
    # strided and non-float64 inputs are converted, not misread
    wide = np.zeros((25, 2))
    wide[:, 0] = feats(rvol_60s=0.0005)
    assert len(mm.on_market(5, 600_000, 600_001, wide[:, 0], READY.astype(np.int8), True)) == 2
    with pytest.raises(ValueError, match="at least 16"):
        mm.on_market(6, 600_000, 600_001, np.zeros(5), np.ones(5, np.bool_), True)


def test_market_maker_rehearse_returns_the_intents_and_changes_nothing():
    base = 1 << 40
    mm = MarketMaker(0, 0.1, quote_lots=2, max_inventory_lots=4, min_change_ticks=2, client_id_base=base)
    f = feats(rvol_60s=0.0005)
    state = lambda: (mm.quotes, mm.next_id, mm.quotes_sent, mm.cancels_sent, mm.now, mm.inventory)
    before = state()
    dry = mm.rehearse(1, 600_000, 600_001, f, READY, True, 0.25)
    assert state() == before and len(dry) == 2
    wet = mm.on_market(1, 600_000, 600_001, f, READY, True, 0.25)
    assert [a.tobytes() for a in dry] == [a.tobytes() for a in wet]
    before = state()
    dry = mm.rehearse(2, 600_010, 600_011, f, READY, True, 0.25)      # a requote: cancels and new quotes
    assert state() == before and [int(a["action"][0]) for a in dry] == [schema.ACT_CANCEL, schema.ACT_NEW] * 2
    assert [a.tobytes() for a in dry] == [a.tobytes() for a in mm.on_market(2, 600_010, 600_011, f, READY, True, 0.25)]
