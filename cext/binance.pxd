# Binance futures (USD-M and COIN-M) market-data parser: raw frame bytes -> MarketRecords.
# A byte scanner (no JSON library, no floats, no allocation per message); key order does
# not matter; unknown keys are skipped; a bad message is a counted rejection that emits
# nothing.

from libc.stdint cimport int64_t, uint64_t, uint32_t
from cext.schema cimport MarketRecord

cdef enum:
    R_OK = 0
    R_MALFORMED = 1           # not JSON, or truncated
    R_UNKNOWN_EVENT = 2       # an event type this parser does not handle
    R_UNKNOWN_SYMBOL = 3      # symbol not configured (or a snapshot without a default symbol)
    R_FIELD_TYPE = 4          # a known field with the wrong JSON type
    R_MISSING_FIELD = 5       # a field the event needs is absent
    R_BAD_NUMBER = 6          # not a decimal number, or out of range
    R_PRICE_OFF_GRID = 7      # not a multiple of the tick, or printed finer than the scale
    R_QTY_OFF_GRID = 8        # not a multiple of the lot, or printed finer than the scale
    R_NONPOSITIVE = 9         # price <= 0, negative quantity, zero trade quantity
    R_TOO_MANY_LEVELS = 10    # more levels than the output buffer holds
    R_UNSUPPORTED_STRING = 11 # a string with escapes where a value was expected
    N_REASONS = 12

ctypedef struct InstSpec:
    uint32_t inst
    int sym_len
    char symbol[32]
    int px_scale          # price decimals
    int64_t tick_units    # tick in units of 10^-px_scale
    int qty_scale
    int64_t lot_units

ctypedef struct Str:
    const char *p
    Py_ssize_t n

ctypedef struct Num:
    int64_t m             # the digits as an integer (sign applied)
    int d                 # digits after the decimal point

ctypedef struct Cur:
    const char *p
    const char *start
    const char *end
    int err

ctypedef struct Fields:
    uint64_t has
    int ev
    int64_t E, T, U, u, pu, t, aint, f, l, lui
    bint m
    Str s, bstr, B, astr, A, p, q, X, S, ap, z, i, r
    int bids_off, bids_n, asks_off, asks_n
    const char *o_start
    const char *o_end


cdef class BinanceParser:
    """Parses one frame (raw event, combined-stream wrapper, or REST depth snapshot)."""
    cdef InstSpec *specs
    cdef readonly int n_instruments
    cdef Num *levels              # scratch: price/qty numbers of the current message
    cdef readonly int max_levels
    cdef readonly uint64_t messages
    cdef uint64_t rejects[12]
    cdef uint64_t records_out
    cdef readonly int last_reject_offset   # byte offset where the last rejection was found

    cdef public list symbols

    cdef int find_spec(self, const char *sym, Py_ssize_t n) noexcept nogil
    cdef int _levels(self, Cur *c, int *off, int *count, int *used) noexcept nogil
    cdef int _object(self, Cur *c, Fields *F, int *used, bint inner) noexcept nogil
    cdef int _px(self, InstSpec *sp, Str *s, int64_t *out) noexcept nogil
    cdef int _qty(self, InstSpec *sp, Str *s, int64_t *out) noexcept nogil
    cdef void _rec(self, MarketRecord *o, int kind, int side, int flags, uint32_t inst,
                   int64_t seq, int64_t ts, int64_t mono) noexcept nogil
    cdef int _emit_levels(self, InstSpec *sp, Fields *F, int kind, int64_t seq, int64_t ts,
                          int64_t mono, MarketRecord *out, int cap) noexcept nogil
    cdef int _wrapped(self, Cur *c) noexcept nogil
    cdef int _reject(self, int reason, Cur *c) noexcept nogil
    cdef int parse_ptr(self, const char *buf, Py_ssize_t n, int64_t mono_origin,
                       MarketRecord *out, int cap, int default_spec) noexcept nogil
    cpdef int parse(self, object frame, int64_t mono_origin, object out, object default_symbol=*) except -100
