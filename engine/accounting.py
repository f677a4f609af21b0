"""Position accounting shared by our PositionBook (engine.risk.positions), the backtester's
per-strategy books and the sim's accounts (engine.venues.sim.accounts): one definition of
average entry and realised PnL, ``apply_fill``, compiled in cext.positions (where the
PositionBook and the backtester's event loop use it without a Python call)."""
from cext.positions import apply_fill

__all__ = ["apply_fill"]
