#!/usr/bin/env python
"""A ring hop into an event loop: how soon a reader that shares its asyncio loop with
sockets (the engine in 2proc and 3proc) sees a record another process published, for each
way it can wait (engine/ipc/waits.py), in the same run:

- "Doorbell": the loop sleeps in epoll on a FIFO the writer rings after each publish
  (engine/ipc/waits.py). What hybrid and block use now.
- "RingWaker": the loop sleeps; a thread asleep on the ring's futex wakes it
  (call_soon_threadsafe) when the writer publishes (defined here: what they used before).
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
import threading
import time
import uuid

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import emit, host, latency_stats  # noqa: E402

from cext.ring import RingOverrun, RingReader, RingWriter  # noqa: E402
from engine import schema  # noqa: E402
from engine.ipc.waits import BellWaker, Doorbell, LoopWake, poll_loop  # noqa: E402


class RingWaker(LoopWake):
    """The baseline (what the engine's hybrid and block waits used before the Doorbell):
    a daemon thread with a reader of its own (blocking: futex) watches the ring and wakes
    the loop (call_soon_threadsafe); it never hands records over (the loop's own reader
    reads them). It needs nothing from the writer, and costs a second wake-up (the thread,
    then the loop's self-pipe) and a GIL hand-over."""

    def __init__(self, ring: str, dtype, loop: asyncio.AbstractEventLoop):
        super().__init__(loop)
        self.reader = RingReader(ring, dtype, wait="block", start="next")
        self._stop = False
        self._buf = np.zeros(256, dtype)
        self._thread = threading.Thread(target=self._watch, name=f"waker {ring}", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        one = self._buf[:1]
        while not self._stop:
            try:
                got = self.reader.read(one, 100_000_000)        # GIL released while asleep
                while self.reader.read_many(self._buf):         # the rest of the burst: one wake-up
                    pass
            except RingOverrun:
                self.reader.recover()
                got = 1
            if got and not self._stop:
                try:
                    self.loop.call_soon_threadsafe(self._wake)
                except RuntimeError:                            # the loop is closed
                    return

    def close(self) -> None:
        self._stop = True
        self._thread.join(1.0)
        self.reader.close()


def _writer(name, n, interval_s, start, bell_path):
    w = RingWriter.takeover(name, schema.ORDER_DTYPE)
    bell = Doorbell(bell_path) if bell_path else None
    start.wait()
    it = np.zeros(1, schema.ORDER_DTYPE)
    for _ in range(n):
        time.sleep(interval_s)
        it["t_strategy"] = time.monotonic_ns()
        w.publish(it)
        if bell is not None:
            bell.ring()
    w.close()


async def _read(name, mode, n, bell_path, ready):
    r = RingReader(name, schema.ORDER_DTYPE, wait="spin", start="next")
    buf = np.zeros(64, schema.ORDER_DTYPE)
    lat = []
    waker = None
    if mode == "waker":
        waker = RingWaker(name, schema.ORDER_DTYPE, asyncio.get_running_loop())
    elif mode == "bell":
        waker = BellWaker(bell_path, asyncio.get_running_loop())

    def poll():
        k = r.read_many(buf)
        t = time.monotonic_ns()
        for i in range(k):
            lat.append(t - int(buf["t_strategy"][i]))
        return k
    ready.set()
    wait = "spin" if mode == "spin" else "block"
    await poll_loop([poll], wait, 0, lambda: len(lat) < n, seconds=60, waker=waker)
    if waker is not None:
        waker.close(**({"unlink": True} if mode == "bell" else {}))
    r.close()
    return lat


def case(mode, n, interval_ms):
    import uvloop
    name = f"/cs.bench{os.getpid()}x{uuid.uuid4().hex[:6]}.wake"
    w = RingWriter.create(name, schema.ORDER_DTYPE, 1024)
    w.close()                                    # the writer process takes it over
    ctx = mp.get_context("fork")
    start = ctx.Event()
    bell_path = Doorbell.path_for(f"bench{os.getpid()}", uuid.uuid4().hex[:6]) if mode == "bell" else None
    p = ctx.Process(target=_writer, args=(name, n, interval_ms / 1000, start, bell_path))
    p.start()
    try:
        lat = uvloop.run(_read(name, mode, n, bell_path, start))      # it starts the writer once it waits
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
    for mode, label in (("waker", "RingWaker (futex -> loop)"), ("bell", "Doorbell (FIFO in the loop)"),
                        ("nap", "1 ms naps"), ("spin", "spin")):
        lat = case(mode, args.n, args.interval_ms)
        rec = {"bench": "loop_wake", "case": label, **latency_stats(np.asarray(lat) / 1e3, "us"),
               "interval_ms": args.interval_ms}
        if mode != "bell":
            rec["vs"] = "Doorbell (FIFO in the loop)"
        emit(rec, h)


if __name__ == "__main__":
    main()
