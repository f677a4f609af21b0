"""Risk estimator report on real candles: volatility estimators side by side, GARCH(1,1)
against the ``arch`` package, and Kupiec backtests of one-step-ahead VaR.

Returns are 1-minute log returns in percent (the scaling arch recommends; our fit uses
the returns as given, any scaling). Out-of-sample protocol: GARCH is fitted on the first
half, then filtered forward over the second half with fixed parameters; EWMA runs over
the whole series; every VaR forecast for minute t uses returns before t only.
"""
from __future__ import annotations

import json
import os
import warnings

import numpy as np

from engine.feed.candles import load_candles, log_returns
from engine.risk.var import var_backtest
from engine.risk.volatility import ewma_variance, garch11_fit, garch11_variance, historical_vol


def garch_vs_arch(r: np.ndarray) -> dict:
    """Our fit, arch's default fit, and arch's optimiser started at our estimate."""
    ours = garch11_fit(r)
    out = {"ours": {"mu": ours.mu, "omega": ours.omega, "alpha": ours.alpha, "beta": ours.beta,
                    "loglik": ours.loglikelihood, "forecast_var": float(ours.forecast_variance(1)[0])}}
    try:
        from arch import arch_model
    except ImportError:
        out["arch"] = "arch is not installed (pip install arch)"
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = arch_model(r, mean="Constant", vol="GARCH", p=1, q=1, dist="normal")
        d = m.fit(disp="off")
        s = m.fit(disp="off", starting_values=np.array([ours.mu, ours.omega, ours.alpha, ours.beta]))
    for name, res in (("arch_default", d), ("arch_from_ours", s)):
        p = res.params.values
        out[name] = {"mu": float(p[0]), "omega": float(p[1]), "alpha": float(p[2]), "beta": float(p[3]),
                     "loglik": float(res.loglikelihood),
                     "forecast_var": float(res.forecast(horizon=1, reindex=False).variance.values[-1, 0]),
                     "convergence_flag": int(res.convergence_flag)}
    return out


def kupiec_report(r: np.ndarray, confidences=(0.95, 0.99)) -> dict:
    n = r.size
    half = n // 2
    ewma_sd = np.sqrt(ewma_variance(r, 0.94)[:-1])          # forecast for r[t] from r[:t]
    g = garch11_fit(r[:half])
    _, s2 = garch11_variance(r, g.mu, g.omega, g.alpha, g.beta)  # s2[t] uses r[:t] only
    test = slice(half, n)
    res = {"n_test": int(n - half), "garch_fit_on": int(half), "models": {}}
    for name, mu, sd in (("ewma_0.94", 0.0, ewma_sd), ("garch11", g.mu, np.sqrt(s2))):
        res["models"][name] = {str(c): var_backtest(r[test] - mu, sd[test], c) for c in confidences}
    return res


def risk_report(path: str, out_dir: str | None = None, plot: bool = True) -> dict:
    c = load_candles(path)
    r = log_returns(c) * 100.0
    rep = {"file": os.path.basename(path), "n_returns": int(r.size), "returns": "1-minute log returns, percent",
           "vol_next_minute_pct": {"historical_1440": historical_vol(r, 1440),
                                   "ewma_0.94": float(np.sqrt(ewma_variance(r)[-1]))}}
    gv = garch_vs_arch(r)
    rep["garch"] = gv
    rep["vol_next_minute_pct"]["garch11"] = float(np.sqrt(gv["ours"]["forecast_var"]))
    v = rep["vol_next_minute_pct"]
    rep["vol_next_minute_pct"]["ensemble"] = float(np.mean([v["historical_1440"], v["ewma_0.94"], v["garch11"]]))
    rep["kupiec"] = kupiec_report(r)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "risk_report.json"), "w") as f:
            json.dump(rep, f, indent=2)
        if plot:
            _plot(c, r, os.path.join(out_dir, "var_backtest.png"))
    return rep


def _plot(c, r, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    half = r.size // 2
    g = garch11_fit(r[:half])
    _, s2 = garch11_variance(r, g.mu, g.omega, g.alpha, g.beta)
    var99 = g.mu - 2.326 * np.sqrt(s2)
    t = c["ts"][1:].astype("datetime64[ns]")
    fig, ax = plt.subplots(2, 1, figsize=(12, 7), sharex=True)
    ax[0].plot(t, c["close"][1:], lw=0.6)
    ax[0].set_ylabel("close")
    ax[1].plot(t, r, lw=0.3, color="0.5", label="1-min return, %")
    ax[1].plot(t, var99, lw=0.6, color="tab:red", label="GARCH 99% VaR (out of sample from the dashed line)")
    exc = np.flatnonzero(r < var99)
    exc = exc[exc >= half]
    ax[1].scatter(t[exc], r[exc], s=6, color="black", label=f"exceptions ({exc.size})")
    ax[1].axvline(t[half], ls="--", color="k", lw=0.8)
    ax[1].legend(loc="lower left", fontsize=8)
    ax[1].set_ylabel("%")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
