"""Backtest outputs in a directory: summary.json, trades.csv, equity.png, report.html
(self-contained: the PNG is embedded)."""
from __future__ import annotations

import base64
import csv
import html
import json
import os

import numpy as np


def write_report(result, out_dir: str, title: str = "backtest") -> dict:
    os.makedirs(out_dir, exist_ok=True)
    s = dict(result.summary)
    s["risk_rejects_by_reason"] = dict(sorted(result.rejects.items()))
    eq = result.equity
    if len(eq) > 2:
        r = np.diff(eq[:, 1]) / eq[:-1, 1]
        dt = float(np.median(np.diff(eq[:, 0]))) / 1e9
        # Sharpe of the equity samples, annualised for their interval (mean/std x sqrt(periods per year))
        s["sharpe_annualised"] = float(r.mean() / r.std() * np.sqrt(365 * 86400 / dt)) if r.std() > 0 else 0.0
        peak = np.maximum.accumulate(eq[:, 1])
        s["max_drawdown"] = float(np.max((peak - eq[:, 1]) / peak))
        s["sample_interval_s"] = dt
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(s, f, indent=2, sort_keys=True)
    with open(os.path.join(out_dir, "trades.csv"), "w", newline="") as f:
        cols = ["time_ns", "side", "price", "qty", "fee", "liquidity", "position_lots"]
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for t in result.trades:
            w.writerow(t)
    png = os.path.join(out_dir, "equity.png")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(2, 1, figsize=(11, 6), sharex=True)
    if len(eq):
        t = (eq[:, 0] - eq[0, 0]) / 1e9
        ax[0].plot(t, eq[:, 1], lw=1)
        peak = np.maximum.accumulate(eq[:, 1])
        ax[1].fill_between(t, 0, -(peak - eq[:, 1]) / peak * 100, color="tab:red", alpha=0.5)
    ax[0].set_ylabel("equity")
    ax[1].set_ylabel("drawdown %")
    ax[1].set_xlabel("seconds")
    ax[0].set_title(title)
    fig.tight_layout()
    fig.savefig(png, dpi=100, metadata={"Software": None})
    plt.close(fig)
    img = base64.b64encode(open(png, "rb").read()).decode()
    rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(json.dumps(v))}</td></tr>" for k, v in sorted(s.items()))
    with open(os.path.join(out_dir, "report.html"), "w") as f:
        f.write(f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
                f"<h1>{html.escape(title)}</h1><img src='data:image/png;base64,{img}'>"
                f"<table border=1 cellpadding=4>{rows}</table>")
    return s
