"""Record layouts: the one place where every ring and region record is defined.

Every dtype here is mirrored field for field by a ``cdef packed struct`` in
``cext/schema.pxd``; ``tests/unit/test_schema.py`` checks sizes and offsets against the
compiled structs and passes arrays through typed Cython memoryviews, so a layout that
drifts on one side fails loudly.

Conventions
-----------
- Little-endian, no implicit padding, 8-byte fields (a leading 8-byte header word packs
  the small enums: kind, side, flags, instrument id).
- Prices are int64 **ticks** and quantities int64 **lots** of the instrument
  (``price = ticks * tick_size``, ``qty = lots * lot_size``); floats appear only in
  scores, fees and risk figures, never in an order's price or quantity.
- Times: ``exch_ts`` is exchange time in ns since the epoch; every ``mono_*`` / ``t_*``
  stamp is CLOCK_MONOTONIC ns on this host. ``mono_origin`` is when the market frame that
  caused the record was read off the socket; each stage adds its own stamp, so
  tick-to-trade per stage is ``t_stage - mono_origin``.
"""
from __future__ import annotations

import numpy as np

from cext.shm_core import layout_descr, layout_hash  # noqa: F401  (re-exported)

# --------------------------------------------------------------------------- enums
# Market record kinds
MK_DEPTH = 1          # one level of a diff-depth update (qty is the new absolute size, 0 deletes)
MK_SNAPSHOT = 2       # one level of a REST snapshot (first level of a snapshot has F_CLEAR)
MK_TRADE = 3          # a public trade; side is the aggressor
MK_BBO = 4            # best bid/offer: px/qty = bid, aux/aux2 = ask px/qty
MK_MARK = 5           # mark price: px = mark, aux = index price (ticks), aux2 = funding rate * 1e9
MK_FUNDING = 6        # funding: aux2 = rate * 1e9, aux = next funding time (ns)
MK_STATUS = 7         # feed status change: aux = status code (see FEED_*)
MK_LIQUIDATION = 8    # forced order: side, px, qty

# Sides
SIDE_NONE = 0
SIDE_BUY = 1          # bid side of the book, buy order, buyer-aggressor trade
SIDE_SELL = 2

# Market record flags
F_LAST_IN_MESSAGE = 1  # last record produced by one exchange message
F_CLEAR = 2            # clear the book before applying (first record of a snapshot)
F_BOOK_INVALID = 4     # the book is not trustworthy (gap, crossed): do not trade on it
F_NON_MARKET = 8       # trade whose venue type is not MARKET (liquidation, ADL, insurance fund)
F_AGGREGATED = 16      # trade record from aggTrade (seq = aggregate id, aux/aux2 = first/last trade id)
F_VOLUME_SPIKE = 32    # trade size far above its recent average (set by validation)

# Feed status codes (MK_STATUS aux)
FEED_SYNCED = 1
FEED_GAP = 2
FEED_RESYNCING = 3
FEED_STALE = 4
FEED_DISCONNECTED = 5

# Order actions
ACT_NEW = 1
ACT_CANCEL = 2
ACT_REPLACE = 3
ACT_CANCEL_ALL = 4

# Order types
OT_LIMIT = 1
OT_POST_ONLY = 2      # GTX on Binance
OT_IOC = 3
OT_MARKET = 4
OT_FOK = 5

# Order flags
OF_REDUCE_ONLY = 1

# Exec kinds
EX_ACK = 1
EX_REJECT = 2
EX_PARTIAL = 3
EX_FILL = 4
EX_CANCELED = 5
EX_EXPIRED = 6
EX_REPLACED = 7
# gateway process -> risk process only (4proc, engine.ipc.orderflow), never journaled:
EX_SENT = 8           # an order's request is done: mono_send its t_send (0: never written),
                      # qty how many EXEC records follow back to back (that order's results)
EX_GATEWAY = 9        # the gateway's state: reason GW_RECONCILING or GW_READY
GW_RECONCILING = 1    # its user data stream is down or being reconciled
GW_READY = 2          # connected and reconciled: every report from here on arrives

# Liquidity
LIQ_NONE = 0
LIQ_MAKER = 1
LIQ_TAKER = 2

# Risk layers (REJECT_DTYPE.layer): the seven layers in order, then exchange filters
LAYER_POSITION = 1
LAYER_EXPOSURE = 2
LAYER_VAR = 3
LAYER_DRAWDOWN = 4
LAYER_VOLATILITY = 5
LAYER_CORRELATION = 6
LAYER_EMERGENCY = 7
LAYER_FILTERS = 8     # exchange filters: tick/lot, min notional, price band, margin, rate, self-trade

# Trading states
TS_ACTIVE = 1
TS_REDUCING = 2
TS_HALTED = 3

# Process states (HEARTBEAT_DTYPE.state)
PS_STARTING = 1
PS_READY = 2
PS_STOPPING = 3
PS_STOPPED = 4

BOOK_LEVELS = 10      # levels per side published in the book region

# --------------------------------------------------------------------------- records
# Header word shared by market records: kind, side, flags, instrument.
MARKET_DTYPE = np.dtype([
    ("kind", "<u1"),          # MK_*
    ("side", "<u1"),          # SIDE_*
    ("flags", "<u2"),         # F_*
    ("inst", "<u4"),          # instrument id (engine-wide numbering)
    ("seq", "<i8"),           # exchange sequence: final update id `u`, trade id, ...
    ("exch_ts", "<i8"),       # exchange event time, ns since epoch
    ("mono_origin", "<i8"),   # CLOCK_MONOTONIC ns when the frame was read off the socket
    ("px", "<i8"),            # price, ticks
    ("qty", "<i8"),           # quantity, lots
    ("aux", "<i8"),           # kind-specific (depth: previous final id `pu`; BBO: ask px)
    ("aux2", "<i8"),          # kind-specific (depth: first id `U`; BBO: ask qty)
])

# Intents (brain -> risk) and orders (risk -> gateway) share one layout: an order is
# the intent the gate accepted, with price and quantity rounded and `t_risk` stamped.
ORDER_DTYPE = np.dtype([
    ("action", "<u1"),        # ACT_*
    ("side", "<u1"),          # SIDE_BUY / SIDE_SELL
    ("otype", "<u1"),         # OT_*
    ("flags", "<u1"),         # OF_*
    ("inst", "<u4"),
    ("client_id", "<u8"),     # our client order id (numeric; rendered for the venue)
    ("ref_client_id", "<u8"),  # CANCEL/REPLACE: the order it refers to
    ("px", "<i8"),            # limit price, ticks (0 for MARKET)
    ("qty", "<i8"),           # quantity, lots
    ("strategy", "<u2"),      # strategy id
    ("regime", "<u2"),        # regime at decision time
    ("model_version", "<u4"),
    ("score", "<f8"),         # model / signal score behind the decision
    ("event_ts", "<i8"),      # exchange time of the triggering market event, ns
    # per-stage stamps, CLOCK_MONOTONIC ns (0 = stage not on this path)
    ("mono_origin", "<i8"),   # triggering frame read off the socket
    ("t_parse", "<i8"),
    ("t_book", "<i8"),
    ("t_features", "<i8"),
    ("t_infer", "<i8"),
    ("t_strategy", "<i8"),
    ("t_risk", "<i8"),
    ("t_send", "<i8"),        # order bytes written to the venue socket
])
INTENT_DTYPE = ORDER_DTYPE

REJECT_DTYPE = np.dtype([
    ("layer", "<u1"),         # LAYER_*
    ("action", "<u1"),        # the intent's action
    ("side", "<u1"),
    ("state", "<u1"),         # trading state at the time (TS_*)
    ("inst", "<u4"),
    ("reason", "<u4"),        # reason code within the layer (engine.risk)
    ("strategy", "<u2"),
    ("_pad", "<u2"),
    ("client_id", "<u8"),
    ("px", "<i8"),
    ("qty", "<i8"),
    ("observed", "<f8"),      # the number that was compared ...
    ("limit", "<f8"),         # ... and the limit it was compared with
    ("mono_origin", "<i8"),
])

EXEC_DTYPE = np.dtype([
    ("kind", "<u1"),          # EX_*
    ("side", "<u1"),
    ("liquidity", "<u1"),     # LIQ_*
    ("flags", "<u1"),         # OF_* of the order
    ("inst", "<u4"),
    ("client_id", "<u8"),
    ("exch_order_id", "<i8"),
    ("px", "<i8"),            # last fill price (ticks); order price for ACK/CANCELED
    ("qty", "<i8"),           # last fill quantity (lots)
    ("leaves_qty", "<i8"),
    ("cum_qty", "<i8"),
    ("order_px", "<i8"),      # the order's limit price (ticks)
    ("fee", "<f8"),           # fee of this fill, quote currency (negative = rebate)
    ("reason", "<i4"),        # venue error code for REJECT (e.g. -2019), else 0
    ("strategy", "<u2"),
    ("_pad", "<u2"),
    ("trade_id", "<i8"),
    ("exch_ts", "<i8"),       # venue transaction time, ns
    ("mono_origin", "<i8"),   # of the market event behind the order
    ("mono_send", "<i8"),     # order bytes written
    ("mono_recv", "<i8"),     # this report read off the socket
    ("_pad2", "<i8"),
])

# --------------------------------------------------------------------------- regions
BOOK_TOP_DTYPE = np.dtype([
    ("inst", "<u4"),
    ("flags", "<u4"),         # F_BOOK_INVALID when not tradable
    ("update_id", "<i8"),     # last applied final update id
    ("exch_ts", "<i8"),
    ("mono_origin", "<i8"),   # frame that produced this state
    ("mono_pub", "<i8"),      # when it was published
    ("bid_px", "<i8", (BOOK_LEVELS,)),
    ("bid_qty", "<i8", (BOOK_LEVELS,)),
    ("ask_px", "<i8", (BOOK_LEVELS,)),
    ("ask_qty", "<i8", (BOOK_LEVELS,)),
])

HEARTBEAT_DTYPE = np.dtype([
    ("pid", "<i8"),
    ("heartbeat_ns", "<i8"),  # CLOCK_MONOTONIC of the last beat
    ("state", "<u4"),         # PS_*
    ("role", "<u4"),          # process role id
    ("events", "<u8"),        # events processed
    ("errors", "<u8"),        # errors counted
    ("started_ns", "<i8"),    # CLOCK_REALTIME at start
    ("name", "S16"),
])

POSITION_DTYPE = np.dtype([
    ("inst", "<u4"),
    ("_pad", "<u4"),
    ("qty", "<i8"),           # signed position, lots
    ("avg_px", "<f8"),        # average entry price, ticks (fractional)
    ("mark_px", "<i8"),       # last mark price, ticks
    ("realized_pnl", "<f8"),  # quote currency, after fees
    ("unrealized_pnl", "<f8"),
    ("open_orders", "<i8"),
    ("updated_ns", "<i8"),    # CLOCK_MONOTONIC
])

RISK_STATE_DTYPE = np.dtype([
    ("trading_state", "<u1"),  # TS_*
    ("regime", "<u1"),
    ("reason", "<u2"),        # why the state last changed
    ("n_positions", "<u4"),
    ("equity", "<f8"),
    ("peak_equity", "<f8"),
    ("daily_pnl", "<f8"),
    ("exposure", "<f8"),      # gross notional / equity
    ("var_1d", "<f8"),        # portfolio 1-day VaR / equity
    ("updated_ns", "<i8"),
    ("state_since_ns", "<i8"),
])

RECORDS = {
    "market": MARKET_DTYPE,
    "order": ORDER_DTYPE,
    "reject": REJECT_DTYPE,
    "exec": EXEC_DTYPE,
    "book_top": BOOK_TOP_DTYPE,
    "heartbeat": HEARTBEAT_DTYPE,
    "position": POSITION_DTYPE,
    "risk_state": RISK_STATE_DTYPE,
}


def copy_records(a: np.ndarray) -> np.ndarray:
    """``a.copy()`` of a record array (a fresh, writable array with the same bytes and
    dtype) in ~0.4 us: numpy's own copy of these many-field dtypes sets up a transfer per
    field (~4.5 us for one ORDER record), which the order path pays per order."""
    return np.frombuffer(bytearray(a.tobytes()), a.dtype)

