#!/usr/bin/env python
"""Our backtester against hftbacktest 2.4.4 on the BTCUSDT capture, the same rule in both.

    python benchmarks/backtest_vs_hftbacktest.py [--hbt-python .venv-hbt/bin/python]
                                                 [--synthetic-minutes 60] [--model-dir DIR]

The rule: one bid one tick behind the best bid and one ask one tick behind the best ask,
post-only, 1 lot (0.001 BTC), cancel and replace when the wanted price changes, position
limit 10 lots (ours: ``engine.strategies.touch.TouchQuoter``; theirs: benchmarks/hbt_side.py).
Both: 10 ms constant order entry and response latency, 5 ms feed latency (hftbacktest's
local timestamps are set to exchange time + 5 ms: the capture's own local stamps are
1.27 s behind the exchange's), a queue model where only trades advance the queue (ours:
``cancel_ahead_frac=0``; theirs: ``risk_adverse_queue_model``), maker 2 bps / taker
5 bps. Our run is the backtester's compiled event loop (cext/backtest.pyx) with the
components it runs live: the matching core, the compiled rule (cext/strategies.pyx), the
risk gate (limits opened wide so it refuses only what is unsafe, e.g. a bid that would
cross our own ask still being cancelled), the PositionBook; the rule reads no feature, so
the feature engine does not run. A second row runs the same rule through the loop's
Python strategy path (the feature engine per message, intents as arrays): the cost of a
strategy written in Python. Data in memory for both (our message table and their
converted array are built outside the timing), both warmed up first; best of three runs
each. Events are counted in one unit for both: book level updates plus trades
(hftbacktest's row unit).

Also: events/s of our backtester alone on ``--synthetic-minutes`` of the synthetic market
(the market-making strategy), without and with the model ensemble in the loop.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import emit, host  # noqa: E402

from engine.backtest.engine import Backtester, LatencyModel  # noqa: E402
from engine.features.dataset import message_table  # noqa: E402
from engine.risk.limits import RiskLimits  # noqa: E402
from engine.strategies.touch import TouchQuoter  # noqa: E402
from engine.testing.data import REPO, shared_path, USDM_CAPTURES  # noqa: E402
from engine.testing.strategies import PythonPath  # noqa: E402
from engine.venues.instruments import Instrument  # noqa: E402

BTC = Instrument(symbol="BTCUSDT", inst=0, price_decimals=2, qty_decimals=3, tick_units=10, min_notional="0",
                 max_qty_lots=1_000_000)
WIDE = RiskLimits(max_daily_trades=10**9, order_rate=1e9, order_burst=1e9, max_consecutive_losses=10**9)


def ours(table, python_path=False):
    q = TouchQuoter(0, quote_lots=1, max_position_lots=10)
    bt = Backtester(BTC, PythonPath(q) if python_path else q,
                    latency=LatencyModel(5_000_000, 10_000_000, 10_000_000), limits=WIDE, regime="NORMAL",
                    cancel_ahead_frac=0.0)
    t = time.perf_counter()
    r = bt.run(table)
    r.summary["quotes_sent"], r.summary["cancels_sent"] = q.quotes_sent, q.cancels_sent
    return time.perf_counter() - t, r


def slice_table(tab, n):
    end = int(tab["ends"][n - 1])
    return {"recs": tab["recs"][:end], "starts": tab["starts"][:n], "ends": tab["ends"][:n], "tops": tab["tops"][:n],
            "instrument": tab["instrument"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--capture", default=shared_path(*USDM_CAPTURES, "btcusdt_20240808.gz"))
    ap.add_argument("--hbt-python", default=os.path.join(REPO, ".venv-hbt", "bin", "python"))
    ap.add_argument("--synthetic-minutes", type=float, default=30.0)
    ap.add_argument("--model-dir", help="registry for the model-in-the-loop case (default: train one, untimed)")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    h = host()
    table = message_table(a.capture, "BTCUSDT", [BTC])
    ours(slice_table(table, 20_000))                         # warm-up (numba kernels, caches)
    walls, res = [], None
    for _ in range(a.repeat):
        w, res = ours(table)
        walls.append(w)
    s = res.summary
    mine = {"bench": "backtest_vs_hftbacktest", "case": "ours: Backtester + TouchQuoter, BTCUSDT capture",
            "events": s["events"], "messages": s["messages"], "wall_s": round(min(walls), 4),
            "walls_s": [round(x, 4) for x in walls], "per_s": round(s["events"] / min(walls)),
            "orders": s["quotes_sent"], "cancels": s["cancels_sent"], "orders_and_cancels_sent": s["orders_sent"],
            "fills": s["fills"], "risk_rejects": dict(res.rejects),
            "final_position_lots": s["final_position_lots"]}
    emit(mine, h)
    ours(slice_table(table, 20_000), python_path=True)
    walls = []
    for _ in range(a.repeat):
        w, rp = ours(table, python_path=True)
        walls.append(w)
    def unnamed(r):         # the per-strategy name is the class's
        return [{k: v for k, v in t.items() if k != "strategy"} for t in r.trades]
    assert unnamed(rp) == unnamed(res), "the Python path must give the same trades"
    emit({"bench": "backtest_vs_hftbacktest", "case": "ours: the same rule through the Python strategy path "
          "(feature engine per message)", "events": rp.summary["events"], "wall_s": round(min(walls), 4),
          "walls_s": [round(x, 4) for x in walls], "per_s": round(rp.summary["events"] / min(walls)),
          "fills": rp.summary["fills"]}, h)
    theirs = None
    if os.path.exists(a.hbt_python):
        r = subprocess.run([a.hbt_python, os.path.join(REPO, "benchmarks", "hbt_side.py"), a.capture,
                            "--tick", "0.1", "--lot", "0.001", "--repeat", str(a.repeat)],
                           capture_output=True, text=True, timeout=900)
        if r.returncode == 0:
            theirs = json.loads(r.stdout.strip().splitlines()[-1])
            emit({"bench": "backtest_vs_hftbacktest", "case": "hftbacktest 2.4.4: HashMapMarketDepthBacktest, same rule",
                  **theirs, "per_s": round(theirs["events"] / theirs["wall_s"])}, h)
        else:
            print(f"hftbacktest side failed:\n{r.stderr[-3000:]}", file=sys.stderr)
    else:
        print(f"hftbacktest not run: {a.hbt_python} missing (make hbt-env builds it)", file=sys.stderr)
    if theirs:
        emit({"bench": "backtest_vs_hftbacktest", "case": "ratio ours / hftbacktest (events/s)",
              "per_s_ratio": round(mine["per_s"] / (theirs["events"] / theirs["wall_s"]), 4),
              "target": ">= 1.0", "events_ours": mine["events"], "events_theirs": theirs["events"]}, h)

    # ---- ours alone on a longer synthetic run, without and with the model
    from engine.strategies.market_making import MarketMaker
    from engine.venues.sim.generator import write_synthetic_capture
    from engine.venues.sim.run import DEFAULT_BTC
    tmp = tempfile.mkdtemp(prefix="cs-bt-bench-")
    cap = os.path.join(tmp, "syn.gz")
    write_synthetic_capture(cap, a.synthetic_minutes * 60, seed=11)
    syn = message_table(cap, "BTCUSDT", [DEFAULT_BTC])
    model_dir = a.model_dir
    if model_dir is None:
        from engine.models.train import TrainConfig, train
        model_dir = os.path.join(tmp, "models")
        train([cap], model_dir, TrainConfig(seed=0), log=lambda *x: None)
    from engine.models.registry import ModelRegistry
    reg = ModelRegistry(model_dir)
    cases = (("TouchQuoter (compiled, 3 lots: 1 is under the 100 USDT minimum notional), regime fixed",
              lambda: TouchQuoter(0, quote_lots=3, max_position_lots=30), None, "NORMAL"),
             ("MarketMaker (Python, features, regime detector), no model",
              lambda: MarketMaker(0, float(DEFAULT_BTC.tick_size)), None, "auto"),
             ("MarketMaker, ensemble in the loop", lambda: MarketMaker(0, float(DEFAULT_BTC.tick_size)), reg.load,
              "auto"))
    for label, strategy, model, regime in cases:
        bt = Backtester(DEFAULT_BTC, strategy(), model=model, limits=WIDE, regime=regime)
        t = time.perf_counter()
        r = bt.run(syn)
        w = time.perf_counter() - t
        emit({"bench": "backtest_vs_hftbacktest", "case": f"ours alone, {a.synthetic_minutes:g} min synthetic, "
              f"{label}", "events": r.summary["events"], "messages": r.summary["messages"],
              "wall_s": round(w, 3), "per_s": round(r.summary["events"] / w),
              "messages_per_s": round(r.summary["messages"] / w), "fills": r.summary["fills"],
              "model_calls": (r.summary["model"] or {}).get("calls")}, h)
    import shutil
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
