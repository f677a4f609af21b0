"""Round trips, trade statistics, the bootstrap interval; the online regime detector."""
import numpy as np
import pytest

from engine.backtest.engine import _StratBook, bootstrap_mean_ci, trade_stats
from engine.features.regime import CRASH, NORMAL, OnlineRegime, detect_regimes


def test_round_trips_flat_to_flat_and_through_zero_net_of_fees():
    b = _StratBook(1.0)
    b.fill(+2, 100, 0.1)      # open long 2 @ 100
    b.fill(-2, 103, 0.1)      # close: +6, fees 0.2 -> +5.8
    assert b.trips == [pytest.approx(5.8)]
    b.fill(-1, 103, 0.05)     # open short 1 @ 103
    b.fill(+3, 101, 0.05)     # cover (+2) and reverse to long 2 @ 101: trip +2 - 0.1
    assert b.trips[1] == pytest.approx(1.9)
    b.fill(-2, 100, 0.0)      # close the long: -2
    assert b.trips[2] == pytest.approx(-2.0)
    assert b.qty == 0 and b.turnover == pytest.approx(2 * 100 + 2 * 103 + 103 + 3 * 101 + 2 * 100)


def test_trade_stats():
    s = trade_stats([3.0, -1.0, 2.0, -2.0])
    assert s["round_trips"] == 4 and s["win_rate"] == 0.5
    assert s["profit_factor"] == pytest.approx(5 / 3) and s["mean"] == pytest.approx(0.5)
    lo, hi = s["mean_ci95"]
    assert lo < 0.5 < hi
    assert trade_stats([])["win_rate"] is None
    assert trade_stats([1.0, 2.0])["profit_factor"] == "inf"


def test_bootstrap_interval_covers_the_mean_and_narrows_with_n():
    rng = np.random.default_rng(0)
    small = bootstrap_mean_ci(rng.normal(1.0, 1.0, 30), seed=1)
    big = bootstrap_mean_ci(rng.normal(1.0, 1.0, 3000), seed=1)
    assert big[0] < 1.0 < big[1]
    assert big[1] - big[0] < (small[1] - small[0]) / 5
    assert bootstrap_mean_ci([1.0]) is None
    assert bootstrap_mean_ci([1.0, 2.0, 4.0], seed=3) == bootstrap_mean_ci([1.0, 2.0, 4.0], seed=3)


def test_online_regime_equals_the_batch_detector_minute_by_minute():
    rng = np.random.default_rng(5)
    calm = 60_000 * np.exp(np.cumsum(rng.normal(0, 3e-4, 8 * 1440)))
    crash = calm[-1] * np.exp(np.cumsum(np.full(300, -4e-4) + rng.normal(0, 3e-4, 300)))
    closes = np.concatenate([calm, crash])
    hist = closes[:-400]
    live = closes[-400:]
    on = OnlineRegime(hist)
    seen = []
    for m, c in enumerate(live):                       # one mid per minute, then the next minute closes it
        t = (10_000 + m) * 60_000_000_000
        on.on_mid(t, c)
        seen.append(on.regime)
    on.on_mid((10_000 + len(live)) * 60_000_000_000, live[-1])
    batch = detect_regimes(closes)["regime"]
    assert on.regime == batch[-1]
    assert batch[-1] == CRASH and seen[0] == NORMAL
    assert on.changes >= 1
