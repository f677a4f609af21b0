"""Fees and PnL add up; funding; liquidation."""
import pytest

from engine import schema
from engine.venues.sim.accounts import Account

V = 0.1 * 0.001       # BTCUSDT: tick 0.1, lot 0.001


def test_pnl_and_fees_add_up():
    a = Account(10_000.0, {0: V})
    fills = [(schema.SIDE_BUY, 600_000, 10, True), (schema.SIDE_BUY, 601_000, 5, False),
             (schema.SIDE_SELL, 605_000, 20, True), (schema.SIDE_BUY, 603_000, 5, False)]
    tot_r = tot_f = 0.0
    for side, px, q, maker in fills:
        r, f = a.on_fill(0, side, px, q, maker)
        tot_r += r
        tot_f += f
    cash = sum((px if s == schema.SIDE_SELL else -px) * q * V for s, px, q, _ in fills)
    assert a.pos(0).qty == 0
    assert tot_r == pytest.approx(cash)                       # a closed position's PnL is its fills
    assert tot_f == pytest.approx(sum(px * q * V * (0.0002 if m else 0.0005) for _, px, q, m in fills))
    assert a.balance == pytest.approx(10_000 + cash - tot_f) and a.fees_paid == pytest.approx(tot_f)


def test_margin_funding_liquidation():
    a = Account(1_000.0, {0: V})
    a.pos(0).leverage = 20
    a.on_fill(0, schema.SIDE_BUY, 600_000, 300, maker=False)          # 18,000 notional on 1,000
    marks = {0: 600_000}
    assert a.initial_margin(marks) == pytest.approx(18_000 / 20)
    assert a.apply_funding(0, 600_000, 0.0001) == pytest.approx(1.8)  # long pays a positive rate
    assert a.liquidate_if_needed({0: 590_000}) == []                   # -300 PnL: still above maintenance
    # margin balance 989.2 - 1,050 < maintenance 0.4% of 16,950
    closed = a.liquidate_if_needed({0: 565_000})
    assert closed == [(0, 300, 565_000)] and a.pos(0).qty == 0 and a.liquidations == 1
