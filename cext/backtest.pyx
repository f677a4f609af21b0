# distutils: language = c++
# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The backtester's event loop, compiled (engine.backtest.engine.Backtester wires it).

One timeline in exchange time (ns). Each market message (engine.features.dataset
message_table: records, their [start, end) per message, the top of the book after it)
happens twice: applied to the matching core at its exchange time (the later of its last
record's and its top's) as MKT_EXCH, seen by our side after the feed latency as
MKT_LOCAL. Message j of table k has sequence number base_k + 2j (+1 for MKT_LOCAL), the
tables' bases one after the other; the loop merges these 2 x tables streams (each in time
order, ties by message: a stable sort where a table is not in time order already) by
(time, sequence). Orders reaching the venue (ORDER_ARRIVE) and execution reports reaching
us (EXEC_LOCAL) go through a binary heap keyed by (time, sequence); heap sequence numbers
continue after the market's, so at equal times a market event goes first and everything
else in the order it was scheduled. The same inputs give the same event order, always.

Per event, no Python unless a component is Python:
- MKT_EXCH: the message's records into the MatchingEngine (``on_record``), its execution
  reports onto the heap at + ack latency; the funding rate from MARK/FUNDING records;
  a funding settlement when its time has passed (``host._funding``, Python: rare).
- MKT_LOCAL: the mark into the RiskState and the PositionBook; ``host._local`` (features,
  regime, model: Python) only for an instrument that needs it; the strategy (a
  cext.strategies.CompiledStrategy directly, any other through ``on_market``); each intent
  through the risk gate (``check_ptr``); accepted orders into the PositionBook and onto
  the heap at + order latency; a refused intent comes back to its strategy as a REJECT.
- ORDER_ARRIVE: submit or cancel in the matching core; its reports onto the heap. A
  post-only order that would take is rejected (-5022, as Binance); an order the core
  cannot take (no free slot, malformed) is rejected too (-1015 / -1102) rather than lost.
  An action the sim does not model (replace, cancel-all) is refused before the gate and
  the PositionBook ("unsupported_action", -1100 to the strategy).
- EXEC_LOCAL: the fee on a fill, the PositionBook, ``host._fill`` for the trade list and
  the per-strategy books (Python, per fill), then the strategy.
An equity point (PositionBook.equity) is taken on a 1-s grid of exchange time.
"""
import numpy as np

from libc.stdint cimport int64_t, uint64_t, uint8_t
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memset

from cext.matching cimport MatchingEngine
from cext.positions cimport PositionBook, Position
from cext.risk cimport RiskGate, RiskState, InstRisk
from cext.schema cimport MarketRecord, OrderRecord, ExecRecord, RejectRecord, BookTop
from cext.strategies cimport CompiledStrategy

cdef enum:
    MKT_EXCH = 0
    MKT_LOCAL = 1
    ORDER_ARRIVE = 2
    EXEC_LOCAL = 3
    MK_DEPTH = 1
    MK_TRADE = 3
    MK_MARK = 5
    MK_FUNDING = 6
    ACT_NEW = 1
    ACT_CANCEL = 2
    F_BOOK_INVALID = 4
    EX_REJECT = 2
    EX_PARTIAL = 3
    EX_FILL = 4
    LIQ_MAKER = 1
    SIDE_BUY = 1
    SUBMIT_POST_ONLY_REJECTED = 4
    SUBMIT_NO_SLOT = 5
    SUBMIT_BAD = 6
    MAX_INTENTS = 16

cdef int64_t FUNDING_PERIOD_NS = 8 * 3600 * 1000000000
cdef int64_t EQUITY_GRID_NS = 1000000000

cdef struct Ev:
    int64_t t
    int64_t seq
    int kind
    int k
    int slot

cdef union Payload:
    OrderRecord o
    ExecRecord x


cdef inline bint _before(Ev *a, Ev *b) noexcept nogil:
    return a.t < b.t or (a.t == b.t and a.seq < b.seq)


cdef inline int64_t _abs(int64_t x) noexcept nogil:
    return -x if x < 0 else x


cdef class EventLoop:
    cdef MatchingEngine me
    cdef RiskGate gate
    cdef RiskState st
    cdef PositionBook book
    cdef object host
    cdef list strategies, compiled, features, positions, keep
    cdef int nk
    cdef MarketRecord **recs
    cdef BookTop **tops
    cdef int64_t **starts
    cdef int64_t **ends
    cdef int64_t **times          # per message: when it happens at the exchange
    cdef int64_t **order          # messages in time order (NULL: already in time order)
    cdef int64_t *n_msg
    cdef int64_t *base            # sequence number of a table's first message
    cdef int64_t *pos_x           # next message to apply at the exchange, per table
    cdef int64_t *pos_l           # next message to see locally, per table
    cdef int *inst_of
    cdef int *k_of_inst
    cdef uint8_t *hook
    cdef double *value
    cdef Ev *heap
    cdef int64_t nheap, heap_cap
    cdef Payload *pool
    cdef int *free_slots
    cdef int nfree, pool_cap
    cdef int64_t seq, feed_ns, order_ns, ack_ns
    cdef bint order_drawn
    cdef double maker_fee, taker_fee
    # per instrument
    cdef int64_t *mid_of
    cdef int64_t *last_t
    cdef uint8_t *has_last
    cdef int64_t *next_funding
    cdef uint8_t *has_funding
    cdef double *funding_rate
    cdef int64_t *inv_max
    cdef double *inv_area
    # results
    cdef readonly int64_t orders_sent, rejects
    cdef readonly int64_t events        # book level updates and trades applied (hftbacktest's row unit)
    cdef readonly dict reject_reasons
    cdef readonly list equity_t, equity_v

    def __init__(self, host, MatchingEngine me, RiskGate gate, RiskState st, PositionBook book, list strategies,
                 list features, list tables, list inst_ids, list values, list hooks, *, int64_t feed_ns,
                 int64_t order_ns, int64_t ack_ns, bint order_drawn, double maker_fee, double taker_fee,
                 list funding_rates):
        cdef int k, n_inst
        cdef int64_t j, n, seq0 = 0, last
        cdef bint sorted_
        cdef MarketRecord *r
        self.host, self.me, self.gate, self.st, self.book = host, me, gate, st, book
        self.strategies = strategies
        self.compiled = [s if isinstance(s, CompiledStrategy) else None for s in strategies]
        self.features = features
        self.nk = len(tables)
        if not (len(strategies) == len(features) == len(inst_ids) == len(values) == len(hooks)
                == len(funding_rates) == self.nk) or self.nk == 0:
            raise ValueError("EventLoop: one strategy, feature engine, instrument id, value, hook and funding rate "
                             "per table, at least one table")
        self.positions = [book.positions[i] for i in inst_ids]
        self.keep = []
        self.recs = <MarketRecord **>self._alloc(self.nk * sizeof(void *))
        self.tops = <BookTop **>self._alloc(self.nk * sizeof(void *))
        self.starts = <int64_t **>self._alloc(self.nk * sizeof(void *))
        self.ends = <int64_t **>self._alloc(self.nk * sizeof(void *))
        self.times = <int64_t **>self._alloc(self.nk * sizeof(void *))
        self.order = <int64_t **>self._alloc(self.nk * sizeof(void *))
        self.n_msg = <int64_t *>self._alloc(self.nk * sizeof(int64_t))
        self.base = <int64_t *>self._alloc(self.nk * sizeof(int64_t))
        self.pos_x = <int64_t *>self._alloc(self.nk * sizeof(int64_t))
        self.pos_l = <int64_t *>self._alloc(self.nk * sizeof(int64_t))
        self.inst_of = <int *>self._alloc(self.nk * sizeof(int))
        self.hook = <uint8_t *>self._alloc(self.nk)
        self.value = <double *>self._alloc(self.nk * sizeof(double))
        self.mid_of = <int64_t *>self._alloc(self.nk * sizeof(int64_t))
        self.last_t = <int64_t *>self._alloc(self.nk * sizeof(int64_t))
        self.has_last = <uint8_t *>self._alloc(self.nk)
        self.next_funding = <int64_t *>self._alloc(self.nk * sizeof(int64_t))
        self.has_funding = <uint8_t *>self._alloc(self.nk)
        self.funding_rate = <double *>self._alloc(self.nk * sizeof(double))
        self.inv_max = <int64_t *>self._alloc(self.nk * sizeof(int64_t))
        self.inv_area = <double *>self._alloc(self.nk * sizeof(double))
        n_inst = max(inst_ids) + 1
        self.k_of_inst = <int *>self._alloc(n_inst * sizeof(int))
        for k in range(n_inst):
            self.k_of_inst[k] = -1
        for k in range(self.nk):
            tab = tables[k]
            recs, tops = tab["recs"], tab["tops"]
            starts = np.ascontiguousarray(tab["starts"], dtype=np.int64)
            ends = np.ascontiguousarray(tab["ends"], dtype=np.int64)
            if not (recs.flags.c_contiguous and tops.flags.c_contiguous) or recs.dtype.itemsize != sizeof(MarketRecord) \
                    or tops.dtype.itemsize != sizeof(BookTop):
                raise ValueError("EventLoop: a table's recs and tops must be contiguous MARKET_DTYPE / BOOK_TOP_DTYPE arrays")
            n = len(starts)
            if len(ends) != n or len(tops) != n:
                raise ValueError("EventLoop: a table needs one start, end and top per message")
            if n and (starts.min() < 0 or ends.max() > len(recs) or (ends < starts).any()):
                raise ValueError("EventLoop: a message's records lie outside the table")
            self.keep += [recs, tops, starts, ends]
            self.recs[k] = <MarketRecord *><size_t>recs.ctypes.data
            self.tops[k] = <BookTop *><size_t>tops.ctypes.data
            self.starts[k] = <int64_t *><size_t>starts.ctypes.data
            self.ends[k] = <int64_t *><size_t>ends.ctypes.data
            self.n_msg[k] = n
            self.base[k] = seq0
            seq0 += 2 * n
            times = np.empty(n, np.int64)
            self.keep.append(times)
            self.times[k] = <int64_t *><size_t>times.ctypes.data
            r = self.recs[k]
            sorted_ = True
            for j in range(n):
                last = self.tops[k][j].exch_ts
                if self.ends[k][j] > 0 and r[self.ends[k][j] - 1].exch_ts > last:
                    last = r[self.ends[k][j] - 1].exch_ts
                elif self.ends[k][j] == 0 and len(recs) and r[0].exch_ts > last:
                    last = r[0].exch_ts
                self.times[k][j] = last
                if j and self.times[k][j] < self.times[k][j - 1]:
                    sorted_ = False
            if not sorted_:
                order = np.argsort(times, kind="stable").astype(np.int64)
                self.keep.append(order)
                self.order[k] = <int64_t *><size_t>order.ctypes.data
            self.inst_of[k] = inst_ids[k]
            self.k_of_inst[inst_ids[k]] = k
            self.value[k] = values[k]
            self.hook[k] = bool(hooks[k])
            self.funding_rate[k] = funding_rates[k]
        self.heap_cap = 1024
        self.heap = <Ev *>self._alloc(self.heap_cap * sizeof(Ev))
        self.pool_cap = 1024
        self.pool = <Payload *>self._alloc(self.pool_cap * sizeof(Payload))
        self.free_slots = <int *>self._alloc(self.pool_cap * sizeof(int))
        for k in range(self.pool_cap):
            self.free_slots[k] = self.pool_cap - 1 - k
        self.nfree = self.pool_cap
        self.seq, self.feed_ns, self.order_ns, self.ack_ns = seq0, feed_ns, order_ns, ack_ns  # heap after market
        self.order_drawn = order_drawn
        self.maker_fee, self.taker_fee = maker_fee, taker_fee
        self.reject_reasons = {}
        self.equity_t, self.equity_v = [], []

    cdef void *_alloc(self, size_t n) except NULL:
        cdef void *p = malloc(n if n else 1)
        if p == NULL:
            raise MemoryError()
        memset(p, 0, n)
        return p

    def __dealloc__(self):
        free(self.recs); free(self.tops); free(self.starts); free(self.ends); free(self.times); free(self.order)
        free(self.n_msg); free(self.base); free(self.pos_x); free(self.pos_l)
        free(self.inst_of); free(self.k_of_inst); free(self.hook)
        free(self.value); free(self.mid_of); free(self.last_t); free(self.has_last); free(self.next_funding)
        free(self.has_funding); free(self.funding_rate); free(self.inv_max); free(self.inv_area)
        free(self.heap); free(self.pool); free(self.free_slots)

    # ---------------------------------------------------------------- heap and payloads
    cdef int _slot(self) except -1:
        cdef int k, old = self.pool_cap
        if self.nfree == 0:
            self.pool = <Payload *>self._grow(self.pool, 2 * old * sizeof(Payload))
            self.free_slots = <int *>self._grow(self.free_slots, 2 * old * sizeof(int))
            self.pool_cap = 2 * old
            for k in range(old):
                self.free_slots[k] = 2 * old - 1 - k
            self.nfree = old
        self.nfree -= 1
        return self.free_slots[self.nfree]

    cdef void *_grow(self, void *p, size_t n) except NULL:
        cdef void *q = realloc(p, n)
        if q == NULL:
            raise MemoryError()
        return q

    cdef int _push(self, int64_t t, int kind, int k, int slot) except -1:
        cdef int64_t i, parent
        cdef Ev e
        if self.nheap == self.heap_cap:
            self.heap = <Ev *>self._grow(self.heap, 2 * self.heap_cap * sizeof(Ev))
            self.heap_cap *= 2
        e.t, e.seq, e.kind, e.k, e.slot = t, self.seq, kind, k, slot
        self.seq += 1
        i = self.nheap
        self.nheap += 1
        while i > 0:
            parent = (i - 1) >> 1
            if not _before(&e, &self.heap[parent]):
                break
            self.heap[i] = self.heap[parent]
            i = parent
        self.heap[i] = e
        return 0

    cdef Ev _pop(self) noexcept:
        cdef Ev top = self.heap[0], last
        cdef int64_t i = 0, c, n
        self.nheap -= 1
        n = self.nheap
        if n > 0:
            last = self.heap[n]
            while True:
                c = 2 * i + 1
                if c >= n:
                    break
                if c + 1 < n and _before(&self.heap[c + 1], &self.heap[c]):
                    c += 1
                if not _before(&self.heap[c], &last):
                    break
                self.heap[i] = self.heap[c]
                i = c
            self.heap[i] = last
        return top

    cdef int _push_exec(self, int64_t t, const ExecRecord *e) except -1:
        cdef int slot = self._slot()
        self.pool[slot].x = e[0]
        return self._push(t, EXEC_LOCAL, -1, slot)

    cdef int _drain(self, int64_t t) except -1:
        cdef int j, n = self.me.n_exec
        for j in range(n):
            self._push_exec(t, &self.me.ex[j])
        self.me.n_exec = 0
        return 0

    # ---------------------------------------------------------------- the loop
    cdef bint _next_market(self, int64_t *t, int64_t *seq, int *kind, int *k, int64_t *i) noexcept:
        """The earliest market event not yet processed, by (time, sequence); False if none."""
        cdef int kk
        cdef int64_t idx, tt, ss
        cdef bint found = False
        for kk in range(self.nk):
            if self.pos_x[kk] < self.n_msg[kk]:
                idx = self.order[kk][self.pos_x[kk]] if self.order[kk] != NULL else self.pos_x[kk]
                tt, ss = self.times[kk][idx], self.base[kk] + 2 * idx
                if not found or tt < t[0] or (tt == t[0] and ss < seq[0]):
                    t[0], seq[0], kind[0], k[0], i[0], found = tt, ss, MKT_EXCH, kk, idx, True
            if self.pos_l[kk] < self.n_msg[kk]:
                idx = self.order[kk][self.pos_l[kk]] if self.order[kk] != NULL else self.pos_l[kk]
                tt, ss = self.times[kk][idx] + self.feed_ns, self.base[kk] + 2 * idx + 1
                if not found or tt < t[0] or (tt == t[0] and ss < seq[0]):
                    t[0], seq[0], kind[0], k[0], i[0], found = tt, ss, MKT_LOCAL, kk, idx, True
        return found

    def run(self):
        cdef int64_t t = 0, next_grid = 0, i = 0, mt = 0, mseq = 0
        cdef int kind, k, slot, mkind = 0, mk = 0
        cdef bint have_grid = False, market
        cdef Ev ev
        market = self._next_market(&mt, &mseq, &mkind, &mk, &i)
        while market or self.nheap:
            if market and (self.nheap == 0 or mt <= self.heap[0].t):
                t, kind, k = mt, mkind, mk
                slot = -1
                if kind == MKT_EXCH:
                    self.pos_x[k] += 1
                else:
                    self.pos_l[k] += 1
            else:
                ev = self._pop()
                t, kind, k, slot = ev.t, ev.kind, ev.k, ev.slot
            if not have_grid:
                next_grid = (t // EQUITY_GRID_NS + 1) * EQUITY_GRID_NS
                have_grid = True
            while t >= next_grid:
                self.equity_t.append(next_grid)
                self.equity_v.append(self.book.equity())
                next_grid += EQUITY_GRID_NS
            if kind == MKT_EXCH:
                self._exch(k, i, t)
            elif kind == MKT_LOCAL:
                self._local(k, i, t)
            elif kind == ORDER_ARRIVE:
                self._arrive(k, slot, t)
            else:
                self._exec_local(slot, t)
            if slot >= 0:
                self.free_slots[self.nfree] = slot
                self.nfree += 1
            else:
                market = self._next_market(&mt, &mseq, &mkind, &mk, &i)
        if have_grid:
            self.equity_t.append(next_grid)
            self.equity_v.append(self.book.equity())

    cdef int _exch(self, int k, int64_t i, int64_t t) except -1:
        cdef int64_t j, s = self.starts[k][i], e = self.ends[k][i]
        cdef MarketRecord *r = self.recs[k]
        for j in range(s, e):
            self.me.on_record(&r[j])
            if r[j].kind == MK_DEPTH or r[j].kind == MK_TRADE:
                self.events += 1
            elif r[j].kind == MK_MARK or r[j].kind == MK_FUNDING:
                self.funding_rate[k] = <double>r[j].aux2 / 1e9
        self._drain(t + self.ack_ns)
        if not self.has_funding[k]:
            self.next_funding[k] = (t // FUNDING_PERIOD_NS + 1) * FUNDING_PERIOD_NS
            self.has_funding[k] = True
        if t >= self.next_funding[k] and self.mid_of[k] > 0:
            self.host._funding(k, self.next_funding[k], self.funding_rate[k], self.mid_of[k])
            self.next_funding[k] += FUNDING_PERIOD_NS
        return 0

    cdef int _local(self, int k, int64_t i, int64_t t) except -1:
        cdef BookTop *top = &self.tops[k][i]
        cdef int64_t bb = top.bid_px[0], ba = top.ask_px[0], mid = 0
        cdef bint valid = not (top.flags & F_BOOK_INVALID) and bb > 0 and ba > bb
        cdef int inst = self.inst_of[k], j, n
        cdef Position pos = <Position>self.positions[k]
        cdef InstRisk *r
        cdef double signal = 0.0
        cdef CompiledStrategy cs
        cdef OrderRecord buf[MAX_INTENTS]
        cdef OrderRecord[::1] v
        if self.has_last[k]:
            self.inv_area[k] += <double>(_abs(pos.qty) * (t - self.last_t[k])) / 1e9
        self.last_t[k] = t
        self.has_last[k] = True
        if valid:
            mid = (bb + ba) // 2
            self.mid_of[k] = mid
            r = self.st._get(inst)
            r.mark_px, r.mark_ns, r.data_ns, r.book_valid = mid, t, t, True
            self.book.on_mark(inst, mid)
        if self.hook[k]:
            signal = self.host._local(k, i, t, valid, mid)
        if self.compiled[k] is not None:
            cs = <CompiledStrategy>self.compiled[k]
            n = cs.quote(t, bb, ba, valid, signal, buf, MAX_INTENTS)
            for j in range(n):
                buf[j].mono_origin = t
                self._gate(k, &buf[j], t)
        else:
            fe = self.features[k]
            for it in self.strategies[k].on_market(t, bb, ba, fe.out, fe.ready, valid, signal):
                v = it
                if v.shape[0] != 1:
                    raise ValueError(f"strategy {type(self.strategies[k]).__name__}: an intent is one ORDER_DTYPE "
                                     f"record, got {v.shape[0]}")
                v[0].mono_origin = t
                self._gate(k, &v[0], t)
        return 0

    cdef int _gate(self, int k, OrderRecord *it, int64_t t) except -1:
        cdef OrderRecord order
        cdef RejectRecord rej
        cdef ExecRecord e
        cdef int slot
        cdef int64_t lat
        if it.action != ACT_NEW and it.action != ACT_CANCEL:
            # the sim models new orders and cancels; a replace or cancel-all would leave the
            # PositionBook believing in orders the venue never changed: refused before the book
            self.rejects += 1
            self.reject_reasons["unsupported_action"] = self.reject_reasons.get("unsupported_action", 0) + 1
            memset(&e, 0, sizeof(ExecRecord))
            e.kind, e.client_id, e.inst, e.side, e.reason = EX_REJECT, it.client_id, self.inst_of[k], it.side, -1100
            self._to_strategy(k, &e)
            return 0
        if not self.gate.check_ptr(it, self.st, t, &order, &rej):
            self.rejects += 1
            self.reject_reasons[rej.reason] = self.reject_reasons.get(rej.reason, 0) + 1
            memset(&e, 0, sizeof(ExecRecord))
            e.kind, e.client_id, e.inst = EX_REJECT, it.client_id, self.inst_of[k]
            self._to_strategy(k, &e)
            return 0
        self.book.order_sent(order.action, order.client_id, order.ref_client_id, order.inst, order.side,
                             order.px, order.qty)
        self.orders_sent += 1
        lat = self.host._order_latency() if self.order_drawn else self.order_ns
        slot = self._slot()
        self.pool[slot].o = order
        self._push(t + lat, ORDER_ARRIVE, k, slot)
        return 0

    cdef int _arrive(self, int k, int slot, int64_t t) except -1:
        cdef OrderRecord o = self.pool[slot].o
        cdef ExecRecord e
        cdef int res, reason = 0
        cdef int inst = self.inst_of[k]
        if o.action == ACT_NEW:
            res = self.me.submit_c(o.client_id, o.client_id, inst, o.side, o.otype, o.px, o.qty, o.flags, t)
            if res == SUBMIT_POST_ONLY_REJECTED:
                reason = -5022            # Binance: post-only order would take
            elif res == SUBMIT_NO_SLOT:
                reason = -1015            # too many orders
            elif res == SUBMIT_BAD:
                reason = -1102            # malformed
        else:                             # ACT_CANCEL (_gate lets nothing else through)
            self.me.cancel_c(o.ref_client_id, t)
        if reason:
            memset(&e, 0, sizeof(ExecRecord))
            e.kind, e.client_id, e.inst, e.side, e.reason = EX_REJECT, o.client_id, inst, o.side, reason
            self._push_exec(t + self.ack_ns, &e)
        self._drain(t + self.ack_ns)
        return 0

    cdef int _exec_local(self, int slot, int64_t t) except -1:
        cdef ExecRecord e = self.pool[slot].x
        cdef int k = self.k_of_inst[e.inst]
        cdef Position pos = <Position>self.positions[k]
        cdef bint maker
        cdef int64_t dq
        if e.kind == EX_PARTIAL or e.kind == EX_FILL:
            maker = e.liquidity == LIQ_MAKER
            e.fee = <double>(e.px * e.qty) * self.value[k] * (self.maker_fee if maker else self.taker_fee)
            if self.has_last[k]:
                self.inv_area[k] += <double>(_abs(pos.qty) * (t - self.last_t[k])) / 1e9
                self.last_t[k] = t
            self.book.execution(e.kind, e.client_id, e.inst, e.side, e.px, e.qty, e.leaves_qty, e.fee)
            if _abs(pos.qty) > self.inv_max[k]:
                self.inv_max[k] = _abs(pos.qty)
            dq = e.qty if e.side == SIDE_BUY else -e.qty
            self.host._fill(k, t, e.client_id >> 40, dq, e.px, e.fee, maker, pos.qty)
        else:
            self.book.execution(e.kind, e.client_id, e.inst, e.side, e.px, e.qty, e.leaves_qty, e.fee)
        self._to_strategy(k, &e)
        return 0

    cdef int _to_strategy(self, int k, ExecRecord *e) except -1:
        cdef CompiledStrategy cs
        if self.compiled[k] is not None:
            cs = <CompiledStrategy>self.compiled[k]
            cs.execution(e)
        else:
            from engine.schema import EXEC_DTYPE
            a = np.zeros(1, EXEC_DTYPE)
            (<ExecRecord *><size_t>a.ctypes.data)[0] = e[0]
            self.strategies[k].on_exec(a[0])
        return 0

    def per_instrument(self):
        """[(inventory area in lots x s, max |position| in lots, last local time or None)] per table"""
        return [(self.inv_area[k], self.inv_max[k], self.last_t[k] if self.has_last[k] else None)
                for k in range(self.nk)]
