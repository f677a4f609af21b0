# L2 order book on int64 ticks, and Binance's diff-depth synchronisation around it.

from libc.stdint cimport int64_t, uint64_t, uint32_t
from libcpp.map cimport map as cmap
from cext.schema cimport MarketRecord, BookTop

cdef enum:
    BOOK_BID = 1              # = SIDE_BUY
    BOOK_ASK = 2              # = SIDE_SELL

# BinanceBookSync.state
cdef enum:
    ST_WAIT_SNAPSHOT = 0
    ST_WAIT_BRIDGE = 1
    ST_SYNCED = 2

# BinanceBookSync.on_depth / on_snapshot results
cdef enum:
    SYNC_APPLIED = 1          # applied, book valid
    SYNC_BUFFERED = 2         # waiting for a snapshot: kept for later
    SYNC_STALE = 3            # older than the book: dropped (normal right after a snapshot)
    SYNC_WAITING = 4          # snapshot applied, waiting for the update that spans it
    SYNC_GAP = -1             # sequence break: book invalid, a new snapshot is needed
    SYNC_CROSSED = -2         # crossed or locked after an update: invalid, resync


cdef class OrderBook:
    """Flat quantity arrays over a range of interest (ROI) of ``roi`` ticks that re-centres
    as the price moves; levels outside the ROI live in ordered maps (kept, not dropped).
    Best bid/ask are cached after every update."""
    # ---- storage
    cdef int64_t *bid                 # qty (lots) by tick - base
    cdef int64_t *ask
    cdef int64_t *spare_bid           # second buffers for re-centring without allocation
    cdef int64_t *spare_ask
    cdef cmap[int64_t, int64_t] bid_out   # levels outside the ROI
    cdef cmap[int64_t, int64_t] ask_out
    cdef readonly int64_t base        # tick at index 0 of the ROI
    cdef readonly int64_t roi         # ROI width, ticks
    cdef bint based                   # base was set
    # ---- cached state
    cdef readonly int64_t best_bid_px   # INT64_MIN when the side is empty
    cdef readonly int64_t best_ask_px   # INT64_MAX when the side is empty
    # ---- identity and last message
    cdef readonly uint32_t inst
    cdef readonly int64_t update_id     # last applied final update id
    cdef readonly int64_t exch_ts
    cdef readonly int64_t mono_origin
    # ---- counters
    cdef readonly uint64_t levels_applied
    cdef readonly uint64_t recenters

    cdef void clear(self) noexcept nogil
    cdef void set_level(self, int side, int64_t px, int64_t qty) noexcept nogil
    cdef int64_t qty_at(self, int side, int64_t px) noexcept nogil
    cdef int64_t next_bid_below(self, int64_t px) noexcept nogil
    cdef int64_t next_ask_above(self, int64_t px) noexcept nogil
    cdef void recenter(self, int64_t center) noexcept nogil
    cdef void maybe_recenter(self) noexcept nogil
    cdef int fill_side(self, int side, int n, int64_t *px, int64_t *qty) noexcept nogil
    cdef void fill_top(self, BookTop *out, uint32_t flags, int64_t mono_pub) noexcept nogil
    cdef bint crossed(self) noexcept nogil
    cdef void apply_levels(self, MarketRecord *recs, int n) noexcept nogil


cdef class BinanceBookSync:
    """Binance futures diff-depth procedure around one OrderBook: buffer until a snapshot,
    drop updates with u < lastUpdateId, start at the update with U <= lastUpdateId <= u,
    then require pu == previous u. A break or a crossed book invalidates the book and asks
    for a new snapshot (``needs_snapshot``)."""
    cdef readonly OrderBook book
    cdef readonly int state             # 0 wait snapshot, 1 waiting for the bridging update, 2 synced
    cdef readonly int64_t last_u
    cdef readonly int64_t snapshot_id
    cdef list pending                   # buffered depth messages (bytes of their records)
    cdef readonly int max_pending
    # ---- counters
    cdef readonly uint64_t applied
    cdef readonly uint64_t gaps
    cdef readonly uint64_t crossed_books
    cdef readonly uint64_t stale_dropped
    cdef readonly uint64_t buffered
    cdef readonly uint64_t buffer_overflows
    cdef readonly uint64_t snapshots

    cdef int on_depth(self, MarketRecord *recs, int n)
    cdef int on_snapshot(self, MarketRecord *recs, int n)
    cdef int _continue(self, MarketRecord *recs, int n) noexcept nogil
    cdef void _invalidate(self) noexcept nogil
    cdef _buffer(self, MarketRecord *recs, int n)
