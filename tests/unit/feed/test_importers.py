"""Importers on the real format samples in ../shared/data."""
import pytest

from cext.book import BinanceBookSync, OrderBook
from engine import schema
from engine.feed.importers import ImportError_, import_binance_tdepth, import_tardis_incremental, split_messages
from engine.testing.data import shared_file


def test_tardis_incremental_l2():
    path = shared_file("nautechsystems__nautilus_trader", "tests", "test_data", "tardis",
                       "deribit_incremental_book_L2_BTC-PERPETUAL.csv")
    recs, ins = import_tardis_incremental(path)
    assert [(i.symbol, i.price_decimals, i.qty_decimals) for i in ins] == [("BTC-PERPETUAL", 1, 0)]
    assert len(recs) == 15 and set(recs["kind"]) == {schema.MK_SNAPSHOT}
    assert recs[0]["flags"] & schema.F_CLEAR and recs[-1]["flags"] & schema.F_LAST_IN_MESSAGE
    assert recs[0]["exch_ts"] == 1585699200245000 * 1000 and recs[0]["mono_origin"] == 1585699200355684 * 1000
    book = OrderBook(0, 1 << 12)
    for m in split_messages(recs):
        book.apply(m)
    assert book.best_ask == (64215, 18640) and book.best_bid is None     # the sample holds asks only
    assert len(book.depth(2)[0]) == 15


def test_binance_tdepth_snapshot_feeds_the_sync():
    path = shared_file("nautechsystems__nautilus_trader", "tests", "test_data", "binance", "btcusdt-depth-snap.csv")
    recs, ins = import_binance_tdepth(path)
    assert (ins[0].symbol, ins[0].price_decimals, ins[0].qty_decimals) == ("BTCUSDT", 2, 3)
    assert len(split_messages(recs)) == 1 and set(recs["seq"]) == {2098021528332}
    sync = BinanceBookSync(OrderBook(0, 1 << 14))
    assert sync.apply(recs) == 4            # snapshot applied, waiting for the bridging diff
    assert sync.book.best_bid == (2037700, 1770) and len(sync.book.depth(1)[0]) == 100


def test_binance_tdepth_update():
    path = shared_file("nautechsystems__nautilus_trader", "tests", "test_data", "binance", "btcusdt-depth-update.csv")
    recs, _ = import_binance_tdepth(path)
    assert len(recs) == 100 and set(recs["kind"]) == {schema.MK_DEPTH}
    r = recs[0]
    assert (r["seq"], r["aux"], r["aux2"]) == (2098041696700, 2098041693400, 2098041693435)


def test_bad_rows_name_the_line(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("symbol,timestamp,first_update_id,last_update_id,side,update_type,price,qty,pu\n"
                 "BTCUSDT,1,1,2,b,snap,100.00,1.000,-1\n"
                 "BTCUSDT,1,1,2,x,snap,100.00,1.000,-1\n")
    with pytest.raises(ImportError_, match=":3: side 'x'"):
        import_binance_tdepth(str(p))
    p.write_text("a,b\n1,2\n")
    with pytest.raises(ImportError_, match="not a Binance T_DEPTH CSV"):
        import_binance_tdepth(str(p))
