"""The doorbell beside a ring (engine/ipc/waits.py): a writer rings it, a reader's event loop
asleep on the FIFO wakes; no reader yet, a full FIFO or a reader gone never raise or block
the writer; a restarted reader gets the bell of the same path; stale bells are removed."""
import asyncio
import os
import uuid

import pytest

from engine.ipc.waits import BELL_DIR, BellWaker, Doorbell, loop_waker, remove_bells


@pytest.fixture
def run():
    name = f"t{os.getpid()}b{uuid.uuid4().hex[:6]}"
    yield name
    remove_bells(name)


def test_a_ring_wakes_the_loop_and_nothing_blocks_the_writer(run):
    path = Doorbell.path_for(run, "order")
    bell = Doorbell(path)
    bell.ring()                                   # no reader (no FIFO) yet: nothing happens, nothing raised
    assert bell.rung == 0 and not os.path.exists(path)

    async def go():
        w = loop_waker(run, "order", "hybrid")
        assert isinstance(w, BellWaker) and loop_waker(run, "order", "spin") is None
        bell._retry_at = 0.0                      # (it waits 100 ms between tries to open)
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, bell.ring)
        t0 = loop.time()
        await w.wait(30.0)                        # woken by the ring, long before the timeout
        assert w.wakeups == 1 and loop.time() - t0 < 25
        for _ in range(100_000):                  # more than the FIFO holds, never drained: never blocks
            bell.ring()
        assert bell.rung >= 4096                  # (a pipe holds 64 KiB, or a page when the user is over its quota)
        await w.wait(30.0)
        assert w.wakeups == 2
        w.close()                                 # the reader goes away (its FIFO stays for a successor)
        bell.ring()                               # EPIPE: closed, reopened later
        assert bell.fd == -1
        w2 = BellWaker(path, loop)                # a restarted reader: the same path
        bell._retry_at = 0.0
        loop.call_later(0.05, bell.ring)
        await w2.wait(30.0)
        assert w2.wakeups == 1
        w2.close(unlink=True)
        bell.close()
    asyncio.run(go())
    assert not os.path.exists(path)


def test_stale_bells_are_removed(run):
    dead = f"{BELL_DIR}/csbell.g999999999.market"         # an engine-owned group whose engine is gone
    live = f"{BELL_DIR}/csbell.g{os.getpid()}.market"
    mine = Doorbell.path_for(run, "intent")
    for p in (dead, live, mine):
        os.mkfifo(p, 0o600)
    try:
        removed = remove_bells()
        assert "csbell.g999999999.market" in removed and os.path.exists(live) and os.path.exists(mine)
        assert remove_bells(run) == [f"csbell.{run}.intent"] and not os.path.exists(mine)
    finally:
        for p in (dead, live, mine):
            if os.path.exists(p):
                os.unlink(p)
