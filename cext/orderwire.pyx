# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Order requests on the wire, built and signed in C: ``OrderEncoder``.

The gateway's fast path writes a NEW or a CANCEL as one HTTP/1.1 request on an idle
keep-alive connection (engine/execution/http1.py). Built in Python (parameters dict,
query string, ``hmac`` copy / update / hexdigest, f-strings) that is ~15-20 us per order
with the code hot and 40+ us in the running engine; here it is one call of ~1 us.

The bytes are exactly those of the Python path (``BinanceRest.sign`` over
``OrderGateway._params`` / the cancel parameters, then ``OrderLinks.encode``):

    POST {prefix}/fapi/v1/order?symbol=..&side=..&type=..&quantity=..&newClientOrderId=..
         &newOrderRespType=ACK[&timeInForce=..&price=..][&reduceOnly=true]
         &timestamp=..&recvWindow=..&signature=<hex HMAC-SHA256 of the query> HTTP/1.1
    DELETE {prefix}/fapi/v1/order?symbol=..&origClientOrderId=..&timestamp=..&recvWindow=..&signature=..

(tests/unit/test_orderwire.py compares them byte for byte, and the HMAC with Python's
``hmac`` on random keys and messages). Every string that goes into the query (symbols,
the client-id prefix) is checked at construction to be made of URL-unreserved characters,
so nothing needs escaping; an encoder refuses anything else (ValueError), and the
gateway then keeps the Python path.

SHA-256 is FIPS 180-4, written out here (no OpenSSL headers are needed to build), its
blocks compressed with the CPU's SHA extensions where it has them (cext/sha256_ni.h, picked
at import; ~4x faster); HMAC (RFC 2104) keeps the key's inner and outer states, so a
signature is two short hashes.
"""
from libc.stdint cimport int64_t, uint64_t, uint32_t, uint8_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy, memset
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_ANY_CONTIGUOUS
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING

from cext.schema cimport (OrderRecord, SIDE_BUY, SIDE_SELL, OT_LIMIT, OT_POST_ONLY, OT_IOC, OT_MARKET, OT_FOK,
                          OF_REDUCE_ONLY, ACT_NEW, ACT_CANCEL)

cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    struct timespec:
        time_t tv_sec
        long tv_nsec
    int clock_gettime(int clk, timespec *ts)
    int CLOCK_REALTIME

# ---------------------------------------------------------------- SHA-256 (FIPS 180-4)

cdef uint32_t[8] H256 = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                         0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]

cdef inline uint32_t _rotr(uint32_t x, int k) noexcept nogil:
    return (x >> k) | (x << (32 - k))

cdef extern from "sha256_ni.h" nogil:
    const uint32_t cs_sha_k[64]
    int cs_sha_ni_init(int allow)
    void cs_sha256_block_ni(uint32_t *h, const uint8_t *p)

cdef int _sha_ni = cs_sha_ni_init(1)


def sha_kernel() -> str:
    """The SHA-256 rounds in use: "sha-ni" (the CPU's SHA extensions) or "portable"."""
    return "sha-ni" if _sha_ni else "portable"


def use_sha_ni(bint allow) -> str:
    """Allow (the default) or forbid the SHA extensions; returns ``sha_kernel()``. For tests
    and comparisons: both give the same digests."""
    global _sha_ni
    _sha_ni = cs_sha_ni_init(allow)
    return sha_kernel()


cdef inline void _block(Sha256 *s, const uint8_t *p) noexcept nogil:
    if _sha_ni:
        cs_sha256_block_ni(s.h, p)
    else:
        _block_c(s, p)


cdef void _block_c(Sha256 *s, const uint8_t *p) noexcept nogil:
    cdef uint32_t w[64]
    cdef uint32_t a, b, c, d, e, f, g, h, t1, t2
    cdef int i
    for i in range(16):
        w[i] = (<uint32_t>p[4 * i] << 24) | (<uint32_t>p[4 * i + 1] << 16) | (<uint32_t>p[4 * i + 2] << 8) | p[4 * i + 3]
    for i in range(16, 64):
        w[i] = (w[i - 16] + (_rotr(w[i - 15], 7) ^ _rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)) + w[i - 7]
                + (_rotr(w[i - 2], 17) ^ _rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)))
    a, b, c, d, e, f, g, h = s.h[0], s.h[1], s.h[2], s.h[3], s.h[4], s.h[5], s.h[6], s.h[7]
    for i in range(64):
        t1 = h + (_rotr(e, 6) ^ _rotr(e, 11) ^ _rotr(e, 25)) + ((e & f) ^ (~e & g)) + cs_sha_k[i] + w[i]
        t2 = (_rotr(a, 2) ^ _rotr(a, 13) ^ _rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))
        h, g, f, e, d, c, b, a = g, f, e, d + t1, c, b, a, t1 + t2
    s.h[0] += a
    s.h[1] += b
    s.h[2] += c
    s.h[3] += d
    s.h[4] += e
    s.h[5] += f
    s.h[6] += g
    s.h[7] += h

cdef void _init(Sha256 *s) noexcept nogil:
    memcpy(s.h, H256, sizeof(s.h))
    s.n = 0
    s.used = 0

cdef void _update(Sha256 *s, const uint8_t *p, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t k
    s.n += n
    if s.used:
        k = 64 - s.used
        if k > n:
            k = n
        memcpy(s.buf + s.used, p, k)
        s.used += k
        p += k
        n -= k
        if s.used < 64:
            return
        _block(s, s.buf)
        s.used = 0
    while n >= 64:
        _block(s, p)
        p += 64
        n -= 64
    if n:
        memcpy(s.buf, p, n)
        s.used = n

cdef void _final(Sha256 *s, uint8_t *out) noexcept nogil:
    cdef uint64_t bits = s.n * 8
    cdef uint8_t pad[72]
    cdef int i, padlen = (56 - (s.used + 1) % 64 + 64) % 64 + 1
    memset(pad, 0, sizeof(pad))
    pad[0] = 0x80
    for i in range(8):
        pad[padlen + i] = <uint8_t>(bits >> (56 - 8 * i))
    _update(s, pad, padlen + 8)
    for i in range(8):
        out[4 * i] = <uint8_t>(s.h[i] >> 24)
        out[4 * i + 1] = <uint8_t>(s.h[i] >> 16)
        out[4 * i + 2] = <uint8_t>(s.h[i] >> 8)
        out[4 * i + 3] = <uint8_t>s.h[i]


cdef class HmacSha256:
    """HMAC-SHA256 with the key's pads hashed once (``hexdigest(msg)`` per message)."""

    def __init__(self, bytes key):
        cdef uint8_t k[64]
        cdef uint8_t pad[64]
        cdef Sha256 s
        cdef int i
        memset(k, 0, 64)
        if len(key) > 64:
            _init(&s)
            _update(&s, <const uint8_t *><char *>key, len(key))
            _final(&s, k)
        else:
            memcpy(k, <char *>key, len(key))
        for i in range(64):
            pad[i] = k[i] ^ 0x36
        _init(&self.inner)
        _update(&self.inner, pad, 64)
        for i in range(64):
            pad[i] = k[i] ^ 0x5c
        _init(&self.outer)
        _update(&self.outer, pad, 64)

    cdef void hex_into(self, const uint8_t *msg, Py_ssize_t n, char *out) noexcept nogil:
        """64 lower-case hex digits of HMAC(key, msg) into ``out``."""
        cdef Sha256 s = self.inner
        cdef uint8_t d[32]
        cdef int i
        cdef const char *hx = b"0123456789abcdef"
        _update(&s, msg, n)
        _final(&s, d)
        s = self.outer
        _update(&s, d, 32)
        _final(&s, d)
        for i in range(32):
            out[2 * i] = hx[d[i] >> 4]
            out[2 * i + 1] = hx[d[i] & 15]

    def hexdigest(self, bytes msg):
        cdef char out[64]
        self.hex_into(<const uint8_t *><char *>msg, len(msg), out)
        return PyBytes_FromStringAndSize(out, 64).decode()


# ---------------------------------------------------------------- holds
cdef class WriteHold:
    """Until when (CLOCK_MONOTONIC seconds, ``time.monotonic``) no order request may be
    written: a 429/418's Retry-After (BinanceRest), an open circuit breaker (the gateway).
    A C field, so that the compiled decision path (cext.hotpath) reads it without a Python
    attribute lookup; the Python side sets it through the owners' properties."""

    def __init__(self, double until=0.0):
        self.until = until


# ---------------------------------------------------------------- the requests
UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _unreserved(s: str, what: str) -> bytes:
    b = s.encode()
    if not b or any(c not in UNRESERVED for c in b):
        raise ValueError(f"{what} {s!r}: only URL-unreserved characters can be encoded without escaping")
    return b


cdef class OrderEncoder:
    """OrderEncoder(secret, api_key, host_header, path_prefix, client_prefix, instruments, recv_window)

    ``new(order)`` / ``cancel(order)``: the whole request (bytes) for a 1-element
    ORDER_DTYPE array, signed with the current time plus ``time_offset_ms``; ``build``
    (C) the same for a record in place, by its action. Attributes: cext/orderwire.pxd."""

    def __init__(self, bytes secret, str api_key, str host_header, str path_prefix, str client_prefix,
                 instruments, int recv_window=5000):
        if any(c in api_key for c in "\r\n") or any(c in host_header for c in "\r\n "):
            raise ValueError("API key or host header contains a line break or space")
        self.mac = HmacSha256(secret)
        if any(c not in UNRESERVED and c != ord("/") for c in path_prefix.encode()):
            raise ValueError(f"path prefix {path_prefix!r}: only '/' and URL-unreserved characters")
        self.head_new = b"POST " + path_prefix.encode() + b"/fapi/v1/order?"
        self.head_cancel = b"DELETE " + path_prefix.encode() + b"/fapi/v1/order?"
        self.tail = (f" HTTP/1.1\r\nHost: {host_header}\r\nX-MBX-APIKEY: {api_key}\r\n"
                     f"Content-Length: 0\r\n\r\n").encode()
        self.cprefix = _unreserved(client_prefix, "client order id prefix")
        if len(self.cprefix) > 16:
            raise ValueError("client order id prefix longer than 16 characters")
        self.recv_window = recv_window
        instruments = list(instruments)
        self.insts = <Inst *>calloc(max(1, len(instruments)), sizeof(Inst))
        if self.insts == NULL:
            raise MemoryError()
        self.index = {}
        for k, ins in enumerate(instruments):
            sym = _unreserved(ins.symbol, "symbol")
            if len(sym) >= 32:
                raise ValueError(f"symbol {ins.symbol!r} longer than 31 characters")
            memcpy(self.insts[k].symbol, <char *>sym, len(sym))
            self.insts[k].symbol_len = len(sym)
            self.insts[k].price_decimals, self.insts[k].qty_decimals = ins.price_decimals, ins.qty_decimals
            self.insts[k].tick_units, self.insts[k].lot_units = ins.tick_units, ins.lot_units
            if not (0 <= ins.price_decimals <= 18 and 0 <= ins.qty_decimals <= 18):
                raise ValueError(f"{ins.symbol}: decimals out of range")
            self.index[ins.inst] = k
        self.n_insts = len(instruments)

    def __dealloc__(self):
        free(self.insts)

    cdef const OrderRecord *_record(self, order, Py_buffer *b) except NULL:
        PyObject_GetBuffer(order, b, PyBUF_ANY_CONTIGUOUS)
        if b.len != sizeof(OrderRecord):
            PyBuffer_Release(b)
            raise ValueError(f"one ORDER_DTYPE record ({sizeof(OrderRecord)} bytes) expected, got {b.len}")
        return <const OrderRecord *>b.buf

    cdef Inst *_inst(self, uint32_t inst) except NULL:
        k = self.index.get(inst)
        if k is None:
            raise ValueError(f"instrument {inst} unknown to the encoder")
        return &self.insts[<int>k]

    def new(self, order):
        """POST /fapi/v1/order for an ACT_NEW record."""
        cdef Py_buffer b
        cdef const OrderRecord *o = self._record(order, &b)
        try:
            return self._new(o)
        finally:
            PyBuffer_Release(&b)

    def cancel(self, order):
        """DELETE /fapi/v1/order for an ACT_CANCEL record: its ``ref_client_id`` (or, 0,
        its own ``client_id``)."""
        cdef Py_buffer b
        cdef const OrderRecord *o = self._record(order, &b)
        try:
            return self._cancel(o)
        finally:
            PyBuffer_Release(&b)

    cdef object build(self, const OrderRecord *o):
        """The request for a NEW or a CANCEL record (``new`` / ``cancel``), None for any
        other action; ValueError for a record it cannot encode."""
        if o.action == ACT_NEW:
            return self._new(o)
        if o.action == ACT_CANCEL:
            return self._cancel(o)
        return None

    cdef bytes _new(self, const OrderRecord *o):
        cdef Inst *ins = self._inst(o.inst)
        cdef int n = 0
        cdef const char *typ
        cdef const char *tif = NULL
        if o.side != SIDE_BUY and o.side != SIDE_SELL:
            raise ValueError(f"side {o.side}")
        if o.otype == OT_LIMIT:
            typ, tif = b"LIMIT", b"GTC"
        elif o.otype == OT_POST_ONLY:
            typ, tif = b"LIMIT", b"GTX"
        elif o.otype == OT_IOC:
            typ, tif = b"LIMIT", b"IOC"
        elif o.otype == OT_FOK:
            typ, tif = b"LIMIT", b"FOK"
        elif o.otype == OT_MARKET:
            typ = b"MARKET"
        else:
            raise ValueError(f"order type {o.otype}")
        n = _put(self.buf, n, b"symbol=")
        n = _putn(self.buf, n, ins.symbol, ins.symbol_len)
        n = _put(self.buf, n, b"&side=BUY" if o.side == SIDE_BUY else b"&side=SELL")
        n = _put(self.buf, n, b"&type=")
        n = _put(self.buf, n, typ)
        n = _put(self.buf, n, b"&quantity=")
        n = _decimal(self.buf, n, o.qty * ins.lot_units, ins.qty_decimals)
        n = _put(self.buf, n, b"&newClientOrderId=")
        n = self._cid(n, o.client_id)
        n = _put(self.buf, n, b"&newOrderRespType=ACK")
        if tif != NULL:
            n = _put(self.buf, n, b"&timeInForce=")
            n = _put(self.buf, n, tif)
            n = _put(self.buf, n, b"&price=")
            n = _decimal(self.buf, n, o.px * ins.tick_units, ins.price_decimals)
        if o.flags & OF_REDUCE_ONLY:
            n = _put(self.buf, n, b"&reduceOnly=true")
        return self._finish(self.head_new, n)

    cdef bytes _cancel(self, const OrderRecord *o):
        cdef Inst *ins = self._inst(o.inst)
        cdef int n = 0
        n = _put(self.buf, n, b"symbol=")
        n = _putn(self.buf, n, ins.symbol, ins.symbol_len)
        n = _put(self.buf, n, b"&origClientOrderId=")
        n = self._cid(n, o.ref_client_id if o.ref_client_id else o.client_id)
        return self._finish(self.head_cancel, n)

    cdef int _cid(self, int n, uint64_t cid) noexcept:
        cdef char tmp[20]
        cdef int k = 0
        cdef const char *hx = b"0123456789abcdef"
        n = _putn(self.buf, n, <char *>self.cprefix, len(self.cprefix))
        self.buf[n] = b'-'
        n += 1
        while True:
            tmp[k] = hx[cid & 15]
            k += 1
            cid >>= 4
            if not cid:
                break
        while k:
            k -= 1
            self.buf[n] = tmp[k]
            n += 1
        return n

    cdef bytes _finish(self, bytes head, int n):
        cdef timespec ts
        cdef int64_t ms
        clock_gettime(CLOCK_REALTIME, &ts)
        ms = <int64_t>ts.tv_sec * 1000 + ts.tv_nsec // 1000000 + self.time_offset_ms
        n = _put(self.buf, n, b"&timestamp=")
        n = _decimal(self.buf, n, ms, 0)
        n = _put(self.buf, n, b"&recvWindow=")
        n = _decimal(self.buf, n, self.recv_window, 0)
        self.mac.hex_into(<const uint8_t *>self.buf, n, self.buf + n + 11)
        memcpy(self.buf + n, b"&signature=", 11)
        n += 11 + 64
        cdef Py_ssize_t hl = len(head), tl = len(self.tail)
        out = PyBytes_FromStringAndSize(NULL, hl + n + tl)      # the request in one allocation
        cdef char *p = PyBytes_AS_STRING(out)
        memcpy(p, <const char *>head, hl)
        memcpy(p + hl, self.buf, n)
        memcpy(p + hl + n, <const char *>self.tail, tl)
        return out


cdef inline int _put(char *buf, int n, const char *s) noexcept:
    while s[0]:
        buf[n] = s[0]
        n += 1
        s += 1
    return n

cdef inline int _putn(char *buf, int n, const char *s, int k) noexcept:
    memcpy(buf + n, s, k)
    return n + k

cdef int _decimal(char *buf, int n, int64_t units, int decimals) noexcept:
    """``engine.venues.instruments._fmt``: units / 10**decimals with exactly ``decimals``
    digits after the point (none and no point when 0), a leading zero below 1."""
    cdef char tmp[40]
    cdef int k = 0, i
    cdef uint64_t u
    if units < 0:
        buf[n] = b'-'
        n += 1
        u = <uint64_t>(-(units + 1)) + 1
    else:
        u = <uint64_t>units
    while True:
        tmp[k] = <char>(48 + u % 10)
        k += 1
        u //= 10
        if not u:
            break
    while k < decimals + 1:              # zero-padded to at least decimals + 1 digits
        tmp[k] = b'0'
        k += 1
    for i in range(k - 1, -1, -1):
        if i == decimals - 1 and decimals > 0:
            buf[n] = b'.'
            n += 1
        buf[n] = tmp[i]
        n += 1
    return n
