"""Indicators against TA-Lib on the real 1-minute candles.

Conventions matched (see engine/features/indicators.py): EMA and RSI seeded with simple
means (TA-Lib's defaults, no unstable period); STOCH with SMA smoothing; BBANDS with the
population standard deviation. Agreement: |ours - talib| <= 1e-9 x max(|talib|, 1) from
TA-Lib's first output, except MACD, whose fast EMA TA-Lib seeds at the slow EMA's start:
compared after 1000 bars, when both seeds have decayed below 1e-9.
"""
import numpy as np
import pytest

from engine.feed.candles import load_candles
from engine.features import indicators as I
from engine.testing.data import shared_file

talib = pytest.importorskip("talib")

FILES = [("TheSnowGuru__Market-Swarm-Agents-", "BTC_USDT_USDT-1m-futures.feather"),
         ("chrisyer__freqtrade-strategies", "ETH_USDT_USDT-1m-futures.feather")]


@pytest.fixture(params=FILES, ids=lambda f: f[0].split("__")[0] + ":" + f[1][:3])
def candles(request):
    repo, name = request.param
    return load_candles(shared_file(repo, "user_data", "data", "binance", "futures", name))


def agree(ours, theirs, start=None):
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    first = int(np.flatnonzero(~np.isnan(theirs))[0])
    if start is None:
        assert np.isnan(ours[:first]).all(), "ours emits before TA-Lib's warm-up"
        assert not np.isnan(ours[first]), "ours starts later than TA-Lib"
        start = first
    a, b = ours[start:], theirs[start:]
    assert not np.isnan(a).any() and not np.isnan(b).any()
    assert np.all(np.abs(a - b) <= 1e-9 * np.maximum(np.abs(b), 1.0)), float(np.max(np.abs(a - b)))


def test_rsi_ema(candles):
    c = candles["close"]
    agree(I.rsi(c, 14), talib.RSI(c, 14))
    agree(I.rsi(c, 7), talib.RSI(c, 7))
    agree(I.ema(c, 20), talib.EMA(c, 20))
    agree(I.ema(c, 9), talib.EMA(c, 9))


def test_macd(candles):
    c = candles["close"]
    ours, theirs = I.macd(c, 12, 26, 9), talib.MACD(c, 12, 26, 9)
    for a, b in zip(ours, theirs):
        agree(a, b, start=1000)
    assert int(np.flatnonzero(~np.isnan(ours[1]))[0]) == int(np.flatnonzero(~np.isnan(theirs[1]))[0])


def test_stoch_bbands_willr(candles):
    h, lo, c = candles["high"], candles["low"], candles["close"]
    k, d = I.stoch(h, lo, c, 14, 3, 3)
    tk, td = talib.STOCH(h, lo, c, fastk_period=14, slowk_period=3, slowk_matype=0, slowd_period=3, slowd_matype=0)
    # TA-Lib emits %K only once %D exists; ours emits %K two bars earlier
    first = int(np.flatnonzero(~np.isnan(td))[0])
    agree(k, tk, start=first)
    agree(d, td)
    for a, b in zip(I.bbands(c, 20, 2.0), talib.BBANDS(c, 20, 2.0, 2.0, 0)):
        agree(a, b)
    agree(I.willr(h, lo, c, 14), talib.WILLR(h, lo, c, 14))


def test_flat_windows_follow_talib_conventions():
    flat = np.full(60, 100.0)
    assert np.nanmax(np.abs(I.willr(flat, flat, flat, 14))) == 0.0
    k, d = I.stoch(flat, flat, flat)
    assert np.nanmax(k) == 0.0 and np.nanmax(d) == 0.0
    assert I.rsi(flat, 14)[-1] == 0.0
    up, mid, lo = I.bbands(flat)
    assert up[-1] == mid[-1] == lo[-1] == 100.0
