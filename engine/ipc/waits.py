"""Ring wait strategies inside an asyncio loop (the readers of the split topologies share
their loop with sockets: the gateway, the user stream, the admin).

``spin`` yields to the loop and polls again at once (a core at 100 %); ``hybrid`` spins
for ``spin_ns`` after the last record, then sleeps; ``block`` sleeps at once (for hosts
where nothing may spin). Sleeping is either a nap of 1 ms (the event loop's timer
resolution: the first record after a quiet spell waits up to 1 ms), or, with a
``BellWaker``, until the writer publishes: the writer rings the ring's ``Doorbell`` (a
FIFO) and the loop, asleep in epoll on the FIFO's fd, wakes at once (one wake-up, no
thread, no core burnt). ``benchmarks/loop_wake.py`` compares it with a futex-watching
thread (what hybrid used before: a second wake-up and the loop's self-pipe), naps, spin.
A process without an event loop (the brain) sleeps on the ring's futex instead.
"""
from __future__ import annotations

import asyncio
import os
import stat
import time

WAITS = ("spin", "hybrid", "block")


def check_wait(wait: str) -> str:
    if wait not in WAITS:
        raise ValueError(f"wait strategy {wait!r}: one of {', '.join(WAITS)}")
    return wait


BELL_DIR = "/dev/shm"


class Doorbell:
    """A named FIFO beside a ring, for a reader whose event loop must sleep until the writer
    publishes: the writer ``ring``s it after each publish (one non-blocking write of one
    byte; a full FIFO means wake-ups are pending anyway), the reader's loop watches its fd
    (``add_reader``): one wake-up of the loop itself, no thread, no GIL hand-over (the
    ``RingWaker``'s futex thread costs a second wake-up and the loop's self-pipe).

    The reader creates the FIFO (mode 0600) and also holds it open for writing, so that it
    never reads end-of-file when writers come and go. A writer opens it lazily (no reader
    yet: ``ring`` does nothing, and tries again at most every 100 ms); a reader that went
    away makes the writer's next write fail with EPIPE: it closes and reopens the same way.
    FIFOs live in /dev/shm as ``csbell.<run>.<ring>`` (never under the ``/cs.`` prefix of the
    segments, whose cleanup maps what it finds)."""

    def __init__(self, path: str):
        self.path = path
        self.fd = -1
        self._retry_at = 0.0
        self.rung = 0

    @staticmethod
    def path_for(run: str, what: str) -> str:
        return f"{BELL_DIR}/csbell.{run}.{what}"

    @classmethod
    def for_ring(cls, run: str, what: str) -> "Doorbell":
        return cls(cls.path_for(run, what))

    # -------------------------------------------------------------- writer
    def ring(self) -> None:
        if self.fd < 0:
            now = time.monotonic()
            if now < self._retry_at:
                return
            try:
                self.fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:                      # no FIFO, or no reader yet (ENXIO)
                self._retry_at = now + 0.1
                return
        try:
            os.write(self.fd, b"\x01")
            self.rung += 1
        except BlockingIOError:                  # full: the reader has wake-ups pending
            pass
        except OSError:                          # EPIPE: the reader went away
            os.close(self.fd)
            self.fd = -1
            self._retry_at = time.monotonic() + 0.1

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class LoopWake:
    """A loop's sleep until something wakes it: ``wait`` returns when ``_wake`` is called
    (from a callback of the same loop) or after the timeout. A wake-up is never lost: the
    future exists before the loop can run the callback that sets it."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.fut: asyncio.Future | None = None
        self.wakeups = 0

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


class BellWaker(LoopWake):
    """The reader's side of a ``Doorbell``: the FIFO's fd in the loop (``add_reader``)."""

    def __init__(self, path: str, loop: asyncio.AbstractEventLoop):
        super().__init__(loop)
        try:
            os.mkfifo(path, 0o600)
        except FileExistsError:
            if not stat.S_ISFIFO(os.stat(path).st_mode):
                raise ValueError(f"{path} exists and is not a FIFO")
        self.path = path
        self.rfd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.keep = os.open(path, os.O_WRONLY | os.O_NONBLOCK)    # never EOF when writers come and go
        loop.add_reader(self.rfd, self._readable)

    def _readable(self) -> None:
        try:
            while os.read(self.rfd, 4096):
                pass
        except BlockingIOError:
            pass
        self._wake()

    def close(self, unlink: bool = False) -> None:
        try:
            self.loop.remove_reader(self.rfd)
        except Exception:
            pass
        os.close(self.rfd)
        os.close(self.keep)
        if unlink:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


async def poll_loop(polls, wait: str, spin_ns: int, running, seconds: float | None = None,
                    waker: LoopWake | None = None) -> None:
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


def loop_waker(run: str, what: str, wait: str) -> BellWaker | None:
    """The waker a reader of ring ``what`` of run ``run`` sleeps on (none for ``spin``);
    call it inside the running loop."""
    if check_wait(wait) == "spin":
        return None
    return BellWaker(Doorbell.path_for(run, what), asyncio.get_running_loop())


def remove_bells(run: str | None = None) -> list[str]:
    """Unlink the bells of run ``run`` (its processes are gone), or, with no run, those of
    engine-owned groups (``g<pid>``) whose engine is dead. Returns what was removed."""
    from cext.shm_core import pid_alive
    out = []
    try:
        names = os.listdir(BELL_DIR)
    except FileNotFoundError:
        return out
    for n in names:
        if not n.startswith("csbell."):
            continue
        grp = n.split(".")[1] if n.count(".") >= 2 else ""
        if run is not None:
            if grp != run:
                continue
        elif not (grp[:1] == "g" and grp[1:].isdigit()) or pid_alive(int(grp[1:])):
            continue
        try:
            os.unlink(f"{BELL_DIR}/{n}")
            out.append(n)
        except FileNotFoundError:
            pass
    return out
