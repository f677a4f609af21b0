# Order requests built and signed in C (cext/orderwire.pyx): the fused decision path
# (cext.hotpath) builds them without Python in between.

from libc.stdint cimport int64_t, uint64_t, uint32_t, uint8_t
from cext.schema cimport OrderRecord

cdef struct Sha256:
    uint32_t h[8]
    uint64_t n             # bytes hashed so far
    uint8_t buf[64]
    int used               # bytes in buf

cdef enum:
    MAXREQ = 1024          # the longest request is ~450 bytes (31-character symbol, 19-digit numbers)

cdef struct Inst:
    char symbol[32]
    int symbol_len
    int price_decimals
    int qty_decimals
    int64_t tick_units
    int64_t lot_units

cdef class HmacSha256:
    cdef Sha256 inner
    cdef Sha256 outer
    cdef void hex_into(self, const uint8_t *msg, Py_ssize_t n, char *out) noexcept nogil

cdef class WriteHold:
    cdef public double until

cdef class OrderEncoder:
    cdef HmacSha256 mac
    cdef bytes head_new        # "POST {prefix}/fapi/v1/order?"
    cdef bytes head_cancel     # "DELETE {prefix}/fapi/v1/order?"
    cdef bytes tail            # " HTTP/1.1\r\nHost: ..\r\nX-MBX-APIKEY: ..\r\nContent-Length: 0\r\n\r\n"
    cdef bytes cprefix         # client order id prefix ("cs")
    cdef Inst *insts
    cdef int n_insts
    cdef dict index            # inst id -> index into insts
    cdef public int64_t time_offset_ms
    cdef readonly int recv_window
    cdef char buf[MAXREQ]

    cdef const OrderRecord *_record(self, order, Py_buffer *b) except NULL
    cdef Inst *_inst(self, uint32_t inst) except NULL
    cdef object build(self, const OrderRecord *o)
    cdef bytes _new(self, const OrderRecord *o)
    cdef bytes _cancel(self, const OrderRecord *o)
    cdef int _cid(self, int n, uint64_t cid) noexcept
    cdef bytes _finish(self, bytes head, int n)
