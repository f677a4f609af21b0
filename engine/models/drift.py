"""Drift detection and self-adaptation: PSI per feature, live accuracy and calibration as
labels mature, background retraining, challenger vs champion, automatic rollback.

PSI. For each feature, the training rows' deciles (``drift_reference.json`` of the model
version) define bins; PSI = sum over bins (a - e) ln(a / e) with a, e the live and training
fractions (floored at 1e-4). Convention: < 0.1 stable, 0.1-0.25 moderate, > 0.25 shifted.

Live labels. ``LiveScorer`` keeps each scored row (time, mid, probabilities) until its
horizon has passed in market time, then labels it exactly like training (same threshold)
and updates rolling log-loss, accuracy and calibration error over the last ``window``
matured rows.

``Adapter`` decides, on every ``check(now_ns)``, with the numbers in each decision:
- retrain when the share of features with PSI > ``psi_max`` exceeds ``psi_share`` or the
  live log-loss exceeds the training out-of-sample log-loss by ``loss_margin``; the
  retrain function runs in a background thread (it trains on recent data and returns
  a new registry version);
- a challenger is promoted only if its log-loss on the latest out-of-sample window
  (``evaluate(version)``) is lower than the champion's on the same window;
- after a promotion, once ``min_labels`` rows have matured under the new model, if its
  live log-loss is worse than the previous model's live log-loss (at the time it was
  replaced) by more than ``rollback_margin``, the registry rolls back.
Every decision goes to the registry's history and to ``decisions``.
"""
from __future__ import annotations

import collections
import json
import math
import os
import threading
from dataclasses import dataclass

import numpy as np

from engine.models.dataset import label_returns

FLOOR = 1e-4


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    e = np.maximum(np.asarray(expected, np.float64), FLOOR)
    a = np.maximum(np.asarray(actual, np.float64), FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


class DriftMonitor:
    """Counts live rows into the training bins; ``psi_all()`` per feature."""

    def __init__(self, reference: dict):
        self.edges = [np.asarray(e, np.float64) for e in reference["edges"]]
        self.expected = [np.asarray(f, np.float64) for f in reference["fractions"]]
        self.counts = [np.zeros(len(f), np.int64) for f in self.expected]
        self.rows = 0

    @classmethod
    def from_dir(cls, version_dir: str) -> "DriftMonitor":
        with open(os.path.join(version_dir, "drift_reference.json")) as f:
            return cls(json.load(f))

    def update(self, x: np.ndarray) -> None:
        for j, e in enumerate(self.edges):
            self.counts[j][np.searchsorted(e, x[j], side="right")] += 1
        self.rows += 1

    def update_many(self, X: np.ndarray) -> None:
        for j, e in enumerate(self.edges):
            self.counts[j] += np.bincount(np.searchsorted(e, X[:, j], side="right"), minlength=len(e) + 1)
        self.rows += len(X)

    def psi_all(self) -> np.ndarray:
        if self.rows == 0:
            return np.zeros(len(self.edges))
        return np.array([psi(self.expected[j], self.counts[j] / self.rows) for j in range(len(self.edges))])

    def reset(self) -> None:
        for c in self.counts:
            c[:] = 0
        self.rows = 0


class LiveScorer:
    """Matures predictions into labels in market time; rolling live metrics."""

    def __init__(self, horizon_s: float, threshold: float, window: int = 2000):
        self.H = int(horizon_s * 1e9)
        self.threshold = threshold
        self.pending = collections.deque()          # (t, mid, probs copy)
        self.mids = collections.deque()             # (t, mid) for the label's future mid
        self.window = collections.deque(maxlen=window)  # (y, probs)
        self.matured = 0

    def on_prediction(self, t_ns: int, mid: float, probs: np.ndarray) -> None:
        self.pending.append((int(t_ns), float(mid), np.array(probs, np.float64)))

    def on_mid(self, t_ns: int, mid: float) -> int:
        """Market time advanced to t with this mid: label every prediction whose t + H
        has passed, using the last mid at or before t + H (as training does)."""
        self.mids.append((int(t_ns), float(mid)))
        n = 0
        while self.pending and self.pending[0][0] + self.H < t_ns:
            t0, m0, p = self.pending.popleft()
            end = t0 + self.H
            while len(self.mids) > 1 and self.mids[1][0] <= end:
                self.mids.popleft()
            m1 = self.mids[0][1]
            y = int(label_returns(np.array([math.log(m1 / m0)]), self.threshold)[0])
            self.window.append((y, p))
            self.matured += 1
            n += 1
        return n

    def metrics(self) -> dict:
        from engine.models.metrics import evaluate
        if not self.window:
            return {"n": 0}
        y = np.array([w[0] for w in self.window])
        p = np.array([w[1] for w in self.window])
        m = evaluate(y, p)
        return {"n": m["n"], "log_loss": m["log_loss"], "accuracy": m["accuracy"], "ece": m["ece"]}


@dataclass
class AdaptConfig:
    psi_max: float = 0.25
    psi_share: float = 0.2          # share of features past psi_max that triggers a retrain
    loss_margin: float = 0.10       # live log-loss above the training OOS log-loss by this
    min_rows: int = 500             # live rows before PSI is judged
    min_labels: int = 300           # matured labels before live metrics are judged
    rollback_margin: float = 0.02


class Adapter:
    def __init__(self, registry, handle, retrain, evaluate, cfg: AdaptConfig | None = None, log=None):
        """retrain() -> new version name (runs in a thread); evaluate(version) -> log-loss on
        the latest out-of-sample window; handle: the ModelHandle serving."""
        self.registry, self.handle = registry, handle
        self.retrain_fn, self.evaluate_fn = retrain, evaluate
        self.cfg = cfg or AdaptConfig()
        self.log = log
        self.decisions: list[dict] = []
        self._thread: threading.Thread | None = None
        self._challenger: str | None = None
        self._error: str | None = None
        self.previous_live: dict | None = None       # live metrics of the model replaced last
        self.promoted_at_labels = 0

    def _decide(self, event: str, **numbers) -> dict:
        rec = self.registry.log(event, **numbers)
        self.decisions.append(rec)
        if self.log:
            self.log(rec)
        return rec

    @property
    def retraining(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run_retrain(self):
        try:
            self._challenger = self.retrain_fn()
        except Exception as e:
            self._error = f"{type(e).__name__}: {e}"

    def check(self, drift: DriftMonitor, scorer: LiveScorer) -> dict | None:
        """One decision step; returns the decision taken (or None)."""
        c = self.cfg
        champion = self.handle.version
        live = scorer.metrics()
        # 1. a finished retrain: challenger vs champion on the same latest window
        if self._thread is not None and not self._thread.is_alive():
            self._thread = None
            if self._error:
                err, self._error = self._error, None
                return self._decide("retrain_failed", error=err, champion=champion)
            ch, self._challenger = self._challenger, None
            l_ch, l_cp = float(self.evaluate_fn(ch)), float(self.evaluate_fn(champion))
            if l_ch < l_cp:
                self.previous_live = dict(live, version=champion)
                self.promoted_at_labels = scorer.matured
                self.registry.promote(ch, reason="challenger better on latest window",
                                      challenger_log_loss=l_ch, champion_log_loss=l_cp)
                r = self.handle.reload()
                drift.reset()
                return self._decide("challenger_promoted", challenger=ch, champion=champion,
                                    challenger_log_loss=l_ch, champion_log_loss=l_cp, reload=r)
            return self._decide("challenger_rejected", challenger=ch, champion=champion,
                                challenger_log_loss=l_ch, champion_log_loss=l_cp)
        # 2. a promoted model doing worse live than the one it replaced: roll back
        if (self.previous_live and self.previous_live.get("n", 0) and live.get("n", 0)
                and scorer.matured - self.promoted_at_labels >= c.min_labels
                and live["log_loss"] > self.previous_live["log_loss"] + c.rollback_margin):
            prev = self.previous_live
            self.previous_live = None
            self.registry.rollback(reason="live log-loss worse than the previous model",
                                   live_log_loss=live["log_loss"], previous_live_log_loss=prev["log_loss"])
            r = self.handle.reload()
            return self._decide("rolled_back", from_version=champion, to_version=self.handle.version,
                                live_log_loss=live["log_loss"], previous_live_log_loss=prev["log_loss"], reload=r)
        if self.retraining:
            return None
        # 3. drift or decay: retrain in the background
        reasons = {}
        if drift.rows >= c.min_rows:
            p = drift.psi_all()
            share = float((p > c.psi_max).mean())
            if share > c.psi_share:
                reasons["psi"] = {"share_over": share, "max": float(p.max()), "argmax": int(p.argmax())}
        oos = self.registry.manifest(champion)["metrics"]["oos_log_loss"].get("ensemble")
        if live.get("n", 0) >= c.min_labels and oos is not None and live["log_loss"] > oos + c.loss_margin:
            reasons["live_loss"] = {"live": live["log_loss"], "train_oos": oos}
        if reasons:
            self._thread = threading.Thread(target=self._run_retrain, name="retrain", daemon=True)
            self._thread.start()
            return self._decide("retrain_started", champion=champion, **reasons)
        return None

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
