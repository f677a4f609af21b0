"""The four ensemble members and the two baselines, each behind ``fit`` / ``predict_proba``.

Every member returns probabilities over the three classes (down, flat, up), in that
order, whatever classes its training window held: a window without any ``up`` row gives
a model that says p(up) = 0 (the tree and linear models are fitted on the classes present
and their columns are scattered into the three; the same mapping is a constant MatMul in
the exported graph).

| member | what | defaults |
|---|---|---|
| ``lr`` | standardise -> multinomial logistic regression | C = 1.0 |
| ``rf`` | random forest | 64 trees, depth <= 8, >= 5 rows a leaf |
| ``xgb`` | gradient-boosted trees (XGBoost, hist) | 100 rounds, depth 4, eta 0.1 |
| ``lstm`` | standardise -> LSTM (64 hidden, 2 layers) -> linear -> softmax, stateful | 8 epochs, TBPTT 32 |

The LSTM runs over the rows of one recording in time order, one step per row, carrying
its state, exactly as the live engine steps it once per sampled row; it is trained the
same way (truncated back-propagation through time over 32-step chunks of the stream,
the stream cut into a few parallel segments for a batch), with the loss taken only on the
rows the split lets it learn from.
"""
from __future__ import annotations

import numpy as np

from engine.features.vector import N_FEATURES

N_CLASSES = 3
MEMBERS = ("lr", "rf", "xgb", "lstm")
HIDDEN, LAYERS = 64, 2


def state_names(suffix: str = "") -> list[str]:
    """ONNX names of the LSTM state tensors ([1, 64] each): h0 c0 h1 c1 (+ suffix)."""
    return [f"{k}{layer}{suffix}" for layer in range(LAYERS) for k in ("h", "c")]


def class_map(classes) -> np.ndarray:
    """[k, 3] 0/1 matrix scattering a model's k class columns into the three."""
    m = np.zeros((len(classes), N_CLASSES), np.float32)
    for i, c in enumerate(classes):
        m[i, int(c)] = 1.0
    return m


class SkMember:
    """LR, RF or XGBoost, fitted on the classes present in its window."""

    def __init__(self, kind: str, seed: int = 0, params: dict | None = None):
        self.kind, self.seed, self.params = kind, seed, dict(params or {})
        self.model = None
        self.classes = None

    def _make(self):
        p = self.params
        if self.kind == "lr":
            from sklearn.linear_model import LogisticRegression
            from sklearn.pipeline import Pipeline
            from sklearn.preprocessing import StandardScaler
            return Pipeline([("scale", StandardScaler()),
                             ("clf", LogisticRegression(C=p.get("C", 1.0), max_iter=2000))])
        if self.kind == "rf":
            from sklearn.ensemble import RandomForestClassifier
            return RandomForestClassifier(n_estimators=64, max_depth=p.get("max_depth", 8),
                                          min_samples_leaf=p.get("min_samples_leaf", 5),
                                          n_jobs=1, random_state=self.seed)
        if self.kind == "xgb":
            from xgboost import XGBClassifier
            return XGBClassifier(n_estimators=p.get("n_estimators", 100), max_depth=p.get("max_depth", 4),
                                 learning_rate=p.get("learning_rate", 0.1), subsample=p.get("subsample", 0.8),
                                 colsample_bytree=p.get("colsample_bytree", 0.8),
                                 min_child_weight=p.get("min_child_weight", 1.0),
                                 tree_method="hist", n_jobs=1, random_state=self.seed)
        raise ValueError(f"unknown member {self.kind!r}")

    def fit(self, X: np.ndarray, y: np.ndarray) -> "SkMember":
        self.classes = np.unique(y)
        if len(self.classes) < 2:
            raise ValueError(f"{self.kind}: the training window holds one class only "
                             f"({['down', 'flat', 'up'][int(self.classes[0])]}); use more data, a longer "
                             f"horizon or a lower threshold")
        enc = np.searchsorted(self.classes, y)        # 0..k-1 (XGBoost wants consecutive labels)
        self.model = self._make().fit(X, enc)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(X).astype(np.float32) @ class_map(self.classes)


def prior_proba(y_train: np.ndarray, n: int) -> np.ndarray:
    """Class-prior baseline: the training window's class frequencies for every row."""
    p = np.bincount(y_train, minlength=N_CLASSES).astype(np.float64)
    p = (p + 1e-3) / (p + 1e-3).sum()
    return np.tile(p, (n, 1))


def last_matured(t: np.ndarray, label_end: np.ndarray, y: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """For each row, the class of the latest row of the same recording whose label had
    matured (label_end <= t) at that row's time, or -1. What a live engine knows."""
    out = np.full(len(t), -1, np.int64)
    for s in np.unique(seg):
        idx = np.flatnonzero(seg == s)
        order = np.argsort(label_end[idx], kind="stable")
        ends = label_end[idx][order]
        k = np.searchsorted(ends, t[idx], side="right") - 1
        ok = k >= 0
        out[idx[ok]] = y[idx][order][k[ok]]
    return out


def persistence_proba(prev: np.ndarray, prev_train: np.ndarray, y_train: np.ndarray) -> np.ndarray:
    """Persistence baseline: 'the next move is like the last matured one', as probabilities:
    P(class | last matured class) counted on the training window (+1 smoothing), and the
    class prior where nothing has matured yet."""
    T = np.ones((N_CLASSES, N_CLASSES))
    ok = prev_train >= 0
    np.add.at(T, (prev_train[ok], y_train[ok]), 1.0)
    T /= T.sum(axis=1, keepdims=True)
    out = prior_proba(y_train, len(prev))
    m = prev >= 0
    out[m] = T[prev[m]]
    return out


# ----------------------------------------------------------------------------- LSTM

def _torch():
    try:
        import torch
    except ImportError as e:   # pragma: no cover - the train extra is installed by make test
        raise RuntimeError("the LSTM needs torch: `make train-env` (pip install -e '.[train]', torch==2.13.0)") from e
    return torch


def make_lstm_module(mean: np.ndarray, std: np.ndarray):
    _torch()
    from engine.models.lstm import StepLSTM
    return StepLSTM(mean, std)


class LSTMMember:
    kind = "lstm"

    def __init__(self, seed: int = 0, params: dict | None = None):
        p = dict(params or {})
        self.seed = seed
        self.epochs = int(p.get("epochs", 8))
        self.chunk = int(p.get("chunk", 32))
        self.segments = int(p.get("segments", 8))
        self.lr = float(p.get("lr", 3e-3))
        self.net = None

    def fit(self, X: np.ndarray, y: np.ndarray, mask: np.ndarray, seg: np.ndarray) -> "LSTMMember":
        """X, y: all rows of the streams in time order (seg = recording id per row); the
        loss counts only rows where ``mask`` (the fold's training rows)."""
        torch = _torch()
        torch.manual_seed(self.seed)
        g = np.random.default_rng(self.seed)
        Xm = X[mask].astype(np.float64)
        mean, std = Xm.mean(axis=0), Xm.std(axis=0)
        std[std < 1e-12] = 1.0
        self.net = make_lstm_module(mean, std)
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr)
        w = np.bincount(y[mask], minlength=N_CLASSES).astype(np.float64)
        w = np.where(w > 0, w.sum() / np.maximum(w, 1) / N_CLASSES, 0.0)   # balanced, absent = 0
        lossf = torch.nn.CrossEntropyLoss(weight=torch.tensor(w, dtype=torch.float32), reduction="sum")
        streams = []
        for s in np.unique(seg):
            idx = np.flatnonzero(seg == s)
            if not mask[idx].any():
                continue
            idx = idx[idx <= idx[mask[idx]][-1]]          # up to this recording's last training row
            nseg = max(1, min(self.segments, len(idx) // (2 * self.chunk)))
            L = len(idx) // nseg
            streams.append(idx[: L * nseg].reshape(nseg, L).T)     # [L, nseg]
        Xt = torch.tensor(X, dtype=torch.float32)
        yt = torch.tensor(y, dtype=torch.long)
        mt = torch.tensor(mask, dtype=torch.bool)
        self.net.train()
        for _ in range(self.epochs):
            for k in g.permutation(len(streams)):
                S = torch.tensor(streams[k])
                B = S.shape[1]
                h = torch.zeros(LAYERS, B, HIDDEN)
                c = torch.zeros(LAYERS, B, HIDDEN)
                for a in range(0, S.shape[0], self.chunk):
                    ids = S[a:a + self.chunk]
                    m = mt[ids]
                    logits, h, c = self.net.seq_logits(Xt[ids], h, c)
                    h, c = h.detach(), c.detach()
                    if not bool(m.any()):
                        continue
                    loss = lossf(logits[m], yt[ids][m]) / max(1, int(m.sum()))
                    opt.zero_grad()
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(self.net.parameters(), 1.0)
                    opt.step()
        self.net.eval()
        return self

    def stream_proba(self, X: np.ndarray, seg: np.ndarray) -> np.ndarray:
        """Run every recording from its first row, one step per row (as live); [n, 3]."""
        torch = _torch()
        out = np.zeros((len(X), N_CLASSES), np.float32)
        with torch.no_grad():
            for s in np.unique(seg):
                idx = np.flatnonzero(seg == s)
                h = torch.zeros(LAYERS, 1, HIDDEN)
                c = torch.zeros(LAYERS, 1, HIDDEN)
                logits, _, _ = self.net.seq_logits(torch.tensor(X[idx], dtype=torch.float32).unsqueeze(1), h, c)
                out[idx] = torch.softmax(logits[:, 0], dim=-1).numpy()
        return out


def make_member(kind: str, seed: int = 0, params: dict | None = None):
    return LSTMMember(seed, params) if kind == "lstm" else SkMember(kind, seed, params)
