#!/usr/bin/env python
"""The hftbacktest half of benchmarks/backtest_vs_hftbacktest.py. Runs in its own virtual
environment (hftbacktest 2.4.4 needs numpy < 2.3; `make hbt-env` builds .venv-hbt), prints
one JSON object. Not imported by the engine.

    .venv-hbt/bin/python benchmarks/hbt_side.py CAPTURE --tick 0.1 --lot 0.001

The rule (the same as engine.strategies.touch.TouchQuoter): on every feed event, one bid
one tick below the best bid and one ask one tick above the best ask, post-only (GTX),
``qty``; when the wanted price of a side changes, cancel the old order and submit the new
one at once; no new order on a side that would take |position| beyond ``max_pos``.
Constant 10 ms order entry and response latency; the risk-averse queue model (only trades
advance the queue: our engine's cancel_ahead_frac = 0); no partial fills
"""
import argparse
import gzip
import json
import time

import numpy as np
from numba import njit

from hftbacktest import BacktestAsset, HashMapMarketDepthBacktest
from hftbacktest.data.utils.binancefutures import convert
from hftbacktest.order import CANCELED, EXPIRED, FILLED, GTX, LIMIT, REJECTED
from hftbacktest.types import (BUY_EVENT, DEPTH_CLEAR_EVENT, DEPTH_EVENT, DEPTH_SNAPSHOT_EVENT, EXCH_EVENT,
                               LOCAL_EVENT, SELL_EVENT, TRADE_EVENT, event_dtype)


@njit
def touch_rule(hbt, qty, max_pos, lot):
    bid_id = 0
    ask_id = 0
    bid_px = 0
    ask_px = 0
    oid = 0
    orders = 0
    while True:
        r = hbt.wait_next_feed(True, 3_600_000_000_000)
        if r == 1:
            break
        depth = hbt.depth(0)
        bb = depth.best_bid_tick
        ba = depth.best_ask_tick
        pos = hbt.position(0)
        od = hbt.orders(0)
        if bid_id != 0:
            o = od.get(bid_id)
            if o is None or o.status == FILLED or o.status == CANCELED or o.status == EXPIRED or o.status == REJECTED:
                bid_id = 0
        if ask_id != 0:
            o = od.get(ask_id)
            if o is None or o.status == FILLED or o.status == CANCELED or o.status == EXPIRED or o.status == REJECTED:
                ask_id = 0
        hbt.clear_inactive_orders(0)
        want_bid = bb - 1 if (bb > 0 and ba > bb and pos + qty <= max_pos * lot + 1e-12) else 0
        want_ask = ba + 1 if (bb > 0 and ba > bb and pos - qty >= -max_pos * lot - 1e-12) else 0
        if bid_id != 0 and bid_px != want_bid:
            hbt.cancel(0, bid_id, False)
            bid_id = 0
        if bid_id == 0 and want_bid > 0:
            oid += 1
            hbt.submit_buy_order(0, oid, want_bid * depth.tick_size, qty, GTX, LIMIT, False)
            bid_id = oid
            bid_px = want_bid
            orders += 1
        if ask_id != 0 and ask_px != want_ask:
            hbt.cancel(0, ask_id, False)
            ask_id = 0
        if ask_id == 0 and want_ask > 0:
            oid += 1
            hbt.submit_sell_order(0, oid, want_ask * depth.tick_size, qty, GTX, LIMIT, False)
            ask_id = oid
            ask_px = want_ask
            orders += 1
    return orders


def snapshot_rows(path):
    """The capture's REST snapshot as hftbacktest snapshot rows, and its time (ns)."""
    with gzip.open(path, "rt") as f:
        for line in f:
            ts, raw = line.split(" ", 1)
            d = json.loads(raw)
            if "stream" not in d and "lastUpdateId" in d:
                t = int(d.get("T", 0)) * 1_000_000
                rows = [(DEPTH_CLEAR_EVENT | EXCH_EVENT | LOCAL_EVENT, t, int(ts), 0.0, 0.0, 0, 0, 0)]
                rows += [(DEPTH_SNAPSHOT_EVENT | BUY_EVENT | EXCH_EVENT | LOCAL_EVENT, t, int(ts), float(p), float(q), 0, 0, 0)
                         for p, q in d["bids"]]
                rows += [(DEPTH_SNAPSHOT_EVENT | SELL_EVENT | EXCH_EVENT | LOCAL_EVENT, t, int(ts), float(p), float(q), 0, 0, 0)
                         for p, q in d["asks"]]
                return np.array(rows, event_dtype), t
    raise SystemExit(f"{path}: no REST snapshot line")


def make(data, snap, tick, lot):
    asset = (BacktestAsset().data([data]).initial_snapshot(snap).linear_asset(1.0)
             .constant_latency(10_000_000, 10_000_000).risk_adverse_queue_model().no_partial_fill_exchange()
             .trading_value_fee_model(0.0002, 0.0005).tick_size(tick).lot_size(lot).last_trades_capacity(0))
    return HashMapMarketDepthBacktest([asset])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("capture")
    ap.add_argument("--tick", type=float, default=0.1)
    ap.add_argument("--lot", type=float, default=0.001)
    ap.add_argument("--qty-lots", type=int, default=1)
    ap.add_argument("--max-pos-lots", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--feed-latency-ns", type=int, default=5_000_000)
    a = ap.parse_args()
    t0 = time.perf_counter()
    raw = convert(a.capture, combined_stream=True)          # outside the timing
    snap, snap_t = snapshot_rows(a.capture)
    data = raw[raw["exch_ts"] >= snap_t].copy()             # the diffs after the snapshot
    # feed latency 5 ms, as in our run (the capture's local stamps are 1.27 s behind the
    # exchange's clock, which hftbacktest would take as negative latency)
    data = data[np.argsort(data["exch_ts"], kind="stable")]
    data["local_ts"] = data["exch_ts"] + a.feed_latency_ns
    snap["local_ts"] = snap["exch_ts"] + a.feed_latency_ns
    data["ev"] |= EXCH_EVENT | LOCAL_EVENT
    convert_s = time.perf_counter() - t0
    kinds = data["ev"] & 0xFF
    rows = int(np.count_nonzero((kinds == DEPTH_EVENT) | (kinds == TRADE_EVENT)))
    hbt = make(data, snap, a.tick, a.lot)                   # warm-up: compiles the rule
    touch_rule(hbt, a.qty_lots * a.lot, a.max_pos_lots, a.lot)
    hbt.close()
    walls, orders, fills = [], 0, 0
    for _ in range(a.repeat):
        hbt = make(data, snap, a.tick, a.lot)
        t = time.perf_counter()
        orders = touch_rule(hbt, a.qty_lots * a.lot, a.max_pos_lots, a.lot)
        walls.append(time.perf_counter() - t)
        sv = hbt.state_values(0)
        fills = int(sv.num_trades)
        position = float(hbt.position(0))
        hbt.close()
    import hftbacktest
    print(json.dumps({"engine": "hftbacktest", "version": getattr(hftbacktest, "__version__", "2.4.4"),
                      "numpy": np.__version__, "events": rows, "wall_s": min(walls), "walls_s": walls,
                      "orders": orders, "fills": fills, "final_position": position,
                      "convert_s_untimed": round(convert_s, 3)}))


if __name__ == "__main__":
    main()
