"""Backtester: one event loop over recordings of one or more instruments, the same
components as live (feature engine, model runtime, regime detector, strategies, risk gate,
position book) wired to the sim's matching core.

Two clocks, one timeline (exchange time, ns):
- a market message is applied to the matching core at its exchange time t, and reaches
  our side at t + feed latency (then: features, regime, model, strategy, risk gate);
- an accepted order reaches the exchange after the order latency, its execution reports
  reach us after the ack latency.
Latencies are constant or drawn (seeded) from a given sample of nanoseconds. Events at the
same time are processed in insertion order (a heap keyed by (time, sequence)), so the same
inputs and seed give the same results, byte for byte.

Money: maker/taker fees on each fill; funding at 00:00, 08:00 and 16:00 UTC (exchange
time) on the position held, at the rate last recorded for the instrument (markPrice /
funding records) or ``funding_rate`` when the recording has none, at the current mid.

Model: with ``model`` (a function returning a fresh ``EnsembleRuntime``, one per
instrument: the LSTM state is per instrument) the ensemble scores every message whose 25
features are ready; the LSTM state advances on the training's sample clock (``sample_ms``,
100 ms), in between it scores without committing. The strategy gets
``signal = p(up) - p(down)``. Regime: ``regime="auto"`` detects it per instrument from
1-minute mid closes as they complete (``OnlineRegime``, optionally seeded with earlier
closes); the switcher, the model's weights and the risk gate's regime profile follow it
(the gate uses the most severe regime across instruments). A fixed regime name pins it.

Per strategy (client-id ranges, ``client_id >> 40``): its own position, realised PnL,
fees, funding and round trips (flat -> flat, or through zero) for win rate, profit factor
and the bootstrap interval (``engine.backtest.report``).
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import numpy as np

from cext.matching import SUBMIT_POST_ONLY_REJECTED, MatchingEngine
from cext.risk import RiskGate, RiskState
from engine import schema
from engine.accounting import apply_fill
from engine.features.regime import NAMES as REGIMES, SEVERITY, OnlineRegime
from engine.features.vector import FeatureEngine
from engine.risk.limits import RiskLimits
from engine.risk.positions import PositionBook

MKT_EXCH, MKT_LOCAL, ORDER_ARRIVE, EXEC_LOCAL = 0, 1, 2, 3
FUNDING_PERIOD_NS = 8 * 3600 * 1_000_000_000
EQUITY_GRID_NS = 1_000_000_000


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
    equity: np.ndarray            # (time ns, equity) on a 1-s grid
    rejects: dict = field(default_factory=dict)
    round_trips: dict = field(default_factory=dict)     # strategy -> [net PnL of each round trip]


class _StratBook:
    """One strategy's position on one instrument, and its round trips."""

    __slots__ = ("qty", "avg", "realized", "fees", "funding", "fills", "turnover", "trip_start", "trips", "v")

    def __init__(self, value_per_tick_lot: float):
        self.v = value_per_tick_lot
        self.qty, self.avg, self.realized, self.fees, self.funding = 0, 0.0, 0.0, 0.0, 0.0
        self.fills, self.turnover = 0, 0.0
        self.trip_start = 0.0          # realized - fees + funding when the current trip began
        self.trips: list[float] = []

    def net(self) -> float:
        return self.realized - self.fees + self.funding

    def fill(self, dq: int, px: int, fee: float) -> None:
        before = self.qty
        if before == 0:
            self.trip_start = self.net()
        self.qty, self.avg, realized, _ = apply_fill(self.qty, self.avg, dq, px, self.v)
        self.realized += realized
        self.fees += fee
        self.fills += 1
        self.turnover += abs(dq) * px * self.v
        if before != 0 and (self.qty == 0 or (before > 0) != (self.qty > 0)):
            self.trips.append(self.net() - self.trip_start)
            self.trip_start = self.net()


class Backtester:
    def __init__(self, instruments, strategies, *, equity: float = 100_000.0, limits: RiskLimits | None = None,
                 latency: LatencyModel | None = None, seed: int = 0, maker_fee: float = 0.0002,
                 taker_fee: float = 0.0005, daily_vol: float = 0.03, model=None, sample_ms: int = 100,
                 regime: str = "auto", regime_history=None, funding_rate: float = 0.0001,
                 cancel_ahead_frac: float = 0.5, correlation=None):
        if not isinstance(instruments, (list, tuple)):
            instruments, strategies = [instruments], [strategies]
        if len(instruments) != len(strategies) or not instruments:
            raise ValueError("one strategy per instrument")
        self.ins = list(instruments)
        self.strategies = list(strategies)
        self.latency = latency or LatencyModel()
        self.rng = np.random.default_rng(seed)
        self.maker_fee, self.taker_fee = maker_fee, taker_fee
        self.funding_rate = funding_rate
        n_inst = max(i.inst for i in self.ins) + 1
        self.value = {i.inst: float(i.tick_size * i.lot_size) for i in self.ins}
        # queue model: the share of a level's non-trade shrinkage assumed ahead of us (0 = only
        # trades move us up, the cautious model)
        self.engine = MatchingEngine(n_inst, cancel_ahead_frac=cancel_ahead_frac)
        self.state = RiskState(n_inst)
        self.state.equity = self.state.peak_equity = self.state.day_start_equity = equity
        self.gate = RiskGate(limits or RiskLimits())
        self.book = PositionBook(self.state, balance=equity)
        self.features, self.models, self.regimes = [], [], []
        for ins in self.ins:
            self.state.configure(ins.inst, tick_size=float(ins.tick_size), lot_size=float(ins.lot_size),
                                 min_qty_lots=ins.min_qty_lots, max_qty_lots=ins.max_qty_lots,
                                 min_notional=float(ins.min_notional), leverage=10.0)
            self.state.set_vol(ins.inst, daily_vol)
            self.book.add_instrument(ins.inst, float(ins.tick_size), float(ins.lot_size))
            fe = FeatureEngine(float(ins.tick_size), float(ins.lot_size))
            fe.warmup()
            self.features.append(fe)
            self.models.append(model() if model is not None else None)
            self.regimes.append(OnlineRegime(regime_history) if regime == "auto" else None)
        if correlation is not None:
            # the gate's correlation layer; unknown pairs (NaN, the default) fail closed there
            c = np.full((n_inst, n_inst), np.nan)
            np.fill_diagonal(c, 1.0)
            ids = [i.inst for i in self.ins]
            cm = np.asarray(correlation, np.float64)
            if cm.shape != (len(ids), len(ids)):
                raise ValueError(f"correlation: a {len(ids)} x {len(ids)} matrix, in instrument order")
            for a, ia in enumerate(ids):
                for b, ib in enumerate(ids):
                    c[ia, ib] = cm[a, b]
            self.state.set_correlation(c.tolist())
        self.fixed_regime = None
        if regime != "auto":
            if regime not in REGIMES:
                raise ValueError(f"regime {regime!r}: 'auto' or one of {', '.join(REGIMES)}")
            self.fixed_regime = REGIMES.index(regime)
            for k in range(len(self.ins)):
                self._apply_regime(k, self.fixed_regime)
        self.sample_ns = int(sample_ms) * 1_000_000
        self.owner_name = {s.owner: type(s).__name__ for s in self._leaf_strategies()}

    def _leaf_strategies(self):
        for s in self.strategies:
            yield from (s.strategies.values() if hasattr(s, "strategies") else [s])

    def _apply_regime(self, k: int, r: int) -> None:
        s = self.strategies[k]
        if hasattr(s, "set_regime"):
            s.set_regime(r)
        if self.models[k] is not None:
            self.models[k].set_regime(r)
        rs = [x.regime for x in self.regimes if x is not None] or [r]
        self.state.regime = max(rs, key=lambda g: SEVERITY[g]) if self.fixed_regime is None else r

    # ------------------------------------------------------------------ the loop
    def run(self, tables) -> BacktestResult:
        if isinstance(tables, dict):
            tables = [tables]
        if len(tables) != len(self.ins):
            raise ValueError(f"{len(tables)} tables for {len(self.ins)} instruments")
        # Market events of all instruments, in (time, sequence) order, merged below with the
        # heap of order and execution events (those always carry a later sequence number, so
        # a market event goes first at equal time: the order a single heap would give).
        mt, mseq, mkind, mk, mi = [], [], [], [], []
        per = []                                  # per table: python lists for the hot loop
        events = 0
        seq = 0
        feed = self.latency.feed_ns
        for k, tab in enumerate(tables):
            recs, starts, ends, tops = tab["recs"], tab["starts"], tab["ends"], tab["tops"]
            kinds = recs["kind"]
            events += int(np.count_nonzero((kinds == schema.MK_DEPTH) | (kinds == schema.MK_TRADE)))
            n = len(starts)
            times = np.maximum(recs["exch_ts"][np.maximum(ends - 1, 0)], tops["exch_ts"]).astype(np.int64)
            idx = np.arange(n)
            mt += [times, times + feed]
            mseq += [seq + 2 * idx, seq + 2 * idx + 1]
            mkind += [np.full(n, MKT_EXCH), np.full(n, MKT_LOCAL)]
            mk += [np.full(n, k), np.full(n, k)]
            mi += [idx, idx]
            seq += 2 * n
            rate_rec = ((kinds == schema.MK_MARK) | (kinds == schema.MK_FUNDING)).astype(np.int64)
            cs = np.concatenate([[0], np.cumsum(rate_rec)])
            per.append({"starts": starts.tolist(), "ends": ends.tolist(),
                        "has_rate": (cs[ends] - cs[starts] > 0).tolist(),
                        "bid": tops["bid_px"][:, 0].tolist(), "ask": tops["ask_px"][:, 0].tolist(),
                        "invalid": ((tops["flags"] & schema.F_BOOK_INVALID) != 0).tolist()})
        T = np.concatenate(mt) if mt else np.zeros(0, np.int64)
        order = np.lexsort((np.concatenate(mseq), T)) if mt else np.zeros(0, np.int64)
        m_t = T[order].tolist()
        m_kind = np.concatenate(mkind)[order].tolist() if mt else []
        m_k = np.concatenate(mk)[order].tolist() if mt else []
        m_i = np.concatenate(mi)[order].tolist() if mt else []
        n_market = len(m_t)
        heap: list = []
        heappush, heappop = heapq.heappush, heapq.heappop
        trades: list[dict] = []
        equity: list[tuple[int, float]] = []
        sbooks: dict[tuple[int, int], _StratBook] = {}
        orders_sent = rejects = model_calls = 0
        signal_sum = 0.0
        rej_layers: dict[str, int] = {}
        funding_paid: list[dict] = []
        nk = len(self.ins)
        next_sample = [0] * nk
        funding_rate = [self.funding_rate] * nk
        next_funding = [None] * nk
        mid_of = [0] * nk
        inv_area = [0.0] * nk               # integral of |position| dt (lots x s)
        inv_max = [0] * nk
        last_t = [None] * nk
        next_grid = None
        regime_changes: list[dict] = []
        ack = self.latency.ack_ns
        t = 0
        m = 0
        while m < n_market or heap:
            if m < n_market and (not heap or m_t[m] <= heap[0][0]):
                t, kind, k, i = m_t[m], m_kind[m], m_k[m], m_i[m]
                m += 1
            else:
                t, _, kind, payload = heappop(heap)
            if next_grid is None:
                next_grid = (t // EQUITY_GRID_NS + 1) * EQUITY_GRID_NS
            while t >= next_grid:
                equity.append((next_grid, self.book.equity()))
                next_grid += EQUITY_GRID_NS
            if kind == MKT_EXCH:
                pk = per[k]
                r = tables[k]["recs"][pk["starts"][i]:pk["ends"][i]]
                self.engine.on_market(r)
                for e in self.engine.drain():
                    heappush(heap, (t + ack, seq, EXEC_LOCAL, e))
                    seq += 1
                if pk["has_rate"][i]:
                    kinds = r["kind"]
                    rr = r[(kinds == schema.MK_MARK) | (kinds == schema.MK_FUNDING)]
                    funding_rate[k] = float(rr["aux2"][-1]) / 1e9
                if next_funding[k] is None:
                    next_funding[k] = (t // FUNDING_PERIOD_NS + 1) * FUNDING_PERIOD_NS
                if t >= next_funding[k] and mid_of[k] > 0:
                    inst = self.ins[k].inst
                    amount = self.book.on_funding(inst, funding_rate[k], mid_of[k])
                    for (owner, ii), sb in sbooks.items():
                        if ii == inst:
                            sb.funding += -sb.qty * mid_of[k] * sb.v * funding_rate[k]
                    funding_paid.append({"time_ns": next_funding[k], "symbol": self.ins[k].symbol,
                                         "rate": funding_rate[k], "position_lots": self.book.positions[inst].qty,
                                         "amount": round(amount, 8)})
                    next_funding[k] += FUNDING_PERIOD_NS
            elif kind == MKT_LOCAL:
                ins = self.ins[k]
                inst = ins.inst
                tab = tables[k]
                pk = per[k]
                fe = self.features[k]
                fe.on_message(tab["recs"][pk["starts"][i]:pk["ends"][i]], tab["tops"][i:i + 1])
                bb, ba = pk["bid"][i], pk["ask"][i]
                valid = not pk["invalid"][i] and bb > 0 and ba > bb
                q = self.book.positions[inst].qty
                if last_t[k] is not None:
                    inv_area[k] += abs(q) * (t - last_t[k]) / 1e9
                last_t[k] = t
                if valid:
                    mid = (bb + ba) // 2
                    mid_of[k] = mid
                    self.state.set_market(inst, mark_px=mid, mark_ns=t, data_ns=t, book_valid=True)
                    self.book.on_mark(inst, mid)
                    reg = self.regimes[k]
                    if reg is not None:
                        changed = reg.on_mid(t, float(mid))
                        if changed is not None:
                            self._apply_regime(k, changed)
                            regime_changes.append({"time_ns": t, "symbol": ins.symbol, "regime": REGIMES[changed]})
                signal = 0.0
                rt = self.models[k]
                if rt is not None and fe.all_ready:
                    commit = t >= next_sample[k]
                    if commit:
                        next_sample[k] = (t // self.sample_ns + 1) * self.sample_ns
                    p = rt.predict(fe.out, commit)
                    signal = float(p[2] - p[0])
                    model_calls += 1
                    signal_sum += signal
                for it in self.strategies[k].on_market(t, bb, ba, fe.out, fe.ready, valid, signal):
                    it["mono_origin"] = t
                    ok, res = self.gate.check(it, self.state, t)
                    if not ok:
                        rejects += 1
                        name = RiskGate.reason_name(int(res["reason"][0]))
                        rej_layers[name] = rej_layers.get(name, 0) + 1
                        e = np.zeros(1, schema.EXEC_DTYPE)[0]
                        e["kind"], e["client_id"], e["inst"] = schema.EX_REJECT, it["client_id"][0], inst
                        self.strategies[k].on_exec(e)
                        continue
                    order = res.copy()
                    self.book.on_order_sent(order[0])
                    orders_sent += 1
                    heappush(heap, (t + self.latency.order(self.rng), seq, ORDER_ARRIVE, (k, order[0])))
                    seq += 1
            elif kind == ORDER_ARRIVE:
                k, o = payload
                inst = self.ins[k].inst
                if int(o["action"]) == schema.ACT_NEW:
                    res = self.engine.submit(int(o["client_id"]), int(o["client_id"]), inst, int(o["side"]),
                                             int(o["otype"]), int(o["px"]), int(o["qty"]), int(o["flags"]), t)
                    if res == SUBMIT_POST_ONLY_REJECTED:
                        e = np.zeros(1, schema.EXEC_DTYPE)[0]
                        e["kind"], e["client_id"], e["inst"], e["side"], e["reason"] = \
                            schema.EX_REJECT, o["client_id"], inst, o["side"], -5022
                        heappush(heap, (t + ack, seq, EXEC_LOCAL, e))
                        seq += 1
                elif int(o["action"]) == schema.ACT_CANCEL:
                    self.engine.cancel(int(o["ref_client_id"]), t)
                for e in self.engine.drain():
                    heappush(heap, (t + ack, seq, EXEC_LOCAL, e))
                    seq += 1
            else:
                e = payload.copy()
                inst = int(e["inst"])
                k = next(j for j, x in enumerate(self.ins) if x.inst == inst)
                if int(e["kind"]) in (schema.EX_PARTIAL, schema.EX_FILL):
                    maker = int(e["liquidity"]) == schema.LIQ_MAKER
                    px, qty = int(e["px"]), int(e["qty"])
                    e["fee"] = px * qty * self.value[inst] * (self.maker_fee if maker else self.taker_fee)
                    if last_t[k] is not None:
                        inv_area[k] += abs(self.book.positions[inst].qty) * (t - last_t[k]) / 1e9
                        last_t[k] = t
                    self.book.on_exec(e)
                    owner = int(e["client_id"]) >> 40
                    sb = sbooks.get((owner, inst))
                    if sb is None:
                        sb = sbooks[(owner, inst)] = _StratBook(self.value[inst])
                    dq = qty if int(e["side"]) == schema.SIDE_BUY else -qty
                    sb.fill(dq, px, float(e["fee"]))
                    pos = self.book.positions[inst].qty
                    inv_max[k] = max(inv_max[k], abs(pos))
                    trades.append({"time_ns": t, "symbol": self.ins[k].symbol,
                                   "strategy": self.owner_name.get(owner, str(owner)),
                                   "side": "BUY" if dq > 0 else "SELL",
                                   "price": self.ins[k].ticks_to_price(px), "qty": self.ins[k].lots_to_qty(qty),
                                   "fee": round(float(e["fee"]), 8), "liquidity": "maker" if maker else "taker",
                                   "position_lots": pos})
                else:
                    self.book.on_exec(e)
                self.strategies[k].on_exec(e)
        if next_grid is not None:
            equity.append((next_grid, self.book.equity()))
        return self._result(tables, trades, equity, sbooks, orders_sent, rejects, rej_layers, events, model_calls,
                            signal_sum, funding_paid, inv_area, inv_max, last_t, regime_changes)

    # ------------------------------------------------------------------ results
    def _result(self, tables, trades, equity, sbooks, orders_sent, rejects, rej_layers, events, model_calls,
                signal_sum, funding_paid, inv_area, inv_max, last_t, regime_changes) -> BacktestResult:
        per_inst = {}
        span = {}
        for k, ins in enumerate(self.ins):
            p = self.book.positions[ins.inst]
            recs = tables[k]["recs"]
            t0 = int(recs["exch_ts"].min()) if len(recs) else 0
            span[ins.symbol] = ((last_t[k] or t0) - t0) / 1e9
            mid = p.mark_px * float(ins.tick_size)
            per_inst[ins.symbol] = {
                "messages": int(len(tables[k]["starts"])), "final_position_lots": p.qty,
                "realized_pnl": round(p.realized, 8), "fees": round(p.fees, 8), "funding": round(p.funding, 8),
                "unrealized_pnl": round(self.book.unrealized(ins.inst), 8), "fills": p.fills,
                "inventory_max_lots": inv_max[k],
                "inventory_mean_abs_lots": round(inv_area[k] / span[ins.symbol], 6) if span[ins.symbol] > 0 else 0.0,
                "inventory_mean_abs_notional": round(inv_area[k] / span[ins.symbol] * float(ins.lot_size) * mid, 6)
                if span[ins.symbol] > 0 else 0.0}
        per_strat: dict[str, dict] = {}
        trips: dict[str, list] = {}
        for (owner, inst), sb in sorted(sbooks.items()):
            name = self.owner_name.get(owner, str(owner))
            unreal = 0.0
            mark = self.book.positions[inst].mark_px
            if sb.qty and mark > 0:
                unreal = (mark - sb.avg) * sb.qty * sb.v
            d = per_strat.setdefault(name, {"fills": 0, "realized_pnl": 0.0, "fees": 0.0, "funding": 0.0,
                                            "unrealized_pnl": 0.0, "turnover": 0.0})
            d["fills"] += sb.fills
            d["realized_pnl"] += sb.realized
            d["fees"] += sb.fees
            d["funding"] += sb.funding
            d["unrealized_pnl"] += unreal
            d["turnover"] += sb.turnover
            trips.setdefault(name, []).extend(sb.trips)
        for name, d in per_strat.items():
            d["net_pnl"] = d["realized_pnl"] - d["fees"] + d["funding"] + d["unrealized_pnl"]
            for key in list(d):
                if isinstance(d[key], float):
                    d[key] = round(d[key], 8)
        pos_total = self.book.positions
        summary = {
            "instruments": [i.symbol for i in self.ins], "messages": int(sum(len(t["starts"]) for t in tables)),
            "events": events, "orders_sent": orders_sent, "risk_rejects": rejects, "fills": len(trades),
            "maker_fills": sum(1 for x in trades if x["liquidity"] == "maker"),
            "final_position_lots": sum(p.qty for p in pos_total.values()) if len(self.ins) == 1 else None,
            "realized_pnl": round(sum(p.realized for p in pos_total.values()), 8),
            "fees": round(sum(p.fees for p in pos_total.values()), 8),
            "funding": round(sum(p.funding for p in pos_total.values()), 8),
            "unrealized_pnl": round(sum(self.book.unrealized(i) for i in pos_total), 8),
            "equity_start": round(self.book.balance, 8), "equity_end": round(self.book.equity(), 8),
            "turnover": round(sum(x["turnover"] for x in per_strat.values()), 8),
            "per_instrument": per_inst, "per_strategy": per_strat, "funding_events": funding_paid,
            "regime_changes": regime_changes,
            "regime": (REGIMES[self.fixed_regime] if self.fixed_regime is not None else "auto"),
            "model": {"calls": model_calls, "mean_signal": round(signal_sum / model_calls, 8) if model_calls else None,
                      "version": getattr(self.models[0], "version", None)} if self.models[0] is not None else None,
            "quotes_sent": sum(getattr(s, "quotes_sent", 0) or 0 for s in self._leaf_strategies()),
            "cancels_sent": sum(getattr(s, "cancels_sent", 0) or 0 for s in self._leaf_strategies()),
            "latency_ns": {"feed": self.latency.feed_ns, "order": self.latency.order_ns, "ack": self.latency.ack_ns,
                           "order_drawn_from_samples": self.latency.order_samples is not None}}
        eq = np.array(equity, dtype=np.float64).reshape(-1, 2)
        return BacktestResult(summary, trades, eq, rej_layers, trips)


def bootstrap_mean_ci(x, n: int = 10_000, level: float = 0.95, seed: int = 0):
    """Percentile bootstrap interval of the mean (None with fewer than 2 values)."""
    x = np.asarray(x, np.float64)
    if len(x) < 2:
        return None
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(n, len(x)))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return [float(lo), float(hi)]


def trade_stats(pnls, seed: int = 0) -> dict:
    """Win rate, profit factor, mean and its bootstrap 95% interval over round trips."""
    x = np.asarray(pnls, np.float64)
    if len(x) == 0:
        return {"round_trips": 0, "win_rate": None, "profit_factor": None, "mean": None, "mean_ci95": None}
    wins, losses = x[x > 0].sum(), -x[x < 0].sum()
    return {"round_trips": int(len(x)), "win_rate": round(float((x > 0).mean()), 6),
            "profit_factor": (round(float(wins / losses), 6) if losses > 0 else ("inf" if wins > 0 else None)),
            "mean": round(float(x.mean()), 8),
            "mean_ci95": [round(v, 8) for v in bootstrap_mean_ci(x, seed=seed)] if len(x) >= 2 else None}
