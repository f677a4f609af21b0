# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Single-writer, multi-reader broadcast ring over POSIX shared memory.

    w = RingWriter.create("/cs.main.market", MARKET_DTYPE, capacity=1 << 16)
    r = RingReader("/cs.main.market", MARKET_DTYPE, wait="block")
    w.publish(rec)                      # never blocks
    out = np.zeros(1, MARKET_DTYPE)
    r.read(out, timeout_ns=10**9)       # 1 record, or 0 on timeout; RingOverrun if lapped

The header carries magic, version, record size and a hash of the record dtype;
attaching with another layout raises ``RingLayoutError``. Each reader owns a slot in the
header (pid, cursor, overruns) so lag is observable from outside. See shm_core.h for
the memory-ordering argument.
"""
import os
import numpy as np

from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE, PyBUF_WRITABLE, PyBUF_ANY_CONTIGUOUS
from libc.stdint cimport int64_t, uint64_t, uint32_t
from libc.string cimport memset, memcpy

from cext.shm_core cimport *
from cext.shm_core import layout_descr, layout_hash, pid_alive, cleanup_stale

WAIT_MODES = {"spin": CS_WAIT_SPIN, "yield": CS_WAIT_YIELD, "block": CS_WAIT_BLOCK}
DEFAULT_SPIN = {"spin": 0, "yield": 2000, "block": 2000}

cdef size_t _HDR = ((sizeof(cs_ring_hdr) + 4095) // 4096) * 4096


class RingError(Exception):
    """Base class of ring errors."""


class RingLayoutError(RingError):
    """The ring's header does not match what the attaching process expects."""


class RingOverrun(RingError):
    """The reader fell more than a lap behind: records were overwritten before it read them.

    ``missed`` is how many records are gone at the time of the check. Call
    ``reader.recover()`` to jump to the oldest record still readable (it counts them as lost).
    """
    def __init__(self, name, cursor, write_seq, capacity):
        self.name, self.cursor, self.write_seq, self.capacity = name, cursor, write_seq, capacity
        self.missed = max(0, write_seq - cursor - capacity)
        super().__init__(
            f"ring {name}: reader at seq {cursor} was overrun (writer at {write_seq}, "
            f"capacity {capacity}); call recover() to skip to the oldest readable record")


class RingFull(RingError):
    """No free reader slot in the ring's header."""


cdef inline bint _is_pow2(uint64_t x):
    return x != 0 and (x & (x - 1)) == 0


cdef _check_header(cs_ring_hdr *h, Mapping m, object dtype):
    if m.size < _HDR or h.magic != CS_RING_MAGIC:
        raise RingLayoutError(f"{m.name} is not a cryptoscalp ring (bad magic)")
    if h.version != CS_SHM_VERSION:
        raise RingLayoutError(f"ring {m.name} has version {h.version}, this build speaks {CS_SHM_VERSION}")
    dt = np.dtype(dtype)
    if h.record_size != dt.itemsize or h.dtype_hash != layout_hash(dt):
        theirs = h.dtype_descr[:CS_DESCR_LEN].decode(errors="replace")
        raise RingLayoutError(
            f"ring {m.name} holds records of layout [{theirs}] ({h.record_size} bytes); this process "
            f"expects [{layout_descr(dt)}] ({dt.itemsize} bytes). Rebuild or restart both sides "
            "with the same engine.schema.")
    if m.size < h.header_size + h.capacity * h.record_size:
        raise RingLayoutError(f"ring {m.name} is truncated ({m.size} bytes)")


cdef class _Buf:
    """A held contiguous buffer (what a numpy record/array or bytes exposes)."""
    def __cinit__(self, object obj, bint writable):
        flags = PyBUF_ANY_CONTIGUOUS | (PyBUF_WRITABLE if writable else PyBUF_SIMPLE)
        PyObject_GetBuffer(obj, &self.view, flags)
        self.held = True
    def __dealloc__(self):
        if self.held:
            PyBuffer_Release(&self.view)


cdef class RingWriter:
    """The writer of a ring. ``create`` makes a new segment; ``takeover`` lets a restarted
    writer continue an existing ring whose previous writer died (readers keep their cursors)."""

    @staticmethod
    def create(str name, dtype, uint64_t capacity):
        dt = np.dtype(dtype)
        if not _is_pow2(capacity):
            raise ValueError(f"ring capacity must be a power of two, got {capacity}")
        if dt.itemsize % 8:
            raise ValueError(f"ring records must be a multiple of 8 bytes, {dt} is {dt.itemsize}")
        cdef Mapping m = Mapping.create(name, _HDR + capacity * dt.itemsize)
        cdef cs_ring_hdr *h = <cs_ring_hdr *>m.base
        descr = layout_descr(dt).encode()[:CS_DESCR_LEN - 1]
        memcpy(h.dtype_descr, <char *>descr, len(descr))
        h.version = CS_SHM_VERSION
        h.record_size = dt.itemsize
        h.capacity = capacity
        h.mask = capacity - 1
        h.dtype_hash = layout_hash(dt)
        h.header_size = _HDR
        h.created_ns = cs_wall_ns()
        h.writer_pid = os.getpid()
        h.heartbeat_ns = cs_mono_ns()
        # magic last: a reader that sees it sees a complete header
        __atomic_store_magic(h)
        return RingWriter._wrap(m, dt)

    @staticmethod
    def takeover(str name, dtype):
        """Become the writer of an existing ring whose writer is dead."""
        cdef Mapping m = Mapping.open(name)
        cdef cs_ring_hdr *h = <cs_ring_hdr *>m.base
        cdef int64_t pid
        try:
            _check_header(h, m, dtype)
        except Exception:
            m.close()
            raise
        pid = h.writer_pid
        if pid_alive(pid) and not h.closed:
            m.close()
            raise RingError(f"ring {name} still has a live writer (pid {pid})")
        h.writer_pid = os.getpid()
        h.closed = 0
        h.takeovers += 1
        h.heartbeat_ns = cs_mono_ns()
        return RingWriter._wrap(m, np.dtype(dtype))

    @staticmethod
    cdef RingWriter _wrap(Mapping m, object dt):
        cdef RingWriter w = RingWriter.__new__(RingWriter)
        w._map = m
        w.hdr = <cs_ring_hdr *>m.base
        w.dtype = dt
        w.record_size = dt.itemsize
        w.capacity = w.hdr.capacity
        return w

    cdef uint64_t publish_ptr(self, const void *rec) noexcept nogil:
        return cs_ring_publish(self.hdr, rec)

    cdef uint64_t publish_many_ptr(self, const char *recs, uint64_t n) noexcept nogil:
        return cs_ring_publish_many(self.hdr, recs, n)

    cdef _alive(self):
        if self.hdr == NULL:
            raise RingError("ring writer is closed")

    cpdef uint64_t publish(self, object rec) except? 0:
        """Publish one record (a numpy record, a 1-element array, or bytes of the record size).
        Returns its sequence number."""
        self._alive()
        cdef _Buf b = _Buf(rec, False)
        if b.view.len != self.record_size:
            raise ValueError(f"record is {b.view.len} bytes, ring records are {self.record_size}")
        return cs_ring_publish(self.hdr, b.view.buf)

    cpdef uint64_t publish_many(self, object recs) except? 0:
        """Publish a contiguous array of records with one cursor update. Returns the first seq."""
        self._alive()
        cdef _Buf b = _Buf(recs, False)
        if b.view.len % self.record_size:
            raise ValueError(f"buffer of {b.view.len} bytes is not a whole number of {self.record_size}-byte records")
        return cs_ring_publish_many(self.hdr, <const char *>b.view.buf, b.view.len // self.record_size)

    cpdef heartbeat(self):
        """Stamp the writer's heartbeat (CLOCK_MONOTONIC); readers check its age."""
        self._alive()
        self.hdr.heartbeat_ns = cs_mono_ns()

    @property
    def write_seq(self):
        return self.hdr.write_seq if self.hdr != NULL else 0

    def min_cursor(self):
        """Lowest cursor among attached readers (``write_seq`` if none): what a producer
        that wants flow control (a replay, a test) may compare against. The ring itself
        never waits for readers."""
        self._alive()
        cdef uint64_t m = self.hdr.write_seq
        cdef int i
        for i in range(CS_MAX_READERS):
            if self.hdr.readers[i].active and self.hdr.readers[i].cursor < m:
                m = self.hdr.readers[i].cursor
        return m

    @property
    def name(self):
        return self._map.name

    cpdef close(self):
        """Mark the ring closed (readers see ``writer_closed``) and unmap it."""
        if self.hdr != NULL:
            self.hdr.closed = 1
            self.hdr = NULL
            self._map.close()

    cpdef unlink(self):
        self._map.unlink()

    def stats(self):
        return _stats(<cs_ring_hdr *>self._map.base, self._map) if self.hdr != NULL else {}

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


cdef inline void __atomic_store_magic(cs_ring_hdr *h) noexcept nogil:
    cs_store_magic(&h.magic, CS_RING_MAGIC)


cdef extern from *:
    """
    static inline void cs_store_magic(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
    static inline uint32_t cs_cas_u32(uint32_t *p, uint32_t expected, uint32_t desired) {
        return __atomic_compare_exchange_n(p, &expected, desired, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
    }
    static inline void cs_store_u64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
    """
    void cs_store_magic(uint64_t *p, uint64_t v) nogil
    uint32_t cs_cas_u32(uint32_t *p, uint32_t expected, uint32_t desired) nogil
    void cs_store_u64(uint64_t *p, uint64_t v) nogil


cdef dict _stats(cs_ring_hdr *h, Mapping m):
    readers = []
    for i in range(CS_MAX_READERS):
        if h.readers[i].active:
            readers.append({"slot": i, "pid": h.readers[i].pid, "cursor": h.readers[i].cursor,
                            "lag": h.write_seq - h.readers[i].cursor, "overruns": h.readers[i].overruns,
                            "lost": h.readers[i].lost, "alive": pid_alive(h.readers[i].pid)})
    return {"name": m.name, "capacity": h.capacity, "record_size": h.record_size,
            "write_seq": h.write_seq, "writer_pid": h.writer_pid, "closed": bool(h.closed),
            "takeovers": h.takeovers, "wakeups": h.wakeups,
            "heartbeat_age_ns": cs_mono_ns() - h.heartbeat_ns, "readers": readers}


cdef class RingReader:
    """A reader with its own cursor.

    wait: "spin" (busy loop with pause), "yield" (spin ``spin`` times then sched_yield),
          "block" (spin ``spin`` times then sleep on a futex; the writer wakes it).
    start: "next" (only records published after attaching) or "oldest" (everything
           still in the ring).
    """

    def __cinit__(self):
        self.slot = -1
        self.hdr = NULL

    def __init__(self, str name, dtype, str wait="spin", spin=None, str start="next"):
        if wait not in WAIT_MODES:
            raise ValueError(f"wait must be one of {sorted(WAIT_MODES)}, got {wait!r}")
        if start not in ("next", "oldest"):
            raise ValueError(f"start must be 'next' or 'oldest', got {start!r}")
        self._map = Mapping.open(name)
        self.hdr = <cs_ring_hdr *>self._map.base
        try:
            _check_header(self.hdr, self._map, dtype)
        except Exception:
            self.hdr = NULL
            self._map.close()
            raise
        self.dtype = np.dtype(dtype)
        self.record_size = self.dtype.itemsize
        self.capacity = self.hdr.capacity
        self.wait_mode = WAIT_MODES[wait]
        self.spin_iters = DEFAULT_SPIN[wait] if spin is None else int(spin)
        ws = self.hdr.write_seq
        self.cursor_ = ws if start == "next" else (ws - self.capacity if ws > self.capacity else 0)
        self._register()

    cdef _register(self):
        cdef int i
        cdef cs_reader_slot *r
        me = os.getpid()
        for attempt in range(2):
            for i in range(CS_MAX_READERS):
                r = &self.hdr.readers[i]
                if r.active and attempt == 1 and not pid_alive(r.pid):
                    # reclaim the slot of a dead reader
                    if cs_cas_u32(&r.active, 1, 0) == 0:
                        continue
                if cs_cas_u32(&r.active, 0, 1):
                    r.pid = me
                    r.cursor = self.cursor_
                    r.overruns = 0
                    r.lost = 0
                    r.attach_ns = cs_wall_ns()
                    r.wait_mode = self.wait_mode
                    self.slot = i
                    return
        self._map.close()
        self.hdr = NULL
        raise RingFull(f"ring {self._map.name} has no free reader slot ({CS_MAX_READERS} readers alive)")

    cdef void _publish_cursor(self) noexcept nogil:
        cs_store_u64(&self.hdr.readers[self.slot].cursor, self.cursor_)

    cdef void _count_overrun(self) noexcept nogil:
        self.overruns += 1
        self.hdr.readers[self.slot].overruns = self.overruns

    cdef int try_read_ptr(self, void *out) noexcept nogil:
        cdef int r = cs_ring_try_read(self.hdr, &self.cursor_, out)
        if r == CS_OVERRUN:
            self._count_overrun()
        return r

    cdef int64_t try_read_many_ptr(self, char *out, uint64_t max_n) noexcept nogil:
        cdef int64_t n = cs_ring_try_read_many(self.hdr, &self.cursor_, out, max_n)
        if n == CS_OVERRUN:
            self._count_overrun()
        return n

    cdef int wait_read_ptr(self, void *out, int64_t timeout_ns) noexcept nogil:
        cdef int r = cs_ring_wait_read(self.hdr, &self.cursor_, out, self.wait_mode,
                                       self.spin_iters, timeout_ns)
        if r == CS_OVERRUN:
            self._count_overrun()
        return r

    cdef _alive(self):
        if self.hdr == NULL:
            raise RingError("ring reader is closed")

    cdef _overrun(self):
        self._publish_cursor()
        raise RingOverrun(self._map.name, self.cursor_, self.hdr.write_seq, self.capacity)

    cdef _Buf _out(self, object out, Py_ssize_t min_records):
        cdef _Buf b = _Buf(out, True)
        if b.view.len < min_records * self.record_size or b.view.len % self.record_size:
            raise ValueError(f"output buffer of {b.view.len} bytes does not hold whole "
                             f"{self.record_size}-byte records")
        return b

    cpdef int poll(self, object out) except -1:
        """Read the next record into ``out`` if one is there: 1, else 0. Raises RingOverrun."""
        self._alive()
        cdef _Buf b = self._out(out, 1)
        cdef int r = self.try_read_ptr(b.view.buf)
        if r == CS_OVERRUN:
            self._overrun()
        if r == CS_OK:
            self._publish_cursor()
        return r

    cpdef int read(self, object out, int64_t timeout_ns=-1) except -1:
        """Wait (per the reader's strategy, GIL released) for the next record: 1, or 0 on
        timeout (``timeout_ns`` < 0 waits forever). Raises RingOverrun."""
        self._alive()
        cdef _Buf b = self._out(out, 1)
        cdef int r
        cdef void *p = b.view.buf
        with nogil:
            r = self.wait_read_ptr(p, timeout_ns)
        if r == CS_OVERRUN:
            self._overrun()
        if r == CS_OK:
            self._publish_cursor()
            return 1
        return 0

    cpdef Py_ssize_t read_many(self, object out) except -1:
        """Copy every available record (up to len(out)) into ``out``; returns how many.
        All-or-nothing: on overrun nothing is consumed and RingOverrun is raised."""
        self._alive()
        cdef _Buf b = self._out(out, 1)
        cdef int64_t n = self.try_read_many_ptr(<char *>b.view.buf, b.view.len // self.record_size)
        if n == CS_OVERRUN:
            self._overrun()
        self._publish_cursor()
        return n

    cpdef uint64_t recover(self):
        """After an overrun: move the cursor to the oldest record that is still safe to read
        (leaving a margin of 1/8 of the ring against the running writer) and count the
        skipped records as lost. Returns how many were skipped."""
        self._alive()
        cdef uint64_t ws = self.hdr.write_seq
        cdef uint64_t margin = self.capacity // 8
        cdef uint64_t oldest = ws - self.capacity + margin if ws > self.capacity - margin else 0
        cdef uint64_t skipped = 0
        if oldest > self.cursor_:
            skipped = oldest - self.cursor_
            self.cursor_ = oldest
        self.lost += skipped
        self.hdr.readers[self.slot].lost = self.lost
        self._publish_cursor()
        return skipped

    @property
    def cursor(self):
        return self.cursor_

    @property
    def lag(self):
        """Records published but not yet read by this reader."""
        return self.hdr.write_seq - self.cursor_ if self.hdr != NULL else 0

    @property
    def name(self):
        return self._map.name

    @property
    def writer_pid(self):
        return self.hdr.writer_pid

    @property
    def writer_closed(self):
        return bool(self.hdr.closed)

    def heartbeat_age_ns(self):
        """Nanoseconds since the writer's last heartbeat."""
        self._alive()
        return cs_mono_ns() - self.hdr.heartbeat_ns

    def writer_alive(self, int64_t max_heartbeat_age_ns=-1):
        """False if the writer closed the ring, its process is gone, or (when a bound is
        given) its heartbeat is older than ``max_heartbeat_age_ns``."""
        self._alive()
        if self.hdr.closed or not pid_alive(self.hdr.writer_pid):
            return False
        if max_heartbeat_age_ns >= 0 and cs_mono_ns() - self.hdr.heartbeat_ns > max_heartbeat_age_ns:
            return False
        return True

    def stats(self):
        self._alive()
        return _stats(self.hdr, self._map)

    cpdef close(self):
        """Release the reader slot and unmap."""
        if self.hdr != NULL:
            if self.slot >= 0:
                self.hdr.readers[self.slot].pid = 0
                cs_cas_u32(&self.hdr.readers[self.slot].active, 1, 0)
            self.hdr = NULL
            self._map.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def __dealloc__(self):
        if self.hdr != NULL and self.slot >= 0:
            self.hdr.readers[self.slot].pid = 0
            cs_cas_u32(&self.hdr.readers[self.slot].active, 1, 0)
