"""PositionBook: positions, PnL and our open orders, from the orders we send and the
venue's execution reports; it keeps the gate's RiskState current.

PnL is in the quote currency. A fill that reduces a position realises
(fill px - avg entry px) x qty (sign by side) x value per tick-lot; fees are subtracted
as they come (a negative fee is a rebate); funding settlements are booked with
``on_funding``. Equity = starting balance + realised - fees + funding + unrealised (on the
mark). A *trade* for the consecutive-loss counter is a fill that
reduces or closes a position: a negative realised PnL (after its fee) counts a loss, a
non-negative one resets the count.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from cext.risk import RiskState
from engine import schema
from engine.accounting import apply_fill


@dataclass
class _Pos:
    value_per_tick_lot: float
    qty: int = 0                 # signed lots
    avg_px: float = 0.0          # ticks
    realized: float = 0.0
    fees: float = 0.0
    mark_px: int = 0
    fills: int = 0
    funding: float = 0.0         # funding received (+) or paid (-)


@dataclass
class _Order:
    inst: int
    side: int
    px: int
    leaves: int


@dataclass
class PositionBook:
    state: RiskState
    balance: float                               # starting wallet balance, quote currency
    positions: dict[int, _Pos] = field(default_factory=dict)
    orders: dict[int, _Order] = field(default_factory=dict)   # client_id -> resting/in-flight order
    consecutive_losses: int = 0
    losses_total: int = 0
    trades_total: int = 0

    def add_instrument(self, inst: int, tick_size: float, lot_size: float) -> None:
        self.positions[inst] = _Pos(value_per_tick_lot=tick_size * lot_size)

    # ---------------------------------------------------------------- orders
    def on_order_sent(self, order) -> None:
        """An order the gate accepted and the gateway sent (ORDER_DTYPE record)."""
        o = order if order.dtype.names else order
        action = int(o["action"])
        cid = int(o["client_id"])
        if action in (schema.ACT_NEW, schema.ACT_REPLACE):
            if action == schema.ACT_REPLACE:
                self.orders.pop(int(o["ref_client_id"]), None)
            self.orders[cid] = _Order(int(o["inst"]), int(o["side"]), int(o["px"]), int(o["qty"]))
        self._sync_orders({int(o["inst"])})

    def on_exec(self, ex) -> None:
        """An execution report (EXEC_DTYPE record)."""
        kind = int(ex["kind"])
        cid = int(ex["client_id"])
        inst = int(ex["inst"])
        o = self.orders.get(cid)
        if kind in (schema.EX_PARTIAL, schema.EX_FILL):
            if int(ex["qty"]):              # a recovered order's end is a FILL of 0 (its fills came apart)
                self._fill(inst, int(ex["side"]), int(ex["px"]), int(ex["qty"]), float(ex["fee"]))
            if o is not None:
                o.leaves = int(ex["leaves_qty"])
                if o.leaves <= 0 or kind == schema.EX_FILL:
                    self.orders.pop(cid, None)
        elif kind in (schema.EX_CANCELED, schema.EX_EXPIRED, schema.EX_REJECT):
            self.orders.pop(cid, None)
        self._sync_orders({inst} | ({o.inst} if o else set()))

    def _fill(self, inst: int, side: int, px: int, qty: int, fee: float) -> None:
        p = self.positions[inst]
        dq = qty if side == schema.SIDE_BUY else -qty
        p.qty, p.avg_px, realized, reduced = apply_fill(p.qty, p.avg_px, dq, px, p.value_per_tick_lot)
        p.realized += realized
        if reduced:
            self.trades_total += 1
            if realized - fee < 0:
                self.consecutive_losses += 1
                self.losses_total += 1
            else:
                self.consecutive_losses = 0
        p.fees += fee
        p.fills += 1
        self.state.daily_trades += 1
        self.state.set_position(inst, p.qty)
        self._update_equity()

    def _sync_orders(self, insts) -> None:
        for inst in insts:
            if inst not in self.positions:
                continue
            buys = [o for o in self.orders.values() if o.inst == inst and o.side == schema.SIDE_BUY]
            sells = [o for o in self.orders.values() if o.inst == inst and o.side == schema.SIDE_SELL]
            self.state.set_open_orders(inst, sum(o.leaves for o in buys), sum(o.leaves for o in sells),
                                       max((o.px for o in buys if o.px > 0), default=0),
                                       min((o.px for o in sells if o.px > 0), default=0))

    # ---------------------------------------------------------------- marks and equity
    def on_mark(self, inst: int, mark_px: int) -> None:
        p = self.positions[inst]
        p.mark_px = mark_px
        if p.qty:                   # flat: the mark moves nothing
            self._update_equity()

    def unrealized(self, inst: int) -> float:
        p = self.positions[inst]
        if p.qty == 0 or p.mark_px <= 0:
            return 0.0
        return (p.mark_px - p.avg_px) * p.qty * p.value_per_tick_lot

    def on_funding(self, inst: int, rate: float, mark_px: int) -> float:
        """A funding settlement: a long pays ``rate`` x its notional at the mark (receives it
        when the rate is negative), a short the opposite. Returns the amount booked."""
        p = self.positions[inst]
        amount = -p.qty * mark_px * p.value_per_tick_lot * rate
        p.funding += amount
        self._update_equity()
        return amount

    def equity(self) -> float:
        return self.balance + sum(p.realized - p.fees + p.funding for p in self.positions.values()) + \
            sum(self.unrealized(i) for i in self.positions)

    def _update_equity(self) -> None:
        eq = self.equity()
        self.state.equity = eq
        if eq > self.state.peak_equity:
            self.state.peak_equity = eq

    def start_day(self) -> None:
        self.state.day_start_equity = self.equity()
        self.state.daily_trades = 0

    def summary(self) -> dict:
        return {"equity": self.equity(), "consecutive_losses": self.consecutive_losses,
                "positions": {i: {"qty": p.qty, "avg_px": p.avg_px, "realized": p.realized, "fees": p.fees,
                                  "unrealized": self.unrealized(i), "fills": p.fills, "funding": p.funding}
                              for i, p in self.positions.items()},
                "open_orders": len(self.orders)}
