"""Risk estimators on the real 1-minute candles in ../shared/data.

GARCH(1,1) vs the arch package (tolerances, documented):
- arch's own optimiser, started at our estimate, stays there: alpha, beta, omega within
  1e-3 relative, mu within 1e-3 of the returns' std, log-likelihood within 0.05, one-step
  variance forecast within 1e-3 relative;
- arch's default fit never has a higher log-likelihood than ours (+0.05). On these series
  arch 8.0's default fit stops at its starting values (alpha 0.1, beta 0.88); the test
  records that rather than hiding it.
"""
import numpy as np
import pytest

from engine.feed.candles import load_candles, log_returns
from engine.risk.report import garch_vs_arch, kupiec_report
from engine.risk.volatility import ewma_variance, garch11_fit, garch11_variance
from engine.testing.data import shared_file

FILES = [
    ("TheSnowGuru__Market-Swarm-Agents-", "BTC_USDT_USDT-1m-futures.feather"),
    ("TheSnowGuru__Market-Swarm-Agents-", "ETH_USDT_USDT-1m-futures.feather"),
    ("houssamboudiar__freqtrade", "BTC_USDT_USDT-1m-futures.feather"),
]


def returns(repo, name):
    path = shared_file(repo, "user_data", "data", "binance", "futures", name)
    return log_returns(load_candles(path)) * 100.0


@pytest.mark.parametrize("repo,name", FILES)
def test_garch_agrees_with_arch(repo, name):
    pytest.importorskip("arch")
    r = returns(repo, name)
    g = garch_vs_arch(r)
    ours, a = g["ours"], g["arch_from_ours"]
    for k in ("alpha", "beta", "omega"):
        assert ours[k] == pytest.approx(a[k], rel=1e-3), k
    assert abs(ours["mu"] - a["mu"]) <= 1e-3 * r.std()
    assert abs(ours["loglik"] - a["loglik"]) <= 0.05
    assert ours["forecast_var"] == pytest.approx(a["forecast_var"], rel=1e-3)
    assert g["arch_default"]["loglik"] <= ours["loglik"] + 0.05
    assert 0 < ours["alpha"] < 1 and 0 < ours["beta"] < 1 and ours["alpha"] + ours["beta"] < 1


def test_garch_fit_is_scale_equivariant():
    r = returns(*FILES[0])[:10_000]
    a, b = garch11_fit(r), garch11_fit(r / 100.0)
    assert b.alpha == pytest.approx(a.alpha, rel=1e-4) and b.beta == pytest.approx(a.beta, rel=1e-4)
    assert b.omega == pytest.approx(a.omega / 1e4, rel=1e-3)
    with pytest.raises(ValueError, match="at least 100"):
        garch11_fit(r[:50])


def test_var_forecasts_use_only_the_past_and_kupiec_counts():
    r = returns(*FILES[0])[:20_000]
    g = garch11_fit(r[:10_000])
    _, s2 = garch11_variance(r, g.mu, g.omega, g.alpha, g.beta)
    ew = ewma_variance(r)
    t = 15_000
    r2 = r.copy()
    r2[t] = 50.0                                   # a shock at t changes forecasts after t only
    _, s2b = garch11_variance(r2, g.mu, g.omega, g.alpha, g.beta)
    ewb = ewma_variance(r2)
    assert s2b[t] == s2[t] and s2b[t + 1] != s2[t + 1]
    assert ewb[t] == ew[t] and ewb[t + 1] != ew[t + 1]
    rep = kupiec_report(r)
    m = rep["models"]["garch11"]["0.99"]
    half = r.size // 2
    _, s2h = garch11_variance(r, *[getattr(garch11_fit(r[:half]), k) for k in ("mu", "omega", "alpha", "beta")])
    mu = garch11_fit(r[:half]).mu
    assert m["exceptions"] == int(np.sum(r[half:] - mu < -2.3263478740408408 * np.sqrt(s2h[half:])))
    assert 0 <= m["p_value"] <= 1 and m["n"] == r.size - half
