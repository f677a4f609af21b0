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
        return self._decode(self.sock.recv_multipart())

    def recv_nowait(self):
        """(symbol, seq, records, top), or None when nothing is waiting."""
        try:
            return self._decode(self.sock.recv_multipart(zmq.NOBLOCK))
        except zmq.Again:
            return None

    def _decode(self, frames):
        if len(frames) != 4:
            raise ValueError(f"a fan-out message has 4 frames, got {len(frames)}")
        topic, header, recs, top = frames
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


class FanoutFeed:
    """The engine's market data from another host's fan-out instead of its own feed
    (``cryptoscalp run --market tcp://HOST:PORT``): the same interface as LiveFeed and
    RingFeed (``on_message(inst, records, features, top)``), so the brain code is the same.

    Each message is re-stamped on arrival: ``mono_origin`` (records) and ``mono_pub`` (top)
    become this host's CLOCK_MONOTONIC when the message came off the socket (the
    publisher's monotonic clock means nothing here), so tick-to-trade on this host is
    measured from the fan-out's arrival. Instrument ids are mapped by symbol to this
    engine's numbering. Messages the subscriber missed (ZeroMQ's high-water mark, a
    reconnect) are counted from the publisher's sequence numbers, never hidden.
    """

    def __init__(self, endpoint: str, keys: dict, instruments, on_message=None, wait: str = "hybrid"):
        from engine.features.vector import FeatureEngine
        from engine.ipc.waits import check_wait
        self.wait = check_wait(wait)
        self.sub = MarketSubscriber(endpoint, keys["client_public"], keys["client_secret"], keys["server_public"],
                                    symbols=[i.symbol for i in instruments])
        self.inst_of = {i.symbol: i.inst for i in instruments}
        self.features = {i.inst: FeatureEngine(float(i.tick_size), float(i.lot_size)) for i in instruments}
        for fe in self.features.values():
            fe.warmup()
        self.on_message = on_message
        self.messages = 0
        self.bad = 0
        self._stop = False

    def poll(self) -> int:
        import time
        n = 0
        while True:
            try:
                m = self.sub.recv_nowait()
            except ValueError:
                self.bad += 1                        # a malformed message: counted, skipped
                continue
            if m is None:
                return n
            symbol, _seq, recs, top = m
            inst = self.inst_of.get(symbol)
            if inst is None or not len(recs):
                continue
            t = time.monotonic_ns()
            recs, top = recs.copy(), top.copy()      # the socket's buffers are read-only
            recs["mono_origin"], recs["inst"], top["mono_pub"], top["inst"] = t, inst, t, inst
            fe = self.features[inst]
            fe.on_message(recs, top)
            self.messages += 1
            n += 1
            if self.on_message is not None:
                self.on_message(inst, recs, fe, top)

    async def run(self, seconds: float | None = None, status=None) -> None:
        from engine.ipc.waits import poll_loop
        await poll_loop([self.poll], self.wait, 200_000, lambda: not self._stop, seconds)

    def stop(self) -> None:
        self._stop = True

    def fault_stats(self) -> dict:
        return {"fanout_received": self.sub.received, "fanout_missed": self.sub.missed, "fanout_malformed": self.bad}

    def close(self) -> None:
        self.sub.close()
