"""Out-of-sample metrics for three-class probability forecasts, and the report's plots."""
from __future__ import annotations

import numpy as np

from engine.models.dataset import CLASS_NAMES

EPS = 1e-7


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(np.asarray(p, np.float64), EPS, 1.0)
    p = p / p.sum(axis=1, keepdims=True)
    return float(-np.mean(np.log(p[np.arange(len(y)), y])))


def confusion(y: np.ndarray, pred: np.ndarray, k: int = 3) -> np.ndarray:
    m = np.zeros((k, k), np.int64)
    np.add.at(m, (y, pred), 1)
    return m


def calibration(y: np.ndarray, p: np.ndarray, bins: int = 10) -> dict:
    """Reliability per class: mean predicted probability vs observed frequency per bin,
    and the expected calibration error of the top class."""
    out = {}
    edges = np.linspace(0, 1, bins + 1)
    for c, name in enumerate(CLASS_NAMES):
        b = np.clip(np.digitize(p[:, c], edges) - 1, 0, bins - 1)
        rows = []
        for i in range(bins):
            m = b == i
            if m.any():
                rows.append((float(p[m, c].mean()), float((y[m] == c).mean()), int(m.sum())))
        out[name] = rows
    top = p.argmax(axis=1)
    conf = p.max(axis=1)
    b = np.clip(np.digitize(conf, edges) - 1, 0, bins - 1)
    ece = 0.0
    for i in range(bins):
        m = b == i
        if m.any():
            ece += m.mean() * abs(conf[m].mean() - (top[m] == y[m]).mean())
    out["ece"] = float(ece)
    return out


def evaluate(y: np.ndarray, p: np.ndarray) -> dict:
    """log-loss, accuracy, Brier score, per-class precision/recall/support, confusion."""
    y = np.asarray(y, np.int64)
    p = np.asarray(p, np.float64)
    pred = p.argmax(axis=1)
    cm = confusion(y, pred)
    per = {}
    for c, name in enumerate(CLASS_NAMES):
        tp = cm[c, c]
        per[name] = {"precision": float(tp / cm[:, c].sum()) if cm[:, c].sum() else 0.0,
                     "recall": float(tp / cm[c].sum()) if cm[c].sum() else 0.0,
                     "support": int(cm[c].sum())}
    onehot = np.eye(3)[y]
    return {"n": int(len(y)), "log_loss": log_loss(y, p), "accuracy": float((pred == y).mean()) if len(y) else 0.0,
            "brier": float(((p - onehot) ** 2).sum(axis=1).mean()), "per_class": per,
            "confusion": cm.tolist(), "ece": calibration(y, p)["ece"]}


def plot_report(y: np.ndarray, probs: dict, out_dir: str) -> list[str]:
    """calibration.png (reliability per class, one line per model) and confusion.png."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import os
    names = list(probs)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for c, cname in enumerate(CLASS_NAMES):
        ax = axes[c]
        ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="perfect")
        for n in names:
            rows = calibration(y, probs[n])[cname]
            if rows:
                xs, ys, _ = zip(*rows)
                ax.plot(xs, ys, "o-", ms=3, label=n)
        ax.set_title(f"calibration: {cname} (support {(y == c).sum()})")
        ax.set_xlabel("predicted probability")
        ax.set_ylabel("observed frequency")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    p1 = os.path.join(out_dir, "calibration.png")
    fig.savefig(p1, dpi=90)
    plt.close(fig)
    cols = min(4, len(names))
    rows_n = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows_n, cols, figsize=(3.4 * cols, 3.2 * rows_n), squeeze=False)
    for i, n in enumerate(names):
        ax = axes[i // cols][i % cols]
        cm = confusion(y, np.asarray(probs[n]).argmax(axis=1))
        ax.imshow(cm, cmap="Blues")
        for a in range(3):
            for b in range(3):
                ax.text(b, a, str(cm[a, b]), ha="center", va="center", fontsize=8)
        ax.set_xticks(range(3), CLASS_NAMES)
        ax.set_yticks(range(3), CLASS_NAMES)
        ax.set_title(n, fontsize=9)
        ax.set_xlabel("predicted")
        ax.set_ylabel("actual")
    for j in range(len(names), rows_n * cols):
        axes[j // cols][j % cols].axis("off")
    fig.tight_layout()
    p2 = os.path.join(out_dir, "confusion.png")
    fig.savefig(p2, dpi=90)
    plt.close(fig)
    return [p1, p2]
