"""The sim over real sockets: Binance's signing, errors, order semantics, rate limits,
market streams and the user data stream."""
import asyncio
import json
import time

import aiohttp
import pytest

from engine.testing.sim import ThreadedSim


@pytest.fixture(scope="module")
def sim():
    s = ThreadedSim(synthetic_seed=11, speed=2).with_book()
    yield s
    s.close()


def best(sim):
    st, t, _ = sim.request("GET", "/fapi/v1/ticker/bookTicker", {"symbol": "BTCUSDT"}, signed=False)
    assert st == 200
    return float(t["bidPrice"]), float(t["askPrice"])


def test_public_endpoints(sim):
    assert sim.request("GET", "/fapi/v1/ping", signed=False)[:2] == (200, {})
    st, t, _ = sim.request("GET", "/fapi/v1/time", signed=False)
    assert abs(t["serverTime"] - time.time() * 1000) < 5000
    st, info, _ = sim.request("GET", "/fapi/v1/exchangeInfo", signed=False)
    f = {x["filterType"]: x for x in info["symbols"][0]["filters"]}
    assert f["PRICE_FILTER"]["tickSize"] == "0.10" and f["LOT_SIZE"]["stepSize"] == "0.001"
    st, d, h = sim.request("GET", "/fapi/v1/depth", {"symbol": "BTCUSDT", "limit": 5}, signed=False)
    assert st == 200 and len(d["bids"]) == 5 and float(d["bids"][0][0]) < float(d["asks"][0][0])
    assert sim.request("GET", "/fapi/v1/depth", {"symbol": "NOPE"}, signed=False)[1] == {"code": -1121, "msg": "Invalid symbol."}
    st, p, _ = sim.request("GET", "/fapi/v1/premiumIndex", {"symbol": "BTCUSDT"}, signed=False)
    assert float(p["markPrice"]) > 0 and p["nextFundingTime"] % 28_800_000 == 0


def test_signature_key_and_timestamp_errors(sim):
    p = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.010", "price": "1000.0"}
    assert sim.request("POST", "/fapi/v1/order", p, secret="wrong")[1]["code"] == -1022
    assert sim.request("POST", "/fapi/v1/order", p, key="unknown-key")[1]["code"] == -2015
    st, body, _ = sim.request("POST", "/fapi/v1/order", p, signed=False)
    assert (st, body["code"]) == (401, -2014)
    assert sim.request("POST", "/fapi/v1/order", p, timestamp=int(time.time() * 1000) - 10_000)[1]["code"] == -1021
    assert sim.request("POST", "/fapi/v1/order", p, timestamp=int(time.time() * 1000) + 5_000)[1]["code"] == -1021


def test_order_errors_as_binance_answers(sim):
    bid, ask = best(sim)
    base = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC"}
    cases = [
        ({**base, "quantity": "0.0105", "price": f"{bid:.1f}"}, -1111),      # finer than the lot
        ({**base, "quantity": "0.001", "price": f"{bid:.1f}"}, -4164),       # notional < 100
        ({**base, "quantity": "0.010", "price": f"{bid + 0.05:.2f}"}, -4014),  # off the tick
        ({**base, "quantity": "0.010", "price": f"{bid * 1.2:.1f}"}, -4016),  # above PERCENT_PRICE
        ({**base, "quantity": "0.010", "price": f"{ask * 1.01:.1f}", "timeInForce": "GTX"}, -5022),  # post-only would take
        ({**base, "quantity": "0.010", "price": f"{bid:.1f}", "reduceOnly": "true"}, -2022),     # nothing to reduce
        ({**base, "quantity": "100", "price": f"{bid:.1f}"}, -2019),          # margin
        ({**base, "side": "UP", "quantity": "0.010", "price": "1"}, -1117),
        ({**base, "quantity": "-1", "price": f"{bid:.1f}"}, -4003),
    ]
    for params, code in cases:
        st, body, _ = sim.request("POST", "/fapi/v1/order", params)
        assert st == 400 and body["code"] == code, (params, body)
    assert sim.request("DELETE", "/fapi/v1/order", {"symbol": "BTCUSDT", "orderId": 1})[1]["code"] == -2011
    assert sim.request("GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "orderId": 1})[1]["code"] == -2013


def test_order_lifecycle_batch_and_duplicate_client_id(sim):
    bid, ask = best(sim)
    px = f"{bid * 0.99:.1f}"            # far from the touch: it must rest, whatever the market does
    st, o, h = sim.request("POST", "/fapi/v1/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                                                     "timeInForce": "GTC", "quantity": "0.010", "price": px,
                                                     "newClientOrderId": "cs-test-1"})
    assert st == 200 and o["status"] == "NEW" and o["clientOrderId"] == "cs-test-1" and "X-MBX-USED-WEIGHT-1M" in h
    st, dup, _ = sim.request("POST", "/fapi/v1/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                                                       "timeInForce": "GTC", "quantity": "0.010", "price": px,
                                                       "newClientOrderId": "cs-test-1"})
    assert dup["code"] == -4116
    q = sim.request("GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "cs-test-1"})[1]
    assert q["orderId"] == o["orderId"] and q["origQty"] == "0.010"
    assert any(x["orderId"] == o["orderId"] for x in sim.request("GET", "/fapi/v1/openOrders", {"symbol": "BTCUSDT"})[1])
    c = sim.request("DELETE", "/fapi/v1/order", {"symbol": "BTCUSDT", "orderId": o["orderId"]})[1]
    assert c["status"] == "CANCELED"
    batch = [{"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.010",
              "price": f"{bid * 0.99 - 10:.1f}"},
             {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.0001",
              "price": f"{bid * 0.99 - 10:.1f}"}]
    st, res, _ = sim.request("POST", "/fapi/v1/batchOrders", {"batchOrders": json.dumps(batch)})
    assert res[0]["status"] == "NEW" and res[1]["code"] == -1111
    sim.request("DELETE", "/fapi/v1/allOpenOrders", {"symbol": "BTCUSDT"})
    assert sim.request("GET", "/fapi/v1/openOrders", {"symbol": "BTCUSDT"})[1] == []


def test_market_order_position_account_and_countdown(sim):
    st, o, _ = sim.request("POST", "/fapi/v1/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                                     "quantity": "0.020"})
    assert o["status"] == "FILLED" and o["executedQty"] == "0.020"
    pos = sim.request("GET", "/fapi/v2/positionRisk", {"symbol": "BTCUSDT"})[1][0]
    assert float(pos["positionAmt"]) >= 0.020 - 1e-9
    acct = sim.request("GET", "/fapi/v2/account")[1]
    assert float(acct["totalWalletBalance"]) < 100_000            # paid the taker fee
    st, r, _ = sim.request("POST", "/fapi/v1/order", {"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET",
                                                     "quantity": "0.020", "reduceOnly": "true"})
    assert r["status"] == "FILLED"
    bid, _ = best(sim)
    sim.request("POST", "/fapi/v1/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                                          "quantity": "0.010", "price": f"{bid * 0.99:.1f}"})
    assert sim.request("POST", "/fapi/v1/countdownCancelAll", {"symbol": "BTCUSDT", "countdownTime": 300})[0] == 200
    deadline = time.time() + 5
    while sim.request("GET", "/fapi/v1/openOrders", {"symbol": "BTCUSDT"})[1] and time.time() < deadline:
        time.sleep(0.1)
    assert sim.request("GET", "/fapi/v1/openOrders", {"symbol": "BTCUSDT"})[1] == []   # dead man's switch fired


async def _streams(sim, n_frames=200):
    got = {"raw": [], "combined": []}
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(f"{sim.ws}/ws/btcusdt@depth@0ms") as raw, \
                s.ws_connect(f"{sim.ws}/stream?streams=btcusdt@bookTicker/btcusdt@trade") as comb:
            while len(got["raw"]) < n_frames or len(got["combined"]) < n_frames:
                done, _ = await asyncio.wait([asyncio.ensure_future(raw.receive()), asyncio.ensure_future(comb.receive())],
                                             return_when=asyncio.ALL_COMPLETED, timeout=10)
                for d in done:
                    msg = d.result()
                    data = json.loads(msg.data)
                    (got["combined"] if "stream" in data else got["raw"]).append(data)
    return got


def test_market_streams_raw_and_combined(sim):
    got = asyncio.run(_streams(sim, 50))
    depth = [d for d in got["raw"] if d.get("e") == "depthUpdate"]
    assert depth and all(b["pu"] == a["u"] for a, b in zip(depth, depth[1:]))     # no gap
    assert {d["stream"] for d in got["combined"]} <= {"btcusdt@bookTicker", "btcusdt@trade"}


async def _user_stream(sim):
    st, lk, _ = sim.request("POST", "/fapi/v1/listenKey", signed=False, key=sim.key)
    key = lk["listenKey"]
    assert sim.request("PUT", "/fapi/v1/listenKey", signed=False, key=sim.key)[1]["listenKey"] == key
    events = []
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(f"{sim.ws}/ws/{key}") as ws:
            await asyncio.sleep(0.2)
            await asyncio.get_running_loop().run_in_executor(None, lambda: sim.request(
                "POST", "/fapi/v1/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.010",
                                           "newClientOrderId": "user-stream-1"}))
            # until the order is FILLED (a market order walking two levels reports a partial first)
            while not any(e.get("o", {}).get("X") == "FILLED" for e in events) or \
                    not any(e["e"] == "ACCOUNT_UPDATE" for e in events):
                msg = await asyncio.wait_for(ws.receive(), 5)
                events.append(json.loads(msg.data))
    return events


def test_user_data_stream(sim):
    ev = asyncio.run(_user_stream(sim))
    kinds = [(e["e"], e.get("o", {}).get("x")) for e in ev]
    assert kinds[0] == ("ORDER_TRADE_UPDATE", "NEW")
    assert ("ORDER_TRADE_UPDATE", "TRADE") in kinds and any(k == "ACCOUNT_UPDATE" for k, _ in kinds)
    trades = [e["o"] for e in ev if e.get("o", {}).get("x") == "TRADE"]
    assert all(t["c"] == "user-stream-1" and float(t["n"]) > 0 and t["m"] is False for t in trades)
    assert trades[-1]["X"] == "FILLED" and trades[-1]["z"] == "0.010"
    sim.request("POST", "/fapi/v1/order", {"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.010",
                                          "reduceOnly": "true"})


def test_rate_limit_429_then_418():
    s = ThreadedSim(synthetic_seed=2, speed=10, weight_limit=20)
    try:
        codes = [s.request("GET", "/fapi/v1/ping", signed=False)[0] for _ in range(20)]
        assert codes == [200] * 20
        st, body, h = s.request("GET", "/fapi/v1/ping", signed=False)
        assert st == 429 and body["code"] == -1003 and int(h["Retry-After"]) >= 1
        codes = [s.request("GET", "/fapi/v1/ping", signed=False)[0] for _ in range(4)]
        assert codes[-1] == 418                                      # it kept going: banned
    finally:
        s.close()
