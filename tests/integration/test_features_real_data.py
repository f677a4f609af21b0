"""Features on the real BTCUSDT capture: batch (training) == incremental (live), bit for bit."""
import numpy as np

from engine.features.dataset import message_table
from engine.features.vector import NAMES, FeatureEngine, batch_features


def test_batch_equals_incremental_on_the_capture(btc_capture):
    T = message_table(btc_capture, "BTCUSDT")
    ins = T["instrument"]
    tick, lot = float(ins.tick_size), float(ins.lot_size)
    out, ready, times = batch_features(T["recs"], T["starts"], T["ends"], T["tops"], tick, lot)
    assert len(out) > 90_000
    from engine.features.vector import P_LAST_B
    fe = FeatureEngine(tick, lot)
    fe.warmup()
    clock = -1.0
    for i, (a, b) in enumerate(zip(T["starts"], T["ends"])):
        t = fe.on_message(T["recs"][a:b], T["tops"][i:i + 1])
        assert t == times[i]
        assert fe.S[P_LAST_B] >= clock             # the kernel's clock never goes back ...
        clock = fe.S[P_LAST_B]
        assert np.array_equal(fe.out, out[i], equal_nan=True), f"message {i}: {NAMES}"
        assert np.array_equal(fe.ready, ready[i])
    # after the 300 s warm-up of the longest window everything is ready, and stays so
    first_all = int(np.flatnonzero(ready.all(axis=1))[0])
    assert (times[first_all] - times[0]) / 1e9 >= 299.0
    assert ready[first_all:].all()
    assert np.isfinite(out[first_all:]).all()
    # ... although messages of different streams arrive slightly out of exchange-time order
    back = np.diff(times) < 0
    assert 0 < back.mean() < 0.2
