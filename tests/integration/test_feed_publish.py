"""FeedHandler wired to a market ring and a book region: what a strategy process sees."""
import logging

import numpy as np

from cext.region import Region
from cext.ring import RingReader, RingWriter
from engine import schema
from engine.feed.capture import iter_capture
from engine.feed.handler import FeedHandler
from engine.feed.replay import infer_instruments


def test_ring_and_book_region_follow_the_book(btc_capture, shm_prefix):
    ins = infer_instruments(btc_capture, "BTCUSDT")
    ring = RingWriter.create(shm_prefix + "market", schema.MARKET_DTYPE, 1 << 16)
    region = Region.create(shm_prefix + "book", schema.BOOK_TOP_DTYPE, 1)
    reader = RingReader(shm_prefix + "market", schema.MARKET_DTYPE)
    h = FeedHandler(ins, ring=ring, book_region=region)
    buf = np.zeros(1 << 16, schema.MARKET_DTYPE)
    top = np.zeros(1, schema.BOOK_TOP_DTYPE)
    got = checked = 0
    for k, (local, frame) in enumerate(iter_capture(btc_capture)):
        res = h.on_frame(frame, local, "BTCUSDT")
        got += reader.read_many(buf)
        if res.applied:
            region.read(0, top)
            bb, ba = h.book(0).best_bid, h.book(0).best_ask
            assert (top["bid_px"][0, 0], top["bid_qty"][0, 0]) == bb
            assert (top["ask_px"][0, 0], top["ask_qty"][0, 0]) == ba
            assert top["update_id"][0] == h.syncs[0].last_u and top["flags"][0] == 0
            checked += 1
        if k > 20000:
            break
    assert checked > 1000
    assert got == h.published > 0 and reader.overruns == 0
    reader.close(); ring.close(); ring.unlink(); region.close(); region.unlink()


def test_gap_publishes_status_and_invalid_book(btc_capture, shm_prefix, caplog):
    ins = infer_instruments(btc_capture, "BTCUSDT")
    region = Region.create(shm_prefix + "book", schema.BOOK_TOP_DTYPE, 1)
    h = FeedHandler(ins, book_region=region)
    frames = [(t, f) for k, (t, f) in enumerate(iter_capture(btc_capture)) if k < 3000]
    skipped = False
    with caplog.at_level(logging.WARNING, logger="cryptoscalp.feed"):
        for local, frame in frames:
            if h.is_valid(0) and not skipped and b"depthUpdate" in frame[:60]:
                skipped = True          # lose one depth message: a gap
                continue
            res = h.on_frame(frame, local, "BTCUSDT")
            if res.sync == -1:
                assert res.records["kind"][0] == schema.MK_STATUS
                assert res.records["aux"][0] == schema.FEED_GAP
                assert res.records["flags"][0] & schema.F_BOOK_INVALID
                break
    top = np.zeros(1, schema.BOOK_TOP_DTYPE)
    region.read(0, top)
    assert top["flags"][0] & schema.F_BOOK_INVALID
    assert not h.is_valid(0) and 0 in h.snapshot_needed
    assert any("gap" in r.getMessage() for r in caplog.records)
    with caplog.at_level(logging.WARNING, logger="cryptoscalp.feed"):
        res = h.on_frame(b'{"e":"depthUpdate","s":"BTCUSDT"', 0)   # malformed: logged, counted
    assert res.reject == "malformed" and len(res.records) == 0
    assert h.stats()["parser"]["rejects"] == {"malformed": 1}
    assert any("rejected frame (malformed" in r.getMessage() for r in caplog.records)
    region.close(); region.unlink()


def test_a_book_waiting_for_the_bridging_update_asks_for_no_new_snapshot():
    """A snapshot newer than every buffered update leaves the book waiting for the stream's
    update that spans it: that comes on the stream, so no other snapshot is asked for (each
    reset the book and cost 20 of the venue's request weight a minute: the latency bench
    once fetched 107 and was rate limited into a halt); once it came, the book is valid."""
    import orjson

    from engine.venues.instruments import Instrument

    ins = [Instrument(symbol="BTCUSDT", inst=0, price_decimals=2, qty_decimals=3, tick_units=10, lot_units=1)]
    h = FeedHandler(ins)

    def depth(U, u, pu, bid):
        return orjson.dumps({"stream": "btcusdt@depth@0ms", "data": {
            "e": "depthUpdate", "E": 1, "T": 1, "s": "BTCUSDT", "U": U, "u": u, "pu": pu,
            "b": [[f"{bid:.2f}", "1.000"]], "a": [[f"{bid + 1:.2f}", "1.000"]]}})
    h.on_frame(depth(100, 105, 99, 60000.0), 1)
    assert h.snapshot_needed == {0} and not h.is_valid(0)           # buffered: a snapshot is needed
    snap = orjson.dumps({"lastUpdateId": 110, "E": 1, "T": 1, "bids": [["60000.00", "2.000"]],
                         "asks": [["60001.00", "2.000"]]})
    h.on_frame(snap, 2, "BTCUSDT")                                   # newer than the buffered update
    assert h.snapshot_needed == set() and not h.is_valid(0)         # waiting for the bridge, on the stream
    h.on_frame(depth(108, 112, 107, 60000.5), 3)                     # spans 110: synced
    assert h.is_valid(0) and h.snapshot_needed == set()
    h.on_frame(depth(120, 125, 119, 60000.5), 4)                     # pu != 112: a gap
    assert h.snapshot_needed == {0} and not h.is_valid(0)
