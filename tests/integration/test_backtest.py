"""The backtester on the real BTCUSDT capture: deterministic byte for byte, no lookahead,
books that add up, the risk gate in the loop."""
import hashlib
import json
import os

import numpy as np
import pytest

from engine.backtest.engine import Backtester, LatencyModel
from engine.backtest.report import write_report
from engine.features.dataset import message_table
from engine.strategies.market_making import MarketMaker
from engine.testing.strategies import PythonPath
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
    assert s["equity_end"] == pytest.approx(100_000 + s["realized_pnl"] - s["fees"] + s["funding"]
                                            + s["unrealized_pnl"], abs=1e-6)
    pos = 0
    for t in r.trades:
        pos += int(round(float(t["qty"]) * 1000)) * (1 if t["side"] == "BUY" else -1)
        assert pos == t["position_lots"] and abs(pos) <= 50          # the strategy's inventory limit
    # the user's max_daily_trades (100 fills) holds: no new exposure after it
    assert s["fills"] <= 100 + 2 and r.rejects.get("daily_trades", 0) > 0


def test_funding_is_settled_at_midnight_utc_on_the_position_held(table):
    """The capture runs 23:54 -> 00:00:01 UTC: one settlement at 00:00, at Binance's base
    rate (the capture has no markPrice stream), on the position held then, at the mid."""
    r = run(table)
    ev = r.summary["funding_events"]
    assert len(ev) == 1
    e = ev[0]
    assert e["time_ns"] % (8 * 3600 * 10**9) == 0 and e["rate"] == 0.0001
    assert e["symbol"] == "BTCUSDT"
    if e["position_lots"]:
        assert e["amount"] == pytest.approx(-e["position_lots"] * 0.001 * 0.0001 * 61_000, rel=0.05)
    assert r.summary["funding"] == pytest.approx(e["amount"], abs=1e-6)


def test_per_strategy_books_add_up_to_the_total(table):
    from engine.strategies.directional import MeanReversion, MomentumBreakout
    from engine.strategies.switcher import RegimeSwitcher
    sw = RegimeSwitcher({"mm": MarketMaker(0, 0.1), "mr": MeanReversion(0), "mom": MomentumBreakout(0)})
    r = Backtester(INS, sw, seed=1).run(table)
    s = r.summary
    ps = s["per_strategy"]
    assert "MarketMaker" in ps
    for key in ("fees", "funding", "fills"):
        assert sum(v[key] for v in ps.values()) == pytest.approx(s[key], abs=1e-6)
    # realised PnL is per strategy (one's long does not net against another's short), so
    # only realised + unrealised adds up to the portfolio's, and the net PnL to the equity change
    assert sum(v["realized_pnl"] + v["unrealized_pnl"] for v in ps.values()) == \
        pytest.approx(s["realized_pnl"] + s["unrealized_pnl"], abs=1e-6)
    assert sum(v["net_pnl"] for v in ps.values()) == pytest.approx(s["equity_end"] - s["equity_start"], abs=1e-6)
    assert s["regime"] == "auto" and s["regime_changes"] == []      # minutes of data: NORMAL throughout
    assert all(x["strategy"] in ps for x in r.trades)


ETH = Instrument(symbol="ETHUSDT", inst=1, price_decimals=2, qty_decimals=3, tick_units=1, min_notional="5",
                 max_qty_lots=1_000_000)


def test_two_instruments_with_the_model_in_the_loop(table, trained_registry):
    """BTC and ETH in one run, one strategy each, the ensemble scoring every ready message
    (one runtime per instrument); deterministic with the model too."""
    from engine.models.registry import ModelRegistry
    from engine.testing.data import usdm_capture
    eth = message_table(usdm_capture("ETHUSDT"), "ETHUSDT", [ETH])
    reg = ModelRegistry(trained_registry["root"])

    def go():
        return Backtester([INS, ETH], [MarketMaker(0, 0.1), MarketMaker(1, 0.01)], seed=3,
                          model=reg.load).run([table, eth])
    a = go()
    s = a.summary
    assert s["instruments"] == ["BTCUSDT", "ETHUSDT"]
    assert s["messages"] == len(table["starts"]) + len(eth["starts"])
    assert set(s["per_instrument"]) == {"BTCUSDT", "ETHUSDT"}
    assert s["model"]["calls"] > 1000 and s["model"]["version"] == reg.current()
    assert {t["symbol"] for t in a.trades} == {"BTCUSDT", "ETHUSDT"}
    for sym, d in s["per_instrument"].items():
        assert abs(d["final_position_lots"]) <= 50
    # the strategies receive p(up) - p(down) on every scored message
    class Spy(MarketMaker):
        def on_market(self, ts, bb, ba, f, ready, valid, signal=0.0):
            self.signals.append(signal)
            return super().on_market(ts, bb, ba, f, ready, valid, signal)
    spies = [Spy(0, 0.1), Spy(1, 0.01)]
    for sp in spies:
        sp.signals = []
    c = Backtester([INS, ETH], spies, seed=3, model=reg.load).run([table, eth])
    # the same run again (only the class name differs): deterministic with the model
    assert [dict(x, strategy=0) for x in c.trades] == [dict(x, strategy=0) for x in a.trades]
    assert {k: v for k, v in c.summary.items() if k != "per_strategy"} == \
        {k: v for k, v in s.items() if k != "per_strategy"}
    assert c.summary["per_strategy"]["Spy"] == s["per_strategy"]["MarketMaker"]
    got = np.array(spies[0].signals + spies[1].signals)
    assert np.count_nonzero(got) == c.summary["model"]["calls"] == s["model"]["calls"]
    assert np.all(np.abs(got) <= 1.0)
    assert c.summary["model"]["mean_signal"] == pytest.approx(got[got != 0].mean(), abs=1e-7)


# ---------------------------------------------------------------- the compiled loop's two paths
def test_compiled_and_python_strategy_paths_give_the_same_backtest(table):
    """The same rule once as a compiled strategy (no Python per message) and once through the
    Python path: every order, fill, equity point and rejection the same."""
    from engine.risk.limits import RiskLimits
    from engine.strategies.touch import TouchQuoter
    lim = RiskLimits(max_daily_trades=2_000, order_rate=50, order_burst=50)      # some refusals too
    part = {k: (v[:40_000] if k != "recs" else v[:int(table["ends"][39_999])]) if isinstance(v, np.ndarray) else v
            for k, v in table.items()}
    res = []
    for wrap in (lambda q: q, PythonPath):
        bt = Backtester(INS, wrap(TouchQuoter(0, max_position_lots=5)), limits=lim, regime="NORMAL",
                        latency=LatencyModel(order_samples=np.array([2_000_000, 9_000_000], np.int64)), seed=3)
        res.append(bt.run(part))
    a, b = res
    assert a.summary["fills"] > 20 and a.summary["risk_rejects"] > 0 and a.summary["orders_sent"] > 100

    def same(x):             # the per-strategy name is the class's
        return json.dumps([x.summary, x.trades, x.rejects], sort_keys=True).replace("PythonPath", "TouchQuoter")
    assert same(a) == same(b)
    assert np.array_equal(a.equity, b.equity)


class Replacer:
    """A strategy that sends one action the sim does not model (a replace) and one new order."""
    owner = 9

    def __init__(self):
        self.execs, self.sent = [], False

    def on_market(self, ts, bb, ba, f, ready, valid, signal):
        from engine import schema
        if self.sent or not valid:
            return []
        self.sent = True
        out = []
        for cid, action, ref in (((9 << 40) + 1, schema.ACT_NEW, 0), ((9 << 40) + 2, schema.ACT_REPLACE, (9 << 40) + 1)):
            a = np.zeros(1, schema.ORDER_DTYPE)
            a["action"], a["side"], a["otype"], a["inst"] = action, schema.SIDE_BUY, schema.OT_POST_ONLY, 0
            a["client_id"], a["ref_client_id"], a["px"], a["qty"], a["event_ts"] = cid, ref, bb - 50, 1, ts
            out.append(a)
        return out

    def on_exec(self, e):
        self.execs.append((int(e["kind"]), int(e["client_id"]), int(e["reason"])))


def test_an_action_the_sim_does_not_model_is_refused_not_lost(table):
    from engine import schema
    from engine.risk.limits import RiskLimits
    part = {k: (v[:3_000] if k != "recs" else v[:int(table["ends"][2_999])]) if isinstance(v, np.ndarray) else v
            for k, v in table.items()}
    s = Replacer()
    bt = Backtester(INS, s, limits=RiskLimits(max_daily_trades=10**6), regime="NORMAL")
    r = bt.run(part)
    assert r.summary["orders_sent"] == 1 and r.rejects == {"unsupported_action": 1}
    assert s.execs[0] == (schema.EX_REJECT, (9 << 40) + 2, -1100)       # the replace: refused, said at once
    assert list(bt.book.orders) == [(9 << 40) + 1]                       # the new order: open, as at the venue
    assert [o[1] for o in bt.engine.open_orders()] == [(9 << 40) + 1]


def test_an_intent_that_is_not_one_record_is_a_clear_error(table):
    from engine import schema
    part = {k: (v[:100] if k != "recs" else v[:int(table["ends"][99])]) if isinstance(v, np.ndarray) else v
            for k, v in table.items()}

    class Two:
        owner = 5

        def on_market(self, *a):
            return [np.zeros(2, schema.ORDER_DTYPE)]

        def on_exec(self, e):
            pass

    with pytest.raises(ValueError, match="one ORDER_DTYPE record"):
        Backtester(INS, Two(), regime="NORMAL").run(part)


def test_a_table_out_of_time_order_is_replayed_in_time_order(table):
    """Messages given in reverse order are put back in exchange-time order (stable by
    message): the backtest equals the one on the table in its own order."""
    from engine.strategies.touch import TouchQuoter
    n = 5_000
    part = {k: (v[:n] if k != "recs" else v[:int(table["ends"][n - 1])]) if isinstance(v, np.ndarray) else v
            for k, v in table.items()}
    times = np.maximum(part["recs"]["exch_ts"][part["ends"] - 1], part["tops"]["exch_ts"])
    one = np.r_[True, np.diff(times) > 0]          # one message per time stamp: no ties to order
    part = dict(part, starts=part["starts"][one], ends=part["ends"][one], tops=part["tops"][one])
    rev = dict(part, starts=part["starts"][::-1].copy(), ends=part["ends"][::-1].copy(), tops=part["tops"][::-1].copy())
    assert len(part["starts"]) > 2_000
    runs = [Backtester(INS, TouchQuoter(0), regime="NORMAL").run(t) for t in (part, rev)]
    assert runs[0].summary["orders_sent"] > 0
    assert runs[0].summary == runs[1].summary and runs[0].trades == runs[1].trades
