# Market-data validation before anything reaches a strategy. Every check is a counter.

from libc.stdint cimport int64_t, uint64_t, uint32_t
from cext.schema cimport MarketRecord

cdef enum:
    V_OK = 0
    V_NONPOSITIVE = 1        # price <= 0 or quantity < 0 (drop)
    V_FUTURE_TS = 2          # exchange time ahead of our clock beyond the bound (drop)
    V_TS_BACKWARDS = 3       # exchange time went backwards for this instrument and kind (drop; depth: counted only)
    V_RECV_LAG = 4           # received later than the bound after exchange time (counted, passed)
    V_PRICE_JUMP = 5         # |log return| > k sigma of recent returns (drop until confirmed)
    V_VOLUME_SPIKE = 6       # trade size > k x its recent average (counted, flagged, passed)
    V_CROSSED = 7            # BBO with bid >= ask (drop)
    V_STALE = 8              # no update within the bound (from check_stale)
    V_UNKNOWN_INST = 9       # instrument id beyond the configured range (drop)
    V_JUMP_CONFIRMED = 10    # a jump that persisted and was accepted as the new level
    N_CHECKS = 11

cdef struct InstState:
    int64_t last_ts[9]       # last exchange time per market kind
    int64_t last_mono        # last update seen (mono clock)
    double ref_px            # last accepted price (ticks)
    double ewm_var           # EWMA of squared log returns
    int64_t n_returns        # returns seen (warm-up)
    double pending_px        # candidate level of an unconfirmed jump
    int pending_n            # consecutive events confirming it
    double ewm_qty           # EWMA of trade size (lots)
    int64_t n_trades
    bint stale

cdef class Validator:
    cdef InstState *st
    cdef readonly int n_inst
    cdef readonly int64_t clock_offset_ns   # added to a record's mono_origin to get wall time
    cdef readonly int64_t max_future_ns
    cdef readonly int64_t max_lag_ns
    cdef readonly int64_t stale_after_ns
    cdef readonly double jump_k
    cdef readonly double jump_min
    cdef readonly int jump_warmup
    cdef readonly int jump_confirm
    cdef readonly double ewm_alpha
    cdef readonly double spike_k
    cdef readonly int spike_warmup
    cdef uint64_t counts[11]
    cdef readonly uint64_t checked
    cdef public object results              # check_records: the last call's result per record (uint8)

    cdef int check(self, MarketRecord *r) noexcept nogil
    cdef int _price(self, InstState *s, double px) noexcept nogil
