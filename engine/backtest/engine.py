"""Backtester: one event loop over a recording, the same components as live.

Two clocks, one timeline (exchange time, ns):
- a market message is applied to the matching core at its exchange time t, and reaches
  our side at t + feed latency (then: features, strategy, risk gate);
- an accepted order reaches the exchange after the order latency, its execution reports
  reach us after the ack latency.
Latencies are constant or drawn (seeded) from a given sample of nanoseconds. Events at the
same time are processed in insertion order (a heap keyed by (time, sequence)), so the same
inputs and seed give the same results, byte for byte. Fees: maker/taker rates on each fill.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import numpy as np

from cext.matching import SUBMIT_POST_ONLY_REJECTED, MatchingEngine
from cext.risk import RiskGate, RiskState
from engine import schema
from engine.features.vector import FeatureEngine
from engine.risk.limits import RiskLimits
from engine.risk.positions import PositionBook

MKT_EXCH, MKT_LOCAL, ORDER_ARRIVE, EXEC_LOCAL = 0, 1, 2, 3


@dataclass
class LatencyModel:
    feed_ns: int = 5_000_000
    order_ns: int = 10_000_000
    ack_ns: int = 10_000_000
    order_samples: np.ndarray | None = None     # if given: order latency drawn from these (ns)

    def order(self, rng: np.random.Generator) -> int:
        if self.order_samples is not None and len(self.order_samples):
            return int(self.order_samples[rng.integers(0, len(self.order_samples))])
        return self.order_ns


@dataclass
class BacktestResult:
    summary: dict
    trades: list[dict]
    equity: np.ndarray            # (time ns, equity) samples
    rejects: dict = field(default_factory=dict)


class Backtester:
    def __init__(self, instrument, strategy, *, equity: float = 100_000.0, limits: RiskLimits | None = None,
                 latency: LatencyModel | None = None, seed: int = 0, maker_fee: float = 0.0002,
                 taker_fee: float = 0.0005, daily_vol: float = 0.03):
        self.ins = instrument
        self.strategy = strategy
        self.latency = latency or LatencyModel()
        self.rng = np.random.default_rng(seed)
        self.maker_fee, self.taker_fee = maker_fee, taker_fee
        self.value = float(instrument.tick_size * instrument.lot_size)
        self.engine = MatchingEngine(instrument.inst + 1)
        self.state = RiskState(instrument.inst + 1)
        self.state.equity = self.state.peak_equity = self.state.day_start_equity = equity
        self.state.configure(instrument.inst, tick_size=float(instrument.tick_size), lot_size=float(instrument.lot_size),
                             min_qty_lots=instrument.min_qty_lots, max_qty_lots=instrument.max_qty_lots,
                             min_notional=float(instrument.min_notional), leverage=10.0)
        self.state.set_vol(instrument.inst, daily_vol)
        self.gate = RiskGate(limits or RiskLimits())
        self.book = PositionBook(self.state, balance=equity)
        self.book.add_instrument(instrument.inst, float(instrument.tick_size), float(instrument.lot_size))
        self.features = FeatureEngine(float(instrument.tick_size), float(instrument.lot_size))
        self.features.warmup()
        self.ref_of: dict[int, int] = {}       # cancel client id -> the order it cancels

    def run(self, table: dict) -> BacktestResult:
        recs, starts, ends, tops = table["recs"], table["starts"], table["ends"], table["tops"]
        times = np.maximum(recs["exch_ts"][np.maximum(ends - 1, 0)], tops["exch_ts"])
        heap: list = []
        seq = 0
        for i in range(len(starts)):
            heapq.heappush(heap, (int(times[i]), seq, MKT_EXCH, i))
            seq += 1
            heapq.heappush(heap, (int(times[i]) + self.latency.feed_ns, seq, MKT_LOCAL, i))
            seq += 1
        trades: list[dict] = []
        equity: list[tuple[int, float]] = []
        orders_sent = rejects = 0
        rej_layers: dict[str, int] = {}
        last_sample = 0
        inst = self.ins.inst
        while heap:
            t, _, kind, payload = heapq.heappop(heap)
            if kind == MKT_EXCH:
                self.engine.on_market(recs[starts[payload]:ends[payload]])
                for e in self.engine.drain():
                    heapq.heappush(heap, (t + self.latency.ack_ns, seq, EXEC_LOCAL, e))
                    seq += 1
            elif kind == MKT_LOCAL:
                i = payload
                top = tops[i:i + 1]
                fe = self.features
                fe.on_message(recs[starts[i]:ends[i]], top)
                bb, ba = int(top["bid_px"][0, 0]), int(top["ask_px"][0, 0])
                valid = not (int(top["flags"][0]) & schema.F_BOOK_INVALID) and bb > 0 and ba > bb
                if valid:
                    mid = (bb + ba) // 2
                    self.state.set_market(inst, mark_px=mid, mark_ns=t, data_ns=t, book_valid=True)
                    self.book.on_mark(inst, mid)
                for it in self.strategy.on_market(t, bb, ba, fe.out, fe.ready, valid):
                    it["mono_origin"] = t
                    ok, res = self.gate.check(it, self.state, t)
                    if not ok:
                        rejects += 1
                        name = RiskGate.reason_name(int(res["reason"][0]))
                        rej_layers[name] = rej_layers.get(name, 0) + 1
                        e = np.zeros(1, schema.EXEC_DTYPE)[0]
                        e["kind"], e["client_id"], e["inst"] = schema.EX_REJECT, it["client_id"][0], inst
                        self.strategy.on_exec(e)
                        continue
                    order = res.copy()
                    self.book.on_order_sent(order[0])
                    orders_sent += 1
                    heapq.heappush(heap, (t + self.latency.order(self.rng), seq, ORDER_ARRIVE, order[0]))
                    seq += 1
                if t - last_sample >= 1_000_000_000:
                    last_sample = t
                    equity.append((t, self.book.equity()))
            elif kind == ORDER_ARRIVE:
                o = payload
                if int(o["action"]) == schema.ACT_NEW:
                    r = self.engine.submit(int(o["client_id"]), int(o["client_id"]), inst, int(o["side"]),
                                           int(o["otype"]), int(o["px"]), int(o["qty"]), int(o["flags"]), t)
                    if r == SUBMIT_POST_ONLY_REJECTED:
                        e = np.zeros(1, schema.EXEC_DTYPE)[0]
                        e["kind"], e["client_id"], e["inst"], e["side"], e["reason"] = \
                            schema.EX_REJECT, o["client_id"], inst, o["side"], -5022
                        heapq.heappush(heap, (t + self.latency.ack_ns, seq, EXEC_LOCAL, e))
                        seq += 1
                elif int(o["action"]) == schema.ACT_CANCEL:
                    self.engine.cancel(int(o["ref_client_id"]), t)
                for e in self.engine.drain():
                    heapq.heappush(heap, (t + self.latency.ack_ns, seq, EXEC_LOCAL, e))
                    seq += 1
            else:
                e = payload.copy()
                if int(e["kind"]) in (schema.EX_PARTIAL, schema.EX_FILL):
                    maker = int(e["liquidity"]) == schema.LIQ_MAKER
                    e["fee"] = int(e["px"]) * int(e["qty"]) * self.value * (self.maker_fee if maker else self.taker_fee)
                    self.book.on_exec(e)
                    trades.append({"time_ns": t, "side": "BUY" if int(e["side"]) == schema.SIDE_BUY else "SELL",
                                   "price": self.ins.ticks_to_price(int(e["px"])), "qty": self.ins.lots_to_qty(int(e["qty"])),
                                   "fee": round(float(e["fee"]), 8), "liquidity": "maker" if maker else "taker",
                                   "position_lots": self.book.positions[inst].qty})
                else:
                    self.book.on_exec(e)
                self.strategy.on_exec(e)
        eq = np.array(equity, dtype=np.float64).reshape(-1, 2)
        pos = self.book.positions[inst]
        summary = {"messages": int(len(starts)), "orders_sent": orders_sent, "risk_rejects": rejects,
                   "fills": len(trades), "maker_fills": sum(1 for x in trades if x["liquidity"] == "maker"),
                   "final_position_lots": pos.qty, "realized_pnl": round(pos.realized, 8),
                   "fees": round(pos.fees, 8), "unrealized_pnl": round(self.book.unrealized(inst), 8),
                   "equity_end": round(self.book.equity(), 8),
                   "quotes_sent": getattr(self.strategy, "quotes_sent", None),
                   "cancels_sent": getattr(self.strategy, "cancels_sent", None),
                   "latency_ns": {"feed": self.latency.feed_ns, "order": self.latency.order_ns, "ack": self.latency.ack_ns}}
        return BacktestResult(summary, trades, eq, rej_layers)
