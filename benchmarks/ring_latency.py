#!/usr/bin/env python
"""One-hop latency and throughput of the shared-memory ring between two processes,
for each wait strategy, against multiprocessing.Queue and ZeroMQ ipc:// in the same run.

    python benchmarks/ring_latency.py [--quick]

Prints one JSON line per case (STYLE.md). What is measured:

- "ring <wait>, C loop": writer and reader are nogil C loops (cext/ringbench.pyx) calling
  the same cdef entry points the engine's Cython components use. One record (64 bytes)
  every ``interval`` so the reader is waiting when it arrives; latency = reader's
  CLOCK_MONOTONIC after the copy - writer's stamp just before publish. This is the hop
  cost the hot path pays.
- "... , Python API": both sides in Python (publish / read), as a Python component
  would use the ring; the same message and stamp as the Queue and ZeroMQ cases, which
  can only be used from Python. The sender sleeps ~100 us between messages.
- throughput: records/s delivered to the reader, writer flat out but never more than
  half a ring ahead of the reader (no loss), counted at the reader.

Each C-loop latency case also reports ``steal_ms`` (CPU time the hypervisor took during
the case) and ``reader_preemptions``: on a shared VM one preemption of a few ms delays
every record queued behind it, and that, not the ring, is what the p99.9 and max show.

Excluded: the first 1000 samples of each latency case (warm-up: page faults, caches),
process start-up. The processes are pinned to two different CPUs when two are usable.
"""
import argparse
import multiprocessing as mp
import os
import struct
import sys
import time
import uuid

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import emit, host, involuntary_switches, latency_stats, pin, steal_ms  # noqa: E402

from cext import ringbench  # noqa: E402
from cext.ring import RingReader, RingWriter  # noqa: E402
from engine.schema import MARKET_DTYPE  # noqa: E402

CTX = mp.get_context("spawn")
WARMUP = 1000
STAMP_OFF = MARKET_DTYPE.fields["mono_origin"][1]
SEQ_OFF = MARKET_DTYPE.fields["seq"][1]


def _warm(n):
    """Samples dropped as warm-up: the first 1000, or a tenth of a short run."""
    return min(WARMUP, n // 10)


def cpus():
    usable = sorted(os.sched_getaffinity(0))
    return (usable[0], usable[1]) if len(usable) >= 2 else (None, None)


# ------------------------------------------------------------------ ring, C loops
def _rt(on):
    """SCHED_FIFO priority 10 for this process (root): no preemption by ordinary tasks.
    The kernel's RT throttling still leaves 5% of each second to others."""
    if on:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))


def _c_reader(name, wait, spin, n, cpu, q, ready, rt=False):
    pin(cpu)
    _rt(rt)
    r = RingReader(name, MARKET_DTYPE, wait=wait, spin=spin)
    lat = np.zeros(n, np.int64)
    ready.set()
    sw = involuntary_switches()
    got, overruns, disorder = ringbench.read_latencies(r, lat, 20_000_000_000)
    q.put((lat[:got], overruns, disorder, involuntary_switches() - sw))
    r.close()


def ring_c_latency(wait, spin, n, interval_ns, cpu_w, cpu_r, rt=False):
    name = f"/cs.bench.{uuid.uuid4().hex[:8]}"
    w = RingWriter.create(name, MARKET_DTYPE, 1 << 14)
    q, ready = CTX.Queue(), CTX.Event()
    p = CTX.Process(target=_c_reader, args=(name, wait, spin, n, cpu_r, q, ready, rt))
    p.start()
    ready.wait(30)
    time.sleep(0.2)
    old = os.sched_getaffinity(0)
    pin(cpu_w)
    _rt(rt)
    st0 = steal_ms()
    ringbench.publish_stamped(w, n, interval_ns)
    st1 = steal_ms()
    if rt:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    os.sched_setaffinity(0, old)
    lat, overruns, disorder, preempt = q.get(timeout=120)
    p.join(30)
    w.close(); w.unlink()
    assert overruns == 0 and disorder == 0 and len(lat) == n, (overruns, disorder, len(lat))
    return lat[_warm(len(lat)):], {"steal_ms": st1 - st0, "reader_preemptions": preempt}


def _c_counter(name, n, batch, cpu, q, ready):
    pin(cpu)
    r = RingReader(name, MARKET_DTYPE, wait="spin")
    ready.set()
    q.put(ringbench.read_count(r, n, batch, 30_000_000_000))
    r.close()


def ring_c_throughput(n, wbatch, cpu_w, cpu_r):
    name = f"/cs.bench.{uuid.uuid4().hex[:8]}"
    w = RingWriter.create(name, MARKET_DTYPE, 1 << 14)
    q, ready = CTX.Queue(), CTX.Event()
    p = CTX.Process(target=_c_counter, args=(name, n, 256, cpu_r, q, ready))
    p.start()
    ready.wait(30)
    old = os.sched_getaffinity(0)
    pin(cpu_w)
    ringbench.publish_flow_controlled(w, n, wbatch)
    os.sched_setaffinity(0, old)
    got, elapsed, gaps, overruns = q.get(timeout=120)
    p.join(30)
    w.close(); w.unlink()
    assert got == n and gaps == 0 and overruns == 0, (got, gaps, overruns)
    return n / (elapsed / 1e9)


# ------------------------------------------------------------------ Python-level transports
def _make_msg():
    return bytearray(MARKET_DTYPE.itemsize)


def _py_send_loop(send, n, interval_ns):
    """Send n 64-byte messages stamped just before sending. Between messages the sender
    sleeps (releasing the GIL: multiprocessing.Queue sends from a feeder thread, which a
    busy-waiting sender would starve)."""
    msg = _make_msg()
    mono = time.monotonic_ns
    sleep = time.sleep
    for i in range(n):
        if interval_ns:
            sleep(interval_ns / 1e9)
        struct.pack_into("<q", msg, SEQ_OFF, i)
        struct.pack_into("<q", msg, STAMP_OFF, mono())
        send(msg)


def _py_receiver(kind, name, n, cpu, q, ready, throughput):
    pin(cpu)
    mono = time.monotonic_ns
    lat = np.zeros(n, np.int64)
    if kind == "ring":
        r = RingReader(name, MARKET_DTYPE, wait="spin")
        buf = np.zeros(256 if throughput else 1, MARKET_DTYPE)
        ready.set()
        if throughput:
            got = 0
            t0 = None
            while got < n:
                k = r.read_many(buf)
                if k and t0 is None:
                    t0 = mono()
                got += k
            q.put((got, mono() - t0))
        else:
            mv = memoryview(buf).cast("B")
            for i in range(n):
                r.read(buf)
                lat[i] = mono() - struct.unpack_from("<q", mv, STAMP_OFF)[0]
            q.put(lat)
        r.close()
        return
    if kind == "mpqueue":
        recv = name.get
        ready.set()
    else:
        import zmq
        ctx = zmq.Context()
        s = ctx.socket(zmq.PULL)
        s.linger = 0
        s.bind(name)
        ready.set()
        recv = s.recv
    if throughput:
        recv()
        t0 = mono()
        for _ in range(n - 1):
            recv()
        q.put((n - 1, mono() - t0))
    else:
        for i in range(n):
            m = recv()
            lat[i] = mono() - struct.unpack_from("<q", m, STAMP_OFF)[0]
        q.put(lat)
    if kind == "zmq":
        s.close()
        ctx.term()


def py_transport(kind, n, interval_ns, throughput, cpu_w, cpu_r):
    q, ready = CTX.Queue(), CTX.Event()
    cleanup = None
    if kind == "ring":
        name = f"/cs.bench.{uuid.uuid4().hex[:8]}"
        w = RingWriter.create(name, MARKET_DTYPE, 1 << 14)
        half = w.capacity // 2

        def send(msg, _w=w):
            _w.publish(msg)

        if throughput:
            def send(msg, _w=w, _c=[0]):  # flow control every 1024 records, as the C case
                _c[0] += 1
                if not (_c[0] & 1023):
                    while _w.write_seq - _w.min_cursor() > half:
                        pass
                _w.publish(msg)
        target = name
        cleanup = lambda: (w.close(), w.unlink())  # noqa: E731
    elif kind == "mpqueue":
        mq = CTX.Queue()
        target = mq
        send = lambda msg: mq.put(bytes(msg))  # noqa: E731
    else:
        import zmq
        path = f"ipc:///tmp/cs-bench-{uuid.uuid4().hex[:8]}"
        target = path
    p = CTX.Process(target=_py_receiver, args=(kind, target, n, cpu_r, q, ready, throughput))
    p.start()
    ready.wait(30)
    if kind == "zmq":
        ctx = zmq.Context()
        s = ctx.socket(zmq.PUSH)
        s.linger = 0
        s.connect(path)
        time.sleep(0.3)  # let the connection complete
        send = lambda msg: s.send(msg)  # noqa: E731
    time.sleep(0.2)
    old = os.sched_getaffinity(0)
    pin(cpu_w)
    _py_send_loop(send, n, 0 if throughput else interval_ns)
    os.sched_setaffinity(0, old)
    res = q.get(timeout=300)
    p.join(30)
    if kind == "zmq":
        s.close(); ctx.term()
        try:
            os.unlink(path[len("ipc://"):])
        except OSError:
            pass
    if cleanup:
        cleanup()
    if throughput:
        got, elapsed = res
        return got / (elapsed / 1e9)
    return res[_warm(len(res)):]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer samples (a smoke run)")
    ap.add_argument("--rt", action="store_true",
                    help="also run the spin case with both processes SCHED_FIFO (root; as on a tuned host)")
    args = ap.parse_args()
    k = 10 if args.quick else 1
    h = host()
    cw, cr = cpus()
    placement = "2 procs pinned" if cw is not None else "2 procs, 1 usable cpu, not pinned"
    base = {"bench": "ring_latency", "record_bytes": MARKET_DTYPE.itemsize}

    # --- ring, C loops: one hop per wait strategy
    cases = [
        ("spin", None, 200_000, 5_000),
        ("yield", None, 100_000, 10_000),
        ("block", None, 20_000, 200_000),      # spin 2000 pauses, then futex
        ("block", 0, 20_000, 200_000),         # straight to the futex: the wake-up cost
    ]
    for wait, spin, n, interval in cases:
        lat, noise = ring_c_latency(wait, spin, n // k, interval, cw, cr)
        label = f"ring {wait}{'' if spin is None else f' (spin={spin})'}, C loop, {placement}"
        emit({**base, "case": label, "interval_ns": interval, "wait": wait,
              **latency_stats(lat), **noise, "excluded": "first 1000 samples (a tenth with --quick), process start"}, h)

    if args.rt:
        lat, noise = ring_c_latency("spin", None, 200_000 // k, 5_000, cw, cr, rt=True)
        emit({**base, "case": f"ring spin, C loop, {placement}, SCHED_FIFO", "interval_ns": 5_000, "wait": "spin",
              **latency_stats(lat), **noise, "excluded": "first 1000 samples (a tenth with --quick), process start"}, h)

    # --- throughput, C loops
    for wbatch in (1, 64):
        rate = ring_c_throughput(10_000_000 // k, wbatch, cw, cr)
        emit({**base, "case": f"ring throughput, C loop, writer batch {wbatch}, {placement}",
              "unit": "records/s", "n": 10_000_000 // k, "per_s": round(rate)}, h)

    # --- Python-level: ring vs multiprocessing.Queue vs ZeroMQ ipc
    for kind, label in (("ring", "ring spin, Python API"), ("mpqueue", "multiprocessing.Queue"),
                        ("zmq", "ZeroMQ PUSH/PULL ipc://")):
        lat = py_transport(kind, 10_000 // k, 100_000, False, cw, cr)
        emit({**base, "case": f"{label}, {placement}", "interval_ns": "sleep(100 us) between sends",
              "vs": "ring spin, Python API" if kind != "ring" else None,
              **latency_stats(lat), "excluded": "first 1000 samples (a tenth with --quick), process start"}, h)
        rate = py_transport(kind, 300_000 // k, 0, True, cw, cr)
        emit({**base, "case": f"{label} throughput, {placement}", "unit": "records/s",
              "n": 300_000 // k, "per_s": round(rate),
              "vs": "ring spin, Python API throughput" if kind != "ring" else None}, h)


if __name__ == "__main__":
    main()
