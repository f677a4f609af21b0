"""Volatility estimators: historical, EWMA, GARCH(1,1) by maximum likelihood, an ensemble.

All take a 1-D array of returns (any scaling; the result is in the same units) and give
the standard deviation of the next return.

GARCH(1,1) uses the ``arch`` package's parametrisation, so results compare directly:
    r_t = mu + e_t,  e_t ~ N(0, s2_t),  s2_t = omega + alpha e_{t-1}^2 + beta s2_{t-1},
with s2_0 from arch's "backcast" (the 0.94-weighted mean of the first 75 squared
residuals) and the exact Gaussian log-likelihood. The fit maximises it over
omega > 0, alpha >= 0, beta >= 0, alpha + beta < 1 in a transformed space (log omega,
logit of persistence and of alpha's share), Nelder-Mead with restarts, then a quasi-Newton
polish. On the 1-minute candles in ../shared/data, arch 8.0's default fit stops at its own
starting values (alpha 0.1, beta 0.88) with a lower likelihood than this fit; started from
this fit's estimate, arch's optimiser stays there (tests/integration/test_risk_real_data.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.signal import lfilter

LOG2PI = float(np.log(2 * np.pi))


def historical_vol(returns, window: int | None = None) -> float:
    """Sample standard deviation of the last ``window`` returns (all if None)."""
    r = np.asarray(returns, dtype=np.float64)
    if window is not None:
        r = r[-window:]
    if r.size < 2:
        raise ValueError("historical volatility needs at least 2 returns")
    return float(r.std(ddof=1))


def ewma_variance(returns, lam: float = 0.94, init: float | None = None) -> np.ndarray:
    """RiskMetrics EWMA: v_t = lam v_{t-1} + (1 - lam) r_{t-1}^2; v[t] is the variance
    forecast for return t made with returns before t. ``init`` defaults to the mean
    square of the first min(30, n) returns."""
    r = np.asarray(returns, dtype=np.float64)
    if not 0 < lam < 1:
        raise ValueError(f"lambda must be in (0, 1), got {lam}")
    if r.size == 0:
        raise ValueError("EWMA needs at least one return")
    v0 = float(np.mean(r[: min(30, r.size)] ** 2)) if init is None else float(init)
    x = np.empty(r.size + 1)
    x[0] = v0
    x[1:] = (1 - lam) * r * r
    out = lfilter([1.0], [1.0, -lam], x)
    return out            # out[t] = forecast for r[t]; out[-1] = next


def ewma_vol(returns, lam: float = 0.94) -> float:
    """EWMA forecast of the next return's standard deviation."""
    return float(np.sqrt(ewma_variance(returns, lam)[-1]))


@dataclass(frozen=True)
class GarchFit:
    """A fitted GARCH(1,1) with constant mean and normal errors (arch's parametrisation)."""
    mu: float
    omega: float
    alpha: float
    beta: float
    loglikelihood: float
    nobs: int
    last_resid: float       # e_T
    last_variance: float    # s2_T

    @property
    def persistence(self) -> float:
        return self.alpha + self.beta

    @property
    def unconditional_variance(self) -> float:
        return self.omega / (1 - self.persistence) if self.persistence < 1 else float("inf")

    def forecast_variance(self, horizon: int = 1) -> np.ndarray:
        """Variance forecasts for T+1..T+horizon (arch's analytic forecasts)."""
        f = np.empty(horizon)
        f[0] = self.omega + self.alpha * self.last_resid ** 2 + self.beta * self.last_variance
        for h in range(1, horizon):
            f[h] = self.omega + self.persistence * f[h - 1]
        return f

    def forecast_vol(self, horizon: int = 1) -> float:
        """Standard deviation of the sum of the next ``horizon`` returns."""
        return float(np.sqrt(self.forecast_variance(horizon).sum()))


def _backcast(e: np.ndarray) -> float:
    tau = min(75, e.size)
    w = 0.94 ** np.arange(tau)
    return float(np.sum(e[:tau] ** 2 * (w / w.sum())))


def garch11_variance(y: np.ndarray, mu: float, omega: float, alpha: float, beta: float):
    """Residuals and conditional variances s2_t of a GARCH(1,1) on returns y."""
    e = y - mu
    bc = _backcast(e)
    x = np.empty_like(e)
    x[0] = omega + alpha * bc
    x[1:] = omega + alpha * e[:-1] ** 2
    s2, _ = lfilter([1.0], [1.0, -beta], x, zi=[beta * bc])
    return e, s2


def garch11_loglik(y, mu, omega, alpha, beta) -> float:
    e, s2 = garch11_variance(np.asarray(y, dtype=np.float64), mu, omega, alpha, beta)
    if not np.all(s2 > 0) or not np.all(np.isfinite(s2)):
        return -np.inf
    return float(-0.5 * np.sum(LOG2PI + np.log(s2) + e * e / s2))


def _unpack(z, scale):
    mu = z[0] * scale
    omega = np.exp(z[1]) * scale * scale
    p = 1.0 / (1.0 + np.exp(-z[2]))
    f = 1.0 / (1.0 + np.exp(-z[3]))
    return mu, omega, p * f, p * (1 - f)


def garch11_fit(returns, starts=((0.05, 0.90), (0.10, 0.85), (0.15, 0.80), (0.03, 0.96))) -> GarchFit:
    """Maximum-likelihood GARCH(1,1) with constant mean and normal errors, on the returns
    as given (no rescaling of the result; internally the optimiser works on y / std(y))."""
    y = np.asarray(returns, dtype=np.float64)
    if y.ndim != 1 or y.size < 100:
        raise ValueError(f"garch11_fit needs a 1-D series of at least 100 returns, got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError("returns contain NaN or inf")
    scale = float(y.std())
    if scale == 0:
        raise ValueError("returns are constant: no volatility to model")
    n = y.size

    def nll(z):
        v = -garch11_loglik(y, *_unpack(z, scale)) / n
        return v if np.isfinite(v) else 1e10

    best = None
    for a0, b0 in starts:
        p0 = a0 + b0
        z0 = np.array([y.mean() / scale, np.log((1 - p0)), np.log(p0 / (1 - p0)), np.log(a0 / b0)])
        res = minimize(nll, z0, method="Nelder-Mead",
                       options={"maxiter": 3000, "xatol": 1e-9, "fatol": 1e-13})
        if best is None or res.fun < best.fun:
            best = res
    z = best.x
    for _ in range(3):                     # restarts: Nelder-Mead can stall in a valley
        res = minimize(nll, z, method="Nelder-Mead", options={"maxiter": 3000, "xatol": 1e-10, "fatol": 1e-14})
        if res.fun >= nll(z) - 1e-13:
            break
        z = res.x
    pol = minimize(nll, z, method="BFGS", options={"gtol": 1e-9, "maxiter": 500})
    if pol.fun < nll(z):
        z = pol.x
    mu, omega, alpha, beta = _unpack(z, scale)
    e, s2 = garch11_variance(y, mu, omega, alpha, beta)
    return GarchFit(mu=float(mu), omega=float(omega), alpha=float(alpha), beta=float(beta),
                    loglikelihood=garch11_loglik(y, mu, omega, alpha, beta), nobs=n,
                    last_resid=float(e[-1]), last_variance=float(s2[-1]))


def ensemble_vol(returns, weights=(1 / 3, 1 / 3, 1 / 3), window: int = 1440, lam: float = 0.94,
                 garch: GarchFit | None = None) -> dict:
    """Next-return volatility from historical (last ``window``), EWMA and GARCH, and their
    weighted average. A GARCH fit may be passed in (refitting per call is slow)."""
    h = historical_vol(returns, window)
    e = ewma_vol(returns, lam)
    g = garch.forecast_vol(1) if garch is not None else garch11_fit(returns).forecast_vol(1)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (3,) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError("weights must be three non-negative numbers with a positive sum")
    w = w / w.sum()
    return {"historical": h, "ewma": e, "garch": g, "ensemble": float(w @ [h, e, g])}
