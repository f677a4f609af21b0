"""A USD-M futures account: cross margin, fees, PnL on the mark, funding, liquidation.

Quote currency USDT. Per instrument: position (signed lots), entry price (ticks,
average), leverage. Definitions (Binance's, simplified to one maintenance tier):
- notional = |qty| x mark x value_per_tick_lot; unrealized = (mark - entry) x qty x value
- margin balance = wallet + sum(unrealized)
- initial margin = position notional / leverage + open orders' notional / leverage
- available = margin balance - initial margin (an order that adds exposure needs its
  initial margin available, else -2019 "Margin is insufficient")
- maintenance margin = notional x maint_rate (0.4%); margin balance <= maintenance:
  liquidation, every position closed at the mark with a clearance fee (0.5% of notional)
- fees: maker 0.02%, taker 0.05% of the fill's notional (Binance's VIP 0 USD-M rates)
- funding at 00:00, 08:00, 16:00 UTC: each position pays qty x mark x value x rate
  (longs pay a positive rate, shorts receive it)
"""
from __future__ import annotations

from dataclasses import dataclass, field

from engine import schema
from engine.accounting import apply_fill


@dataclass
class Position:
    qty: int = 0
    entry: float = 0.0          # ticks
    realized: float = 0.0
    leverage: int = 20


@dataclass
class Account:
    balance: float                       # wallet balance, USDT
    value: dict[int, float]              # inst -> quote value of one lot at a price of one tick
    maker_fee: float = 0.0002
    taker_fee: float = 0.0005
    maint_rate: float = 0.004
    liq_fee: float = 0.005
    positions: dict[int, Position] = field(default_factory=dict)
    fees_paid: float = 0.0
    funding_paid: float = 0.0
    liquidations: int = 0

    def pos(self, inst: int) -> Position:
        p = self.positions.get(inst)
        if p is None:
            p = self.positions[inst] = Position()
        return p

    # ---------------------------------------------------------------- fills
    def on_fill(self, inst: int, side: int, px: int, qty: int, maker: bool) -> tuple[float, float]:
        """Apply a fill: returns (realized PnL, fee)."""
        p = self.pos(inst)
        v = self.value[inst]
        fee = qty * px * v * (self.maker_fee if maker else self.taker_fee)
        dq = qty if side == schema.SIDE_BUY else -qty
        p.qty, p.entry, realized, _ = apply_fill(p.qty, p.entry, dq, px, v)
        p.realized += realized
        self.balance += realized - fee
        self.fees_paid += fee
        return realized, fee

    # ---------------------------------------------------------------- marks and margin
    def unrealized(self, inst: int, mark: int) -> float:
        p = self.positions.get(inst)
        if not p or p.qty == 0 or mark <= 0:
            return 0.0
        return (mark - p.entry) * p.qty * self.value[inst]

    def margin_balance(self, marks: dict[int, int]) -> float:
        return self.balance + sum(self.unrealized(i, marks.get(i, 0)) for i in self.positions)

    def initial_margin(self, marks: dict[int, int], open_orders: dict[int, int] | None = None) -> float:
        im = 0.0
        for i, p in self.positions.items():
            im += abs(p.qty) * marks.get(i, 0) * self.value[i] / p.leverage
        for i, notional_lots_px in (open_orders or {}).items():
            im += notional_lots_px * self.value[i] / self.pos(i).leverage
        return im

    def available(self, marks: dict[int, int], open_orders: dict[int, int] | None = None) -> float:
        return self.margin_balance(marks) - self.initial_margin(marks, open_orders)

    def maintenance(self, marks: dict[int, int]) -> float:
        return sum(abs(p.qty) * marks.get(i, 0) * self.value[i] * self.maint_rate for i, p in self.positions.items())

    def liquidate_if_needed(self, marks: dict[int, int]) -> list[tuple[int, int, int]]:
        """If margin balance <= maintenance margin, close everything at the mark.
        Returns [(inst, closed qty (signed), mark)]."""
        if not any(p.qty for p in self.positions.values()):
            return []
        if self.margin_balance(marks) > self.maintenance(marks):
            return []
        closed = []
        for i, p in self.positions.items():
            if p.qty:
                mark = marks.get(i, 0)
                q = p.qty
                notional = abs(q) * mark * self.value[i]
                self.on_fill(i, schema.SIDE_SELL if q > 0 else schema.SIDE_BUY, mark, abs(q), maker=False)
                self.balance -= notional * self.liq_fee
                closed.append((i, q, mark))
        self.liquidations += 1
        return closed

    def apply_funding(self, inst: int, mark: int, rate: float) -> float:
        """Funding payment of one instrument (positive = paid by us)."""
        p = self.positions.get(inst)
        if not p or p.qty == 0:
            return 0.0
        pay = p.qty * mark * self.value[inst] * rate
        self.balance -= pay
        self.funding_paid += pay
        return pay
