"""VenueSync.sync_fills against the sim: a fill of an order the journal never saw (the
engine wrote the order, then died before journaling it) is journaled when the venue's
client id for the order is ours; another client's fill on the account is left alone."""
import asyncio

import pytest

from engine import schema
from engine.execution.gateway import BinanceRest, OrderGateway
from engine.execution.recovery import VenueSync
from engine.journal.journal import RK_EXEC, JournalReader, JournalWriter
from engine.testing.sim import ThreadedSim
from engine.venues.sim.run import DEFAULT_BTC

BASE = 1 << 40


@pytest.fixture
def sim():
    s = ThreadedSim(synthetic_seed=23, speed=2).with_book()
    yield s
    s.close()


def test_a_fill_of_an_order_the_journal_never_saw_is_recovered(sim, tmp_path):
    gw = OrderGateway(BinanceRest(sim.base, sim.key, sim.secret), [DEFAULT_BTC])
    ours, theirs = gw.client_order_id(BASE + 7), "someone-else-1"
    for cid in (ours, theirs):
        st, body, _ = sim.request("POST", "/fapi/v1/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                                             "quantity": "0.010", "newClientOrderId": cid})
        assert st == 200 and body["status"] == "FILLED", body
    st, trades, _ = sim.request("GET", "/fapi/v1/userTrades", {"symbol": "BTCUSDT"})
    mine = {int(t["id"]) for t in trades if int(t["orderId"]) == int(
        sim.request("GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": ours})[1]["orderId"])}
    assert mine and len(trades) > len(mine)

    async def go():
        j = JournalWriter(str(tmp_path / "j"))
        past = {"order_of": {}, "open": {}, "trades": set()}     # the journal knows nothing
        n = await VenueSync(gw.rest, gw, j, [DEFAULT_BTC], past).sync_fills()
        again = await VenueSync(gw.rest, gw, j, [DEFAULT_BTC], past).sync_fills()     # each fill once
        j.close()
        await gw.rest.close()
        return n, again
    n, again = asyncio.run(go())
    assert n == len(mine) and again == 0
    execs = [e.record() for e in JournalReader(str(tmp_path / "j")).entries() if e.kind == RK_EXEC]
    assert {int(r["trade_id"]) for r in execs} == mine
    assert {int(r["client_id"]) for r in execs} == {BASE + 7}
    assert all(int(r["kind"]) == schema.EX_PARTIAL and int(r["qty"]) > 0 for r in execs)


def test_the_stop_settles_what_the_cancel_all_did_not(sim, tmp_path):
    """An order of ours the venue ended while nobody listened (here: cancelled at the venue
    with no user stream), and a cancel-all at the stop refused (the engine waiting out a
    429): the stop still journals the order's end, as the venue tells it
    (FusedEngine.shutdown -> VenueSync.recover, ``settled_at_stop``)."""
    import time

    import numpy as np

    from engine.journal.journal import RK_EVENT
    from processes.fused import FusedEngine, RunConfig

    async def go():
        rest = BinanceRest(sim.base, sim.key, sim.secret)
        gw = OrderGateway(rest, [DEFAULT_BTC])
        eng = FusedEngine(RunConfig(journal_dir=str(tmp_path / "j"), admin=None), [DEFAULT_BTC], rest, gw,
                          "ws://127.0.0.1:1", sim.base + "/fapi/v1")
        await rest.open()
        book = (await rest.call("GET", "/fapi/v1/depth", {"symbol": "BTCUSDT", "limit": 5}, signed=False))
        bid = DEFAULT_BTC.price_to_ticks(book["bids"][0][0])
        o = np.zeros(1, schema.ORDER_DTYPE)
        o["action"], o["side"], o["otype"], o["inst"] = schema.ACT_NEW, schema.SIDE_BUY, schema.OT_LIMIT, 0
        o["client_id"], o["px"], o["qty"] = eng.cid_base + 1, bid - 200, 10
        for e in await gw.send(o):                  # acknowledged and journaled: resting at the venue
            eng.on_exec(e)
        assert int(e["kind"]) == schema.EX_ACK
        cid_s = gw.client_order_id(eng.cid_base + 1)
        st, body, _ = sim.request("DELETE", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": cid_s})
        assert st == 200 and body["status"] == "CANCELED"
        rest.blocked_until = time.monotonic() + 0.5      # the cancel-all is refused (rate limited)
        await eng.shutdown()
        eng.journal.close()
        await rest.close()
        return eng.venue_open_after_stop

    left = asyncio.run(go())
    es = list(JournalReader(str(tmp_path / "j")).entries())
    ends = [e.record() for e in es if e.kind == RK_EXEC and int(e.record()["client_id"]) == (1 << 40) + 1]
    assert [int(r["kind"]) for r in ends] == [schema.EX_ACK, schema.EX_CANCELED]
    refused = [e.record() for e in es if e.kind == RK_EXEC and int(e.record()["client_id"]) == 0]
    assert [int(r["reason"]) for r in refused] == [-1003]           # the cancel-all, rate limited
    ev = [e.record() for e in es if e.kind == RK_EVENT]
    settled = [x for x in ev if x["event"] == "settled_at_stop"]
    assert len(settled) == 1 and list(settled[0]["orders_ended"].values()) == ["CANCELED"]
    assert ev[-1]["event"] == "stop" and left == 0
