# Mirror of engine/schema.py: one packed struct per record dtype, field for field.
# tests/unit/test_schema.py checks sizes and offsets and passes numpy arrays through
# typed memoryviews of these structs, so a drift on either side fails.

from libc.stdint cimport int64_t, uint64_t, int32_t, uint32_t, uint16_t, uint8_t

# ---------------------------------------------------------------- ring records

cdef packed struct MarketRecord:
    uint8_t kind          # MK_*
    uint8_t side          # SIDE_*
    uint16_t flags        # F_*
    uint32_t inst         # instrument id
    int64_t seq           # exchange sequence (final update id, trade id)
    int64_t exch_ts       # exchange event time, ns
    int64_t mono_origin   # frame read off the socket, CLOCK_MONOTONIC ns
    int64_t px            # ticks
    int64_t qty           # lots
    int64_t aux           # kind-specific
    int64_t aux2          # kind-specific

cdef packed struct OrderRecord:
    uint8_t action        # ACT_*
    uint8_t side
    uint8_t otype         # OT_*
    uint8_t flags         # OF_*
    uint32_t inst
    uint64_t client_id
    uint64_t ref_client_id
    int64_t px            # ticks
    int64_t qty           # lots
    uint16_t strategy
    uint16_t regime
    uint32_t model_version
    double score
    int64_t event_ts
    int64_t mono_origin   # per-stage stamps, CLOCK_MONOTONIC ns
    int64_t t_parse
    int64_t t_book
    int64_t t_features
    int64_t t_infer
    int64_t t_strategy
    int64_t t_risk
    int64_t t_send

cdef packed struct RejectRecord:
    uint8_t layer         # LAYER_*
    uint8_t action
    uint8_t side
    uint8_t state         # TS_*
    uint32_t inst
    uint32_t reason
    uint16_t strategy
    uint16_t _pad
    uint64_t client_id
    int64_t px
    int64_t qty
    double observed
    double limit
    int64_t mono_origin

cdef packed struct ExecRecord:
    uint8_t kind          # EX_*
    uint8_t side
    uint8_t liquidity     # LIQ_*
    uint8_t flags
    uint32_t inst
    uint64_t client_id
    int64_t exch_order_id
    int64_t px
    int64_t qty
    int64_t leaves_qty
    int64_t cum_qty
    int64_t order_px
    double fee
    int32_t reason
    uint16_t strategy
    uint16_t _pad
    int64_t trade_id
    int64_t exch_ts
    int64_t mono_origin
    int64_t mono_send
    int64_t mono_recv
    int64_t _pad2

# ---------------------------------------------------------------- region records

cdef packed struct BookTop:
    uint32_t inst
    uint32_t flags
    int64_t update_id
    int64_t exch_ts
    int64_t mono_origin
    int64_t mono_pub
    int64_t bid_px[10]
    int64_t bid_qty[10]
    int64_t ask_px[10]
    int64_t ask_qty[10]

cdef packed struct Heartbeat:
    int64_t pid
    int64_t heartbeat_ns
    uint32_t state
    uint32_t role
    uint64_t events
    uint64_t errors
    int64_t started_ns
    char name[16]

cdef packed struct Position:
    uint32_t inst
    uint32_t _pad
    int64_t qty
    double avg_px
    int64_t mark_px
    double realized_pnl
    double unrealized_pnl
    int64_t open_orders
    int64_t updated_ns

cdef packed struct RiskState:
    uint8_t trading_state
    uint8_t regime
    uint16_t reason
    uint32_t n_positions
    double equity
    double peak_equity
    double daily_pnl
    double exposure
    double var_1d
    int64_t updated_ns
    int64_t state_since_ns

# ---------------------------------------------------------------- order and execution enums
# Mirror of engine/schema.py's constants (tests/unit/test_schema.py compares them through
# cext.records.enums()). Modules that predate this block keep local copies (risk, matching,
# strategies); new code cimports these.
cdef enum:
    SIDE_BUY = 1
    SIDE_SELL = 2
    ACT_NEW = 1
    ACT_CANCEL = 2
    ACT_REPLACE = 3
    ACT_CANCEL_ALL = 4
    OT_LIMIT = 1
    OT_POST_ONLY = 2
    OT_IOC = 3
    OT_MARKET = 4
    OT_FOK = 5
    OF_REDUCE_ONLY = 1
