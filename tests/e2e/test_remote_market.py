"""An engine whose market data comes from another host's feed (`cryptoscalp run --market
tcp://...`): a feed in this test process reads a sim process's streams and publishes them
over ZeroMQ with CURVE (the fan-out); the engine subscribes instead of running a feed of
its own, trades on the same sim, and at the stop its journal agrees with the venue."""
import asyncio
import json
import os
import subprocess
import threading
import time

from test_kill9 import CLI, Lines, entries, fills, kill, show, wait_for
from test_split import journal_agrees_with_venue

from engine.ipc.admin import generate_keys
from engine.ipc.fanout import MarketPublisher
from engine.venues.sim.run import SimProcess
from engine.venues.sim.server import TEST_API_KEY, TEST_API_SECRET


class PublishingFeed:
    """The other host: LiveFeed on the sim's streams -> MarketPublisher, in a thread."""

    def __init__(self, sim_url: str, pub: MarketPublisher):
        self.pub, self.sim_url = pub, sim_url
        self.loop = asyncio.new_event_loop()
        self.published = 0
        self.feed = None
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._run(),), daemon=True)
        self.thread.start()

    async def _run(self):
        import aiohttp

        from engine.feed.live import LiveFeed
        from engine.venues.instruments import from_binance_exchange_info
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{self.sim_url}/fapi/v1/exchangeInfo") as r:
                instruments = from_binance_exchange_info(await r.json())

        def publish(inst, recs, _fe, top):
            self.pub.publish(instruments[inst].symbol, recs, top)
            self.published += 1
        self.feed = LiveFeed(instruments, "ws" + self.sim_url[len("http"):], self.sim_url + "/fapi/v1", features=False,
                             max_future_ms=0, on_message=publish)
        try:
            await self.feed.run(None, None)
        except asyncio.CancelledError:          # close()
            pass

    def close(self):
        self.loop.call_soon_threadsafe(lambda: [t.cancel() for t in asyncio.all_tasks(self.loop)])
        self.thread.join(10)


def test_engine_on_another_hosts_market_data(tmp_path):
    sim = SimProcess(CLI, speed=10, seed=6)
    spub, ssec = generate_keys()
    cpub, csec = generate_keys()
    pub = MarketPublisher("tcp://127.0.0.1:*", spub, ssec, [cpub])
    feed = PublishingFeed(sim.url, pub)
    keys = tmp_path / "market-keys.json"
    keys.write_text(json.dumps({"client_public": cpub.decode(), "client_secret": csec.decode(),
                                "server_public": spub.decode()}))
    os.chmod(keys, 0o600)
    j = str(tmp_path / "journal")
    env = dict(os.environ, CRYPTOSCALP_API_KEY=TEST_API_KEY, CRYPTOSCALP_API_SECRET=TEST_API_SECRET)
    eng = out = None
    try:
        wait_for(lambda: feed.published > 100, 60, "the publishing feed")
        eng = subprocess.Popen([CLI, "run", "--venue", sim.url, "--market", pub.endpoint, "--market-keys", str(keys),
                                "--journal", j, "--admin", "none", "--metrics-port", "-1", "--log-format", "text",
                                "--feed-max-future-ms", "0", "--seconds", "45"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        out = Lines(eng.stdout)
        assert eng.wait(180) == 0, out.tail(80)
        final = json.loads(out.lines[-1])
        f = final["faults_survived"]
        assert final["messages"] > 1000 and f["fanout_received"] >= final["messages"]
        assert f["fanout_malformed"] == 0
        assert final["orders_sent"] > 10 and final["fills"] == len(fills(entries(j))) > 0
        # stamped on this host: tick-to-trade from the fan-out's arrival, microseconds to a few ms
        assert 0 < final["tick_to_trade_us"]["p50"] < 50_000
        journal_agrees_with_venue(j, sim.port)
    except BaseException:
        show(sim, out)
        raise
    finally:
        kill(eng)
        feed.close()
        pub.close()
        time.sleep(0.2)
        sim.close()
