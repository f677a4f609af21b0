"""The 3proc order links (engine.ipc.orderflow): intents brain -> engine in order, a dead
brain's intents dropped after its successor's client-id block is set, execution reports
and positions engine -> brain, overruns counted, segments gone after close."""

import numpy as np
import pytest

from cext.shm_core import find_segments
from engine import schema
from engine.ipc.orderflow import CID_LIFE_GAP, INTENT_CAPACITY, BrainLink, EngineLink

BASE = 1 << 40


def intent(cid, action=schema.ACT_NEW, px=100):
    it = np.zeros(1, schema.ORDER_DTYPE)
    it["action"], it["client_id"], it["px"], it["qty"], it["inst"] = action, cid, px, 1, 0
    return it


def test_intents_in_order_and_a_dead_brains_dropped(shm_run):
    eng = EngineLink(shm_run, 2)
    first = eng.next_life(BASE)
    assert first == BASE                      # the run's own block, nothing seen yet
    brain = BrainLink(shm_run)
    got = []
    brain.publish([intent(first + k) for k in range(5)])
    assert eng.poll_intents(got.append) == 5
    assert [int(g["client_id"][0]) for g in got] == [first + k for k in range(5)]
    # the brain published two more and died before the engine read them
    brain.publish([intent(first + 5), intent(first + 6)])
    brain.close()
    second = eng.next_life(BASE)
    assert second == first + 4 + 1 + CID_LIFE_GAP    # above every id the engine saw, with a gap
    successor = BrainLink(shm_run)                # takes the intent ring over: the engine's cursor stays valid
    assert successor.took_over
    successor.publish([intent(second), intent(second + 1, action=schema.ACT_CANCEL)])
    got.clear()
    assert eng.poll_intents(got.append) == 4  # read, but the dead brain's two are dropped
    assert [int(g["client_id"][0]) for g in got] == [second, second + 1]
    assert eng.counts["stale_intents"] == 2 and eng.counts["intents"] == 7
    successor.close()
    eng.close()


def test_execs_and_positions_reach_the_brain(shm_run):
    eng = EngineLink(shm_run, 3)
    brain = BrainLink(shm_run)
    eng.set_position(2, -7)
    assert brain.position(2) == -7 and brain.position(0) == 0
    e = np.zeros(1, schema.EXEC_DTYPE)
    e["kind"], e["client_id"], e["inst"], e["qty"] = schema.EX_FILL, BASE + 3, 2, 4
    eng.send_exec(e[0])
    seen = []
    assert brain.poll_execs(lambda r: seen.append((int(r["kind"]), int(r["client_id"]), int(r["qty"])))) == 1
    assert seen == [(schema.EX_FILL, BASE + 3, 4)]
    brain.close()
    eng.close()
    assert find_segments(f"/cs.{shm_run}.") == [f"/cs.{shm_run}.intent"]   # the brain's ring: its writer cleans it


def test_a_lapped_engine_counts_what_it_lost(shm_run):
    eng = EngineLink(shm_run, 1)
    brain = BrainLink(shm_run)
    assert eng.poll_intents(lambda it: None) == 0          # attached, nothing yet
    brain.publish([intent(BASE + k) for k in range(INTENT_CAPACITY + 10)])
    got = []
    while True:
        n = eng.poll_intents(got.append)
        if not n and eng.counts["overruns"]:
            n = eng.poll_intents(got.append)
        if not n:
            break
    assert eng.counts["overruns"] == 1
    assert eng.counts["lost"] + len(got) == INTENT_CAPACITY + 10
    ids = [int(g["client_id"][0]) for g in got]
    assert ids == sorted(ids) and ids[-1] == BASE + INTENT_CAPACITY + 9
    brain.close()
    eng.close()


def test_a_half_made_segment_is_not_ready_and_is_made_again(shm_run):
    """Created, not yet sized (empty) or sized but its header not written (bad magic): a
    reader waits (segment_not_ready), a restarted writer makes it again; a real layout
    mismatch is an error, never "not ready"."""
    from cext.region import Region
    from cext.ring import RingReader
    from engine.ipc import region_of, ring_writer, segment_not_ready
    name = f"/cs.{shm_run}.half"
    path = "/dev/shm" + name
    open(path, "wb").close()                                   # shm_open'd, not yet sized
    with pytest.raises(ValueError) as e:
        RingReader(name, schema.ORDER_DTYPE)
    assert segment_not_ready(e.value)
    with open(path, "wb") as f:                                # sized, header not written yet
        f.write(b"\0" * 8192)
    for attach in (lambda: RingReader(name, schema.ORDER_DTYPE), lambda: Region.attach(name, schema.POSITION_DTYPE)):
        with pytest.raises(Exception) as e:
            attach()
        assert segment_not_ready(e.value), e.value
    w, took_over = ring_writer(name, schema.ORDER_DTYPE, 64)  # its creator died there: made again
    assert not took_over
    r = RingReader(name, schema.ORDER_DTYPE, start="oldest")
    w.publish(np.zeros(1, schema.ORDER_DTYPE))
    assert r.read_many(np.zeros(4, schema.ORDER_DTYPE)) == 1
    with pytest.raises(Exception) as e:                        # another layout: an error, not "not ready"
        RingReader(name, schema.EXEC_DTYPE)
    assert not segment_not_ready(e.value)
    r.close()
    w.close()
    w.unlink()
    with open(path, "wb") as f:
        f.write(b"\0" * 8192)
    reg, existed = region_of(name, schema.POSITION_DTYPE, 2)
    assert not existed and reg.nslots == 2
    reg.close()
    again, existed = region_of(name, schema.POSITION_DTYPE, 2)
    assert existed
    again.close()
    again.unlink()
