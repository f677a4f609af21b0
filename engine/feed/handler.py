"""FeedHandler: raw exchange frames -> validated market records, synced books.

The component the ``feed`` process wires to a WebSocket session, a market ring and the
book region, and that replay and the backtester drive from captures. No I/O of its own:
it returns what to publish and says when a book needs a REST snapshot.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from cext.binance import BinanceParser
from cext.book import BinanceBookSync, OrderBook
from cext.validate import Validator
from engine import schema
from engine.venues.instruments import Instrument

log = logging.getLogger("cryptoscalp.feed")

SYNC_APPLIED, SYNC_BUFFERED, SYNC_STALE, SYNC_WAITING, SYNC_GAP, SYNC_CROSSED = 1, 2, 3, 4, -1, -2


@dataclass
class FrameResult:
    """What one frame produced."""
    records: np.ndarray                 # records to publish (validated), a view of an internal buffer
    inst: int = -1                      # instrument of the frame (-1 if rejected)
    reject: str | None = None           # parser rejection reason
    sync: int = 0                       # SYNC_* for depth/snapshot frames, 0 otherwise
    applied: list = field(default_factory=list)  # update ids applied to the book by this frame


class FeedHandler:
    """Parse, sequence and validate frames for a set of instruments.

    ``on_frame(frame, mono_origin)`` returns a FrameResult whose ``records`` are ready for
    the market ring (valid records only; a gap adds an MK_STATUS record). Books that lost
    sync are listed in ``snapshot_needed``; pass the REST snapshot to ``on_frame`` with
    ``default_symbol``.
    """

    def __init__(self, instruments: list[Instrument], roi: int = 1 << 16,
                 validator: Validator | None = None, max_levels: int = 8192,
                 log_first: int = 10, log_every: int = 1000, ring=None, book_region=None):
        if not instruments:
            raise ValueError("FeedHandler needs at least one instrument")
        self.instruments = {i.inst: i for i in instruments}
        self.by_symbol = {i.symbol: i for i in instruments}
        self.parser = BinanceParser(instruments, max_levels)
        self.books = {i.inst: OrderBook(i.inst, roi) for i in instruments}
        self.syncs = {k: BinanceBookSync(b) for k, b in self.books.items()}
        self.validator = validator or Validator(max(self.instruments) + 1)
        self._buf = np.zeros(max_levels + 2, schema.MARKET_DTYPE)
        self._out = np.zeros(4 * max_levels + 4, schema.MARKET_DTYPE)
        self.snapshot_needed: set[int] = set()
        self.dropped = 0
        self._log_first, self._log_every = log_first, log_every
        self._logged: dict[str, int] = {}
        self.ring = ring                  # RingWriter of MARKET records, or None
        self.book_region = book_region    # Region of BOOK_TOP records (slot = inst), or None
        if book_region is not None and book_region.nslots <= max(self.instruments):
            raise ValueError(f"book region has {book_region.nslots} slots; instrument ids go to {max(self.instruments)}")
        self.published = 0
        self.t_parse = 0                  # CLOCK_MONOTONIC ns: the last frame parsed (latency stamps)

    # ---------------------------------------------------------------- frames
    def on_frame(self, frame, mono_origin: int, default_symbol: str | None = None) -> FrameResult:
        res = self._on_frame(frame, mono_origin, default_symbol)
        if self.ring is not None and len(res.records):
            self.ring.publish_many(res.records)
            self.published += len(res.records)
        if self.book_region is not None and (res.applied or res.sync < 0):
            self.books[res.inst].publish(self.book_region, res.inst, self.syncs[res.inst].valid)
        return res

    def _on_frame(self, frame, mono_origin: int, default_symbol: str | None) -> FrameResult:
        n = self.parser.parse(frame, mono_origin, self._buf, default_symbol)
        self.t_parse = time.monotonic_ns()
        if n < 0:
            reason = BinanceParser.reason_name(n)
            self._log_reject(reason, frame)
            return FrameResult(self._buf[:0], reject=reason)
        recs = self._buf[:n]
        kind = int(recs["kind"][0])
        inst = int(recs["inst"][0])
        if kind in (schema.MK_DEPTH, schema.MK_SNAPSHOT):
            return self._on_book(recs, kind, inst, mono_origin)
        bad = self.validator.check_records(recs)
        if bad:
            self.dropped += bad
            recs = recs[self.validator.results[:len(recs)] == 0]
        return FrameResult(recs, inst=inst)

    def _on_book(self, recs, kind, inst, mono_origin) -> FrameResult:
        self.validator.check_records(recs)      # counts; depth is sequenced, never dropped here
        sync = self.syncs[inst]
        status = sync.apply(recs)
        applied = [sync.last_u] if status == SYNC_APPLIED else []
        if kind == schema.MK_SNAPSHOT:
            for msg in sync.take_pending():
                st = sync.apply(msg)
                if st == SYNC_APPLIED:
                    applied.append(sync.last_u)
                status = st if st != SYNC_STALE else status
            if sync.valid:
                self.snapshot_needed.discard(inst)
                status = SYNC_APPLIED
        if status in (SYNC_GAP, SYNC_CROSSED) or sync.needs_snapshot:
            self.snapshot_needed.add(inst)
        if status in (SYNC_GAP, SYNC_CROSSED):
            log.warning("%s: book %s at u=%d; resyncing from a new snapshot",
                        self.instruments[inst].symbol, "gap" if status == SYNC_GAP else "crossed",
                        int(recs["seq"][0]))
            st = self._out[:1]
            st[0] = 0
            st["kind"] = schema.MK_STATUS
            st["inst"] = inst
            st["flags"] = schema.F_LAST_IN_MESSAGE | schema.F_BOOK_INVALID
            st["seq"] = recs["seq"][0]
            st["mono_origin"] = mono_origin
            st["aux"] = schema.FEED_GAP if status == SYNC_GAP else schema.FEED_RESYNCING
            return FrameResult(st, inst=inst, sync=status)
        if not applied:
            return FrameResult(self._buf[:0], inst=inst, sync=status)
        return FrameResult(recs, inst=inst, sync=status, applied=applied)

    # ---------------------------------------------------------------- state
    def book(self, symbol_or_inst) -> OrderBook:
        inst = self.by_symbol[symbol_or_inst].inst if isinstance(symbol_or_inst, str) else symbol_or_inst
        return self.books[inst]

    def is_valid(self, inst: int) -> bool:
        """Strategies must not trade an instrument whose book is not valid."""
        return self.syncs[inst].valid

    def stats(self) -> dict:
        return {"parser": self.parser.stats(), "validation": self.validator.stats(),
                "dropped_by_validation": self.dropped,
                "books": {self.instruments[k].symbol: s.stats() for k, s in self.syncs.items()},
                "snapshot_needed": sorted(self.instruments[i].symbol for i in self.snapshot_needed)}

    def _log_reject(self, reason: str, frame) -> None:
        k = self._logged.get(reason, 0) + 1
        self._logged[reason] = k
        if k <= self._log_first or k % self._log_every == 0:
            log.warning("rejected frame (%s, #%d, at byte %d): %.200r", reason, k,
                        self.parser.last_reject_offset, bytes(frame[:200]))
