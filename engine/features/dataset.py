"""Message tables for batch features: a capture replayed through the feed handler (what
the live feed would publish) into (records, message starts/ends, book tops, instruments)."""
from __future__ import annotations

import numpy as np

from engine import schema
from engine.feed.handler import FeedHandler
from engine.feed.replay import capture_symbol, estimate_clock_offset, infer_instruments
from engine.feed.capture import iter_capture


def message_table(path: str, symbol: str | None = None, instruments=None, max_messages: int | None = None):
    """Replay one single-symbol capture; returns dict(recs, starts, ends, tops, instrument).

    Every frame that made the handler publish records becomes a message, with the book's top
    levels right after it (flag F_BOOK_INVALID when the book was not valid)."""
    from cext.validate import Validator
    symbol = symbol or capture_symbol(path)
    instruments = instruments or infer_instruments(path, symbol)
    ins = {i.symbol: i for i in instruments}[symbol]
    h = FeedHandler([ins], validator=Validator(ins.inst + 1, clock_offset_ns=estimate_clock_offset(path)))
    chunks, starts, ends, tops = [], [], [], []
    pos = 0
    book = h.books[ins.inst]
    for local, frame in iter_capture(path):
        res = h.on_frame(frame, local, symbol)
        n = len(res.records)
        if n == 0 or res.inst != ins.inst:
            continue
        chunks.append(res.records.copy())
        starts.append(pos)
        pos += n
        ends.append(pos)
        tops.append(book.top_record(valid=h.is_valid(ins.inst))[0])
        if max_messages and len(starts) >= max_messages:
            break
    return {"recs": np.concatenate(chunks) if chunks else np.zeros(0, schema.MARKET_DTYPE),
            "starts": np.asarray(starts, np.int64), "ends": np.asarray(ends, np.int64),
            "tops": np.asarray(tops, schema.BOOK_TOP_DTYPE), "instrument": ins}
