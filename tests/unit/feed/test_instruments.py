"""Instrument rules: exact decimal <-> ticks/lots, exchangeInfo, inference from data."""
import pytest

from engine.venues.instruments import Instrument, from_binance_exchange_info, infer_from_messages

BTC = Instrument(symbol="BTCUSDT", inst=0, price_decimals=2, qty_decimals=3, tick_units=10, lot_units=1)


def test_ticks_and_lots_roundtrip_exactly():
    assert BTC.price_to_ticks("61800.30") == 618003
    assert BTC.price_to_ticks("61800.3") == 618003
    assert BTC.ticks_to_price(618003) == "61800.30"
    assert BTC.qty_to_lots("0.014") == 14
    assert BTC.lots_to_qty(14) == "0.014"
    assert BTC.lots_to_qty(0) == "0.000"
    assert str(BTC.tick_size) == "0.10"


@pytest.mark.parametrize("bad,match", [("61800.35", "multiple of the step 0.10"),
                                       ("61800.301", "more than 2 decimals"),
                                       ("abc", "not a decimal"), ("nan", "not finite")])
def test_off_grid_is_an_error_not_a_rounding(bad, match):
    with pytest.raises(ValueError, match=match):
        BTC.price_to_ticks(bad)


def test_constructor_errors_name_the_field():
    with pytest.raises(ValueError, match="price_decimals"):
        Instrument(symbol="X", inst=0, price_decimals=13, qty_decimals=0)
    with pytest.raises(TypeError):
        Instrument(symbol="X", inst=0, price_decimals=1, qty_decimals=0, bogus=1)


EXCHANGE_INFO = {"symbols": [
    {"symbol": "BTCUSDT", "pricePrecision": 2, "quantityPrecision": 3, "contractSize": 1,
     "filters": [{"filterType": "PRICE_FILTER", "tickSize": "0.10", "minPrice": "556.80", "maxPrice": "4529764"},
                 {"filterType": "LOT_SIZE", "stepSize": "0.001", "minQty": "0.001", "maxQty": "1000"},
                 {"filterType": "MIN_NOTIONAL", "notional": "100"},
                 {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500"}]},
    {"symbol": "BTCUSD_PERP", "pricePrecision": 1, "quantityPrecision": 0, "contractSize": 100,
     "filters": [{"filterType": "PRICE_FILTER", "tickSize": "0.1"},
                 {"filterType": "LOT_SIZE", "stepSize": "1", "minQty": "1", "maxQty": "1000000"}]},
]}


def test_from_exchange_info():
    btc, coin = from_binance_exchange_info(EXCHANGE_INFO)
    assert (btc.price_decimals, btc.tick_units, btc.qty_decimals, btc.lot_units) == (2, 10, 3, 1)
    assert (btc.min_qty_lots, btc.max_qty_lots, btc.min_notional) == (1, 1_000_000, "100")
    assert (btc.multiplier_up, btc.multiplier_down) == ("1.0500", "0.9500")
    assert (coin.price_decimals, coin.tick_units, coin.qty_decimals, coin.contract_size) == (1, 1, 0, "100")
    assert coin.inst == 1
    with pytest.raises(ValueError, match="no symbol"):
        from_binance_exchange_info(EXCHANGE_INFO, symbols=["ETHUSDT"])


def test_infer_from_messages_usdm_and_coinm():
    frames = [
        b'{"stream":"btcusd_perp@depth","data":{"e":"depthUpdate","E":1,"T":1,"s":"BTCUSD_PERP","ps":"BTCUSD",'
        b'"U":1,"u":2,"pu":0,"b":[["61800.1","12"]],"a":[["61800.2","3"]]}}',
        b'{"lastUpdateId":5,"E":1,"T":1,"bids":[["61800.20","2.500"]],"asks":[["61800.30","0.001"]]}',
    ]
    coin, btc = infer_from_messages(frames, default_symbol="BTCUSDT")
    assert (coin.symbol, coin.price_decimals, coin.qty_decimals) == ("BTCUSD_PERP", 1, 0)
    assert (btc.symbol, btc.price_decimals, btc.qty_decimals, btc.inst) == ("BTCUSDT", 2, 3, 1)
