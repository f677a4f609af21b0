"""Regime detection: the rules fire, hysteresis holds, and on real candles it does not flip."""
import numpy as np

from engine.feed.candles import load_candles
from engine.features.regime import CRASH, NAMES, NORMAL, TRENDING, VOLATILE, detect_regimes, regime_table
from engine.testing.data import shared_file


def walk(n, sigma, seed, drift=0.0):
    rng = np.random.default_rng(seed)
    return 100.0 * np.exp(np.cumsum(rng.normal(drift, sigma, n)))


def test_quiet_market_is_normal():
    d = detect_regimes(walk(5000, 0.0005, 1))
    assert np.mean(d["regime"] == NORMAL) > 0.95


def test_crash_volatility_and_trend_are_detected():
    base = walk(3000, 0.0005, 2)
    crash = base[-1] * np.exp(np.cumsum(np.full(180, -0.0006)))           # -10% over 3 hours
    after = crash[-1] * np.exp(np.cumsum(np.random.default_rng(3).normal(0, 0.0005, 600)))
    d = detect_regimes(np.concatenate([base, crash, after]))
    assert CRASH in set(d["regime"][3000:3400])
    vol = np.concatenate([walk(3000, 0.0005, 4), walk(600, 0.003, 5) * 1.0])
    vol[3000:] *= vol[2999] / vol[3000]
    d = detect_regimes(vol)
    assert VOLATILE in set(d["regime"][3000:])
    up = np.concatenate([walk(3000, 0.0005, 6), walk(600, 0.0005, 7, drift=0.00025)])
    up[3000:] *= up[2999] / up[3000]
    d = detect_regimes(up)
    assert set(d["regime"][3300:]) & {TRENDING, 4}                       # TRENDING or BULL_RUN


def test_hysteresis_stops_flip_flopping():
    from engine.features.regime import SEVERITY
    r = detect_regimes(walk(20000, 0.0008, 8))["regime"]
    idx = np.flatnonzero(r[1:] != r[:-1]) + 1
    # a step down in severity never comes within 30 minutes of the previous change
    for a, b in zip(idx[:-1], idx[1:]):
        if SEVERITY[r[b]] < SEVERITY[r[b - 1]]:
            assert b - a >= 30
    # and every change was confirmed: the new regime lasts at least until the next change
    assert len(idx) < 20000 / 10


def test_real_candles_table():
    c = load_candles(shared_file("TheSnowGuru__Market-Swarm-Agents-", "user_data", "data", "binance", "futures",
                                 "BTC_USDT_USDT-1m-futures.feather"))
    d = detect_regimes(c["close"])
    tab = regime_table(c["ts"], d["regime"])
    assert tab["days"] == 30.0 and abs(sum(tab["share"].values()) - 1) < 1e-3
    assert 0 < tab["transitions_per_day"] < 10           # it changes, but it does not flip every tick
    assert tab["share"]["NORMAL"] > 0.5
    assert set(tab["share"]) == set(NAMES)
