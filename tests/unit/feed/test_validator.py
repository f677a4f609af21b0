"""Validation checks, one by one: each is a counter, drops what it must."""
import numpy as np

from cext.validate import Validator
from engine import schema


def rec(kind, px=1000, qty=1, aux=0, aux2=0, ts=10**18, mono=10**18, inst=0, flags=0):
    a = np.zeros(1, schema.MARKET_DTYPE)
    a["kind"], a["px"], a["qty"], a["aux"], a["aux2"] = kind, px, qty, aux, aux2
    a["exch_ts"], a["mono_origin"], a["inst"], a["flags"] = ts, mono, inst, flags
    return a


def names(v, a):
    return [Validator.reason_name(int(x)) for x in v.check_array(a)]


def test_nonpositive_and_crossed_bbo():
    v = Validator(1)
    assert names(v, rec(schema.MK_TRADE, px=0)) == ["nonpositive"]
    assert names(v, rec(schema.MK_DEPTH, qty=-1)) == ["nonpositive"]
    assert names(v, rec(schema.MK_DEPTH, qty=0)) == ["ok"]               # 0 deletes a level
    assert names(v, rec(schema.MK_BBO, px=1000, qty=1, aux=1000, aux2=1)) == ["crossed"]
    assert names(v, rec(schema.MK_BBO, px=999, qty=1, aux=1000, aux2=1)) == ["ok"]
    assert v.stats()["nonpositive"] == 2 and v.stats()["crossed"] == 1
    assert Validator.drops(1) and not Validator.drops(4)


def test_timestamps():
    v = Validator(1, clock_offset_ns=0, max_future_ns=1_000_000_000, max_lag_ns=2_000_000_000)
    now = 10**18
    assert names(v, rec(schema.MK_TRADE, ts=now + 2_000_000_000, mono=now)) == ["future_timestamp"]
    assert names(v, rec(schema.MK_TRADE, ts=now, mono=now)) == ["ok"]
    assert names(v, rec(schema.MK_TRADE, ts=now - 1, mono=now)) == ["timestamp_backwards"]
    assert names(v, rec(schema.MK_TRADE, ts=now - 3_000_000_000 + 5, mono=now + 5)) == ["timestamp_backwards"]
    assert names(v, rec(schema.MK_BBO, px=1, aux=2, ts=now - 3_000_000_000, mono=now)) == ["ok"]
    assert v.stats()["receive_lag"] == 1          # counted, passed
    # depth is sequenced by the book: counted, never dropped
    assert names(v, rec(schema.MK_DEPTH, ts=now, mono=now)) == ["ok"]
    assert names(v, rec(schema.MK_DEPTH, ts=now - 1, mono=now)) == ["ok"]
    assert v.stats()["timestamp_backwards"] == 3
    v2 = Validator(1, clock_offset_ns=-1_300_000_000)     # a clock 1.3 s off is configurable
    assert names(v2, rec(schema.MK_TRADE, ts=now, mono=now + 1_300_000_000)) == ["ok"]


def test_price_jump_dropped_until_confirmed():
    v = Validator(1, jump_warmup=50, jump_confirm=3, jump_min_bps=30)
    rng = np.random.default_rng(1)
    px = 100_000
    for i in range(200):
        px += int(rng.integers(-2, 3))
        assert names(v, rec(schema.MK_TRADE, px=px, ts=10**18 + i)) == ["ok"]
    bad = px * 2
    assert names(v, rec(schema.MK_TRADE, px=bad, ts=10**18 + 300)) == ["price_jump"]   # a bad print
    assert names(v, rec(schema.MK_TRADE, px=px, ts=10**18 + 301)) == ["ok"]            # back to normal
    # a real move persists: accepted on the third confirmation
    new = int(px * 1.02)
    res = [names(v, rec(schema.MK_TRADE, px=new + k, ts=10**18 + 400 + k))[0] for k in range(4)]
    assert res == ["price_jump", "price_jump", "ok", "ok"]
    st = v.stats()
    assert st["price_jump"] == 3 and st["jump_confirmed"] == 1


def test_volume_spike_is_flagged_not_dropped():
    v = Validator(1, spike_warmup=20, spike_k=10)
    for i in range(50):
        v.check_array(rec(schema.MK_TRADE, qty=10, ts=10**18 + i))
    a = rec(schema.MK_TRADE, qty=1000, ts=10**18 + 100)
    assert names(v, a) == ["ok"]
    assert a["flags"][0] & schema.F_VOLUME_SPIKE and v.stats()["volume_spike"] == 1


def test_stale_feed_and_unknown_instrument():
    v = Validator(2, stale_after_ns=1_000)
    v.check_array(rec(schema.MK_TRADE, mono=5_000, ts=0, inst=1))
    assert v.check_stale(5_500) == []
    assert v.check_stale(7_000) == [1] and v.check_stale(8_000) == [1]
    assert v.stats()["stale_feed"] == 1                 # one stall counted once
    assert names(v, rec(schema.MK_TRADE, inst=5)) == ["unknown_instrument"]
