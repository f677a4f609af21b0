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


_CLIENT = """
import sys, asyncio, aiohttp
async def main():
    async with aiohttp.ClientSession() as s, s.ws_connect(sys.argv[1]) as ws:
        print("connected", flush=True)
        await asyncio.sleep(60)          # reads nothing: killed -9 from outside
asyncio.run(main())
"""


def test_a_client_killed_mid_stream_does_not_stop_the_market():
    """A client process killed -9 while the sim writes to its websocket (what a crashed
    engine does) is dropped and counted; the market goes on for everyone else."""
    import os
    import signal
    import subprocess
    import sys
    sim = ThreadedSim(synthetic_seed=4, speed=20)
    try:
        url = sim.ws + "/stream?streams=btcusdt@depth@0ms/btcusdt@aggTrade"
        for _ in range(4):
            p = subprocess.Popen([sys.executable, "-c", _CLIENT, url], stdout=subprocess.PIPE, text=True)
            assert p.stdout.readline().strip() == "connected"
            time.sleep(0.3)
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
        time.sleep(0.5)
        assert not sim.runner.done.is_set(), "the sim's market loop ended after a client died"
        _, stats = asyncio.run(_watch(sim, 1.0))               # a new client still gets the market
        assert stats["connects"] == 1 and stats["frames"] > 10
    finally:
        sim.close()


def test_send_failure_is_counted_and_the_client_dropped():
    class Dead:
        closed = False

        async def send_str(self, _):
            raise ConnectionResetError("Cannot write to closing transport")

        async def close(self):
            self.closed = True

    sim = ThreadedSim(synthetic_seed=4, speed=0.01)
    try:
        srv = sim.runner.server
        dead = Dead()

        async def go():
            srv.market_clients.append((dead, {"btcusdt@aggtrade"}, True))
            await srv.publish("btcusdt@aggTrade", b'{"stream":"btcusdt@aggTrade","data":{}}')
        fut = asyncio.run_coroutine_threadsafe(go(), sim.loop)
        fut.result(5)
        assert srv.stats["send_failures"] == 1 and dead.closed
    finally:
        sim.close()
