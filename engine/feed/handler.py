"""FeedHandler: raw exchange frames -> validated market records, synced books.

The component the ``feed`` process wires to a WebSocket session, a market ring and the
book region, and that replay and the backtester drive from captures. No I/O of its own:
it returns what to publish and says when a book needs a REST snapshot. Compiled
(cext/feedhandler.pyx: the fused engine's compiled path runs frames through it without a
Python object per frame); ``FrameResult`` is what ``on_frame`` returns to Python callers.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cext.feedhandler import FeedHandler

__all__ = ["FeedHandler", "FrameResult", "SYNC_APPLIED", "SYNC_BUFFERED", "SYNC_STALE", "SYNC_WAITING", "SYNC_GAP",
           "SYNC_CROSSED"]

SYNC_APPLIED, SYNC_BUFFERED, SYNC_STALE, SYNC_WAITING, SYNC_GAP, SYNC_CROSSED = 1, 2, 3, 4, -1, -2


@dataclass
class FrameResult:
    """What one frame produced."""
    records: np.ndarray                 # records to publish (validated), a view of an internal buffer
    inst: int = -1                      # instrument of the frame (-1 if rejected)
    reject: str | None = None           # parser rejection reason
    sync: int = 0                       # SYNC_* for depth/snapshot frames, 0 otherwise
    applied: list = field(default_factory=list)  # update ids applied to the book by this frame
