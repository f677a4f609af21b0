"""Garbage-collector pauses out of the trading path.

CPython's cyclic collector runs whenever enough container objects were allocated: the
youngest generation every ~700, in the middle of whatever message is being handled, and
the oldest one over the whole heap (measured in the engine against the 20x sim, ensemble
loaded: 22, 52 and 88 ms for the three full collections of a 45 s run; in the sim process
21 ms). Reference counting frees almost everything anyway; the collector is only needed
for cycles.

``GcPauses`` (for an event-loop process):
- ``start()``, once everything long-lived exists (books, models, compiled functions):
  collects, then ``gc.freeze()`` moves every object alive into a permanent generation that
  later collections do not walk, and turns automatic collection off;
- ``tick()`` from the process's once-a-second housekeeping: the young generations
  (what the last second left alive, a small walk) every call, and everything unfrozen
  every ``full_every_s``; each collection is timed (``stats()``).
Cycles made after ``start()`` are still collected (within ``full_every_s``); memory
growth between ticks is bounded by what one second allocates.
"""
from __future__ import annotations

import gc
import time


class GcPauses:
    def __init__(self, full_every_s: float = 60.0):
        self.full_every_s = full_every_s
        self.frozen = 0
        self.collections = 0
        self.collected = 0
        self.max_ms = {"young": 0.0, "full": 0.0}
        self.last_ms = {"young": 0.0, "full": 0.0}
        self._last_full = 0.0
        self.started = False

    def start(self) -> None:
        gc.collect()
        gc.freeze()
        gc.disable()
        self.frozen = gc.get_freeze_count()
        self._last_full = time.monotonic()
        self.started = True

    def tick(self) -> None:
        if not self.started:
            return
        now = time.monotonic()
        kind, gen = ("full", 2) if now - self._last_full >= self.full_every_s else ("young", 1)
        t0 = time.perf_counter()
        self.collected += gc.collect(gen)
        ms = (time.perf_counter() - t0) * 1e3
        if gen == 2:
            self._last_full = now
        self.collections += 1
        self.last_ms[kind] = ms
        self.max_ms[kind] = max(self.max_ms[kind], ms)

    def stop(self) -> None:
        """Automatic collection back on (the process is shutting down, or a test ends)."""
        if self.started:
            gc.enable()
            gc.unfreeze()
            self.started = False

    def stats(self) -> dict:
        return {"frozen_objects": self.frozen, "collections": self.collections, "collected": self.collected,
                "max_ms": {k: round(v, 2) for k, v in self.max_ms.items()}}
