"""Rings and regions across real processes: no loss within flow control, writer death
detected, stale segments cleaned, blocking readers do not burn CPU, orphans die."""
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from cext import ringbench
from cext.ring import RingReader, RingWriter
from cext.shm_core import cleanup_stale, find_segments, pid_alive
from engine.schema import MARKET_DTYPE

CTX = mp.get_context("spawn")


def _reader(name, wait, n, q, ready):
    r = RingReader(name, MARKET_DTYPE, wait=wait)
    ready.set()
    if wait == "block":
        out = np.zeros(1, MARKET_DTYPE)
        got, gaps, expect = 0, 0, 0
        while got < n:
            if not r.read(out, timeout_ns=10_000_000_000):
                break
            gaps += int(out["seq"][0]) != expect
            expect = int(out["seq"][0]) + 1
            got += 1
        q.put((wait, got, gaps, r.overruns))
    else:
        got, _, gaps, overruns = ringbench.read_count(r, n, 256, 10_000_000_000)
        q.put((wait, got, gaps, overruns))
    r.close()


def test_two_reader_processes_get_every_record_in_order(shm_prefix):
    name = shm_prefix + "market"
    n = 200_000
    w = RingWriter.create(name, MARKET_DTYPE, 1 << 12)
    q = CTX.Queue()
    readies = [CTX.Event(), CTX.Event()]
    procs = [CTX.Process(target=_reader, args=(name, mode, n, q, ev))
             for mode, ev in zip(("spin", "block"), readies)]
    for p in procs:
        p.start()
    for ev in readies:
        assert ev.wait(30)
    ringbench.publish_flow_controlled(w, n, 64)
    results = sorted(q.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert results == [("block", n, 0, 0), ("spin", n, 0, 0)]
    w.close(); w.unlink()


def _crashing_writer(name, q):
    w = RingWriter.create(name, MARKET_DTYPE, 64)
    a = np.zeros(1, MARKET_DTYPE)
    a["seq"] = 7
    w.publish(a[0])
    q.put(os.getpid())
    time.sleep(60)


def test_dead_writer_is_detected_and_its_segment_cleaned(shm_prefix):
    name = shm_prefix + "market"
    q = CTX.Queue()
    p = CTX.Process(target=_crashing_writer, args=(name, q))
    p.start()
    pid = q.get(timeout=30)
    r = RingReader(name, MARKET_DTYPE, start="oldest")
    assert r.writer_alive() and r.writer_pid == pid
    out = np.zeros(1, MARKET_DTYPE)
    assert r.poll(out) == 1 and out["seq"][0] == 7
    os.kill(pid, signal.SIGKILL)
    p.join(10)
    assert not r.writer_alive()
    assert not r.writer_closed          # it did not close cleanly: it crashed
    r.close()
    assert cleanup_stale(shm_prefix) == [name]
    assert find_segments(shm_prefix) == []


def _idle_blocking_reader(name, q):
    r = RingReader(name, MARKET_DTYPE, wait="block", spin=100)
    out = np.zeros(1, MARKET_DTYPE)
    c0 = time.process_time()
    t0 = time.monotonic()
    got = r.read(out, timeout_ns=-1)       # no timeout: sleeps until the writer wakes it
    q.put((got, int(out["seq"][0]), time.monotonic() - t0, time.process_time() - c0))


def test_blocking_reader_sleeps_and_is_woken(shm_prefix):
    name = shm_prefix + "market"
    w = RingWriter.create(name, MARKET_DTYPE, 64)
    q = CTX.Queue()
    p = CTX.Process(target=_idle_blocking_reader, args=(name, q))
    p.start()
    deadline = time.monotonic() + 30
    while not w.stats()["readers"] and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.5)                         # the reader waits half a second
    a = np.zeros(1, MARKET_DTYPE)
    a["seq"] = 99
    w.publish(a[0])
    got, seq, waited, cpu = q.get(timeout=30)
    p.join(10)
    assert (got, seq) == (1, 99)
    assert waited >= 0.45
    # a spinning reader would have burnt ~0.5 s of CPU; a blocked one next to nothing
    assert cpu < 0.25 * waited, f"blocking reader used {cpu:.3f} s CPU in {waited:.3f} s"
    assert w.stats()["wakeups"] >= 1
    w.close(); w.unlink()


GRANDCHILD = (
    "import os, time\n"
    "from cext.shm_core import set_parent_death_signal\n"
    "set_parent_death_signal(expected_parent=int(os.environ['PARENT']))\n"
    "print(os.getpid(), flush=True)\n"
    "time.sleep(60)\n"
)
PARENT = (
    "import os, subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', os.environ['GRANDCHILD']],\n"
    "    env=dict(os.environ, PARENT=str(os.getpid())), stdout=subprocess.PIPE, text=True)\n"
    "print(child.stdout.readline().strip(), flush=True)\n"
    "time.sleep(60)\n"
)


def test_child_dies_with_its_parent():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, GRANDCHILD=GRANDCHILD))
    grandchild = int(parent.stdout.readline())
    assert pid_alive(grandchild)
    parent.kill()
    parent.wait(10)
    deadline = time.monotonic() + 10
    while pid_alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not pid_alive(grandchild), "the orphan kept running"
