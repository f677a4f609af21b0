/*
 * shm_core.h -- the C core of cryptoscalp's shared-memory transport.
 *
 * Two structures live in POSIX shared memory:
 *
 *   ring    single-writer, multi-reader broadcast ring of fixed-size records
 *           (Disruptor style). The writer never blocks; every reader has its own
 *           cursor. A reader that falls a lap behind gets CS_OVERRUN, never a torn
 *           or silently skipped record.
 *   region  an array of slots, each guarded by a seqlock: one writer per slot,
 *           any number of readers, readers never see a torn write.
 *
 * Memory ordering (GCC/Clang __atomic builtins, i.e. C11 atomics):
 *
 *   writer, record s:  claim_seq = s+1 (relaxed); fence(release);
 *                      copy record into slot s & mask;
 *                      write_seq = s+1 (release); fence(seq_cst);
 *                      if waiters: futex_word++, FUTEX_WAKE
 *
 *   reader, record s:  ws = write_seq (acquire); s >= ws -> empty;
 *                      ws - s > capacity -> overrun (slot reused already);
 *                      copy slot; fence(acquire); wc = claim_seq (relaxed);
 *                      wc - s > capacity -> overrun (the writer began to reuse
 *                      the slot while we copied; the copy may be torn, so drop it)
 *
 * The claim/publish pair is the seqlock argument applied to the whole ring: if the
 * reader's second load does not see the claim of record s+capacity, none of the
 * writer's stores into that slot can have been seen by the copy.
 *
 * All functions here are small, inline, allocation-free and nogil-safe.
 */
#ifndef CS_SHM_CORE_H
#define CS_SHM_CORE_H

#include <stdint.h>
#include <string.h>
#include <time.h>
#include <errno.h>
#include <unistd.h>
#include <sched.h>
#include <limits.h>
#include <sys/syscall.h>
#include <linux/futex.h>

#define CS_RING_MAGIC    0x314752494E525343ULL  /* "CSRNGRG1" little-endian-ish tag */
#define CS_REGION_MAGIC  0x314E4F4947455343ULL  /* "CSEGION1" */
#define CS_SHM_VERSION   1u
#define CS_MAX_READERS   32
#define CS_DESCR_LEN     1024
#define CS_CACHE_LINE    64

/* status codes returned by the hot functions */
#define CS_OK        1
#define CS_EMPTY     0
#define CS_OVERRUN  (-1)
#define CS_TIMEOUT  (-2)

/* wait strategies */
#define CS_WAIT_SPIN   0
#define CS_WAIT_YIELD  1
#define CS_WAIT_BLOCK  2

typedef struct {
    int64_t  pid;          /* reader process id, 0 when the slot is free */
    uint64_t cursor;       /* next sequence this reader will read (published for lag) */
    uint64_t overruns;     /* overruns this reader hit */
    uint64_t lost;         /* records skipped by recover() after overruns */
    int64_t  attach_ns;    /* CLOCK_REALTIME ns at attach */
    uint32_t active;       /* 1 when taken */
    uint32_t wait_mode;    /* CS_WAIT_* */
    uint64_t _pad[2];
} cs_reader_slot;          /* 64 bytes */

typedef struct {
    /* line 0: immutable after creation */
    uint64_t magic;
    uint32_t version;
    uint32_t record_size;
    uint64_t capacity;     /* power of two */
    uint64_t mask;
    uint64_t dtype_hash;
    uint64_t header_size;  /* offset of the first record */
    int64_t  created_ns;   /* CLOCK_REALTIME ns */
    uint64_t _pad0;
    /* line 1: published cursor (number of records published) */
    uint64_t write_seq;
    uint64_t _pad1[7];
    /* line 2: claimed cursor (writer started writing record claim_seq-1) */
    uint64_t claim_seq;
    uint64_t _pad2[7];
    /* line 3: writer liveness */
    int64_t  writer_pid;
    int64_t  heartbeat_ns; /* CLOCK_MONOTONIC ns of the writer's last heartbeat */
    uint64_t closed;       /* 1 once the writer closed the ring cleanly */
    uint64_t takeovers;    /* how many times a new writer took the ring over */
    uint64_t _pad3[4];
    /* line 4: blocking readers */
    uint32_t futex_word;
    uint32_t waiters;
    uint64_t wakeups;
    uint64_t _pad4[6];
    /* layout description, for error messages */
    char     dtype_descr[CS_DESCR_LEN];
    cs_reader_slot readers[CS_MAX_READERS];
} cs_ring_hdr;

typedef struct {
    uint64_t magic;
    uint32_t version;
    uint32_t record_size;  /* payload bytes per slot */
    uint64_t nslots;
    uint64_t slot_stride;  /* bytes per slot: 64-byte seq line + payload rounded to 64 */
    uint64_t dtype_hash;
    uint64_t header_size;
    int64_t  created_ns;
    int64_t  owner_pid;    /* process that created the region */
    char     dtype_descr[CS_DESCR_LEN];
} cs_region_hdr;

static inline int64_t cs_mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline int64_t cs_wall_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline void cs_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

static inline char *cs_ring_slot(cs_ring_hdr *h, uint64_t seq) {
    return (char *)h + h->header_size + (seq & h->mask) * (uint64_t)h->record_size;
}

/* ---------------------------------------------------------------- writer */

static inline void cs_futex_wake_all(uint32_t *addr) {
    syscall(SYS_futex, addr, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* Publish one record. Never blocks, never fails. Returns the record's sequence. */
static inline uint64_t cs_ring_publish(cs_ring_hdr *h, const void *rec) {
    uint64_t s = __atomic_load_n(&h->write_seq, __ATOMIC_RELAXED);
    __atomic_store_n(&h->claim_seq, s + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    memcpy(cs_ring_slot(h, s), rec, h->record_size);
    __atomic_store_n(&h->write_seq, s + 1, __ATOMIC_RELEASE);
    /* Dekker with the blocking reader: it bumps waiters then re-checks write_seq. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (__atomic_load_n(&h->waiters, __ATOMIC_RELAXED)) {
        __atomic_add_fetch(&h->futex_word, 1, __ATOMIC_RELEASE);
        h->wakeups++;
        cs_futex_wake_all(&h->futex_word);
    }
    return s;
}

/* Publish n contiguous records with one cursor update (and one wake-up). */
static inline uint64_t cs_ring_publish_many(cs_ring_hdr *h, const char *recs, uint64_t n) {
    uint64_t s = __atomic_load_n(&h->write_seq, __ATOMIC_RELAXED);
    uint64_t i, left = n, done = 0;
    /* claim at most one lap at a time so the claim never outruns a full lap */
    while (left) {
        uint64_t chunk = left < h->capacity ? left : h->capacity;
        __atomic_store_n(&h->claim_seq, s + done + chunk, __ATOMIC_RELAXED);
        __atomic_thread_fence(__ATOMIC_RELEASE);
        for (i = 0; i < chunk; i++)
            memcpy(cs_ring_slot(h, s + done + i), recs + (done + i) * h->record_size, h->record_size);
        done += chunk;
        left -= chunk;
        __atomic_store_n(&h->write_seq, s + done, __ATOMIC_RELEASE);
    }
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (n && __atomic_load_n(&h->waiters, __ATOMIC_RELAXED)) {
        __atomic_add_fetch(&h->futex_word, 1, __ATOMIC_RELEASE);
        h->wakeups++;
        cs_futex_wake_all(&h->futex_word);
    }
    return s;
}

/* ---------------------------------------------------------------- reader */

/* Try to read record *cursor into out. CS_OK (and advances *cursor), CS_EMPTY or
 * CS_OVERRUN (cursor untouched: the caller decides how to recover). */
static inline int cs_ring_try_read(cs_ring_hdr *h, uint64_t *cursor, void *out) {
    uint64_t s = *cursor;
    uint64_t ws = __atomic_load_n(&h->write_seq, __ATOMIC_ACQUIRE);
    if (s >= ws) return CS_EMPTY;
    if (ws - s > h->capacity) return CS_OVERRUN;
    memcpy(out, cs_ring_slot(h, s), h->record_size);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (__atomic_load_n(&h->claim_seq, __ATOMIC_RELAXED) - s > h->capacity) return CS_OVERRUN;
    *cursor = s + 1;
    return CS_OK;
}

/* Read up to max records available now. Returns the count (>= 0) or CS_OVERRUN;
 * on overrun the records copied before the overrun point are discarded too and the
 * cursor is untouched, so a batch is all-or-nothing. */
static inline int64_t cs_ring_try_read_many(cs_ring_hdr *h, uint64_t *cursor, char *out, uint64_t max) {
    uint64_t s = *cursor, n, i, first;
    uint64_t ws = __atomic_load_n(&h->write_seq, __ATOMIC_ACQUIRE);
    if (s >= ws) return 0;
    if (ws - s > h->capacity) return CS_OVERRUN;
    n = ws - s;
    if (n > max) n = max;
    for (i = 0; i < n; i++)
        memcpy(out + i * h->record_size, cs_ring_slot(h, s + i), h->record_size);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    first = s;  /* the oldest record copied is the first one overwritten */
    if (__atomic_load_n(&h->claim_seq, __ATOMIC_RELAXED) - first > h->capacity) return CS_OVERRUN;
    *cursor = s + n;
    return (int64_t)n;
}

static inline int cs_futex_wait(uint32_t *addr, uint32_t expected, int64_t timeout_ns) {
    struct timespec ts, *tsp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = timeout_ns / 1000000000LL;
        ts.tv_nsec = timeout_ns % 1000000000LL;
        tsp = &ts;
    }
    return (int)syscall(SYS_futex, addr, FUTEX_WAIT, expected, tsp, NULL, 0);
}

/* Wait until record *cursor is readable, then read it.
 * spin_iters: busy iterations before yielding/blocking (SPIN mode ignores it).
 * timeout_ns < 0 waits forever. Returns CS_OK, CS_OVERRUN or CS_TIMEOUT. */
static inline int cs_ring_wait_read(cs_ring_hdr *h, uint64_t *cursor, void *out,
                                    int mode, int64_t spin_iters, int64_t timeout_ns) {
    int r;
    int64_t i = 0, deadline = 0, now;
    if (timeout_ns >= 0) deadline = cs_mono_ns() + timeout_ns;
    for (;;) {
        r = cs_ring_try_read(h, cursor, out);
        if (r != CS_EMPTY) return r;
        if (mode == CS_WAIT_SPIN || i < spin_iters) {
            cs_cpu_relax();
            i++;
            /* check the clock only every 1024 spins: clock_gettime costs ~20 ns */
            if (timeout_ns >= 0 && (i & 1023) == 0 && cs_mono_ns() >= deadline) return CS_TIMEOUT;
            continue;
        }
        if (timeout_ns >= 0) {
            now = cs_mono_ns();
            if (now >= deadline) return CS_TIMEOUT;
        }
        if (mode == CS_WAIT_YIELD) {
            sched_yield();
            continue;
        }
        /* CS_WAIT_BLOCK: announce, re-check, sleep on the futex word */
        __atomic_add_fetch(&h->waiters, 1, __ATOMIC_SEQ_CST);
        {
            uint32_t v = __atomic_load_n(&h->futex_word, __ATOMIC_ACQUIRE);
            __atomic_thread_fence(__ATOMIC_SEQ_CST);
            if (__atomic_load_n(&h->write_seq, __ATOMIC_ACQUIRE) <= *cursor) {
                /* bounded sleep so that a dead writer or a timeout is noticed */
                int64_t slice = 100000000LL;  /* 100 ms */
                if (timeout_ns >= 0 && deadline - now < slice) slice = deadline - now;
                cs_futex_wait(&h->futex_word, v, slice);
            }
        }
        __atomic_sub_fetch(&h->waiters, 1, __ATOMIC_SEQ_CST);
    }
}

/* ---------------------------------------------------------------- region */

static inline uint64_t *cs_region_seq(cs_region_hdr *h, uint64_t slot) {
    return (uint64_t *)((char *)h + h->header_size + slot * h->slot_stride);
}

static inline char *cs_region_data(cs_region_hdr *h, uint64_t slot) {
    return (char *)h + h->header_size + slot * h->slot_stride + CS_CACHE_LINE;
}

/* One writer per slot. */
static inline void cs_region_write(cs_region_hdr *h, uint64_t slot, const void *rec) {
    uint64_t *seq = cs_region_seq(h, slot);
    uint64_t s = __atomic_load_n(seq, __ATOMIC_RELAXED);
    __atomic_store_n(seq, s + 1, __ATOMIC_RELAXED);      /* odd: write in progress */
    __atomic_thread_fence(__ATOMIC_RELEASE);
    memcpy(cs_region_data(h, slot), rec, h->record_size);
    __atomic_store_n(seq, s + 2, __ATOMIC_RELEASE);      /* even: stable */
}

/* Copy a consistent snapshot of the slot. Returns the number of retries, or -1 if
 * max_retries was exceeded (a writer that died mid-write leaves the seq odd). */
static inline int64_t cs_region_read(cs_region_hdr *h, uint64_t slot, void *out, int64_t max_retries) {
    uint64_t *seq = cs_region_seq(h, slot);
    int64_t tries = 0;
    uint64_t s1, s2;
    for (;;) {
        s1 = __atomic_load_n(seq, __ATOMIC_ACQUIRE);
        if (!(s1 & 1)) {
            memcpy(out, cs_region_data(h, slot), h->record_size);
            __atomic_thread_fence(__ATOMIC_ACQUIRE);
            s2 = __atomic_load_n(seq, __ATOMIC_RELAXED);
            if (s1 == s2) return tries;
        }
        if (++tries > max_retries) return -1;
        cs_cpu_relax();
    }
}

#endif /* CS_SHM_CORE_H */
