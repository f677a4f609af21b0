"""Keep-alive HTTP/1.1 connections for order entry: a request's bytes are written with one
synchronous ``transport.write`` from the code that decided to send, not from a task the
event loop gets to later.

Why: through aiohttp, an order waited ~370 us (p50) between the risk decision and the start
of its request (a task hop behind whatever else the loop had ready, then aiohttp building
the request). Here the request is a prebuilt byte string written on an idle connection
that is already open (TLS included), and the caller stamps ``t_send`` after the write.

- ``OrderLink``: one connection (asyncio Protocol), at most one request in flight (no
  pipelining: a venue's front end may not support it, and a lost connection then loses
  exactly one request, which the gateway retries with the same client order id).
- Responses: status line, headers, a body by Content-Length or chunked transfer encoding
  (or none for 1xx/204/304). ``Connection: close`` retires the connection after the
  response. A malformed response fails the request and closes the connection.
- ``OrderLinks``: a few such connections, opened at start and refilled in the background
  when one closes (with back-off). ``request`` returns None when none is idle; the caller
  then takes the ordinary (aiohttp) path.
"""
from __future__ import annotations

import asyncio
import ssl as _ssl
import urllib.parse

MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024


class ProtocolError(ConnectionError):
    """The venue's answer was not HTTP/1.1 this client can read."""


class Response:
    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: dict, body: bytes):
        self.status, self.headers, self.body = status, headers, body


class OrderLink(asyncio.Protocol):
    def __init__(self, on_closed=None):
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.pending: asyncio.Future | None = None
        self.closed = False
        self.on_closed = on_closed
        self._head: tuple | None = None        # (status, headers, body start) once the head is in

    # ---------------------------------------------------------------- asyncio callbacks
    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        try:
            r = self._parse()
        except ProtocolError as e:
            self._fail(e)
            return
        if r is None:
            return
        fut, self.pending = self.pending, None
        if fut is None:
            self._fail(ProtocolError(f"unsolicited response (HTTP {r.status})"))
            return
        if not fut.done():
            fut.set_result(r)
        if r.headers.get("connection", "").lower() == "close":
            self.close()

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self.pending is not None and not self.pending.done():
            self.pending.set_exception(ConnectionError(f"order connection lost: {exc or 'closed by the venue'}"))
        self.pending = None
        if self.on_closed is not None:
            self.on_closed(self)

    # ---------------------------------------------------------------- use
    @property
    def idle(self) -> bool:
        return not self.closed and self.pending is None and self.transport is not None \
            and not self.transport.is_closing()

    def request(self, data: bytes) -> asyncio.Future:
        """Write one whole request now; the future gets its ``Response`` (or a
        ConnectionError). The connection must be idle."""
        if not self.idle:
            raise RuntimeError("order connection busy or closed")
        fut = asyncio.get_running_loop().create_future()
        self.pending = fut
        self.transport.write(data)
        return fut

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _fail(self, exc: Exception) -> None:
        if self.pending is not None and not self.pending.done():
            self.pending.set_exception(exc)
        self.pending = None
        self.close()

    # ---------------------------------------------------------------- parsing
    def _parse(self) -> Response | None:
        buf = self.buf
        if self._head is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    raise ProtocolError("response head too long")
                return None
            lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
            parts = lines[0].split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
                raise ProtocolError(f"bad status line {lines[0][:80]!r}")
            headers = {}
            for line in lines[1:]:
                k, sep, v = line.partition(":")
                if not sep:
                    raise ProtocolError(f"bad header line {line[:80]!r}")
                headers[k.strip().lower()] = v.strip()
            self._head = (int(parts[1]), headers, end + 4)
        status, headers, start = self._head
        if 100 <= status < 200:                        # interim: drop it, read the real one
            del buf[:start]
            self._head = None
            return self._parse()
        if status in (204, 304):
            body, used = b"", start
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            got = _chunked(buf, start)
            if got is None:
                return None
            body, used = got
        elif "content-length" in headers:
            try:
                n = int(headers["content-length"])
            except ValueError:
                raise ProtocolError(f"bad Content-Length {headers['content-length']!r}") from None
            if n < 0 or n > MAX_BODY:
                raise ProtocolError(f"Content-Length {n} out of range")
            if len(buf) < start + n:
                return None
            body, used = bytes(buf[start:start + n]), start + n
        else:
            raise ProtocolError("response without a length (neither Content-Length nor chunked)")
        del buf[:used]
        self._head = None
        if buf:
            raise ProtocolError("bytes after the response (none was asked for)")
        return Response(status, headers, body)


def _chunked(buf: bytearray, pos: int):
    """(body, end) of a complete chunked body starting at pos, or None if incomplete."""
    out = bytearray()
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size_s = bytes(buf[pos:eol]).split(b";", 1)[0].strip()
        try:
            size = int(size_s, 16)
        except ValueError:
            raise ProtocolError(f"bad chunk size {size_s[:20]!r}") from None
        if len(out) + size > MAX_BODY:
            raise ProtocolError("chunked body too large")
        if size == 0:
            end = buf.find(b"\r\n\r\n", eol)          # trailers (none expected) and the last CRLF
            if end < 0:
                return None
            return bytes(out), end + 4
        if len(buf) < eol + 2 + size + 2:
            return None
        out += buf[eol + 2:eol + 2 + size]
        if buf[eol + 2 + size:eol + 4 + size] != b"\r\n":
            raise ProtocolError("chunk not followed by CRLF")
        pos = eol + 4 + size


class OrderLinks:
    """A few keep-alive connections to one venue (``base_url``: http:// or https://)."""

    def __init__(self, base_url: str, size: int = 4, connect_timeout_s: float = 5.0):
        u = urllib.parse.urlsplit(base_url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"order links need an http(s) URL, got {base_url!r}")
        self.host, self.tls = u.hostname, u.scheme == "https"
        self.port = u.port or (443 if self.tls else 80)
        self.host_header = u.netloc
        self.prefix = u.path.rstrip("/")
        self.size = size
        self.connect_timeout_s = connect_timeout_s
        self.links: list[OrderLink] = []
        self.stats = {"opened": 0, "open_failures": 0, "lost": 0, "all_busy": 0}
        self._refill: asyncio.Task | None = None
        self._closing = False

    async def open(self) -> None:
        """Open up to ``size`` connections; a venue that refuses is retried in the background."""
        await self._fill()
        if len(self.links) < self.size:
            self._schedule_refill()

    async def _fill(self) -> None:
        loop = asyncio.get_running_loop()
        ctx = _ssl.create_default_context() if self.tls else None
        while len(self.links) < self.size and not self._closing:
            try:
                _, link = await asyncio.wait_for(
                    loop.create_connection(lambda: OrderLink(self._lost), self.host, self.port, ssl=ctx,
                                           server_hostname=self.host if self.tls else None),
                    self.connect_timeout_s)
            except (OSError, asyncio.TimeoutError):
                self.stats["open_failures"] += 1
                return
            self.links.append(link)
            self.stats["opened"] += 1

    def _lost(self, link: OrderLink) -> None:
        if link in self.links:
            self.links.remove(link)
            self.stats["lost"] += 1
        self._schedule_refill()

    def _schedule_refill(self) -> None:
        if self._closing or (self._refill is not None and not self._refill.done()):
            return
        try:
            self._refill = asyncio.get_running_loop().create_task(self._refill_loop())
        except RuntimeError:             # no loop running (closing down)
            pass

    async def _refill_loop(self) -> None:
        delay = 0.05
        while not self._closing and len(self.links) < self.size:
            await self._fill()
            if len(self.links) < self.size:
                await asyncio.sleep(delay)
                delay = min(2.0, delay * 2)

    def request(self, method: str, target: str, headers: str) -> tuple[OrderLink, asyncio.Future] | None:
        """Write ``method target`` now on an idle connection: (the connection, the future of
        its response), or None if no connection is idle. ``headers``: extra header lines,
        each ending in CRLF."""
        return self.send(self.encode(method, target, headers))

    def send(self, data: bytes) -> tuple[OrderLink, asyncio.Future] | None:
        """Write a whole request (its bytes) now on an idle connection, as ``request``."""
        link = self.idle_link()
        if link is None:
            self.stats["all_busy"] += 1          # the caller falls back to its slow path
            return None
        return link, link.request(data)

    def idle_link(self) -> OrderLink | None:
        """The first idle connection, or None."""
        for link in self.links:
            if link.idle:
                return link
        return None

    def encode(self, method: str, target: str, headers: str) -> bytes:
        """The request's bytes (no body)."""
        return (f"{method} {self.prefix}{target} HTTP/1.1\r\nHost: {self.host_header}\r\n"
                f"{headers}Content-Length: 0\r\n\r\n").encode()

    @property
    def idle(self) -> int:
        return sum(1 for link in self.links if link.idle)

    async def close(self) -> None:
        self._closing = True
        if self._refill is not None:
            self._refill.cancel()
        for link in list(self.links):
            link.close()
        self.links.clear()
