"""Backtest outputs in a directory: summary.json, trades.csv, equity.png, report.html
(self-contained: the PNG is embedded).

Statistics added here, from the result:
- Sharpe: mean / standard deviation of the equity's simple returns on the 1-second grid,
  annualised by sqrt(seconds per year = 365 x 86,400) (crypto trades every second of the
  year); ``sharpe_sampling_s`` says the interval. Over minutes of data it is noise.
- max drawdown: largest fall from a running peak of the 1-s equity, as a fraction.
- per strategy and overall: round trips (flat -> flat or through zero, net of fees and
  funding), win rate, profit factor, mean round-trip PnL with a 95% percentile bootstrap
  interval (10,000 resamples, seeded), turnover (traded notional) and turnover / equity.
"""
from __future__ import annotations

import base64
import csv
import html
import json
import os

import numpy as np

from engine.backtest.engine import trade_stats

SECONDS_PER_YEAR = 365 * 86_400


def statistics(result, seed: int = 0) -> dict:
    s = {}
    eq = result.equity
    if len(eq) > 2:
        r = np.diff(eq[:, 1]) / eq[:-1, 1]
        dt = float(np.median(np.diff(eq[:, 0]))) / 1e9
        s["sharpe_annualised"] = float(r.mean() / r.std() * np.sqrt(SECONDS_PER_YEAR / dt)) if r.std() > 0 else 0.0
        s["sharpe_sampling_s"] = dt
        peak = np.maximum.accumulate(eq[:, 1])
        s["max_drawdown"] = float(np.max((peak - eq[:, 1]) / peak))
    else:
        s["sharpe_annualised"] = None
        s["max_drawdown"] = None
    allp = [x for v in result.round_trips.values() for x in v]
    s["trades"] = trade_stats(allp, seed)
    start = result.summary["equity_start"]
    s["turnover_over_equity"] = round(result.summary["turnover"] / start, 6) if start else None
    for name, d in result.summary["per_strategy"].items():
        d.update(trade_stats(result.round_trips.get(name, []), seed))
    return s


def write_report(result, out_dir: str, title: str = "backtest", seed: int = 0) -> dict:
    os.makedirs(out_dir, exist_ok=True)
    s = dict(result.summary)
    s["risk_rejects_by_reason"] = dict(sorted(result.rejects.items()))
    s.update(statistics(result, seed))
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(s, f, indent=2, sort_keys=True)
    with open(os.path.join(out_dir, "trades.csv"), "w", newline="") as f:
        cols = ["time_ns", "symbol", "strategy", "side", "price", "qty", "fee", "liquidity", "position_lots"]
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for t in result.trades:
            w.writerow(t)
    png = os.path.join(out_dir, "equity.png")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    eq = result.equity
    fig, ax = plt.subplots(3, 1, figsize=(11, 8), sharex=True, gridspec_kw={"height_ratios": [3, 1.5, 1.5]})
    if len(eq):
        t = (eq[:, 0] - eq[0, 0]) / 1e9
        ax[0].plot(t, eq[:, 1], lw=1)
        peak = np.maximum.accumulate(eq[:, 1])
        ax[1].fill_between(t, 0, -(peak - eq[:, 1]) / peak * 100, color="tab:red", alpha=0.5)
        if result.trades:
            t0 = eq[0, 0]
            for sym in s["instruments"]:
                tr = [x for x in result.trades if x["symbol"] == sym]
                if tr:
                    ax[2].step([(x["time_ns"] - t0) / 1e9 for x in tr], [x["position_lots"] for x in tr],
                               where="post", label=sym, lw=1)
            ax[2].legend(fontsize=8)
    ax[0].set_ylabel("equity")
    ax[1].set_ylabel("drawdown %")
    ax[2].set_ylabel("position (lots)")
    ax[2].set_xlabel("seconds")
    ax[0].set_title(title)
    fig.tight_layout()
    fig.savefig(png, dpi=100, metadata={"Software": None})
    plt.close(fig)
    img = base64.b64encode(open(png, "rb").read()).decode()
    flat = {k: v for k, v in sorted(s.items()) if k not in ("per_strategy", "per_instrument", "funding_events",
                                                            "regime_changes")}
    rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(json.dumps(v))}</td></tr>"
                   for k, v in flat.items())

    def table(d: dict, head: str) -> str:
        if not d:
            return f"<p>{html.escape(head)}: none</p>"
        cols = sorted({c for v in d.values() for c in v})
        h = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
        body = "".join(f"<tr><td>{html.escape(k)}</td>" + "".join(
            f"<td>{html.escape(json.dumps(v.get(c)))}</td>" for c in cols) + "</tr>" for k, v in d.items())
        return f"<h2>{html.escape(head)}</h2><table border=1 cellpadding=4><tr><th></th>{h}</tr>{body}</table>"
    with open(os.path.join(out_dir, "report.html"), "w") as f:
        f.write(f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
                f"<h1>{html.escape(title)}</h1><img src='data:image/png;base64,{img}'>"
                + table(s["per_strategy"], "per strategy") + table(s["per_instrument"], "per instrument")
                + f"<h2>summary</h2><table border=1 cellpadding=4>{rows}</table>"
                + f"<h2>funding</h2><pre>{html.escape(json.dumps(s['funding_events'], indent=1))}</pre>"
                + f"<h2>regime changes</h2><pre>{html.escape(json.dumps(s['regime_changes'], indent=1))}</pre>")
    return s
