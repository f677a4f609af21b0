"""Walk-forward splits with purging and an embargo.

The rows' time range is cut into ``n_folds + 1`` equal blocks of time. Fold k (1..n)
tests on block k and trains on rows before it; a training row is kept only if its label
window ended at least ``embargo_s`` before the test block starts:

    label_end(train row) + embargo <= first time of the test block

so no training label overlaps a test row (purge) and the features of the first test rows,
whose windows reach up to 300 s back, are not next to a training label (embargo). Rows of
several recordings that cover the same time (BTC and ETH together) are split by time, so
one fold's test block is the same wall-clock span for all of them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Fold:
    k: int
    train: np.ndarray       # row indices
    test: np.ndarray
    test_start_ns: int
    test_end_ns: int
    purged: int             # training rows dropped by purge + embargo


def walk_forward(t: np.ndarray, label_end: np.ndarray, n_folds: int = 4, embargo_s: float = 1.0,
                 min_train: int = 50) -> list[Fold]:
    """Purged, embargoed walk-forward folds over rows with times ``t`` and label ends.

    A fold whose training set would have fewer than ``min_train`` rows is skipped (said
    by its absence: callers report how many folds were evaluated)."""
    if n_folds < 1:
        raise ValueError("n_folds must be >= 1")
    t = np.asarray(t, np.int64)
    label_end = np.asarray(label_end, np.int64)
    if len(t) == 0:
        return []
    lo, hi = int(t.min()), int(t.max()) + 1
    edges = np.linspace(lo, hi, n_folds + 2).astype(np.int64)
    emb = int(embargo_s * 1e9)
    folds = []
    for k in range(1, n_folds + 1):
        a, b = int(edges[k]), int(edges[k + 1])
        test = np.flatnonzero((t >= a) & (t < b))
        before = np.flatnonzero(t < a)
        train = before[label_end[before] + emb <= a]
        if len(test) == 0 or len(train) < min_train:
            continue
        folds.append(Fold(k, train, test, a, b, int(len(before) - len(train))))
    return folds


def final_split(t: np.ndarray, label_end: np.ndarray, holdout_frac: float = 0.2, embargo_s: float = 1.0):
    """(train, holdout) for the models that are exported: the last ``holdout_frac`` of the
    time range is held out (parity and quantization checks run on it), purged like a fold."""
    t = np.asarray(t, np.int64)
    lo, hi = int(t.min()), int(t.max()) + 1
    a = int(hi - (hi - lo) * holdout_frac)
    test = np.flatnonzero(t >= a)
    before = np.flatnonzero(t < a)
    train = before[np.asarray(label_end)[before] + int(embargo_s * 1e9) <= a]
    return train, test
