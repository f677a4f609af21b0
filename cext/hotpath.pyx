# distutils: language = c++
# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The fused engine's decision path in one C call: ``DecisionPath``.

For one instrument's latest state (the book's top, its feature vector), what
``Brain.on_state`` and the fused engine's gate-and-write did in Python, in the same order
and with the same components, without the interpreter between them:

    regime (the minute's last mid; OnlineRegime only when a market minute closes)
    -> the ensemble (cext.ensemble.Program, on the features in place; the LSTM state
       committed once per SCORE_SAMPLE_NS, as Brain does)
    -> the strategy (cext.strategies.MarketMaker.quote_ptr)
    -> the stage stamps (t_features, t_infer, t_strategy, and the message's origin, parse
       and book stamps)
    -> the mark into the risk state and the position book
    -> per intent: the gate (RiskGate.check_ptr, t_risk), the position book told
       (PositionBook.order_sent), and for a NEW or a CANCEL the request built and signed
       (OrderEncoder.build) and written on an idle order connection (the connection's
       ``transport.write``, as ``OrderLink.request`` does), ``t_send`` stamped after it.

Why: every Python step between the compiled pieces cost 2-3 us on the engine's path
(cold interpreter code and objects after the socket wait), ~45 of the ~85 us from frame
to write (stop 20's and this stop's measurements, README "Topologies and tick-to-trade").

What stays in Python, after the message's requests are written (``outcomes``): the
answers' tasks, the journal, metrics, refusals told to the strategy, the slow path of any
order that could not be written at once (no idle connection, waiting out a 429, circuit
breaker open, a record the encoder refuses: ``OrderGateway.start(order, write=False)``
decides it exactly as before), and the regime's minute close (once a market minute).

A model served by ONNX Runtime instead of the compiled program is called through
``EnsembleRuntime.predict`` (Python) at the same place.
"""
import asyncio

import numpy as np

from libc.stdint cimport int64_t, uint64_t, uint8_t, uint32_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy, memset
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_ANY_CONTIGUOUS
from cpython.bytearray cimport PyByteArray_FromStringAndSize
from cpython.dict cimport PyDict_GetItem
from cpython.ref cimport PyObject

from cext.schema cimport OrderRecord, RejectRecord, SIDE_BUY, ACT_NEW, ACT_CANCEL, OT_POST_ONLY
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cext.shm_core cimport cs_mono_ns
from cext.ensemble cimport Program
from cext.strategies cimport MarketMaker
from cext.risk cimport RiskGate, RiskState, InstRisk
from cext.positions cimport PositionBook, Position
from cext.orderwire cimport OrderEncoder, WriteHold
from cext.feedhandler cimport FeedHandler
from cext.book cimport OrderBook
from cext.schema cimport MarketRecord, BookTop

cdef enum:
    F_BOOK_INVALID = 4
    MAX_INTENTS = 4                 # a requote: cancel bid, new bid, cancel ask, new ask

# outcomes
REFUSED, WRITTEN, ACCEPTED = 0, 1, 2          # gate said no / written at once / gate said yes, not written
cdef enum:
    O_REFUSED = 0
    O_WRITTEN = 1
    O_ACCEPTED = 2



cdef struct InstState:
    bint known
    int64_t minute                  # the regime detector's current market minute (-1: none yet)
    double last_mid                 # the last mid seen in it (what the minute closes with)
    int64_t next_sample             # the ensemble commits its LSTM step at or after this time
    const double *f                 # the FeatureEngine's values and readiness flags, in place
    const uint8_t *ready
    Py_ssize_t n_features
    # the last decision's market, for the rehearsal
    bint have_last
    int64_t ts, bb, ba, mid
    bint valid
    double signal
    # the last decision's stamps (``last``)
    int64_t t_features, t_infer, t_strategy, decided_mid
    bint scored


cdef inline void *_buffer_ptr(object a, Py_ssize_t nbytes, str what) except NULL:
    """The data pointer of a contiguous array of ``nbytes`` bytes that outlives its use
    (the caller keeps the array)."""
    cdef Py_buffer b
    cdef void *p
    cdef Py_ssize_t n
    PyObject_GetBuffer(a, &b, PyBUF_ANY_CONTIGUOUS)
    p, n = b.buf, b.len
    PyBuffer_Release(&b)
    if n != nbytes:
        raise ValueError(f"{what}: {nbytes} bytes expected, got {n}")
    return p


cdef class DecisionPath:
    """DecisionPath(brain, gate, state, book, gateway)

    ``decide(inst, origin, ts, t_parse, bb, ba, flags, t_book)``: one decision on the
    instrument's latest state (``origin``: the frame read stamp of its last message,
    ``ts`` that message's exchange time, ``t_parse`` its parsed stamp; the book top's best
    bid/ask in ticks, its flags and publication stamp). Returns None when the strategy
    had nothing to do, else the list of ``(outcome, record, a, b)`` per intent, in order,
    built after every request was written:

    - ``(WRITTEN, order, link, future)``: written at once on that order connection, whose
      answer the future gets (``OrderGateway.written`` awaits it);
    - ``(ACCEPTED, order, None, None)``: the gate passed it, it was not written (the
      gateway's slow path decides: ``OrderGateway.start(order, write=False)``);
    - ``(REFUSED, reject, intent, None)``: the gate refused it.

    Records are 1-element ORDER_DTYPE / REJECT_DTYPE arrays of their own. After each call
    ``t_features``, ``t_infer``, ``t_strategy``, ``scored`` and ``mid`` describe it (as
    Brain's attributes of the same names did). ``rehearse()``: between messages, the same
    path on the last market with nothing changed and nothing written (``--wait spin``)."""
    cdef object brain, gateway, models, _dtypes
    # the gateway's fast path, held here: its instruments, rest session, breaker, encoder,
    # order connections, and futures made ahead for the answers (one each costs ~5 us
    # when it is made right before the write, in the running engine)
    cdef bytearray gw_insts
    cdef object rest
    cdef WriteHold rest_hold, breaker_hold   # a 429's Retry-After, the circuit breaker: no write before
    cdef OrderEncoder enc
    cdef object links
    cdef list link_list, spare
    cdef RiskGate gate
    cdef RiskState state
    cdef PositionBook book
    cdef InstState *st
    cdef int n
    cdef list strategies            # inst -> MarketMaker or None
    cdef list regimes               # inst -> OnlineRegime or None
    cdef list features              # inst -> FeatureEngine or None (keeps the pointers valid)
    cdef list rts                   # inst -> the EnsembleRuntime last seen for it
    cdef list progs                 # inst -> its compiled Program, or None (ONNX Runtime)
    cdef list probs_arr             # inst -> its probabilities array (kept: probs points into it)
    cdef list positions             # inst -> its Position in the position book
    cdef const float **probs
    # the last call
    cdef OrderRecord intents[MAX_INTENTS]
    cdef OrderRecord orders[MAX_INTENTS]
    cdef RejectRecord rejects[MAX_INTENTS]
    cdef int outcome[MAX_INTENTS]
    cdef int64_t sign_ns[MAX_INTENTS]
    cdef int64_t write_ns[MAX_INTENTS]
    cdef list sent                  # per intent: (link, future) of a written request
    cdef int n_intents
    cdef readonly int64_t t_features, t_infer, t_strategy, mid
    cdef readonly bint scored
    cdef readonly uint64_t decisions, written, rehearsals
    cdef readonly int64_t sample_ns
    cdef int next_rehearsal
    cdef OrderRecord r_intent, r_order
    cdef RejectRecord r_reject
    cdef OrderRecord r_buf[MAX_INTENTS]

    def __init__(self, brain, RiskGate gate, RiskState state, PositionBook book, gateway, feeds, sample_ns=None):
        """``feeds``: inst -> its FeatureEngine (the feed's; read in place). ``sample_ns``:
        the ensemble commits its LSTM step once per this many ns (default Brain's
        SCORE_SAMPLE_NS, the sampling it was trained on)."""
        from engine.brain import SCORE_SAMPLE_NS
        self.sample_ns = SCORE_SAMPLE_NS if sample_ns is None else sample_ns
        self.brain, self.gate, self.state, self.book, self.gateway = brain, gate, state, book, gateway
        self.models = brain.models
        insts = sorted(brain.strategies)
        self.n = max(insts) + 1 if insts else 0
        if self.n > state.n:
            raise ValueError(f"instrument {self.n - 1} is beyond the risk state's {state.n}")
        self.st = <InstState *>calloc(max(self.n, 1), sizeof(InstState))
        self.probs = <const float **>calloc(max(self.n, 1), sizeof(float *))
        if self.st == NULL or self.probs == NULL:
            raise MemoryError()
        self.sent = [None] * MAX_INTENTS
        self.strategies = [None] * self.n
        self.regimes = [None] * self.n
        self.features = [None] * self.n
        self.rts = [None] * self.n
        self.progs = [None] * self.n
        self.probs_arr = [None] * self.n
        from engine.schema import ORDER_DTYPE, REJECT_DTYPE
        self._dtypes = (ORDER_DTYPE, REJECT_DTYPE)
        for inst in insts:
            s = brain.strategies[inst]
            if not isinstance(s, MarketMaker):
                raise TypeError(f"instrument {inst}: the compiled path runs cext.strategies.MarketMaker, got {type(s)}")
            fe = feeds[inst]
            self.strategies[inst], self.regimes[inst], self.features[inst] = s, brain.regimes[inst], fe
            self.st[inst].known = True
            self.st[inst].f = <const double *>_buffer_ptr(fe.out, 8 * len(fe.out), "features")
            self.st[inst].ready = <const uint8_t *>_buffer_ptr(fe.ready, len(fe.ready), "readiness flags")
            if fe.out.dtype != np.float64 or fe.ready.dtype != np.bool_ or len(fe.out) != len(fe.ready):
                raise ValueError("features: float64 values and bool readiness flags of one length")
            self.st[inst].n_features = len(fe.out)
            self.st[inst].minute = brain.regimes[inst].minute
            self.st[inst].last_mid = brain.regimes[inst].last_mid
            self.st[inst].next_sample = brain.next_sample[inst]
        self.gw_insts = bytearray(max(gateway.by_inst, default=-1) + 1)
        for inst in gateway.by_inst:
            self.gw_insts[inst] = 1
        self.rest = gateway.rest
        self.rest_hold, self.breaker_hold = gateway.rest.hold, gateway.breaker.hold
        self.positions = [book.positions.get(inst) for inst in range(self.n)]
        self.spare = []
        self._refresh()

    def __dealloc__(self):
        free(self.st)
        free(self.probs)

    # ------------------------------------------------------------------ the model
    def refresh_models(self):
        """Each instrument's runtime as the brain holds it now (after a reload or a
        rollback: the engine calls this at once; the path also looks after every decision
        that made orders and in every rehearsal, off the write)."""
        for inst in range(self.n):
            if not self.st[inst].known:
                continue
            rt = self.models.get(inst)
            if rt is self.rts[inst]:
                continue
            self.progs[inst] = self.probs_arr[inst] = None
            self.probs[inst] = NULL
            if rt is not None:
                prog = rt.prog
                a = np.ascontiguousarray(rt.probs)
                if a.dtype != np.float32 or a.size < 3 or a is not rt.probs:
                    raise ValueError("the model's probabilities: a contiguous float32 vector of 3 expected")
                self.progs[inst] = prog if isinstance(prog, Program) else None
                self.probs_arr[inst] = a
                self.probs[inst] = <const float *>_buffer_ptr(a, 4 * a.size, "probabilities")
            self.rts[inst] = rt

    # ------------------------------------------------------------------ one decision
    def decide(self, int inst, int64_t origin, int64_t ts, int64_t t_parse, int64_t bb, int64_t ba,
               uint32_t flags, int64_t t_book):
        return self.decide_c(inst, origin, ts, t_parse, bb, ba, flags, t_book)

    def last(self, int inst):
        """(t_features, t_infer, t_strategy, scored, mid) of the instrument's last decision."""
        cdef InstState *s
        if inst < 0 or inst >= self.n or not self.st[inst].known:
            raise ValueError(f"instrument {inst} is not one of the brain's")
        s = &self.st[inst]
        return s.t_features, s.t_infer, s.t_strategy, s.scored, s.decided_mid

    cdef object decide_c(self, int inst, int64_t origin, int64_t ts, int64_t t_parse, int64_t bb, int64_t ba,
                         uint32_t flags, int64_t t_book):
        cdef InstState *s
        cdef MarketMaker mm
        cdef Program prog = None
        cdef bint valid, commit, ok
        cdef int64_t t_feat, t_inf, t_str, mid, m
        cdef double signal = 0.0, last
        cdef int n, i
        cdef OrderRecord *o
        if inst < 0 or inst >= self.n or not self.st[inst].known:
            raise ValueError(f"instrument {inst} is not one of the brain's")
        s = &self.st[inst]
        mm = <MarketMaker>self.strategies[inst]
        self.t_features = t_feat = cs_mono_ns()
        self.decisions += 1
        self.n_intents = 0
        valid = not (flags & F_BOOK_INVALID) and bb > 0 and ba > bb
        mid = (bb + ba) // 2 if valid else 0
        self.mid = mid
        if valid:
            m = ts // 60_000_000_000
            if m != s.minute:                        # a market minute closed: the detector, in Python
                last, s.minute, s.last_mid = s.last_mid, m, <double>mid
                self._minute(inst, last, ts, <double>mid)
            else:
                s.last_mid = <double>mid
        rt = self.rts[inst]
        self.scored = rt is not None and _all_ready(s.ready, s.n_features)
        if self.scored:
            commit = t_feat >= s.next_sample
            if commit:
                s.next_sample = t_feat + self.sample_ns
            prog = self.progs[inst]
            if prog is not None:
                if not prog.run_ptr(s.f, s.n_features, commit):
                    raise ValueError("features not all finite: the model only scores rows whose 25 features are ready")
            else:
                rt.predict(self.features[inst].out, commit)
            signal = <double>self.probs[inst][2] - <double>self.probs[inst][0]
        self.t_infer = t_inf = cs_mono_ns()
        s.have_last, s.ts, s.bb, s.ba, s.valid, s.signal = True, ts, bb, ba, valid, signal
        if mid:
            s.mid = mid
        n = mm.quote_ptr(ts, bb, ba, s.f, s.ready, s.n_features, valid, signal, self.intents)
        self.t_strategy = t_str = cs_mono_ns()
        s.t_features, s.t_infer, s.t_strategy, s.scored, s.decided_mid = t_feat, t_inf, t_str, self.scored, mid
        for i in range(n):
            o = &self.intents[i]
            o.mono_origin, o.t_parse, o.t_book, o.t_features, o.t_infer, o.t_strategy = \
                origin, t_parse, t_book, t_feat, t_inf, t_str
        if mid:                                      # the mark the gate checks against
            self._mark(inst, mid, t_feat)
        self.n_intents = n
        for i in range(n):                           # gated and written in order, nothing else between
            self.outcome[i] = self._gate_and_write(i)
        if prog is not None:
            rt.calls += 1                            # as EnsembleRuntime.predict counts (it did the rest)
        return self._outcomes() if n else None

    cdef _minute(self, int inst, double last_mid, int64_t ts, double mid):
        """OnlineRegime.on_mid at a minute's change (within a minute it only keeps the last
        mid, which this path keeps in C): the regime event and the model's weights."""
        r = self.regimes[inst]
        r.last_mid = last_mid
        changed = r.on_mid(ts, mid)
        if changed is not None:
            self.brain.regime_changed(inst, changed)

    cdef _mark(self, int inst, int64_t mid, int64_t t):
        cdef InstRisk *r = &self.state.inst[inst]
        r.mark_px, r.mark_ns, r.data_ns, r.book_valid = mid, t, t, True
        self.book.mark(<Position?>self.positions[inst], mid)

    cdef int _gate_and_write(self, int i) except -1:
        cdef OrderRecord *o = &self.orders[i]
        if not self.gate.check_ptr(&self.intents[i], self.state, cs_mono_ns(), o, &self.rejects[i]):
            return O_REFUSED
        o.t_risk = cs_mono_ns()                      # when the gate was done with it, as RiskGate.check
        self.book.order_in_flight(o)                 # the next intent's check sees it; order_sent after the writes
        return O_WRITTEN if self._write(i) else O_ACCEPTED

    cdef bint _write(self, int i) except -1:
        """``OrderGateway.start``'s fast path on orders[i]: True when written now. False
        changes nothing the slow path would decide otherwise (it is told by ``ACCEPTED``),
        except the counters the fast path keeps (links' all_busy, fast_errors)."""
        cdef OrderRecord *o = &self.orders[i]
        cdef int64_t t0, t1
        cdef double now_s
        if o.action != ACT_NEW and o.action != ACT_CANCEL:
            return False
        if o.inst >= <uint32_t>len(self.gw_insts) or not self.gw_insts[o.inst]:
            return False                             # unknown: OrderGateway.start refuses it
        if self.enc is None or self.link_list is None:
            self._refresh()
            if self.enc is None or self.link_list is None:
                return False
        now_s = cs_mono_ns() * 1e-9
        if now_s < self.rest_hold.until or now_s < self.breaker_hold.until:
            return False
        try:
            self.enc.time_offset_ms = self.rest.time_offset_ms
            t0 = cs_mono_ns()
            data = self.enc.build(o)
            t1 = cs_mono_ns()
            link = _idle_link(self.link_list)
            if link is None:
                self.links.stats["all_busy"] += 1    # the slow path takes it
                return False
            fut = self.spare.pop() if self.spare else asyncio.get_running_loop().create_future()
            link.pending = fut                       # OrderLink.request: the answer's future, then the bytes
            link.transport.write(data)
        except Exception as e:                       # a bad record or a dead transport: the slow path decides
            self.gateway.stats["fast_errors"] += 1
            self.gateway.last_fast_error = f"{type(e).__name__}: {e}"
            return False
        o.t_send = cs_mono_ns()
        self.sign_ns[i], self.write_ns[i] = t1 - t0, o.t_send - t1
        self.sent[i] = (link, fut)
        self.written += 1
        return True

    cdef _refresh(self):
        """The gateway's encoder (made once its order connections are open) and order
        connections as they are now, futures made for the next answers (in a running loop),
        and the brain's models (``refresh_models``). Off the write: at construction, after
        each decision that made orders, in each rehearsal."""
        if self.enc is None:
            enc = self.gateway._enc if self.gateway._enc is not None else self.gateway._encoder()
            if enc is not None:
                self.enc = <OrderEncoder?>enc
        self.refresh_models()
        links = self.rest.links
        if links is not self.links:
            self.links = links
            self.link_list = links.links if links is not None else None
        if len(self.spare) < MAX_INTENTS:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            if self.spare and self.spare[0].get_loop() is not loop:
                self.spare.clear()                   # made in a loop that is gone
            while len(self.spare) < MAX_INTENTS:
                self.spare.append(loop.create_future())

    cdef list _outcomes(self):
        cdef list out = []
        cdef int i
        cdef OrderRecord *o
        od, rd = self._dtypes
        rest = self.rest
        for i in range(self.n_intents):
            if self.outcome[i] == O_REFUSED:
                out.append((REFUSED, _record(&self.rejects[i], sizeof(RejectRecord), rd),
                            _record(&self.intents[i], sizeof(OrderRecord), od), None))
                continue
            o = &self.orders[i]
            self.book.order_sent(o.action, o.client_id, o.ref_client_id, o.inst, o.side, o.px, o.qty)
            order = _record(o, sizeof(OrderRecord), od)
            if self.outcome[i] == O_WRITTEN:
                link, fut = self.sent[i]
                self.sent[i] = None
                out.append((WRITTEN, order, link, fut))
                if len(rest.sign_ns) < 100_000:
                    rest.sign_ns.append(self.sign_ns[i])
                    rest.write_ns.append(self.write_ns[i])
            else:
                out.append((ACCEPTED, order, None, None))
        self._refresh()
        return out

    # ------------------------------------------------------------------ between messages
    def rehearse(self):
        """What the next message will run, for the CPU caches, changing nothing: per
        instrument with a market, the ensemble on its current features (nothing committed)
        and the strategy on its last market (its state put back); then, for the next
        instrument in turn, a post-only bid of the strategy's size one tick under its last
        mid through the gate (its state put back) and the encoder (nothing written), and
        the order connections looked over. Returns how many requests it built (0 or 1)."""
        cdef int inst, k, target = -1
        cdef InstState *s
        cdef MarketMaker mm
        cdef Program prog
        self._refresh()
        for inst in range(self.n):
            s = &self.st[inst]
            if not s.have_last:
                continue
            rt = self.rts[inst]
            if rt is not None and _all_ready(s.ready, s.n_features):
                prog = self.progs[inst]
                if prog is not None:
                    prog.run_ptr(s.f, s.n_features, False)
                else:
                    rt.rehearse(self.features[inst].out)
            mm = <MarketMaker>self.strategies[inst]
            mm.rehearse_ptr(s.ts, s.bb, s.ba, s.f, s.ready, s.n_features, s.valid, s.signal, self.r_buf)
        for k in range(self.n):
            inst = (self.next_rehearsal + k) % self.n
            if self.st[inst].known and self.st[inst].mid > 0:
                target = inst
                break
        self.rehearsals += 1
        if target < 0:
            self.gateway.rehearse()
            return 0
        self.next_rehearsal = target + 1
        mm = <MarketMaker>self.strategies[target]
        memset(&self.r_intent, 0, sizeof(OrderRecord))
        self.r_intent.action, self.r_intent.side, self.r_intent.otype = ACT_NEW, SIDE_BUY, OT_POST_ONLY
        self.r_intent.inst, self.r_intent.qty, self.r_intent.px = target, mm.quote_lots, self.st[target].mid - 1
        if not self.gate.rehearse_ptr(&self.r_intent, self.state, cs_mono_ns(), &self.r_order, &self.r_reject):
            return 0
        if self.enc is None or self.link_list is None:
            return 0
        data = self.enc.build(&self.r_order)
        _idle_link(self.link_list)
        return 1 if data is not None else 0


cdef struct Latest:
    bint due                        # a decision is due on it at the read's end
    int64_t origin, ts, t_parse, bb, ba, t_book
    uint32_t flags


cdef class FeedPath:
    """FeedPath(handler, features, decision, feed, engine)

    The fused engine's market side compiled, around a DecisionPath: the WebSocket session
    hands each frame to ``frame`` and calls ``read_end`` once a socket read's frames were
    all handed over. Per frame (LiveFeed._on_frame and FusedEngine.on_message, in C): the
    FeedHandler (parse, validate, book), the instrument's book top, its features
    (FeatureEngine.on_message, numba), and the instrument's latest state kept for the
    decision (a second message of the same instrument in the same read replaces it:
    ``conflated``). At the read's end: one decision per instrument with a state due (in
    the order they first came), every request written, then the engine's bookkeeping of
    each (``engine._decided(inst, origin, outcomes)``) and the counters the Python side
    reads (``feed.messages``, ``feed.latency_ns``, ``metrics.messages_pending``,
    ``engine.counts["conflated"]``), caught up once per read instead of once per frame.
    Nothing is decided once ``engine.stopping``."""
    cdef FeedHandler handler
    cdef DecisionPath decision
    cdef object feed, engine, metrics
    cdef int n
    cdef list books, fe_calls, tops, views
    cdef BookTop **top
    cdef Latest *latest
    cdef int *due
    cdef int n_due
    cdef list latency
    cdef readonly uint64_t frames, messages, conflated
    cdef uint64_t messages_pending, conflated_pending

    def __init__(self, FeedHandler handler, features, DecisionPath decision, feed, engine):
        from engine.schema import BOOK_TOP_DTYPE
        self.handler, self.decision, self.feed, self.engine = handler, decision, feed, engine
        self.metrics = engine.metrics
        self.n = decision.n
        self.latest = <Latest *>calloc(max(self.n, 1), sizeof(Latest))
        self.top = <BookTop **>calloc(max(self.n, 1), sizeof(BookTop *))
        self.due = <int *>calloc(max(self.n, 1), sizeof(int))
        if self.latest == NULL or self.top == NULL or self.due == NULL:
            raise MemoryError()
        self.books, self.fe_calls, self.tops = [None] * self.n, [None] * self.n, [None] * self.n
        for inst in range(self.n):
            if not decision.st[inst].known:
                continue
            self.books[inst] = <OrderBook?>handler.books[inst]
            self.fe_calls[inst] = features[inst].on_message
            t = np.zeros(1, BOOK_TOP_DTYPE)
            self.tops[inst] = t
            self.top[inst] = <BookTop *>_buffer_ptr(t, sizeof(BookTop), "book top")
        # the handler's record buffer as arrays of 1..64 records, made once (a slice per frame costs ~0.3 us)
        self.views = [handler._buf[:k] for k in range(65)]
        self.latency = feed.latency_ns

    def __dealloc__(self):
        free(self.latest)
        free(self.top)
        free(self.due)

    def frame(self, bytes payload, int64_t mono, int64_t wall=0):
        """One data frame off the socket (``mono``: its CLOCK_MONOTONIC read stamp)."""
        cdef FeedHandler h = self.handler
        cdef int inst = h.frame_ptr(PyBytes_AS_STRING(payload), PyBytes_GET_SIZE(payload), mono, -1, payload)
        cdef Py_ssize_t n = h.res_n
        cdef BookTop *t
        cdef Latest *L
        self.frames += 1
        if inst < 0 or n == 0:
            return
        if inst >= self.n or self.books[inst] is None:
            raise ValueError(f"a frame for instrument {inst}, which the decision path does not trade")
        t = self.top[inst]
        (<OrderBook>self.books[inst]).fill_top(t, 0 if h.valid(inst) else F_BOOK_INVALID, cs_mono_ns())
        recs = h._out[:1] if h.res_status else (self.views[n] if n < 65 else h._buf[:n])
        self.fe_calls[inst](recs, self.tops[inst])
        self.messages += 1
        self.messages_pending += 1
        if self.messages <= 100_000:
            self.latency.append(cs_mono_ns() - mono)
        L = &self.latest[inst]
        if L.due:
            self.conflated += 1
            self.conflated_pending += 1
        else:
            L.due = True
            self.due[self.n_due] = inst
            self.n_due += 1
        L.origin, L.ts, L.t_parse = h.res_recs[0].mono_origin, h.res_recs[n - 1].exch_ts, h.t_parse
        L.bb, L.ba, L.flags, L.t_book = t.bid_px[0], t.ask_px[0], t.flags, t.mono_pub

    def read_end(self):
        """The read's frames all handed over: the decisions due, then the bookkeeping."""
        cdef int k, inst, n = self.n_due
        cdef Latest *L
        cdef list done = []
        self.n_due = 0
        stopping = self.engine.stopping
        for k in range(n):
            inst = self.due[k]
            L = &self.latest[inst]
            L.due = False
            if not stopping:
                done.append((inst, L.origin, self.decision.decide_c(inst, L.origin, L.ts, L.t_parse, L.bb, L.ba,
                                                                    L.flags, L.t_book)))
        if self.messages_pending:
            self.feed.messages += self.messages_pending
            self.metrics.messages_pending += self.messages_pending
            self.messages_pending = 0
        if self.conflated_pending:
            self.engine.counts["conflated"] += self.conflated_pending
            self.conflated_pending = 0
        decided = self.engine._decided
        for inst, origin, out in done:
            decided(inst, origin, out)


cdef inline bint _all_ready(const uint8_t *r, Py_ssize_t n) noexcept:
    cdef Py_ssize_t i
    for i in range(n):
        if not r[i]:
            return False
    return n > 0


cdef object _idle_link(list links):
    """``OrderLinks.idle_link``: the first connection that is open, has no request in
    flight and a transport that is not closing (``OrderLink.idle``), or None."""
    for link in links:
        if link.closed or link.pending is not None:
            continue
        tr = link.transport
        if tr is not None and not tr.is_closing():
            return link
    return None


cdef object _record(const void *p, size_t size, dtype):
    """A 1-element array of ``dtype`` over a copy of the record (a bytearray: ~0.4 us,
    where numpy's own allocation of these many-field dtypes costs ~2 us)."""
    return np.frombuffer(PyByteArray_FromStringAndSize(<const char *>p, size), dtype)
