#!/usr/bin/env python
"""The fused engine's hot path in one process, on the real BTCUSDT capture: the same
objects as ``cryptoscalp run`` (the WebSocket session's callbacks: cext.hotpath.FeedPath
-> DecisionPath at the read's end, or LiveFeed's frame handler -> FusedEngine.on_message ->
Brain -> RiskGate -> OrderGateway.start from Python), fed the capture's frames directly
(no socket; each frame its own read), with order connections that
take each request in memory and answer it a loop turn later (engine.testing.orderlinks:
the real OrderLink code, no network, no venue). Stage stamps are read back from the
journal's orders, as ``cryptoscalp bench latency`` does. What it separates from the
end-to-end bench: the code's own cost, and what idling between frames does to it.

    python benchmarks/hot_path.py [--model DIR | --no-model] [--gap-us 300] [--frames N]

Cases (one JSON line per stage and case; the tick_to_trade line carries frames/s):
- "back to back": every frame handed over as soon as the last one is done (the core
  never idles): the code's own cost with warm caches.
- "back to back, Python hot path": the same with each step from the brain to the write
  called from Python (``--hot-path python``: the obvious alternative to cext.hotpath).
- "back to back, Python hot path, order requests in Python": and the gateway building
  and signing requests in Python (the obvious alternative to cext.orderwire).
- "asleep between frames": ``time.sleep(gap)`` between frames, as an event loop asleep
  in epoll between real frames (the 20x sim sends one every ~400 us).
- "busy between frames": the gap spin-waited instead (the core stays busy, nothing of
  ours runs in it): ``--wait spin`` without its rehearsal.
- "busy + rehearsal": while spin-waiting, DecisionPath.rehearse every 200 us, as
  ``--wait spin`` does.
With a model, the ensemble scores once every feature is ready (300 s of market time: the
last ~45 s of the capture), so only those orders went through it; the line says how many.
Excluded: loading the capture, training the model (default: the benchmarks' synthetic
model, ~30 s), engine construction, the answers' handling after the stamps.
"""
import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import emit, host, synthetic_model  # noqa: E402

from engine import latency  # noqa: E402
from engine.execution.gateway import BinanceRest, OrderGateway  # noqa: E402
from engine.feed.capture import load_capture  # noqa: E402
from engine.testing.orderlinks import MemoryLinks  # noqa: E402
from engine.testing.data import SHARED_DATA  # noqa: E402
from engine.venues.instruments import Instrument  # noqa: E402

CAPTURE = os.path.join(SHARED_DATA, "nkaz001__hftbacktest", "examples", "usdm", "btcusdt_20240808.gz")
BTC = Instrument(symbol="BTCUSDT", inst=0, price_decimals=2, qty_decimals=3, tick_units=10, lot_units=1,
                 min_notional="100")


async def one_case(frames, model, gap_ns: int, mode: str, python_requests: bool, scratch: str,
                   hot_path: str = "compiled"):
    import msgspec

    from engine.risk.limits import RiskLimits
    from processes.fused import FusedEngine, RunConfig
    lim = RiskLimits()
    for kv in latency.BENCH_LIMITS:
        k, v = kv.split("=")
        lim = msgspec.structs.replace(lim, **{k: type(getattr(lim, k))(v)})
    # replayed as fast as the engine takes it, the capture's order rate is far above the venue's
    lim = msgspec.structs.replace(lim, order_rate=1e9, order_burst=1e9)
    j = tempfile.mkdtemp(dir=scratch)
    cfg = RunConfig(journal_dir=j, admin=None, model_dir=model, limits=lim, max_future_ms=0, quote_lots=3,
                    status_every_s=0, hot_path=hot_path)
    rest = BinanceRest("http://127.0.0.1:1", "bench-key", "bench-secret")
    rest.links = MemoryLinks()
    gw = OrderGateway(rest, [BTC])
    if python_requests:
        gw._enc_refused = True                     # the Python path builds and signs them
    eng = FusedEngine(cfg, [BTC], rest, gw, "ws://127.0.0.1:1", "http://127.0.0.1:1/fapi/v1")
    feed, brain = eng.feed, eng.brain
    clock, perf = time.monotonic_ns, time.perf_counter_ns
    rehearse_ns = int(cfg.rehearse_us * 1000)
    last = t_ready = 0
    eng.gc.start()                                   # as the engine's run(): the collector by the clock
    t0 = next_gc = perf()
    # as the socket hands them over: each frame to the session's callback (FeedPath's in the
    # compiled fused engine, LiveFeed's otherwise), then the end of the read (one frame a read)
    session = feed.session
    for f in frames:
        if f.startswith(b'{"stream"'):
            session.on_frame(f, clock(), 0)
            if session.on_read_end is not None:
                session.on_read_end()
        else:                                        # the REST depth snapshot, as LiveFeed applies it
            feed.handler.on_frame(f, clock(), BTC.symbol)
        await asyncio.sleep(0)                       # the brain's pass, the answers, the journaling run
        if model and not t_ready and (eng.path.scored if eng.path is not None else brain.scored):
            t_ready = clock()                        # from here every order went through the ensemble
        if perf() >= next_gc:
            next_gc += 1_000_000_000
            eng.gc.tick()
        if gap_ns and mode == "sleep":
            time.sleep(gap_ns / 1e9)
        elif gap_ns:
            end = perf() + gap_ns
            while perf() < end:
                if mode == "rehearse" and perf() - last >= rehearse_ns:
                    last = perf()
                    if eng.path is not None:
                        eng.path.rehearse()
                    else:
                        brain.rehearse()
                        gw.rehearse()
    wall = (perf() - t0) / 1e9
    eng.gc.stop()
    await asyncio.sleep(0.01)
    eng.journal.flush()
    orders = latency.journal_orders(j)
    eng.journal.close()
    scored = int(brain.models[BTC.inst].calls) if brain.models else 0
    if model and not t_ready:
        raise RuntimeError("the features never all became ready: no order went through the ensemble")
    return latency.order_stages(orders, warmup_s=0.0, since_ns=t_ready), wall, rest.links.n, scored


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", help="model registry (default: train the benchmarks' synthetic model)")
    ap.add_argument("--no-model", action="store_true", help="no ensemble in the path")
    ap.add_argument("--gap-us", type=float, default=300.0, help="the idle time between frames in the gap cases")
    ap.add_argument("--frames", type=int, default=0, help="only the first N frames (0: all)")
    args = ap.parse_args()
    if not os.path.exists(CAPTURE):
        print(f"hot_path: {CAPTURE} is missing (../shared/data, see its README)", file=sys.stderr)
        return 2
    scratch = tempfile.mkdtemp(prefix="cs-hotpath-")
    try:
        model = None if args.no_model else (args.model or synthetic_model(scratch))
        frames = [f for _, f in load_capture(CAPTURE)]
        if args.frames:
            frames = frames[:args.frames]
        h = host()
        gap = int(args.gap_us * 1000)
        cases = [("back to back", 0, "", False, "compiled"),
                 ("back to back, Python hot path", 0, "", False, "python"),
                 ("back to back, Python hot path, order requests in Python", 0, "", True, "python"),
                 (f"asleep {args.gap_us:g} us between frames", gap, "sleep", False, "compiled"),
                 (f"busy {args.gap_us:g} us between frames", gap, "busy", False, "compiled"),
                 (f"busy {args.gap_us:g} us between frames + rehearsal", gap, "rehearse", False, "compiled")]
        for name, gap_ns, mode, py_req, hot in cases:
            print(f"hot_path: {name} ({len(frames)} frames)...", file=sys.stderr, flush=True)
            stages, wall, requests, scored = asyncio.run(one_case(frames, model, gap_ns, mode, py_req, scratch, hot))
            for stage, v in stages.items():
                rec = {"bench": "hot_path", "case": name, "stage": stage, **latency.percentiles(v),
                       "ensemble": bool(model)}
                if stage == "tick_to_trade":
                    rec.update({"frames": len(frames), "frames_per_s": round(len(frames) / wall),
                                "requests_written": requests, "ensemble_calls": scored,
                                "excluded": "capture loading, model training, engine construction"})
                    if py_req or gap_ns or hot != "compiled":
                        rec["vs"] = "back to back"
                emit(rec, h)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
