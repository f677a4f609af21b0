"""The Cython byte scanner: every message kind, wrappers, key order, and rejections."""
import numpy as np
import orjson
import pytest
from hypothesis import given, settings, strategies as st

from cext.binance import BinanceParser
from engine import schema
from engine.venues.instruments import Instrument

INS = [Instrument(symbol="BTCUSDT", inst=3, price_decimals=2, qty_decimals=3, tick_units=10),
       Instrument(symbol="BTCUSD_PERP", inst=4, price_decimals=1, qty_decimals=0, venue="binance-coinm")]

DEPTH = (b'{"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","E":1723161256299,"T":1723161256298,'
         b'"s":"BTCUSDT","U":5123107832006,"u":5123107837557,"pu":5123107831937,'
         b'"b":[["58710.20","0.014"],["61510.90","0.000"]],"a":[["61800.30","1.072"]]}}')


@pytest.fixture
def p():
    return BinanceParser(INS)


@pytest.fixture
def out():
    return np.zeros(64, schema.MARKET_DTYPE)


def test_depth_update(p, out):
    n = p.parse(DEPTH, 777, out)
    assert n == 3
    r = out[:n]
    assert list(r["kind"]) == [schema.MK_DEPTH] * 3
    assert list(r["side"]) == [schema.SIDE_BUY, schema.SIDE_BUY, schema.SIDE_SELL]
    assert list(r["px"]) == [587102, 615109, 618003]          # tick 0.10
    assert list(r["qty"]) == [14, 0, 1072]
    assert set(r["seq"]) == {5123107837557} and set(r["aux"]) == {5123107831937}
    assert set(r["aux2"]) == {5123107832006}
    assert set(r["exch_ts"]) == {1723161256299_000_000} and set(r["mono_origin"]) == {777}
    assert list(r["flags"]) == [0, 0, schema.F_LAST_IN_MESSAGE]
    assert set(r["inst"]) == {3}


def test_raw_and_wrapped_and_any_key_order_give_the_same_records(p, out):
    msg = orjson.loads(DEPTH)["data"]
    raw = orjson.dumps(msg)
    reordered = orjson.dumps(dict(reversed(list(msg.items()))))
    wrapped_data_first = b'{"data":' + reordered + b',"stream":"btcusdt@depth@0ms"}'
    ref = out[:p.parse(DEPTH, 1, out)].copy()
    for frame in (raw, reordered, wrapped_data_first, b"  \n" + raw + b"  "):
        n = p.parse(frame, 1, out)
        assert n == 3, BinanceParser.reason_name(n)
        assert out[:n].tobytes() == ref.tobytes()


def test_empty_depth_update_still_carries_the_sequence(p, out):
    n = p.parse(b'{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":10,"u":11,"pu":9,"b":[],"a":[]}', 5, out)
    assert n == 1
    assert (out[0]["side"], out[0]["seq"], out[0]["aux"], out[0]["aux2"]) == (schema.SIDE_NONE, 11, 9, 10)
    assert out[0]["flags"] == schema.F_LAST_IN_MESSAGE


def test_book_ticker_trade_aggtrade(p, out):
    n = p.parse(b'{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":5123107839020,"s":"BTCUSDT",'
                b'"b":"61800.20","B":"2.507","a":"61800.30","A":"2.510","T":1723161256313,"E":1723161256313}}', 9, out)
    assert n == 1
    assert (out[0]["kind"], out[0]["px"], out[0]["qty"], out[0]["aux"], out[0]["aux2"], out[0]["seq"]) == \
        (schema.MK_BBO, 618002, 2507, 618003, 2510, 5123107839020)
    n = p.parse(b'{"e":"trade","E":1723161256322,"T":1723161256322,"s":"BTCUSDT","t":5266583935,'
                b'"p":"61800.30","q":"0.006","X":"MARKET","m":false}', 9, out)
    assert n == 1
    assert (out[0]["kind"], out[0]["side"], out[0]["px"], out[0]["qty"], out[0]["seq"], out[0]["flags"]) == \
        (schema.MK_TRADE, schema.SIDE_BUY, 618003, 6, 5266583935, schema.F_LAST_IN_MESSAGE)
    n = p.parse(b'{"e":"trade","E":1,"T":2,"s":"BTCUSDT","t":7,"p":"61800.30","q":"0.006","X":"LIQUIDATION","m":true}', 9, out)
    assert out[0]["side"] == schema.SIDE_SELL and out[0]["flags"] & schema.F_NON_MARKET
    assert out[0]["exch_ts"] == 2_000_000
    n = p.parse(b'{"e":"aggTrade","E":1,"a":26129,"s":"BTCUSDT","p":"61800.30","q":"0.100","f":100,"l":105,'
                b'"T":3,"m":true}', 9, out)
    assert n == 1
    assert (out[0]["seq"], out[0]["aux"], out[0]["aux2"], out[0]["qty"]) == (26129, 100, 105, 100)
    assert out[0]["flags"] & schema.F_AGGREGATED


def test_mark_price_and_funding(p, out):
    n = p.parse(b'{"e":"markPriceUpdate","E":1562305380000,"s":"BTCUSDT","p":"11794.15000000",'
                b'"i":"11784.62659091","P":"11784.25641265","r":"0.00038167","T":1562306400000}', 1, out)
    assert n == 2
    mark, fund = out[0], out[1]
    assert (mark["kind"], mark["px"], mark["aux"], mark["aux2"]) == (schema.MK_MARK, 117942, 117846, 381670)
    assert (fund["kind"], fund["aux"], fund["aux2"]) == (schema.MK_FUNDING, 1562306400000_000_000, 381670)
    assert fund["flags"] == schema.F_LAST_IN_MESSAGE


def test_force_order(p, out):
    n = p.parse(b'{"e":"forceOrder","E":1568014460893,"o":{"s":"BTCUSDT","S":"SELL","o":"LIMIT","f":"IOC",'
                b'"q":"0.014","p":"9910","ap":"9910","X":"FILLED","l":"0.014","z":"0.014","T":1568014460893}}', 1, out)
    assert n == 1
    assert (out[0]["kind"], out[0]["side"], out[0]["px"], out[0]["qty"], out[0]["aux"]) == \
        (schema.MK_LIQUIDATION, schema.SIDE_SELL, 99100, 14, 99100)


def test_rest_snapshot_uses_default_symbol(p, out):
    snap = b'{"lastUpdateId":1027024,"E":1589436922972,"T":1589436922959,"bids":[["4.00","431.000"]],"asks":[["4.10","12.000"],["4.20","1.000"]]}'
    assert p.parse(snap, 1, out) == -3            # unknown symbol without a default
    n = p.parse(snap, 1, out, "BTCUSDT")
    assert n == 3
    assert list(out[:3]["kind"]) == [schema.MK_SNAPSHOT] * 3
    assert out[0]["flags"] & schema.F_CLEAR and out[2]["flags"] & schema.F_LAST_IN_MESSAGE
    assert set(out[:3]["seq"]) == {1027024}


def test_coinm_contracts(p, out):
    n = p.parse(b'{"stream":"btcusd_perp@depth","data":{"e":"depthUpdate","E":1,"T":1,"s":"BTCUSD_PERP",'
                b'"ps":"BTCUSD","U":1,"u":2,"pu":0,"b":[["61800.1","12"]],"a":[]}}', 1, out)
    assert n == 1 and (out[0]["inst"], out[0]["px"], out[0]["qty"]) == (4, 618001, 12)


REJECTS = [
    (b'{"e":"depthUpdate"', "malformed"),
    (b'not json', "malformed"),
    (b'{"e":"kline","s":"BTCUSDT"}', "unknown_event"),
    (b'{"e":"trade","E":1,"T":1,"s":"ETHUSDT","t":1,"p":"1.00","q":"1.000","m":true}', "unknown_symbol"),
    (b'{"e":"trade","E":1,"T":1,"s":"BTCUSDT","t":1,"p":61800.3,"q":"1.000","m":true}', "field_type"),
    (b'{"e":"trade","E":1,"T":1,"s":"BTCUSDT","t":"1","p":"61800.30","q":"1.000","m":true}', "field_type"),
    (b'{"e":"trade","E":1,"T":1,"s":"BTCUSDT","p":"61800.30","q":"1.000","m":true}', "missing_field"),
    (b'{"e":"trade","E":1,"T":1,"s":"BTCUSDT","t":1,"p":"61800.3x","q":"1.000","m":true}', "bad_number"),
    (b'{"e":"trade","E":1,"T":1,"s":"BTCUSDT","t":1,"p":"61800.35","q":"1.000","m":true}', "price_off_grid"),
    (b'{"e":"trade","E":1,"T":1,"s":"BTCUSDT","t":1,"p":"61800.301","q":"1.000","m":true}', "price_off_grid"),
    (b'{"e":"trade","E":1,"T":1,"s":"BTCUSDT","t":1,"p":"61800.30","q":"1.0005","m":true}', "qty_off_grid"),
    (b'{"e":"trade","E":1,"T":1,"s":"BTCUSDT","t":1,"p":"-61800.30","q":"1.000","m":true}', "nonpositive"),
    (b'{"e":"trade","E":1,"T":1,"s":"BTCUSDT","t":1,"p":"61800.30","q":"0.000","m":true}', "nonpositive"),
    (b'{"e":"trade","E":1,"T":1,"s":"BTC\\u0055SDT","t":1,"p":"61800.30","q":"1.000","m":true}', "unsupported_string"),
    (b'{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":2,"pu":0,"b":[["61800.30","-1.000"]],"a":[]}', "nonpositive"),
]


@pytest.mark.parametrize("frame,reason", REJECTS)
def test_rejections_are_counted_with_a_reason(p, out, frame, reason):
    n = p.parse(frame, 1, out)
    assert n < 0 and BinanceParser.reason_name(n) == reason
    st = p.stats()
    assert st["rejected"] == 1 and st["rejects"] == {reason: 1} and st["records"] == 0


def test_too_many_levels_for_the_output(p):
    small = np.zeros(2, schema.MARKET_DTYPE)
    assert BinanceParser.reason_name(p.parse(DEPTH, 1, small)) == "too_many_levels"


def test_unknown_fields_of_any_type_are_skipped(p, out):
    frame = (b'{"e":"trade","x1":{"nested":[1,2,{"a":"b\\"c"}]},"E":1,"T":1,"s":"BTCUSDT","t":1,'
             b'"x2":[true,false,null,-1.5e3],"p":"61800.30","q":"1.000","m":false,"x3":null}')
    assert p.parse(frame, 1, out) == 1


@settings(max_examples=400, deadline=None)
@given(cut=st.integers(0, len(DEPTH)), junk=st.binary(max_size=8), pos=st.integers(0, len(DEPTH)))
def test_mangled_frames_never_crash_and_never_half_emit(cut, junk, pos):
    p = BinanceParser(INS)
    out = np.zeros(64, schema.MARKET_DTYPE)
    frame = DEPTH[:pos] + junk + DEPTH[pos:cut] if pos <= cut else DEPTH[:cut]
    n = p.parse(frame, 1, out)
    st = p.stats()
    if n < 0:
        assert st["rejected"] == 1 and st["records"] == 0
    else:
        assert out[n - 1]["flags"] & schema.F_LAST_IN_MESSAGE and st["records"] == n


def test_constructor_errors():
    with pytest.raises(ValueError, match="twice"):
        BinanceParser(INS + INS)
