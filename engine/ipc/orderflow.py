"""Orders across processes: the brain's intents to the engine, the engine's execution
reports and positions back to the brain (3proc and 4proc); the gated orders to the gateway
process and its reports back (4proc).

    brain  --intent ring (ORDER_DTYPE)-->  engine (risk, journal; 3proc: gateway too)
    brain  <--exec ring (EXEC_DTYPE)----   engine: every report the brain's strategy needs
                                           (venue reports and the gate's rejections)
    brain  <--position region-----------   engine: each instrument's position (lots)
    engine --order ring (ORDER_DTYPE)--->  gateway (4proc: order sessions, user stream)
    engine <--gateway ring (EXEC_DTYPE)--  gateway: each order's results after an EX_SENT
                                           record, user-stream reports, EX_GATEWAY states

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
from engine.execution.gateway import OrderGateway, _ready
from engine.ipc.waits import Doorbell, loop_waker, poll_loop

INTENT_CAPACITY = 1 << 12
EXEC_CAPACITY = 1 << 12
CID_LIFE_GAP = 1 << 20      # client ids between two brain lives (> any ring's capacity)
ORDER_CAPACITY = 1 << 12
GATEWAY_CAPACITY = 1 << 14  # a burst of fills and cancel-alls fits many times over
GATEWAY_DOWN = -1099        # REJECT reason: a NEW while the gateway process is down or restarting
CANCEL_ALL_IDS = 14 << 40   # the risk process's own ids for CANCEL_ALL requests (keys its pending map)


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
        self.bell = Doorbell.for_ring(run, "intent")
        self.execs = RingReader(exec_, schema.EXEC_DTYPE, wait="spin", start="next")
        self.positions = Region.attach(position, schema.POSITION_DTYPE)
        self._buf = np.zeros(256, schema.EXEC_DTYPE)
        self._pos = np.zeros(1, schema.POSITION_DTYPE)
        self.counts = {"intents": 0, "execs": 0, "overruns": 0, "lost": 0}

    def publish(self, intents: list) -> None:
        for it in intents:
            self.intents.publish(it)
        if intents:
            self.bell.ring()
        self.counts["intents"] += len(intents)

    def poll_execs(self, on_exec) -> int:
        n = _read(self.execs, self._buf, lambda e: on_exec(e[0]), self.counts)
        self.counts["execs"] += n
        return n

    def position(self, inst: int) -> int:
        self.positions.read(inst, self._pos)
        return int(self._pos["qty"][0])

    def close(self) -> None:
        self.bell.close()
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
        waker = loop_waker(self.run_name, "intent", wait)
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


# ---------------------------------------------------------------------- risk <-> gateway (4proc)
def gateway_segments(run: str) -> tuple[str, str]:
    """(order ring, gateway ring) names of run ``run``."""
    return segment_name(run, "order"), segment_name(run, "gwexec")


def sent_record(order, n_following: int) -> np.ndarray:
    """The EX_SENT record that heads an order's results on the gateway ring."""
    e = np.zeros(1, schema.EXEC_DTYPE)
    o = order[0]
    e["kind"], e["client_id"], e["inst"], e["side"] = schema.EX_SENT, o["client_id"], o["inst"], o["side"]
    e["mono_origin"], e["mono_send"], e["qty"] = o["mono_origin"], o["t_send"], n_following
    return e


def state_record(state: int) -> np.ndarray:
    e = np.zeros(1, schema.EXEC_DTYPE)
    e["kind"], e["reason"], e["mono_recv"] = schema.EX_GATEWAY, state, time.monotonic_ns()
    return e


class GatewaySide:
    """The gateway process's end: reads gated orders (only those published after it
    attached: what a dead predecessor left unread the risk process resolves with the
    venue), publishes results and reports. A restarted gateway takes its ring over."""

    def __init__(self, run: str):
        order, gw = gateway_segments(run)
        self.out, self.took_over = ring_writer(gw, schema.EXEC_DTYPE, GATEWAY_CAPACITY)
        self.bell = Doorbell.for_ring(run, "gwexec")
        self.orders = RingReader(order, schema.ORDER_DTYPE, wait="spin", start="next")
        self._buf = np.zeros(256, schema.ORDER_DTYPE)
        self.counts = {"orders": 0, "reports": 0, "overruns": 0, "lost": 0}

    def poll_orders(self, on_order) -> int:
        n = _read(self.orders, self._buf, lambda o: on_order(o.copy()), self.counts)
        self.counts["orders"] += n
        return n

    def publish(self, recs: np.ndarray) -> None:
        """Records back to back, visible at once (one cursor update)."""
        if len(recs):
            self.out.publish_many(np.ascontiguousarray(recs, dtype=schema.EXEC_DTYPE))
            self.bell.ring()
            self.counts["reports"] += len(recs)

    def close(self) -> None:
        self.bell.close()
        self.orders.close()
        self.out.close()


class GatewayLink(OrderGateway):
    """The gateway as the risk process sees it (4proc): ``start`` publishes a gated order on
    the order ring and returns an awaitable of its results, as OrderGateway.start does; the
    gateway process answers with an EX_SENT record (the order's ``t_send``) followed by its
    results. Every other report goes to ``on_report``, every gateway state to ``on_state``.

    While the gateway is not ``up`` (down, restarting, or the risk process has not yet
    reconciled after its restart), a NEW is refused (REJECT, ``GATEWAY_DOWN``) and a CANCEL
    or CANCEL_ALL goes out through this process's own REST session: cancelling is always
    allowed. ``down`` settles what was in flight when the gateway died: those orders may or
    may not have reached the venue, and the caller asks the venue."""

    def __init__(self, run: str, rest, instruments):
        super().__init__(rest, instruments)
        self.run_name = run
        self.ring = RingWriter.create(gateway_segments(run)[0], schema.ORDER_DTYPE, ORDER_CAPACITY)
        self.bell = Doorbell.for_ring(run, "order")
        self.reader: RingReader | None = None
        self.up = False
        self.pending: dict[int, tuple] = {}        # client id -> (future, order)
        self._batch: list | None = None            # [future, order, left, results] being collected
        self._buf = np.zeros(256, schema.EXEC_DTYPE)
        self._next_cancel_all = CANCEL_ALL_IDS
        self.on_report = None                      # fn(exec record)
        self.on_state = None                       # fn(GW_*)
        self.counts = {"published": 0, "refused_down": 0, "own_session_cancels": 0, "unsure": 0,
                       "late_results": 0, "overruns": 0, "lost": 0}

    # ------------------------------------------------------------ orders out
    def start(self, order: np.ndarray):
        o = order[0]
        action = int(o["action"])
        if not self.up:
            if action in (schema.ACT_CANCEL, schema.ACT_CANCEL_ALL):
                self.counts["own_session_cancels"] += 1
                return super().start(order)
            self.counts["refused_down"] += 1
            return _ready(self._exec(o, schema.EX_REJECT, GATEWAY_DOWN))
        if action == schema.ACT_CANCEL_ALL:
            o["client_id"] = self._next_cancel_all
            self._next_cancel_all += 1
        fut = asyncio.get_running_loop().create_future()
        self.pending[int(o["client_id"])] = (fut, order)
        self.ring.publish(order)
        self.bell.ring()
        self.counts["published"] += 1
        return fut

    async def send_own(self, order: np.ndarray):
        """A CANCEL or CANCEL_ALL through this process's own REST session, whatever the
        gateway's state (the stop, when the gateway does not answer)."""
        if int(order["action"][0]) not in (schema.ACT_CANCEL, schema.ACT_CANCEL_ALL):
            raise ValueError("only cancels go out through the risk process's own session")
        self.counts["own_session_cancels"] += 1
        return await super().start(order)

    async def heartbeat(self) -> None:
        """The gateway process renews the venue's cancel-on-disconnect countdown itself."""

    def down(self) -> list:
        """The gateway died: every order awaiting its results is settled with none (journaled
        without ``t_send``). Returns those orders: the caller learns their fate from the venue."""
        self.up = False
        unsure = []
        if self._batch is not None:
            fut, order, _, got = self._batch
            self._batch = None
            self.pending.pop(int(order["client_id"][0]), None)
            if not fut.done():
                fut.set_result(got)
        for fut, order in self.pending.values():
            unsure.append(order)
            if not fut.done():
                fut.set_result([])
        self.pending.clear()
        self.counts["unsure"] += len(unsure)
        return unsure

    # ------------------------------------------------------------ reports in
    def attach(self) -> bool:
        if self.reader is None:
            try:
                self.reader = RingReader(gateway_segments(self.run_name)[1], schema.EXEC_DTYPE, wait="spin",
                                         start="oldest")
            except Exception as e:
                if segment_not_ready(e):
                    return False
                raise
        return True

    def poll(self) -> int:
        if self.reader is None and not self.attach():
            return 0
        return _read(self.reader, self._buf, self._one, self.counts)

    def _track(self, e) -> None:
        k, cid = int(e["kind"]), int(e["client_id"])
        if k == schema.EX_ACK and int(e["exch_order_id"]):
            self.open[cid] = {"inst": int(e["inst"]), "order_id": int(e["exch_order_id"])}
        elif k in (schema.EX_FILL, schema.EX_CANCELED, schema.EX_EXPIRED, schema.EX_REJECT):
            self.open.pop(cid, None)

    def _one(self, rec) -> None:
        e = rec.copy()[0]
        k = int(e["kind"])
        b = self._batch
        if b is not None:                               # an order's results, after its EX_SENT
            self._track(e)
            b[3].append(e)
            b[2] -= 1
            if b[2] == 0:
                self._batch = None
                if not b[0].done():
                    b[0].set_result(b[3])
            return
        if k == schema.EX_SENT:
            p = self.pending.pop(int(e["client_id"]), None)
            n = int(e["qty"])
            if p is None:                               # settled as unsure already: its results are reports
                self.counts["late_results"] += 1
                return
            p[1]["t_send"] = e["mono_send"]
            if n:
                self._batch = [p[0], p[1], n, []]
            elif not p[0].done():
                p[0].set_result([])
        elif k == schema.EX_GATEWAY:
            if self.on_state is not None:
                self.on_state(int(e["reason"]))
        else:
            self._track(e)
            if self.on_report is not None:
                self.on_report(e)

    async def run(self, wait: str, running, spin_us: float = 200.0) -> None:
        """Read the gateway ring until ``running()`` is false (``wait`` as in EngineLink.run)."""
        while not self.attach():
            if not running():
                return
            await asyncio.sleep(0.01)
        waker = loop_waker(self.run_name, "gwexec", wait)
        try:
            await poll_loop([self.poll], wait, int(spin_us * 1000), running, waker=waker)
        finally:
            if waker is not None:
                waker.close()

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
        self.bell.close()
        self.ring.unlink()
        self.ring.close()
