"""The fused engine decides once per batch of frames read together: two messages for an
instrument before the loop turns make one brain decision on the latest (the other counted as
conflated); two instruments keep their own book tops even when the feed hands both the same
buffer (a ring reader does). The pass runs at the end of the socket read when the feed says
so (LiveFeed's on_read_end), and a message's orders are all written before any refusal of the
same message is journaled or reported. These stand a recording brain in for the real one, so
they run the Python hot path (``hot_path="python"``); the compiled one is tested in
test_decision_path.py."""
import asyncio
import time

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

    def on_state(self, inst, origin, ts, fe, bb, ba, flags, t_book, t_parse=0):
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
        eng = FusedEngine(RunConfig(journal_dir=str(tmp_path / "j"), admin=None, hot_path="python"), [BTC, ETH], rest,
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


def _engine(tmp_path):
    rest = BinanceRest("http://127.0.0.1:1", "k", "s")
    rest.links = OrderLinks("http://127.0.0.1:1")
    return FusedEngine(RunConfig(journal_dir=str(tmp_path / "j"), admin=None, hot_path="python"), [BTC, ETH], rest,
                       OrderGateway(rest, [BTC, ETH]), "ws://127.0.0.1:1", "http://127.0.0.1:1/fapi/v1")


def test_the_pass_runs_at_the_end_of_the_read_and_once(tmp_path):
    async def main():
        eng = _engine(tmp_path)
        assert eng.feed.session.on_read_end == eng._brain_pass      # what the WebSocket calls after each read
        eng.brain = brain = RecordingBrain()
        top = np.zeros(1, schema.BOOK_TOP_DTYPE)
        top["bid_px"][0, 0], top["ask_px"][0, 0] = 600_000, 600_002
        eng.on_message(0, _message(0, 100, 1000), None, top)
        eng.on_message(0, _message(0, 110, 1001), None, top)
        assert brain.calls == []
        eng._brain_pass()                               # the read's frames all handed over: decided now
        assert [c[1] for c in brain.calls] == [110] and eng.counts["conflated"] == 1
        await asyncio.sleep(0)                          # the loop's own pass (the fallback) finds nothing due
        await asyncio.sleep(0)
        assert len(brain.calls) == 1
        eng.journal.close()

    asyncio.run(main())


class TwoIntentBrain(RecordingBrain):
    """One message -> a NEW the gate refuses (zero quantity) and then a NEW it passes."""

    def __init__(self, log):
        super().__init__()
        self.log = log
        self.execs = []

    def on_state(self, inst, origin, ts, fe, bb, ba, flags, t_book, t_parse=0):
        super().on_state(inst, origin, ts, fe, bb, ba, flags, t_book, t_parse)
        self.t_feat = self.t_inf = self.t_str = time.monotonic_ns()     # a fresh mark for the gate
        out = []
        for cid, qty in ((11, 0), (12, 1)):
            it = np.zeros(1, schema.ORDER_DTYPE)
            it["action"], it["side"], it["otype"], it["inst"] = schema.ACT_NEW, schema.SIDE_BUY, schema.OT_POST_ONLY, inst
            it["client_id"], it["px"], it["qty"], it["mono_origin"] = cid, bb, qty, origin
            out.append(it)
        return out

    def on_exec(self, e):
        self.log.append(("exec", int(e["kind"]), int(e["client_id"])))


class RecordingGateway:
    def __init__(self, log):
        self.log = log

    def start(self, order):
        self.log.append(("write", int(order["client_id"][0])))

        async def answer():
            return np.zeros(0, schema.EXEC_DTYPE)
        return answer()


def test_a_messages_orders_are_written_before_its_refusals_are_handled(tmp_path):
    async def main():
        eng = _engine(tmp_path)
        log = []
        eng.brain = TwoIntentBrain(log)
        eng.gateway = RecordingGateway(log)
        top = np.zeros(1, schema.BOOK_TOP_DTYPE)
        top["bid_px"][0, 0], top["ask_px"][0, 0] = 600_000, 600_002
        eng.on_message(0, _message(0, 100, 1000), None, top)
        eng._brain_pass()
        # the second intent's request went out first; the first one's refusal was reported after it
        assert log == [("write", 12), ("exec", schema.EX_REJECT, 11)], eng.rejects_by_layer
        assert eng.counts["rejects"] == 1 and eng.counts["orders_sent"] == 1
        assert sum(eng.rejects_by_layer.values()) == 1
        await asyncio.sleep(0)
        eng.journal.close()
        from engine.journal.journal import RK_REJECT, JournalReader
        rej = [e.record() for e in JournalReader(str(tmp_path / "j")).entries() if e.kind == RK_REJECT]
        assert [int(r["client_id"]) for r in rej] == [11]

    asyncio.run(main())
