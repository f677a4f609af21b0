# Seqlock-protected shared structs: top-N book levels, positions and risk state,
# per-process heartbeats and counters. One writer per slot, any number of readers.

from libc.stdint cimport int64_t, uint64_t
from cext.shm_core cimport Mapping, cs_region_hdr


cdef class Region:
    """An array of ``nslots`` records of one dtype in shared memory, each under a seqlock."""
    cdef Mapping _map
    cdef cs_region_hdr *hdr
    cdef readonly object dtype          # record dtype of one slot
    cdef readonly Py_ssize_t record_size
    cdef readonly uint64_t nslots
    cdef readonly uint64_t torn_retries # reads that had to retry because a write overlapped

    @staticmethod
    cdef Region _wrap(Mapping m, object dt)
    cdef _check(self, uint64_t slot)

    # ---- hot path
    cdef void write_ptr(self, uint64_t slot, const void *rec) noexcept nogil
    cdef int64_t read_ptr(self, uint64_t slot, void *out) noexcept nogil

    # ---- Python API
    cpdef write(self, uint64_t slot, object rec)
    cpdef read(self, uint64_t slot, object out)
    cpdef close(self)
    cpdef unlink(self)
