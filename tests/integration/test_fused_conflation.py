"""The fused engine decides once per batch of frames read together: two messages for an
instrument before the loop turns make one brain decision on the latest (the other counted as
conflated); two instruments keep their own book tops even when the feed hands both the same
buffer (a ring reader does)."""
import asyncio

import numpy as np

from engine import schema
from engine.execution.gateway import BinanceRest, OrderGateway
from engine.execution.http1 import OrderLinks
from engine.venues.instruments import Instrument
from processes.fused import FusedEngine, RunConfig

BTC = Instrument(symbol="BTCUSDT", inst=0, price_decimals=2, qty_decimals=3, tick_units=10, lot_units=1)
ETH = Instrument(symbol="ETHUSDT", inst=1, price_decimals=2, qty_decimals=3, tick_units=1, lot_units=1)


class RecordingBrain:
    """Stands in for engine.brain.Brain: records what it was asked to decide on."""
    def __init__(self):
        self.calls = []
        self.t_feat = self.t_inf = self.t_str = self.mid = 0
        self.scored = False

    def on_state(self, inst, origin, ts, fe, bb, ba, flags, t_book):
        self.calls.append((inst, origin, ts, bb, ba))
        self.mid = (bb + ba) // 2
        self.t_feat = self.t_inf = self.t_str = origin + 1
        return []


def _message(inst, origin, ts):
    r = np.zeros(2, schema.MARKET_DTYPE)
    r["inst"], r["mono_origin"], r["exch_ts"] = inst, origin, [ts - 1, ts]
    return r


def test_one_decision_per_batch_on_the_latest_state(tmp_path):
    async def main():
        rest = BinanceRest("http://127.0.0.1:1", "k", "s")
        rest.links = OrderLinks("http://127.0.0.1:1")
        eng = FusedEngine(RunConfig(journal_dir=str(tmp_path / "j"), admin=None), [BTC, ETH], rest,
                          OrderGateway(rest, [BTC, ETH]), "ws://127.0.0.1:1", "http://127.0.0.1:1/fapi/v1")
        eng.brain = brain = RecordingBrain()
        top = np.zeros(1, schema.BOOK_TOP_DTYPE)       # one buffer for every instrument, as RingFeed's

        def deliver(inst, origin, ts, bb, ba):
            top["bid_px"][0, 0], top["ask_px"][0, 0] = bb, ba
            eng.on_message(inst, _message(inst, origin, ts), None, top)

        deliver(0, 100, 1000, 600_000, 600_002)
        deliver(1, 110, 1001, 30_000, 30_001)
        deliver(0, 120, 1002, 600_001, 600_003)        # BTC again before the loop turned
        assert brain.calls == []                        # nothing decided inside the feed's callback
        await asyncio.sleep(0)
        assert brain.calls == [(0, 120, 1002, 600_001, 600_003), (1, 110, 1001, 30_000, 30_001)]
        assert eng.counts["conflated"] == 1 and eng.metrics.messages_pending == 3
        assert eng.data_ns == {0: 121, 1: 111}                # marks and data ages from each decision
        deliver(1, 130, 1003, 30_002, 30_004)          # the next batch: decided again
        await asyncio.sleep(0)
        assert brain.calls[-1] == (1, 130, 1003, 30_002, 30_004) and len(brain.calls) == 3
        eng.stopping = True                             # stopping: nothing decided any more
        deliver(0, 140, 1004, 600_000, 600_002)
        await asyncio.sleep(0)
        assert len(brain.calls) == 3
        eng.journal.close()

    asyncio.run(main())
