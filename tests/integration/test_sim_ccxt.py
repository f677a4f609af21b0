"""ccxt's binanceusdm client, unchanged except for its URLs, against the sim."""

import pytest

from engine.testing.sim import ThreadedSim

ccxt = pytest.importorskip("ccxt")


def test_ccxt_binanceusdm_works_against_the_sim():
    s = ThreadedSim(synthetic_seed=5, speed=10)
    try:
        ex = ccxt.binanceusdm({"apiKey": s.key, "secret": s.secret, "enableRateLimit": False,
                               "options": {"fetchCurrencies": False, "adjustForTimeDifference": False}})
        for k, v in list(ex.urls["api"].items()):
            if isinstance(v, str) and "fapi.binance.com" in v:
                ex.urls["api"][k] = v.replace("https://fapi.binance.com", s.base)
        sym = "BTC/USDT:USDT"
        markets = ex.load_markets()
        assert sym in markets and markets[sym]["precision"]["price"] == 0.1
        s.with_book()
        ob = ex.fetch_order_book(sym, 5)
        assert ob["bids"][0][0] < ob["asks"][0][0]
        bal = ex.fetch_balance()
        assert bal["USDT"]["total"] == pytest.approx(100_000)
        assert ex.set_leverage(5, sym)["leverage"] == 5
        px = round(ob["bids"][0][0] * 0.99, 1)      # far from the touch: it rests
        lim = ex.create_order(sym, "limit", "buy", 0.01, px)
        assert lim["status"] == "open" and lim["price"] == pytest.approx(px)
        mkt = ex.create_order(sym, "market", "buy", 0.01)
        assert mkt["status"] == "closed" and mkt["filled"] == pytest.approx(0.01)
        opens = ex.fetch_open_orders(sym)
        assert [o["id"] for o in opens] == [lim["id"]]
        pos = ex.fetch_positions([sym])
        assert pos[0]["contracts"] == pytest.approx(0.01) and pos[0]["side"] == "long"
        assert ex.cancel_order(lim["id"], sym)["status"] == "canceled"
        assert ex.fetch_open_orders(sym) == []
        with pytest.raises(ccxt.InvalidOrder):
            ex.create_order(sym, "limit", "buy", 0.01, ob["asks"][0][0] + 10, {"timeInForce": "GTX"})
    finally:
        s.close()
