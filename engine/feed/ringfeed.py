"""Market data across processes: the feed process publishes, the brain reads.

Feed side (``MarketRingWriter``): after the feed handler turned one exchange message into
market records, the instrument's book top (``BOOK_TOP_DTYPE``, ``mono_pub`` stamped) is
written to its slot of the ``book`` region, then the message's records are published to
the ``market`` ring in one ``publish_many`` (readers see a message whole, never half).

Brain side (``RingFeed``): reads the ring, cuts it into messages at ``F_LAST_IN_MESSAGE``,
reads the instrument's book top from the region, updates the instrument's FeatureEngine
and calls ``on_message(inst, records, features, top)``: the same call the fused
topology's LiveFeed makes, so the brain code is the same in both layouts.

The region holds the *latest* book: a brain that lags the feed by more than one message
sees a top newer than the message it processes (it trades on the newest book it can see,
never an older one). A lap lost to an overrun is counted, journaled by the caller, and
the reader continues from the oldest safe record.

Wait strategies: engine.ipc.waits (the reader runs inside an asyncio loop, next to the
gateway in 2proc).
"""
from __future__ import annotations

import asyncio
import time

import numpy as np

from cext.region import Region
from cext.ring import RingOverrun, RingReader
from engine import schema
from engine.features.vector import FeatureEngine
from engine.ipc import region_of, ring_writer, segment_name, segment_not_ready
from engine.ipc.waits import Doorbell, check_wait, loop_waker, poll_loop

RING_CAPACITY = 1 << 16


def segments(run: str) -> tuple[str, str, str]:
    """(market ring, book region, heartbeat region) names of run ``run``."""
    return segment_name(run, "market"), segment_name(run, "book"), segment_name(run, "procs")


class MarketRingWriter:
    """The feed process's end: a new ring and region, or, after a restart, the dead feed's
    (``takeover``: readers keep their cursors and see no gap in sequence numbers)."""

    def __init__(self, run: str, n_instruments: int, capacity: int = RING_CAPACITY):
        ring, book, _ = segments(run)
        self.ring, self.took_over = ring_writer(ring, schema.MARKET_DTYPE, capacity)
        self.region, _ = region_of(book, schema.BOOK_TOP_DTYPE, n_instruments)
        self.bell = Doorbell.for_ring(run, "market")     # wakes a reader asleep in its event loop
        self.messages = 0

    def publish(self, inst: int, records: np.ndarray, top: np.ndarray) -> None:
        top["mono_pub"] = time.monotonic_ns()
        self.region.write(inst, top)
        self.ring.publish_many(records)
        self.bell.ring()
        self.messages += 1

    def close(self) -> None:
        self.bell.close()
        self.ring.close()
        self.region.close()


class RingFeed:
    """The brain's end of the market ring; the same interface as LiveFeed for the engine."""

    def __init__(self, run: str, instruments, on_message=None, wait: str = "hybrid", spin_us: float = 200.0,
                 attach_timeout_s: float = 30.0, blocking: bool = False):
        check_wait(wait)
        self.run_name = run
        self.instruments = instruments
        self.on_message = on_message
        self.wait = wait
        self.spin_ns = int(spin_us * 1000)
        self.attach_timeout_s = attach_timeout_s
        # blocking: a process with no sockets to serve (the brain) sleeps on the ring's futex
        # (``wait_next``), woken by the feed's publish, instead of napping in an event loop
        self.blocking = blocking and wait != "spin"
        self._one = np.zeros(1, schema.MARKET_DTYPE)
        self.features = {i.inst: FeatureEngine(float(i.tick_size), float(i.lot_size)) for i in instruments}
        for fe in self.features.values():
            fe.warmup()
        self.reader: RingReader | None = None
        self.region: Region | None = None
        self.messages = 0
        self.overruns = 0
        self.lost = 0
        self.latency_ns: list[int] = []          # frame read off the socket (feed) -> features (brain)
        self._top = np.zeros(1, schema.BOOK_TOP_DTYPE)
        self._stop = False

    async def attach(self) -> None:
        """Wait for the feed process to create the ring and region (and finish their
        headers), then attach."""
        ring, book, _ = segments(self.run_name)
        deadline = time.monotonic() + self.attach_timeout_s
        while True:
            try:
                self.region = Region.attach(book, schema.BOOK_TOP_DTYPE)
                self.reader = RingReader(ring, schema.MARKET_DTYPE, wait="block" if self.blocking else "spin",
                                         start="next")
                return
            except Exception as e:
                if not segment_not_ready(e):
                    raise
                if self.region is not None:
                    self.region.close()
                    self.region = None
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no market ring {ring} after {self.attach_timeout_s:.0f} s: "
                                       f"the feed process did not start ({e})") from None
                await asyncio.sleep(0.05)

    def stop(self) -> None:
        self._stop = True

    def poll(self, buf: np.ndarray, carry: list) -> int:
        """Read what the ring has and dispatch every complete message. Returns records read."""
        try:
            n = self.reader.read_many(buf)
        except RingOverrun:
            self.overruns += 1
            self.lost += int(self.reader.recover())
            carry.clear()                      # the partial message's end was lost with the lap
            return 0
        if not n:
            return 0
        recs = buf[:n]
        last = np.flatnonzero(recs["flags"] & schema.F_LAST_IN_MESSAGE)
        start = 0
        for end in last:
            msg = recs[start:end + 1]
            if carry:
                msg = np.concatenate([*carry, msg])
                carry.clear()
            self._dispatch(msg)
            start = end + 1
        if start < n:
            carry.append(recs[start:].copy())
        return n

    def wait_next(self, carry: list, timeout_ns: int) -> int:
        """Sleep (GIL released) until the next record or ``timeout_ns``; dispatch it if it
        ends a message. Returns records read (0 or 1). Needs ``blocking``."""
        try:
            got = self.reader.read(self._one, timeout_ns)
        except RingOverrun:
            self.overruns += 1
            self.lost += int(self.reader.recover())
            carry.clear()
            return 0
        if not got:
            return 0
        rec = self._one.copy()
        if int(rec["flags"][0]) & schema.F_LAST_IN_MESSAGE:
            msg = np.concatenate([*carry, rec]) if carry else rec
            carry.clear()
            self._dispatch(msg)
        else:
            carry.append(rec)
        return 1

    def _dispatch(self, msg: np.ndarray) -> None:
        inst = int(msg["inst"][0])
        fe = self.features.get(inst)
        if fe is None:
            return
        top = self._top
        self.region.read(inst, top)
        fe.on_message(msg, top)
        self.messages += 1
        if len(self.latency_ns) < 100_000:
            self.latency_ns.append(time.monotonic_ns() - int(msg["mono_origin"][0]))
        if self.on_message is not None:
            self.on_message(inst, msg, fe, top)

    async def run(self, seconds: float | None = None, status=None, status_every_s: float = 1.0) -> None:
        if self.reader is None:
            await self.attach()
        buf = np.zeros(4096, schema.MARKET_DTYPE)
        carry: list = []
        waker = loop_waker(self.run_name, "market", self.wait)     # hybrid, block: asleep until the feed rings
        try:
            await poll_loop([lambda: self.poll(buf, carry)], self.wait, self.spin_ns, lambda: not self._stop, seconds,
                            waker=waker)
        finally:
            if waker is not None:
                waker.close()

    def fault_stats(self) -> dict:
        return {"ring_overruns": self.overruns, "ring_records_lost": self.lost,
                "ring_lag": int(self.reader.lag) if self.reader is not None else None}

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
        if self.region is not None:
            self.region.close()
