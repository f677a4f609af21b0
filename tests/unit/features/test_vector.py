"""The 25-feature kernel on synthetic messages: readiness, exact values, equality with the
indicator functions on the 1-s bar series, no lookahead."""
import numpy as np
import pytest

from engine import schema
from engine.features import indicators as I
from engine.features.vector import N_FEATURES, NAMES, FeatureEngine, batch_features

TICK, LOT = 0.1, 0.001


def msg(t_ns, bid, ask, bq=10, aq=12, trades=()):
    recs = np.zeros(max(1, len(trades)), schema.MARKET_DTYPE)
    recs["exch_ts"] = t_ns
    recs["kind"] = schema.MK_BBO
    for k, (px, qty, side) in enumerate(trades):
        recs[k]["kind"], recs[k]["px"], recs[k]["qty"], recs[k]["side"] = schema.MK_TRADE, px, qty, side
    top = np.zeros(1, schema.BOOK_TOP_DTYPE)
    top["exch_ts"] = t_ns
    top["bid_px"][0, 0], top["ask_px"][0, 0] = bid, ask
    top["bid_qty"][0, :5] = bq
    top["ask_qty"][0, :5] = aq
    return recs, top


def test_names_and_count():
    assert len(NAMES) == N_FEATURES == 25 and len(set(NAMES)) == 25


def test_first_message_is_not_ready_then_book_features_are_exact():
    fe = FeatureEngine(TICK, LOT)
    fe.on_message(*msg(1_000_000_000_000, 600_000, 600_002, bq=3, aq=1))
    r = dict(zip(NAMES, fe.out))
    assert not fe.all_ready and not fe.ready[0] and np.isnan(r["ret_1s"]) and np.isnan(r["rsi_14"])
    assert r["best_bid"] == 60000.0 and r["best_ask"] == pytest.approx(60000.2)
    assert r["bid_qty"] == pytest.approx(0.003) and r["spread_bps"] == pytest.approx(0.2 / 60000.1 * 1e4)
    assert r["book_imb_5"] == pytest.approx((15 - 5) / 20)
    assert fe.ready[10:16].all()


def test_returns_volume_and_flow_by_time():
    fe = FeatureEngine(TICK, LOT)
    t0 = 1_000_000_000_000
    for k in range(130):           # 13 s of messages every 100 ms, mid rising 1 tick per message
        trades = [(600_000 + k, 5, schema.SIDE_BUY)] if k % 2 == 0 else [(600_000 + k, 3, schema.SIDE_SELL)]
        fe.on_message(*msg(t0 + k * 100_000_000, 600_000 + k, 600_002 + k, trades=trades))
    r = dict(zip(NAMES, fe.out))
    mid = lambda k: (600_001 + k) * TICK
    assert r["ret_1s"] == pytest.approx(np.log(mid(129) / mid(119)))
    assert r["ret_10s"] == pytest.approx(np.log(mid(129) / mid(29)))
    assert fe.ready[1] and not fe.ready[2]               # 60 s not there yet
    # the last 10 s: buckets 30..129 -> 50 buys of 5 lots, 50 sells of 3 lots
    assert r["flow_imb_10s"] == pytest.approx((250 - 150) / 400)


def test_technicals_equal_the_indicator_functions_on_one_second_bars():
    rng = np.random.default_rng(3)
    closes = 600_000 + np.cumsum(rng.integers(-3, 4, 200))
    fe = FeatureEngine(TICK, LOT)
    t0 = 2_000_000_000_000
    for k, c in enumerate(closes):            # one message per second: each closes the previous bar
        fe.on_message(*msg(t0 + k * 1_000_000_000, int(c) - 1, int(c) + 1))
    series = (closes[:-1]).astype(float) * TICK  # bars completed before the last message
    r = dict(zip(NAMES, fe.out))
    assert r["rsi_14"] == pytest.approx(I.rsi(series, 14)[-1], rel=1e-12)
    line, sig, hist = I.macd(series)
    assert (r["macd"], r["macd_signal"], r["macd_hist"]) == pytest.approx((line[-1], sig[-1], hist[-1]), rel=1e-10)
    k, d = I.stoch(series, series, series)
    assert (r["stoch_k"], r["stoch_d"]) == pytest.approx((k[-1], d[-1]), rel=1e-12)
    up, mid, lo = I.bbands(series)
    assert r["bb_width"] == pytest.approx((up[-1] - lo[-1]) / mid[-1], rel=1e-10)
    assert r["willr_14"] == pytest.approx(I.willr(series, series, series)[-1], rel=1e-12)
    assert fe.ready[16:].all()


def test_invalid_book_means_not_ready_and_time_never_goes_back():
    fe = FeatureEngine(TICK, LOT)
    recs, top = msg(1_000_000_000_000, 600_000, 600_002)
    top["flags"] = schema.F_BOOK_INVALID
    fe.on_message(recs, top)
    assert not fe.ready[10:16].any()
    fe.on_message(*msg(2_000_000_000_000, 600_000, 600_002))
    t = fe.on_message(*msg(1_500_000_000_000, 600_010, 600_012))   # late message: same bucket, no crash
    assert t == 1_500_000_000_000 and fe.ready[10]


def test_batch_prefix_equals_full_no_lookahead():
    rng = np.random.default_rng(5)
    msgs = [msg(1_000_000_000_000 + k * 37_000_000, 600_000 + int(x), 600_002 + int(x),
                trades=[(600_001 + int(x), int(rng.integers(1, 9)), int(rng.integers(1, 3)))])
            for k, x in enumerate(np.cumsum(rng.integers(-2, 3, 3000)))]
    recs = np.concatenate([m[0] for m in msgs])
    tops = np.concatenate([m[1] for m in msgs])
    starts = np.arange(len(msgs), dtype=np.int64)
    ends = starts + 1
    full, rf, _ = batch_features(recs, starts, ends, tops, TICK, LOT)
    part, rp, _ = batch_features(recs[:2000], starts[:2000], ends[:2000], tops[:2000], TICK, LOT)
    assert np.array_equal(full[:2000], part, equal_nan=True) and np.array_equal(rf[:2000], rp)
    fe = FeatureEngine(TICK, LOT)
    for k, (r, t) in enumerate(msgs):
        fe.on_message(r, t)
        assert np.array_equal(fe.out, full[k], equal_nan=True)


def test_compilation_happens_at_warmup_not_on_the_first_message():
    from engine.features.vector import batch_update, update
    fe = FeatureEngine(TICK, LOT)
    fe.warmup()
    sigs = (len(update.signatures), len(batch_update.signatures))
    assert sigs[0] >= 1
    fe.on_message(*msg(1_000_000_000_000, 600_000, 600_002, trades=[(600_001, 3, schema.SIDE_BUY)]))
    assert (len(update.signatures), len(batch_update.signatures)) == sigs     # no new compilation
