"""Members and baselines: three columns always; baselines use only matured labels."""
import numpy as np
import pytest

from engine.models.learners import (SkMember, class_map, last_matured, persistence_proba, prior_proba)

S = 1_000_000_000


def test_class_map_scatters_the_present_classes():
    m = class_map([0, 1])
    assert m.tolist() == [[1, 0, 0], [0, 1, 0]]
    p = np.array([[0.3, 0.7]], np.float32) @ class_map([1, 2])
    assert p.tolist() == [[0.0, pytest.approx(0.3), pytest.approx(0.7)]]


@pytest.mark.parametrize("kind", ["lr", "rf", "xgb"])
def test_a_window_without_up_rows_says_p_up_is_zero(kind):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 25)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)            # classes 0 and 1 only
    p = SkMember(kind, seed=1).fit(X, y).predict_proba(X)
    assert p.shape == (300, 3)
    assert (p[:, 2] == 0).all()
    assert np.allclose(p.sum(axis=1), 1, atol=1e-5)
    assert (p.argmax(1) == y).mean() > 0.8


@pytest.mark.parametrize("kind", ["lr", "rf", "xgb"])
def test_same_seed_same_model(kind):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 25)).astype(np.float32)
    y = rng.integers(0, 3, 300)
    a = SkMember(kind, seed=7).fit(X, y).predict_proba(X)
    b = SkMember(kind, seed=7).fit(X, y).predict_proba(X)
    assert np.array_equal(a, b)


def test_one_class_is_refused_with_a_reason():
    X = np.zeros((50, 25), np.float32)
    with pytest.raises(ValueError, match="one class only"):
        SkMember("lr").fit(X, np.ones(50, np.int64))


def test_last_matured_never_reads_a_label_still_in_the_future():
    t = np.arange(20, dtype=np.int64) * S
    le = t + 3 * S
    y = np.arange(20) % 3
    prev = last_matured(t, le, y, np.zeros(20, np.int64))
    assert prev[:3].tolist() == [-1, -1, -1]
    for i in range(3, 20):
        assert prev[i] == y[i - 3]                # row i-3's label ended exactly at t_i


def test_last_matured_is_per_recording():
    t = np.concatenate([np.arange(10), np.arange(10)]).astype(np.int64) * S
    le = t + S
    y = np.concatenate([np.zeros(10, np.int64), np.full(10, 2)])
    seg = np.repeat([0, 1], 10)
    prev = last_matured(t, le, y, seg)
    assert prev[10] == -1 and prev[11] == 2 and prev[1] == 0


def test_baselines_are_distributions():
    p = prior_proba(np.array([0, 1, 1, 1]), 5)
    assert p.shape == (5, 3) and np.allclose(p.sum(1), 1) and p[0, 1] > p[0, 0] > p[0, 2]
    q = persistence_proba(np.array([-1, 0, 2]), np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]))
    assert np.allclose(q.sum(1), 1)
    assert np.allclose(q[0], prior_proba(np.array([0, 1, 1, 1]), 1)[0])


@pytest.mark.parametrize("n_classes", [3, 2])
def test_lr_export_folds_the_scaler_and_keeps_the_probabilities(n_classes):
    """The exported LR is one LinearClassifier node (scaler folded into the coefficients, the
    no-op L1 normalisation of a softmax dropped) and gives sklearn's probabilities."""
    import onnx

    from engine.models.export import export_member, run_member
    rng = np.random.default_rng(5)
    X = (rng.normal(size=(400, 25)) * rng.uniform(0.01, 1000, 25) + rng.uniform(-50, 50, 25)).astype(np.float32)
    y = np.digitize(X[:, 3] / X[:, 3].std() + 0.5 * rng.normal(size=400), [-0.5, 0.5])
    if n_classes == 2:
        y = np.minimum(y, 1)
    m = SkMember("lr", seed=0).fit(X, y)
    model = export_member(m)
    ops = [n.op_type for n in model.graph.node]
    if n_classes == 3:
        assert ops == ["LinearClassifier"]
    onnx.checker.check_model(model)
    p = run_member(model.SerializeToString(), "lr", X, m.classes)
    assert np.abs(p - m.predict_proba(X)).max() < 1e-5
