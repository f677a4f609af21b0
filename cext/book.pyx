# distutils: language = c++
# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""L2 order book on int64 ticks and the Binance diff-depth synchronisation.

    book = OrderBook(inst=0, roi=1 << 16)
    sync = BinanceBookSync(book)
    n = parser.parse(frame, mono, recs)            # cext.binance
    status = sync.apply(recs[:n])                  # SYNC_* codes
    if sync.needs_snapshot: ...fetch the REST snapshot, parse it, sync.apply(snapshot recs)

Complexity: a level update inside the ROI is O(1); deleting the best level scans to the
next non-empty level (a few ticks in a liquid book). Re-centring is O(roi) and happens
only when the mid leaves the middle half of the ROI.
"""
import numpy as np

from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE, PyBUF_WRITABLE, PyBUF_ANY_CONTIGUOUS
from cython.operator cimport dereference as deref, preincrement as inc, predecrement as dec
from libc.stdint cimport int64_t, uint64_t, uint32_t, INT64_MIN, INT64_MAX
from libc.stdlib cimport calloc, free
from libc.string cimport memset, memcpy
from libcpp.map cimport map as cmap
from libcpp.utility cimport pair

from cext.records cimport market_ptr
from cext.schema cimport MarketRecord, BookTop
from cext.region cimport Region
from cext.shm_core cimport cs_mono_ns

cdef int MK_DEPTH = 1
cdef int MK_SNAPSHOT = 2
cdef int F_BOOK_INVALID = 4
cdef int BOOK_LEVELS = 10

SCHEMA_CONSTANTS = {"MK_DEPTH": MK_DEPTH, "MK_SNAPSHOT": MK_SNAPSHOT, "F_BOOK_INVALID": F_BOOK_INVALID,
                    "BOOK_LEVELS": BOOK_LEVELS, "SIDE_BUY": BOOK_BID, "SIDE_SELL": BOOK_ASK, "F_CLEAR": 2}

STATE_NAMES = ("wait_snapshot", "wait_bridge", "synced")

STATUS = {SYNC_APPLIED: "applied", SYNC_BUFFERED: "buffered", SYNC_STALE: "stale",
          SYNC_WAITING: "waiting", SYNC_GAP: "gap", SYNC_CROSSED: "crossed"}


cdef class OrderBook:

    def __cinit__(self, uint32_t inst=0, int64_t roi=1 << 16):
        if roi < 64 or roi > (1 << 24):
            raise ValueError(f"roi must be 64..2**24 ticks, got {roi}")
        self.roi = roi
        self.bid = <int64_t *>calloc(roi, sizeof(int64_t))
        self.ask = <int64_t *>calloc(roi, sizeof(int64_t))
        self.spare_bid = <int64_t *>calloc(roi, sizeof(int64_t))
        self.spare_ask = <int64_t *>calloc(roi, sizeof(int64_t))
        if not (self.bid and self.ask and self.spare_bid and self.spare_ask):
            raise MemoryError()
        self.inst = inst
        self.based = False
        self.best_bid_px = INT64_MIN
        self.best_ask_px = INT64_MAX
        self.update_id = -1

    def __dealloc__(self):
        free(self.bid); free(self.ask); free(self.spare_bid); free(self.spare_ask)

    # -------------------------------------------------------------- core
    cdef void clear(self) noexcept nogil:
        memset(self.bid, 0, self.roi * sizeof(int64_t))
        memset(self.ask, 0, self.roi * sizeof(int64_t))
        self.bid_out.clear()
        self.ask_out.clear()
        self.best_bid_px = INT64_MIN
        self.best_ask_px = INT64_MAX
        self.based = False

    cdef int64_t qty_at(self, int side, int64_t px) noexcept nogil:
        cdef int64_t off = px - self.base
        cdef cmap[int64_t, int64_t].iterator it
        if self.based and 0 <= off < self.roi:
            return self.bid[off] if side == BOOK_BID else self.ask[off]
        if side == BOOK_BID:
            it = self.bid_out.find(px)
            return deref(it).second if it != self.bid_out.end() else 0
        it = self.ask_out.find(px)
        return deref(it).second if it != self.ask_out.end() else 0

    cdef void set_level(self, int side, int64_t px, int64_t qty) noexcept nogil:
        cdef int64_t off
        if not self.based:
            self.base = px - self.roi // 2
            self.based = True
        off = px - self.base
        if 0 <= off < self.roi:
            if side == BOOK_BID:
                self.bid[off] = qty
            else:
                self.ask[off] = qty
        elif side == BOOK_BID:
            if qty:
                self.bid_out[px] = qty
            else:
                self.bid_out.erase(px)
        else:
            if qty:
                self.ask_out[px] = qty
            else:
                self.ask_out.erase(px)
        self.levels_applied += 1
        if side == BOOK_BID:
            if qty:
                if px > self.best_bid_px:
                    self.best_bid_px = px
            elif px == self.best_bid_px:
                self.best_bid_px = self.next_bid_below(px)
        else:
            if qty:
                if px < self.best_ask_px:
                    self.best_ask_px = px
            elif px == self.best_ask_px:
                self.best_ask_px = self.next_ask_above(px)

    cdef int64_t next_bid_below(self, int64_t px) noexcept nogil:
        """Highest bid level strictly below px, or INT64_MIN."""
        cdef int64_t top = self.base + self.roi, i
        cdef cmap[int64_t, int64_t].iterator it
        if px > top:
            it = self.bid_out.lower_bound(px)
            if it != self.bid_out.begin():
                dec(it)
                if deref(it).first >= top:
                    return deref(it).first
        i = (px if px < top else top) - 1 - self.base
        while i >= 0:
            if self.bid[i]:
                return self.base + i
            i -= 1
        it = self.bid_out.lower_bound(px if px < self.base else self.base)
        if it != self.bid_out.begin():
            dec(it)
            return deref(it).first
        return INT64_MIN

    cdef int64_t next_ask_above(self, int64_t px) noexcept nogil:
        """Lowest ask level strictly above px, or INT64_MAX."""
        cdef int64_t top = self.base + self.roi, i
        cdef cmap[int64_t, int64_t].iterator it
        if px < self.base - 1:
            it = self.ask_out.upper_bound(px)
            if it != self.ask_out.end() and deref(it).first < self.base:
                return deref(it).first
        i = (px + 1 if px + 1 > self.base else self.base) - self.base
        while i < self.roi:
            if self.ask[i]:
                return self.base + i
            i += 1
        it = self.ask_out.upper_bound(px if px > top - 1 else top - 1)
        if it != self.ask_out.end():
            return deref(it).first
        return INT64_MAX

    cdef void recenter(self, int64_t center) noexcept nogil:
        """Move the ROI so that it is centred on ``center``; levels that leave it go to the
        maps, map levels that enter it come back into the arrays."""
        cdef int64_t nb = center - self.roi // 2, i, px, end = nb + self.roi
        cdef int64_t *t
        cdef cmap[int64_t, int64_t].iterator it
        if nb == self.base:
            return
        memset(self.spare_bid, 0, self.roi * sizeof(int64_t))
        memset(self.spare_ask, 0, self.roi * sizeof(int64_t))
        for i in range(self.roi):
            px = self.base + i
            if self.bid[i]:
                if nb <= px < end:
                    self.spare_bid[px - nb] = self.bid[i]
                else:
                    self.bid_out[px] = self.bid[i]
            if self.ask[i]:
                if nb <= px < end:
                    self.spare_ask[px - nb] = self.ask[i]
                else:
                    self.ask_out[px] = self.ask[i]
        it = self.bid_out.lower_bound(nb)
        while it != self.bid_out.end() and deref(it).first < end:
            self.spare_bid[deref(it).first - nb] = deref(it).second
            it = self.bid_out.erase(it)
        it = self.ask_out.lower_bound(nb)
        while it != self.ask_out.end() and deref(it).first < end:
            self.spare_ask[deref(it).first - nb] = deref(it).second
            it = self.ask_out.erase(it)
        t = self.bid; self.bid = self.spare_bid; self.spare_bid = t
        t = self.ask; self.ask = self.spare_ask; self.spare_ask = t
        self.base = nb
        self.recenters += 1

    cdef void maybe_recenter(self) noexcept nogil:
        cdef int64_t mid
        if self.best_bid_px != INT64_MIN and self.best_ask_px != INT64_MAX:
            mid = (self.best_bid_px + self.best_ask_px) // 2
        elif self.best_bid_px != INT64_MIN:
            mid = self.best_bid_px
        elif self.best_ask_px != INT64_MAX:
            mid = self.best_ask_px
        else:
            return
        if mid < self.base + self.roi // 4 or mid >= self.base + 3 * (self.roi // 4):
            self.recenter(mid)

    cdef void apply_levels(self, MarketRecord *recs, int n) noexcept nogil:
        cdef int i
        for i in range(n):
            if recs[i].side == BOOK_BID or recs[i].side == BOOK_ASK:
                self.set_level(recs[i].side, recs[i].px, recs[i].qty)
        if n:
            self.update_id = recs[n - 1].seq
            self.exch_ts = recs[n - 1].exch_ts
            self.mono_origin = recs[n - 1].mono_origin
        self.maybe_recenter()

    cdef bint crossed(self) noexcept nogil:
        return (self.best_bid_px != INT64_MIN and self.best_ask_px != INT64_MAX
                and self.best_bid_px >= self.best_ask_px)

    cdef int fill_side(self, int side, int n, int64_t *px, int64_t *qty) noexcept nogil:
        """Top n levels of a side, best first. Returns how many exist."""
        cdef int k = 0
        cdef int64_t p = self.best_bid_px if side == BOOK_BID else self.best_ask_px
        while k < n:
            if side == BOOK_BID:
                if p == INT64_MIN:
                    break
            elif p == INT64_MAX:
                break
            px[k] = p
            qty[k] = self.qty_at(side, p)
            k += 1
            p = self.next_bid_below(p) if side == BOOK_BID else self.next_ask_above(p)
        return k

    cdef void fill_top(self, BookTop *out, uint32_t flags, int64_t mono_pub) noexcept nogil:
        cdef int k
        memset(out, 0, sizeof(BookTop))
        out.inst = self.inst
        out.flags = flags
        out.update_id = self.update_id
        out.exch_ts = self.exch_ts
        out.mono_origin = self.mono_origin
        out.mono_pub = mono_pub
        self.fill_side(BOOK_BID, BOOK_LEVELS, out.bid_px, out.bid_qty)
        self.fill_side(BOOK_ASK, BOOK_LEVELS, out.ask_px, out.ask_qty)

    # -------------------------------------------------------------- Python API
    def apply(self, recs):
        """Apply depth/snapshot level records (no sequencing: see BinanceBookSync)."""
        cdef Py_ssize_t n
        cdef MarketRecord *v = market_ptr(recs, &n)
        if n:
            if v[0].flags & 2:      # F_CLEAR
                self.clear()
            self.apply_levels(v, n)

    @property
    def best_bid(self):
        """(px ticks, qty lots) or None."""
        if self.best_bid_px == INT64_MIN:
            return None
        return self.best_bid_px, self.qty_at(BOOK_BID, self.best_bid_px)

    @property
    def best_ask(self):
        if self.best_ask_px == INT64_MAX:
            return None
        return self.best_ask_px, self.qty_at(BOOK_ASK, self.best_ask_px)

    def qty(self, int side, int64_t px):
        return self.qty_at(side, px)

    def levels(self, int side, int n):
        """Top n levels of a side as two int64 arrays (px, qty), best first."""
        px = np.zeros(n, np.int64)
        qty = np.zeros(n, np.int64)
        cdef int64_t[::1] pv = px, qv = qty
        cdef int k = self.fill_side(side, n, &pv[0], &qv[0]) if n else 0
        return px[:k], qty[:k]

    def depth(self, int side):
        """Every level of a side, best first: (px, qty) arrays (for tests and snapshots)."""
        cdef int64_t i
        cdef list out = []
        for i in range(self.roi):
            q = self.bid[i] if side == BOOK_BID else self.ask[i]
            if q:
                out.append((self.base + i, q))
        m = self.bid_out if side == BOOK_BID else self.ask_out
        for kv in m:
            out.append((kv.first, kv.second))
        out.sort(reverse=(side == BOOK_BID))
        a = np.array(out, dtype=np.int64).reshape(-1, 2)
        return a[:, 0], a[:, 1]

    def vwap(self, int side, int64_t qty):
        """Average price (ticks, float) to fill ``qty`` lots against ``side`` (BOOK_ASK to
        buy, BOOK_BID to sell), and the quantity the book could fill."""
        cdef int64_t left = qty, take, p, q
        cdef double cost = 0
        if qty <= 0:
            raise ValueError("qty must be positive")
        p = self.best_ask_px if side == BOOK_ASK else self.best_bid_px
        while left > 0 and p != INT64_MAX and p != INT64_MIN:
            q = self.qty_at(side, p)
            take = q if q < left else left
            cost += <double>take * p
            left -= take
            p = self.next_ask_above(p) if side == BOOK_ASK else self.next_bid_below(p)
        filled = qty - left
        return (cost / filled if filled else float("nan")), filled

    def imbalance(self, int n):
        """(bid qty - ask qty) / (bid qty + ask qty) over the top n levels of each side;
        0.0 for an empty book."""
        bp, bq = self.levels(BOOK_BID, n)
        ap, aq = self.levels(BOOK_ASK, n)
        b, a = int(bq.sum()), int(aq.sum())
        return (b - a) / (b + a) if b + a else 0.0

    def qty_within(self, int side, int64_t ticks):
        """Total quantity of ``side`` within ``ticks`` of its best price."""
        cdef int64_t p, tot = 0, edge
        if side == BOOK_BID:
            p = self.best_bid_px
            if p == INT64_MIN:
                return 0
            edge = p - ticks
            while p != INT64_MIN and p >= edge:
                tot += self.qty_at(side, p)
                p = self.next_bid_below(p)
        else:
            p = self.best_ask_px
            if p == INT64_MAX:
                return 0
            edge = p + ticks
            while p != INT64_MAX and p <= edge:
                tot += self.qty_at(side, p)
                p = self.next_ask_above(p)
        return tot

    def is_crossed(self):
        return self.crossed()

    def top_record(self, bint valid=True):
        """The BOOK_TOP_DTYPE record as the feed publishes it."""
        global _BOOK_TOP_DTYPE
        cdef Py_buffer b
        if _BOOK_TOP_DTYPE is None:
            from engine.schema import BOOK_TOP_DTYPE
            _BOOK_TOP_DTYPE = BOOK_TOP_DTYPE
        out = np.empty(1, _BOOK_TOP_DTYPE)          # fill_top writes every byte
        PyObject_GetBuffer(out, &b, PyBUF_SIMPLE | PyBUF_WRITABLE)
        self.fill_top(<BookTop *>b.buf, 0 if valid else F_BOOK_INVALID, cs_mono_ns())
        PyBuffer_Release(&b)
        return out

    def publish(self, Region region, uint64_t slot, bint valid=True):
        """Write the top levels into a shared book region slot."""
        cdef BookTop t
        if region.record_size != sizeof(BookTop):
            raise ValueError("region does not hold BOOK_TOP records")
        if slot >= region.nslots:
            raise IndexError(f"slot {slot} out of range")
        self.fill_top(&t, 0 if valid else F_BOOK_INVALID, cs_mono_ns())
        region.write_ptr(slot, &t)

    def stats(self):
        return {"levels_applied": self.levels_applied, "recenters": self.recenters,
                "roi_base": self.base, "roi": self.roi,
                "outside_roi": {"bids": self.bid_out.size(), "asks": self.ask_out.size()}}


_BOOK_TOP_DTYPE = None


def top_fields(top):
    """(best bid, best ask, flags, mono_pub) of a 1-element BOOK_TOP_DTYPE array, read in
    place (the brain reads these four on every message; numpy field access costs ~0.2 us
    each)."""
    cdef Py_buffer b
    cdef const BookTop *t
    PyObject_GetBuffer(top, &b, PyBUF_SIMPLE)
    try:
        if b.len != sizeof(BookTop):
            raise ValueError(f"a BOOK_TOP record is {sizeof(BookTop)} bytes, got {b.len}")
        t = <const BookTop *>b.buf
        return t.bid_px[0], t.ask_px[0], t.flags, t.mono_pub
    finally:
        PyBuffer_Release(&b)


cdef class BinanceBookSync:

    def __cinit__(self, OrderBook book, int max_pending=10000):
        self.book = book
        self.state = ST_WAIT_SNAPSHOT
        self.last_u = -1
        self.snapshot_id = -1
        self.pending = []
        self.max_pending = max_pending

    cdef void _invalidate(self) noexcept nogil:
        self.state = ST_WAIT_SNAPSHOT

    cdef int _continue(self, MarketRecord *recs, int n) noexcept nogil:
        """Apply one depth message in state WAIT_BRIDGE or SYNCED."""
        cdef int64_t U = recs[0].aux2, u = recs[0].seq, pu = recs[0].aux
        if u < self.snapshot_id or (self.state == ST_SYNCED and u <= self.last_u):
            self.stale_dropped += 1
            return SYNC_STALE
        if self.state == ST_WAIT_BRIDGE:
            # futures: the first update must span lastUpdateId (spot: lastUpdateId + 1), or
            # continue it exactly (pu == lastUpdateId: the snapshot ends where it starts)
            if pu >= 0:
                if not (U <= self.snapshot_id <= u or pu == self.snapshot_id):
                    self.gaps += 1
                    self._invalidate()
                    return SYNC_GAP
            elif not (U <= self.snapshot_id + 1 <= u):
                self.gaps += 1
                self._invalidate()
                return SYNC_GAP
        elif pu >= 0:
            if pu != self.last_u:
                self.gaps += 1
                self._invalidate()
                return SYNC_GAP
        elif U != self.last_u + 1:
            self.gaps += 1
            self._invalidate()
            return SYNC_GAP
        self.book.apply_levels(recs, n)
        self.last_u = u
        self.state = ST_SYNCED
        self.applied += 1
        if self.book.crossed():
            self.crossed_books += 1
            self._invalidate()
            return SYNC_CROSSED
        return SYNC_APPLIED

    cdef int on_depth(self, MarketRecord *recs, int n):
        cdef int r
        if n <= 0:
            return SYNC_STALE
        if self.state != ST_WAIT_SNAPSHOT:
            r = self._continue(recs, n)
            if r == SYNC_GAP:
                self._buffer(recs, n)      # may be the bridge after the next snapshot
            return r
        self._buffer(recs, n)
        return SYNC_BUFFERED

    cdef _buffer(self, MarketRecord *recs, int n):
        """Keep a copy of a depth message until the next snapshot; the oldest goes first
        when the buffer is full (counted: the snapshot will have to cover it)."""
        cdef MarketRecord[::1] v
        from engine.schema import MARKET_DTYPE
        a = np.empty(n, MARKET_DTYPE)
        v = a
        memcpy(&v[0], recs, n * sizeof(MarketRecord))
        if len(self.pending) >= self.max_pending:
            self.pending.pop(0)
            self.buffer_overflows += 1
        self.pending.append(a)
        self.buffered += 1

    cdef int on_snapshot(self, MarketRecord *recs, int n):
        """Replace the book with a snapshot. Buffered updates stay in ``pending``: the
        caller feeds them back through ``apply`` (``take_pending``) so that each one is
        sequenced, and reported, like a live update."""
        cdef int i
        cdef int64_t center = 0
        self.book.clear()
        for i in range(n):
            if recs[i].side == BOOK_BID:
                center = recs[i].px
                break
        if center == 0 and n:
            center = recs[0].px
        if center:
            self.book.base = center - self.book.roi // 2
            self.book.based = True
        self.book.apply_levels(recs, n)
        self.snapshot_id = recs[0].seq if n else -1
        self.last_u = self.snapshot_id
        self.book.update_id = self.snapshot_id
        self.state = ST_WAIT_BRIDGE
        self.snapshots += 1
        return SYNC_WAITING

    # -------------------------------------------------------------- Python API
    def apply(self, recs):
        """Feed one parsed message (depth or snapshot records); returns a SYNC_* code."""
        cdef Py_ssize_t n
        cdef MarketRecord *v = market_ptr(recs, &n)
        if n == 0:
            return SYNC_STALE
        if v[0].kind == MK_SNAPSHOT:
            return self.on_snapshot(v, n)
        if v[0].kind == MK_DEPTH:
            return self.on_depth(v, n)
        raise ValueError(f"not a depth or snapshot message (kind {v[0].kind})")

    @property
    def needs_snapshot(self):
        return self.state == ST_WAIT_SNAPSHOT

    @property
    def valid(self):
        """True when the book may be traded on: synced and not crossed."""
        return self.state == ST_SYNCED

    @property
    def pending_messages(self):
        return len(self.pending)

    def take_pending(self):
        """The buffered depth messages (oldest first), removing them: after a snapshot,
        feed each back through ``apply``."""
        p, self.pending = self.pending, []
        return p

    def stats(self):
        return {"state": STATE_NAMES[self.state],
                "last_u": self.last_u, "snapshot_id": self.snapshot_id,
                "applied": self.applied, "gaps": self.gaps, "crossed": self.crossed_books,
                "stale_dropped": self.stale_dropped, "buffered": self.buffered,
                "buffer_overflows": self.buffer_overflows, "snapshots": self.snapshots,
                "pending": len(self.pending), **self.book.stats()}

    @staticmethod
    def status_name(int code):
        return STATUS.get(code, str(code))
