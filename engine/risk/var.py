"""Value at risk: parametric and historical, per position and for a portfolio with a
correlation matrix, and Kupiec's proportion-of-failures backtest."""
from __future__ import annotations

import numpy as np
from scipy import stats


def parametric_var(notional: float, vol: float, confidence: float = 0.99, horizon: float = 1.0) -> float:
    """Normal VaR of a position (loss, positive), ``vol`` per unit of ``horizon``."""
    z = stats.norm.ppf(confidence)
    return abs(notional) * vol * np.sqrt(horizon) * z


def historical_var(returns, notional: float = 1.0, confidence: float = 0.99) -> float:
    """Empirical VaR: the (1 - confidence) quantile of the position's P&L, as a loss."""
    r = np.asarray(returns, dtype=np.float64)
    if r.size < 20:
        raise ValueError("historical VaR needs at least 20 returns")
    pnl = notional * r
    return float(-np.quantile(pnl, 1 - confidence))


def portfolio_var(notionals, vols, corr, confidence: float = 0.99, horizon: float = 1.0) -> float:
    """sqrt(x' S x) z for signed notionals x, S = diag(vols) corr diag(vols)."""
    x = np.asarray(notionals, dtype=np.float64) * np.asarray(vols, dtype=np.float64)
    c = np.asarray(corr, dtype=np.float64)
    if c.shape != (x.size, x.size) or not np.allclose(c, c.T) or np.any(np.abs(np.diag(c) - 1) > 1e-12):
        raise ValueError("corr must be a symmetric matrix with a unit diagonal matching the positions")
    v = float(x @ c @ x)
    return float(np.sqrt(max(v, 0.0)) * np.sqrt(horizon) * stats.norm.ppf(confidence))


def kupiec_pof(exceptions: int, n: int, p: float) -> dict:
    """Kupiec's proportion-of-failures test: ``exceptions`` losses beyond VaR in ``n``
    days for an expected rate ``p`` (1 - confidence). LR ~ chi2(1) under the model."""
    if not 0 <= exceptions <= n or n <= 0 or not 0 < p < 1:
        raise ValueError("need 0 <= exceptions <= n, n > 0, 0 < p < 1")
    x = exceptions
    phat = x / n

    def ll(q):
        a = (n - x) * np.log1p(-q) if n - x else 0.0
        b = x * np.log(q) if x else 0.0
        return a + b

    lr = -2.0 * (ll(p) - (ll(phat) if 0 < phat < 1 else 0.0))
    return {"exceptions": x, "n": n, "expected": p * n, "rate": phat, "lr": float(lr),
            "p_value": float(stats.chi2.sf(lr, 1))}


def var_backtest(returns, forecast_vol, confidence: float = 0.99) -> dict:
    """One-step-ahead parametric VaR backtest: exception when r_t < -z sigma_t (a long
    position's loss beyond VaR). ``forecast_vol[t]`` must use returns before t only."""
    r = np.asarray(returns, dtype=np.float64)
    s = np.asarray(forecast_vol, dtype=np.float64)
    if r.shape != s.shape:
        raise ValueError("returns and forecasts must have the same length")
    z = stats.norm.ppf(confidence)
    exc = int(np.sum(r < -z * s))
    return kupiec_pof(exc, r.size, 1 - confidence)
