"""Position accounting shared by our PositionBook (engine.risk.positions) and the sim's
accounts (engine.venues.sim.accounts): one definition of average entry and realised PnL."""
from __future__ import annotations


def apply_fill(qty: int, entry: float, dq: int, px: int, value: float) -> tuple[int, float, float, bool]:
    """A fill of signed ``dq`` lots at ``px`` ticks on a position of ``qty`` lots entered at
    ``entry`` ticks. Returns (new qty, new entry, realised PnL in quote, whether it reduced).

    Adding keeps a size-weighted average entry; reducing realises
    (px - entry) x closed lots x sign x value; a flip opens the rest at ``px``."""
    if qty == 0 or (qty > 0) == (dq > 0):
        new = qty + dq
        return new, (entry * abs(qty) + px * abs(dq)) / abs(new), 0.0, False
    closing = min(abs(dq), abs(qty))
    realized = (px - entry) * closing * (1 if qty > 0 else -1) * value
    new = qty + dq
    if new == 0:
        entry = 0.0
    elif (new > 0) != (qty > 0):
        entry = float(px)
    return new, entry, realized, True
