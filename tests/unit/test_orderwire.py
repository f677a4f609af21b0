"""cext.orderwire: the compiled order requests are byte for byte the Python path's
(OrderGateway._params / the cancel parameters -> BinanceRest.sign -> OrderLinks.encode),
and its HMAC-SHA256 is the standard one."""
import hashlib
import hmac
import os
import random

import numpy as np
import pytest

from cext.orderwire import HmacSha256, OrderEncoder
from engine import schema
from engine.execution.gateway import BinanceRest, OrderGateway, query
from engine.execution.http1 import OrderLinks
from engine.venues.instruments import Instrument

INSTRUMENTS = [
    Instrument(symbol="BTCUSDT", inst=0, price_decimals=2, qty_decimals=3, tick_units=10, lot_units=1),
    Instrument(symbol="ETHUSDT", inst=3, price_decimals=2, qty_decimals=3, tick_units=1, lot_units=1),
    Instrument(symbol="BTCUSD_PERP", inst=7, price_decimals=1, qty_decimals=0, tick_units=1, lot_units=1,
               venue="binance-coinm", contract_size="100"),
    Instrument(symbol="1000PEPEUSDT", inst=9, price_decimals=7, qty_decimals=0, tick_units=1, lot_units=100),
]


@pytest.mark.parametrize("sha_ni", [True, False])
def test_hmac_sha256_matches_hashlib(sha_ni):
    """With the CPU's SHA extensions (where it has them) and with the portable rounds."""
    from cext import orderwire
    was = orderwire.sha_kernel() == "sha-ni"
    try:
        kernel = orderwire.use_sha_ni(sha_ni)
        if sha_ni and kernel != "sha-ni":
            pytest.skip("this CPU has no SHA extensions (the portable rounds are tested beside)")
        rng = random.Random(5)
        for _ in range(2000):
            key = os.urandom(rng.choice([0, 1, 31, 32, 55, 56, 63, 64, 65, 127, 300]))
            msg = os.urandom(rng.choice([0, 1, 55, 56, 57, 63, 64, 65, rng.randint(0, 600)]))
            assert HmacSha256(key).hexdigest(msg) == hmac.new(key, msg, hashlib.sha256).hexdigest()
    finally:
        orderwire.use_sha_ni(was)


def _python_request(rest, gw, method, params, ts, prefix):
    q = query(params) + f"&timestamp={ts}&recvWindow={rest.recv_window}"
    sig = hmac.new(rest.secret, q.encode(), hashlib.sha256).hexdigest()
    return rest.links.encode(method, f"/fapi/v1/order?{q}&signature={sig}", rest._key_header)


@pytest.mark.parametrize("base", ["http://127.0.0.1:8123", "https://fapi.example.com/api"])
def test_requests_are_the_python_paths_byte_for_byte(base):
    rest = BinanceRest(base, "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A",
                       "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j")
    rest.links = OrderLinks(base)                  # not opened: only its encoding is used
    gw = OrderGateway(rest, INSTRUMENTS)
    enc = rest.encoder(gw.prefix, INSTRUMENTS)
    rng = np.random.default_rng(11)
    for i in range(3000):
        ins = INSTRUMENTS[i % len(INSTRUMENTS)]
        a = np.zeros(1, schema.ORDER_DTYPE)
        a["inst"], a["side"] = ins.inst, rng.choice([schema.SIDE_BUY, schema.SIDE_SELL])
        a["otype"] = rng.choice([schema.OT_LIMIT, schema.OT_POST_ONLY, schema.OT_IOC, schema.OT_MARKET, schema.OT_FOK])
        a["px"], a["qty"] = rng.integers(1, 10**9), rng.integers(1, 10**7)
        a["client_id"] = int(rng.integers(0, 2**62)) if i % 3 else i
        a["ref_client_id"] = int(rng.integers(0, 2**62)) if i % 2 else 0
        a["flags"] = schema.OF_REDUCE_ONLY if i % 5 == 0 else 0
        o = a[0]
        cid = gw.client_order_id(int(o["client_id"]))
        enc.time_offset_ms = int(rng.integers(-5000, 5000))
        for method, got, params in (
                ("POST", enc.new(a), gw._params(o, ins, cid)),
                ("DELETE", enc.cancel(a),
                 {"symbol": ins.symbol, "origClientOrderId": gw.client_order_id(int(o["ref_client_id"] or o["client_id"]))})):
            ts = int(got.split(b"&timestamp=")[1].split(b"&")[0])
            assert got == _python_request(rest, gw, method, params, ts, gw.prefix), (method, got)


def test_timestamp_is_now_plus_the_offset():
    import time
    rest = BinanceRest("http://127.0.0.1:1", "k", "s")
    rest.links = OrderLinks("http://127.0.0.1:1")
    enc = rest.encoder("cs", INSTRUMENTS)
    a = np.zeros(1, schema.ORDER_DTYPE)
    a["side"], a["otype"], a["qty"], a["px"] = schema.SIDE_BUY, schema.OT_LIMIT, 1, 1
    for off in (0, -1234, 987654):
        enc.time_offset_ms = off
        t0 = int(time.time() * 1000)
        ts = int(enc.new(a).split(b"&timestamp=")[1].split(b"&")[0])
        t1 = int(time.time() * 1000)
        assert t0 + off <= ts <= t1 + off


def test_bad_records_and_unencodable_names_are_refused():
    rest = BinanceRest("http://127.0.0.1:1", "k", "s")
    rest.links = OrderLinks("http://127.0.0.1:1")
    enc = rest.encoder("cs", INSTRUMENTS)
    a = np.zeros(1, schema.ORDER_DTYPE)
    a["side"], a["otype"] = schema.SIDE_BUY, schema.OT_LIMIT
    a["inst"] = 4                                          # not an instrument of the encoder
    with pytest.raises(ValueError, match="unknown"):
        enc.new(a)
    a["inst"], a["otype"] = 0, 9
    with pytest.raises(ValueError, match="order type"):
        enc.new(a)
    a["otype"], a["side"] = schema.OT_LIMIT, 0
    with pytest.raises(ValueError, match="side"):
        enc.new(a)
    with pytest.raises(ValueError, match="ORDER_DTYPE"):
        enc.new(np.zeros(2, schema.ORDER_DTYPE))
    odd = Instrument(symbol="BTC/USDT", inst=1, price_decimals=2, qty_decimals=3)
    with pytest.raises(ValueError, match="unreserved"):
        OrderEncoder(b"s", "k", "h:1", "", "cs", [odd])
    # the gateway then keeps building requests in Python, and says so once
    gw = OrderGateway(rest, [odd])
    assert gw._encoder() is None and gw._enc_refused
    assert gw.rehearse() > 0


def test_gateway_rehearse_walks_start_up_to_the_write():
    """OrderGateway.rehearse(order): the request start would build for it (its length),
    an idle connection looked up, nothing written, no counter moved."""
    class Link:
        idle = True
        written = 0

        def request(self, data):
            Link.written += 1
            raise AssertionError("a rehearsal wrote a request")

    rest = BinanceRest("http://127.0.0.1:1", "k", "s")
    rest.links = OrderLinks("http://127.0.0.1:1")
    rest.links.links.append(Link())
    gw = OrderGateway(rest, INSTRUMENTS)
    a = np.zeros(1, schema.ORDER_DTYPE)
    a["action"], a["side"], a["otype"], a["qty"], a["px"], a["client_id"] = \
        schema.ACT_NEW, schema.SIDE_BUY, schema.OT_POST_ONLY, 3, 600_000, 77
    stats = dict(gw.stats)
    n = gw.rehearse(a)
    assert n == len(gw._encoder().new(a)) and n > 0
    a["action"] = schema.ACT_CANCEL
    assert gw.rehearse(a) == len(gw._encoder().cancel(a))
    a["inst"] = 5                                    # an instrument start would refuse: nothing built
    assert gw.rehearse(a) == 0
    assert gw.rehearse() > 0                         # the default record
    assert Link.written == 0 and gw.stats == stats and not rest.sign_ns
