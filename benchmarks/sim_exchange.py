#!/usr/bin/env python
"""The simulated exchange: matching-engine events/s on the BTCUSDT capture (no resting
orders, and 20 resting orders that fill as the market moves), and an order's round trip
over loopback: REST (request -> response, new + cancel) and the user data stream
(REST request sent -> ORDER_TRADE_UPDATE received on the WebSocket).

    python benchmarks/sim_exchange.py

Excluded: parsing the capture into records (done once before timing).
"""
import asyncio
import hashlib
import hmac
import http.client
import json
import os
import sys
import threading
import time
import urllib.parse

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import emit, host, latency_stats  # noqa: E402

from cext.binance import BinanceParser  # noqa: E402
from cext.matching import MatchingEngine  # noqa: E402
from engine import schema  # noqa: E402
from engine.feed.capture import load_capture  # noqa: E402
from engine.testing.data import USDM_CAPTURES, shared_path  # noqa: E402
from engine.testing.sim import ThreadedSim  # noqa: E402
from engine.venues.instruments import Instrument  # noqa: E402


def capture_records():
    path = shared_path(*USDM_CAPTURES, "btcusdt_20240808.gz")
    ins = Instrument(symbol="BTCUSDT", inst=0, price_decimals=2, qty_decimals=3, tick_units=10)
    p = BinanceParser([ins])
    buf = np.zeros(8192, schema.MARKET_DTYPE)
    chunks = []
    for local, f in load_capture(path):
        n = p.parse(f, local, buf, "BTCUSDT")
        if n > 0:
            chunks.append(buf[:n].copy())
    return np.concatenate(chunks)


def signed_path(sim, path, params):
    params = dict(params, timestamp=int(time.time() * 1000))
    q = urllib.parse.urlencode(params)
    return f"{path}?{q}&signature={hmac.new(sim.secret.encode(), q.encode(), hashlib.sha256).hexdigest()}"


def main():
    h = host()
    recs = capture_records()
    base = {"bench": "sim_exchange"}
    for label, n_orders in (("no resting orders", 0), ("20 resting orders", 20)):
        rates = []
        for _ in range(3):
            m = MatchingEngine(1)
            half = len(recs) // 4
            m.on_market(recs[:half])
            b = m.book(0)
            for k in range(n_orders // 2):
                m.submit(2 * k + 1, 0, 0, schema.SIDE_BUY, schema.OT_LIMIT, b.best_bid[0] - 5 * k, 5)
                m.submit(2 * k + 2, 0, 0, schema.SIDE_SELL, schema.OT_LIMIT, b.best_ask[0] + 5 * k, 5)
            t0 = time.perf_counter()
            m.on_market(recs[half:])
            rates.append((len(recs) - half) / (time.perf_counter() - t0))
            m.drain()
        emit({**base, "case": f"matching engine, BTCUSDT capture, {label}", "unit": "events/s",
              "n": len(recs) - len(recs) // 4, "per_s": round(max(rates)), "runs": [round(r) for r in rates]}, h)

    sim = ThreadedSim(synthetic_seed=9, speed=1, weight_limit=10**9)
    try:
        time.sleep(1.0)
        conn = http.client.HTTPConnection("127.0.0.1", sim.runner.server.port)
        hdr = {"X-MBX-APIKEY": sim.key}
        lat_new, lat_cancel = [], []
        for i in range(2000):
            bid = sim.sim.engine.book(0).best_bid[0]
            px = f"{(bid - 500) / 10:.1f}"
            t0 = time.perf_counter_ns()
            conn.request("POST", signed_path(sim, "/fapi/v1/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                                                                       "timeInForce": "GTC", "quantity": "0.010", "price": px}), headers=hdr)
            o = json.loads(conn.getresponse().read())
            lat_new.append(time.perf_counter_ns() - t0)
            t0 = time.perf_counter_ns()
            conn.request("DELETE", signed_path(sim, "/fapi/v1/order", {"symbol": "BTCUSDT", "orderId": o["orderId"]}), headers=hdr)
            conn.getresponse().read()
            lat_cancel.append(time.perf_counter_ns() - t0)
        warm = 100
        emit({**base, "case": "REST new order round trip, loopback, keep-alive", **latency_stats(lat_new[warm:])}, h)
        emit({**base, "case": "REST cancel round trip, loopback, keep-alive", **latency_stats(lat_cancel[warm:])}, h)
        emit({**base, "case": "user data stream: request sent -> ORDER_TRADE_UPDATE(NEW) received",
              **latency_stats(asyncio.run(ws_round_trips(sim, 500))[50:])}, h)
    finally:
        sim.close()


async def ws_round_trips(sim, n):
    import aiohttp
    st, lk, _ = sim.request("POST", "/fapi/v1/listenKey", signed=False, key=sim.key)
    lat = []
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(f"{sim.ws}/ws/{lk['listenKey']}") as ws:
            for i in range(n):
                bid = sim.sim.engine.book(0).best_bid[0]
                path = signed_path(sim, "/fapi/v1/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                                                           "timeInForce": "GTC", "quantity": "0.010",
                                                           "price": f"{(bid - 500) / 10:.1f}", "newClientOrderId": f"rt{i}"})
                t0 = time.perf_counter_ns()
                resp = await s.post(sim.base + path, headers={"X-MBX-APIKEY": sim.key})
                while True:
                    m = json.loads((await ws.receive()).data)
                    if m.get("e") == "ORDER_TRADE_UPDATE" and m["o"]["c"] == f"rt{i}" and m["o"]["x"] == "NEW":
                        lat.append(time.perf_counter_ns() - t0)
                        break
                o = await resp.json()
                await s.delete(sim.base + signed_path(sim, "/fapi/v1/order", {"symbol": "BTCUSDT", "orderId": o["orderId"]}),
                               headers={"X-MBX-APIKEY": sim.key})
    return lat


if __name__ == "__main__":
    main()
