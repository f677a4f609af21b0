"""The feed process (split topologies): websocket sessions, order books and validation
(LiveFeed without features) -> the market ring and the book region; a heartbeat in the
group's ``procs`` region every 200 ms.

Started by the engine that owns the group (``cryptoscalp run --topology 2proc``), never by
hand: it dies with its parent (PR_SET_PDEATHSIG) and, restarted after a crash, takes the
ring over from its dead predecessor so that the reader's cursor stays valid.

    python -m processes.feed --run NAME --ws WS_URL --rest REST_URL --instruments JSON [--cpus 0]
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

log = logging.getLogger("cryptoscalp.feed")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="processes.feed")
    ap.add_argument("--run", required=True, help="segment name prefix of the group (/cs.<run>.*)")
    ap.add_argument("--ws", required=True, help="the venue's websocket base URL")
    ap.add_argument("--rest", required=True, help="the venue's REST base (…/fapi/v1) for depth snapshots")
    ap.add_argument("--instruments", required=True, help="JSON list of engine.venues.instruments.Instrument")
    ap.add_argument("--max-future-ms", type=float, default=1000.0, help="drop records stamped this far ahead (0: off)")
    args = child_args(ap, argv)
    import uvloop
    return uvloop.run(_run(args))


async def _run(args) -> int:
    from engine.feed.live import LiveFeed
    from engine.feed.ringfeed import MarketRingWriter, segments
    from engine.ipc.heartbeat import Heartbeats
    from engine.venues.instruments import Instrument

    instruments = msgspec.json.decode(args.instruments.encode(), type=list[Instrument])
    writer = MarketRingWriter(args.run, max(i.inst for i in instruments) + 1)
    hb = Heartbeats.attach(segments(args.run)[2])
    feed = LiveFeed(instruments, args.ws, args.rest, features=False, max_future_ms=args.max_future_ms,
                    on_message=lambda inst, recs, _fe, top: writer.publish(inst, recs, top))
    log.info("feed up: %s, ring %s", "took the ring over" if writer.took_over else "new ring",
             segments(args.run)[0], extra={"pid": os.getpid(), "instruments": [i.symbol for i in instruments]})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async def beat():
        while True:
            hb.beat("feed", events=writer.messages, errors=int(feed.handler.stats()["parser"]["rejected"]))
            await asyncio.sleep(0.2)
    tasks = [asyncio.ensure_future(feed.run(None, None)), asyncio.ensure_future(beat())]
    await stop.wait()
    for t in tasks:
        t.cancel()
    for t in tasks:
        try:
            await t
        except (asyncio.CancelledError, Exception):
            pass
    from engine import schema
    hb.beat("feed", events=writer.messages, state=schema.PS_STOPPED)
    writer.close()
    hb.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
