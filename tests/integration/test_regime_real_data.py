"""OnlineRegime, advanced one minute at a time in constant time and memory, gives the batch
detector's answer at every minute of 30 days of real 1-minute closes (bit for bit: the same
arithmetic in the same order), past the 7-day volatility reference and the 1-day drawdown
window it now keeps instead of the whole history."""
import numpy as np
import pytest

from engine.feed.candles import load_candles
from engine.features.regime import DD_WIN, REF_WIN, OnlineRegime, detect_regimes
from engine.testing.data import shared_file

FILES = [
    ("TheSnowGuru__Market-Swarm-Agents-", "BTC_USDT_USDT-1m-futures.feather"),
    ("TheSnowGuru__Market-Swarm-Agents-", "ETH_USDT_USDT-1m-futures.feather"),
]


@pytest.mark.parametrize("repo,name", FILES)
def test_online_regime_is_the_batch_detector_at_every_minute(repo, name):
    closes = load_candles(shared_file(repo, "user_data", "data", "binance", "futures", name))["close"]
    assert len(closes) > REF_WIN + DD_WIN                 # the windows are exercised, not just filled
    batch = detect_regimes(closes)["regime"]
    assert len(set(batch.tolist())) >= 3                  # the data moves through several regimes
    on = OnlineRegime()
    got = np.array([on._close(float(c)) for c in closes])
    assert np.array_equal(got, batch)
    assert len(on.closes) == DD_WIN and len(on.sums) == REF_WIN      # bounded, however long it runs
    # seeded with history, then live minutes through on_mid: the same as the batch at the end
    seeded = OnlineRegime(closes[:-500])
    for m, c in enumerate(closes[-500:]):
        seeded.on_mid((1_000_000 + m) * 60_000_000_000, float(c))
    seeded.on_mid((1_000_000 + 500) * 60_000_000_000, float(closes[-1]))
    assert seeded.regime == batch[-1] and seeded.t == len(closes) - 1
