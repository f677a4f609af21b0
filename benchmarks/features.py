#!/usr/bin/env python
"""25-feature update per market message, as the brain calls it from Python, on the BTCUSDT
capture; batch rows/s (training); against recomputing the technical indicators with
TA-Lib over a window per message (what a naive live engine does) in the same run.
The regime detector per closed minute on 30 days of real ETHUSDT 1-minute closes:
OnlineRegime (one minute's step) against running the batch detector over the history
at that minute (what OnlineRegime did until stop 20: a stall that grew with uptime).

    python benchmarks/features.py

Excluded: numba compilation (done by FeatureEngine.warmup() before the first message, and
cached on disk), building the message table (replay through the feed handler).
"""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import emit, host, latency_stats  # noqa: E402

from engine.features.dataset import message_table  # noqa: E402
from engine.features.vector import FeatureEngine, batch_features  # noqa: E402
from engine.testing.data import USDM_CAPTURES, shared_path  # noqa: E402


def main():
    path = shared_path(*USDM_CAPTURES, "btcusdt_20240808.gz")
    if not os.path.exists(path):
        sys.exit(f"the BTCUSDT capture is not at {path}")
    h = host()
    T = message_table(path, "BTCUSDT")
    ins = T["instrument"]
    tick, lot = float(ins.tick_size), float(ins.lot_size)
    msgs = [(T["recs"][a:b], T["tops"][i:i + 1]) for i, (a, b) in enumerate(zip(T["starts"], T["ends"]))]
    fe = FeatureEngine(tick, lot)
    t0 = time.perf_counter()
    fe.warmup()
    warm_s = time.perf_counter() - t0
    lat = np.empty(len(msgs), np.int64)
    pc = time.perf_counter_ns
    on = fe.on_message
    for i, (r, t) in enumerate(msgs):
        t0 = pc()
        on(r, t)
        lat[i] = pc() - t0
    base = {"bench": "features", "symbol": "BTCUSDT", "messages": len(msgs)}
    emit({**base, "case": "FeatureEngine.on_message (25 features), from Python", **latency_stats(lat),
          "per_s": round(len(lat) / (lat.sum() / 1e9)), "warmup_s": round(warm_s, 3),
          "excluded": "numba compilation (warm-up, cached), message table"}, h)
    ready = lat[-len(lat) // 10:]
    emit({**base, "case": "FeatureEngine.on_message, last 10% of the capture (all windows full)",
          **latency_stats(ready)}, h)
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        batch_features(T["recs"], T["starts"], T["ends"], T["tops"], tick, lot)
        runs.append(time.perf_counter() - t0)
    emit({**base, "case": "batch_features, whole capture", "unit": "rows/s", "n": len(msgs),
          "per_s": round(len(msgs) / min(runs)), "best_s": round(min(runs), 4)}, h)
    regimes(h)
    try:
        import talib
    except ImportError:
        return
    rng = np.random.default_rng(0)
    closes = 61_800 + np.cumsum(rng.normal(0, 0.5, 200))
    hi, lo = closes + 0.3, closes - 0.3
    lat2 = np.empty(20_000, np.int64)
    for i in range(lat2.size):
        t0 = pc()
        talib.RSI(closes, 14)
        talib.MACD(closes, 12, 26, 9)
        talib.STOCH(hi, lo, closes, 14, 3, 0, 3, 0)
        talib.BBANDS(closes, 20, 2, 2, 0)
        talib.WILLR(hi, lo, closes, 14)
        lat2[i] = pc() - t0
    emit({**base, "case": "TA-Lib: recompute the 9 technicals over 200 bars per message",
          "vs": "FeatureEngine.on_message (25 features), from Python", **latency_stats(lat2)}, h)


def regimes(h):
    from engine.feed.candles import load_candles
    from engine.features.regime import OnlineRegime, detect_regimes
    path = shared_path("TheSnowGuru__Market-Swarm-Agents-", "user_data", "data", "binance", "futures",
                       "ETH_USDT_USDT-1m-futures.feather")
    if not os.path.exists(path):
        print(f"skipped the regime cases: no candles at {path}", file=sys.stderr)
        return
    closes = load_candles(path)["close"]
    on = OnlineRegime()
    on._close(float(closes[0]))                       # numba compilation (cached) out of the timing
    on = OnlineRegime()
    lat = np.empty(len(closes), np.int64)
    pc = time.perf_counter_ns
    for i, c in enumerate(closes):
        t0 = pc()
        on._close(float(c))
        lat[i] = pc() - t0
    base = {"bench": "features", "symbol": "ETHUSDT", "minutes": len(closes)}
    emit({**base, "case": "regime per closed minute: OnlineRegime (one minute's step)", **latency_stats(lat)}, h)
    for days in (1, 7, 30):
        hist = closes[:min(len(closes), days * 1440)]
        runs = []
        for _ in range(5 if days < 30 else 2):
            t0 = pc()
            detect_regimes(hist)
            runs.append(pc() - t0)
        emit({**base, "case": f"regime per closed minute: the batch detector over {days} day(s) of history",
              "vs": "regime per closed minute: OnlineRegime (one minute's step)", "unit": "ns",
              "n": len(runs), "best": min(runs), "history_minutes": len(hist)}, h)


if __name__ == "__main__":
    main()
