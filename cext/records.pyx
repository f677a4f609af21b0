# cython: language_level=3, boundscheck=False, wraparound=False
"""Compiled view of the record structs in schema.pxd.

``layouts()`` reports what the C compiler made of each struct (size and field
offsets); the ``view_*`` functions take typed memoryviews, so passing a numpy array
whose dtype does not match the struct raises ValueError ("Buffer dtype mismatch").
"""
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_ANY_CONTIGUOUS, PyBUF_WRITABLE

from libc.stdint cimport int64_t

from cext.schema cimport *
from cext.shm_core cimport cs_mono_ns

cdef object _MARKET_DTYPE = None


cdef MarketRecord *market_ptr(object a, Py_ssize_t *n) except? NULL:
    """The records of a C-contiguous, writable MARKET_DTYPE array and their count in ``n``
    (ValueError for another dtype, TypeError for something that is not an array)."""
    global _MARKET_DTYPE
    cdef Py_buffer b
    cdef MarketRecord *p
    if _MARKET_DTYPE is None:
        from engine.schema import MARKET_DTYPE
        _MARKET_DTYPE = MARKET_DTYPE
    try:
        dt = a.dtype
    except AttributeError:
        raise TypeError(f"MARKET_DTYPE records: a numpy array, got {type(a).__name__}") from None
    if dt is not _MARKET_DTYPE and dt != _MARKET_DTYPE:
        raise ValueError(f"Buffer dtype mismatch: MARKET_DTYPE records expected, got {dt}")
    PyObject_GetBuffer(a, &b, PyBUF_ANY_CONTIGUOUS | PyBUF_WRITABLE)
    n[0] = b.len // sizeof(MarketRecord)
    p = <MarketRecord *>b.buf
    PyBuffer_Release(&b)          # numpy keeps the data where it is while the caller holds ``a``
    return p


cdef inline size_t _off(void *base, void *field):
    return <size_t>(<char *>field - <char *>base)


def layouts():
    """{record: (sizeof, {field: offset})} as compiled."""
    cdef MarketRecord v_market
    cdef OrderRecord v_order
    cdef RejectRecord v_reject
    cdef ExecRecord v_exec
    cdef BookTop v_book_top
    cdef Heartbeat v_heartbeat
    cdef Position v_position
    cdef RiskState v_risk_state
    return {
        "market": (sizeof(MarketRecord), {"kind": _off(&v_market, &v_market.kind), "side": _off(&v_market, &v_market.side), "flags": _off(&v_market, &v_market.flags), "inst": _off(&v_market, &v_market.inst), "seq": _off(&v_market, &v_market.seq), "exch_ts": _off(&v_market, &v_market.exch_ts), "mono_origin": _off(&v_market, &v_market.mono_origin), "px": _off(&v_market, &v_market.px), "qty": _off(&v_market, &v_market.qty), "aux": _off(&v_market, &v_market.aux), "aux2": _off(&v_market, &v_market.aux2)}),
        "order": (sizeof(OrderRecord), {"action": _off(&v_order, &v_order.action), "side": _off(&v_order, &v_order.side), "otype": _off(&v_order, &v_order.otype), "flags": _off(&v_order, &v_order.flags), "inst": _off(&v_order, &v_order.inst), "client_id": _off(&v_order, &v_order.client_id), "ref_client_id": _off(&v_order, &v_order.ref_client_id), "px": _off(&v_order, &v_order.px), "qty": _off(&v_order, &v_order.qty), "strategy": _off(&v_order, &v_order.strategy), "regime": _off(&v_order, &v_order.regime), "model_version": _off(&v_order, &v_order.model_version), "score": _off(&v_order, &v_order.score), "event_ts": _off(&v_order, &v_order.event_ts), "mono_origin": _off(&v_order, &v_order.mono_origin), "t_parse": _off(&v_order, &v_order.t_parse), "t_book": _off(&v_order, &v_order.t_book), "t_features": _off(&v_order, &v_order.t_features), "t_infer": _off(&v_order, &v_order.t_infer), "t_strategy": _off(&v_order, &v_order.t_strategy), "t_risk": _off(&v_order, &v_order.t_risk), "t_send": _off(&v_order, &v_order.t_send)}),
        "reject": (sizeof(RejectRecord), {"layer": _off(&v_reject, &v_reject.layer), "action": _off(&v_reject, &v_reject.action), "side": _off(&v_reject, &v_reject.side), "state": _off(&v_reject, &v_reject.state), "inst": _off(&v_reject, &v_reject.inst), "reason": _off(&v_reject, &v_reject.reason), "strategy": _off(&v_reject, &v_reject.strategy), "_pad": _off(&v_reject, &v_reject._pad), "client_id": _off(&v_reject, &v_reject.client_id), "px": _off(&v_reject, &v_reject.px), "qty": _off(&v_reject, &v_reject.qty), "observed": _off(&v_reject, &v_reject.observed), "limit": _off(&v_reject, &v_reject.limit), "mono_origin": _off(&v_reject, &v_reject.mono_origin)}),
        "exec": (sizeof(ExecRecord), {"kind": _off(&v_exec, &v_exec.kind), "side": _off(&v_exec, &v_exec.side), "liquidity": _off(&v_exec, &v_exec.liquidity), "flags": _off(&v_exec, &v_exec.flags), "inst": _off(&v_exec, &v_exec.inst), "client_id": _off(&v_exec, &v_exec.client_id), "exch_order_id": _off(&v_exec, &v_exec.exch_order_id), "px": _off(&v_exec, &v_exec.px), "qty": _off(&v_exec, &v_exec.qty), "leaves_qty": _off(&v_exec, &v_exec.leaves_qty), "cum_qty": _off(&v_exec, &v_exec.cum_qty), "order_px": _off(&v_exec, &v_exec.order_px), "fee": _off(&v_exec, &v_exec.fee), "reason": _off(&v_exec, &v_exec.reason), "strategy": _off(&v_exec, &v_exec.strategy), "_pad": _off(&v_exec, &v_exec._pad), "trade_id": _off(&v_exec, &v_exec.trade_id), "exch_ts": _off(&v_exec, &v_exec.exch_ts), "mono_origin": _off(&v_exec, &v_exec.mono_origin), "mono_send": _off(&v_exec, &v_exec.mono_send), "mono_recv": _off(&v_exec, &v_exec.mono_recv), "_pad2": _off(&v_exec, &v_exec._pad2)}),
        "book_top": (sizeof(BookTop), {"inst": _off(&v_book_top, &v_book_top.inst), "flags": _off(&v_book_top, &v_book_top.flags), "update_id": _off(&v_book_top, &v_book_top.update_id), "exch_ts": _off(&v_book_top, &v_book_top.exch_ts), "mono_origin": _off(&v_book_top, &v_book_top.mono_origin), "mono_pub": _off(&v_book_top, &v_book_top.mono_pub), "bid_px": _off(&v_book_top, &v_book_top.bid_px), "bid_qty": _off(&v_book_top, &v_book_top.bid_qty), "ask_px": _off(&v_book_top, &v_book_top.ask_px), "ask_qty": _off(&v_book_top, &v_book_top.ask_qty)}),
        "heartbeat": (sizeof(Heartbeat), {"pid": _off(&v_heartbeat, &v_heartbeat.pid), "heartbeat_ns": _off(&v_heartbeat, &v_heartbeat.heartbeat_ns), "state": _off(&v_heartbeat, &v_heartbeat.state), "role": _off(&v_heartbeat, &v_heartbeat.role), "events": _off(&v_heartbeat, &v_heartbeat.events), "errors": _off(&v_heartbeat, &v_heartbeat.errors), "started_ns": _off(&v_heartbeat, &v_heartbeat.started_ns), "name": _off(&v_heartbeat, &v_heartbeat.name)}),
        "position": (sizeof(Position), {"inst": _off(&v_position, &v_position.inst), "_pad": _off(&v_position, &v_position._pad), "qty": _off(&v_position, &v_position.qty), "avg_px": _off(&v_position, &v_position.avg_px), "mark_px": _off(&v_position, &v_position.mark_px), "realized_pnl": _off(&v_position, &v_position.realized_pnl), "unrealized_pnl": _off(&v_position, &v_position.unrealized_pnl), "open_orders": _off(&v_position, &v_position.open_orders), "updated_ns": _off(&v_position, &v_position.updated_ns)}),
        "risk_state": (sizeof(RiskState), {"trading_state": _off(&v_risk_state, &v_risk_state.trading_state), "regime": _off(&v_risk_state, &v_risk_state.regime), "reason": _off(&v_risk_state, &v_risk_state.reason), "n_positions": _off(&v_risk_state, &v_risk_state.n_positions), "equity": _off(&v_risk_state, &v_risk_state.equity), "peak_equity": _off(&v_risk_state, &v_risk_state.peak_equity), "daily_pnl": _off(&v_risk_state, &v_risk_state.daily_pnl), "exposure": _off(&v_risk_state, &v_risk_state.exposure), "var_1d": _off(&v_risk_state, &v_risk_state.var_1d), "updated_ns": _off(&v_risk_state, &v_risk_state.updated_ns), "state_since_ns": _off(&v_risk_state, &v_risk_state.state_since_ns)}),
    }


# Typed-memoryview entry points: each returns (n, one field of the last record) so the
# test can also check that the struct reads the same bytes numpy wrote. The item size is
# checked first: Cython's buffer-format parser crashes on some over-long struct formats
# with array fields (seen with Cython 3.3), and a size mismatch is a drift anyway.

cdef _size_check(object a, size_t size, str name):
    if a.dtype.itemsize != size:
        raise ValueError(f"Buffer dtype mismatch: {name} records are {size} bytes, "
                         f"the array's are {a.dtype.itemsize}")

def view_market(a):
    _size_check(a, sizeof(MarketRecord), "MarketRecord")
    cdef MarketRecord[::1] v = a
    return v.shape[0], (v[v.shape[0] - 1].px if v.shape[0] else 0)

def view_order(a):
    _size_check(a, sizeof(OrderRecord), "OrderRecord")
    cdef OrderRecord[::1] v = a
    return v.shape[0], (v[v.shape[0] - 1].t_send if v.shape[0] else 0)

def view_reject(a):
    _size_check(a, sizeof(RejectRecord), "RejectRecord")
    cdef RejectRecord[::1] v = a
    return v.shape[0], (v[v.shape[0] - 1].mono_origin if v.shape[0] else 0)

def view_exec(a):
    _size_check(a, sizeof(ExecRecord), "ExecRecord")
    cdef ExecRecord[::1] v = a
    return v.shape[0], (v[v.shape[0] - 1].mono_recv if v.shape[0] else 0)

def view_book_top(a):
    _size_check(a, sizeof(BookTop), "BookTop")
    cdef BookTop[::1] v = a
    return v.shape[0], (v[v.shape[0] - 1].ask_qty[9] if v.shape[0] else 0)

def view_heartbeat(a):
    _size_check(a, sizeof(Heartbeat), "Heartbeat")
    cdef Heartbeat[::1] v = a
    return v.shape[0], (v[v.shape[0] - 1].started_ns if v.shape[0] else 0)

def view_position(a):
    _size_check(a, sizeof(Position), "Position")
    cdef Position[::1] v = a
    return v.shape[0], (v[v.shape[0] - 1].updated_ns if v.shape[0] else 0)

def view_risk_state(a):
    _size_check(a, sizeof(RiskState), "RiskState")
    cdef RiskState[::1] v = a
    return v.shape[0], (v[v.shape[0] - 1].state_since_ns if v.shape[0] else 0)


cdef object _ORDER_DTYPE = None


def stamp_orders(list orders, int64_t origin, int64_t t_book, int64_t t_features, int64_t t_infer,
                 int64_t t_strategy, int64_t t_parse=0):
    """The brain's stage stamps onto each intent (1-element ORDER_DTYPE arrays), in place:
    six numpy field assignments per intent cost ~1 us each. ``t_parse``: the fused
    engine's frame-parsed stamp (0 elsewhere)."""
    cdef OrderRecord *o
    for a in orders:
        o = _one_order(a, PyBUF_WRITABLE)
        o.mono_origin, o.t_parse, o.t_book, o.t_features, o.t_infer, o.t_strategy = \
            origin, t_parse, t_book, t_features, t_infer, t_strategy


cdef OrderRecord *_one_order(object a, int flags) except NULL:
    """The record of a 1-element ORDER_DTYPE array, in place (the buffer is released before
    returning: numpy arrays do not move while referenced)."""
    global _ORDER_DTYPE
    cdef Py_buffer b
    cdef OrderRecord *o
    if _ORDER_DTYPE is None:
        from engine.schema import ORDER_DTYPE
        _ORDER_DTYPE = ORDER_DTYPE
    if a.dtype is not _ORDER_DTYPE and a.dtype != _ORDER_DTYPE:
        raise ValueError(f"Buffer dtype mismatch: an ORDER_DTYPE record expected, got {a.dtype}")
    PyObject_GetBuffer(a, &b, PyBUF_ANY_CONTIGUOUS | flags)
    try:
        if b.len != sizeof(OrderRecord):
            raise ValueError(f"one ORDER_DTYPE record expected, got {b.len // sizeof(OrderRecord)}")
        o = <OrderRecord *>b.buf
    finally:
        PyBuffer_Release(&b)
    return o


def order_head(a):
    """(action, inst, client_id, ref_client_id) of a 1-element ORDER_DTYPE array, read in
    place: four numpy scalar reads cost ~1 us each on the order path."""
    cdef OrderRecord *o = _one_order(a, 0)
    return o.action, o.inst, o.client_id, o.ref_client_id


def stamp_send(a):
    """``t_send`` of a 1-element ORDER_DTYPE array set to CLOCK_MONOTONIC now (the clock of
    ``time.monotonic_ns``), in place; returns it."""
    cdef OrderRecord *o = _one_order(a, PyBUF_WRITABLE)
    o.t_send = cs_mono_ns()
    return o.t_send


def message_times(recs):
    """(mono_origin of the first record, exch_ts of the last) of one message's
    MARKET_DTYPE records, read in place (0, 0 for none)."""
    cdef Py_ssize_t n
    cdef MarketRecord *r = market_ptr(recs, &n)
    if n == 0:
        return 0, 0
    return r[0].mono_origin, r[n - 1].exch_ts


def enums():
    """The order and execution constants as cext/schema.pxd declares them (drift test)."""
    return {"SIDE_BUY": SIDE_BUY, "SIDE_SELL": SIDE_SELL, "ACT_NEW": ACT_NEW, "ACT_CANCEL": ACT_CANCEL,
            "ACT_REPLACE": ACT_REPLACE, "ACT_CANCEL_ALL": ACT_CANCEL_ALL, "OT_LIMIT": OT_LIMIT,
            "OT_POST_ONLY": OT_POST_ONLY, "OT_IOC": OT_IOC, "OT_MARKET": OT_MARKET, "OT_FOK": OT_FOK,
            "OF_REDUCE_ONLY": OF_REDUCE_ONLY}

