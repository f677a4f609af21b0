"""The synthetic market: same seed, same stream; a consistent book; every stream kind."""
import orjson

from engine.feed.handler import FeedHandler
from engine.venues.sim.generator import SyntheticMarket
from engine.venues.sim.run import DEFAULT_BTC


def frames(seed, n):
    g = SyntheticMarket(DEFAULT_BTC, seed=seed, start_ms=1_750_000_000_000)
    out = [("snapshot", g.snapshot_frame())]
    for _ in range(n):
        out += g.step()
    return out


def test_same_seed_same_stream_other_seed_other_stream():
    assert frames(7, 500) == frames(7, 500)
    assert frames(7, 500) != frames(8, 500)


def test_a_feed_keeps_a_valid_book_on_it():
    fr = frames(3, 3000)
    h = FeedHandler([DEFAULT_BTC])
    h.on_frame(fr[0][1], 0, "BTCUSDT")
    kinds = set()
    for stream, f in fr[1:]:
        res = h.on_frame(f, 1_750_000_000_000_000_000)
        assert res.reject is None
        kinds.add(stream.split("@", 1)[1])
    b = h.stats()["books"]["BTCUSDT"]
    assert (b["state"], b["gaps"], b["crossed"]) == ("synced", 0, 0)
    assert kinds == {"depth@0ms", "bookTicker", "trade", "aggTrade", "markPrice"}
    last_ticker = next(orjson.loads(f)["data"] for s, f in reversed(fr) if s.endswith("bookTicker"))
    bb, ba = h.book(0).best_bid, h.book(0).best_ask
    assert DEFAULT_BTC.ticks_to_price(bb[0]) == last_ticker["b"] and DEFAULT_BTC.ticks_to_price(ba[0]) == last_ticker["a"]
