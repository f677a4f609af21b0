# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Seqlock-protected shared structs.

    reg = Region.create("/cs.main.book", BOOK_TOP_DTYPE, nslots=4)   # one slot per instrument
    reg.write(0, rec)                     # the slot's single writer
    out = np.zeros(1, BOOK_TOP_DTYPE)
    Region.attach("/cs.main.book", BOOK_TOP_DTYPE).read(0, out)

Each slot is a 64-byte sequence line followed by the record. The writer makes the
sequence odd, copies, makes it even; a reader copies between two equal even values,
so it never returns a torn record. A writer that died mid-write leaves the slot odd:
``read`` then raises ``RegionTorn`` instead of spinning forever.
"""
import os
import numpy as np

from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcpy
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE, PyBUF_WRITABLE, PyBUF_ANY_CONTIGUOUS

from cext.shm_core cimport *
from cext.shm_core import layout_descr, layout_hash

cdef size_t _HDR = ((sizeof(cs_region_hdr) + 4095) // 4096) * 4096
cdef int64_t MAX_RETRIES = 1000000


class RegionLayoutError(Exception):
    """The region's header does not match what the attaching process expects."""


class RegionTorn(Exception):
    """A slot stayed mid-write for too long (its writer died while writing it)."""


cdef extern from *:
    """
    static inline void cs_region_store_magic(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
    """
    void cs_region_store_magic(uint64_t *p, uint64_t v) nogil


cdef class Region:

    @staticmethod
    def create(str name, dtype, uint64_t nslots):
        """Create a zero-filled region of ``nslots`` records (fails if it exists)."""
        dt = np.dtype(dtype)
        if nslots < 1:
            raise ValueError("a region needs at least one slot")
        stride = 64 + ((dt.itemsize + 63) // 64) * 64
        cdef Mapping m = Mapping.create(name, _HDR + nslots * stride)
        cdef cs_region_hdr *h = <cs_region_hdr *>m.base
        descr = layout_descr(dt).encode()[:CS_DESCR_LEN - 1]
        memcpy(h.dtype_descr, <char *>descr, len(descr))
        h.version = CS_SHM_VERSION
        h.record_size = dt.itemsize
        h.nslots = nslots
        h.slot_stride = stride
        h.dtype_hash = layout_hash(dt)
        h.header_size = _HDR
        h.created_ns = cs_wall_ns()
        h.owner_pid = os.getpid()
        cs_region_store_magic(&h.magic, CS_REGION_MAGIC)
        return Region._wrap(m, dt)

    @staticmethod
    def attach(str name, dtype):
        """Map an existing region; refuses another record layout."""
        cdef Mapping m = Mapping.open(name)
        cdef cs_region_hdr *h = <cs_region_hdr *>m.base
        dt = np.dtype(dtype)
        if m.size < _HDR or h.magic != CS_REGION_MAGIC:
            m.close()
            raise RegionLayoutError(f"{name} is not a cryptoscalp region (bad magic)")
        if h.version != CS_SHM_VERSION or h.record_size != dt.itemsize or h.dtype_hash != layout_hash(dt):
            theirs = h.dtype_descr[:CS_DESCR_LEN].decode(errors="replace")
            m.close()
            raise RegionLayoutError(
                f"region {name} holds records of layout [{theirs}]; this process expects "
                f"[{layout_descr(dt)}]. Restart both sides with the same engine.schema.")
        if m.size < h.header_size + h.nslots * h.slot_stride:
            m.close()
            raise RegionLayoutError(f"region {name} is truncated")
        return Region._wrap(m, dt)

    @staticmethod
    cdef Region _wrap(Mapping m, object dt):
        cdef Region r = Region.__new__(Region)
        r._map = m
        r.hdr = <cs_region_hdr *>m.base
        r.dtype = dt
        r.record_size = dt.itemsize
        r.nslots = r.hdr.nslots
        r.torn_retries = 0
        return r

    cdef void write_ptr(self, uint64_t slot, const void *rec) noexcept nogil:
        cs_region_write(self.hdr, slot, rec)

    cdef int64_t read_ptr(self, uint64_t slot, void *out) noexcept nogil:
        cdef int64_t r = cs_region_read(self.hdr, slot, out, MAX_RETRIES)
        if r > 0:
            self.torn_retries += r
        return r

    cdef _check(self, uint64_t slot):
        if self.hdr == NULL:
            raise ValueError("region is closed")
        if slot >= self.nslots:
            raise IndexError(f"slot {slot} out of range: region {self._map.name} has {self.nslots} slots")

    cpdef write(self, uint64_t slot, object rec):
        """Write one record into ``slot`` (one writer per slot)."""
        self._check(slot)
        cdef Py_buffer v
        PyObject_GetBuffer(rec, &v, PyBUF_ANY_CONTIGUOUS | PyBUF_SIMPLE)
        try:
            if v.len != self.record_size:
                raise ValueError(f"record is {v.len} bytes, region records are {self.record_size}")
            with nogil:
                cs_region_write(self.hdr, slot, v.buf)
        finally:
            PyBuffer_Release(&v)

    cpdef read(self, uint64_t slot, object out):
        """Copy a consistent snapshot of ``slot`` into ``out`` (a writable 1-record buffer)."""
        self._check(slot)
        cdef Py_buffer v
        cdef int64_t r
        PyObject_GetBuffer(out, &v, PyBUF_ANY_CONTIGUOUS | PyBUF_WRITABLE)
        try:
            if v.len != self.record_size:
                raise ValueError(f"output is {v.len} bytes, region records are {self.record_size}")
            with nogil:
                r = self.read_ptr(slot, v.buf)
        finally:
            PyBuffer_Release(&v)
        if r < 0:
            raise RegionTorn(f"region {self._map.name} slot {slot} stayed mid-write "
                             f"for {MAX_RETRIES} retries: its writer died while writing")

    def snapshot(self):
        """All slots as a new numpy array (each slot consistent on its own)."""
        out = np.zeros(self.nslots, self.dtype)
        for i in range(self.nslots):
            self.read(i, out[i:i + 1])
        return out

    @property
    def name(self):
        return self._map.name

    @property
    def owner_pid(self):
        return self.hdr.owner_pid

    cpdef close(self):
        if self.hdr != NULL:
            self.hdr = NULL
            self._map.close()

    cpdef unlink(self):
        self._map.unlink()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()
