"""A WebSocket server that plays recorded frames to combined-stream clients (picows).

Clients connect to ``/stream?streams=a/b`` and may SUBSCRIBE/UNSUBSCRIBE; every client
receives, from the moment it connected, the frames of its streams in the recorded order
(so two connections of one client see the same frames, as on the exchange).
``disconnect_all()`` drops every client (a fault).
"""
from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlparse

import orjson
from picows import WSListener, WSMsgType, WSTransport, ws_create_server


class _ServerListener(WSListener):
    def __init__(self, server: "ReplayWSServer", streams: set[str]):
        self.server = server
        self.streams = streams
        self.transport: WSTransport | None = None

    def on_ws_connected(self, transport: WSTransport):
        self.transport = transport
        self.server.clients.append(self)
        self.server.connections += 1
        for stream, payload in self.server.frames[:self.server.send_on_connect]:
            if stream.lower() in self.streams:       # at once: right behind the handshake's answer
                transport.send(WSMsgType.TEXT, payload)
                self.server.sent += 1

    def on_ws_frame(self, transport: WSTransport, frame):
        if frame.msg_type == WSMsgType.TEXT:
            try:
                msg = orjson.loads(frame.get_payload_as_bytes())
                method, params = msg["method"], [p.lower() for p in msg.get("params", [])]
            except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
                transport.send(WSMsgType.TEXT, b'{"error":{"code":2,"msg":"Invalid request"}}')
                return
            if method == "SUBSCRIBE":
                self.streams.update(params)
            elif method == "UNSUBSCRIBE":
                self.streams.difference_update(params)
            transport.send(WSMsgType.TEXT, orjson.dumps({"result": None, "id": msg.get("id")}))
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport):
        if self in self.server.clients:
            self.server.clients.remove(self)


class ReplayWSServer:
    def __init__(self, frames: list[tuple[str, bytes]], rate_hz: float = 0.0, send_on_connect: int = 0):
        """frames: (stream name, full combined-stream payload) in play order;
        rate_hz: frames per second (0 = as fast as possible); send_on_connect: the first N
        frames go to each client the moment its handshake is done (as a venue streams)."""
        self.frames = frames
        self.rate_hz = rate_hz
        self.send_on_connect = send_on_connect
        self.clients: list[_ServerListener] = []
        self.connections = 0
        self.sent = 0
        self.position = 0
        self._server = None
        self.url = ""

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        def factory(request):
            q = parse_qs(urlparse(request.path.decode() if isinstance(request.path, bytes) else request.path).query)
            streams = set()
            for s in q.get("streams", []):
                streams.update(x.lower() for x in s.split("/") if x)
            return _ServerListener(self, streams)

        self._server = await ws_create_server(factory, host, port)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"ws://{host}:{port}"
        return self.url

    async def play(self, start: int = 0, stop: int | None = None) -> None:
        stop = len(self.frames) if stop is None else stop
        interval = 1.0 / self.rate_hz if self.rate_hz else 0.0
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for k in range(start, stop):
            stream, payload = self.frames[k]
            for c in list(self.clients):
                if stream.lower() in c.streams and c.transport is not None:
                    c.transport.send(WSMsgType.TEXT, payload)
                    self.sent += 1
            self.position = k + 1
            if interval:
                delay = t0 + (k - start + 1) * interval - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif (k & 63) == 0:
                    await asyncio.sleep(0)
            elif (k & 63) == 0:
                await asyncio.sleep(0)

    def disconnect_all(self) -> None:
        for c in list(self.clients):
            if c.transport is not None:
                c.transport.disconnect()

    async def close(self) -> None:
        self.disconnect_all()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
