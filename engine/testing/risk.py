"""A ready RiskState/RiskGate pair for tests and benchmarks: BTCUSDT (tick 0.1, lot 0.001,
mark 60,000.0) and ETHUSDT (tick 0.01, lot 0.001, mark 3,000.00), equity 100,000 USDT."""
from __future__ import annotations

import numpy as np

from cext.risk import RiskGate, RiskState
from engine import schema
from engine.risk.limits import RiskLimits

BTC, ETH = 0, 1
NOW = 10_000_000_000_000


def make_state(equity: float = 100_000.0, now: int = NOW, vol: float = 0.03, corr: float = 0.85) -> RiskState:
    st = RiskState(2)
    st.equity = st.peak_equity = st.day_start_equity = equity
    st.configure(BTC, tick_size=0.1, lot_size=0.001, min_qty_lots=1, max_qty_lots=1_000_000, min_notional=100.0,
                 band_up=1.05, band_down=0.95, leverage=3.0)
    st.configure(ETH, tick_size=0.01, lot_size=0.001, min_qty_lots=1, max_qty_lots=10_000_000, min_notional=20.0,
                 band_up=1.05, band_down=0.95, leverage=3.0)
    st.set_market(BTC, mark_px=600_000, mark_ns=now, data_ns=now)
    st.set_market(ETH, mark_px=300_000, mark_ns=now, data_ns=now)
    st.set_vol(BTC, vol)
    st.set_vol(ETH, vol)
    st.set_correlation([[1.0, corr], [corr, 1.0]])
    return st


def intent(inst: int = BTC, side: int = schema.SIDE_BUY, qty: int = 10, px: int | None = None,
           otype: int = schema.OT_POST_ONLY, action: int = schema.ACT_NEW, flags: int = 0,
           client_id: int = 1) -> np.ndarray:
    a = np.zeros(1, schema.ORDER_DTYPE)
    a["action"], a["inst"], a["side"], a["qty"], a["otype"], a["flags"], a["client_id"] = \
        action, inst, side, qty, otype, flags, client_id
    a["px"] = px if px is not None else (599_990 if inst == BTC else 299_990) if side == schema.SIDE_BUY \
        else (600_010 if inst == BTC else 300_010)
    if otype == schema.OT_MARKET and px is None:
        a["px"] = 0
    return a


def make_gate(**overrides) -> RiskGate:
    return RiskGate(RiskLimits(**overrides))
