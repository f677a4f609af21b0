"""The feed handler's components: capture files, replay, the handler that turns frames
into validated market records and books, importers, the WebSocket client, the recorder.

Parsing, books and validation are compiled (cext.binance, cext.book, cext.validate);
this package wires them and does the I/O at the edge.
"""
