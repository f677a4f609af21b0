"""Order connections in memory: the real ``OrderLink`` / ``OrderLinks`` code (idle checks,
the answer's future, the HTTP response parser) over a transport that keeps each request
and answers it on the next loop turn as the venue would (an ACK with a fresh order id for
a POST, ``{}`` for a DELETE). For measuring and testing the order path without a socket
(benchmarks/hot_path.py, tests/integration/test_decision_path.py)."""
from __future__ import annotations

import asyncio

from engine.execution.http1 import OrderLink, OrderLinks


class MemoryTransport(asyncio.Transport):
    """What ``OrderLink`` writes to: every request kept (``requests``), answered a loop
    turn later through the link's own ``data_received``."""

    def __init__(self, link: OrderLink, owner: "MemoryLinks"):
        super().__init__()
        self.link, self.owner = link, owner
        self.closing = False

    def write(self, data) -> None:
        data = bytes(data)
        self.owner.requests.append(data)
        self.owner.bytes += len(data)
        self.owner.orders += data.startswith(b"POST")
        body = b'{"orderId":%d}' % self.owner.orders if data.startswith(b"POST") else b"{}"
        answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        asyncio.get_running_loop().call_soon(self.link.data_received, answer)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def get_write_buffer_size(self) -> int:
        return 0


class MemoryLinks(OrderLinks):
    """``size`` order connections that never touch a socket (``open`` does nothing)."""

    def __init__(self, size: int = 4):
        super().__init__("http://127.0.0.1:1", size)
        self.requests: list[bytes] = []
        self.bytes = 0
        self.orders = 0
        for _ in range(size):
            link = OrderLink(self._lost)
            link.connection_made(MemoryTransport(link, self))
            self.links.append(link)

    async def open(self) -> None:
        return None

    @property
    def n(self) -> int:
        return len(self.requests)
