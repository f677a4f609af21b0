"""The brain: per instrument, book top and features -> regime -> ensemble (optional) ->
strategy -> intents, stage-stamped. No I/O and no clock reads beyond the stage stamps
(CLOCK_MONOTONIC): market time comes from the records.

One component for every topology: the brain process (``processes/brain.py``, 3proc)
calls ``on_message`` from the market ring and publishes the intents to the intent ring; the
fused engine (fused, 2proc) runs the same strategies, regimes and models through
``cext.hotpath.DecisionPath`` (the same steps compiled into one call with the gate and the
order write; ``--hot-path python`` calls ``on_state`` here instead).
"""
from __future__ import annotations

import time

from cext.book import top_fields
from cext.records import message_times, stamp_orders
from engine import schema
from engine.features.regime import NAMES as REGIMES, OnlineRegime

SCORE_SAMPLE_NS = 100_000_000     # the ensemble's LSTM window takes one row per 100 ms


class Brain:
    def __init__(self, instruments, *, quote_lots: int, max_inventory_lots: int, client_id_base: int,
                 model_dir: str | None = None, model_backend: str = "auto", on_event=None):
        from engine.strategies.market_making import MarketMaker
        self.symbols = {i.inst: i.symbol for i in instruments}
        self.strategies = {i.inst: MarketMaker(i.inst, float(i.tick_size), quote_lots=quote_lots,
                                               max_inventory_lots=max_inventory_lots, client_id_base=client_id_base)
                           for i in instruments}
        self.regimes = {i.inst: OnlineRegime() for i in instruments}
        self.registry = None
        self.models = {}
        self.model_backend = model_backend
        self.on_event = on_event or (lambda ev: None)
        if model_dir:
            from engine.models.registry import ModelRegistry
            self.registry = ModelRegistry(model_dir)
            self.models = {i.inst: self._loaded(self.registry.load(backend=model_backend)) for i in instruments}
        self.features = {}               # inst -> the FeatureEngine of its last message (rehearse)
        self.last = {}                   # inst -> (ts, bb, ba, valid, signal) of its last message (rehearse)
        self.next_sample = {i.inst: 0 for i in instruments}
        # the last message's outcome, for the caller's risk side and stage metrics
        self.mid = 0                     # book mid (ticks) when the book was valid, else 0
        self.origin = self.t_feat = self.t_inf = self.t_str = 0     # origin: the message's frame read
        self.scored = False              # the ensemble ran on the last message

    def on_message(self, inst: int, records, fe, top) -> list:
        """One exchange message (its market records, the instrument's FeatureEngine already
        updated, the book top): the strategy's intents, each stamped with the message's
        origin and the brain's stages."""
        origin, ts = message_times(records)
        return self.on_state(inst, origin, ts, fe, *top_fields(top))

    def on_state(self, inst: int, origin: int, ts: int, fe, bb: int, ba: int, flags: int, t_book: int,
                 t_parse: int = 0) -> list:
        """``on_message`` for the instrument's current state: ``origin`` the frame read time
        (CLOCK_MONOTONIC ns) of the last message in it, ``ts`` that message's exchange time,
        the book top's best bid and ask (ticks), flags and publication time (``top_fields``);
        ``t_parse`` the frame's parsed stamp where the caller has one (the fused engine)."""
        self.t_feat = t_feat = time.monotonic_ns()
        valid = not (flags & schema.F_BOOK_INVALID) and bb > 0 and ba > bb
        self.origin = origin
        self.mid = 0
        if valid:
            self.mid = (bb + ba) // 2
            changed = self.regimes[inst].on_mid(ts, float(self.mid))
            if changed is not None:
                self.regime_changed(inst, changed)
        signal_ = 0.0
        rt = self.models.get(inst)
        self.features[inst] = fe
        self.scored = rt is not None and fe.all_ready
        if self.scored:
            commit = t_feat >= self.next_sample[inst]
            if commit:
                self.next_sample[inst] = t_feat + SCORE_SAMPLE_NS
            p = rt.predict(fe.out, commit)
            signal_ = p.item(2) - p.item(0)      # Python floats: numpy scalar arithmetic costs ~0.5 us
        self.t_inf = t_inf = time.monotonic_ns()
        self.last[inst] = (ts, bb, ba, valid, signal_)
        intents = self.strategies[inst].on_market(ts, bb, ba, fe.out, fe.ready, valid, signal_)
        self.t_str = t_str = time.monotonic_ns()
        if intents:
            stamp_orders(intents, origin, t_book, t_feat, t_inf, t_str, t_parse)
        return intents

    def regime_changed(self, inst: int, regime: int) -> None:
        """The instrument's regime changed: journaled, and the model's weights follow it."""
        self.on_event({"event": "regime", "symbol": self.symbols[inst], "regime": REGIMES[regime]})
        if inst in self.models:
            self.models[inst].set_regime(regime)

    def rehearse(self) -> None:
        """Between messages in a busy-polling engine: each model run on its instrument's
        current features and each strategy on its last market, results thrown away and
        nothing changed (EnsembleRuntime.rehearse, MarketMaker.rehearse), so that the next
        message finds their code and data in the caches."""
        for inst, rt in self.models.items():
            fe = self.features.get(inst)
            if fe is not None and fe.all_ready:
                rt.rehearse(fe.out)
        for inst, (ts, bb, ba, valid, signal_) in self.last.items():
            fe = self.features[inst]
            self.strategies[inst].rehearse(ts, bb, ba, fe.out, fe.ready, valid, signal_)

    def _loaded(self, rt):
        rt.rehearse(times=200)           # ORT's first runs allocate: not on the first scored message
        self.on_event({"event": "model_loaded", "version": rt.version, "backend": rt.backend,
                       "note": rt.backend_note, "native_max_diff": None if rt.native_diff is None
                       else max(rt.native_diff.values())})
        return rt

    def on_exec(self, e) -> None:
        s = self.strategies.get(int(e["inst"]))
        if s is not None:
            s.on_exec(e)

    def set_inventory(self, inst: int, lots: int) -> None:
        """The position as the risk side knows it (the venue's after a recovery)."""
        self.strategies[inst].inventory = int(lots)

    # ------------------------------------------------------------------ models
    def model_versions(self) -> dict:
        return {self.symbols[i]: rt.version for i, rt in self.models.items()}

    def reload_model(self) -> dict:
        """The registry's current version, verified, for every instrument; the old runtime
        serves until the new one loaded."""
        if self.registry is None:
            raise ValueError("no model: the engine runs rule-based (start it with --model DIR)")
        for inst in list(self.models):
            rt = self._loaded(self.registry.load(backend=self.model_backend))
            rt.set_regime(self.models[inst].regime)
            self.models[inst] = rt
        out = self.model_versions()
        self.on_event({"event": "model_reload", "versions": out})
        return out

    def rollback_model(self) -> dict:
        if self.registry is None:
            raise ValueError("no model: the engine runs rule-based (start it with --model DIR)")
        rec = self.registry.rollback(reason="admin")
        return {"rollback": rec, "versions": self.reload_model()}
