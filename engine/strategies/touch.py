"""The simplest market-making rule, for comparisons with other backtesters: one bid one tick
behind the best bid and one ask one tick behind the best ask (post-only), cancel and replace
a side when its wanted price changes, a position limit. Compiled (cext/strategies.pyx), so
the backtester's event loop runs it without Python; it is a normal strategy component too
(``on_market`` / ``on_exec``)."""
from cext.strategies import TouchQuoter

__all__ = ["TouchQuoter"]
