# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Market-data validation (see validate.pxd for the checks and what each does).

``check(record)`` returns V_OK or the reason. Reasons that drop the record: nonpositive,
future timestamp, timestamp backwards (trades, BBO, mark), price jump (until the new
level is confirmed by ``jump_confirm`` consecutive events), crossed BBO, unknown
instrument. Reasons that only count (the record passes): receive lag, volume spike
(the record gets F_VOLUME_SPIKE). Depth levels are sequenced by the book sync, so their
timestamps are counted but never dropped (dropping one would corrupt the book).

Wall time of a record = mono_origin + clock_offset_ns (live: time.time_ns() -
time.monotonic_ns() at start; a replay whose mono_origin already holds the capture's
wall clock: 0 plus the capture's clock error, see engine.feed.replay.estimate_clock_offset).
"""
from libc.math cimport log, fabs, sqrt
from libc.stdint cimport int64_t, uint64_t, INT64_MIN
from libc.stdlib cimport calloc, free
from libc.string cimport memset

import numpy as np

from cext.records cimport market_ptr
from cext.schema cimport MarketRecord

cdef int MK_DEPTH = 1
cdef int MK_SNAPSHOT = 2
cdef int MK_TRADE = 3
cdef int MK_BBO = 4
cdef int MK_MARK = 5
cdef int MK_LIQUIDATION = 8
cdef int F_VOLUME_SPIKE = 32

SCHEMA_CONSTANTS = {"MK_DEPTH": MK_DEPTH, "MK_SNAPSHOT": MK_SNAPSHOT, "MK_TRADE": MK_TRADE, "MK_BBO": MK_BBO,
                    "MK_MARK": MK_MARK, "MK_LIQUIDATION": MK_LIQUIDATION, "F_VOLUME_SPIKE": F_VOLUME_SPIKE,
                    "F_NON_MARKET": 8}

CHECKS = {V_NONPOSITIVE: "nonpositive", V_FUTURE_TS: "future_timestamp",
          V_TS_BACKWARDS: "timestamp_backwards", V_RECV_LAG: "receive_lag",
          V_PRICE_JUMP: "price_jump", V_VOLUME_SPIKE: "volume_spike", V_CROSSED: "crossed",
          V_STALE: "stale_feed", V_UNKNOWN_INST: "unknown_instrument",
          V_JUMP_CONFIRMED: "jump_confirmed"}
DROPS = {V_NONPOSITIVE, V_FUTURE_TS, V_TS_BACKWARDS, V_PRICE_JUMP, V_CROSSED, V_UNKNOWN_INST}


cdef class Validator:
    """Validator(n_inst, clock_offset_ns=0, max_future_ns=1e9, max_lag_ns=2e9,
    stale_after_ns=5e9, jump_k=10, jump_min_bps=30, jump_warmup=100, jump_confirm=3,
    ewm_alpha=0.01, spike_k=20, spike_warmup=100)

    A price jump is a log return beyond max(jump_k x sigma, jump_min_bps): event-to-event
    returns of trades are mostly zero (prices bounce on the same levels), so sigma alone
    would flag every sweep of a few levels; the floor keeps the filter for bad ticks
    (a print 0.3% away from the last one within one event is rare in liquid perpetuals,
    and a real move is accepted once ``jump_confirm`` events confirm it)."""

    def __cinit__(self, int n_inst, int64_t clock_offset_ns=0, int64_t max_future_ns=1_000_000_000,
                  int64_t max_lag_ns=2_000_000_000, int64_t stale_after_ns=5_000_000_000,
                  double jump_k=10.0, double jump_min_bps=30.0, int jump_warmup=100, int jump_confirm=3,
                  double ewm_alpha=0.01, double spike_k=20.0, int spike_warmup=100):
        if n_inst < 1:
            raise ValueError("Validator needs n_inst >= 1")
        if not 0 < ewm_alpha < 1:
            raise ValueError("ewm_alpha must be in (0, 1)")
        if jump_k <= 0 or spike_k <= 0 or jump_confirm < 1:
            raise ValueError("jump_k and spike_k must be > 0 and jump_confirm >= 1")
        self.results = np.zeros(256, np.uint8)
        self.st = <InstState *>calloc(n_inst, sizeof(InstState))
        if self.st == NULL:
            raise MemoryError()
        self.n_inst = n_inst
        self.clock_offset_ns = clock_offset_ns
        self.max_future_ns = max_future_ns
        self.max_lag_ns = max_lag_ns
        self.stale_after_ns = stale_after_ns
        self.jump_k = jump_k
        self.jump_min = jump_min_bps * 1e-4
        self.jump_warmup = jump_warmup
        self.jump_confirm = jump_confirm
        self.ewm_alpha = ewm_alpha
        self.spike_k = spike_k
        self.spike_warmup = spike_warmup
        memset(self.counts, 0, sizeof(self.counts))

    def __dealloc__(self):
        free(self.st)

    cdef int _price(self, InstState *s, double px) noexcept nogil:
        """Jump filter on a price (trade price or BBO mid, in ticks)."""
        cdef double r, sigma, bound
        if s.ref_px <= 0:
            s.ref_px = px
            return V_OK
        r = log(px / s.ref_px)
        sigma = sqrt(s.ewm_var)
        bound = self.jump_k * sigma
        if bound < self.jump_min:
            bound = self.jump_min
        if s.n_returns >= self.jump_warmup and fabs(r) > bound:
            # a jump: hold it back unless it keeps being confirmed at the new level
            if s.pending_n > 0 and fabs(log(px / s.pending_px)) <= bound:
                s.pending_n += 1
            else:
                s.pending_px = px
                s.pending_n = 1
            if s.pending_n >= self.jump_confirm:
                s.ref_px = px
                s.pending_n = 0
                s.ewm_var = r * r     # volatility regime changed: restart from the jump
                self.counts[V_JUMP_CONFIRMED] += 1
                return V_OK
            return V_PRICE_JUMP
        s.pending_n = 0
        s.ewm_var = (1 - self.ewm_alpha) * s.ewm_var + self.ewm_alpha * r * r
        s.n_returns += 1
        s.ref_px = px
        return V_OK

    cdef int check(self, MarketRecord *r) noexcept nogil:
        cdef InstState *s
        cdef int64_t wall
        cdef int res = V_OK, k = r.kind
        cdef double q
        self.checked += 1
        if r.inst >= <uint32_t>self.n_inst:
            self.counts[V_UNKNOWN_INST] += 1
            return V_UNKNOWN_INST
        s = &self.st[r.inst]
        s.last_mono = r.mono_origin
        s.stale = False
        # sizes and prices
        if k == MK_DEPTH or k == MK_SNAPSHOT:
            if (r.side and r.px <= 0) or r.qty < 0:
                self.counts[V_NONPOSITIVE] += 1
                return V_NONPOSITIVE
        elif k == MK_TRADE or k == MK_LIQUIDATION:
            if r.px <= 0 or r.qty <= 0:
                self.counts[V_NONPOSITIVE] += 1
                return V_NONPOSITIVE
        elif k == MK_BBO:
            if r.px <= 0 or r.aux <= 0 or r.qty < 0 or r.aux2 < 0:
                self.counts[V_NONPOSITIVE] += 1
                return V_NONPOSITIVE
            if r.px >= r.aux:
                self.counts[V_CROSSED] += 1
                return V_CROSSED
        elif k == MK_MARK:
            if r.px <= 0:
                self.counts[V_NONPOSITIVE] += 1
                return V_NONPOSITIVE
        # timestamps
        if r.exch_ts > 0:
            wall = r.mono_origin + self.clock_offset_ns
            if r.exch_ts - wall > self.max_future_ns:
                self.counts[V_FUTURE_TS] += 1
                return V_FUTURE_TS
            if 0 < k < 9:
                if r.exch_ts < s.last_ts[k]:
                    self.counts[V_TS_BACKWARDS] += 1
                    if k != MK_DEPTH and k != MK_SNAPSHOT:
                        return V_TS_BACKWARDS
                else:
                    s.last_ts[k] = r.exch_ts
            if wall - r.exch_ts > self.max_lag_ns:
                self.counts[V_RECV_LAG] += 1
        # jumps and spikes
        if k == MK_TRADE and not (r.flags & 8):   # F_NON_MARKET trades do not move the reference
            res = self._price(s, <double>r.px)
            if res != V_OK:
                self.counts[res] += 1
                return res
            q = <double>r.qty
            if s.n_trades >= self.spike_warmup and s.ewm_qty > 0 and q > self.spike_k * s.ewm_qty:
                self.counts[V_VOLUME_SPIKE] += 1
                r.flags |= F_VOLUME_SPIKE
            s.ewm_qty = q if s.n_trades == 0 else (1 - self.ewm_alpha) * s.ewm_qty + self.ewm_alpha * q
            s.n_trades += 1
        elif k == MK_BBO:
            res = self._price(s, 0.5 * (<double>r.px + <double>r.aux))
            if res != V_OK:
                self.counts[res] += 1
                return res
        return V_OK

    # -------------------------------------------------------------- Python API
    def check_array(self, recs):
        """Check each record of a MARKET_DTYPE array; returns a uint8 array of results."""
        cdef Py_ssize_t i, n
        cdef MarketRecord *v = market_ptr(recs, &n)
        out = np.zeros(n, np.uint8)
        cdef unsigned char[::1] o = out
        for i in range(n):
            o[i] = self.check(&v[i])
        return out

    def check_records(self, recs):
        """Check each record of a MARKET_DTYPE array (as ``check_array``); returns how many
        are not OK, their results in ``results[:len(recs)]`` (no array made per call: the
        feed calls this on every message)."""
        cdef Py_ssize_t i, n, bad = 0
        cdef MarketRecord *v = market_ptr(recs, &n)
        cdef unsigned char r
        if n > self.results.shape[0]:
            self.results = np.zeros(max(n, 2 * self.results.shape[0]), np.uint8)
        cdef unsigned char[::1] o = self.results
        for i in range(n):
            r = self.check(&v[i])
            o[i] = r
            bad += r != 0
        return bad

    def check_stale(self, int64_t now_mono):
        """Instruments with no update for stale_after_ns (each counted once per stall)."""
        stale = []
        cdef int i
        for i in range(self.n_inst):
            if self.st[i].last_mono and now_mono - self.st[i].last_mono > self.stale_after_ns:
                if not self.st[i].stale:
                    self.st[i].stale = True
                    self.counts[V_STALE] += 1
                stale.append(i)
        return stale

    def set_clock_offset(self, int64_t offset_ns):
        self.clock_offset_ns = offset_ns

    def sigma(self, int inst):
        """Current EWMA volatility of log returns for an instrument."""
        return sqrt(self.st[inst].ewm_var)

    def stats(self):
        return {"checked": self.checked,
                **{CHECKS[i]: self.counts[i] for i in range(1, N_CHECKS)}}

    @staticmethod
    def reason_name(int code):
        return CHECKS.get(code, "ok" if code == 0 else str(code))

    @staticmethod
    def drops(int code):
        return code in DROPS
