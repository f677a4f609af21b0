"""The gate, layer by layer and filter by filter: exact decisions and the numbers compared."""
import pytest

from cext.risk import RiskGate
from engine import schema
from engine.risk.limits import DEFAULT_PROFILES, RegimeProfile, RiskLimits
from engine.testing.risk import BTC, ETH, NOW, intent, make_gate, make_state

L = {"position_size": 1, "portfolio_exposure": 2, "daily_var": 3, "drawdown": 4, "volatility": 5,
     "correlation": 6, "emergency": 7, "exchange_filters": 8}


def check(gate, st, it, now=NOW):
    ok, rec = gate.check(it, st, now)
    return ok, rec.copy()


def rejected(gate, st, it, now=NOW):
    ok, rec = check(gate, st, it, now)
    assert not ok, "expected a rejection"
    r = rec[0]
    return RiskGate.layer_name(int(r["layer"])), RiskGate.reason_name(int(r["reason"])), float(r["observed"]), float(r["limit"])


def test_accepts_and_stamps_and_counts_in_flight():
    g, st = make_gate(), make_state()
    ok, order = check(g, st, intent(qty=10))
    assert ok and order["qty"][0] == 10 and order["t_risk"][0] == NOW and order["px"][0] == 599_990
    assert st.open_orders(BTC) == (10, 0)        # in flight until the venue answers


def test_t_risk_is_the_clock_when_the_gate_is_done_unless_a_time_is_given():
    import time
    # the market data is stamped on the live clock: a fixed stamp would be stale or in the
    # future depending on the host's uptime (CLOCK_MONOTONIC counts from boot)
    before = time.monotonic_ns()
    g, st = make_gate(), make_state(now=before)
    it = intent(qty=10)
    ok, order = g.check(it, st)         # the live engine's call: no time given
    assert ok and before <= int(order["t_risk"][0]) <= time.monotonic_ns()
    ok, order = g.check(it, st, before + 1)     # a backtest's clock is kept as it is
    assert ok and int(order["t_risk"][0]) == before + 1


def test_layer1_position_size_exact_boundary():
    g, st = make_gate(), make_state()
    # one lot = 60 USDT; 10% of 100k = 10,000 USDT = 166.67 lots
    assert check(g, st, intent(qty=166))[0]
    st.set_open_orders(BTC, 0, 0)
    layer, reason, obs, lim = rejected(g, st, intent(qty=167))
    assert (layer, reason, lim) == ("position_size", "position_limit", 0.10)
    assert obs == pytest.approx(167 * 60 / 100_000)
    # resting orders on the same side count
    st.set_open_orders(BTC, 100, 0, 599_000, 0)
    assert rejected(g, st, intent(qty=67))[1] == "position_limit"


def test_regime_multiplier_scales_down_but_never_lifts_the_hard_limit():
    g, st = make_gate(), make_state()
    st.regime = 4                      # BULL_RUN: position x 1.5
    assert rejected(g, st, intent(qty=167))[3] == 0.10        # still the hard 10%
    st.regime = 3                      # CRASH: position x 0.2 -> 2% = 33.3 lots
    assert check(g, st, intent(qty=33))[0]
    st.set_open_orders(BTC, 0, 0)
    assert rejected(g, st, intent(qty=34))[3] == pytest.approx(0.02)


def test_layer1_fails_closed_without_a_fresh_mark_and_on_daily_trades():
    g, st = make_gate(), make_state()
    st.set_market(BTC, mark_px=0, mark_ns=NOW, data_ns=NOW)
    assert rejected(g, st, intent())[:2] == ("position_size", "no_mark_price")
    st.set_market(BTC, mark_px=600_000, mark_ns=NOW - 6_000_000_000, data_ns=NOW)
    layer, reason, obs, lim = rejected(g, st, intent())
    assert (reason, obs, lim) == ("stale_mark_price", 6.0, 5.0)
    st = make_state()
    st.daily_trades = 100
    assert rejected(g, st, intent())[1] == "daily_trades"


def test_layer2_exposure_asset_and_max_positions():
    g, st = make_gate(max_position_size=0.5, max_single_asset_exposure=0.5, max_correlated_exposure=1.0), make_state()
    st.set_position(ETH, 25_000)                 # 75,000 USDT = 0.75
    layer, reason, obs, lim = rejected(g, st, intent(qty=100))   # + 6,000 -> 0.81 > 0.80
    assert (layer, reason, lim) == ("portfolio_exposure", "gross_exposure", 0.8)
    assert obs == pytest.approx(0.81)
    g2, st2 = make_gate(), make_state()
    st2.configure(ETH, tick_size=0.01, lot_size=0.001, min_notional=20.0, leverage=3.0, asset=BTC)  # same asset
    st2.set_position(ETH, 4_000)                 # 12,000 = 0.12
    assert rejected(g2, st2, intent(qty=150))[:2] == ("portfolio_exposure", "asset_exposure")
    g3, st3 = make_gate(), make_state()
    st3.regime = 3                               # CRASH: max 2 positions
    st3.set_position(ETH, 100)
    assert check(g3, st3, intent(qty=10))[0]     # second position: allowed
    lim_prof = RiskLimits(regime_profiles=tuple(
        RegimeProfile(position_mult=1.0, stop_mult=1.0, risk_per_trade=0.02, max_positions=1) for _ in range(6)))
    g4, st4 = RiskGate(lim_prof), make_state()
    st4.set_position(ETH, 100)
    assert rejected(g4, st4, intent(qty=10))[:2] == ("portfolio_exposure", "max_positions")


def test_layer3_var():
    g, st = make_gate(max_daily_var=0.005), make_state()
    # 100 lots = 6,000 = 0.06 of equity; VaR = 2.326 * 0.06 * 0.03 = 0.00419
    assert check(g, st, intent(qty=100))[0]
    st.set_open_orders(BTC, 0, 0)
    layer, reason, obs, lim = rejected(g, st, intent(qty=130))
    assert (layer, reason) == ("daily_var", "daily_var") and obs == pytest.approx(2.326 * 0.078 * 0.03)
    st.set_vol(ETH, 0.0)
    st.set_position(ETH, 10)
    assert rejected(g, st, intent(qty=1))[1] == "var_no_volatility"


def test_layer4_drawdown_and_daily_loss():
    g, st = make_gate(), make_state()
    st.peak_equity = 120_000                     # 16.7% below the peak
    layer, reason, obs, lim = rejected(g, st, intent())
    assert (layer, reason, lim) == ("drawdown", "drawdown", 0.15) and obs == pytest.approx(20_000 / 120_000)
    st = make_state()
    st.day_start_equity = 106_000                # 5.66% lost today
    assert rejected(g, st, intent())[1] == "daily_loss"


def test_layer5_volatility():
    g, st = make_gate(), make_state(vol=0.0)
    # no estimate: the VaR layer, which needs it first, already denies (fail closed)
    assert rejected(g, st, intent())[:2] == ("daily_var", "var_no_volatility")
    st.set_vol(BTC, 0.2)
    assert rejected(g, st, intent())[1] == "volatility_ceiling"
    g2, st2 = make_gate(max_loss_per_trade=0.0001), make_state()
    # 100 lots: 0.06 x 2 x 0.03 x sqrt(1/24) = 0.000735 > 0.0001
    layer, reason, obs, lim = rejected(g2, st2, intent(qty=100))
    assert (reason, lim) == ("loss_per_trade", 0.0001) and obs == pytest.approx(0.06 * 2 * 0.03 * (1 / 24) ** 0.5)


def test_layer6_correlation():
    g, st = make_gate(max_correlated_exposure=0.15), make_state()
    st.set_position(ETH, 3_000)                  # long 9,000 = 0.09
    # long BTC 100 lots (0.06) with rho 0.85 >= 0.8: 0.15 -> at the limit, allowed
    assert check(g, st, intent(qty=100))[0]
    st.set_open_orders(BTC, 0, 0)
    assert rejected(g, st, intent(qty=101))[:2] == ("correlation", "correlated_exposure")
    # a short BTC against a long ETH is a hedge, not the same bet
    assert check(g, st, intent(qty=101, side=schema.SIDE_SELL))[0]
    st2 = make_state()
    st2.set_correlation([[1.0, float("nan")], [float("nan"), 1.0]])
    st2.set_position(ETH, 100)
    assert rejected(make_gate(), st2, intent())[:2] == ("correlation", "no_correlation")


def test_layer7_states_kill_switch_cooldown_and_data():
    g = make_gate()
    st = make_state()
    st.set_position(BTC, 50)
    st.trading_state = schema.TS_HALTED
    assert rejected(g, st, intent())[:2] == ("emergency", "halted")
    assert rejected(g, st, intent(side=schema.SIDE_SELL, qty=10, flags=schema.OF_REDUCE_ONLY))[1] == "halted"
    assert check(g, st, intent(action=schema.ACT_CANCEL))[0]
    assert check(g, st, intent(action=schema.ACT_CANCEL_ALL))[0]
    st.trading_state = schema.TS_REDUCING
    assert rejected(g, st, intent())[1] == "reducing_only"
    assert check(g, st, intent(side=schema.SIDE_SELL, qty=10))[0]           # cuts exposure
    st.set_open_orders(BTC, 0, 0)
    assert rejected(g, st, intent(side=schema.SIDE_SELL, qty=60))[1] == "reducing_only"   # would flip
    st = make_state()
    st.set_position(BTC, 50)
    st.kill_switch = True
    st.trading_state = schema.TS_REDUCING
    assert rejected(g, st, intent(side=schema.SIDE_SELL, qty=50))[1] == "kill_switch"      # not reduce-only
    assert check(g, st, intent(side=schema.SIDE_SELL, qty=50, otype=schema.OT_MARKET, flags=schema.OF_REDUCE_ONLY))[0]
    st = make_state()
    st.cooldown_until_ns = NOW + 1_000_000_000
    assert rejected(g, st, intent())[1] == "cooldown"
    st = make_state()
    st.set_market(BTC, mark_px=600_000, mark_ns=NOW, data_ns=NOW, book_valid=False)
    assert rejected(g, st, intent())[1] == "book_invalid"
    st.set_market(BTC, mark_px=600_000, mark_ns=NOW, data_ns=NOW - 10_000_000_000)
    assert rejected(g, st, intent())[1] == "stale_market_data"


def test_filters():
    g, st = make_gate(), make_state()
    assert rejected(g, st, intent(qty=1))[:2] == ("exchange_filters", "min_notional")    # 60 < 100
    assert check(g, make_state(), intent(px=589_000))[0]                                # 1.83% below: inside 2%
    layer, reason, obs, lim = rejected(g, make_state(), intent(px=587_000))             # 2.17% below
    assert (reason, lim) == ("price_band", 0.02) and obs == pytest.approx(-13_000 / 600_000)
    st = make_state()
    assert rejected(g, make_state(), intent(px=700_000, side=schema.SIDE_SELL))[1] == "price_band"
    st = make_state()
    st.set_open_orders(BTC, 0, 10, 0, 599_990)
    assert rejected(g, st, intent(px=599_990, qty=10))[1] == "self_trade"               # would cross our ask
    assert check(g, st, intent(px=599_980, qty=10))[0]
    st = make_state()
    st.set_open_orders(BTC, 10, 0, 600_000, 0)
    assert rejected(g, st, intent(side=schema.SIDE_SELL, otype=schema.OT_MARKET, qty=10))[1] == "self_trade"
    assert rejected(g, make_state(), intent(qty=0))[1] == "bad_order"
    assert rejected(g, make_state(), intent(otype=9))[1] == "bad_order"
    assert rejected(g, make_state(), intent(inst=7))[1] == "unknown_instrument"
    st = make_state(equity=0.0)
    assert rejected(g, st, intent())[1] == "no_equity"


def test_margin_and_rate_limit():
    g, st = make_gate(max_position_size=1.0, max_total_exposure=1.0, max_single_asset_exposure=1.0,
                      max_correlated_exposure=1.0, max_daily_var=1.0, max_loss_per_trade=1.0), make_state()
    st.configure(BTC, tick_size=0.1, lot_size=0.001, min_notional=100.0, leverage=0.5)   # margin = 2 x notional
    assert rejected(g, st, intent(qty=900))[:2] == ("exchange_filters", "margin")          # 54,000 x 2 > 100k
    g2, st2 = make_gate(order_rate=1.0, order_burst=3.0), make_state()
    for k in range(3):
        assert check(g2, st2, intent(qty=2, client_id=k))[0]
    assert rejected(g2, st2, intent(qty=2))[1] == "order_rate"
    assert check(g2, st2, intent(qty=2), now=NOW + 1_000_000_000)[0]                      # refilled
    assert check(g2, st2, intent(action=schema.ACT_CANCEL))[0]                            # cancels never throttled


def test_reducing_orders_skip_limits_but_not_filters():
    g, st = make_gate(), make_state()
    st.set_position(BTC, 500)          # 30% of equity: above the position limit already
    st.peak_equity = 200_000           # and in a deep drawdown
    assert check(g, st, intent(side=schema.SIDE_SELL, qty=100))[0]
    assert rejected(g, st, intent(side=schema.SIDE_BUY, qty=10))[1] == "position_limit"
    assert rejected(g, st, intent(side=schema.SIDE_SELL, qty=100, px=800_000))[1] == "price_band"


def test_stats_and_limits_validation():
    g, st = make_gate(), make_state()
    check(g, st, intent(qty=10))
    rejected(g, st, intent(qty=1))
    assert g.stats() == {"checks": 2, "accepted": 1, "rejected": {"exchange_filters": 1}}
    with pytest.raises(ValueError, match="max_position_size"):
        RiskLimits(max_position_size=2.0)
    with pytest.raises(TypeError):
        RiskLimits(bogus=1)
    with pytest.raises(ValueError, match="6 profiles"):
        RiskLimits(regime_profiles=DEFAULT_PROFILES[:3])
    with pytest.raises(ValueError, match="ORDER_DTYPE"):
        g.check(b"x" * 64, st, NOW)


def test_rehearse_decides_as_check_and_changes_nothing():
    """RiskGate.rehearse (the busy-polling engine's cache warming) gives check's answer and
    leaves the gate and the state as they were: tokens, open lots, counters."""
    def seen(g, st):
        return st.snapshot(), g.stats(), st.tokens, st.tokens_ns, st.open_orders(BTC)

    oks = []
    for it in (intent(qty=10), intent(qty=167), intent(qty=10, px=1),
               intent(action=schema.ACT_CANCEL, qty=0)):
        g, st = make_gate(), make_state()
        check(g, st, intent(qty=5, client_id=9))          # some state first: tokens used, lots in flight
        before = seen(g, st)
        ok, rec = g.rehearse(it, st, NOW)
        rec = rec.copy()
        assert seen(g, st) == before
        ok2, rec2 = check(g, st, it)
        assert ok == ok2 and rec.tobytes() == rec2.tobytes()        # the very same record
        oks.append(ok)
    assert oks == [True, False, False, True]          # passes, a position-limit and a price-band refusal, a cancel
    g, st = make_gate(), make_state()
    with pytest.raises(ValueError, match="ORDER_DTYPE"):
        g.rehearse(b"short", st)
