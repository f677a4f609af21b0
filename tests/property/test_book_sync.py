"""A snapshot plus the replayed diffs equals a later snapshot (Binance futures procedure,
including diffs that arrive before the snapshot, stale ones, and a gap)."""
import random

import numpy as np
from hypothesis import given, settings, strategies as st

from cext.book import BinanceBookSync, OrderBook
from engine import schema

BID, ASK = 1, 2


def level_recs(kind, levels, u, U=None, pu=-1):
    a = np.zeros(max(1, len(levels)), schema.MARKET_DTYPE)
    a["kind"] = kind
    a["seq"] = u
    a["aux"] = pu
    a["aux2"] = u if U is None else U
    for i, (side, px, qty) in enumerate(levels):
        a[i]["side"], a[i]["px"], a[i]["qty"] = side, px, qty
    a[-1]["flags"] |= schema.F_LAST_IN_MESSAGE
    if kind == schema.MK_SNAPSHOT:
        a[0]["flags"] |= schema.F_CLEAR
    return a


def random_book(rng, mid):
    return {BID: {mid - k: rng.randint(1, 50) for k in range(1, 40) if rng.random() < 0.7},
            ASK: {mid + k: rng.randint(1, 50) for k in range(1, 40) if rng.random() < 0.7}}


def snapshot(book, u):
    lv = [(BID, p, q) for p, q in sorted(book[BID].items(), reverse=True)] + \
         [(ASK, p, q) for p, q in sorted(book[ASK].items())]
    return level_recs(schema.MK_SNAPSHOT, lv, u)


def random_diffs(rng, book, n, u0, mid):
    """n diff messages continuing from final id u0; each has U..u and pu = previous u.
    Updates keep bids below asks so the book never crosses."""
    diffs, u = [], u0
    for _ in range(n):
        U = u + 1
        u = U + rng.randint(0, 5)
        lv = []
        for _ in range(rng.randint(0, 6)):
            side = rng.choice([BID, ASK])
            if side == BID:
                px = mid - rng.randint(1, 60)
            else:
                px = mid + rng.randint(1, 60)
            qty = 0 if rng.random() < 0.3 else rng.randint(1, 50)
            lv.append((side, px, qty))
            if qty:
                book[side][px] = qty
            else:
                book[side].pop(px, None)
        diffs.append(level_recs(schema.MK_DEPTH, lv, u, U, pu=U - 1 if not diffs else diffs[-1][0]["seq"]))
        if len(diffs) == 1:
            diffs[0]["aux"] = u0
    return diffs


def feed(sync, msg):
    st = sync.apply(msg)
    if msg[0]["kind"] == schema.MK_SNAPSHOT:
        for m in sync.take_pending():
            st = sync.apply(m)
    return st


def book_of(b):
    return {side: dict(zip(*[list(x) for x in b.depth(side)])) for side in (BID, ASK)}


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 10**9), n_before=st.integers(0, 20), n_after=st.integers(1, 60),
       early=st.integers(0, 10), roi_log2=st.integers(6, 12))
def test_snapshot_plus_diffs_equals_later_snapshot(seed, n_before, n_after, early, roi_log2):
    rng = random.Random(seed)
    mid = 100_000
    truth = random_book(rng, mid)
    diffs_before = random_diffs(rng, truth, n_before, 1000, mid)      # happen before the snapshot
    L = diffs_before[-1][0]["seq"] if diffs_before else 1000
    snap = snapshot(truth, L)
    diffs_after = random_diffs(rng, truth, n_after, L, mid)
    later = snapshot(truth, diffs_after[-1][0]["seq"])

    sync = BinanceBookSync(OrderBook(0, 1 << roi_log2))
    # the stream starts before the snapshot is fetched: some diffs arrive first
    k = min(early, len(diffs_after))
    stream = diffs_before[-3:] + diffs_after[:k]
    for m in stream:
        assert sync.apply(m) == 2                        # buffered
    feed(sync, snap)
    for m in diffs_after[k:]:
        assert sync.apply(m) == 1
    assert sync.valid and sync.stats()["gaps"] == 0

    ref = BinanceBookSync(OrderBook(0, 1 << roi_log2))
    feed(ref, later)
    assert book_of(sync.book) == book_of(ref.book) == {s: {p: q for p, q in truth[s].items()} for s in (BID, ASK)}


def test_gap_invalidates_and_a_new_snapshot_recovers():
    rng = random.Random(7)
    mid = 100_000
    truth = random_book(rng, mid)
    sync = BinanceBookSync(OrderBook(0, 1 << 10))
    feed(sync, snapshot(truth, 1000))
    diffs = random_diffs(rng, truth, 10, 1000, mid)
    for m in diffs[:4]:
        assert sync.apply(m) == 1
    assert sync.apply(diffs[6]) == -1                      # diffs 4 and 5 were lost
    assert not sync.valid and sync.needs_snapshot and sync.stats()["gaps"] == 1
    assert sync.apply(diffs[7]) == 2                       # buffered while waiting
    snap = snapshot(truth, diffs[-1][0]["seq"])            # the snapshot fetched after the gap
    later = random_diffs(rng, truth, 3, diffs[-1][0]["seq"], mid)
    assert feed(sync, snap) == 3                           # buffered diffs 6, 7 are older: stale
    assert not sync.valid                                  # synced only once an update bridges it
    for m in later:
        assert sync.apply(m) == 1
    assert sync.valid
    assert book_of(sync.book) == {s: dict(truth[s]) for s in (BID, ASK)}


def test_snapshot_newer_than_every_buffered_diff_waits_for_the_bridge():
    rng = random.Random(3)
    mid = 100_000
    truth = random_book(rng, mid)
    diffs = random_diffs(rng, truth, 5, 1000, mid)
    sync = BinanceBookSync(OrderBook(0, 1 << 10))
    for m in diffs[:2]:
        sync.apply(m)
    assert feed(sync, snapshot(truth, diffs[3][0]["seq"])) == 3   # both buffered diffs are stale
    # the next diff does not span lastUpdateId: a gap, not a silent start
    assert sync.apply(diffs[4]) == 1 or sync.stats()["gaps"] == 1
