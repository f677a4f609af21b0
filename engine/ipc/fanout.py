"""Market records to other hosts: ZeroMQ PUB/SUB over TCP with CURVE.

The feed publishes each message's normalized records (``MARKET_DTYPE``, the layout of the
rings, byte for byte) and the book's top levels after it; a brain on another host
subscribes instead of reading a local ring. Frames of one message:

    [symbol (topic), header: sequence u64 + record count u32, records, book top]

The sequence is per publisher and increases by one per message, so a subscriber counts
what it missed (a slow subscriber's messages are dropped by ZeroMQ at the high-water
mark, never delayed for the others). CURVE: the publisher is a CURVE server; only clients
whose public keys it lists get through its ZAP handler, anyone else receives nothing.
"""
from __future__ import annotations

import struct

import numpy as np
import zmq

from engine import schema
from engine.ipc.admin import _Allowed

HEADER = struct.Struct("<QI")


class MarketPublisher:
    def __init__(self, endpoint: str, server_public: bytes, server_secret: bytes, authorized: list[bytes],
                 hwm: int = 100_000):
        if not endpoint.startswith("tcp://"):
            raise ValueError("the market fan-out is for other hosts: tcp://HOST:PORT")
        if not (server_public and server_secret and authorized):
            raise ValueError("the market fan-out needs CURVE: a server key pair and the subscribers' public keys")
        from zmq.auth.thread import ThreadAuthenticator
        self.ctx = zmq.Context()
        self.auth = ThreadAuthenticator(self.ctx)
        self.auth.start()
        self.auth.configure_curve_callback(domain="*", credentials_provider=_Allowed(authorized))
        self.sock = self.ctx.socket(zmq.PUB)
        self.sock.setsockopt(zmq.SNDHWM, hwm)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.curve_secretkey, self.sock.curve_publickey, self.sock.curve_server = server_secret, server_public, True
        self.sock.bind(endpoint)
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.seq = 0

    def publish(self, symbol: str, records: np.ndarray, top: np.ndarray) -> int:
        if records.dtype != schema.MARKET_DTYPE or top.dtype != schema.BOOK_TOP_DTYPE:
            raise ValueError("publish: MARKET_DTYPE records and a BOOK_TOP_DTYPE top")
        self.seq += 1
        self.sock.send_multipart([symbol.encode(), HEADER.pack(self.seq, len(records)), records.tobytes(), top.tobytes()],
                                 copy=False)
        return self.seq

    def close(self) -> None:
        self.sock.close(0)
        self.auth.stop()
        self.ctx.term()


class MarketSubscriber:
    def __init__(self, endpoint: str, client_public: bytes, client_secret: bytes, server_public: bytes,
                 symbols: list[str] | None = None):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.curve_secretkey, self.sock.curve_publickey, self.sock.curve_serverkey = \
            client_secret, client_public, server_public
        for s in symbols or [""]:
            self.sock.setsockopt(zmq.SUBSCRIBE, s.encode())
        self.sock.connect(endpoint)
        self.last_seq = 0
        self.missed = 0
        self.received = 0

    def recv(self, timeout_ms: int = 1000):
        """(symbol, seq, records, top) or None on timeout."""
        if not self.sock.poll(timeout_ms):
            return None
        topic, header, recs, top = self.sock.recv_multipart()
        seq, n = HEADER.unpack(header)
        if self.last_seq and seq > self.last_seq + 1:
            self.missed += seq - self.last_seq - 1
        self.last_seq = seq
        self.received += 1
        records = np.frombuffer(recs, schema.MARKET_DTYPE)
        if len(records) != n:
            raise ValueError(f"message {seq}: header says {n} records, got {len(records)}")
        return topic.decode(), seq, records, np.frombuffer(top, schema.BOOK_TOP_DTYPE)

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()
