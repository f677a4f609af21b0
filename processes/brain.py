"""The brain process (3proc): market ring and book region -> features, regime, ensemble,
strategy (engine.brain.Brain) -> intent ring; execution reports and positions from the
engine (engine.ipc.orderflow.BrainLink); a heartbeat in the group's ``procs`` region
every 200 ms.

Started by the engine that owns the group (``cryptoscalp run --topology 3proc``), never by
hand: it dies with its parent (PR_SET_PDEATHSIG). When it dies the engine cancels its
quotes, starts a new one with a fresh block of client ids and drops whatever the dead one
had published and the engine had not yet gated. A new brain starts flat of quotes, takes
the positions from the region, and quotes once its features are warm again.

    python -m processes.brain --run NAME --instruments JSON --cid-start N [--model DIR] [--wait hybrid] [--cpus 1]
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

import msgspec

from processes import child_args

log = logging.getLogger("cryptoscalp.brain")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="processes.brain")
    ap.add_argument("--run", required=True, help="segment name prefix of the group (/cs.<run>.*)")
    ap.add_argument("--instruments", required=True, help="JSON list of engine.venues.instruments.Instrument")
    ap.add_argument("--cid-start", type=int, required=True, help="the first client order id of this brain's life")
    ap.add_argument("--model", default=None, help="model registry directory (default: rule-based)")
    ap.add_argument("--inference", choices=["auto", "native", "onnxruntime"], default="auto",
                    help="how the ensemble runs (engine/models/runtime.py)")
    ap.add_argument("--quote-lots", type=int, default=10)
    ap.add_argument("--max-inventory-lots", type=int, default=50)
    ap.add_argument("--wait", choices=["spin", "hybrid", "block"], default="hybrid",
                    help="spin: poll the rings (a core at 100 %%); hybrid, block: sleep on the market ring's futex")
    args = child_args(ap, argv)
    return asyncio.run(_run(args))


async def _run(args) -> int:
    """Attach (the feed creates the market ring), then the loop: no sockets to serve, so it
    runs without an event loop, sleeping on the market ring's futex (``wait`` hybrid or
    block; spin polls) at most 1 ms at a time, so that execution reports and the heartbeat
    are never later than that."""
    import time

    import numpy as np

    from engine import schema
    from engine.brain import Brain
    from engine.feed.ringfeed import RingFeed, segments
    from engine.ipc.heartbeat import Heartbeats
    from engine.ipc.orderflow import BrainLink
    from engine.venues.instruments import Instrument

    instruments = msgspec.json.decode(args.instruments.encode(), type=list[Instrument])
    link = BrainLink(args.run)
    hb = Heartbeats.attach(segments(args.run)[2])
    brain = Brain(instruments, quote_lots=args.quote_lots, max_inventory_lots=args.max_inventory_lots,
                  client_id_base=args.cid_start, model_dir=args.model, model_backend=args.inference,
                  on_event=lambda ev: log.info(ev["event"], extra=ev))

    def on_message(inst, records, fe, top):
        brain.set_inventory(inst, link.position(inst))      # the risk side's position, always
        intents = brain.on_message(inst, records, fe, top)
        if intents:
            link.publish(intents)

    feed = RingFeed(args.run, instruments, on_message=on_message, wait=args.wait, blocking=True)
    await feed.attach()
    log.info("brain up: %s, client ids from %d", "took the intent ring over" if link.took_over else "new intent ring",
             args.cid_start, extra={"pid": os.getpid(), "model": brain.model_versions(), "wait": args.wait})
    stop = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.append(1))

    def beat(state=None) -> None:         # STARTING until every feature of every instrument is ready
        if state is None:
            ready = all(fe.all_ready for fe in feed.features.values())
            state = schema.PS_READY if ready else schema.PS_STARTING
        hb.beat("brain", events=feed.messages, errors=feed.overruns + link.counts["overruns"], state=state)

    buf = np.zeros(4096, schema.MARKET_DTYPE)
    carry: list = []
    on_exec = brain.on_exec
    next_beat = 0
    while not stop:
        n = feed.poll(buf, carry) + link.poll_execs(on_exec)
        now = time.monotonic_ns()
        if now >= next_beat:
            beat()
            next_beat = now + 200_000_000
        if not n and feed.blocking:
            feed.wait_next(carry, 1_000_000)
    beat(schema.PS_STOPPED)
    feed.close()
    link.close()
    hb.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
