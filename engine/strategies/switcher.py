"""Regime switcher: enables and sizes the strategies by regime.

| regime | market making | mean reversion | momentum |
|---|---|---|---|
| NORMAL | on | on | off |
| VOLATILE | off (quotes get run over) | on | on |
| TRENDING, BULL_RUN | off | off | on |
| CRASH | off | off | off (flatten only) |
| RECOVERY | on | on | off |
Sizes follow the regime profile's position multiplier (SPEC.md); the risk gate still caps
every order at the hard limits. Intents of all enabled strategies are concatenated; a
disabled strategy still manages (exits) the position it holds.
"""
from __future__ import annotations

from engine.features.regime import BULL_RUN, CRASH, NORMAL, RECOVERY, TRENDING, VOLATILE
from engine.risk.limits import DEFAULT_PROFILES

TABLE = {NORMAL: ("mm", "mr"), VOLATILE: ("mr", "mom"), TRENDING: ("mom",), BULL_RUN: ("mom",), CRASH: (),
         RECOVERY: ("mm", "mr")}


class RegimeSwitcher:
    def __init__(self, strategies: dict, profiles=DEFAULT_PROFILES):
        unknown = set(strategies) - {"mm", "mr", "mom"}
        if unknown:
            raise ValueError(f"unknown strategy keys {sorted(unknown)}: use mm, mr, mom")
        self.strategies = strategies
        self.profiles = profiles
        self.regime = NORMAL
        self.set_regime(NORMAL)

    def set_regime(self, regime: int) -> None:
        self.regime = regime
        on = TABLE[regime]
        mult = self.profiles[regime].position_mult
        for key, s in self.strategies.items():
            if hasattr(s, "enabled"):
                s.enabled = key in on
                s.size_mult = mult
        self.mm_on = "mm" in on

    def on_market(self, ts, bb, ba, f, ready, valid, signal: float = 0.0):
        out = []
        for key, s in self.strategies.items():
            if key == "mm":
                # a disabled market maker pulls its quotes (book_valid=False makes it cancel)
                out += s.on_market(ts, bb, ba, f, ready, valid and self.mm_on, signal)
            else:
                out += s.on_market(ts, bb, ba, f, ready, valid, signal)
        return out

    def on_exec(self, e) -> None:
        for s in self.strategies.values():
            s.on_exec(e)

    @property
    def quotes_sent(self):
        return getattr(self.strategies.get("mm"), "quotes_sent", None)
