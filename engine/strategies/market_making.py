"""Market making around an Avellaneda-Stoikov reservation price: ``MarketMaker``.

The rule (see its docstring) runs on every market message in the engine, so it is compiled
(cext/strategies.pyx); it keeps the Python strategy interface (``on_market`` with the
feature vector, ``on_exec``) and is used like the Python strategies here.
"""
from cext.strategies import MarketMaker

__all__ = ["MarketMaker"]
