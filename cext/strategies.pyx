# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Strategies compiled to C, for the backtester's event loop (cext.backtest): it calls
``quote`` and ``execution`` directly, with no Python object per message. Each one is also a
normal strategy component: ``on_market(ts, bb, ba, features, ready, valid, signal)``
returns the intents as 1-element ORDER_DTYPE arrays and ``on_exec(record)`` takes an
execution report, as the Python strategies in engine/strategies do.

A compiled strategy reads the top of the book and the model's signal, not the feature
vector (the backtester then skips the feature engine for its instrument unless a model
needs it).
"""
import numpy as np

from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memset

from cext.schema cimport OrderRecord, ExecRecord

cdef enum:
    SIDE_BUY = 1
    SIDE_SELL = 2
    ACT_NEW = 1
    ACT_CANCEL = 2
    OT_POST_ONLY = 2
    EX_REJECT = 2
    EX_PARTIAL = 3
    EX_FILL = 4
    EX_CANCELED = 5
    EX_EXPIRED = 6
    MAX_INTENTS = 16


cdef class CompiledStrategy:
    """Base: subclasses implement ``quote`` (write at most ``cap`` intents to ``out``, return
    how many) and ``execution``."""

    cdef int quote(self, int64_t ts, int64_t bb, int64_t ba, bint valid, double signal,
                   OrderRecord *out, int cap) except -1:
        # the base has no rule of its own: a subclass that forgets quote() fails loudly
        raise TypeError(f"{type(self).__name__} is a CompiledStrategy without a quote() of its own")

    cdef void execution(self, const ExecRecord *e) noexcept:
        pass

    def on_market(self, int64_t ts, int64_t bb, int64_t ba, f, ready, bint valid, double signal=0.0):
        from engine.schema import ORDER_DTYPE
        cdef OrderRecord buf[MAX_INTENTS]
        cdef int i, n = self.quote(ts, bb, ba, valid, signal, buf, MAX_INTENTS)
        out = []
        for i in range(n):
            a = np.zeros(1, ORDER_DTYPE)
            (<OrderRecord *><size_t>a.ctypes.data)[0] = buf[i]
            out.append(a)
        return out

    def on_exec(self, e):
        cdef ExecRecord r
        memset(&r, 0, sizeof(ExecRecord))
        r.kind, r.side, r.inst = int(e["kind"]), int(e["side"]), int(e["inst"])
        r.client_id, r.px, r.qty, r.leaves_qty = int(e["client_id"]), int(e["px"]), int(e["qty"]), int(e["leaves_qty"])
        r.reason = int(e["reason"])
        self.execution(&r)


cdef class TouchQuoter(CompiledStrategy):
    """The simplest market-making rule, for comparisons with other backtesters.

    One bid one tick behind the best bid and one ask one tick behind the best ask (post-only,
    ``quote_lots`` each); when the wanted price of a side changes, cancel and replace it; no
    new order on a side that would take the position beyond ``max_position_lots``. No
    features, no model: it needs only a valid book."""

    def __init__(self, int inst, *, int64_t quote_lots=1, int64_t max_position_lots=10, int64_t behind_ticks=1,
                 int strategy_id=4, uint64_t client_id_base=4 << 40):
        if quote_lots <= 0 or max_position_lots < quote_lots or behind_ticks < 0:
            raise ValueError("TouchQuoter: quote_lots > 0, max_position_lots >= quote_lots, behind_ticks >= 0")
        self.inst, self.lots, self.max_pos, self.behind = inst, quote_lots, max_position_lots, behind_ticks
        self.strategy_id = strategy_id
        self.next_id = client_id_base
        self.owner = client_id_base >> 40

    @property
    def quotes(self):
        """side -> (client id, px) of the working quote, or None"""
        return {s: ((self.q_id[s], self.q_px[s]) if self.q_id[s] else None) for s in (SIDE_BUY, SIDE_SELL)}

    cdef void _intent(self, OrderRecord *a, int action, int side, int64_t px, int64_t lots, int64_t ts,
                      uint64_t ref) noexcept:
        memset(a, 0, sizeof(OrderRecord))
        a.action, a.side, a.otype, a.inst = action, side, OT_POST_ONLY, self.inst
        a.client_id, a.ref_client_id, a.px, a.qty = self.next_id, ref, px, lots
        a.strategy, a.event_ts = self.strategy_id, ts
        self.next_id += 1

    cdef int quote(self, int64_t ts, int64_t bb, int64_t ba, bint valid, double signal,
                   OrderRecord *out, int cap) except -1:
        cdef int n = 0, side
        cdef int64_t want[3]
        want[SIDE_BUY] = bb - self.behind if self.position + self.lots <= self.max_pos else 0
        want[SIDE_SELL] = ba + self.behind if self.position - self.lots >= -self.max_pos else 0
        if not valid or bb <= 0 or ba <= bb:
            want[SIDE_BUY] = want[SIDE_SELL] = 0
        for side in range(SIDE_BUY, SIDE_SELL + 1):
            if self.q_id[side] and self.q_px[side] == want[side]:
                continue
            if self.q_id[side]:
                self._intent(&out[n], ACT_CANCEL, side, self.q_px[side], 0, ts, self.q_id[side])
                n += 1
                self.cancels_sent += 1
                self.q_id[side] = 0
            if want[side] > 0:
                self.q_id[side], self.q_px[side] = self.next_id, want[side]
                self._intent(&out[n], ACT_NEW, side, want[side], self.lots, ts, 0)
                n += 1
                self.quotes_sent += 1
        return n

    cdef void execution(self, const ExecRecord *e) noexcept:
        cdef int side
        if e.client_id >> 40 != self.owner:
            return
        if e.kind == EX_PARTIAL or e.kind == EX_FILL:
            self.position += e.qty if e.side == SIDE_BUY else -e.qty
        if e.kind == EX_FILL or e.kind == EX_CANCELED or e.kind == EX_EXPIRED or e.kind == EX_REJECT:
            for side in range(SIDE_BUY, SIDE_SELL + 1):
                if self.q_id[side] == e.client_id:
                    self.q_id[side] = 0
