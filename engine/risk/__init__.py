"""Risk: the 7-layer pre-trade gate (compiled, cext/risk.pyx), limits and regime profiles,
positions, the trading-state monitor, volatility estimators, sizing and VaR."""
