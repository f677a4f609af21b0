# Decimal strings -> scaled int64, no floats, no Decimal, no allocation.
#
#   parse_scaled(b"61800.30", 8, 2, &v)  -> DEC_OK, v = 6180030
#   parse_scaled(b"61800.305", 9, 2, &v) -> DEC_TOO_FINE (a non-zero digit beyond the scale)
#
# Prices become ticks with ticks = v / tick_int where v is the price in units of
# 10^-scale; a remainder is "off the tick grid" (the caller's rejection).

from libc.stdint cimport int64_t

cdef enum:
    DEC_OK = 0
    DEC_EMPTY = -1        # no digits
    DEC_BADCHAR = -2      # a character that is not part of a decimal number
    DEC_TOO_FINE = -3     # a non-zero digit beyond the scale
    DEC_OVERFLOW = -4     # does not fit in int64 at this scale

cdef inline int parse_scaled(const char *p, Py_ssize_t n, int scale, int64_t *out) noexcept nogil:
    cdef Py_ssize_t i = 0
    cdef bint neg = False, dot = False, any_digit = False
    cdef int frac = 0
    cdef int64_t v = 0
    cdef int d
    if n > 0 and p[0] == b'-':
        neg = True
        i = 1
    elif n > 0 and p[0] == b'+':
        i = 1
    while i < n:
        d = p[i] - 48
        if 0 <= d <= 9:
            any_digit = True
            if dot:
                if frac >= scale:
                    if d != 0:
                        return DEC_TOO_FINE
                    i += 1
                    continue
                frac += 1
            if v > 922337203685477580LL:   # (2^63 - 1) // 10
                return DEC_OVERFLOW
            v = v * 10 + d
        elif p[i] == b'.' and not dot:
            dot = True
        else:
            return DEC_BADCHAR
        i += 1
    if not any_digit:
        return DEC_EMPTY
    while frac < scale:
        if v > 922337203685477580LL:
            return DEC_OVERFLOW
        v *= 10
        frac += 1
    out[0] = -v if neg else v
    return DEC_OK


cdef inline int decimals_of(const char *p, Py_ssize_t n) noexcept nogil:
    """Digits after the decimal point as printed ("61800.30" -> 2, "12" -> 0)."""
    cdef Py_ssize_t i
    for i in range(n):
        if p[i] == b'.':
            return <int>(n - i - 1)
    return 0
