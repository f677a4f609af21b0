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
from libc.string cimport memcpy, memset

from cext.schema cimport OrderRecord, ExecRecord, SIDE_BUY, SIDE_SELL, ACT_NEW, ACT_CANCEL, OT_POST_ONLY

cdef enum:
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
        cdef OrderRecord buf[MAX_INTENTS]
        return _records(buf, self.quote(ts, bb, ba, valid, signal, buf, MAX_INTENTS))

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


# ---------------------------------------------------------------- market making
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_ANY_CONTIGUOUS, PyBUF_FORMAT
from cpython.bytearray cimport PyByteArray_FromStringAndSize
from libc.math cimport floor, ceil, log, sqrt, isfinite

cdef int RVOL_60S = 3
cdef int[7] MM_USES = [3, 10, 11, 12, 13, 14, 15]     # rvol_60s and the book features
cdef int N_FEATURES_MIN = 16

_ORDER_DTYPE = None
_frombuffer = np.frombuffer


cdef object _records(OrderRecord *buf, int n):
    """n intents as a list of 1-element ORDER_DTYPE arrays (what every strategy returns),
    each over a bytearray of its record: ~0.4 us each, where numpy's own allocation of an
    array of this many-field dtype (np.empty) costs ~2 us."""
    global _ORDER_DTYPE
    cdef int i
    if _ORDER_DTYPE is None:
        from engine.schema import ORDER_DTYPE
        _ORDER_DTYPE = ORDER_DTYPE
    out = []
    for i in range(n):
        out.append(_frombuffer(PyByteArray_FromStringAndSize(<const char *>&buf[i], sizeof(OrderRecord)),
                               _ORDER_DTYPE))
    return out


cdef class MarketMaker:
    """Market making around an Avellaneda-Stoikov reservation price, compiled.

    In ticks and lots: reservation r = mid - q * gamma * sigma^2 * tau, half-spread
    h = (gamma * sigma^2 * tau + (2 / gamma) * ln(1 + gamma / kappa)) / 2, where q is the
    inventory in lots, sigma the mid's volatility in ticks per sqrt(second) (from the 60-s
    realised volatility feature), tau the horizon in seconds, kappa the order-flow intensity
    decay per tick. A model signal in [-1, 1] moves r by ``skew_ticks`` x signal. Quotes are
    post-only, one bid and one ask of ``quote_lots``, never crossing the touch; a side is
    dropped at the inventory limit. A quote is replaced only when its price moves by at
    least ``min_change_ticks`` or its size changes (no churn). Nothing is quoted (and the
    working quotes are pulled) until the features it uses (rvol_60s and the six book
    features) are ready, finite, and the book is valid.

    Units: with BTCUSDT (tick 0.10) a 1-minute volatility of 0.05% is ~39 ticks per
    sqrt(second), sigma^2 ~ 1,500; gamma = 1e-4 then gives a half-spread of ~1.4 ticks and
    moves the reservation price ~1.5 ticks per lot held for tau = 10 s.

    A strategy of the Python kind (``on_market`` with the feature vector, ``on_exec``): the
    per-message rule runs in C (the engine calls it on every market message), intents come
    back as 1-element ORDER_DTYPE arrays.
    """
    # attributes: cext/strategies.pxd

    def __init__(self, int inst, double tick_size, *, int64_t quote_lots=10, int64_t max_inventory_lots=50,
                 double gamma=1e-4, double kappa=1.5, double horizon_s=10.0, double skew_ticks=2.0,
                 int64_t min_change_ticks=2, int64_t reject_backoff_ms=1000, int strategy_id=1,
                 uint64_t client_id_base=1 << 40):
        if quote_lots <= 0 or max_inventory_lots < quote_lots or not gamma > 0 or not kappa > 0 or not horizon_s > 0:
            raise ValueError("MarketMaker: quote_lots > 0, max_inventory_lots >= quote_lots, gamma, kappa, horizon_s > 0")
        self.inst, self.tick = inst, tick_size
        self.quote_lots, self.max_inv = quote_lots, max_inventory_lots
        self.gamma, self.kappa, self.tau = gamma, kappa, horizon_s
        self.skew, self.min_change = skew_ticks, min_change_ticks
        self.strategy_id = strategy_id
        self.next_id = client_id_base
        self.owner = client_id_base >> 40       # client ids [base, base + 2^40) are ours
        self.backoff_ns = reject_backoff_ms * 1_000_000

    @property
    def quotes(self):
        """side -> (client id, px, lots) of the working quote, or None"""
        return {s: ((self.q_id[s], self.q_px[s], self.q_lots[s]) if self.q_id[s] else None)
                for s in (SIDE_BUY, SIDE_SELL)}

    cdef void _intent(self, OrderRecord *a, int action, int side, int64_t px, int64_t lots, int64_t ts,
                      uint64_t ref, double score) noexcept:
        memset(a, 0, sizeof(OrderRecord))
        a.action, a.side, a.otype, a.inst = action, side, OT_POST_ONLY, self.inst
        a.client_id, a.ref_client_id, a.px, a.qty = self.next_id, ref, px, lots
        a.strategy, a.score, a.event_ts = self.strategy_id, score, ts
        self.next_id += 1

    cdef void _prices(self, double mid, double sigma, double signal, double *lo, double *hi) noexcept:
        cdef double g = self.gamma, s2 = sigma * sigma, r, half
        # the signal clamped to [-1, 1] (NaN counts as 0: no model opinion, no skew)
        if not (signal == signal):
            signal = 0.0
        signal = 1.0 if signal > 1.0 else (-1.0 if signal < -1.0 else signal)
        r = mid - <double>self.inventory * g * s2 * self.tau + self.skew * signal
        half = 0.5 * (g * s2 * self.tau + (2.0 / g) * log(1.0 + g / self.kappa))
        lo[0], hi[0] = r - half, r + half

    def quote_prices(self, double mid_ticks, double sigma_ticks, double signal=0.0):
        """(bid, ask) before rounding to ticks and to the touch."""
        cdef double lo, hi
        self._prices(mid_ticks, sigma_ticks, signal, &lo, &hi)
        return lo, hi

    cdef int _quote(self, int64_t ts, int64_t bb, int64_t ba, double rvol, bint usable, double signal,
                    OrderRecord *out) noexcept:
        cdef int n = 0, side
        cdef double mid, sigma, lo = 0, hi = 0
        cdef int64_t px[3]
        cdef int64_t lots[3]
        self.now = ts
        if usable and bb > 0 and ba > bb:
            mid = 0.5 * <double>(bb + ba)
            sigma = rvol / sqrt(60.0) * mid              # rvol_60s -> ticks per sqrt(second)
            self._prices(mid, sigma, signal, &lo, &hi)
            usable = isfinite(lo) and isfinite(hi) and -9e18 < lo < 9e18 and -9e18 < hi < 9e18
        else:
            usable = False
        if not usable:                                   # cannot quote safely: pull quotes
            for side in range(SIDE_BUY, SIDE_SELL + 1):
                if self.q_id[side]:
                    self._intent(&out[n], ACT_CANCEL, side, self.q_px[side], 0, ts, self.q_id[side], 0.0)
                    n += 1
                    self.cancels_sent += 1
                    self.q_id[side] = 0
            return n
        px[SIDE_BUY] = min(<int64_t>floor(lo), ba - 1)
        lots[SIDE_BUY] = self.quote_lots if self.inventory + self.quote_lots <= self.max_inv else 0
        px[SIDE_SELL] = max(<int64_t>ceil(hi), bb + 1)
        lots[SIDE_SELL] = self.quote_lots if self.inventory - self.quote_lots >= -self.max_inv else 0
        for side in range(SIDE_BUY, SIDE_SELL + 1):
            if self.q_id[side] and lots[side] and abs(self.q_px[side] - px[side]) < self.min_change \
                    and self.q_lots[side] == lots[side]:
                continue
            if self.q_id[side]:
                self._intent(&out[n], ACT_CANCEL, side, self.q_px[side], 0, ts, self.q_id[side], 0.0)
                n += 1
                self.cancels_sent += 1
                self.q_id[side] = 0
            if lots[side] and ts >= self.quiet_until:
                self.q_id[side], self.q_px[side], self.q_lots[side] = self.next_id, px[side], lots[side]
                self._intent(&out[n], ACT_NEW, side, px[side], lots[side], ts, 0, signal)
                n += 1
                self.quotes_sent += 1
        return n

    cdef int quote_ptr(self, int64_t ts, int64_t bb, int64_t ba, const double *f, const unsigned char *ready,
                       Py_ssize_t n, bint valid, double signal, OrderRecord *out) noexcept:
        """``on_market`` over the feature vector and its readiness flags in place (n values
        each; fewer than the rule reads counts as not usable): the intents into ``out``
        (room for 4), their count returned. The compiled decision path (cext.hotpath) calls it."""
        cdef double rvol = 0.0
        cdef bint usable = valid and _usable(f, ready, n, &rvol)
        return self._quote(ts, bb, ba, rvol, usable, signal, out)

    cdef int rehearse_ptr(self, int64_t ts, int64_t bb, int64_t ba, const double *f, const unsigned char *ready,
                          Py_ssize_t n, bint valid, double signal, OrderRecord *out) noexcept:
        """``quote_ptr`` for the CPU caches, changing nothing: the same code and records,
        then the strategy's state put back (its quotes, next client id, counters, clock)."""
        cdef uint64_t next_id = self.next_id
        cdef int64_t quotes = self.quotes_sent, cancels = self.cancels_sent, now = self.now
        cdef uint64_t q_id[3]
        cdef int64_t q_px[3]
        cdef int64_t q_lots[3]
        cdef int k
        memcpy(q_id, self.q_id, sizeof(q_id))
        memcpy(q_px, self.q_px, sizeof(q_px))
        memcpy(q_lots, self.q_lots, sizeof(q_lots))
        k = self.quote_ptr(ts, bb, ba, f, ready, n, valid, signal, out)
        self.next_id, self.quotes_sent, self.cancels_sent, self.now = next_id, quotes, cancels, now
        memcpy(self.q_id, q_id, sizeof(q_id))
        memcpy(self.q_px, q_px, sizeof(q_px))
        memcpy(self.q_lots, q_lots, sizeof(q_lots))
        return k

    def on_market(self, int64_t ts_ns, int64_t best_bid, int64_t best_ask, features, ready, bint book_valid,
                  double signal=0.0):
        """New quotes (and cancels of the ones they replace) for the current market:
        ``features`` the float64 feature vector, ``ready`` its bool readiness."""
        cdef OrderRecord buf[4]
        cdef _Vector v = _Vector(features, ready)
        return _records(buf, self.quote_ptr(ts_ns, best_bid, best_ask, v.f, v.r, v.n, book_valid, signal, buf))

    def rehearse(self, int64_t ts_ns, int64_t best_bid, int64_t best_ask, features, ready, bint book_valid,
                 double signal=0.0):
        """``on_market`` for the CPU caches, changing nothing (``rehearse_ptr``). Returns the
        intents it would have sent."""
        cdef OrderRecord buf[4]
        cdef _Vector v = _Vector(features, ready)
        return _records(buf, self.rehearse_ptr(ts_ns, best_bid, best_ask, v.f, v.r, v.n, book_valid, signal, buf))

    def on_exec(self, e):
        cdef int kind = int(e["kind"]), side
        cdef uint64_t cid = int(e["client_id"])
        cdef int64_t q
        if cid >> 40 != self.owner:
            return
        if kind == EX_PARTIAL or kind == EX_FILL:
            q = int(e["qty"])
            self.inventory += q if int(e["side"]) == SIDE_BUY else -q
        if kind == EX_REJECT:
            self.quiet_until = self.now + self.backoff_ns      # do not hammer a gate that said no
        if kind == EX_FILL or kind == EX_CANCELED or kind == EX_EXPIRED or kind == EX_REJECT:
            for side in range(SIDE_BUY, SIDE_SELL + 1):
                if self.q_id[side] == cid:
                    self.q_id[side] = 0


cdef bint _usable(const double *f, const unsigned char *r, Py_ssize_t n, double *rvol) noexcept:
    """The feature vector's rvol_60s into ``rvol``; True when it and the book features are
    ready (a vector shorter than the rule reads is not usable)."""
    cdef int i
    if n < N_FEATURES_MIN:
        return False
    for i in range(7):
        if not r[MM_USES[i]]:
            return False
    rvol[0] = f[RVOL_60S]
    return True


cdef class _Vector:
    """A feature vector and its readiness flags held as contiguous float64 / bool arrays
    (converted if they are not), their pointers, and how many values both have."""
    cdef object features, ready
    cdef const double *f
    cdef const unsigned char *r
    cdef Py_ssize_t n

    def __cinit__(self, features, ready):
        cdef Py_buffer fb, rb
        if not (_is_vec(features, b'd', 8) and _is_vec(ready, b'?', 1)):
            features = np.ascontiguousarray(features, dtype=np.float64)
            ready = np.ascontiguousarray(ready, dtype=np.bool_)
        PyObject_GetBuffer(features, &fb, PyBUF_ANY_CONTIGUOUS)
        try:
            PyObject_GetBuffer(ready, &rb, PyBUF_ANY_CONTIGUOUS)
            try:
                if fb.len < N_FEATURES_MIN * 8 or rb.len < N_FEATURES_MIN:
                    raise ValueError(f"MarketMaker: a feature vector of at least {N_FEATURES_MIN} values and "
                                     f"readiness flags, got {fb.len // 8} and {rb.len}")
                self.f, self.r, self.n = <const double *>fb.buf, <const unsigned char *>rb.buf, min(fb.len // 8, rb.len)
            finally:
                PyBuffer_Release(&rb)
        finally:
            PyBuffer_Release(&fb)
        self.features, self.ready = features, ready      # the pointers stay valid while these live


cdef bint _is_vec(a, char kind, Py_ssize_t itemsize):
    """A C-contiguous 1-D array of this numpy kind ('d' float64, '?' bool), native order."""
    cdef Py_buffer b
    cdef bint ok
    try:
        PyObject_GetBuffer(a, &b, PyBUF_ANY_CONTIGUOUS | PyBUF_FORMAT)
    except (TypeError, BufferError, ValueError):
        return False
    ok = b.ndim == 1 and b.itemsize == itemsize and b.format != NULL and \
        (b.format[0] == kind or ((b.format[0] == b'<' or b.format[0] == b'=' or b.format[0] == b'@')
                                 and b.format[1] == kind))
    PyBuffer_Release(&b)
    return ok
