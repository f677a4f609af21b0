# Declarations of the C core (shm_core.h) and the POSIX shared-memory calls.
# Everything here is nogil: the .pyx files release the GIL around waits.

from libc.stdint cimport int64_t, uint64_t, uint32_t

cdef extern from "shm_core.h" nogil:
    # ---- constants
    const uint64_t CS_RING_MAGIC
    const uint64_t CS_REGION_MAGIC
    const unsigned int CS_SHM_VERSION
    const int CS_MAX_READERS
    const int CS_DESCR_LEN
    const int CS_CACHE_LINE
    const int CS_OK
    const int CS_EMPTY
    const int CS_OVERRUN
    const int CS_TIMEOUT
    const int CS_WAIT_SPIN
    const int CS_WAIT_YIELD
    const int CS_WAIT_BLOCK

    ctypedef struct cs_reader_slot:
        int64_t pid            # reader process id, 0 when free
        uint64_t cursor        # next sequence this reader reads
        uint64_t overruns      # overruns hit
        uint64_t lost          # records skipped by recover()
        int64_t attach_ns      # CLOCK_REALTIME ns at attach
        uint32_t active        # 1 when taken
        uint32_t wait_mode     # CS_WAIT_*

    ctypedef struct cs_ring_hdr:
        uint64_t magic
        uint32_t version
        uint32_t record_size
        uint64_t capacity
        uint64_t mask
        uint64_t dtype_hash
        uint64_t header_size
        int64_t created_ns
        uint64_t write_seq
        uint64_t claim_seq
        int64_t writer_pid
        int64_t heartbeat_ns
        uint64_t closed
        uint64_t takeovers
        uint32_t futex_word
        uint32_t waiters
        uint64_t wakeups
        char dtype_descr[1024]
        cs_reader_slot readers[32]

    ctypedef struct cs_region_hdr:
        uint64_t magic
        uint32_t version
        uint32_t record_size
        uint64_t nslots
        uint64_t slot_stride
        uint64_t dtype_hash
        uint64_t header_size
        int64_t created_ns
        int64_t owner_pid
        char dtype_descr[1024]

    int64_t cs_mono_ns()
    int64_t cs_wall_ns()
    void cs_cpu_relax()
    char *cs_ring_slot(cs_ring_hdr *h, uint64_t seq)
    uint64_t cs_ring_publish(cs_ring_hdr *h, const void *rec)
    uint64_t cs_ring_publish_many(cs_ring_hdr *h, const char *recs, uint64_t n)
    int cs_ring_try_read(cs_ring_hdr *h, uint64_t *cursor, void *out)
    int64_t cs_ring_try_read_many(cs_ring_hdr *h, uint64_t *cursor, char *out, uint64_t max)
    int cs_ring_wait_read(cs_ring_hdr *h, uint64_t *cursor, void *out, int mode,
                          int64_t spin_iters, int64_t timeout_ns)
    void cs_region_write(cs_region_hdr *h, uint64_t slot, const void *rec)
    int64_t cs_region_read(cs_region_hdr *h, uint64_t slot, void *out, int64_t max_retries)


cdef extern from "<sys/mman.h>" nogil:
    int shm_open(const char *name, int oflag, int mode)
    int shm_unlink(const char *name)
    void *mmap(void *addr, size_t length, int prot, int flags, int fd, long offset)
    int munmap(void *addr, size_t length)
    int PROT_READ
    int PROT_WRITE
    int MAP_SHARED
    int MAP_POPULATE
    void *MAP_FAILED

cdef extern from "<fcntl.h>" nogil:
    int O_RDWR
    int O_CREAT
    int O_EXCL

cdef extern from "<unistd.h>" nogil:
    int ftruncate(int fd, long length)
    int close(int fd)

cdef extern from "<sys/stat.h>" nogil:
    cdef struct stat:
        long st_size
    int fstat(int fd, stat *buf)


cdef class Mapping:
    """A named POSIX shared-memory segment mapped into this process."""
    cdef readonly str name        # the segment name, e.g. "/cs.main.market"
    cdef char *base               # start of the mapping
    cdef readonly size_t size     # bytes mapped
    cdef readonly bint created    # True if this process created the segment
    cdef _map(self, int fd, size_t size, str name)
    cpdef close(self)
    cpdef unlink(self)
