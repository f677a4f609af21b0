# cython: language_level=3, boundscheck=False, wraparound=False
"""Shared-memory plumbing common to rings and regions.

- ``Mapping``: create / open / close / unlink a named POSIX shared-memory segment.
- ``layout_descr`` / ``layout_hash``: a canonical description of a numpy record dtype
  (field names, types, shapes, offsets, item size). Rings and regions store the hash
  in their header and refuse to attach with a different layout.
- ``find_segments`` / ``cleanup_stale``: segments left by a crashed run, by name prefix.
- ``set_parent_death_signal``: a child that outlives its parent gets a signal.
"""
import hashlib
import os
import signal as _signal

from libc.string cimport memcmp
from libc.stdint cimport uint64_t, int64_t
from libc.errno cimport errno
from libc.string cimport strerror

SHM_DIR = "/dev/shm"


def layout_descr(dtype):
    """Canonical text of a structured dtype's layout: ``name:type shape@offset;...|itemsize``."""
    import numpy as np
    dt = np.dtype(dtype)
    if dt.names is None:
        raise TypeError(f"a record layout must be a structured dtype, got {dt!r}")
    parts = []
    for name in dt.names:
        fdt, off = dt.fields[name][:2]
        parts.append(f"{name}:{fdt.base.str}{list(fdt.shape) if fdt.shape else ''}@{off}")
    return ";".join(parts) + f"|{dt.itemsize}"


def layout_hash(dtype):
    """64-bit hash of ``layout_descr(dtype)`` (blake2b)."""
    d = hashlib.blake2b(layout_descr(dtype).encode(), digest_size=8).digest()
    return int.from_bytes(d, "little")


def check_name(str name):
    """Validate a POSIX shared-memory name: one leading '/', no other '/'."""
    if not name.startswith("/") or "/" in name[1:] or len(name) < 2 or len(name) > 250:
        raise ValueError(
            f"shared-memory name {name!r} is invalid: it must start with '/', contain no other '/', "
            "and be 2..250 characters (e.g. '/cs.main.market')")
    return name


cdef class Mapping:
    """A named POSIX shared-memory segment mapped read-write into this process."""

    def __cinit__(self):
        self.base = NULL
        self.size = 0
        self.created = False

    @staticmethod
    def create(str name, size_t size):
        """Create a new segment (fails if it exists) of ``size`` bytes, zero-filled."""
        cdef Mapping m = Mapping.__new__(Mapping)
        cdef bytes bname = check_name(name).encode()
        cdef int fd = shm_open(bname, O_RDWR | O_CREAT | O_EXCL, 0o600)
        if fd < 0:
            err = errno
            if err == 17:  # EEXIST
                raise FileExistsError(
                    f"shared-memory segment {name!r} already exists; another writer owns it or a "
                    "crashed run left it (cleanup_stale() removes segments whose owner is dead)")
            raise OSError(err, f"shm_open({name!r}) failed: {strerror(err).decode()}")
        if ftruncate(fd, <long>size) != 0:
            err = errno
            close(fd)
            shm_unlink(bname)
            raise OSError(err, f"ftruncate({name!r}, {size}) failed: {strerror(err).decode()}")
        m._map(fd, size, name)
        m.created = True
        return m

    @staticmethod
    def open(str name):
        """Open and map an existing segment, whatever its size."""
        cdef Mapping m = Mapping.__new__(Mapping)
        cdef bytes bname = check_name(name).encode()
        cdef stat st
        cdef int fd = shm_open(bname, O_RDWR, 0)
        if fd < 0:
            err = errno
            if err == 2:
                raise FileNotFoundError(f"shared-memory segment {name!r} does not exist (is its writer running?)")
            raise OSError(err, f"shm_open({name!r}) failed: {strerror(err).decode()}")
        if fstat(fd, &st) != 0:
            err = errno
            close(fd)
            raise OSError(err, f"fstat({name!r}) failed")
        m._map(fd, <size_t>st.st_size, name)
        return m

    cdef _map(self, int fd, size_t size, str name):
        cdef void *p
        if size == 0:
            close(fd)
            raise ValueError(f"shared-memory segment {name!r} is empty (its creator died while creating it?)")
        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0)
        err = errno
        close(fd)
        if p == MAP_FAILED:
            raise OSError(err, f"mmap({name!r}, {size}) failed: {strerror(err).decode()}")
        self.base = <char *>p
        self.size = size
        self.name = name

    cpdef close(self):
        """Unmap (the segment stays for other processes)."""
        if self.base != NULL:
            munmap(self.base, self.size)
            self.base = NULL

    cpdef unlink(self):
        """Remove the segment's name; mappings that exist stay valid until closed."""
        if self.name is not None:
            shm_unlink(self.name.encode())

    @property
    def closed(self):
        return self.base == NULL

    def __dealloc__(self):
        if self.base != NULL:
            munmap(self.base, self.size)
            self.base = NULL


def pid_alive(int64_t pid):
    """True if a process with this pid exists (a zombie counts as dead)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except OSError:
        return True


def segment_owner(str name):
    """(kind, owner_pid) of a segment from its header: kind is 'ring', 'region' or None."""
    cdef Mapping m
    try:
        m = Mapping.open(name)
    except (OSError, ValueError):
        return None, 0
    try:
        if m.size >= sizeof(cs_ring_hdr) and (<cs_ring_hdr *>m.base).magic == CS_RING_MAGIC:
            return "ring", (<cs_ring_hdr *>m.base).writer_pid
        if m.size >= sizeof(cs_region_hdr) and (<cs_region_hdr *>m.base).magic == CS_REGION_MAGIC:
            return "region", (<cs_region_hdr *>m.base).owner_pid
        return None, 0
    finally:
        m.close()


def find_segments(str prefix):
    """Names ('/'-prefixed) of the segments in /dev/shm whose name starts with ``prefix``."""
    p = prefix.lstrip("/")
    try:
        entries = os.listdir(SHM_DIR)
    except FileNotFoundError:
        return []
    return sorted("/" + e for e in entries if e.startswith(p))


def cleanup_stale(str prefix):
    """Unlink segments named ``prefix*`` whose owner process is dead (or whose header is
    not ours). Returns the list of names removed. Segments of live owners are kept."""
    removed = []
    for name in find_segments(prefix):
        kind, pid = segment_owner(name)
        if kind is not None and pid_alive(pid):
            continue
        shm_unlink(name.encode())
        removed.append(name)
    return removed


cdef extern from "<sys/prctl.h>" nogil:
    int prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4, unsigned long arg5)
    int PR_SET_PDEATHSIG


def set_parent_death_signal(int sig=_signal.SIGTERM, int expected_parent=0):
    """Ask the kernel to send ``sig`` to this process when its parent dies.

    If ``expected_parent`` is given and the parent already died before the call (our
    parent pid differs), the signal is raised at once, closing the race.
    """
    if prctl(PR_SET_PDEATHSIG, <unsigned long>sig, 0, 0, 0) != 0:
        raise OSError(errno, "prctl(PR_SET_PDEATHSIG) failed")
    if expected_parent and os.getppid() != expected_parent:
        os.kill(os.getpid(), sig)


def mono_ns():
    """CLOCK_MONOTONIC in ns (the clock of every ``mono_*`` stamp)."""
    return cs_mono_ns()
