"""Event-driven backtester: the live components wired in one process to the sim's
matching core, with a latency model."""
