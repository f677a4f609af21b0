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

Wait strategies (the reader runs inside the engine's asyncio loop, next to the gateway):
``spin`` yields to the loop and polls again at once (a core at 100 %); ``hybrid`` spins
for ``spin_us`` after the last record, then naps 1 ms between polls; ``block`` naps 1 ms
between polls (for hosts where nothing may spin). 1 ms is the event loop's timer
resolution (uvloop/libuv): a shorter nap is no nap at all, so the first record after a
quiet spell waits up to 1 ms in ``hybrid`` and ``block``.
"""
from __future__ import annotations

import asyncio
import time

import numpy as np

from cext.region import Region
from cext.ring import RingOverrun, RingReader, RingWriter
from engine import schema
from engine.features.vector import FeatureEngine
from engine.ipc import segment_name

RING_CAPACITY = 1 << 16
WAITS = ("spin", "hybrid", "block")


def segments(run: str) -> tuple[str, str, str]:
    """(market ring, book region, heartbeat region) names of run ``run``."""
    return segment_name(run, "market"), segment_name(run, "book"), segment_name(run, "procs")


class MarketRingWriter:
    """The feed process's end: a new ring and region, or, after a restart, the dead feed's
    (``takeover``: readers keep their cursors and see no gap in sequence numbers)."""

    def __init__(self, run: str, n_instruments: int, capacity: int = RING_CAPACITY):
        ring, book, _ = segments(run)
        try:
            self.ring = RingWriter.takeover(ring, schema.MARKET_DTYPE)
            self.region = Region.attach(book, schema.BOOK_TOP_DTYPE)
            self.took_over = True
        except FileNotFoundError:
            self.ring = RingWriter.create(ring, schema.MARKET_DTYPE, capacity)
            self.region = Region.create(book, schema.BOOK_TOP_DTYPE, n_instruments)
            self.took_over = False
        self.messages = 0

    def publish(self, inst: int, records: np.ndarray, top: np.ndarray) -> None:
        top["mono_pub"] = time.monotonic_ns()
        self.region.write(inst, top)
        self.ring.publish_many(records)
        self.messages += 1

    def close(self) -> None:
        self.ring.close()
        self.region.close()


class RingFeed:
    """The brain's end of the market ring; the same interface as LiveFeed for the engine."""

    def __init__(self, run: str, instruments, on_message=None, wait: str = "hybrid", spin_us: float = 200.0,
                 attach_timeout_s: float = 30.0):
        if wait not in WAITS:
            raise ValueError(f"wait strategy {wait!r}: one of {', '.join(WAITS)}")
        self.run_name = run
        self.instruments = instruments
        self.on_message = on_message
        self.wait = wait
        self.spin_ns = int(spin_us * 1000)
        self.attach_timeout_s = attach_timeout_s
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
        """Wait for the feed process to create the ring and region, then attach."""
        ring, book, _ = segments(self.run_name)
        deadline = time.monotonic() + self.attach_timeout_s
        while True:
            try:
                self.region = Region.attach(book, schema.BOOK_TOP_DTYPE)
                self.reader = RingReader(ring, schema.MARKET_DTYPE, wait="spin", start="next")
                return
            except FileNotFoundError:
                if self.region is not None:
                    self.region.close()
                    self.region = None
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no market ring {ring} after {self.attach_timeout_s:.0f} s: "
                                       "the feed process did not start") from None
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
        t0 = time.monotonic()
        last_data = time.monotonic_ns()
        while not self._stop and (seconds is None or time.monotonic() - t0 < seconds):
            if self.poll(buf, carry):
                last_data = time.monotonic_ns()
                await asyncio.sleep(0)             # the gateway's and the user stream's turn
            elif self.wait == "spin" or (self.wait == "hybrid" and time.monotonic_ns() - last_data < self.spin_ns):
                await asyncio.sleep(0)
            else:
                await asyncio.sleep(0.001)

    def fault_stats(self) -> dict:
        return {"ring_overruns": self.overruns, "ring_records_lost": self.lost,
                "ring_lag": int(self.reader.lag) if self.reader is not None else None}

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
        if self.region is not None:
            self.region.close()
