"""Ring semantics in one process: publish/read, layouts, overrun, wait modes, lifecycle."""
import os
import time

import numpy as np
import pytest

from cext.ring import (RingError, RingFull, RingLayoutError, RingOverrun, RingReader,
                       RingWriter)
from cext.shm_core import cleanup_stale, find_segments
from engine.schema import EXEC_DTYPE, MARKET_DTYPE, ORDER_DTYPE


def recs(seqs, dtype=MARKET_DTYPE):
    a = np.zeros(len(seqs), dtype)
    a["seq"] = seqs
    a["px"] = [s * 7 for s in seqs]
    return a


def test_publish_read_in_order(shm_prefix):
    w = RingWriter.create(shm_prefix + "r", MARKET_DTYPE, 16)
    r = RingReader(shm_prefix + "r", MARKET_DTYPE)
    out = np.zeros(1, MARKET_DTYPE)
    assert r.poll(out) == 0
    for s in range(10):
        assert w.publish(recs([s])[0]) == s
    got = []
    while r.poll(out):
        got.append(int(out["seq"][0]))
        assert out["px"][0] == out["seq"][0] * 7
    assert got == list(range(10))
    assert r.lag == 0 and r.cursor == 10
    w.close(); r.close(); w.unlink()


def test_publish_accepts_bytes_and_checks_size(shm_prefix):
    w = RingWriter.create(shm_prefix + "r", MARKET_DTYPE, 8)
    w.publish(recs([5]).tobytes())
    with pytest.raises(ValueError, match="64"):
        w.publish(b"x" * 63)
    with pytest.raises(ValueError, match="whole number"):
        w.publish_many(b"x" * 100)
    w.close(); w.unlink()


def test_each_reader_has_its_own_cursor(shm_prefix):
    w = RingWriter.create(shm_prefix + "r", MARKET_DTYPE, 64)
    r1 = RingReader(shm_prefix + "r", MARKET_DTYPE)
    w.publish_many(recs(range(5)))
    r2 = RingReader(shm_prefix + "r", MARKET_DTYPE)             # starts at the next record
    r3 = RingReader(shm_prefix + "r", MARKET_DTYPE, start="oldest")
    w.publish_many(recs(range(5, 8)))
    out = np.zeros(16, MARKET_DTYPE)
    assert list(out["seq"][: r1.read_many(out)]) == list(range(8))
    assert list(out["seq"][: r2.read_many(out)]) == [5, 6, 7]
    assert list(out["seq"][: r3.read_many(out)]) == list(range(8))
    st = w.stats()
    assert [x["cursor"] for x in st["readers"]] == [8, 8, 8]
    for r in (r1, r2, r3):
        r.close()
    w.close(); w.unlink()


def test_read_many_respects_output_size(shm_prefix):
    w = RingWriter.create(shm_prefix + "r", MARKET_DTYPE, 64)
    r = RingReader(shm_prefix + "r", MARKET_DTYPE)
    w.publish_many(recs(range(10)))
    out = np.zeros(4, MARKET_DTYPE)
    seen = []
    while n := r.read_many(out):
        seen += list(out["seq"][:n])
    assert seen == list(range(10))
    w.close(); r.close(); w.unlink()


def test_layout_mismatch_is_refused(shm_prefix):
    w = RingWriter.create(shm_prefix + "r", MARKET_DTYPE, 8)
    with pytest.raises(RingLayoutError, match="expects"):
        RingReader(shm_prefix + "r", EXEC_DTYPE)
    same_size = np.dtype([(n, "<f8" if n == "px" else MARKET_DTYPE.fields[n][0]) for n in MARKET_DTYPE.names])
    with pytest.raises(RingLayoutError, match="px:<f8"):
        RingReader(shm_prefix + "r", same_size)
    with pytest.raises(RingLayoutError):
        RingWriter.takeover(shm_prefix + "r", ORDER_DTYPE)
    w.close(); w.unlink()


def test_bad_arguments_are_clear_errors(shm_prefix):
    with pytest.raises(ValueError, match="power of two"):
        RingWriter.create(shm_prefix + "r", MARKET_DTYPE, 100)
    with pytest.raises(ValueError, match="must start with '/'"):
        RingWriter.create("noslash", MARKET_DTYPE, 8)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        RingReader(shm_prefix + "missing", MARKET_DTYPE)
    w = RingWriter.create(shm_prefix + "r", MARKET_DTYPE, 8)
    with pytest.raises(FileExistsError, match="already exists"):
        RingWriter.create(shm_prefix + "r", MARKET_DTYPE, 8)
    with pytest.raises(ValueError, match="wait must be"):
        RingReader(shm_prefix + "r", MARKET_DTYPE, wait="sleepy")
    w.close(); w.unlink()


def test_overrun_is_explicit_and_recover_counts_lost(shm_prefix):
    cap = 16
    w = RingWriter.create(shm_prefix + "r", MARKET_DTYPE, cap)
    r = RingReader(shm_prefix + "r", MARKET_DTYPE)
    out = np.zeros(1, MARKET_DTYPE)
    w.publish_many(recs(range(cap)))        # exactly one lap: nothing lost yet
    assert r.poll(out) == 1 and out["seq"][0] == 0
    w.publish_many(recs(range(cap, cap + 2)))  # record 1 is now overwritten
    with pytest.raises(RingOverrun) as e:
        r.poll(out)
    assert e.value.cursor == 1 and e.value.missed == 1
    assert r.overruns == 1
    with pytest.raises(RingOverrun):          # still overrun until recovered: no silent skip
        r.read_many(np.zeros(4, MARKET_DTYPE))
    lost = r.recover()
    assert lost >= 1 and r.lost == lost
    seen = []
    while r.poll(out):
        seen.append(int(out["seq"][0]))
    assert seen == list(range(1 + lost, cap + 2))
    assert w.stats()["readers"][0]["overruns"] == 2
    w.close(); r.close(); w.unlink()


def test_read_timeout_returns_zero_for_every_wait_mode(shm_prefix):
    w = RingWriter.create(shm_prefix + "r", MARKET_DTYPE, 8)
    out = np.zeros(1, MARKET_DTYPE)
    for mode in ("spin", "yield", "block"):
        r = RingReader(shm_prefix + "r", MARKET_DTYPE, wait=mode)
        t0 = time.monotonic()
        assert r.read(out, timeout_ns=20_000_000) == 0
        assert time.monotonic() - t0 >= 0.019
        w.publish(recs([42])[0])
        assert r.read(out, timeout_ns=1_000_000_000) == 1 and out["seq"][0] == 42
        r.close()
    w.close(); w.unlink()


def test_writer_lifecycle_close_heartbeat_takeover(shm_prefix):
    name = shm_prefix + "r"
    w = RingWriter.create(name, MARKET_DTYPE, 8)
    r = RingReader(name, MARKET_DTYPE, start="oldest")
    assert r.writer_alive() and r.writer_pid == os.getpid()
    w.heartbeat()
    assert r.heartbeat_age_ns() < 5_000_000_000
    time.sleep(0.02)
    assert not r.writer_alive(max_heartbeat_age_ns=1_000_000)   # hung writer detected
    w.publish(recs([1])[0])
    with pytest.raises(RingError, match="live writer"):
        RingWriter.takeover(name, MARKET_DTYPE)
    w.close()
    assert r.writer_closed and not r.writer_alive()
    w2 = RingWriter.takeover(name, MARKET_DTYPE)                # a restarted writer continues
    w2.publish(recs([2])[0])
    out = np.zeros(4, MARKET_DTYPE)
    assert list(out["seq"][: r.read_many(out)]) == [1, 2]
    assert w2.stats()["takeovers"] == 1 and r.writer_alive()
    r.close(); w2.close(); w2.unlink()


def test_closed_handles_raise(shm_prefix):
    w = RingWriter.create(shm_prefix + "r", MARKET_DTYPE, 8)
    r = RingReader(shm_prefix + "r", MARKET_DTYPE)
    r.close()
    with pytest.raises(RingError, match="closed"):
        r.poll(np.zeros(1, MARKET_DTYPE))
    w.close()
    with pytest.raises(RingError, match="closed"):
        w.publish(recs([1])[0])
    w.unlink()


def test_reader_slots_are_bounded_and_reused(shm_prefix):
    w = RingWriter.create(shm_prefix + "r", MARKET_DTYPE, 8)
    readers = [RingReader(shm_prefix + "r", MARKET_DTYPE) for _ in range(32)]
    with pytest.raises(RingFull):
        RingReader(shm_prefix + "r", MARKET_DTYPE)
    readers.pop().close()
    readers.append(RingReader(shm_prefix + "r", MARKET_DTYPE))
    for r in readers:
        r.close()
    assert w.stats()["readers"] == []
    w.close(); w.unlink()


def test_min_cursor_tracks_slowest_reader(shm_prefix):
    w = RingWriter.create(shm_prefix + "r", MARKET_DTYPE, 64)
    assert w.min_cursor() == 0
    r1 = RingReader(shm_prefix + "r", MARKET_DTYPE)
    r2 = RingReader(shm_prefix + "r", MARKET_DTYPE)
    w.publish_many(recs(range(10)))
    r1.read_many(np.zeros(16, MARKET_DTYPE))
    assert w.min_cursor() == 0
    r2.read_many(np.zeros(4, MARKET_DTYPE))
    assert w.min_cursor() == 4
    r1.close(); r2.close(); w.close(); w.unlink()


def test_cleanup_stale_keeps_live_segments(shm_prefix):
    w = RingWriter.create(shm_prefix + "live", MARKET_DTYPE, 8)
    # a segment that is not ours at all (garbage header) is stale
    with open("/dev/shm/" + (shm_prefix + "junk").lstrip("/"), "wb") as f:
        f.write(b"\0" * 4096)
    removed = cleanup_stale(shm_prefix)
    assert removed == [shm_prefix + "junk"]
    assert find_segments(shm_prefix) == [shm_prefix + "live"]
    w.close(); w.unlink()
