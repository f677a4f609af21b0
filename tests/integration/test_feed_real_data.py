"""The feed on the real Binance USD-M captures (../shared/data): tick-exact books."""
import csv

import numpy as np
import pytest

from cext.binance import BinanceParser
from cext.validate import Validator
from engine import schema
from engine.feed.capture import iter_capture
from engine.feed.handler import FeedHandler
from engine.feed.replay import book_replay, estimate_clock_offset, infer_instruments, iter_book


@pytest.mark.parametrize("fixture", ["btc_capture", "eth_capture"])
def test_book_equals_every_matching_book_ticker(fixture, request):
    """For every bookTicker whose u equals the u of an applied depth update, the book's
    best bid, ask and their quantities equal the ticker's."""
    path = request.getfixturevalue(fixture)
    symbol = "BTCUSDT" if "btc" in fixture else "ETHUSDT"
    ins = infer_instruments(path, symbol)
    applied = {}
    for status, recs, book, sync in iter_book(path, symbol, ins):
        if status == 1:
            (bp, bq), (ap, aq) = book.best_bid, book.best_ask
            applied[sync.last_u] = (bp, bq, ap, aq)
    assert len(applied) > 6000
    parser = BinanceParser(ins)
    out = np.zeros(8192, schema.MARKET_DTYPE)
    tickers = {}
    for local, frame in iter_capture(path):
        if b"bookTicker" in frame[:40]:
            assert parser.parse(frame, local, out) == 1
            tickers[int(out[0]["seq"])] = (int(out[0]["px"]), int(out[0]["qty"]), int(out[0]["aux"]), int(out[0]["aux2"]))
    common = sorted(set(applied) & set(tickers))
    assert len(common) > 500, "too few matching update ids to be a meaningful check"
    mismatches = [(u, applied[u], tickers[u]) for u in common if applied[u] != tickers[u]]
    assert mismatches == []


def test_feed_handler_on_both_captures(btc_capture, eth_capture):
    from engine.feed.replay import merge_captures
    insts = [infer_instruments(btc_capture, "BTCUSDT")[0]]
    eth = infer_instruments(eth_capture, "ETHUSDT")[0]
    insts.append(eth.__class__(**{**{f: getattr(eth, f) for f in eth.__struct_fields__}, "inst": 1}))
    offset = estimate_clock_offset(btc_capture)
    assert 1_200_000_000 < offset < 1_350_000_000           # the collector's clock was ~1.27 s behind
    h = FeedHandler(insts, validator=Validator(2, clock_offset_ns=offset))
    syms = ["BTCUSDT", "ETHUSDT"]
    n_out = 0
    for local, k, frame in merge_captures([btc_capture, eth_capture]):
        res = h.on_frame(frame, local, syms[k])
        assert res.reject is None
        n_out += len(res.records)
    st = h.stats()
    assert st["parser"]["rejected"] == 0
    for sym in syms:
        b = st["books"][sym]
        assert (b["state"], b["gaps"], b["crossed"], b["snapshots"]) == ("synced", 0, 0, 1)
    v = st["validation"]
    assert v["future_timestamp"] == v["timestamp_backwards"] == v["crossed"] == v["price_jump"] == 0
    assert h.is_valid(0) and h.is_valid(1) and not h.snapshot_needed
    assert n_out > 1_000_000


def test_book_replay_csv(btc_capture, tmp_path):
    out = tmp_path / "tob.csv"
    res = book_replay(btc_capture, str(out))
    assert res["rows"] == res["applied"] and res["rows"] > 6000
    rows = list(csv.reader(open(out)))
    assert rows[0] == ["update_id", "bid_px", "bid_qty", "ask_px", "ask_qty"]
    assert rows[1] == ["5123107853551", "61800.20", "2.909", "61800.30", "1.072"]
    ids = [int(r[0]) for r in rows[1:]]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
