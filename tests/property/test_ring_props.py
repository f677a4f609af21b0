"""Hypothesis invariants of the ring: FIFO and no loss within capacity, overrun detected
past it (never a silent skip), recovery resumes on a contiguous suffix."""
import itertools
import uuid

import numpy as np
from hypothesis import given, settings, strategies as st

from cext.ring import RingOverrun, RingReader, RingWriter
from cext.shm_core import find_segments
from engine.schema import MARKET_DTYPE

ops = st.lists(
    st.one_of(
        st.tuples(st.just("pub"), st.integers(1, 40)),
        st.tuples(st.just("read"), st.integers(1, 40)),
        st.tuples(st.just("poll"), st.just(1)),
    ),
    min_size=1, max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(cap_log2=st.integers(2, 6), ops=ops)
def test_ring_matches_fifo_model(cap_log2, ops):
    cap = 1 << cap_log2
    name = f"/cs.prop.{uuid.uuid4().hex[:12]}"
    w = RingWriter.create(name, MARKET_DTYPE, cap)
    r = RingReader(name, MARKET_DTYPE)
    try:
        published = 0     # the model: records 0..published-1 exist
        cursor = 0        # the model's reader cursor
        lost = 0
        for op, k in ops:
            if op == "pub":
                a = np.zeros(k, MARKET_DTYPE)
                a["seq"] = np.arange(published, published + k)
                a["qty"] = a["seq"] * 3 + 1
                if k == 1:
                    w.publish(a[0])
                else:
                    w.publish_many(a)
                published += k
                continue
            out = np.zeros(k, MARKET_DTYPE)
            overrun_expected = published - cursor > cap
            try:
                n = r.poll(out[:1]) if op == "poll" else r.read_many(out)
            except RingOverrun as e:
                assert overrun_expected, "overrun reported within capacity"
                assert e.missed == published - cursor - cap
                skipped = r.recover()
                assert skipped >= e.missed
                cursor += skipped
                lost += skipped
                assert r.cursor == cursor
                continue
            assert not overrun_expected, "a lapped reader read without an overrun"
            want = min(k, published - cursor)
            assert n == want
            assert list(out["seq"][:n]) == list(range(cursor, cursor + n))
            assert list(out["qty"][:n]) == [s * 3 + 1 for s in range(cursor, cursor + n)]
            cursor += n
        assert r.lost == lost
        assert r.lag == published - cursor
    finally:
        r.close()
        w.close()
        w.unlink()
    assert find_segments(name) == []
