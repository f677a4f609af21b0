"""PositionBook PnL and open orders; the trading-state monitor's automatic responses."""
import numpy as np
import pytest

from engine import schema
from engine.risk.limits import RiskLimits
from engine.risk.monitor import TradingMonitor
from engine.risk.positions import PositionBook
from engine.testing.risk import BTC, ETH, NOW, intent, make_gate, make_state


def fill(cid, side, px, qty, fee=0.0, kind=schema.EX_FILL, leaves=0, inst=BTC):
    e = np.zeros(1, schema.EXEC_DTYPE)[0]
    e["kind"], e["client_id"], e["side"], e["px"], e["qty"], e["fee"], e["leaves_qty"], e["inst"] = \
        kind, cid, side, px, qty, fee, leaves, inst
    return e


def book(equity=100_000.0):
    st = make_state(equity=equity)
    pb = PositionBook(st, balance=equity)
    pb.add_instrument(BTC, 0.1, 0.001)
    pb.add_instrument(ETH, 0.01, 0.001)
    return st, pb


def test_pnl_is_the_sum_of_fills():
    st, pb = book()
    fills = [(schema.SIDE_BUY, 600_000, 10, 0.6), (schema.SIDE_BUY, 601_000, 10, 0.6),
             (schema.SIDE_SELL, 602_000, 15, -0.2), (schema.SIDE_SELL, 599_000, 10, 0.5),
             (schema.SIDE_BUY, 598_000, 5, 0.1)]
    for k, (side, px, qty, fee) in enumerate(fills):
        pb.on_exec(fill(k, side, px, qty, fee))
    # cash-flow check: sum of signed fill values (sell +, buy -) + position at mark - fees
    cash = sum((px if side == schema.SIDE_SELL else -px) * qty * 1e-4 for side, px, qty, _ in fills)
    fees = sum(f for *_, f in fills)
    assert pb.positions[BTC].qty == 0
    assert pb.positions[BTC].realized - pb.positions[BTC].fees == pytest.approx(cash - fees)
    assert pb.equity() == pytest.approx(100_000 + cash - fees)
    assert st.equity == pytest.approx(pb.equity()) and st.position(BTC) == 0
    assert st.daily_trades == 5


def test_unrealized_on_mark_and_flip():
    st, pb = book()
    pb.on_exec(fill(1, schema.SIDE_BUY, 600_000, 10))
    pb.on_mark(BTC, 610_000)
    assert pb.unrealized(BTC) == pytest.approx(10_000 * 10 * 1e-4)
    pb.on_exec(fill(2, schema.SIDE_SELL, 605_000, 30))        # closes 10, opens 20 short at 605,000
    assert pb.positions[BTC].qty == -20 and pb.positions[BTC].avg_px == 605_000
    assert pb.positions[BTC].realized == pytest.approx(5_000 * 10 * 1e-4)
    assert st.peak_equity >= st.equity


def test_open_orders_follow_acks_fills_cancels():
    st, pb = book()
    g = make_gate()
    ok, order = g.check(intent(qty=10, client_id=7), st, NOW)
    assert ok
    pb.on_order_sent(order[0])
    assert st.open_orders(BTC) == (10, 0)
    pb.on_exec(fill(7, schema.SIDE_BUY, 599_990, 4, kind=schema.EX_PARTIAL, leaves=6))
    assert st.open_orders(BTC) == (6, 0) and st.position(BTC) == 4
    pb.on_exec(fill(7, schema.SIDE_BUY, 0, 0, kind=schema.EX_CANCELED))
    assert st.open_orders(BTC) == (0, 0) and not pb.orders


def test_consecutive_losses_lead_to_a_cooldown():
    lim = RiskLimits()
    st, pb = book()
    mon = TradingMonitor(lim, st)
    for k in range(5):
        pb.on_exec(fill(2 * k, schema.SIDE_BUY, 600_000, 10))
        pb.on_exec(fill(2 * k + 1, schema.SIDE_SELL, 599_000, 10))    # a loss each time
    assert pb.consecutive_losses == 5
    mon.evaluate(NOW, consecutive_losses=pb.consecutive_losses)
    assert st.cooldown_until_ns == NOW + int(lim.cooldown_s * 1e9)
    ok, rej = make_gate().check(intent(qty=10), st, NOW + 1)
    assert not ok and make_gate().reason_name(int(rej["reason"][0])) == "cooldown"
    pb.on_exec(fill(99, schema.SIDE_BUY, 600_000, 10))
    pb.on_exec(fill(100, schema.SIDE_SELL, 601_000, 10))             # a win resets the count
    assert pb.consecutive_losses == 0


def test_drawdown_reduces_then_halts_with_reasons():
    lim = RiskLimits()
    st = make_state()
    mon = TradingMonitor(lim, st)
    st.peak_equity = 100_000
    st.day_start_equity = 89_000          # the loss is older than today: drawdown only
    st.equity = 89_000                    # 11%: REDUCING
    mon.evaluate(NOW)
    assert st.trading_state == schema.TS_REDUCING
    st.equity = 84_000                    # 16%: HALTED (and 5.6% lost today)
    mon.evaluate(NOW + 1)
    assert st.trading_state == schema.TS_HALTED
    assert [(t.old, t.new) for t in mon.transitions] == [("ACTIVE", "REDUCING"), ("REDUCING", "HALTED")]
    assert "drawdown 0.1600" in mon.transitions[-1].reason and mon.transitions[-1].time_ns == NOW + 1
    mon.resume(NOW + 2)
    assert st.trading_state == schema.TS_ACTIVE
    mon.evaluate(NOW + 3)                 # still in drawdown: straight back down
    assert st.trading_state == schema.TS_HALTED


def test_stale_feed_halts_and_recovers_and_error_storm_halts():
    st = make_state()
    mon = TradingMonitor(RiskLimits(), st, error_storm_n=3, error_storm_s=10)
    mon.evaluate(NOW, data_ns={BTC: NOW - 6_000_000_000, ETH: NOW})
    assert st.trading_state == schema.TS_HALTED and mon.transitions[-1].reason == "stale feed"
    mon.evaluate(NOW + 1, data_ns={BTC: NOW, ETH: NOW})
    assert st.trading_state == schema.TS_ACTIVE
    for k in range(3):
        mon.on_exchange_error(NOW + k)
    mon.evaluate(NOW + 5)
    assert st.trading_state == schema.TS_HALTED and "error storm" in mon.transitions[-1].reason


def test_a_hold_lasts_until_released_and_only_then_if_nothing_else_holds():
    st = make_state()
    mon = TradingMonitor(RiskLimits(), st)
    mon.hold("user stream reconciling", NOW)
    assert st.trading_state == schema.TS_HALTED
    mon.evaluate(NOW + 1, data_ns={BTC: NOW - 6_000_000_000})       # and the feed goes stale
    mon.release("user stream reconciling", NOW + 2)
    assert st.trading_state == schema.TS_HALTED and mon.reasons == {"stale feed"}
    mon.release("user stream reconciling", NOW + 3)                # twice: nothing happens
    mon.evaluate(NOW + 4, data_ns={BTC: NOW + 4})
    assert st.trading_state == schema.TS_ACTIVE and not mon.reasons
    assert mon.transitions[-1].reason == "stale feed: over"


def test_kill_switch_cancels_and_flattens_through_the_gate():
    st, pb = book()
    g = make_gate()
    pb.on_exec(fill(1, schema.SIDE_BUY, 600_000, 50))
    pb.on_exec(fill(2, schema.SIDE_SELL, 300_000, 1000, inst=ETH))
    mon = TradingMonitor(RiskLimits(), st)
    intents = mon.kill_switch(NOW, {BTC: 50, ETH: -1000}, {BTC}, client_id_base=1000)
    assert st.trading_state == schema.TS_REDUCING and st.kill_switch
    kinds = [(int(r["action"]), int(r["inst"]), int(r["side"]), int(r["qty"]), int(r["flags"])) for r in intents]
    assert kinds == [(schema.ACT_CANCEL_ALL, BTC, 0, 0, 0),
                     (schema.ACT_NEW, BTC, schema.SIDE_SELL, 50, schema.OF_REDUCE_ONLY),
                     (schema.ACT_NEW, ETH, schema.SIDE_BUY, 1000, schema.OF_REDUCE_ONLY)]
    for r in intents:
        ok, _ = g.check(r[None], st, NOW)
        assert ok
    ok, rej = g.check(intent(qty=10), st, NOW)          # anything new is refused
    assert not ok
    mon.on_flat(NOW + 1)
    assert st.trading_state == schema.TS_HALTED
