# distutils: language = c++
# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Matching core of the simulated exchange (and of the backtester).

Market data (MARKET records from a replay or the synthetic generator) drives a public L2
book per instrument (cext.book.OrderBook). Our orders do not enter that book; they are
matched against it:

- Aggressive orders (MARKET, IOC, FOK, or a LIMIT that crosses) take liquidity from the
  public book level by level at the levels' prices (taker), without market impact: the
  next market update sets the book again. FOK fills completely or expires; IOC fills what
  it can and expires the rest; a MARKET order with an empty side expires. A POST_ONLY (GTX)
  order that would take is rejected (the server answers -5022).
- Resting orders (LIMIT, POST_ONLY) sit behind the visible quantity at their price when
  placed, and behind our earlier orders at that price (price-time priority). A trade at
  their price consumes the queue ahead first; the rest fills us (maker, at our price). A
  trade through our price, or the opposite best moving through it, fills us completely.
  When the level shrinks without trades (cancels), ``cancel_ahead_frac`` of the removed
  quantity is assumed to have been ahead of us (0 = only trades move us: the cautious
  model; default 0.5), and the queue never exceeds the level.

Fills and state changes are EXEC records (ACK, PARTIAL, FILL, CANCELED, EXPIRED) in an
internal buffer, taken with ``drain()``. Accounts (fees, margin, PnL) live outside, in
engine.venues.sim.accounts, and read these records.
"""
import numpy as np

from libc.stdint cimport int64_t, uint64_t, uint32_t, INT64_MIN, INT64_MAX
from libc.stdlib cimport calloc, free
from libc.string cimport memset

from cext.book cimport OrderBook, BOOK_BID, BOOK_ASK
from cext.schema cimport (MarketRecord, ExecRecord, SIDE_BUY, SIDE_SELL, OT_LIMIT, OT_POST_ONLY, OT_IOC, OT_MARKET,
                          OT_FOK)

cdef enum:
    MK_DEPTH = 1
    MK_SNAPSHOT = 2
    MK_TRADE = 3
    MK_BBO = 4
    EX_ACK = 1
    EX_PARTIAL = 3
    EX_FILL = 4
    EX_CANCELED = 5
    EX_EXPIRED = 6
    LIQ_MAKER = 1
    LIQ_TAKER = 2
    F_CLEAR = 2

SCHEMA_CONSTANTS = {"MK_DEPTH": MK_DEPTH, "MK_SNAPSHOT": MK_SNAPSHOT, "MK_TRADE": MK_TRADE, "MK_BBO": MK_BBO,
                    "SIDE_BUY": SIDE_BUY, "SIDE_SELL": SIDE_SELL, "OT_LIMIT": OT_LIMIT,
                    "OT_POST_ONLY": OT_POST_ONLY, "OT_IOC": OT_IOC, "OT_MARKET": OT_MARKET, "OT_FOK": OT_FOK,
                    "EX_ACK": EX_ACK, "EX_PARTIAL": EX_PARTIAL, "EX_FILL": EX_FILL, "EX_CANCELED": EX_CANCELED,
                    "EX_EXPIRED": EX_EXPIRED, "LIQ_MAKER": LIQ_MAKER, "LIQ_TAKER": LIQ_TAKER, "F_CLEAR": F_CLEAR}

# submit() results
SUBMIT_RESTING = 1       # accepted, resting (possibly after partial taker fills)
SUBMIT_FILLED = 2        # completely filled at once
SUBMIT_EXPIRED = 3       # IOC/FOK/MARKET: nothing (more) to take, the rest expired
SUBMIT_POST_ONLY_REJECTED = 4
SUBMIT_NO_SLOT = 5
SUBMIT_BAD = 6


cdef class MatchingEngine:

    def __cinit__(self, int n_inst, int max_orders=4096, int64_t roi=1 << 16, double cancel_ahead_frac=0.5,
                  int exec_cap=1 << 16):
        if n_inst < 1:
            raise ValueError("n_inst must be >= 1")
        if not 0.0 <= cancel_ahead_frac <= 1.0:
            raise ValueError("cancel_ahead_frac must be in [0, 1]")
        self.n_inst = n_inst
        self.books = [OrderBook(i, roi) for i in range(n_inst)]
        self.orders = <SimOrder *>calloc(max_orders, sizeof(SimOrder))
        if self.orders == NULL:
            raise MemoryError()
        self.max_orders = max_orders
        from engine.schema import EXEC_DTYPE
        self._execs = np.zeros(exec_cap, EXEC_DTYPE)
        self.ex = <ExecRecord *><size_t>self._execs.ctypes.data
        self.exec_cap = exec_cap
        self.cancel_ahead_frac = cancel_ahead_frac
        self.next_seq = 1
        self.next_trade_id = 1

    def __dealloc__(self):
        free(self.orders)

    # -------------------------------------------------------------- exec records
    cdef void _exec(self, SimOrder *o, int kind, int64_t px, int64_t qty, int liq, int64_t ts) noexcept:
        cdef ExecRecord *e
        if self.n_exec >= self.exec_cap:
            return              # drain() more often; counted below
        e = &self.ex[self.n_exec]
        self.n_exec += 1
        memset(e, 0, sizeof(ExecRecord))
        e.kind = kind
        e.side = o.side
        e.liquidity = liq
        e.flags = o.flags
        e.inst = o.inst
        e.client_id = o.client_id
        e.exch_order_id = o.order_id
        e.px = px
        e.qty = qty
        e.leaves_qty = o.leaves
        e.cum_qty = o.cum
        e.order_px = o.px
        e.exch_ts = ts
        if kind == EX_PARTIAL or kind == EX_FILL:
            e.trade_id = self.next_trade_id
            self.next_trade_id += 1
            self.fills += 1

    cdef void _fill_resting(self, SimOrder *o, int64_t px, int64_t qty, int64_t ts) noexcept:
        if qty > o.leaves:
            qty = o.leaves
        if qty <= 0:
            return
        o.leaves -= qty
        o.cum += qty
        if o.leaves == 0:
            o.active = 0
            self.n_open -= 1
            self._shrink()
            self._exec(o, EX_FILL, px, qty, LIQ_MAKER, ts)
        else:
            self._exec(o, EX_PARTIAL, px, qty, LIQ_MAKER, ts)

    cdef void _cross_check(self, uint32_t inst, int64_t best_bid, int64_t best_ask, int64_t ts) noexcept:
        """The opposite best moved through a resting order: it was filled at its price."""
        cdef int i
        cdef SimOrder *o
        for i in range(self.hw):
            o = &self.orders[i]
            if not o.active or o.inst != inst:
                continue
            if o.side == SIDE_BUY and best_ask != INT64_MAX and best_ask < o.px:
                self._fill_resting(o, o.px, o.leaves, ts)
            elif o.side == SIDE_SELL and best_bid != INT64_MIN and best_bid > o.px:
                self._fill_resting(o, o.px, o.leaves, ts)

    cdef void _shrink(self) noexcept:
        """Lower the high-water mark past freed slots at the top (loops stop at hw)."""
        while self.hw > 0 and not self.orders[self.hw - 1].active:
            self.hw -= 1

    cdef int64_t _ours_ahead(self, SimOrder *me) noexcept:
        cdef int i
        cdef int64_t t = 0
        cdef SimOrder *o
        for i in range(self.hw):
            o = &self.orders[i]
            if o.active and o.inst == me.inst and o.side == me.side and o.px == me.px and o.seq < me.seq:
                t += o.leaves
        return t

    cdef int on_record(self, MarketRecord *r) noexcept:
        cdef OrderBook b
        cdef int i, side
        cdef int64_t old, new, removed, take
        cdef SimOrder *o
        if r.inst >= <uint32_t>self.n_inst:
            return 0
        self.events += 1
        b = <OrderBook>self.books[r.inst]
        if r.kind == MK_DEPTH or r.kind == MK_SNAPSHOT:
            if r.flags & F_CLEAR:
                b.clear()
            if r.side == SIDE_BUY or r.side == SIDE_SELL:
                old = b.qty_at(r.side, r.px)
                b.set_level(r.side, r.px, r.qty)
                if self.n_open and r.qty < old:
                    removed = old - r.qty
                    for i in range(self.hw):
                        o = &self.orders[i]
                        if o.active and o.inst == r.inst and o.side == r.side and o.px == r.px and o.queue_ahead > 0:
                            o.queue_ahead -= <int64_t>(removed * self.cancel_ahead_frac)
                            # at most the public level plus our own earlier orders at this price
                            take = r.qty + self._ours_ahead(o)
                            if o.queue_ahead > take:
                                o.queue_ahead = take
                            if o.queue_ahead < 0:
                                o.queue_ahead = 0
            if self.n_open:
                self._cross_check(r.inst, b.best_bid_px, b.best_ask_px, r.exch_ts)
        elif r.kind == MK_TRADE:
            if self.n_open:
                # the aggressor's side: a SELL aggressor hits bids (our buys), a BUY hits asks
                side = SIDE_BUY if r.side == SIDE_SELL else SIDE_SELL
                for i in range(self.hw):
                    o = &self.orders[i]
                    if not o.active or o.inst != r.inst or o.side != side:
                        continue
                    if (side == SIDE_BUY and r.px < o.px) or (side == SIDE_SELL and r.px > o.px):
                        self._fill_resting(o, o.px, o.leaves, r.exch_ts)       # traded through
                    elif r.px == o.px:
                        o.queue_ahead -= r.qty
                        if o.queue_ahead < 0:
                            take = -o.queue_ahead
                            o.queue_ahead = 0
                            self._fill_resting(o, o.px, take, r.exch_ts)
        elif r.kind == MK_BBO:
            if self.n_open:
                self._cross_check(r.inst, r.px, r.aux, r.exch_ts)
        return 1

    # -------------------------------------------------------------- Python API
    def on_market(self, recs):
        """Apply MARKET records; returns the number of EXEC records waiting in drain()."""
        cdef MarketRecord[::1] v = recs
        cdef Py_ssize_t i
        for i in range(v.shape[0]):
            self.on_record(&v[i])
        return self.n_exec

    def drain(self):
        """The EXEC records produced since the last drain (a copy), oldest first."""
        out = self._execs[:self.n_exec].copy()
        self.n_exec = 0
        return out

    def book(self, int inst) -> OrderBook:
        return self.books[inst]

    def submit(self, int64_t order_id, uint64_t client_id, uint32_t inst, int side, int otype, int64_t px,
               int64_t qty, int flags=0, int64_t ts=0):
        """Match a new order against the public book; the rest rests (LIMIT, POST_ONLY) or
        expires (IOC, FOK, MARKET). Returns SUBMIT_*; fills are in drain()."""
        return self.submit_c(order_id, client_id, inst, side, otype, px, qty, flags, ts)

    cdef int submit_c(self, int64_t order_id, uint64_t client_id, uint32_t inst, int side, int otype, int64_t px,
                      int64_t qty, int flags, int64_t ts) except -1:
        cdef OrderBook b
        cdef bint crosses
        cdef SimOrder tmp
        cdef SimOrder *o
        cdef int i, slot = -1
        cdef int64_t lvl, avail, q, take
        if inst >= <uint32_t>self.n_inst or qty <= 0 or side not in (SIDE_BUY, SIDE_SELL) \
                or otype < OT_LIMIT or otype > OT_FOK or (otype != OT_MARKET and px <= 0):
            return SUBMIT_BAD
        b = <OrderBook>self.books[inst]
        memset(&tmp, 0, sizeof(SimOrder))
        tmp.order_id = order_id
        tmp.client_id = client_id
        tmp.inst = inst
        tmp.side = side
        tmp.otype = otype
        tmp.flags = flags
        tmp.px = px
        tmp.qty = qty
        tmp.leaves = qty
        tmp.time_ns = ts
        crosses = (side == SIDE_BUY and b.best_ask_px != INT64_MAX and (otype == OT_MARKET or px >= b.best_ask_px)) or \
                  (side == SIDE_SELL and b.best_bid_px != INT64_MIN and (otype == OT_MARKET or px <= b.best_bid_px))
        if otype == OT_POST_ONLY and crosses:
            return SUBMIT_POST_ONLY_REJECTED
        if otype == OT_FOK:
            avail = 0
            lvl = b.best_ask_px if side == SIDE_BUY else b.best_bid_px
            while avail < qty and lvl != INT64_MAX and lvl != INT64_MIN and \
                    ((side == SIDE_BUY and lvl <= px) or (side == SIDE_SELL and lvl >= px)):
                avail += b.qty_at(BOOK_ASK if side == SIDE_BUY else BOOK_BID, lvl)
                lvl = b.next_ask_above(lvl) if side == SIDE_BUY else b.next_bid_below(lvl)
            if avail < qty:
                self._exec(&tmp, EX_EXPIRED, px, 0, 0, ts)
                return SUBMIT_EXPIRED
        # take liquidity
        if crosses:
            lvl = b.best_ask_px if side == SIDE_BUY else b.best_bid_px
            while tmp.leaves > 0 and lvl != INT64_MAX and lvl != INT64_MIN and \
                    (otype == OT_MARKET or (side == SIDE_BUY and lvl <= px) or (side == SIDE_SELL and lvl >= px)):
                q = b.qty_at(BOOK_ASK if side == SIDE_BUY else BOOK_BID, lvl)
                take = q if q < tmp.leaves else tmp.leaves
                if take > 0:
                    tmp.leaves -= take
                    tmp.cum += take
                    self._exec(&tmp, EX_FILL if tmp.leaves == 0 else EX_PARTIAL, lvl, take, LIQ_TAKER, ts)
                lvl = b.next_ask_above(lvl) if side == SIDE_BUY else b.next_bid_below(lvl)
        if tmp.leaves == 0:
            return SUBMIT_FILLED
        if otype == OT_IOC or otype == OT_FOK or otype == OT_MARKET:
            self._exec(&tmp, EX_EXPIRED, px, 0, 0, ts)
            return SUBMIT_EXPIRED
        # rest: behind the visible quantity and our own earlier orders at this price
        for i in range(self.max_orders):
            if not self.orders[i].active:
                slot = i
                break
        if slot < 0:
            return SUBMIT_NO_SLOT
        tmp.queue_ahead = b.qty_at(side, px)
        for i in range(self.hw):
            o = &self.orders[i]
            if o.active and o.inst == inst and o.side == side and o.px == px:
                tmp.queue_ahead += o.leaves
        tmp.seq = self.next_seq
        self.next_seq += 1
        tmp.active = 1
        self.orders[slot] = tmp
        self.n_open += 1
        if slot >= self.hw:
            self.hw = slot + 1
        return SUBMIT_RESTING

    def cancel(self, int64_t order_id, int64_t ts=0):
        """Cancel a resting order: True (CANCELED record emitted) or False if not open."""
        return self.cancel_c(order_id, ts)

    cdef bint cancel_c(self, int64_t order_id, int64_t ts) noexcept:
        cdef int i
        cdef SimOrder *o
        for i in range(self.max_orders):
            o = &self.orders[i]
            if o.active and o.order_id == order_id:
                o.active = 0
                self.n_open -= 1
                self._shrink()
                self._exec(o, EX_CANCELED, o.px, 0, 0, ts)
                return True
        return False

    def open_orders(self, int inst=-1):
        """[(order_id, client_id, inst, side, otype, px, qty, leaves, cum, queue_ahead, flags)]"""
        cdef int i
        cdef SimOrder *o
        out = []
        for i in range(self.max_orders):
            o = &self.orders[i]
            if o.active and (inst < 0 or o.inst == <uint32_t>inst):
                out.append((o.order_id, o.client_id, o.inst, o.side, o.otype, o.px, o.qty, o.leaves, o.cum,
                            o.queue_ahead, o.flags, o.seq))
        out.sort(key=lambda t: t[11])          # arrival order (wraparound is off: no negative indices)
        return [t[:11] for t in out]

    def stats(self):
        return {"events": self.events, "fills": self.fills, "open_orders": self.n_open,
                "pending_exec": self.n_exec}
