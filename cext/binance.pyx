# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Binance futures market-data parser (see binance.pxd).

Handles, raw or inside ``{"stream": ..., "data": {...}}``:
  depthUpdate -> MK_DEPTH per level (qty = new absolute size, 0 deletes), seq = u,
                 aux = pu, aux2 = U; an update with no levels emits one SIDE_NONE record
                 so the sequence is still seen
  bookTicker  -> MK_BBO: px/qty = best bid, aux/aux2 = best ask px/qty, seq = u
  trade       -> MK_TRADE: side = aggressor (m=true -> SELL), seq = t, aux = aux2 = t,
                 flags F_NON_MARKET when X is not MARKET
  aggTrade    -> MK_TRADE with seq = a, aux = f, aux2 = l, flags F_AGGREGATED
  markPriceUpdate -> MK_MARK (px = mark, aux = index, aux2 = rate * 1e9) then
                 MK_FUNDING (aux = next funding time ns, aux2 = rate * 1e9)
  forceOrder  -> MK_LIQUIDATION: side, px = average price, qty = filled (else orig) qty,
                 aux = order price
  REST depth snapshot {"lastUpdateId", "bids", "asks"} -> MK_SNAPSHOT per level, the
                 first flagged F_CLEAR, seq = lastUpdateId
Every message's last record has F_LAST_IN_MESSAGE. Times are ns (exchange ms * 1e6).
Mark, index and liquidation prices are computed values, not order prices: they are
rounded to the nearest tick. Order-book and trade prices must be on the grid.
"""
import numpy as np

from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE, PyBUF_WRITABLE, PyBUF_ANY_CONTIGUOUS
from libc.stdint cimport int64_t, uint64_t, uint32_t, uint16_t, uint8_t
from libc.stdlib cimport malloc, free, calloc
from libc.string cimport memset, memcmp, memcpy

from cext.decimal cimport parse_scaled, DEC_OK, DEC_TOO_FINE
from cext.schema cimport MarketRecord

# market kinds / flags (engine/schema.py; tests check the values agree)
cdef enum:
    MK_DEPTH = 1
    MK_SNAPSHOT = 2
    MK_TRADE = 3
    MK_BBO = 4
    MK_MARK = 5
    MK_FUNDING = 6
    MK_LIQUIDATION = 8
    SIDE_NONE = 0
    SIDE_BUY = 1
    SIDE_SELL = 2
    F_LAST = 1
    F_CLEAR = 2
    F_NON_MARKET = 8
    F_AGGREGATED = 16

# events
cdef enum:
    EV_NONE = 0
    EV_DEPTH = 1
    EV_BBO = 2
    EV_TRADE = 3
    EV_AGG = 4
    EV_MARK = 5
    EV_FORCE = 6
    EV_UNKNOWN = 99

# field presence bits
cdef enum:
    H_E = 1 << 0
    H_T = 1 << 1
    H_U = 1 << 2
    H_u = 1 << 3
    H_pu = 1 << 4
    H_t = 1 << 5
    H_aint = 1 << 6
    H_f = 1 << 7
    H_l = 1 << 8
    H_LUI = 1 << 9
    H_s = 1 << 10
    H_bstr = 1 << 11
    H_B = 1 << 12
    H_astr = 1 << 13
    H_A = 1 << 14
    H_p = 1 << 15
    H_q = 1 << 16
    H_X = 1 << 17
    H_S = 1 << 18
    H_ap = 1 << 19
    H_z = 1 << 20
    H_i = 1 << 21
    H_r = 1 << 22
    H_m = 1 << 23
    H_bids = 1 << 24
    H_asks = 1 << 25
    H_o = 1 << 26

SCHEMA_CONSTANTS = {"MK_DEPTH": MK_DEPTH, "MK_SNAPSHOT": MK_SNAPSHOT, "MK_TRADE": MK_TRADE, "MK_BBO": MK_BBO,
                    "MK_MARK": MK_MARK, "MK_FUNDING": MK_FUNDING, "MK_LIQUIDATION": MK_LIQUIDATION,
                    "SIDE_NONE": SIDE_NONE, "SIDE_BUY": SIDE_BUY, "SIDE_SELL": SIDE_SELL,
                    "F_LAST_IN_MESSAGE": F_LAST, "F_CLEAR": F_CLEAR, "F_NON_MARKET": F_NON_MARKET,
                    "F_AGGREGATED": F_AGGREGATED}

REASONS = {
    R_MALFORMED: "malformed", R_UNKNOWN_EVENT: "unknown_event", R_UNKNOWN_SYMBOL: "unknown_symbol",
    R_FIELD_TYPE: "field_type", R_MISSING_FIELD: "missing_field", R_BAD_NUMBER: "bad_number",
    R_PRICE_OFF_GRID: "price_off_grid", R_QTY_OFF_GRID: "qty_off_grid",
    R_NONPOSITIVE: "nonpositive", R_TOO_MANY_LEVELS: "too_many_levels",
    R_UNSUPPORTED_STRING: "unsupported_string",
}

# ------------------------------------------------------------------ scanner primitives
cdef inline void _ws(Cur *c) noexcept nogil:
    while c.p < c.end and (c.p[0] == b' ' or c.p[0] == b'\n' or c.p[0] == b'\r' or c.p[0] == b'\t'):
        c.p += 1

cdef inline bint _eat(Cur *c, char ch) noexcept nogil:
    _ws(c)
    if c.p < c.end and c.p[0] == ch:
        c.p += 1
        return True
    return False

cdef inline int _string(Cur *c, Str *out) noexcept nogil:
    """c.p at the opening quote. 0, R_MALFORMED or R_UNSUPPORTED_STRING (escape inside)."""
    cdef const char *q
    c.p += 1
    q = c.p
    while q < c.end and q[0] != b'"':
        if q[0] == b'\\':
            return R_UNSUPPORTED_STRING
        q += 1
    if q >= c.end:
        return R_MALFORMED
    out.p = c.p
    out.n = q - c.p
    c.p = q + 1
    return 0

cdef inline int _int(Cur *c, int64_t *v) noexcept nogil:
    """A JSON integer. R_FIELD_TYPE if the value is not a bare integer."""
    cdef bint neg = False
    cdef int64_t x = 0
    cdef int nd = 0
    _ws(c)
    if c.p < c.end and c.p[0] == b'-':
        neg = True
        c.p += 1
    while c.p < c.end and 48 <= c.p[0] <= 57:
        if x > 922337203685477580LL:
            return R_BAD_NUMBER
        x = x * 10 + (c.p[0] - 48)
        c.p += 1
        nd += 1
    if nd == 0:
        return R_FIELD_TYPE
    if c.p < c.end and (c.p[0] == b'.' or c.p[0] == b'e' or c.p[0] == b'E'):
        return R_FIELD_TYPE
    v[0] = -x if neg else x
    return 0

cdef int _skip(Cur *c, int depth) noexcept nogil:
    """Skip one JSON value."""
    cdef Str tmp
    cdef int r
    _ws(c)
    if c.p >= c.end or depth > 32:
        return R_MALFORMED
    cdef char ch = c.p[0]
    if ch == b'"':
        # skipping tolerates escapes
        c.p += 1
        while c.p < c.end and c.p[0] != b'"':
            if c.p[0] == b'\\':
                c.p += 1
            c.p += 1
        if c.p >= c.end:
            return R_MALFORMED
        c.p += 1
        return 0
    if ch == b'{' or ch == b'[':
        c.p += 1
        if _eat(c, b'}' if ch == b'{' else b']'):
            return 0
        while True:
            if ch == b'{':
                _ws(c)
                if c.p >= c.end or c.p[0] != b'"':
                    return R_MALFORMED
                r = _skip(c, depth + 1)
                if r:
                    return r
                if not _eat(c, b':'):
                    return R_MALFORMED
            r = _skip(c, depth + 1)
            if r:
                return r
            if _eat(c, b','):
                continue
            if _eat(c, b'}' if ch == b'{' else b']'):
                return 0
            return R_MALFORMED
    # number / true / false / null
    if ch == b'-' or (48 <= ch <= 57):
        c.p += 1
        while c.p < c.end and (48 <= c.p[0] <= 57 or c.p[0] == b'.' or c.p[0] == b'e'
                               or c.p[0] == b'E' or c.p[0] == b'+' or c.p[0] == b'-'):
            c.p += 1
        return 0
    if c.end - c.p >= 4 and (memcmp(c.p, b"true", 4) == 0 or memcmp(c.p, b"null", 4) == 0):
        c.p += 4
        return 0
    if c.end - c.p >= 5 and memcmp(c.p, b"false", 5) == 0:
        c.p += 5
        return 0
    return R_MALFORMED

cdef int64_t POW10[19]
POW10[0] = 1
for _k in range(1, 19):
    POW10[_k] = POW10[_k - 1] * 10


cdef inline int _numval(Cur *c, Num *out) noexcept nogil:
    """A decimal number inside a JSON string, scanned and converted in one pass."""
    cdef const char *q
    cdef int64_t m = 0
    cdef int d = 0, nd = 0
    cdef bint dot = False, neg = False
    cdef char ch
    _ws(c)
    if c.p >= c.end:
        return R_MALFORMED
    if c.p[0] != b'"':
        return R_FIELD_TYPE
    q = c.p + 1
    if q < c.end and q[0] == b'-':
        neg = True
        q += 1
    while q < c.end:
        ch = q[0]
        if 48 <= ch <= 57:
            if m > 922337203685477580LL:
                return R_BAD_NUMBER
            m = m * 10 + (ch - 48)
            nd += 1
            if dot:
                d += 1
        elif ch == b'"':
            break
        elif ch == b'.' and not dot:
            dot = True
        elif ch == b'\\':
            return R_UNSUPPORTED_STRING
        else:
            return R_BAD_NUMBER
        q += 1
    if q >= c.end:
        return R_MALFORMED
    if nd == 0:
        return R_BAD_NUMBER
    out.m = -m if neg else m
    out.d = d
    c.p = q + 1
    return 0


cdef inline int _scale(Num *x, int scale, int64_t *v) noexcept nogil:
    """x at ``scale`` decimals: 0, DEC_TOO_FINE-like 1 (a non-zero digit beyond the scale),
    or 2 (overflow)."""
    cdef int64_t div
    if x.d == scale:
        v[0] = x.m
        return 0
    if x.d < scale:
        if scale - x.d > 18 or (x.m > 0 and x.m > 9223372036854775807LL // POW10[scale - x.d]) \
                or (x.m < 0 and -x.m > 9223372036854775807LL // POW10[scale - x.d]):
            return 2
        v[0] = x.m * POW10[scale - x.d]
        return 0
    if x.d - scale > 18:
        return 1 if x.m else 0
    div = POW10[x.d - scale]
    if x.m % div:
        return 1
    v[0] = x.m // div
    return 0


cdef inline int _strval(Cur *c, Str *out) noexcept nogil:
    _ws(c)
    if c.p >= c.end:
        return R_MALFORMED
    if c.p[0] != b'"':
        return R_FIELD_TYPE
    return _string(c, out)

cdef inline bint _key_is(Str *k, const char *lit, int n) noexcept nogil:
    return k.n == n and memcmp(k.p, lit, n) == 0


cdef inline int _round_ticks(const char *p, Py_ssize_t n, int scale, int64_t step, int64_t *out) noexcept nogil:
    """A computed price (mark, index, average) rounded half-up to the nearest step."""
    cdef int64_t v, unit = step * 1000000
    cdef int r = parse_scaled(p, n, scale + 6, &v)
    if r == DEC_TOO_FINE:
        # more than 6 extra decimals: read at the finest scale that fits
        r = parse_scaled(p, n, scale + 9, &v)
        unit = step * 1000000000
        if r == DEC_TOO_FINE:
            return R_BAD_NUMBER
    if r != DEC_OK:
        return R_BAD_NUMBER
    out[0] = (v + unit // 2) // unit if v >= 0 else -((-v + unit // 2) // unit)
    return 0


cdef class BinanceParser:
    """``BinanceParser(instruments)``: instruments are engine.venues.instruments.Instrument
    (or any object with symbol, inst, price_decimals, tick_units, qty_decimals, lot_units)."""

    def __cinit__(self, instruments, int max_levels=8192):
        self.n_instruments = len(instruments)
        self.specs = <InstSpec *>calloc(max(1, self.n_instruments), sizeof(InstSpec))
        self.levels = <Num *>calloc(2 * max_levels, sizeof(Num))
        if self.specs == NULL or self.levels == NULL:
            raise MemoryError()
        self.max_levels = max_levels
        memset(self.rejects, 0, sizeof(self.rejects))

    def __init__(self, instruments, int max_levels=8192):
        seen = set()
        for k, ins in enumerate(instruments):
            sym = ins.symbol.encode()
            if len(sym) > 31 or not sym:
                raise ValueError(f"symbol {ins.symbol!r} must be 1-31 bytes")
            if sym in seen:
                raise ValueError(f"symbol {ins.symbol!r} configured twice")
            seen.add(sym)
            self.specs[k].inst = ins.inst
            self.specs[k].sym_len = len(sym)
            memcpy(self.specs[k].symbol, <char *>sym, len(sym))
            self.specs[k].px_scale = ins.price_decimals
            self.specs[k].tick_units = ins.tick_units
            self.specs[k].qty_scale = ins.qty_decimals
            self.specs[k].lot_units = ins.lot_units
        self.symbols = [ins.symbol for ins in instruments]

    def __dealloc__(self):
        free(self.specs)
        free(self.levels)

    cdef int find_spec(self, const char *sym, Py_ssize_t n) noexcept nogil:
        cdef int k
        for k in range(self.n_instruments):
            if self.specs[k].sym_len == n and memcmp(self.specs[k].symbol, sym, n) == 0:
                return k
        return -1

    # -------------------------------------------------------------- object scan
    cdef int _levels(self, Cur *c, int *off, int *count, int *used) noexcept nogil:
        """[[p, q, ...], ...] into the scratch array."""
        cdef int r, n = 0
        cdef Num ps, qs
        off[0] = used[0]
        if not _eat(c, b'['):
            return R_FIELD_TYPE
        if _eat(c, b']'):
            count[0] = 0
            return 0
        while True:
            if not _eat(c, b'['):
                return R_FIELD_TYPE
            r = _numval(c, &ps)
            if r:
                return r
            if not _eat(c, b','):
                return R_MALFORMED
            r = _numval(c, &qs)
            if r:
                return r
            while _eat(c, b','):       # tolerate extra elements
                r = _skip(c, 0)
                if r:
                    return r
            if not _eat(c, b']'):
                return R_MALFORMED
            if used[0] + n >= self.max_levels:
                return R_TOO_MANY_LEVELS
            self.levels[2 * (used[0] + n)] = ps
            self.levels[2 * (used[0] + n) + 1] = qs
            n += 1
            if _eat(c, b','):
                continue
            if _eat(c, b']'):
                break
            return R_MALFORMED
        count[0] = n
        used[0] += n
        return 0

    cdef int _object(self, Cur *c, Fields *F, int *used, bint inner) noexcept nogil:
        """Scan one JSON object's keys into F (order-independent)."""
        cdef Str k, sv
        cdef int r
        cdef char ch
        if not _eat(c, b'{'):
            return R_MALFORMED
        if _eat(c, b'}'):
            return 0
        while True:
            _ws(c)
            if c.p >= c.end or c.p[0] != b'"':
                return R_MALFORMED
            r = _string(c, &k)
            if r:
                return R_MALFORMED
            if not _eat(c, b':'):
                return R_MALFORMED
            _ws(c)
            if c.p >= c.end:
                return R_MALFORMED
            ch = c.p[0]
            r = 0
            if k.n == 1:
                if k.p[0] == b'e':
                    r = _strval(c, &sv)
                    if not r:
                        if _key_is(&sv, "depthUpdate", 11):
                            F.ev = EV_DEPTH
                        elif _key_is(&sv, "bookTicker", 10):
                            F.ev = EV_BBO
                        elif _key_is(&sv, "trade", 5):
                            F.ev = EV_TRADE
                        elif _key_is(&sv, "aggTrade", 8):
                            F.ev = EV_AGG
                        elif _key_is(&sv, "markPriceUpdate", 15):
                            F.ev = EV_MARK
                        elif _key_is(&sv, "forceOrder", 10):
                            F.ev = EV_FORCE
                        else:
                            F.ev = EV_UNKNOWN
                elif k.p[0] == b'E':
                    r = _int(c, &F.E); F.has |= H_E
                elif k.p[0] == b'T':
                    r = _int(c, &F.T); F.has |= H_T
                elif k.p[0] == b'U':
                    r = _int(c, &F.U); F.has |= H_U
                elif k.p[0] == b'u':
                    r = _int(c, &F.u); F.has |= H_u
                elif k.p[0] == b't':
                    r = _int(c, &F.t); F.has |= H_t
                elif k.p[0] == b'f':
                    if ch == b'"':      # forceOrder: time in force, a string
                        r = _skip(c, 0)
                    else:
                        r = _int(c, &F.f); F.has |= H_f
                elif k.p[0] == b'l':
                    if ch == b'"':      # forceOrder: last filled quantity, a string
                        r = _skip(c, 0)
                    else:
                        r = _int(c, &F.l); F.has |= H_l
                elif k.p[0] == b's':
                    r = _strval(c, &F.s); F.has |= H_s
                elif k.p[0] == b'B':
                    r = _strval(c, &F.B); F.has |= H_B
                elif k.p[0] == b'A':
                    r = _strval(c, &F.A); F.has |= H_A
                elif k.p[0] == b'p':
                    r = _strval(c, &F.p); F.has |= H_p
                elif k.p[0] == b'q':
                    r = _strval(c, &F.q); F.has |= H_q
                elif k.p[0] == b'X':
                    r = _strval(c, &F.X); F.has |= H_X
                elif k.p[0] == b'S':
                    r = _strval(c, &F.S); F.has |= H_S
                elif k.p[0] == b'z':
                    r = _strval(c, &F.z); F.has |= H_z
                elif k.p[0] == b'i':
                    r = _strval(c, &F.i); F.has |= H_i
                elif k.p[0] == b'r':
                    r = _strval(c, &F.r); F.has |= H_r
                elif k.p[0] == b'm':
                    if c.end - c.p >= 4 and memcmp(c.p, b"true", 4) == 0:
                        F.m = True; c.p += 4
                    elif c.end - c.p >= 5 and memcmp(c.p, b"false", 5) == 0:
                        F.m = False; c.p += 5
                    else:
                        r = R_FIELD_TYPE
                    F.has |= H_m
                elif k.p[0] == b'b':
                    if ch == b'[':
                        r = self._levels(c, &F.bids_off, &F.bids_n, used); F.has |= H_bids
                    else:
                        r = _strval(c, &F.bstr); F.has |= H_bstr
                elif k.p[0] == b'a':
                    if ch == b'[':
                        r = self._levels(c, &F.asks_off, &F.asks_n, used); F.has |= H_asks
                    elif ch == b'"':
                        r = _strval(c, &F.astr); F.has |= H_astr
                    else:
                        r = _int(c, &F.aint); F.has |= H_aint
                elif k.p[0] == b'o':
                    if ch == b'{' and not inner:
                        F.o_start = c.p
                        r = _skip(c, 0)
                        F.o_end = c.p
                        F.has |= H_o
                    else:
                        r = _skip(c, 0)
                else:
                    r = _skip(c, 0)
            elif _key_is(&k, "pu", 2):
                r = _int(c, &F.pu); F.has |= H_pu
            elif _key_is(&k, "ap", 2):
                r = _strval(c, &F.ap); F.has |= H_ap
            elif _key_is(&k, "bids", 4):
                r = self._levels(c, &F.bids_off, &F.bids_n, used); F.has |= H_bids
            elif _key_is(&k, "asks", 4):
                r = self._levels(c, &F.asks_off, &F.asks_n, used); F.has |= H_asks
            elif _key_is(&k, "lastUpdateId", 12):
                r = _int(c, &F.lui); F.has |= H_LUI
            else:
                r = _skip(c, 0)
            if r:
                return r
            if _eat(c, b','):
                continue
            if _eat(c, b'}'):
                return 0
            return R_MALFORMED

    # -------------------------------------------------------------- conversion
    cdef int _px(self, InstSpec *sp, Str *s, int64_t *out) noexcept nogil:
        cdef int64_t v
        cdef int r = parse_scaled(s.p, s.n, sp.px_scale, &v)
        if r == DEC_TOO_FINE:
            return R_PRICE_OFF_GRID
        if r != DEC_OK:
            return R_BAD_NUMBER
        if sp.tick_units == 1:          # the common case: no division on the hot path
            out[0] = v
            return 0
        if v % sp.tick_units:
            return R_PRICE_OFF_GRID
        out[0] = v // sp.tick_units
        return 0

    cdef int _qty(self, InstSpec *sp, Str *s, int64_t *out) noexcept nogil:
        cdef int64_t v
        cdef int r = parse_scaled(s.p, s.n, sp.qty_scale, &v)
        if r == DEC_TOO_FINE:
            return R_QTY_OFF_GRID
        if r != DEC_OK:
            return R_BAD_NUMBER
        if sp.lot_units == 1:
            out[0] = v
            return 0
        if v % sp.lot_units:
            return R_QTY_OFF_GRID
        out[0] = v // sp.lot_units
        return 0

    cdef void _rec(self, MarketRecord *o, int kind, int side, int flags, uint32_t inst,
                          int64_t seq, int64_t ts, int64_t mono) noexcept nogil:
        o.kind = kind
        o.side = side
        o.flags = flags
        o.inst = inst
        o.seq = seq
        o.exch_ts = ts
        o.mono_origin = mono
        o.px = 0
        o.qty = 0
        o.aux = 0
        o.aux2 = 0

    cdef int _emit_levels(self, InstSpec *sp, Fields *F, int kind, int64_t seq, int64_t ts,
                          int64_t mono, MarketRecord *out, int cap) noexcept nogil:
        cdef int total = F.bids_n + F.asks_n, j, k = 0, r, side, off, cnt, pass_
        cdef int64_t px, qty
        cdef MarketRecord *o
        if total == 0:
            total = 1
        if total > cap:
            return -R_TOO_MANY_LEVELS
        if F.bids_n + F.asks_n == 0:
            self._rec(&out[0], kind, SIDE_NONE, F_LAST | (F_CLEAR if kind == MK_SNAPSHOT else 0),
                      sp.inst, seq, ts, mono)
            out[0].aux = F.pu if F.has & H_pu else -1
            out[0].aux2 = F.U if F.has & H_U else seq
            return 1
        for pass_ in range(2):
            side = SIDE_BUY if pass_ == 0 else SIDE_SELL
            off = F.bids_off if pass_ == 0 else F.asks_off
            cnt = F.bids_n if pass_ == 0 else F.asks_n
            for j in range(cnt):
                r = _scale(&self.levels[2 * (off + j)], sp.px_scale, &px)
                if r:
                    return -(R_PRICE_OFF_GRID if r == 1 else R_BAD_NUMBER)
                if sp.tick_units != 1:
                    if px % sp.tick_units:
                        return -R_PRICE_OFF_GRID
                    px = px // sp.tick_units
                r = _scale(&self.levels[2 * (off + j) + 1], sp.qty_scale, &qty)
                if r:
                    return -(R_QTY_OFF_GRID if r == 1 else R_BAD_NUMBER)
                if sp.lot_units != 1:
                    if qty % sp.lot_units:
                        return -R_QTY_OFF_GRID
                    qty = qty // sp.lot_units
                if px <= 0 or qty < 0:
                    return -R_NONPOSITIVE
                o = &out[k]
                self._rec(o, kind, side, 0, sp.inst, seq, ts, mono)
                o.px = px
                o.qty = qty
                if kind == MK_DEPTH:
                    o.aux = F.pu if F.has & H_pu else -1
                    o.aux2 = F.U if F.has & H_U else seq
                k += 1
        if kind == MK_SNAPSHOT:
            out[0].flags |= F_CLEAR
        out[k - 1].flags |= F_LAST
        return k

    cdef int parse_ptr(self, const char *buf, Py_ssize_t n, int64_t mono_origin,
                       MarketRecord *out, int cap, int default_spec) noexcept nogil:
        """Records written (> 0) or -reason. Nothing is written on a rejection that the
        caller could mistake for data: a negative return means discard ``out``."""
        cdef Cur c
        cdef Fields F
        cdef Fields O
        cdef Str k
        cdef int r, used = 0, si
        cdef InstSpec *sp
        cdef int64_t ts, px, qty, aux, rate
        cdef const char *obj_start
        cdef Cur ci
        self.messages += 1
        c.p = buf
        c.start = buf
        c.end = buf + n
        memset(&F, 0, sizeof(Fields))
        # combined-stream wrapper?
        _ws(&c)
        obj_start = c.p
        r = self._wrapped(&c)
        if r < 0:
            return self._reject(-r, &c)
        if r == 0:
            c.p = obj_start      # not wrapped: the whole frame is the event
        r = self._object(&c, &F, &used, False)
        if r:
            return self._reject(r, &c)
        if F.ev == EV_UNKNOWN:
            return self._reject(R_UNKNOWN_EVENT, &c)
        if F.ev == EV_NONE:
            if F.has & H_LUI and F.has & (H_bids | H_asks):
                # REST depth snapshot (no symbol inside: the caller's default)
                if F.has & H_s:
                    si = self.find_spec(F.s.p, F.s.n)
                else:
                    si = default_spec
                if si < 0:
                    return self._reject(R_UNKNOWN_SYMBOL, &c)
                ts = (F.E if F.has & H_E else (F.T if F.has & H_T else 0)) * 1000000
                r = self._emit_levels(&self.specs[si], &F, MK_SNAPSHOT, F.lui, ts, mono_origin, out, cap)
                if r < 0:
                    return self._reject(-r, &c)
                self.records_out += r
                return r
            if F.has & H_u and F.has & H_bstr and F.has & H_astr and F.has & H_s:
                F.ev = EV_BBO    # spot bookTicker carries no "e"
            else:
                return self._reject(R_UNKNOWN_EVENT, &c)
        if F.ev == EV_FORCE:
            if not F.has & H_o:
                return self._reject(R_MISSING_FIELD, &c)
            memset(&O, 0, sizeof(Fields))
            ci.p = F.o_start
            ci.start = buf
            ci.end = F.o_end
            r = self._object(&ci, &O, &used, True)
            if r:
                return self._reject(r, &ci)
            if not (O.has & H_s and O.has & H_S and O.has & H_p and O.has & H_q):
                return self._reject(R_MISSING_FIELD, &c)
            si = self.find_spec(O.s.p, O.s.n)
            if si < 0:
                return self._reject(R_UNKNOWN_SYMBOL, &c)
            sp = &self.specs[si]
            if cap < 1:
                return self._reject(R_TOO_MANY_LEVELS, &c)
            ts = (O.T if O.has & H_T else F.E) * 1000000
            self._rec(&out[0], MK_LIQUIDATION, SIDE_BUY if _key_is(&O.S, "BUY", 3) else SIDE_SELL,
                      F_LAST, sp.inst, 0, ts, mono_origin)
            r = _round_ticks(O.ap.p if O.has & H_ap and O.ap.n else O.p.p,
                             O.ap.n if O.has & H_ap and O.ap.n else O.p.n,
                             sp.px_scale, sp.tick_units, &out[0].px)
            if r:
                return self._reject(r, &c)
            r = _round_ticks(O.p.p, O.p.n, sp.px_scale, sp.tick_units, &out[0].aux)
            if r:
                return self._reject(r, &c)
            r = self._qty(sp, &O.z if O.has & H_z and O.z.n else &O.q, &out[0].qty)
            if r:
                return self._reject(r, &c)
            if out[0].qty == 0:
                r = self._qty(sp, &O.q, &out[0].qty)
                if r:
                    return self._reject(r, &c)
            if out[0].px <= 0 or out[0].qty <= 0:
                return self._reject(R_NONPOSITIVE, &c)
            self.records_out += 1
            return 1
        if not F.has & H_s:
            return self._reject(R_MISSING_FIELD, &c)
        si = self.find_spec(F.s.p, F.s.n)
        if si < 0:
            return self._reject(R_UNKNOWN_SYMBOL, &c)
        sp = &self.specs[si]
        if F.ev == EV_DEPTH:
            if not (F.has & H_u and F.has & H_U and F.has & H_E):
                return self._reject(R_MISSING_FIELD, &c)
            r = self._emit_levels(sp, &F, MK_DEPTH, F.u, F.E * 1000000, mono_origin, out, cap)
            if r < 0:
                return self._reject(-r, &c)
            self.records_out += r
            return r
        if cap < 2:
            return self._reject(R_TOO_MANY_LEVELS, &c)
        if F.ev == EV_BBO:
            if not (F.has & H_u and F.has & H_bstr and F.has & H_B and F.has & H_astr and F.has & H_A):
                return self._reject(R_MISSING_FIELD, &c)
            ts = (F.T if F.has & H_T else (F.E if F.has & H_E else 0)) * 1000000
            self._rec(&out[0], MK_BBO, SIDE_NONE, F_LAST, sp.inst, F.u, ts, mono_origin)
            r = self._px(sp, &F.bstr, &out[0].px)
            if not r: r = self._qty(sp, &F.B, &out[0].qty)
            if not r: r = self._px(sp, &F.astr, &out[0].aux)
            if not r: r = self._qty(sp, &F.A, &out[0].aux2)
            if r:
                return self._reject(r, &c)
            if out[0].px <= 0 or out[0].aux <= 0 or out[0].qty < 0 or out[0].aux2 < 0:
                return self._reject(R_NONPOSITIVE, &c)
            self.records_out += 1
            return 1
        if F.ev == EV_TRADE or F.ev == EV_AGG:
            if not (F.has & H_p and F.has & H_q and F.has & H_m):
                return self._reject(R_MISSING_FIELD, &c)
            if F.ev == EV_TRADE and not F.has & H_t:
                return self._reject(R_MISSING_FIELD, &c)
            if F.ev == EV_AGG and not F.has & H_aint:
                return self._reject(R_MISSING_FIELD, &c)
            ts = (F.T if F.has & H_T else F.E) * 1000000
            self._rec(&out[0], MK_TRADE, SIDE_SELL if F.m else SIDE_BUY, F_LAST, sp.inst,
                      F.t if F.ev == EV_TRADE else F.aint, ts, mono_origin)
            if F.ev == EV_AGG:
                out[0].flags |= F_AGGREGATED
                out[0].aux = F.f
                out[0].aux2 = F.l
            else:
                out[0].aux = F.t
                out[0].aux2 = F.t
            if F.has & H_X and not _key_is(&F.X, "MARKET", 6):
                out[0].flags |= F_NON_MARKET
            r = self._px(sp, &F.p, &out[0].px)
            if not r:
                r = self._qty(sp, &F.q, &out[0].qty)
            if r:
                return self._reject(r, &c)
            if out[0].px <= 0 or out[0].qty <= 0:
                return self._reject(R_NONPOSITIVE, &c)
            self.records_out += 1
            return 1
        if F.ev == EV_MARK:
            if not (F.has & H_p and F.has & H_E):
                return self._reject(R_MISSING_FIELD, &c)
            self._rec(&out[0], MK_MARK, SIDE_NONE, 0, sp.inst, F.E, F.E * 1000000, mono_origin)
            r = _round_ticks(F.p.p, F.p.n, sp.px_scale, sp.tick_units, &out[0].px)
            if not r and F.has & H_i and F.i.n:
                r = _round_ticks(F.i.p, F.i.n, sp.px_scale, sp.tick_units, &out[0].aux)
            rate = 0
            if not r and F.has & H_r and F.r.n:
                if parse_scaled(F.r.p, F.r.n, 9, &rate) != DEC_OK:
                    r = R_BAD_NUMBER
            if r:
                return self._reject(r, &c)
            if out[0].px <= 0:
                return self._reject(R_NONPOSITIVE, &c)
            out[0].aux2 = rate
            self._rec(&out[1], MK_FUNDING, SIDE_NONE, F_LAST, sp.inst, F.E, F.E * 1000000, mono_origin)
            out[1].aux = (F.T if F.has & H_T else 0) * 1000000
            out[1].aux2 = rate
            self.records_out += 2
            return 2
        return self._reject(R_UNKNOWN_EVENT, &c)

    cdef int _wrapped(self, Cur *c) noexcept nogil:
        """If the frame is {"stream": ..., "data": {...}}, leave c at the data object and
        return 1; return 0 if it is not a wrapper; -reason if malformed."""
        cdef Str k
        cdef Cur probe = c[0]
        if not _eat(&probe, b'{'):
            return -R_MALFORMED
        _ws(&probe)
        if probe.p >= probe.end or probe.p[0] != b'"':
            return 0
        if _string(&probe, &k):
            return -R_MALFORMED
        if not (_key_is(&k, "stream", 6) or _key_is(&k, "data", 4)):
            return 0
        # walk the wrapper's keys until "data"
        while True:
            if not _eat(&probe, b':'):
                return -R_MALFORMED
            if _key_is(&k, "data", 4):
                _ws(&probe)
                c[0] = probe
                return 1
            if _skip(&probe, 0):
                return -R_MALFORMED
            if not _eat(&probe, b','):
                return -R_MISSING_FIELD
            _ws(&probe)
            if probe.p >= probe.end or probe.p[0] != b'"' or _string(&probe, &k):
                return -R_MALFORMED

    cdef int _reject(self, int reason, Cur *c) noexcept nogil:
        self.rejects[reason] += 1
        self.last_reject_offset = <int>(c.p - c.start)
        return -reason

    # -------------------------------------------------------------- Python API
    cpdef int parse(self, object frame, int64_t mono_origin, object out, object default_symbol=None) except -100:
        """Parse one frame into ``out`` (a MARKET_DTYPE array). Returns the number of
        records (> 0) or -reason (see ``reason_name``); out is garbage on a rejection."""
        cdef Py_buffer fb, ob
        cdef int r, ds = -1
        if default_symbol is not None:
            sym = default_symbol.encode()
            ds = self.find_spec(sym, len(sym))
        PyObject_GetBuffer(frame, &fb, PyBUF_SIMPLE)
        try:
            PyObject_GetBuffer(out, &ob, PyBUF_WRITABLE | PyBUF_ANY_CONTIGUOUS)
            try:
                if ob.len % sizeof(MarketRecord):
                    raise ValueError("out must be a MARKET_DTYPE array")
                with nogil:
                    r = self.parse_ptr(<const char *>fb.buf, fb.len, mono_origin,
                                       <MarketRecord *>ob.buf, <int>(ob.len // sizeof(MarketRecord)), ds)
            finally:
                PyBuffer_Release(&ob)
        finally:
            PyBuffer_Release(&fb)
        return r

    def stats(self):
        """{"messages", "records", "rejected", "rejects": {reason: count}}"""
        rej = {REASONS[i]: self.rejects[i] for i in range(1, N_REASONS) if self.rejects[i]}
        return {"messages": self.messages, "records": self.records_out,
                "rejected": sum(rej.values()), "rejects": rej}

    @staticmethod
    def reason_name(int code):
        return REASONS.get(abs(code), f"unknown({code})")
