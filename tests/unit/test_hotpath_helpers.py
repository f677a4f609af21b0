"""The helpers the engine's per-message path uses instead of numpy field access and
prometheus_client calls: each gives the same answer as the slow way it replaces."""
import gc

import numpy as np
import pytest

from engine import schema


def test_stage_histogram_exposes_what_prometheus_histogram_would():
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from engine.telemetry import STAGE_BUCKETS, Metrics
    m = Metrics()
    ref_reg = CollectorRegistry()
    ref = Histogram("cryptoscalp_stage_seconds", "latency per stage", ["stage"], registry=ref_reg, buckets=STAGE_BUCKETS)
    rng = np.random.default_rng(3)
    for stage in ("features", "risk", "tick_to_trade"):
        ns = np.concatenate([rng.integers(1, 2_000_000_000, 3000), [5_000, 10_000, 1_000_000_000]])  # bounds included
        for v in ns:
            m.stage_ns[stage].append(int(v))
            ref.labels(stage).observe(int(v) / 1e9)
        if stage == "risk":
            m.flush()                                   # flushed in two parts: the counts add up
    m.stage.labels("features").observe(2e-5)            # the prometheus-style entry point
    ref.labels("features").observe(2e-5)

    def lines(reg):
        return sorted(x for x in generate_latest(reg).decode().splitlines()
                      if x.startswith("cryptoscalp_stage_seconds") and "_created" not in x)
    got, want = lines(m.registry), lines(ref_reg)
    assert [x.rsplit(" ", 1)[0] for x in got] == [x.rsplit(" ", 1)[0] for x in want]
    for g, w in zip(got, want):
        assert float(g.rsplit(" ", 1)[1]) == pytest.approx(float(w.rsplit(" ", 1)[1]), rel=1e-9)
    assert not any(m.stage.pending.values())            # a scrape flushes
    m.messages_pending = 7
    m.flush()
    assert m.messages._value.get() == 7 and m.messages_pending == 0


def test_gc_pauses_freeze_collect_by_the_clock_and_give_back():
    from engine.pauses import GcPauses
    p = GcPauses(full_every_s=0.0)
    was = gc.isenabled()
    try:
        p.start()
        assert not gc.isenabled() and gc.get_freeze_count() > 0 and p.frozen == gc.get_freeze_count()

        class Node:
            pass
        a, b = Node(), Node()
        a.other, b.other = b, a                          # a cycle: only the collector frees it
        del a, b
        p.tick()                                         # full_every_s=0: a full collection
        st = p.stats()
        assert st["collections"] == 1 and st["collected"] >= 2 and st["max_ms"]["full"] >= 0
    finally:
        p.stop()
        if not was:
            gc.disable()
    assert gc.isenabled() == was and gc.get_freeze_count() == 0


def test_top_fields_and_stamps_read_and_write_the_records():
    from cext.book import top_fields
    from cext.records import stamp_orders
    top = np.zeros(1, schema.BOOK_TOP_DTYPE)
    top["bid_px"][0, 0], top["ask_px"][0, 0], top["flags"], top["mono_pub"] = 600_000, 600_003, 5, 77
    assert top_fields(top) == (600_000, 600_003, 5, 77)
    with pytest.raises(ValueError, match="BOOK_TOP"):
        top_fields(np.zeros(2, schema.BOOK_TOP_DTYPE))
    its = [np.zeros(1, schema.ORDER_DTYPE) for _ in range(3)]
    its[1]["px"] = 9
    stamp_orders(its, 1, 2, 3, 4, 5)
    for a in its:
        assert [int(a[f][0]) for f in ("mono_origin", "t_book", "t_features", "t_infer", "t_strategy")] == [1, 2, 3, 4, 5]
    assert int(its[1]["px"][0]) == 9 and int(its[1]["t_risk"][0]) == 0       # nothing else touched
    assert int(its[1]["t_parse"][0]) == 0
    stamp_orders(its, 1, 2, 3, 4, 5, t_parse=6)
    assert [int(a["t_parse"][0]) for a in its] == [6, 6, 6]
    with pytest.raises(ValueError, match="ORDER_DTYPE"):
        stamp_orders([np.zeros(1, schema.EXEC_DTYPE)], 1, 2, 3, 4, 5)


def test_order_head_and_stamp_send_read_and_write_in_place():
    import time
    from cext.records import order_head, stamp_send
    a = np.zeros(1, schema.ORDER_DTYPE)
    a["action"], a["inst"], a["client_id"], a["ref_client_id"] = schema.ACT_CANCEL, 3, (1 << 40) + 5, 9
    assert order_head(a) == (schema.ACT_CANCEL, 3, (1 << 40) + 5, 9)
    before = time.monotonic_ns()
    t = stamp_send(a)
    assert before <= t <= time.monotonic_ns() and int(a["t_send"][0]) == t and int(a["t_risk"][0]) == 0
    for bad in (np.zeros(2, schema.ORDER_DTYPE), np.zeros(1, schema.EXEC_DTYPE)):
        with pytest.raises(ValueError):
            order_head(bad)
        with pytest.raises(ValueError):
            stamp_send(bad)
    ro = np.zeros(1, schema.ORDER_DTYPE)
    ro.flags.writeable = False
    with pytest.raises((BufferError, ValueError)):
        stamp_send(ro)


def test_copy_records_is_a_copy():
    a = np.zeros(2, schema.ORDER_DTYPE)
    a["px"], a["client_id"] = [5, 6], [7, 8]
    c = schema.copy_records(a)
    assert c.dtype == a.dtype and c.tobytes() == a.tobytes() and c.flags.writeable
    c["px"] = 1
    assert list(a["px"]) == [5, 6]


def test_check_records_counts_what_check_array_reports():
    from cext.validate import Validator
    recs = np.zeros(5, schema.MARKET_DTYPE)
    recs["kind"], recs["px"], recs["qty"] = schema.MK_TRADE, 100, 1
    recs["px"][2] = -1                                    # non-positive price: not OK
    recs["inst"][4] = 9                                   # unknown instrument: not OK
    v1, v2 = Validator(2, max_future_ns=1 << 62), Validator(2, max_future_ns=1 << 62)
    want = v1.check_array(recs)
    assert v2.check_records(recs) == int((want != 0).sum()) == 2
    assert list(v2.results[:5]) == list(want) and v1.stats() == v2.stats()
    with pytest.raises(ValueError, match="MARKET_DTYPE"):
        v2.check_records(np.zeros(3, schema.ORDER_DTYPE))


def test_position_book_takes_an_order_array_or_record_alike():
    from cext.risk import RiskState
    from engine.risk.positions import PositionBook
    books = []
    for as_array in (True, False):
        st = RiskState(1)
        b = PositionBook(st, balance=1e5)
        b.add_instrument(0, 0.1, 0.001)
        o = np.zeros(1, schema.ORDER_DTYPE)
        o["action"], o["side"], o["px"], o["qty"], o["client_id"] = schema.ACT_NEW, schema.SIDE_BUY, 600_000, 3, 11
        b.on_order_sent(o if as_array else o[0])
        books.append({cid: (x.inst, x.side, x.px, x.leaves) for cid, x in b.orders.items()})
    assert books[0] == books[1] == {11: (0, schema.SIDE_BUY, 600_000, 3)}
