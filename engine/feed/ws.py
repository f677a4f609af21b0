"""WebSocket market-data session for Binance futures (picows, run under uvloop).

- Combined streams (``/stream?streams=a/b/c``); ``subscribe``/``unsubscribe`` at run time
  with the SUBSCRIBE/UNSUBSCRIBE methods (paced under the 10 messages/s limit); every
  reconnect resubscribes the full set through the URL.
- Pings from the server are answered (picows auto-pong); when idle the client pings too.
- Reconnect with exponential backoff and full jitter; the delay resets after a connection
  that delivered data.
- Planned rotation before the exchange's 24-hour disconnect: a second connection is
  opened, frames from both are merged with per-stream de-duplication by event id (depth
  ``u``, bookTicker ``u``, trade ``t``, aggTrade ``a``, others ``E``), and the old one is
  closed once the new one has delivered every stream (or ``handover_s`` passed). The
  depth chain (``pu`` = previous ``u``) is unbroken, so the book never needs a resync.
- The receive timestamps (CLOCK_MONOTONIC and CLOCK_REALTIME ns) are taken first thing
  when picows hands over the frame.

``on_frame(payload: bytes, mono_ns, wall_ns)`` gets every data frame exactly once;
``on_event(name, info)`` gets connected / disconnected / rotated / subscribed notices.
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Callable

import orjson
from picows import WSListener, WSMsgType, WSTransport, ws_connect

log = logging.getLogger("cryptoscalp.ws")

USDM_WS = "wss://fstream.binance.com"
COINM_WS = "wss://dstream.binance.com"

_ID_KEY = (("@depth", "u"), ("@bookticker", "u"), ("@aggtrade", "a"), ("@trade", "t"))


def _norm(stream: str) -> str:
    """Symbols in stream names are lowercase; the stream type keeps its case (bookTicker)."""
    sym, at, rest = stream.partition("@")
    return sym.lower() + at + rest


def event_id(stream: str, data: dict) -> int | None:
    """The per-stream monotonic id used to de-duplicate during a handover."""
    s = stream.lower()
    for suffix, key in _ID_KEY:
        if suffix in s:
            v = data.get(key)
            return v if isinstance(v, int) else None
    v = data.get("E")
    return v if isinstance(v, int) else None


def _told(done) -> None:
    """The read-end callback; its exception is reported as a failed loop callback's and
    the connection is kept."""
    try:
        done()
    except Exception as e:
        _failed(e)


def _failed(e: Exception) -> None:
    asyncio.get_running_loop().call_exception_handler(
        {"message": "exception in the feed's read-end callback", "exception": e})


class _ReadEnd(asyncio.BufferedProtocol):
    """Between the socket and picows's protocol: after each read's frames were all handed to
    the listener, ``done()``. So a consumer can act once per batch of frames read together
    (on the latest state) at once, instead of one event-loop turn later."""

    def __init__(self, inner, done):
        self.inner, self.done = inner, done
        self.get_buffer = inner.get_buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.inner.buffer_updated(nbytes)
        try:                        # (``_told``, written out: this is the path to every decision)
            self.done()
        except Exception as e:
            _failed(e)

    def eof_received(self):
        return self.inner.eof_received()

    def connection_lost(self, exc) -> None:
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class _Listener(WSListener):
    def __init__(self, session: "StreamSession", conn: int):
        self.session = session
        self.conn = conn
        self.transport: WSTransport | None = None

    def on_ws_connected(self, transport: WSTransport):
        self.transport = transport
        self.read_end = None
        self.turn_due = False
        done = self.session.on_read_end
        if done is not None:
            try:
                ut = transport.underlying_transport
                ut.set_protocol(_ReadEnd(ut.get_protocol(), done))
            except (AttributeError, NotImplementedError) as e:
                log.warning("no read-end hook on this transport (%r): the read's end is told after the frame "
                            "picows marks as the last of its buffer, and one loop turn later", e)
                self.read_end = done

    def on_ws_frame(self, transport: WSTransport, frame):
        mono = time.monotonic_ns()
        wall = time.time_ns()
        t = frame.msg_type
        if t == WSMsgType.TEXT or t == WSMsgType.BINARY:
            self.session._on_payload(self.conn, frame.get_payload_as_bytes(), mono, wall)
            if self.read_end is not None:
                # the frame picows marks as its buffer's last; a ping or pong it answers itself may be the
                # last instead, and is not handed over: a loop turn later too (a second call finds nothing due)
                if frame.last_in_buffer:
                    _told(self.read_end)
                if not self.turn_due:
                    self.turn_due = True
                    asyncio.get_running_loop().call_soon(self._turn)
        elif t == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def _turn(self) -> None:
        self.turn_due = False
        _told(self.read_end)

    def on_ws_disconnected(self, transport: WSTransport):
        self.session._on_disconnected(self.conn)


class StreamSession:
    """One logical market-data subscription, kept alive across connections."""

    def __init__(self, base_url: str, streams: list[str], on_frame: Callable[[bytes, int, int], None], *,
                 on_event: Callable[[str, dict], None] | None = None,
                 on_read_end: Callable[[], None] | None = None,
                 backoff_initial_s: float = 0.2, backoff_max_s: float = 30.0,
                 rotate_after_s: float = 23.5 * 3600, handover_s: float = 10.0,
                 ping_idle_s: float = 30.0, handshake_timeout_s: float = 5.0, seed: int | None = None):
        if not streams:
            raise ValueError("StreamSession needs at least one stream")
        if len(streams) > 1024:
            raise ValueError("Binance allows at most 1024 streams per connection")
        self.base_url = base_url.rstrip("/")
        self.streams = [_norm(s) for s in streams]
        self.on_frame = on_frame
        self.on_event = on_event or (lambda name, info: None)
        self.on_read_end = on_read_end      # after the frames of one socket read were all delivered
        self.backoff_initial_s, self.backoff_max_s = backoff_initial_s, backoff_max_s
        self.rotate_after_s, self.handover_s = rotate_after_s, handover_s
        self.ping_idle_s, self.handshake_timeout_s = ping_idle_s, handshake_timeout_s
        self._rng = random.Random(seed)
        self._conns: dict[int, _Listener] = {}
        self._primary: int | None = None
        self._connecting: int | None = None      # the connection run() is opening to be primary
        self._next_conn = 0
        self._handover: dict | None = None       # {"new": conn, "seen": set(streams), "last": {stream: id}}
        self._last_id: dict[str, int] = {}
        self._lost = asyncio.Event()
        self._stop = asyncio.Event()
        self._req_id = 0
        self.stats = {"connects": 0, "disconnects": 0, "failed_connects": 0, "frames": 0,
                      "control_frames": 0, "duplicates_dropped": 0, "rotations": 0, "last_frame_mono": 0,
                      "closing_dropped": 0}

    # ---------------------------------------------------------------- public
    @property
    def url(self) -> str:
        return f"{self.base_url}/stream?streams={'/'.join(self.streams)}"

    @property
    def connected(self) -> bool:
        return self._primary is not None

    async def run(self) -> None:
        """Connect and stay connected until ``stop()``."""
        attempt = 0
        while not self._stop.is_set():
            conn = await self._connect(primary=True)
            if conn is None:
                attempt += 1
                delay = self._backoff(attempt)
                self.on_event("reconnect_wait", {"delay_s": delay, "attempt": attempt})
                await self._sleep(delay)
                continue
            self._primary = conn                       # (frames before this line: see _connect)
            self.on_event("connected", {"conn": conn, "url": self.url})
            frames_before = self.stats["frames"]
            started = time.monotonic()
            self._lost.clear()
            rotate = asyncio.ensure_future(self._rotation_timer(conn))
            await self._wait_lost_or_stop()
            rotate.cancel()
            if self._stop.is_set():
                break
            self.on_event("disconnected", {"conn": conn, "after_s": time.monotonic() - started})
            attempt = 0 if self.stats["frames"] > frames_before else attempt + 1
            delay = self._backoff(max(attempt, 1)) if attempt else self._rng.uniform(0, self.backoff_initial_s)
            await self._sleep(delay)
        for lst in list(self._conns.values()):
            if lst.transport:
                lst.transport.disconnect()
        self._conns.clear()
        self._primary = None

    def stop(self) -> None:
        self._stop.set()
        self._lost.set()

    async def subscribe(self, streams: list[str]) -> None:
        new = [_norm(s) for s in streams if _norm(s) not in self.streams]
        if not new:
            return
        self.streams += new
        await self._send_method("SUBSCRIBE", new)
        self.on_event("subscribed", {"streams": new})

    async def unsubscribe(self, streams: list[str]) -> None:
        gone = [_norm(s) for s in streams if _norm(s) in self.streams]
        self.streams = [s for s in self.streams if s not in gone]
        if gone:
            await self._send_method("UNSUBSCRIBE", gone)
            self.on_event("unsubscribed", {"streams": gone})

    def rotate_now(self) -> None:
        """Start a planned rotation (what the 24-hour timer does)."""
        if self._primary is not None and self._handover is None:
            asyncio.ensure_future(self._rotate(self._primary))

    # ---------------------------------------------------------------- internals
    def _backoff(self, attempt: int) -> float:
        cap = min(self.backoff_max_s, self.backoff_initial_s * (2 ** min(attempt, 20)))
        return self._rng.uniform(self.backoff_initial_s / 2, cap)   # full jitter, floor at half the initial

    async def _sleep(self, s: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), timeout=s)
        except asyncio.TimeoutError:
            pass

    async def _wait_lost_or_stop(self) -> None:
        await self._lost.wait()

    async def _connect(self, primary: bool = False) -> int | None:
        """Open a connection; ``primary``: it becomes the primary one as soon as it is open.
        Its frames are delivered from the first one, even those that arrive with the
        handshake's answer, before this coroutine has resumed (they used to be dropped as
        frames of a connection being closed)."""
        conn = self._next_conn
        self._next_conn += 1
        if primary:
            self._connecting = conn
        try:
            _, listener = await ws_connect(
                lambda: _Listener(self, conn), self.url,
                websocket_handshake_timeout=self.handshake_timeout_s,
                enable_auto_ping=True, auto_ping_idle_timeout=self.ping_idle_s,
                auto_ping_reply_timeout=self.ping_idle_s, enable_auto_pong=True)
        except (OSError, asyncio.TimeoutError, Exception) as e:   # picows raises its own WSError types
            self.stats["failed_connects"] += 1
            log.warning("connect to %s failed: %s", self.base_url, e)
            return None
        finally:
            if primary:
                self._connecting = None
        self._conns[conn] = listener
        self.stats["connects"] += 1
        return conn

    async def _rotation_timer(self, conn: int) -> None:
        await asyncio.sleep(self.rotate_after_s)
        if self._primary == conn and not self._stop.is_set():
            await self._rotate(conn)

    async def _rotate(self, old: int) -> None:
        new = await self._connect()
        if new is None:
            log.warning("rotation: could not open the new connection; keeping the old one")
            return
        self._handover = {"new": new, "old": old, "seen": set()}
        deadline = time.monotonic() + self.handover_s
        while time.monotonic() < deadline and not self._stop.is_set():
            if self._handover["seen"] >= set(self.streams) or old not in self._conns:
                break
            await asyncio.sleep(0.01)
        self._primary = new
        self._handover = None
        self._last_id.clear()
        self.stats["rotations"] += 1
        lst = self._conns.pop(old, None)
        if lst and lst.transport:
            lst.transport.disconnect()
        self.on_event("rotated", {"old": old, "new": new})
        # the new connection is now primary: give it its own 24-hour timer
        asyncio.ensure_future(self._rotation_timer(new))

    def _on_payload(self, conn: int, payload: bytes, mono: int, wall: int) -> None:
        if payload.startswith(b'{"result"') or payload.startswith(b'{"id"'):
            self.stats["control_frames"] += 1          # SUBSCRIBE/UNSUBSCRIBE replies
            return
        ho = self._handover
        if ho is not None:
            # merge both connections, dropping what was already delivered
            try:
                msg = orjson.loads(payload)
                stream, data = msg.get("stream", ""), msg.get("data", {})
                eid = event_id(stream, data)
            except (orjson.JSONDecodeError, AttributeError):
                stream, eid = "", None
            if conn == ho["new"] and stream:
                ho["seen"].add(stream)
            if eid is not None:
                if eid <= self._last_id.get(stream, -1):
                    self.stats["duplicates_dropped"] += 1
                    return
                self._last_id[stream] = eid
        elif conn != self._primary and not (self._primary is None and conn == self._connecting):
            self.stats["closing_dropped"] += 1         # a connection being closed
            return
        self.stats["frames"] += 1
        self.stats["last_frame_mono"] = mono
        self.on_frame(payload, mono, wall)

    def _on_disconnected(self, conn: int) -> None:
        self._conns.pop(conn, None)
        self.stats["disconnects"] += 1
        if conn == self._primary:
            if self._handover is not None and self._handover["new"] in self._conns:
                # the old one went away during a handover: the new one takes over at once
                self._primary = self._handover["new"]
                return
            self._primary = None
            self._lost.set()

    async def _send_method(self, method: str, params: list[str]) -> None:
        # Binance allows 10 incoming messages per second: at most 200 streams per message
        for k in range(0, len(params), 200):
            self._req_id += 1
            lst = self._conns.get(self._primary) if self._primary is not None else None
            if lst and lst.transport:
                lst.transport.send(WSMsgType.TEXT, orjson.dumps(
                    {"method": method, "params": params[k:k + 200], "id": self._req_id}))
            await asyncio.sleep(0.11)


async def fetch_depth_snapshot(rest_base: str, symbol: str, limit: int = 1000, timeout_s: float = 10.0) -> bytes:
    """GET the REST depth snapshot (USD-M ``/fapi/v1/depth``, COIN-M ``/dapi/v1/depth``
    chosen by the base URL path given, e.g. ``https://fapi.binance.com/fapi/v1``)."""
    import urllib.request

    url = f"{rest_base.rstrip('/')}/depth?symbol={symbol.upper()}&limit={limit}"

    def get() -> bytes:
        with urllib.request.urlopen(url, timeout=timeout_s) as r:
            return r.read()

    return await asyncio.get_running_loop().run_in_executor(None, get)
