# Single-writer, multi-reader broadcast ring over POSIX shared memory.
# The C core is shm_core.h; this module turns its status codes into exceptions
# at the Python boundary and offers cdef entry points for other Cython modules.

from libc.stdint cimport int64_t, uint64_t
from cext.shm_core cimport Mapping, cs_ring_hdr


cdef class _Buf:
    cdef Py_buffer view
    cdef bint held


cdef class RingWriter:
    """The one writer of a ring."""
    cdef Mapping _map              # the mapped segment
    cdef cs_ring_hdr *hdr          # its header
    cdef readonly object dtype     # record dtype
    cdef readonly Py_ssize_t record_size
    cdef readonly uint64_t capacity

    @staticmethod
    cdef RingWriter _wrap(Mapping m, object dt)
    cdef _alive(self)

    # ---- hot path (nogil, never fails)
    cdef uint64_t publish_ptr(self, const void *rec) noexcept nogil
    cdef uint64_t publish_many_ptr(self, const char *recs, uint64_t n) noexcept nogil

    # ---- Python API
    cpdef uint64_t publish(self, object rec) except? 0
    cpdef uint64_t publish_many(self, object recs) except? 0
    cpdef heartbeat(self)
    cpdef close(self)
    cpdef unlink(self)


cdef class RingReader:
    """One reader's view of a ring: its own cursor, wait strategy and counters."""
    cdef Mapping _map
    cdef cs_ring_hdr *hdr
    cdef int slot                  # index of this reader's slot in the header
    cdef uint64_t cursor_          # next sequence to read
    cdef readonly object dtype
    cdef readonly Py_ssize_t record_size
    cdef readonly uint64_t capacity
    cdef readonly int wait_mode    # CS_WAIT_SPIN / YIELD / BLOCK
    cdef readonly int64_t spin_iters
    cdef readonly uint64_t overruns
    cdef readonly uint64_t lost

    cdef _register(self)
    cdef void _publish_cursor(self) noexcept nogil
    cdef void _count_overrun(self) noexcept nogil
    cdef _alive(self)
    cdef _overrun(self)
    cdef _Buf _out(self, object out, Py_ssize_t min_records)

    # ---- hot path: CS_OK, CS_EMPTY, CS_OVERRUN, CS_TIMEOUT (no exceptions)
    cdef int try_read_ptr(self, void *out) noexcept nogil
    cdef int64_t try_read_many_ptr(self, char *out, uint64_t max_n) noexcept nogil
    cdef int wait_read_ptr(self, void *out, int64_t timeout_ns) noexcept nogil

    # ---- Python API (raises RingOverrun)
    cpdef int poll(self, object out) except -1
    cpdef int read(self, object out, int64_t timeout_ns=*) except -1
    cpdef Py_ssize_t read_many(self, object out) except -1
    cpdef uint64_t recover(self)
    cpdef close(self)
