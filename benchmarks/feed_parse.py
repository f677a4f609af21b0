#!/usr/bin/env python
"""Feed parsing: bytes of a real depthUpdate -> book applied, per message, on the BTCUSDT
capture, against orjson.loads + float conversion + a dict book in the same run.

    python benchmarks/feed_parse.py [--passes N]

Cases (one JSON line each):
- "depthUpdate -> book, C loop": cext.binance parse + cext.book sync/apply per message,
  timed in C around the same cdef calls the feed makes (the ~40 ns of two clock reads
  included).
- "depthUpdate -> book, Python calls": the same work through the Python API
  (parser.parse + sync.apply), as a Python feed loop pays it.
- "orjson + float + dict book": orjson.loads, float() of every price and size, a dict per
  side; "+ best" also keeps best bid/ask (max/min over the dict) as our book does.
- bookTicker and trade parse only (the other hot messages).
messages/s is on one core: messages / total time of the timed calls.

Excluded: reading and decompressing the capture, the REST snapshot application before
each pass (the book is re-synced from the capture's snapshot, untimed, so every pass
applies the real sequence).
"""
import argparse
import os
import sys
import time

import numpy as np
import orjson

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import emit, host, latency_stats  # noqa: E402

from cext import feedbench  # noqa: E402
from cext.binance import BinanceParser  # noqa: E402
from cext.book import BinanceBookSync, OrderBook  # noqa: E402
from engine import schema  # noqa: E402
from engine.feed.capture import load_capture  # noqa: E402
from engine.venues.instruments import Instrument  # noqa: E402


def synced(parser, ins, snap, pre):
    """A fresh book synced from the capture's snapshot and the diffs before it."""
    sync = BinanceBookSync(OrderBook(ins.inst, 1 << 16))
    out = np.zeros(8192, schema.MARKET_DTYPE)
    for f in pre:
        n = parser.parse(f, 0, out)
        sync.apply(out[:n])
    n = parser.parse(snap, 0, out, ins.symbol)
    sync.apply(out[:n])
    for m in sync.take_pending():
        sync.apply(m)
    return sync


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--passes", type=int, default=5)
    args = ap.parse_args()
    path = _path()
    # Binance's instrument rules for BTCUSDT perpetual in 2024 (../shared/data/README.md):
    # tick 0.10, lot 0.001; the feed uses the exchange's rules, not the printed decimals
    ins = Instrument(symbol="BTCUSDT", inst=0, price_decimals=2, qty_decimals=3, tick_units=10, lot_units=1)
    lines = load_capture(path)
    snap_idx = next(i for i, (_, f) in enumerate(lines) if not f.startswith(b'{"stream"'))
    depth = [f for _, f in lines if b"depthUpdate" in f[:60]]
    pre = [f for _, f in lines[:snap_idx] if b"depthUpdate" in f[:60]]
    # the depth messages that continue the book after the snapshot (the bridge applied at sync)
    parser = BinanceParser([ins])
    sync = synced(parser, ins, lines[snap_idx][1], pre)
    after = [f for f in depth if orjson.loads(f)["data"]["u"] > sync.last_u]
    h = host()
    base = {"bench": "feed_parse", "symbol": "BTCUSDT", "messages": len(after),
            "avg_levels": round(float(np.mean([len(orjson.loads(f)["data"]["b"]) + len(orjson.loads(f)["data"]["a"])
                                               for f in after])), 1)}
    out = np.zeros(8192, schema.MARKET_DTYPE)

    # ---- ours, C loop
    lat_all, t_all = [], 0
    for _ in range(args.passes):
        s = synced(parser, ins, lines[snap_idx][1], pre)
        lat = np.zeros(len(after), np.int64)
        applied, rejected, other = feedbench.depth_to_book(parser, s, after, out, lat)
        assert applied == len(after) and rejected == 0 and other == 0, (applied, rejected, other)
        lat_all.append(lat)
        t_all += int(lat.sum())
    lat = np.concatenate(lat_all)
    emit({**base, "case": "depthUpdate -> book, C loop", **latency_stats(lat),
          "per_s": round(len(lat) / (t_all / 1e9)),
          "excluded": "capture I/O, snapshot re-sync between passes"}, h)

    # ---- ours, Python calls
    lat_all, t_all = [], 0
    perf = time.perf_counter_ns
    for _ in range(args.passes):
        s = synced(parser, ins, lines[snap_idx][1], pre)
        lat = np.zeros(len(after), np.int64)
        for i, f in enumerate(after):
            t0 = perf()
            n = parser.parse(f, t0, out)
            s.apply(out[:n])
            lat[i] = perf() - t0
        lat_all.append(lat)
        t_all += int(lat.sum())
    lat = np.concatenate(lat_all)
    emit({**base, "case": "depthUpdate -> book, Python calls", **latency_stats(lat),
          "per_s": round(len(lat) / (t_all / 1e9))}, h)

    # ---- the obvious alternative: orjson + float + dict book
    snap_msg = orjson.loads(lines[snap_idx][1])
    for with_best in (False, True):
        lat_all, t_all = [], 0
        for _ in range(args.passes):
            bids = {float(p): float(q) for p, q in snap_msg["bids"]}
            asks = {float(p): float(q) for p, q in snap_msg["asks"]}
            lat = np.zeros(len(after), np.int64)
            for i, f in enumerate(after):
                t0 = perf()
                d = orjson.loads(f)["data"]
                for p, q in d["b"]:
                    p, q = float(p), float(q)
                    if q == 0.0:
                        bids.pop(p, None)
                    else:
                        bids[p] = q
                for p, q in d["a"]:
                    p, q = float(p), float(q)
                    if q == 0.0:
                        asks.pop(p, None)
                    else:
                        asks[p] = q
                if with_best:
                    bb, ba = max(bids), min(asks)
                lat[i] = perf() - t0
            lat_all.append(lat)
            t_all += int(lat.sum())
        lat = np.concatenate(lat_all)
        emit({**base, "case": "orjson + float + dict book" + (" + best bid/ask" if with_best else ""),
              "vs": "depthUpdate -> book, Python calls", **latency_stats(lat),
              "per_s": round(len(lat) / (t_all / 1e9))}, h)

    # ---- other hot messages: parse only
    for kind in (b"bookTicker", b"trade"):
        frames = [f for _, f in lines if kind in f[:40]]
        lat = np.zeros(len(frames), np.int64)
        feedbench.parse_only(parser, frames, out, lat)
        emit({"bench": "feed_parse", "symbol": "BTCUSDT", "messages": len(frames),
              "case": f"{kind.decode()} parse, C loop", **latency_stats(lat),
              "per_s": round(len(lat) / (lat.sum() / 1e9))}, h)


def _path():
    from engine.testing.data import shared_path, USDM_CAPTURES
    p = shared_path(*USDM_CAPTURES, "btcusdt_20240808.gz")
    if not os.path.exists(p):
        sys.exit(f"the BTCUSDT capture is not at {p} (set CRYPTOSCALP_SHARED_DATA)")
    return p


if __name__ == "__main__":
    main()
