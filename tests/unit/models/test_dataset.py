"""Rows and labels: sampled causally, labelled from the future mid only, threshold = fees."""
import numpy as np
import pytest

from engine.features.vector import N_FEATURES, NAMES
from engine.models.dataset import DOWN, FLAT, UP, LabelSpec, label_returns, rows_from_features

IB, IA = NAMES.index("best_bid"), NAMES.index("best_ask")
S = 1_000_000_000


def stream(times_s, mids, ready_from=0):
    n = len(times_s)
    v = np.zeros((n, N_FEATURES))
    v[:, 0] = np.arange(n)                      # feature 0 = message index (to see which row was taken)
    v[:, IB] = np.asarray(mids) - 0.05
    v[:, IA] = np.asarray(mids) + 0.05
    r = np.zeros((n, N_FEATURES), bool)
    r[ready_from:] = True
    return v, r, (np.asarray(times_s) * S).astype(np.int64)


def test_threshold_is_a_round_trip_of_fees():
    assert LabelSpec(fee_bps=2.0).threshold == pytest.approx(4e-4)
    assert LabelSpec(fee_bps=5.0, extra_bps=1.0).threshold == pytest.approx(11e-4)
    y = label_returns(np.array([-5e-4, -4e-4, 0.0, 4e-4, 4.01e-4]), 4e-4)
    assert y.tolist() == [DOWN, FLAT, FLAT, FLAT, UP]


def test_clock_rows_take_the_last_message_at_or_before_the_grid_time():
    t = [0.0, 0.05, 0.15, 0.31, 0.32, 0.5, 1.0, 2.0, 3.0]
    v, r, ts = stream(t, [100.0] * len(t))
    X, y, tt, le, ret = rows_from_features(v, r, ts, LabelSpec(horizon_s=1.0, sample_ms=100))
    # grid 0.0, 0.1, ... up to last - H = 2.0
    assert tt[0] == 0 and tt[1] == S // 10
    taken = X[:, 0].astype(int).tolist()
    assert taken[:6] == [0, 1, 2, 2, 4, 5]      # 0.0->0, 0.1->1 (0.05), 0.2->2, 0.3->2 (0.31 is later), 0.4->4
    assert (le - tt == S).all()


def test_label_sees_only_the_mid_at_t_plus_h_not_before_or_after():
    # mid jumps up 10 bps at 1.5 s and back down at 2.6 s; H = 1 s
    t = np.round(np.arange(0, 4.01, 0.1), 3)
    mid = np.where((t >= 1.5) & (t < 2.6), 100.1, 100.0)
    v, r, ts = stream(t, mid)
    X, y, tt, le, ret = rows_from_features(v, r, ts, LabelSpec(horizon_s=1.0, sample_ms=100))
    lab = dict(zip(np.round(tt / S, 3), y))
    assert lab[0.4] == FLAT          # t + H = 1.4 < 1.5
    assert lab[0.5] == UP            # t + H = 1.5: the jump is at or before t + H
    assert lab[1.5] == FLAT          # both at 100.1 (2.5 still up)
    assert lab[1.6] == DOWN          # 100.1 -> 100.0 at 2.6
    assert lab[2.6] == FLAT


def test_no_row_before_every_feature_is_ready_and_none_without_a_matured_label():
    t = np.arange(0, 10.0, 0.1)
    v, r, ts = stream(t, np.full(len(t), 50.0), ready_from=30)
    X, y, tt, le, ret = rows_from_features(v, r, ts, LabelSpec(horizon_s=2.0, sample_ms=100))
    assert tt.min() >= ts[30]
    assert le.max() <= ts[-1]
    assert np.isfinite(X).all()


def test_event_sampling_gives_one_row_per_ready_message():
    t = np.arange(0, 5.0, 0.25)
    v, r, ts = stream(t, np.full(len(t), 50.0), ready_from=2)
    X, y, tt, le, ret = rows_from_features(v, r, ts, LabelSpec(horizon_s=1.0, sample_ms=0))
    assert X[:, 0].astype(int).tolist() == list(range(2, len(t) - 4))


def test_out_of_order_exchange_stamps_do_not_break_sampling():
    t = [0.0, 0.2, 0.199, 0.4, 1.0, 2.0]
    v, r, ts = stream(t, [10.0] * len(t))
    X, y, tt, le, ret = rows_from_features(v, r, ts, LabelSpec(horizon_s=0.5, sample_ms=100))
    assert len(tt) > 0 and np.all(np.diff(tt) > 0)
