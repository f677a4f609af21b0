# Positions, PnL and our open orders (the PositionBook), compiled so that the backtester's
# event loop calls it without Python in between; the same class runs live.

from libc.stdint cimport int64_t, uint64_t
from cext.risk cimport RiskState
from cext.schema cimport OrderRecord, ExecRecord

cdef struct Fill:
    int64_t qty          # the position after the fill, signed lots
    double entry         # its average entry, ticks
    double realized      # PnL realised by the fill, quote
    bint reduced         # the fill reduced (or closed, or flipped) the position

cdef Fill fill_position(int64_t qty, double entry, int64_t dq, int64_t px, double value) noexcept nogil

cdef class Position:
    cdef public double value_per_tick_lot
    cdef public int64_t qty
    cdef public double avg_px
    cdef public double realized
    cdef public double fees
    cdef public int64_t mark_px
    cdef public int64_t fills
    cdef public double funding

cdef class OpenOrder:
    cdef public int inst
    cdef public int side
    cdef public int64_t px
    cdef public int64_t leaves

cdef class PositionBook:
    cdef public RiskState state
    cdef public double balance
    cdef readonly dict positions        # inst -> Position (add_instrument)
    cdef list _held                     # its values, in order (equity without a dict walk)
    cdef public dict orders             # client id -> OpenOrder (resting or in flight)
    cdef public int64_t consecutive_losses
    cdef public int64_t losses_total
    cdef public int64_t trades_total

    cdef void order_sent(self, int action, uint64_t client_id, uint64_t ref_client_id, int inst, int side,
                         int64_t px, int64_t qty) except *
    cdef void order_in_flight(self, const OrderRecord *o) noexcept nogil
    cdef void execution(self, int kind, uint64_t client_id, int inst, int side, int64_t px, int64_t qty,
                        int64_t leaves, double fee) except *
    cdef void _fill(self, int inst, int side, int64_t px, int64_t qty, double fee) except *
    cdef void _sync(self, int inst) except *
    cpdef void on_mark(self, int inst, int64_t mark_px) except *
    cdef void mark(self, Position p, int64_t mark_px) except *
    cpdef double unrealized(self, int inst) except? -1e300
    cpdef double equity(self) except? -1e300
    cdef void _update_equity(self) except *
