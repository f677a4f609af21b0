"""Sizing and VaR formulas with hand-computed values; Kupiec against known statistics."""
import numpy as np
import pytest
from scipy import stats

from engine.risk.sizing import kelly_fraction, position_lots, size_from_stop, vol_scaled_fraction
from engine.risk.var import historical_var, kupiec_pof, parametric_var, portfolio_var, var_backtest
from engine.risk.volatility import ewma_variance, historical_vol


def test_kelly():
    assert kelly_fraction(0.6, 1.0, fraction=1.0) == pytest.approx(0.2)
    assert kelly_fraction(0.6, 1.0) == pytest.approx(0.1)            # half Kelly by default
    assert kelly_fraction(0.4, 1.0) == 0.0                            # no edge, no bet
    assert kelly_fraction(0.5, 2.0, fraction=1.0) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        kelly_fraction(1.2, 1.0)


def test_size_from_stop_and_vol_scaling():
    # risk 1% of 100k = 1,000 with a 100 USDT stop on a 0.001 BTC lot: 1000 / (100 x 0.001) lots
    assert size_from_stop(100_000, 0.01, 60_000, 59_900, 0.001) == 10_000
    assert vol_scaled_fraction(0.02, 0.04) == 0.5 and vol_scaled_fraction(0.02, 0.0) == 0.0
    lots = position_lots(100_000, 60_000, 0.001, win_rate=0.6, payoff=1.0, target_vol=0.01, asset_vol=0.03,
                         max_fraction=0.10, regime_mult=1.5)
    assert lots == int(100_000 * 0.10 / 60)                           # Kelly 0.1 x 1.5 capped at the 10% hard limit


def test_var():
    z = stats.norm.ppf(0.99)
    assert parametric_var(10_000, 0.02) == pytest.approx(10_000 * 0.02 * z)
    assert parametric_var(-10_000, 0.02, horizon=4) == pytest.approx(10_000 * 0.02 * 2 * z)
    r = np.linspace(-0.05, 0.05, 101)
    assert historical_var(r, 1000, 0.99) == pytest.approx(-1000 * np.quantile(r, 0.01))
    # two perfectly correlated positions add; opposite ones cancel
    assert portfolio_var([100, 100], [0.1, 0.1], [[1, 1], [1, 1]]) == pytest.approx(20 * z)
    assert portfolio_var([100, -100], [0.1, 0.1], [[1, 1], [1, 1]]) == pytest.approx(0)
    assert portfolio_var([100, 100], [0.1, 0.1], np.eye(2)) == pytest.approx(np.sqrt(200) * z)
    with pytest.raises(ValueError):
        portfolio_var([1, 1], [0.1, 0.1], [[1, 0.5], [0.4, 1]])


def test_kupiec_known_values():
    k = kupiec_pof(10, 1000, 0.01)
    assert k["lr"] == pytest.approx(0.0) and k["p_value"] == pytest.approx(1.0)
    k = kupiec_pof(20, 1000, 0.01)
    lr = -2 * (980 * np.log(0.99) + 20 * np.log(0.01) - 980 * np.log(0.98) - 20 * np.log(0.02))
    assert k["lr"] == pytest.approx(lr) and k["p_value"] == pytest.approx(stats.chi2.sf(lr, 1))
    assert kupiec_pof(0, 250, 0.01)["lr"] == pytest.approx(-2 * 250 * np.log(0.99))
    bt = var_backtest(np.array([-0.05, 0.01, 0.0, -0.001]), np.array([0.01] * 4), 0.99)
    assert bt["exceptions"] == 1


def test_ewma_and_historical():
    r = np.array([0.01, -0.02, 0.015, 0.0, -0.005])
    v = ewma_variance(r, 0.94, init=0.0001)
    want = [0.0001]
    for x in r:
        want.append(0.94 * want[-1] + 0.06 * x * x)
    assert np.allclose(v, want)
    assert historical_vol(r) == pytest.approx(np.std(r, ddof=1))
    with pytest.raises(ValueError):
        ewma_variance(r, 1.5)
