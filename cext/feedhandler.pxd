# The feed's frame handler, compiled (cext/feedhandler.pyx): the fused engine's compiled
# path (cext.hotpath.FeedPath) runs a frame through it and reads the result in place.

from libc.stdint cimport int64_t, uint64_t, uint32_t
from cext.schema cimport MarketRecord
from cext.binance cimport BinanceParser
from cext.validate cimport Validator

cdef class FeedHandler:
    cdef readonly dict instruments, by_symbol, books, syncs
    cdef list _syncs                    # inst -> its BinanceBookSync or None
    cdef readonly BinanceParser parser
    cdef readonly Validator validator
    cdef readonly object _buf, _out     # record buffers (MARKET_DTYPE): parsed records, a status record
    cdef MarketRecord *buf
    cdef MarketRecord *status
    cdef int cap
    cdef readonly set snapshot_needed
    cdef public uint64_t dropped
    cdef int _log_first, _log_every
    cdef dict _logged
    cdef public object ring             # RingWriter of MARKET records, or None
    cdef public object book_region      # Region of BOOK_TOP records (slot = inst), or None
    cdef public uint64_t published
    cdef public int64_t t_parse         # CLOCK_MONOTONIC ns: the last frame parsed (latency stamps)
    # the last frame's result (frame_ptr)
    cdef MarketRecord *res_recs
    cdef readonly Py_ssize_t res_n
    cdef readonly int res_sync
    cdef readonly int res_reject
    cdef bint res_status
    cdef int res_n_applied
    cdef int64_t res_applied_one
    cdef list res_applied

    cdef int frame_ptr(self, const char *p, Py_ssize_t n, int64_t mono, int default_spec, object frame) except -2
    cdef int _on_book(self, int k, int kind, uint32_t inst, int64_t mono) except -2
    cdef bint valid(self, int inst) noexcept
