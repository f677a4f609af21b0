# Compiled strategies: the backtester's event loop (cext.backtest) calls them without
# Python in between; engine processes call the same objects through their Python methods.

from libc.stdint cimport int64_t, uint64_t
from cext.schema cimport OrderRecord, ExecRecord

cdef class CompiledStrategy:
    cdef int quote(self, int64_t ts, int64_t bb, int64_t ba, bint valid, double signal,
                   OrderRecord *out, int cap) except -1
    cdef void execution(self, const ExecRecord *e) noexcept

cdef class TouchQuoter(CompiledStrategy):
    cdef readonly int inst
    cdef readonly int64_t lots
    cdef readonly int64_t max_pos
    cdef readonly int64_t behind
    cdef readonly int strategy_id
    cdef readonly uint64_t owner
    cdef public uint64_t next_id
    cdef public int64_t position
    cdef public int64_t quotes_sent
    cdef public int64_t cancels_sent
    cdef uint64_t q_id[3]         # by side (1 buy, 2 sell): the quote's client id, 0 = none
    cdef int64_t q_px[3]
    cdef void _intent(self, OrderRecord *a, int action, int side, int64_t px, int64_t lots, int64_t ts,
                      uint64_t ref) noexcept

cdef class MarketMaker:
    cdef readonly int inst
    cdef readonly double tick
    cdef readonly int64_t quote_lots
    cdef readonly int64_t max_inv
    cdef readonly double gamma
    cdef readonly double kappa
    cdef readonly double tau
    cdef readonly double skew
    cdef readonly int64_t min_change
    cdef readonly int strategy_id
    cdef readonly uint64_t owner
    cdef readonly int64_t backoff_ns
    cdef public uint64_t next_id
    cdef public int64_t inventory
    cdef public int64_t quotes_sent
    cdef public int64_t cancels_sent
    cdef public int64_t quiet_until     # after a rejection: no new quotes before this time
    cdef public int64_t now
    cdef uint64_t q_id[3]               # by side (1 buy, 2 sell): the quote's client id, 0 = none
    cdef int64_t q_px[3]
    cdef int64_t q_lots[3]

    cdef void _intent(self, OrderRecord *a, int action, int side, int64_t px, int64_t lots, int64_t ts,
                      uint64_t ref, double score) noexcept
    cdef void _prices(self, double mid, double sigma, double signal, double *lo, double *hi) noexcept
    cdef int _quote(self, int64_t ts, int64_t bb, int64_t ba, double rvol, bint usable, double signal,
                    OrderRecord *out) noexcept
    cdef int quote_ptr(self, int64_t ts, int64_t bb, int64_t ba, const double *f, const unsigned char *ready,
                       Py_ssize_t n, bint valid, double signal, OrderRecord *out) noexcept
    cdef int rehearse_ptr(self, int64_t ts, int64_t bb, int64_t ba, const double *f, const unsigned char *ready,
                          Py_ssize_t n, bint valid, double signal, OrderRecord *out) noexcept
