"""A compiled strategy seen through its Python methods only, for comparing the backtester's
two strategy paths (tests/integration/test_backtest.py, benchmarks/backtest_vs_hftbacktest.py)."""


class PythonPath:
    """Wraps a cext.strategies.CompiledStrategy: the event loop does not recognise it as
    compiled, so it takes the Python path (the feature engine runs, intents come back as
    ORDER_DTYPE arrays, execution reports go in as records)."""

    def __init__(self, compiled):
        self.q, self.owner = compiled, compiled.owner

    def on_market(self, *args):
        return self.q.on_market(*args)

    def on_exec(self, e):
        self.q.on_exec(e)

    quotes_sent = property(lambda self: self.q.quotes_sent)
    cancels_sent = property(lambda self: self.q.cancels_sent)
