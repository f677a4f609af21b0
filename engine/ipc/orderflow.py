"""Orders across processes (3proc): the brain's intents to the engine, the engine's
execution reports and positions back to the brain.

    brain  --intent ring (ORDER_DTYPE)-->  engine (risk, gateway, journal)
    brain  <--exec ring (EXEC_DTYPE)----   engine: every report the brain's strategy needs
                                           (venue reports and the gate's rejections)
    brain  <--position region-----------   engine: each instrument's position (lots)

The brain creates the intent ring (a restarted brain takes it over: the engine's cursor
stays valid); the engine creates the exec ring and the position region before it starts
the brain. Every intent carries the client id its brain assigned; the engine gives each
brain life its own block of ids (``--cid-start``) and drops intents from an earlier life
(``IntentSource.floor``): after a brain dies its quotes are cancelled, and nothing it had
published but not yet seen gated may reach the venue afterwards.

A reader overrun (the other side stalled a whole ring lap) is counted, never silent:
the intent ring is 4,096 records, several seconds of the fastest requoting.
"""
from __future__ import annotations

import asyncio
import time

import numpy as np

from cext.region import Region
from cext.ring import RingOverrun, RingReader, RingWriter
from engine import schema
from engine.ipc import ring_writer, segment_name, segment_not_ready
from engine.ipc.waits import RingWaker, poll_loop

INTENT_CAPACITY = 1 << 12
EXEC_CAPACITY = 1 << 12
CID_LIFE_GAP = 1 << 20      # client ids between two brain lives (> any ring's capacity)


def segments(run: str) -> tuple[str, str, str]:
    """(intent ring, exec ring, position region) names of run ``run``."""
    return segment_name(run, "intent"), segment_name(run, "exec"), segment_name(run, "position")


def _read(reader: RingReader, buf: np.ndarray, handle, counts: dict) -> int:
    try:
        n = reader.read_many(buf)
    except RingOverrun:
        counts["overruns"] += 1
        counts["lost"] += int(reader.recover())
        return 0
    for i in range(n):
        handle(buf[i:i + 1])
    return n


# ---------------------------------------------------------------------- brain side
class BrainLink:
    """The brain process's end: publishes intents, reads execution reports and positions."""

    def __init__(self, run: str):
        intent, exec_, position = segments(run)
        self.intents, self.took_over = ring_writer(intent, schema.ORDER_DTYPE, INTENT_CAPACITY)
        self.execs = RingReader(exec_, schema.EXEC_DTYPE, wait="spin", start="next")
        self.positions = Region.attach(position, schema.POSITION_DTYPE)
        self._buf = np.zeros(256, schema.EXEC_DTYPE)
        self._pos = np.zeros(1, schema.POSITION_DTYPE)
        self.counts = {"intents": 0, "execs": 0, "overruns": 0, "lost": 0}

    def publish(self, intents: list) -> None:
        for it in intents:
            self.intents.publish(it)
        self.counts["intents"] += len(intents)

    def poll_execs(self, on_exec) -> int:
        n = _read(self.execs, self._buf, lambda e: on_exec(e[0]), self.counts)
        self.counts["execs"] += n
        return n

    def position(self, inst: int) -> int:
        self.positions.read(inst, self._pos)
        return int(self._pos["qty"][0])

    def close(self) -> None:
        self.intents.close()
        self.execs.close()
        self.positions.close()


# ---------------------------------------------------------------------- engine side
class EngineLink:
    """The engine's end: creates the exec ring and position region, reads intents."""

    def __init__(self, run: str, n_instruments: int):
        self.run_name = run
        intent, exec_, position = segments(run)
        self.execs = RingWriter.create(exec_, schema.EXEC_DTYPE, EXEC_CAPACITY)
        self.positions = Region.create(position, schema.POSITION_DTYPE, n_instruments)
        self.reader: RingReader | None = None
        self._buf = np.zeros(256, schema.ORDER_DTYPE)
        self._pos = np.zeros(1, schema.POSITION_DTYPE)
        self.floor = 0                      # intents with a lower client id are from a dead brain
        self.max_cid = 0
        self.messages = 0                   # the brain's market messages (the engine copies its heartbeat) ...
        self.brain_ready = False            # ... and whether all its features are ready
        self.counts = {"intents": 0, "stale_intents": 0, "overruns": 0, "lost": 0}

    def attach(self) -> bool:
        """The intent ring, once the brain created it (everything in it is new then)."""
        if self.reader is None:
            try:
                self.reader = RingReader(segments(self.run_name)[0], schema.ORDER_DTYPE, wait="spin", start="oldest")
            except Exception as e:
                if segment_not_ready(e):              # not there yet, or its header half written
                    return False
                raise
        return True

    def poll_intents(self, on_intent) -> int:
        if self.reader is None and not self.attach():
            return 0

        def one(it):
            cid = int(it["client_id"][0])
            if cid > self.max_cid:
                self.max_cid = cid
            if cid < self.floor:
                self.counts["stale_intents"] += 1
                return
            self.counts["intents"] += 1
            on_intent(it.copy())
        return _read(self.reader, self._buf, one, self.counts)

    async def run(self, on_intent, wait: str, running, spin_us: float = 200.0) -> None:
        """Read intents until ``running()`` is false; ``wait`` as engine.ipc.waits says (hybrid
        and block sleep until the brain publishes)."""
        while not self.attach():
            if not running():
                return
            await asyncio.sleep(0.01)
        waker = None
        if wait != "spin":
            waker = RingWaker(segments(self.run_name)[0], schema.ORDER_DTYPE, asyncio.get_running_loop())
        try:
            await poll_loop([lambda: self.poll_intents(on_intent)], wait, int(spin_us * 1000), running, waker=waker)
        finally:
            if waker is not None:
                waker.close()

    def fault_stats(self) -> dict:
        c = self.counts
        return {"intent_ring_overruns": c["overruns"], "intents_lost": c["lost"], "stale_intents": c["stale_intents"]}

    def next_life(self, first: int) -> int:
        """The first client id of the next brain life (every later intent below it is dropped)."""
        self.floor = max(first, self.floor, self.max_cid + 1 + CID_LIFE_GAP)
        return self.floor

    def send_exec(self, e) -> None:
        self.execs.publish(np.asarray(e).reshape(1))

    def set_position(self, inst: int, lots: int, avg_px: float = 0.0) -> None:
        p = self._pos
        p["inst"], p["qty"], p["avg_px"], p["updated_ns"] = inst, lots, avg_px, time.monotonic_ns()
        self.positions.write(inst, p)

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
        self.execs.unlink()
        self.execs.close()
        self.positions.unlink()
        self.positions.close()
