"""Matching core: queue position, trades through, price-time priority, order types;
invariants under random market and order streams."""
import numpy as np
from hypothesis import given, settings, strategies as st

from cext.matching import (SUBMIT_EXPIRED, SUBMIT_FILLED, SUBMIT_POST_ONLY_REJECTED, SUBMIT_RESTING,
                           MatchingEngine)
from engine import schema

BUY, SELL = schema.SIDE_BUY, schema.SIDE_SELL


def rec(kind, side=0, px=0, qty=0, aux=0, aux2=0, flags=0, ts=1):
    a = np.zeros(1, schema.MARKET_DTYPE)
    a["kind"], a["side"], a["px"], a["qty"], a["aux"], a["aux2"], a["flags"], a["exch_ts"] = \
        kind, side, px, qty, aux, aux2, flags, ts
    return a


def book(m, bids, asks):
    recs = [rec(schema.MK_SNAPSHOT, BUY, p, q) for p, q in bids] + [rec(schema.MK_SNAPSHOT, SELL, p, q) for p, q in asks]
    recs[0]["flags"] = schema.F_CLEAR
    m.on_market(np.concatenate(recs))


def fills(m):
    return [(int(e["exch_order_id"]), int(e["kind"]), int(e["px"]), int(e["qty"]), int(e["liquidity"]))
            for e in m.drain()]


def test_queue_position_and_trades():
    m = MatchingEngine(1)
    book(m, [(100, 10)], [(101, 10)])
    assert m.submit(1, 1, 0, BUY, schema.OT_LIMIT, 100, 5) == SUBMIT_RESTING
    assert m.open_orders()[0][9] == 10                   # behind the 10 visible lots
    m.on_market(rec(schema.MK_TRADE, SELL, 100, 7))      # 7 traded at our price: 3 ahead left
    assert fills(m) == [] and m.open_orders()[0][9] == 3
    m.on_market(rec(schema.MK_TRADE, SELL, 100, 5))      # 3 ahead, then 2 for us
    assert fills(m) == [(1, schema.EX_PARTIAL, 100, 2, schema.LIQ_MAKER)]
    m.on_market(rec(schema.MK_TRADE, SELL, 99, 1))       # traded through: we are done
    assert fills(m) == [(1, schema.EX_FILL, 100, 3, schema.LIQ_MAKER)]
    assert m.open_orders() == []


def test_cancels_ahead_and_price_time_priority():
    m = MatchingEngine(1, cancel_ahead_frac=0.5)
    book(m, [(100, 10)], [(101, 10)])
    m.submit(1, 1, 0, BUY, schema.OT_LIMIT, 100, 4)
    m.submit(2, 2, 0, BUY, schema.OT_LIMIT, 100, 4)      # behind 10 visible + our 4
    assert [o[9] for o in m.open_orders()] == [10, 14]
    m.on_market(rec(schema.MK_DEPTH, BUY, 100, 6))       # 4 cancelled: half assumed ahead (10 -> 8, 14 -> 12)
    # but never more than the public level (6) plus our own earlier orders at the price
    assert [o[9] for o in m.open_orders()] == [6, 10]
    m.on_market(rec(schema.MK_TRADE, SELL, 100, 9))      # 6 ahead, then 3 for order 1; order 2 still behind
    assert fills(m) == [(1, schema.EX_PARTIAL, 100, 3, 1)]
    assert [o[9] for o in m.open_orders()] == [0, 1]


def test_opposite_best_moving_through_fills():
    m = MatchingEngine(1)
    book(m, [(100, 10)], [(102, 10)])
    m.submit(1, 1, 0, SELL, schema.OT_POST_ONLY, 101, 5)
    m.on_market(rec(schema.MK_BBO, px=102, qty=3, aux=103, aux2=4))   # bid rose above our ask
    assert fills(m) == [(1, schema.EX_FILL, 101, 5, schema.LIQ_MAKER)]


def test_taking_order_types():
    m = MatchingEngine(1)
    book(m, [(100, 10), (99, 10)], [(101, 3), (102, 4), (105, 100)])
    assert m.submit(1, 1, 0, BUY, schema.OT_POST_ONLY, 101, 1) == SUBMIT_POST_ONLY_REJECTED
    assert m.submit(2, 2, 0, BUY, schema.OT_IOC, 102, 10) == SUBMIT_EXPIRED
    assert fills(m) == [(2, schema.EX_PARTIAL, 101, 3, 2), (2, schema.EX_PARTIAL, 102, 4, 2), (2, schema.EX_EXPIRED, 102, 0, 0)]
    assert m.submit(3, 3, 0, BUY, schema.OT_FOK, 102, 10) == SUBMIT_EXPIRED
    assert fills(m) == [(3, schema.EX_EXPIRED, 102, 0, 0)]                    # FOK: all or nothing
    assert m.submit(4, 4, 0, SELL, schema.OT_MARKET, 0, 15) == SUBMIT_FILLED
    assert fills(m) == [(4, schema.EX_PARTIAL, 100, 10, 2), (4, schema.EX_FILL, 99, 5, 2)]
    assert m.submit(5, 5, 0, BUY, schema.OT_LIMIT, 102, 8) == SUBMIT_RESTING      # takes 7, rests 1
    assert [x[3] for x in fills(m)] == [3, 4] and m.open_orders()[0][7] == 1
    assert m.cancel(5) and not m.cancel(5)
    assert fills(m) == [(5, schema.EX_CANCELED, 102, 0, 0)]


@settings(max_examples=150, deadline=None)
@given(ops=st.lists(st.tuples(st.sampled_from(["trade", "depth", "order", "cancel"]),
                              st.sampled_from([BUY, SELL]), st.integers(95, 106), st.integers(0, 20),
                              st.sampled_from([schema.OT_LIMIT, schema.OT_POST_ONLY, schema.OT_IOC, schema.OT_FOK,
                                               schema.OT_MARKET])), max_size=120))
def test_invariants(ops):
    m = MatchingEngine(1)
    book(m, [(100, 10), (99, 10)], [(101, 10), (102, 10)])
    qty = {}
    filled = {}
    next_id = 1
    for op, side, px, q, ot in ops:
        if op == "trade" and q:
            m.on_market(rec(schema.MK_TRADE, side, px, q))
        elif op == "depth":
            m.on_market(rec(schema.MK_DEPTH, side, px, q))
        elif op == "order" and q:
            m.submit(next_id, next_id, 0, side, ot, px, q)
            qty[next_id] = q
            next_id += 1
        elif op == "cancel" and qty:
            m.cancel(list(qty)[px % len(qty)])
        for e in m.drain():
            oid = int(e["exch_order_id"])
            assert e["qty"] >= 0 and e["leaves_qty"] >= 0
            if e["kind"] in (schema.EX_PARTIAL, schema.EX_FILL):
                filled[oid] = filled.get(oid, 0) + int(e["qty"])
                assert e["cum_qty"] == filled[oid] and e["cum_qty"] + e["leaves_qty"] == qty[oid]
                assert filled[oid] <= qty[oid]
    for o in m.open_orders():
        assert o[7] > 0 and o[7] + o[8] == o[6] and o[9] >= 0
