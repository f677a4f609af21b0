"""The simulated exchange: matching core (cext.matching), accounts, the Binance USD-M
order semantics and error codes, market sources (replay, synthetic), and the server that
speaks Binance's REST and WebSocket protocol on one port."""
