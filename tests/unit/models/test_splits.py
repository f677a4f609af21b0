"""Walk-forward splits: purged and embargoed, training strictly before testing."""
import numpy as np
from hypothesis import given, settings, strategies as st

from engine.models.splits import final_split, walk_forward

S = 1_000_000_000


@settings(max_examples=60, deadline=None)
@given(n=st.integers(200, 2000), h=st.floats(0.1, 30.0), emb=st.floats(0.0, 5.0), k=st.integers(1, 6),
       step=st.integers(10, 1000))
def test_no_training_label_overlaps_the_test_block(n, h, emb, k, step):
    t = np.arange(n, dtype=np.int64) * step * 1_000_000
    le = t + int(h * S)
    folds = walk_forward(t, le, k, emb, min_train=1)
    prev_end = None
    for f in folds:
        assert len(set(f.train) & set(f.test)) == 0
        assert (le[f.train] + int(emb * S) <= f.test_start_ns).all()
        assert (t[f.test] >= f.test_start_ns).all() and (t[f.test] < f.test_end_ns).all()
        assert t[f.train].max() < t[f.test].min()
        if prev_end is not None:
            assert f.test_start_ns >= prev_end
        prev_end = f.test_end_ns


def test_purged_rows_are_counted():
    t = np.arange(1000, dtype=np.int64) * 100_000_000          # 100 s of 100 ms rows
    folds = walk_forward(t, t + 10 * S, n_folds=4, embargo_s=1.0)
    assert len(folds) >= 3
    for f in folds:
        assert f.purged == 110 or f.purged == 109 or f.purged == 111   # 10 s label + 1 s embargo


def test_final_split_holds_out_the_last_part_purged():
    t = np.arange(1000, dtype=np.int64) * 100_000_000
    tr, ho = final_split(t, t + 5 * S, holdout_frac=0.2, embargo_s=1.0)
    assert t[ho].min() >= t[tr].max() + 6 * S - 100_000_000
    assert 190 <= len(ho) <= 210
