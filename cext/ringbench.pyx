# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""C-speed loops over rings and regions for benchmarks and stress tests.

Python's own call overhead (~100 ns and up per call) would dominate a one-hop
measurement, so the timing loops live here, in nogil C, calling the same cdef entry
points the engine's Cython components use (publish_ptr, wait_read_ptr, ...).

Records used here are plain 64-byte MARKET records: ``seq`` carries the sequence and
``mono_origin`` the CLOCK_MONOTONIC send stamp. The "pattern" helpers fill every
8-byte word after the header with the same value, so a torn copy is detectable.
"""
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memset
from libc.stdlib cimport malloc, free

from cext.shm_core cimport cs_mono_ns, cs_cpu_relax, CS_OK, CS_EMPTY, CS_OVERRUN, CS_TIMEOUT
from cext.ring cimport RingWriter, RingReader
from cext.region cimport Region
from cext.schema cimport MarketRecord


def publish_stamped(RingWriter w, int64_t n, int64_t interval_ns):
    """Publish n records, one every interval_ns (busy-waiting between them), each stamped
    with seq = i and mono_origin = the clock just before publishing. Returns elapsed ns."""
    cdef MarketRecord rec
    cdef int64_t i, t0, nxt
    memset(&rec, 0, sizeof(rec))
    with nogil:
        t0 = cs_mono_ns()
        nxt = t0
        for i in range(n):
            if interval_ns > 0:
                while cs_mono_ns() < nxt:
                    cs_cpu_relax()
                nxt += interval_ns
            rec.seq = i
            rec.mono_origin = cs_mono_ns()
            w.publish_ptr(&rec)
        t0 = cs_mono_ns() - t0
    return t0


def read_latencies(RingReader r, int64_t[::1] lat, int64_t timeout_ns):
    """Read len(lat) records with the reader's wait strategy; lat[i] = receive clock -
    mono_origin. Returns (received, overruns, out_of_order). Stops at a timeout."""
    cdef MarketRecord rec
    cdef int64_t i = 0, n = lat.shape[0], overruns = 0, disorder = 0, expect = -1
    cdef int st
    with nogil:
        while i < n:
            st = r.wait_read_ptr(&rec, timeout_ns)
            if st == CS_OK:
                lat[i] = cs_mono_ns() - rec.mono_origin
                if expect >= 0 and rec.seq != expect:
                    disorder += 1
                expect = rec.seq + 1
                i += 1
            elif st == CS_OVERRUN:
                overruns += 1
                break
            else:
                break
        r._publish_cursor()
    return i, overruns, disorder


def publish_flow_controlled(RingWriter w, int64_t n, int64_t batch):
    """Publish n records as fast as possible, but never more than capacity/2 ahead of
    the slowest reader (read from the readers' published cursors). Returns elapsed ns."""
    cdef MarketRecord *buf = <MarketRecord *>malloc(sizeof(MarketRecord) * batch)
    cdef int64_t i = 0, j, k, t0
    cdef uint64_t half = w.capacity // 2
    if buf == NULL:
        raise MemoryError()
    memset(buf, 0, sizeof(MarketRecord) * batch)
    try:
        with nogil:
            t0 = cs_mono_ns()
            while i < n:
                k = batch if n - i > batch else n - i
                while w.hdr.write_seq + <uint64_t>k - _min_cursor(w) > half:
                    cs_cpu_relax()
                for j in range(k):
                    buf[j].seq = i + j
                if k == 1:
                    w.publish_ptr(buf)
                else:
                    w.publish_many_ptr(<const char *>buf, <uint64_t>k)
                i += k
            t0 = cs_mono_ns() - t0
    finally:
        free(buf)
    return t0


cdef inline uint64_t _min_cursor(RingWriter w) noexcept nogil:
    cdef uint64_t m = w.hdr.write_seq
    cdef int i
    for i in range(32):
        if w.hdr.readers[i].active and w.hdr.readers[i].cursor < m:
            m = w.hdr.readers[i].cursor
    return m


def read_count(RingReader r, int64_t n, int64_t batch, int64_t timeout_ns):
    """Read n records in batches of up to ``batch`` (spinning when empty), checking that
    sequences are contiguous. Returns (received, elapsed_ns from first record, gaps, overruns)."""
    cdef MarketRecord *buf = <MarketRecord *>malloc(sizeof(MarketRecord) * batch)
    cdef int64_t got = 0, k, j, t0 = 0, gaps = 0, overruns = 0, expect = 0, deadline
    if buf == NULL:
        raise MemoryError()
    try:
        with nogil:
            deadline = cs_mono_ns() + timeout_ns
            while got < n:
                k = r.try_read_many_ptr(<char *>buf, <uint64_t>batch)
                if k > 0:
                    if got == 0:
                        t0 = cs_mono_ns()
                    for j in range(k):
                        if buf[j].seq != expect:
                            gaps += 1
                        expect = buf[j].seq + 1
                    got += k
                    r._publish_cursor()
                elif k == CS_OVERRUN:
                    overruns += 1
                    break
                else:
                    cs_cpu_relax()
                    if cs_mono_ns() > deadline:
                        break
            t0 = cs_mono_ns() - t0
    finally:
        free(buf)
    return got, t0, gaps, overruns


def publish_pattern(RingWriter w, int64_t n):
    """Publish n records whose every word after the header equals the sequence, flat out."""
    cdef int64_t words[8]
    cdef int64_t i, j
    with nogil:
        for i in range(n):
            words[0] = 0
            for j in range(1, 8):
                words[j] = i
            w.publish_ptr(words)
    return n


def read_check_pattern(RingReader r, int64_t max_records, int64_t timeout_ns):
    """Read pattern records (see publish_pattern) until max_records were read or the ring
    stays empty for timeout_ns; recover after each overrun. Returns
    (read, torn, out_of_order, overruns, lost). torn must be 0."""
    cdef int64_t words[8]
    cdef int64_t got = 0, torn = 0, disorder = 0, overruns = 0, last = -1, j, idle_since
    cdef int st
    while got < max_records:
        with nogil:
            idle_since = cs_mono_ns()
            while True:
                st = r.try_read_ptr(words)
                if st == CS_OK:
                    for j in range(2, 8):
                        if words[j] != words[1]:
                            torn += 1
                            break
                    if words[1] <= last:
                        disorder += 1
                    last = words[1]
                    got += 1
                    idle_since = cs_mono_ns()
                    if got >= max_records:
                        break
                elif st == CS_OVERRUN:
                    break
                else:
                    cs_cpu_relax()
                    if cs_mono_ns() - idle_since > timeout_ns:
                        break
        if st == CS_OVERRUN:
            overruns += 1
            r.recover()
            continue
        break
    return got, torn, disorder, overruns, r.lost


def region_write_pattern(Region reg, uint64_t slot, int64_t n):
    """Write n records into ``slot`` whose every 8-byte word equals the iteration number."""
    cdef int64_t *words = <int64_t *>malloc(reg.record_size)
    cdef int64_t i, j, nw = reg.record_size // 8
    if words == NULL:
        raise MemoryError()
    with nogil:
        for i in range(n):
            for j in range(nw):
                words[j] = i
            reg.write_ptr(slot, words)
    free(words)
    return n


def region_read_check(Region reg, uint64_t slot, int64_t n):
    """Read ``slot`` n times; count snapshots whose words are not all equal (torn) and
    snapshots that went backwards. Returns (torn, backwards, retries, distinct values seen)."""
    cdef int64_t *words = <int64_t *>malloc(reg.record_size)
    cdef int64_t i, j, nw = reg.record_size // 8, torn = 0, back = 0, last = -1, distinct = 0
    cdef int64_t retries = 0, r
    if words == NULL:
        raise MemoryError()
    with nogil:
        for i in range(n):
            r = reg.read_ptr(slot, words)
            if r > 0:
                retries += r
            for j in range(1, nw):
                if words[j] != words[0]:
                    torn += 1
                    break
            if words[0] < last:
                back += 1
            if words[0] != last:
                distinct += 1
            last = words[0]
    free(words)
    return torn, back, retries, distinct
