"""PositionBook: positions, PnL and our open orders, from the orders we send and the
venue's execution reports; it keeps the gate's RiskState current. Compiled, in
cext/positions.pyx (its docstring has the accounting rules): the backtester's event loop
calls it per order and per execution report without Python in between; the engine
processes use it through the same Python methods."""
from cext.positions import OpenOrder, Position, PositionBook

__all__ = ["OpenOrder", "Position", "PositionBook"]
