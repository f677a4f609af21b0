"""The brain: per instrument, book top and features -> regime -> ensemble (optional) ->
strategy -> intents, stage-stamped. No I/O and no clock reads beyond the stage stamps
(CLOCK_MONOTONIC): market time comes from the records.

One component for every topology: the fused engine calls ``on_message`` from the feed's
callback and gates the intents at once; the brain process (``processes/brain.py``, 3proc)
calls it from the market ring and publishes the intents to the intent ring.
"""
from __future__ import annotations

import time

from engine import schema
from engine.features.regime import NAMES as REGIMES, OnlineRegime

SCORE_SAMPLE_NS = 100_000_000     # the ensemble's LSTM window takes one row per 100 ms


class Brain:
    def __init__(self, instruments, *, quote_lots: int, max_inventory_lots: int, client_id_base: int,
                 model_dir: str | None = None, on_event=None):
        from engine.strategies.market_making import MarketMaker
        self.symbols = {i.inst: i.symbol for i in instruments}
        self.strategies = {i.inst: MarketMaker(i.inst, float(i.tick_size), quote_lots=quote_lots,
                                               max_inventory_lots=max_inventory_lots, client_id_base=client_id_base)
                           for i in instruments}
        self.regimes = {i.inst: OnlineRegime() for i in instruments}
        self.registry = None
        self.models = {}
        if model_dir:
            from engine.models.registry import ModelRegistry
            self.registry = ModelRegistry(model_dir)
            self.models = {i.inst: self.registry.load() for i in instruments}
        self.on_event = on_event or (lambda ev: None)
        self.next_sample = {i.inst: 0 for i in instruments}
        # the last message's outcome, for the caller's risk side and stage metrics
        self.mid = 0                     # book mid (ticks) when the book was valid, else 0
        self.t_feat = self.t_inf = self.t_str = 0
        self.scored = False              # the ensemble ran on the last message

    def on_message(self, inst: int, records, fe, top) -> list:
        """One exchange message (its market records, the instrument's FeatureEngine already
        updated, the book top): the strategy's intents, each stamped with the message's
        origin and the brain's stages."""
        origin = int(records["mono_origin"][0])
        self.t_feat = t_feat = time.monotonic_ns()
        bb, ba = int(top["bid_px"][0, 0]), int(top["ask_px"][0, 0])
        valid = bool(not (int(top["flags"][0]) & schema.F_BOOK_INVALID) and bb > 0 and ba > bb)
        ts = int(records["exch_ts"][-1])
        self.mid = 0
        if valid:
            self.mid = (bb + ba) // 2
            changed = self.regimes[inst].on_mid(ts, float(self.mid))
            if changed is not None:
                self.on_event({"event": "regime", "symbol": self.symbols[inst], "regime": REGIMES[changed]})
                if inst in self.models:
                    self.models[inst].set_regime(changed)
        signal_ = 0.0
        rt = self.models.get(inst)
        self.scored = rt is not None and bool(fe.all_ready)
        if self.scored:
            commit = t_feat >= self.next_sample[inst]
            if commit:
                self.next_sample[inst] = t_feat + SCORE_SAMPLE_NS
            p = rt.predict(fe.out, commit)
            signal_ = float(p[2] - p[0])
        self.t_inf = t_inf = time.monotonic_ns()
        intents = self.strategies[inst].on_market(ts, bb, ba, fe.out, fe.ready, valid, signal_)
        self.t_str = t_str = time.monotonic_ns()
        t_book = int(top["mono_pub"][0])
        for it in intents:
            it["mono_origin"], it["t_book"], it["t_features"], it["t_infer"], it["t_strategy"] = \
                origin, t_book, t_feat, t_inf, t_str
        return intents

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
            rt = self.registry.load()
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
