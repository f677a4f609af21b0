"""The order gateway against the sim: ACKs and fills, idempotent retries, cancels,
rate limits, circuit breaker, reconciliation, cancel-on-disconnect."""
import asyncio
import time

import numpy as np
import pytest

from engine import schema
from engine.execution.gateway import BinanceRest, CircuitBreaker, OrderGateway
from engine.testing.sim import ThreadedSim
from engine.venues.sim.run import DEFAULT_BTC
from engine.venues.sim.server import Faults


def order(cid, side=schema.SIDE_BUY, qty=10, px=0, otype=schema.OT_LIMIT, action=schema.ACT_NEW, ref=0, flags=0):
    a = np.zeros(1, schema.ORDER_DTYPE)
    a["action"], a["client_id"], a["side"], a["qty"], a["px"], a["otype"], a["inst"], a["ref_client_id"], a["flags"] = \
        action, cid, side, qty, px, otype, 0, ref, flags
    return a


@pytest.fixture
def sim():
    s = ThreadedSim(synthetic_seed=21, speed=2).with_book()
    yield s
    s.close()


def gw(sim, links=8, **kw):
    return OrderGateway(BinanceRest(sim.base, sim.key, sim.secret, order_links=links), [DEFAULT_BTC], **kw)


def test_new_cancel_fill_and_user_events(sim):
    async def run():
        g = gw(sim)
        bid = sim.sim.engine.book(0).best_bid[0]
        ack = await g.send(order(0x1A, px=bid - 6000))
        assert ack["kind"][0] == schema.EX_ACK and ack["exch_order_id"][0] > 0 and ack["mono_send"][0] > 0
        assert sim.request("GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "cs-1a"})[1]["status"] == "NEW"
        c = await g.send(order(0x1B, action=schema.ACT_CANCEL, ref=0x1A))
        assert c["kind"][0] == schema.EX_CANCELED and c["client_id"][0] == 0x1A and 0x1A not in g.open
        # a market order: ACK now, the fill through the user stream's ORDER_TRADE_UPDATE
        import aiohttp
        import json
        key = sim.request("POST", "/fapi/v1/listenKey", signed=False, key=sim.key)[1]["listenKey"]
        execs = []
        async with aiohttp.ClientSession() as sess, sess.ws_connect(f"{sim.ws}/ws/{key}") as ws:
            await asyncio.sleep(0.1)
            ack = await g.send(order(0x1C, otype=schema.OT_MARKET))
            while not any(e["kind"] == schema.EX_FILL for e in execs):
                ev = json.loads((await asyncio.wait_for(ws.receive(), 5)).data)
                execs += list(g.on_user_event(ev))
        trade = next(e for e in execs if e["kind"] == schema.EX_FILL)
        assert trade["client_id"] == 0x1C and trade["cum_qty"] == 10 and trade["fee"] > 0 and trade["liquidity"] == schema.LIQ_TAKER
        await g.send(order(0x1D, side=schema.SIDE_SELL, otype=schema.OT_MARKET, flags=schema.OF_REDUCE_ONLY))
        await g.rest.close()
    asyncio.run(run())


def test_retry_after_a_lost_response_does_not_place_twice(sim):
    async def run():
        g = gw(sim)
        bid = sim.sim.engine.book(0).best_bid[0]
        o = order(0x2A, px=bid - 6100)
        # the first attempt reaches the venue but its answer is lost: place it behind the gateway's back
        p = g._params(o[0], DEFAULT_BTC, g.client_order_id(0x2A))
        assert sim.request("POST", "/fapi/v1/order", p)[0] == 200
        real = g.rest.call

        async def lose_first(method, path, params=None, signed=True, _n=[0]):
            if method == "POST" and _n[0] == 0:
                _n[0] += 1
                from engine.execution.gateway import VenueError
                raise VenueError(503, -1001, "Internal error (response lost)")
            return await real(method, path, params, signed)
        g.rest.call = lose_first
        ack = await g.send(o)
        assert ack["kind"][0] == schema.EX_ACK and g.stats["duplicates_resolved"] == 1
        opens = sim.request("GET", "/fapi/v1/openOrders", {"symbol": "BTCUSDT"})[1]
        assert [x["clientOrderId"] for x in opens].count("cs-2a") == 1          # exactly one order
        await g.rest.close()
    asyncio.run(run())


def test_reconcile_and_unknown_orders(sim):
    async def run():
        g = gw(sim)
        bid = sim.sim.engine.book(0).best_bid[0]
        await g.send(order(0x3A, px=bid - 6200))
        await g.send(order(0x3B, px=bid - 6210))
        # behind our back: one of ours is cancelled, and a foreign order appears
        sim.request("DELETE", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "cs-3a"})
        sim.request("POST", "/fapi/v1/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                                              "quantity": "0.010", "price": DEFAULT_BTC.ticks_to_price(bid - 6220),
                                              "newClientOrderId": "manual-1"})
        rec = await g.reconcile()
        assert list(rec["gone"]["client_id"]) == [0x3A] and rec["gone"]["kind"][0] == schema.EX_CANCELED
        assert [u["clientOrderId"] for u in rec["unknown"]] == ["manual-1"]
        assert set(g.open) == {0x3B} and "BTCUSDT" in rec["positions"]
        await g.rest.close()
    asyncio.run(run())


def test_cancel_on_disconnect_heartbeat():
    # real time (speed 1): the countdown runs on the venue's clock, which is the market's
    sim = ThreadedSim(synthetic_seed=21, speed=1)
    time.sleep(0.5)

    async def run():
        g = gw(sim, countdown_ms=1500)
        bid = sim.sim.engine.book(0).best_bid[0]
        await g.send(order(0x4A, px=bid - 6300))
        await g.heartbeat()
        await g.heartbeat()                         # within a quarter of the countdown: not sent again
        assert g.stats["countdown_renewals"] == 1
        await asyncio.sleep(0.5)
        await g.heartbeat()                         # renewed: still open
        assert g.stats["countdown_renewals"] == 2
        assert sim.request("GET", "/fapi/v1/openOrders", {"symbol": "BTCUSDT"})[1]
        await asyncio.sleep(2.5)                    # we "died": no more heartbeats
        assert sim.request("GET", "/fapi/v1/openOrders", {"symbol": "BTCUSDT"})[1] == []
        await g.rest.close()
    try:
        asyncio.run(run())
    finally:
        sim.close()


@pytest.mark.parametrize("path", ["aiohttp", "order links"])
def test_breaker_opens_on_5xx_and_rate_limit_blocks(path):
    """The same rules on both ways out: a 5xx is retried and counts for the breaker; a 429
    blocks sending until Retry-After (on the order links, not even written)."""
    links = 0 if path == "aiohttp" else 8
    fast = int(links > 0)
    s = ThreadedSim(synthetic_seed=21, speed=10, faults=Faults(http_5xx_prob=1.0))
    try:
        async def run():
            g = gw(s, links=links, breaker=CircuitBreaker(max_errors=3, window_s=10, cooldown_s=60), retries=1)
            await g.rest.open()
            r1 = await g.send(order(0x5A, px=600_000))          # 503, retried once, 503 again
            assert r1["kind"][0] == schema.EX_REJECT and r1["reason"][0] == -1001
            assert g.breaker.trips == 1 and g.breaker.is_open    # three failures: open
            assert g.stats["fast_sent"] == fast and g.stats["retries"] == 2
            r2 = await g.send(order(0x5B, px=600_000))          # refused locally: nothing sent
            assert r2["reason"][0] == -1 and g.stats["breaker_refusals"] == 1
            await g.rest.close()
        asyncio.run(run())
    finally:
        s.close()
    s = ThreadedSim(synthetic_seed=21, speed=10, weight_limit=3)
    try:
        async def run2():
            g = gw(s, links=links)
            for k in range(3):
                await g.rest.call("GET", "/fapi/v1/ping", signed=False)
            r = await g.send(order(0x6A, px=600_000))
            assert r["kind"][0] == schema.EX_REJECT and r["reason"][0] == -1003
            assert g.stats["fast_sent"] == fast
            assert g.rest.blocked_until > time.monotonic()       # waits for Retry-After
            assert g.rest.write("POST", "/fapi/v1/order", {}) is None     # blocked: not even written
            r = await g.send(order(0x6B, px=600_000))            # refused locally while blocked
            assert r["reason"][0] == -1003 and g.stats["rate_limited"] == 2
            await g.rest.close()
        asyncio.run(run2())
    finally:
        s.close()


def test_fast_path_writes_now_stamps_after_the_write_and_survives_a_lost_connection(sim):
    """NEW and CANCEL go out on the pre-opened connections, synchronously inside ``start``
    (the bytes are on the socket before it returns; t_send is stamped after the write). A
    connection lost after the venue took the order but before its answer: retried with the
    same client order id, resolved as the same order (-4116 then lookup), placed once."""
    async def run():
        g = gw(sim)
        await g.rest.open()
        assert g.rest.links.idle == 8
        bid = sim.sim.engine.book(0).best_bid[0]
        o = order(0x7A, px=bid - 6400)
        t0 = time.monotonic_ns()
        pending = g.start(o)                                   # written here, before any await
        t1 = time.monotonic_ns()
        assert g.stats["fast_sent"] == 1 and t0 < o["t_send"][0] <= t1
        assert g.rest.links.idle == 7
        ack = await pending
        assert ack["kind"][0] == schema.EX_ACK and ack["mono_send"][0] == o["t_send"][0]
        c = await g.start(order(0x7B, action=schema.ACT_CANCEL, ref=0x7A))
        assert c["kind"][0] == schema.EX_CANCELED and g.stats["fast_sent"] == 2 and 0x7A not in g.open

        o = order(0x7C, px=bid - 6500)
        pending = g.start(o)
        link = next(x for x in g.rest.links.links if not x.idle)
        deadline = time.time() + 5            # blocking: the answer cannot be read meanwhile
        while not [x for x in sim.request("GET", "/fapi/v1/openOrders", {"symbol": "BTCUSDT"})[1]
                   if x["clientOrderId"] == "cs-7c"] and time.time() < deadline:
            time.sleep(0.01)
        link.transport.abort()                # the answer is lost with the connection
        ack = await pending
        assert ack["kind"][0] == schema.EX_ACK and g.stats["duplicates_resolved"] == 1 and g.stats["retries"] == 1
        opens = sim.request("GET", "/fapi/v1/openOrders", {"symbol": "BTCUSDT"})[1]
        assert [x["clientOrderId"] for x in opens].count("cs-7c") == 1
        deadline = time.monotonic() + 5
        while g.rest.links.idle < 8 and time.monotonic() < deadline:   # refilled in the background
            await asyncio.sleep(0.02)
        assert g.rest.links.idle == 8 and g.rest.links.stats["lost"] == 1
        await g.rest.close()
    asyncio.run(run())
