#!/usr/bin/env python
"""A ring hop into an event loop: how soon a reader that shares its asyncio loop with
sockets (the engine in 2proc and 3proc) sees a record another process published, for each
way it can wait (engine/ipc/waits.py), in the same run:

- "RingWaker": the loop sleeps; a thread asleep on the ring's futex wakes it
  (call_soon_threadsafe) when the writer publishes. What hybrid and block use now.
- "1 ms naps": the loop polls, then sleeps 1 ms (the event loop's timer resolution):
  what hybrid and block did before.
- "spin": the loop polls again at once (a core at 100 %).

The writer process publishes one ORDER record every ``--interval-ms`` (so that the reader
is asleep when it comes), stamped with CLOCK_MONOTONIC just before the publish; latency =
the reader's clock when its poll returned the record - that stamp. Excluded: the first 20
records (start-up). One JSON line per case (STYLE.md).

    python benchmarks/loop_wake.py [--n 400] [--interval-ms 3]
"""
import argparse
import asyncio
import multiprocessing as mp
import os
import sys
import time
import uuid

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import emit, host, latency_stats  # noqa: E402

from cext.ring import RingReader, RingWriter  # noqa: E402
from engine import schema  # noqa: E402
from engine.ipc.waits import RingWaker, poll_loop  # noqa: E402


def _writer(name, n, interval_s, start):
    w = RingWriter.takeover(name, schema.ORDER_DTYPE)
    start.wait()
    it = np.zeros(1, schema.ORDER_DTYPE)
    for _ in range(n):
        time.sleep(interval_s)
        it["t_strategy"] = time.monotonic_ns()
        w.publish(it)
    w.close()


async def _read(name, mode, n):
    r = RingReader(name, schema.ORDER_DTYPE, wait="spin", start="next")
    buf = np.zeros(64, schema.ORDER_DTYPE)
    lat = []
    waker = RingWaker(name, schema.ORDER_DTYPE, asyncio.get_running_loop()) if mode == "waker" else None

    def poll():
        k = r.read_many(buf)
        t = time.monotonic_ns()
        for i in range(k):
            lat.append(t - int(buf["t_strategy"][i]))
        return k
    wait = "spin" if mode == "spin" else "block"
    await poll_loop([poll], wait, 0, lambda: len(lat) < n, seconds=60, waker=waker)
    if waker is not None:
        waker.close()
    r.close()
    return lat


def case(mode, n, interval_ms):
    import uvloop
    name = f"/cs.bench{os.getpid()}x{uuid.uuid4().hex[:6]}.wake"
    w = RingWriter.create(name, schema.ORDER_DTYPE, 1024)
    w.close()                                    # the writer process takes it over
    ctx = mp.get_context("fork")
    start = ctx.Event()
    p = ctx.Process(target=_writer, args=(name, n, interval_ms / 1000, start))
    p.start()
    try:
        task = _read(name, mode, n)
        start.set()
        lat = uvloop.run(task)
    finally:
        p.join(30)
        os.unlink("/dev/shm" + name)
    return lat[20:]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--interval-ms", type=float, default=3.0)
    args = ap.parse_args()
    h = host()
    for mode, label in (("waker", "RingWaker (futex -> loop)"), ("nap", "1 ms naps"), ("spin", "spin")):
        lat = case(mode, args.n, args.interval_ms)
        rec = {"bench": "loop_wake", "case": label, **latency_stats(np.asarray(lat) / 1e3, "us"),
               "interval_ms": args.interval_ms}
        if mode != "waker":
            rec["vs"] = "RingWaker (futex -> loop)"
        emit(rec, h)


if __name__ == "__main__":
    main()
