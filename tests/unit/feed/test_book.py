"""OrderBook on int64 ticks: levels, best prices, ROI re-centring, out-of-ROI levels,
top-N, VWAP, imbalance; against a dict model under random operations."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from cext.book import OrderBook
from engine import schema

BID, ASK = 1, 2


def recs(levels, kind=schema.MK_DEPTH, seq=1):
    a = np.zeros(len(levels), schema.MARKET_DTYPE)
    for i, (side, px, qty) in enumerate(levels):
        a[i]["kind"], a[i]["side"], a[i]["px"], a[i]["qty"], a[i]["seq"] = kind, side, px, qty, seq
    if len(levels):
        a[-1]["flags"] = schema.F_LAST_IN_MESSAGE
    return a


def test_levels_best_and_delete():
    b = OrderBook(0, 1024)
    b.apply(recs([(BID, 1000, 5), (BID, 998, 7), (ASK, 1002, 3), (ASK, 1005, 1)]))
    assert b.best_bid == (1000, 5) and b.best_ask == (1002, 3)
    b.apply(recs([(BID, 1000, 0)]))
    assert b.best_bid == (998, 7)
    b.apply(recs([(ASK, 1001, 9)]))
    assert b.best_ask == (1001, 9)
    b.apply(recs([(ASK, 1001, 0), (ASK, 1002, 0), (ASK, 1005, 0)]))
    assert b.best_ask is None and not b.is_crossed()
    b.apply(recs([(ASK, 998, 1)]))
    assert b.is_crossed()


def test_far_levels_are_kept_outside_the_roi():
    b = OrderBook(0, 256)
    b.apply(recs([(BID, 100_000, 1), (BID, 10, 4), (ASK, 100_001, 2), (ASK, 9_000_000, 8)]))
    assert b.stats()["outside_roi"] == {"bids": 1, "asks": 1}
    b.apply(recs([(BID, 100_000, 0)]))
    assert b.best_bid == (10, 4)           # found below the ROI
    b.apply(recs([(ASK, 100_001, 0)]))
    assert b.best_ask == (9_000_000, 8)    # found above the ROI
    px, qty = b.depth(ASK)
    assert list(px) == [9_000_000]


def test_roi_recentres_as_price_moves_and_keeps_every_level():
    b = OrderBook(0, 256)
    model = {}
    for step in range(0, 2000, 7):        # the market walks up by 2000 ticks
        lv = [(BID, 1000 + step, 1 + step % 5), (ASK, 1002 + step, 2)]
        b.apply(recs(lv))
        for s, p, q in lv:
            model[(s, p)] = q
    assert b.stats()["recenters"] > 5
    for side in (BID, ASK):
        px, qty = b.depth(side)
        want = sorted(((p, q) for (s, p), q in model.items() if s == side and q), reverse=side == BID)
        assert list(zip(px, qty)) == want


def test_top_vwap_imbalance_qty_within():
    b = OrderBook(0, 1024)
    b.apply(recs([(BID, 100, 10), (BID, 99, 20), (BID, 97, 30), (ASK, 101, 5), (ASK, 103, 15)]))
    px, qty = b.levels(BID, 2)
    assert list(px) == [100, 99] and list(qty) == [10, 20]
    px, qty = b.levels(ASK, 5)
    assert list(px) == [101, 103]
    avg, filled = b.vwap(ASK, 10)           # buy 10: 5 @ 101 + 5 @ 103
    assert filled == 10 and avg == pytest.approx(102.0)
    avg, filled = b.vwap(ASK, 100)          # more than the book holds
    assert filled == 20 and avg == pytest.approx((5 * 101 + 15 * 103) / 20)
    assert b.imbalance(1) == pytest.approx((10 - 5) / 15)
    assert b.imbalance(10) == pytest.approx((60 - 20) / 80)
    assert b.qty_within(BID, 1) == 30 and b.qty_within(BID, 3) == 60
    assert OrderBook(0, 1024).imbalance(5) == 0.0
    with pytest.raises(ValueError):
        b.vwap(ASK, 0)


def test_top_record_layout():
    b = OrderBook(7, 1024)
    b.apply(recs([(BID, 100, 10), (ASK, 101, 5)], seq=42))
    t = b.top_record(valid=False)[0]
    assert t["inst"] == 7 and t["update_id"] == 42 and t["flags"] == schema.F_BOOK_INVALID
    assert t["bid_px"][0] == 100 and t["ask_qty"][0] == 5 and t["bid_px"][1] == 0


def test_snapshot_record_clears():
    b = OrderBook(0, 1024)
    b.apply(recs([(BID, 100, 10)]))
    snap = recs([(BID, 90, 1), (ASK, 95, 2)], kind=schema.MK_SNAPSHOT)
    snap[0]["flags"] |= schema.F_CLEAR
    b.apply(snap)
    assert b.best_bid == (90, 1) and b.qty(BID, 100) == 0


ops = st.lists(st.tuples(st.sampled_from([BID, ASK]),
                         st.one_of(st.integers(900, 1100), st.integers(-50_000, 50_000)),
                         st.integers(0, 3)), min_size=1, max_size=300)


@settings(max_examples=200, deadline=None)
@given(ops=ops, roi_log2=st.integers(6, 10))
def test_book_matches_a_dict_model(ops, roi_log2):
    b = OrderBook(0, 1 << roi_log2)
    model = {BID: {}, ASK: {}}
    for side, px, qty in ops:
        if px <= 0:
            continue
        b.apply(recs([(side, px, qty)]))
        if qty:
            model[side][px] = qty
        else:
            model[side].pop(px, None)
        bb = max(model[BID]) if model[BID] else None
        ba = min(model[ASK]) if model[ASK] else None
        assert (b.best_bid[0] if b.best_bid else None) == bb
        assert (b.best_ask[0] if b.best_ask else None) == ba
    for side in (BID, ASK):
        px, qty = b.depth(side)
        assert list(zip(px, qty)) == sorted(model[side].items(), reverse=side == BID)
        top_px, _ = b.levels(side, 5)
        assert list(top_px) == [p for p, _ in sorted(model[side].items(), reverse=side == BID)][:5]
