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

from dataclasses import dataclass, field

import numpy as np

from cext.backtest import EventLoop
from cext.matching import MatchingEngine
from cext.risk import RiskGate, RiskState
from cext.strategies import CompiledStrategy
from engine.accounting import apply_fill
from engine.features.regime import NAMES as REGIMES, SEVERITY, OnlineRegime
from engine.features.vector import FeatureEngine
from engine.risk.limits import RiskLimits
from engine.risk.positions import PositionBook


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
        # Python per message only where a Python component needs it: the strategy (its
        # features), the model, the regime detector; a compiled strategy alone runs in C.
        self._tables = tables
        self._feat_on = [not isinstance(s, CompiledStrategy) or m is not None
                         for s, m in zip(self.strategies, self.models)]
        hooks = [f or r is not None for f, r in zip(self._feat_on, self.regimes)]
        self._trades, self._sbooks, self._funding_paid, self._regime_changes = [], {}, [], []
        self._model_calls, self._signal_sum = 0, 0.0
        self._next_sample = [0] * len(self.ins)
        lat = self.latency
        loop = EventLoop(self, self.engine, self.gate, self.state, self.book, list(self.strategies),
                         list(self.features), list(tables), [i.inst for i in self.ins],
                         [self.value[i.inst] for i in self.ins], hooks, feed_ns=lat.feed_ns,
                         order_ns=lat.order_ns, ack_ns=lat.ack_ns,
                         order_drawn=lat.order_samples is not None and len(lat.order_samples) > 0,
                         maker_fee=self.maker_fee, taker_fee=self.taker_fee,
                         funding_rates=[self.funding_rate] * len(self.ins))
        loop.run()
        rej_layers = {(RiskGate.reason_name(r) if isinstance(r, int) else r): c for r, c in loop.reject_reasons.items()}
        per = loop.per_instrument()
        equity = list(zip(loop.equity_t, loop.equity_v))
        return self._result(tables, self._trades, equity, self._sbooks, loop.orders_sent, loop.rejects, rej_layers,
                            loop.events, self._model_calls, self._signal_sum, self._funding_paid, [p[0] for p in per],
                            [p[1] for p in per], [p[2] for p in per], self._regime_changes)

    # ---- what the event loop calls back (Python components, rare events)
    def _local(self, k: int, i: int, t: int, valid: bool, mid: int) -> float:
        """Features, regime and model for message i of table k at local time t: the signal."""
        fe = self.features[k]
        if self._feat_on[k]:
            tab = self._tables[k]
            s, e = int(tab["starts"][i]), int(tab["ends"][i])
            fe.on_message(tab["recs"][s:e], tab["tops"][i:i + 1])
        reg = self.regimes[k]
        if valid and reg is not None:
            changed = reg.on_mid(t, float(mid))
            if changed is not None:
                self._apply_regime(k, changed)
                self._regime_changes.append({"time_ns": t, "symbol": self.ins[k].symbol, "regime": REGIMES[changed]})
        rt = self.models[k]
        if rt is None or not fe.all_ready:
            return 0.0
        commit = t >= self._next_sample[k]
        if commit:
            self._next_sample[k] = (t // self.sample_ns + 1) * self.sample_ns
        p = rt.predict(fe.out, commit)
        signal = p.item(2) - p.item(0)          # as the live Brain computes it
        self._model_calls += 1
        self._signal_sum += signal
        return signal

    def _order_latency(self) -> int:
        return self.latency.order(self.rng)

    def _fill(self, k: int, t: int, owner: int, dq: int, px: int, fee: float, maker: bool, pos: int) -> None:
        inst = self.ins[k].inst
        sb = self._sbooks.get((owner, inst))
        if sb is None:
            sb = self._sbooks[(owner, inst)] = _StratBook(self.value[inst])
        sb.fill(dq, px, fee)
        self._trades.append({"time_ns": t, "symbol": self.ins[k].symbol,
                             "strategy": self.owner_name.get(owner, str(owner)), "side": "BUY" if dq > 0 else "SELL",
                             "price": self.ins[k].ticks_to_price(px), "qty": self.ins[k].lots_to_qty(abs(dq)),
                             "fee": round(fee, 8), "liquidity": "maker" if maker else "taker", "position_lots": pos})

    def _funding(self, k: int, due: int, rate: float, mid: int) -> None:
        inst = self.ins[k].inst
        amount = self.book.on_funding(inst, rate, mid)
        for (owner, ii), sb in self._sbooks.items():
            if ii == inst:
                sb.funding += -sb.qty * mid * sb.v * rate
        self._funding_paid.append({"time_ns": due, "symbol": self.ins[k].symbol, "rate": rate,
                                   "position_lots": self.book.positions[inst].qty, "amount": round(amount, 8)})

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
