"""Fault injection: gaps, disconnects, 5xx, slow acks, clock skew, dropped user events."""
import asyncio
import time

import pytest

from engine.feed.handler import FeedHandler
from engine.feed.ws import StreamSession
from engine.testing.sim import ThreadedSim
from engine.venues.sim.run import DEFAULT_BTC
from engine.venues.sim.server import Faults


async def _watch(sim, seconds):
    h = FeedHandler([DEFAULT_BTC])
    st, snap, _ = sim.request("GET", "/fapi/v1/depth", {"symbol": "BTCUSDT", "limit": 1000}, signed=False)
    import orjson
    s = StreamSession(sim.ws, ["btcusdt@depth@0ms"], lambda p, m, w: h.on_frame(p, m), backoff_initial_s=0.05)
    task = asyncio.ensure_future(s.run())
    await asyncio.sleep(0.3)
    h.on_frame(orjson.dumps(snap), 0, "BTCUSDT")
    await asyncio.sleep(seconds)
    s.stop()
    await task
    return h.stats()["books"]["BTCUSDT"], s.stats


def test_sequence_gaps_are_injected_and_detected():
    sim = ThreadedSim(synthetic_seed=4, speed=20, faults=Faults(gap_prob=0.05))
    try:
        book, _ = asyncio.run(_watch(sim, 1.5))
        assert sim.runner.server.stats["gaps_injected"] > 0
        assert book["gaps"] >= 1
    finally:
        sim.close()


def test_disconnects_are_survived():
    sim = ThreadedSim(synthetic_seed=4, speed=20, faults=Faults(disconnect_every_s=0.5))
    try:
        _, stats = asyncio.run(_watch(sim, 1.6))
        assert stats["connects"] >= 2 and stats["disconnects"] >= 1
    finally:
        sim.close()


def test_5xx_slow_ack_and_clock_skew():
    sim = ThreadedSim(synthetic_seed=4, speed=20, faults=Faults(http_5xx_prob=1.0))
    try:
        st, body, _ = sim.request("GET", "/fapi/v1/time", signed=False)
        assert st == 503 and body["code"] == -1001
    finally:
        sim.close()
    sim = ThreadedSim(synthetic_seed=4, speed=20, faults=Faults(ack_delay_ms=200, clock_skew_ms=-20_000))
    try:
        time.sleep(0.5)
        t0 = time.monotonic()
        st, body, _ = sim.request("GET", "/fapi/v2/balance")
        # the server's clock is 20 s behind ours: our timestamp is "in the future"
        assert body["code"] == -1021
        st, body, _ = sim.request("GET", "/fapi/v2/balance", timestamp=int(time.time() * 1000) - 20_000)
        assert st == 200 and time.monotonic() - t0 >= 0.2
    finally:
        sim.close()


def test_faults_spec_parsing():
    f = Faults.parse("gap_prob=0.01, http_5xx_prob=0.2,ack_delay_ms=50")
    assert (f.gap_prob, f.http_5xx_prob, f.ack_delay_ms) == (0.01, 0.2, 50.0)
    with pytest.raises(ValueError, match="unknown fault"):
        Faults.parse("nope=1")
