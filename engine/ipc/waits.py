"""Ring wait strategies inside an asyncio loop (the readers of the split topologies share
their loop with sockets: the gateway, the user stream, the admin).

``spin`` yields to the loop and polls again at once (a core at 100 %); ``hybrid`` spins
for ``spin_ns`` after the last record, then sleeps; ``block`` sleeps at once (for hosts
where nothing may spin). Sleeping is either a nap of 1 ms (the event loop's timer
resolution: the first record after a quiet spell waits up to 1 ms), or, with a
``RingWaker``, until the writer publishes: a thread asleep on the ring's futex wakes the
loop (a futex wake-up plus the loop's self-pipe, tens of microseconds, no core burnt).
"""
from __future__ import annotations

import asyncio
import threading
import time

import numpy as np

from cext.ring import RingOverrun, RingReader

WAITS = ("spin", "hybrid", "block")


def check_wait(wait: str) -> str:
    if wait not in WAITS:
        raise ValueError(f"wait strategy {wait!r}: one of {', '.join(WAITS)}")
    return wait


class RingWaker:
    """Wakes an asyncio loop when a ring has new records: a daemon thread with a reader of
    its own (blocking: futex) that only watches the ring, never hands records over (the
    loop's own reader reads them). A wake-up is never lost: ``wait`` creates its future
    before the loop can run the thread's callback."""

    def __init__(self, ring: str, dtype, loop: asyncio.AbstractEventLoop):
        self.reader = RingReader(ring, dtype, wait="block", start="next")
        self.loop = loop
        self.fut: asyncio.Future | None = None
        self.wakeups = 0
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

    def _wake(self) -> None:
        f = self.fut
        if f is not None and not f.done():
            self.wakeups += 1
            f.set_result(None)

    async def wait(self, timeout_s: float) -> None:
        self.fut = f = self.loop.create_future()
        h = self.loop.call_later(timeout_s, self._wake)
        try:
            await f
        finally:
            h.cancel()

    def close(self) -> None:
        self._stop = True
        self._thread.join(1.0)
        self.reader.close()


async def poll_loop(polls, wait: str, spin_ns: int, running, seconds: float | None = None,
                    waker: RingWaker | None = None) -> None:
    """Call every ``polls`` function (each returns how many records it handled) until
    ``running()`` is false or ``seconds`` passed, waiting between empty rounds as ``wait`` says."""
    check_wait(wait)
    t0 = time.monotonic()
    last_data = time.monotonic_ns()
    while running() and (seconds is None or time.monotonic() - t0 < seconds):
        n = 0
        for p in polls:
            n += p()
        if n:
            last_data = time.monotonic_ns()
            await asyncio.sleep(0)             # the sockets' turn
        elif wait == "spin" or (wait == "hybrid" and time.monotonic_ns() - last_data < spin_ns):
            await asyncio.sleep(0)
        elif waker is not None:
            await waker.wait(0.05)
        else:
            await asyncio.sleep(0.001)
