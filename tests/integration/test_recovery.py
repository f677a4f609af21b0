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
