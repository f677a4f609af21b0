"""Metrics equal scikit-learn's; PSI; labels maturing live like in training."""
import math

import numpy as np
import pytest
from sklearn.metrics import log_loss as sk_log_loss, precision_score, recall_score

from engine.models.dataset import LabelSpec, rows_from_features
from engine.models.drift import DriftMonitor, LiveScorer, psi
from engine.models.metrics import evaluate, log_loss
from engine.models.train import drift_reference


def test_metrics_match_scikit_learn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 500)
    p = rng.dirichlet([1, 1, 1], 500)
    assert log_loss(y, p) == pytest.approx(sk_log_loss(y, p, labels=[0, 1, 2]), rel=1e-9)
    m = evaluate(y, p)
    pred = p.argmax(1)
    for c, name in enumerate(["down", "flat", "up"]):
        assert m["per_class"][name]["precision"] == pytest.approx(precision_score(y, pred, labels=[c], average="macro"))
        assert m["per_class"][name]["recall"] == pytest.approx(recall_score(y, pred, labels=[c], average="macro"))
    assert sum(map(sum, m["confusion"])) == 500


def test_psi_known_values():
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert psi([0.5, 0.5], [0.9, 0.1]) == pytest.approx(0.4 * math.log(0.9 / 0.5) + (-0.4) * math.log(0.1 / 0.5))


def test_drift_monitor_sees_a_shift_and_not_a_resample():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(5000, 25))
    ref = drift_reference(X)
    same = DriftMonitor(ref)
    same.update_many(rng.normal(size=(5000, 25)))
    assert same.psi_all().max() < 0.02
    moved = DriftMonitor(ref)
    Y = rng.normal(size=(5000, 25))
    Y[:, 3] += 1.0
    for row in Y[:2000]:
        moved.update(row)
    moved.update_many(Y[2000:])
    p = moved.psi_all()
    assert p[3] > 0.25 and np.delete(p, 3).max() < 0.05


def test_live_scorer_labels_like_training():
    from engine.features.vector import N_FEATURES, NAMES
    S = 1_000_000_000
    rng = np.random.default_rng(2)
    t = np.cumsum(rng.integers(20, 200, 400)) * 1_000_000
    mid = 100 * np.exp(np.cumsum(rng.normal(0, 3e-4, 400)))
    v = np.zeros((400, N_FEATURES))
    v[:, NAMES.index("best_bid")] = mid
    v[:, NAMES.index("best_ask")] = mid
    spec = LabelSpec(horizon_s=2.0, sample_ms=0)
    X, y, tt, le, ret = rows_from_features(v, np.ones_like(v, bool), t, spec)
    sc = LiveScorer(spec.horizon_s, spec.threshold)
    n = 0
    for i in range(400):
        if n < len(tt) and tt[n] == t[i]:
            sc.on_prediction(t[i], mid[i], np.eye(3)[y[n]])     # a perfect forecaster
            n += 1
        sc.on_mid(t[i], mid[i])
    sc.on_mid(t[-1] + 10 * S, mid[-1])
    m = sc.metrics()
    assert m["n"] == len(tt)
    assert m["accuracy"] == 1.0
