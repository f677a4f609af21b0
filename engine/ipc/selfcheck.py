"""Transport self-check: a real writer and a real reader process over a shared-memory
ring, with heartbeats in a seqlock region. What `cryptoscalp run` does until the trading
process group exists (see README)."""
from __future__ import annotations

import multiprocessing as mp
import os
import time

import numpy as np

from cext import ringbench
from engine import schema
from engine.ipc import (Region, RingReader, RingWriter, cleanup_stale, run_prefix,
                        segment_name, set_parent_death_signal)


def _reader(run: str, n: int, wait: str, parent: int, ready) -> None:
    set_parent_death_signal(expected_parent=parent)
    hb = Region.attach(segment_name(run, "heartbeat"), schema.HEARTBEAT_DTYPE)
    r = RingReader(segment_name(run, "market"), schema.MARKET_DTYPE, wait=wait)
    beat = np.zeros(1, schema.HEARTBEAT_DTYPE)
    beat["pid"] = os.getpid()
    beat["name"] = b"selfcheck-reader"
    beat["state"] = schema.PS_READY
    beat["started_ns"] = time.time_ns()
    lat = np.zeros(n, np.int64)
    ready.set()
    got, overruns, disorder = ringbench.read_latencies(r, lat, 10_000_000_000)
    beat["events"] = got
    beat["errors"] = overruns + disorder
    beat["heartbeat_ns"] = time.monotonic_ns()
    beat["state"] = schema.PS_STOPPED
    hb.write(1, beat)
    np.save(f"/dev/shm/cs.{run}.selfcheck-lat.npy", lat[:got])
    r.close()
    hb.close()


def run_selfcheck(run: str = "selfcheck", n: int = 100_000, interval_ns: int = 10_000,
                  wait: str = "spin", out=print) -> dict:
    """Spawn a reader process, publish ``n`` stamped records to it over a ring, and report
    what arrived and the one-hop latency percentiles. Raises if anything was lost."""
    removed = cleanup_stale(run_prefix(run))
    if removed:
        out(f"cleaned {len(removed)} stale segment(s) of a previous run: {', '.join(removed)}")
    ring = RingWriter.create(segment_name(run, "market"), schema.MARKET_DTYPE, 1 << 14)
    hb = Region.create(segment_name(run, "heartbeat"), schema.HEARTBEAT_DTYPE, 2)
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=_reader, args=(run, n, wait, os.getpid(), ready), daemon=True)
    try:
        proc.start()
        if not ready.wait(30):
            raise RuntimeError("reader process did not start within 30 s")
        out(f"reader pid {proc.pid} attached to {ring.name} (wait={wait}); publishing {n} records")
        elapsed = ringbench.publish_stamped(ring, n, interval_ns)
        proc.join(60)
        if proc.exitcode != 0:
            raise RuntimeError(f"reader process exited with code {proc.exitcode}")
        beat = hb.snapshot()[1]
        lat = np.load(f"/dev/shm/cs.{run}.selfcheck-lat.npy")
        os.unlink(f"/dev/shm/cs.{run}.selfcheck-lat.npy")
        if beat["events"] != n or beat["errors"]:
            raise RuntimeError(f"reader got {beat['events']} of {n} records, {beat['errors']} errors")
        warm = lat[min(1000, n // 10):]
        p50, p99, p999 = np.percentile(warm, [50, 99, 99.9])
        res = {"records": int(beat["events"]), "lost": 0, "publish_s": elapsed / 1e9,
               "hop_p50_ns": float(p50), "hop_p99_ns": float(p99), "hop_p999_ns": float(p999)}
        out(f"ok: {res['records']} records, none lost or out of order; one hop "
            f"p50 {p50:.0f} ns, p99 {p99:.0f} ns, p99.9 {p999:.0f} ns")
        return res
    finally:
        if proc.is_alive():
            proc.kill()
        ring.close()
        ring.unlink()
        hb.close()
        hb.unlink()
