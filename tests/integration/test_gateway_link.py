"""The 4proc order path over real rings, against the sim: the risk process's end
(GatewayLink) publishes gated orders, the gateway's end (GatewaySide + OrderGateway) sends
them to the sim and answers with EX_SENT + results; reports and gateway states come back
apart. When the gateway dies with an order unread, that order is settled with the venue
(VenueSync.recover: never placed -> REJECT -2013), a NEW is refused, and a cancel still
reaches the venue through the risk process's own session."""
import asyncio
import time

import numpy as np
import pytest

from engine import schema
from engine.execution.gateway import BinanceRest, OrderGateway
from engine.execution.recovery import VenueSync
from engine.ipc.orderflow import CANCEL_ALL_IDS, GATEWAY_DOWN, GatewayLink, GatewaySide, sent_record, state_record
from engine.journal.journal import RK_EXEC, JournalReader, JournalWriter
from engine.testing.sim import ThreadedSim
from engine.venues.sim.run import DEFAULT_BTC

BASE = 1 << 40


@pytest.fixture
def sim():
    s = ThreadedSim(synthetic_seed=23, speed=2).with_book()
    yield s
    s.close()


def order(cid, action=schema.ACT_NEW, px=0, ref=0):
    a = np.zeros(1, schema.ORDER_DTYPE)
    a["action"], a["client_id"], a["side"], a["qty"], a["px"], a["otype"], a["inst"], a["ref_client_id"] = \
        action, cid, schema.SIDE_BUY, 10, px, schema.OT_LIMIT, 0, ref
    a["mono_origin"] = time.monotonic_ns()
    return a


def test_orders_over_the_rings_and_a_dead_gateway(sim, shm_run, tmp_path):
    async def go():
        risk_rest = BinanceRest(sim.base, sim.key, sim.secret)
        link = GatewayLink(shm_run, risk_rest, [DEFAULT_BTC])
        side = GatewaySide(shm_run)                       # the gateway process's end
        gw = OrderGateway(BinanceRest(sim.base, sim.key, sim.secret), [DEFAULT_BTC])
        reports, states = [], []
        link.on_report, link.on_state = reports.append, states.append
        tasks = []

        def gateway_turn():                           # what processes/gateway.py does per order
            def one(o):
                async def finish(o, pending):
                    execs = np.asarray(await pending, schema.EXEC_DTYPE).reshape(-1)
                    side.publish(np.concatenate([sent_record(o, len(execs)), execs]))
                tasks.append(asyncio.ensure_future(finish(o, gw.start(o))))
            return side.poll_orders(one)

        async def until_done(fut):
            while not fut.done():
                gateway_turn()
                await asyncio.sleep(0.005)
                link.poll()
            return fut.result()

        bid = int(sim.sim.engine.book(0).best_bid[0])
        link.up = True
        side.publish(state_record(schema.GW_READY))
        o1 = order(BASE + 1, px=bid - 5000)
        res = await until_done(link.start(o1))
        assert [int(e["kind"]) for e in res] == [schema.EX_ACK] and int(res[0]["client_id"]) == BASE + 1
        assert int(o1["t_send"][0]) >= int(o1["mono_origin"][0]) > 0       # the gateway's stamp came back
        assert states == [schema.GW_READY] and BASE + 1 in link.open
        st, venue, _ = sim.request("GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "cs-10000000001"})
        assert venue["status"] == "NEW"

        # a report apart from any order's results reaches on_report (the user stream's, here made up)
        fill = np.zeros(1, schema.EXEC_DTYPE)
        fill["kind"], fill["client_id"], fill["qty"], fill["trade_id"] = schema.EX_PARTIAL, BASE + 1, 3, 77
        side.publish(fill)
        link.poll()
        assert [(int(r["kind"]), int(r["qty"])) for r in reports] == [(schema.EX_PARTIAL, 3)]

        # CANCEL_ALL: its own id, and every result after its EX_SENT belongs to it
        ca = order(0, action=schema.ACT_CANCEL_ALL)
        res = await until_done(link.start(ca))
        assert int(ca["client_id"][0]) == CANCEL_ALL_IDS
        assert [(int(e["kind"]), int(e["client_id"])) for e in res] == [(schema.EX_CANCELED, BASE + 1)]
        assert link.open == {}

        # a resting order, then the gateway dies with a NEW published and never read
        o2 = order(BASE + 2, px=bid - 6000)
        await until_done(link.start(o2))
        lost = link.start(order(BASE + 3, px=bid - 7000))
        side.close()                                  # dead: nobody reads the order ring
        unsure = link.down()
        assert [int(u["client_id"][0]) for u in unsure] == [BASE + 3] and lost.done() and lost.result() == []
        assert not link.up
        refused = await link.start(order(BASE + 4, px=bid - 5000))
        assert int(refused["kind"][0]) == schema.EX_REJECT and int(refused["reason"][0]) == GATEWAY_DOWN
        # a cancel still goes out, through the risk process's own session
        res = await link.start(order(BASE + 5, action=schema.ACT_CANCEL, ref=BASE + 2))
        assert int(res["kind"][0]) == schema.EX_CANCELED and int(res["client_id"][0]) == BASE + 2
        assert link.counts["own_session_cancels"] == 1 and link.counts["refused_down"] == 1
        st, venue, _ = sim.request("GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "cs-10000000002"})
        assert venue["status"] == "CANCELED"

        # the venue settles the unsure order: never placed -> REJECT -2013, journaled once
        j = JournalWriter(str(tmp_path / "j"))
        past = {"order_of": {}, "open": {}, "trades": set()}
        ended = []

        async def seed():
            return {}
        rec = await VenueSync(risk_rest, link, j, [DEFAULT_BTC], past).recover(
            seed, unsure={BASE + 3: 0}, emit=lambda e: ended.append(e))
        assert rec["orders_ended"] == {"cs-10000000003": "NEVER_PLACED"} and rec["unresolved"] == []
        assert [(int(e["kind"]), int(e["reason"])) for e in ended] == [(schema.EX_REJECT, -2013)]
        j.close()
        assert not [e for e in JournalReader(str(tmp_path / "j")).entries() if e.kind == RK_EXEC]   # emit took them

        for t in tasks:
            await t
        await gw.rest.close()
        await risk_rest.close()
        link.close()
    asyncio.run(go())
