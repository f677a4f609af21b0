"""The backtester on the real BTCUSDT capture: deterministic byte for byte, no lookahead,
books that add up, the risk gate in the loop."""
import hashlib
import os

import numpy as np
import pytest

from engine.backtest.engine import Backtester, LatencyModel
from engine.backtest.report import write_report
from engine.features.dataset import message_table
from engine.strategies.market_making import MarketMaker
from engine.venues.instruments import Instrument

INS = Instrument(symbol="BTCUSDT", inst=0, price_decimals=2, qty_decimals=3, tick_units=10, min_notional="5",
                 max_qty_lots=1_000_000)


@pytest.fixture(scope="module")
def table(btc_capture_module):
    return message_table(btc_capture_module, "BTCUSDT", [INS])


@pytest.fixture(scope="module")
def btc_capture_module():
    from engine.testing.data import usdm_capture
    return usdm_capture("BTCUSDT")


def run(table, seed=0, samples=None):
    mm = MarketMaker(0, 0.1)
    return Backtester(INS, mm, seed=seed, latency=LatencyModel(order_samples=samples)).run(table)


def digest(path):
    return {f: hashlib.sha256(open(os.path.join(path, f), "rb").read()).hexdigest()
            for f in ("summary.json", "trades.csv", "report.html", "equity.png")}


def test_deterministic_byte_for_byte(table, tmp_path):
    samples = np.array([3_000_000, 8_000_000, 25_000_000], np.int64)     # a latency distribution
    a, b = run(table, 7, samples), run(table, 7, samples)
    write_report(a, tmp_path / "a", "x")
    write_report(b, tmp_path / "b", "x")
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert a.summary["fills"] > 0
    assert a.trades == b.trades


def test_no_lookahead(table):
    """Plant a future leak: rewrite everything after message k (prices jump 5%). Every
    decision before k must be identical."""
    base = run(table)
    k = len(table["starts"]) * 3 // 4
    cut_ts = int(table["recs"]["exch_ts"][table["starts"][k]])
    leak = {key: (v.copy() if isinstance(v, np.ndarray) else v) for key, v in table.items()}
    after = slice(table["starts"][k], None)
    leak["recs"]["px"][after] = (leak["recs"]["px"][after] * 1.05).astype(np.int64)
    for f in ("bid_px", "ask_px"):
        leak["tops"][f][k:] = (leak["tops"][f][k:] * 1.05).astype(np.int64)
    moved = run(leak)
    before = [t for t in base.trades if t["time_ns"] < cut_ts]
    assert before == [t for t in moved.trades if t["time_ns"] < cut_ts]
    assert len(before) > 0


def test_books_add_up_and_risk_is_in_the_loop(table):
    r = run(table)
    s = r.summary
    fees = sum(t["fee"] for t in r.trades)
    assert s["fees"] == pytest.approx(fees, abs=1e-6)
    assert s["equity_end"] == pytest.approx(100_000 + s["realized_pnl"] - s["fees"] + s["unrealized_pnl"], abs=1e-6)
    pos = 0
    for t in r.trades:
        pos += int(round(float(t["qty"]) * 1000)) * (1 if t["side"] == "BUY" else -1)
        assert pos == t["position_lots"] and abs(pos) <= 50          # the strategy's inventory limit
    # the user's max_daily_trades (100 fills) holds: no new exposure after it
    assert s["fills"] <= 100 + 2 and r.rejects.get("daily_trades", 0) > 0
