# distutils: language = c++
# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""FeedHandler: raw exchange frames -> validated market records, synced books (compiled).

The component the ``feed`` process wires to a WebSocket session, a market ring and the
book region, and that replay, the backtester's dataset and the fused engine drive. No I/O
of its own: it returns what to publish and says when a book needs a REST snapshot.

``on_frame(frame, mono_origin, default_symbol=None)`` -> ``engine.feed.handler.FrameResult``
for Python callers; ``frame_ptr`` (C) is the same step for the fused engine's compiled
path (cext.hotpath.FeedPath), which reads the result from ``res_*`` without any object
made per frame. Per frame: the BinanceParser fills a record buffer; depth and snapshots go
through the instrument's BinanceBookSync (a gap or a crossed book asks for a snapshot and
yields one MK_STATUS record), trades and tickers through the Validator (a record it does
not pass is dropped and counted in ``dropped``). Rare paths (rejected frames, snapshots
with buffered updates, gaps) call Python for logging and the pending list; the common one
(a depth update of a synced book, a trade, a ticker) does not.
"""
import logging

import numpy as np

from libc.stdint cimport int64_t, uint64_t, uint32_t
from libc.string cimport memset
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE

from cext.schema cimport MarketRecord
from cext.binance cimport BinanceParser
from cext.book cimport OrderBook, BinanceBookSync, SYNC_APPLIED, SYNC_STALE, SYNC_GAP, SYNC_CROSSED, ST_WAIT_SNAPSHOT, \
    ST_SYNCED
from cext.validate cimport Validator
from cext.shm_core cimport cs_mono_ns

log = logging.getLogger("cryptoscalp.feed")

from engine import schema as _schema         # the record kinds and flags, from their one place
cdef int MK_DEPTH = _schema.MK_DEPTH, MK_SNAPSHOT = _schema.MK_SNAPSHOT, MK_STATUS = _schema.MK_STATUS
cdef int F_LAST_IN_MESSAGE = _schema.F_LAST_IN_MESSAGE, F_BOOK_INVALID = _schema.F_BOOK_INVALID
cdef int FEED_GAP = _schema.FEED_GAP, FEED_RESYNCING = _schema.FEED_RESYNCING

_FrameResult = None


cdef class FeedHandler:
    """Parse, sequence and validate frames for a set of instruments.

    ``on_frame(frame, mono_origin)`` returns a FrameResult whose ``records`` are ready for
    the market ring (valid records only; a gap adds an MK_STATUS record). Books that lost
    sync are listed in ``snapshot_needed``; pass the REST snapshot to ``on_frame`` with
    ``default_symbol``.
    """

    def __init__(self, instruments, int roi=1 << 16, Validator validator=None, int max_levels=8192,
                 int log_first=10, int log_every=1000, ring=None, book_region=None):
        instruments = list(instruments)
        if not instruments:
            raise ValueError("FeedHandler needs at least one instrument")
        self.instruments = {i.inst: i for i in instruments}
        self.by_symbol = {i.symbol: i for i in instruments}
        self.parser = BinanceParser(instruments, max_levels)
        self.books = {i.inst: OrderBook(i.inst, roi) for i in instruments}
        self.syncs = {k: BinanceBookSync(b) for k, b in self.books.items()}
        n = max(self.instruments) + 1
        self._syncs = [self.syncs.get(k) for k in range(n)]
        self.validator = validator if validator is not None else Validator(n)
        self._buf = np.zeros(max_levels + 2, _schema.MARKET_DTYPE)
        self._out = np.zeros(4 * max_levels + 4, _schema.MARKET_DTYPE)
        self.buf = <MarketRecord *><size_t>self._buf.ctypes.data
        self.cap = len(self._buf)
        self.status = <MarketRecord *><size_t>self._out.ctypes.data
        self.snapshot_needed = set()
        self.dropped = 0
        self._log_first, self._log_every = log_first, log_every
        self._logged = {}
        self.ring = ring                  # RingWriter of MARKET records, or None
        self.book_region = book_region    # Region of BOOK_TOP records (slot = inst), or None
        if book_region is not None and book_region.nslots <= max(self.instruments):
            raise ValueError(f"book region has {book_region.nslots} slots; instrument ids go to {max(self.instruments)}")
        self.published = 0
        self.t_parse = 0                  # CLOCK_MONOTONIC ns: the last frame parsed (latency stamps)

    # ---------------------------------------------------------------- frames
    def on_frame(self, frame, int64_t mono_origin, default_symbol=None):
        """One frame (bytes-like): a FrameResult."""
        global _FrameResult
        cdef Py_buffer b
        cdef int ds = -1, inst
        if _FrameResult is None:
            from engine.feed.handler import FrameResult
            _FrameResult = FrameResult
        if default_symbol is not None:
            sym = default_symbol.encode()
            ds = self.parser.find_spec(sym, len(sym))
        PyObject_GetBuffer(frame, &b, PyBUF_SIMPLE)
        try:
            inst = self.frame_ptr(<const char *>b.buf, b.len, mono_origin, ds, frame)
        finally:
            PyBuffer_Release(&b)
        if self.res_reject:
            return _FrameResult(self._buf[:0], reject=BinanceParser.reason_name(-self.res_reject))
        if self.res_status:
            recs = self._out[:1]
        else:
            recs = self._buf[:self.res_n]
        applied = self.res_applied if self.res_applied is not None else \
            ([self.res_applied_one] if self.res_n_applied else [])
        res = _FrameResult(recs, inst=inst, sync=self.res_sync, applied=applied)
        if self.ring is not None and self.res_n:
            self.ring.publish_many(recs)
            self.published += self.res_n
        if self.book_region is not None and (applied or self.res_sync < 0):
            self.books[inst].publish(self.book_region, inst, (<BinanceBookSync>self._syncs[inst]).state == ST_SYNCED)
        return res

    cdef int frame_ptr(self, const char *p, Py_ssize_t n, int64_t mono, int default_spec, object frame) except -2:
        """One frame at ``p``: its instrument (>= 0; -1 when the parser rejected it), and in
        ``res_*`` what it produced: ``res_n`` records at ``res_recs`` (the handler's buffer,
        valid until the next frame), ``res_sync`` (SYNC_* for depth and snapshots, else 0),
        the update ids it applied to the book. ``frame``: the object, for the reject log."""
        cdef int k, kind, i, j
        cdef uint32_t inst
        cdef uint64_t bad = 0
        self.res_n = 0
        self.res_sync = 0
        self.res_reject = 0
        self.res_status = False
        self.res_n_applied = 0
        self.res_applied = None
        self.res_recs = self.buf
        k = self.parser.parse_ptr(p, n, mono, self.buf, self.cap, default_spec)
        self.t_parse = cs_mono_ns()
        if k < 0:
            self.res_reject = -k
            self._log_reject(BinanceParser.reason_name(k), frame)
            return -1
        if k == 0:
            return -1
        kind, inst = self.buf[0].kind, self.buf[0].inst
        if kind == MK_DEPTH or kind == MK_SNAPSHOT:
            return self._on_book(k, kind, inst, mono)
        j = 0
        for i in range(k):                      # a record the validator does not pass is dropped
            if self.validator.check(&self.buf[i]) == 0:
                if j != i:
                    self.buf[j] = self.buf[i]
                j += 1
            else:
                bad += 1
        self.dropped += bad
        self.res_n = j
        return inst

    cdef int _on_book(self, int k, int kind, uint32_t inst, int64_t mono) except -2:
        cdef int i, status, st
        cdef BinanceBookSync sync
        cdef MarketRecord *rec
        for i in range(k):
            self.validator.check(&self.buf[i])  # counts; depth is sequenced, never dropped here
        if inst >= <uint32_t>len(self._syncs) or self._syncs[inst] is None:
            raise ValueError(f"depth for instrument {inst}, which has no book")
        sync = <BinanceBookSync>self._syncs[inst]
        status = sync.on_snapshot(self.buf, k) if kind == MK_SNAPSHOT else sync.on_depth(self.buf, k)
        if status == SYNC_APPLIED:
            self.res_n_applied, self.res_applied_one = 1, sync.last_u
        if kind == MK_SNAPSHOT:
            applied = [sync.last_u] if status == SYNC_APPLIED else []
            for msg in sync.take_pending():
                st = sync.apply(msg)
                if st == SYNC_APPLIED:
                    applied.append(sync.last_u)
                status = st if st != SYNC_STALE else status
            if sync.state == ST_SYNCED:
                status = SYNC_APPLIED
            self.res_applied = applied
            self.res_n_applied = len(applied)
        # a book waiting for a snapshot (never synced, a gap, crossed) needs one; a book synced, or
        # waiting for the stream's update that spans the snapshot it has, does not (the bridge comes
        # on the stream: another snapshot now would only reset it, and cost 20 of the venue's weight)
        if sync.state == ST_WAIT_SNAPSHOT:
            self.snapshot_needed.add(inst)
        else:
            self.snapshot_needed.discard(inst)
        self.res_sync = status
        if status == SYNC_GAP or status == SYNC_CROSSED:
            log.warning("%s: book %s at u=%d; resyncing from a new snapshot", self.instruments[inst].symbol,
                        "gap" if status == SYNC_GAP else "crossed", self.buf[0].seq)
            rec = self.status
            memset(rec, 0, sizeof(MarketRecord))
            rec.kind = MK_STATUS
            rec.inst = inst
            rec.flags = F_LAST_IN_MESSAGE | F_BOOK_INVALID
            rec.seq = self.buf[0].seq
            rec.mono_origin = mono
            rec.aux = FEED_GAP if status == SYNC_GAP else FEED_RESYNCING
            self.res_status = True
            self.res_recs = self.status
            self.res_n = 1
            return inst
        if self.res_n_applied:
            self.res_n = k
        return inst

    # ---------------------------------------------------------------- state
    def book(self, symbol_or_inst):
        inst = self.by_symbol[symbol_or_inst].inst if isinstance(symbol_or_inst, str) else symbol_or_inst
        return self.books[inst]

    def is_valid(self, int inst):
        """Strategies must not trade an instrument whose book is not valid."""
        return self.valid(inst)

    cdef bint valid(self, int inst) noexcept:
        if inst < 0 or inst >= len(self._syncs) or self._syncs[inst] is None:
            return False
        return (<BinanceBookSync>self._syncs[inst]).state == ST_SYNCED

    def stats(self):
        return {"parser": self.parser.stats(), "validation": self.validator.stats(),
                "dropped_by_validation": self.dropped,
                "books": {self.instruments[k].symbol: s.stats() for k, s in self.syncs.items()},
                "snapshot_needed": sorted(self.instruments[i].symbol for i in self.snapshot_needed)}

    def _log_reject(self, reason, frame):
        k = self._logged.get(reason, 0) + 1
        self._logged[reason] = k
        if k <= self._log_first or k % self._log_every == 0:
            log.warning("rejected frame (%s, #%d, at byte %d): %.200r", reason, k,
                        self.parser.last_reject_offset, bytes(frame[:200]))

