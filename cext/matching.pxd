# The simulated venue's matching core: the public book from market data, our orders with
# a queue position, fills as EXEC records. No I/O; the sim server and the backtester wrap it.

from libc.stdint cimport int64_t, uint64_t, uint32_t, uint8_t
from cext.book cimport OrderBook
from cext.schema cimport MarketRecord, ExecRecord

cdef struct SimOrder:
    int64_t order_id
    uint64_t client_id
    uint32_t inst
    uint8_t side          # SIDE_BUY / SIDE_SELL
    uint8_t otype
    uint8_t flags         # OF_REDUCE_ONLY
    uint8_t active
    int64_t px            # ticks
    int64_t qty           # original lots
    int64_t leaves
    int64_t cum
    int64_t queue_ahead   # lots ahead of us at our price
    int64_t time_ns
    int64_t seq           # arrival order among our orders (price-time priority)

cdef class MatchingEngine:
    cdef list books               # OrderBook per instrument
    cdef SimOrder *orders         # max_orders slots (all instruments)
    cdef readonly int max_orders
    cdef readonly int hw          # slots [0, hw) may hold active orders
    cdef readonly int n_inst
    cdef readonly int n_open
    cdef int64_t next_seq
    cdef int64_t next_trade_id
    cdef object _execs            # EXEC_DTYPE buffer
    cdef ExecRecord *ex
    cdef readonly int n_exec
    cdef readonly int exec_cap
    cdef readonly uint64_t events
    cdef readonly uint64_t fills
    cdef readonly double cancel_ahead_frac   # share of a level's cancels assumed ahead of us

    cdef void _exec(self, SimOrder *o, int kind, int64_t px, int64_t qty, int liq, int64_t ts) noexcept
    cdef void _fill_resting(self, SimOrder *o, int64_t px, int64_t qty, int64_t ts) noexcept
    cdef void _cross_check(self, uint32_t inst, int64_t best_bid, int64_t best_ask, int64_t ts) noexcept
    cdef void _shrink(self) noexcept
    cdef int64_t _ours_ahead(self, SimOrder *me) noexcept
    cdef int on_record(self, MarketRecord *r) noexcept
    cdef int submit_c(self, int64_t order_id, uint64_t client_id, uint32_t inst, int side, int otype, int64_t px,
                      int64_t qty, int flags, int64_t ts) except -1
    cdef bint cancel_c(self, int64_t order_id, int64_t ts) noexcept
