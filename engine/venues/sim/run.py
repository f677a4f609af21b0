"""Drive the simulated exchange from a market source and serve it: what `cryptoscalp sim`
runs, and what tests and `cryptoscalp run` start in-process.

Sources: a replay of captures (``<ns> <frame>`` files: ours and ../shared/data's), at real
speed x ``speed`` or as fast as possible (speed 0); the seeded synthetic market; or a real
venue's public streams (``UpstreamMarket``: paper trading on live data, `cryptoscalp run
--venue binance`: the venue's frames, byte for byte, are this sim's market). Every
frame is applied to the exchange before it is published, so a REST snapshot or an order
sees the state the frame created; REST snapshots inside a capture are applied, not
published.
"""
from __future__ import annotations

import asyncio
import logging
import time

import orjson

from engine.feed.replay import capture_symbol, infer_instruments
from engine.venues.instruments import Instrument
from engine.venues.sim.exchange import SimExchange
from engine.venues.sim.generator import SyntheticMarket
from engine.venues.sim.server import Faults, SimServer

log = logging.getLogger("cryptoscalp.sim")

DEFAULT_BTC = Instrument(symbol="BTCUSDT", inst=0, price_decimals=2, qty_decimals=3, tick_units=10,
                         min_qty_lots=1, max_qty_lots=1_000_000, min_notional="100",
                         multiplier_up="1.0500", multiplier_down="0.9500")


def _stream_of(frame: bytes) -> str | None:
    if not frame.startswith(b'{"stream":"'):
        return None
    end = frame.index(b'"', 11)
    return frame[11:end].decode()


class UpstreamMarket:
    """A real venue's public market data as the sim's market: one combined-stream WebSocket
    (depth diffs, book tickers, trades of every instrument) and, after every (re)connect, a
    REST depth snapshot per symbol (fetched while the first diffs arrive, as Binance's
    procedure says; the sim's book applies the snapshot and the diffs after it). A lost
    connection is retried with a doubling back-off (0.5 s to 10 s), each counted."""

    def __init__(self, ws_url: str, rest_url: str, instruments: list[Instrument],
                 streams=("depth@0ms", "bookTicker", "trade")):
        self.ws_url, self.rest_url = ws_url.rstrip("/"), rest_url.rstrip("/")
        self.instruments = instruments
        self.names = "/".join(f"{i.symbol.lower()}@{s}" for i in instruments for s in streams)
        self.connects = 0
        self.errors = 0
        self.stale_diffs = 0        # diffs the snapshot already held (u <= lastUpdateId): dropped

    async def _snapshots(self, http) -> list[tuple[str, bytes]]:
        out = []
        for ins in self.instruments:
            async with http.get(f"{self.rest_url}/depth", params={"symbol": ins.symbol, "limit": 1000}) as r:
                body = await r.read()
                if r.status != 200:
                    raise ConnectionError(f"depth snapshot {ins.symbol}: HTTP {r.status}: {body[:200]!r}")
                out.append((ins.symbol, body))
        return out

    async def frames(self, stop: asyncio.Event):
        """Yields (stream or None for a snapshot, frame bytes, symbol) until ``stop`` is set."""
        import aiohttp
        delay = 0.5
        async with aiohttp.ClientSession() as http:
            while not stop.is_set():
                snaps = None
                try:
                    async with http.ws_connect(f"{self.ws_url}/stream?streams={self.names}", heartbeat=30,
                                               max_msg_size=0) as ws:
                        self.connects += 1
                        log.info("upstream market connected: %s", self.ws_url, extra={"connects": self.connects})
                        snaps = asyncio.ensure_future(self._snapshots(http))
                        snap_id: dict[str, int] = {}       # symbol -> the applied snapshot's lastUpdateId
                        async for msg in ws:
                            if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                                break
                            if snaps is not None and snaps.done():
                                for sym, body in snaps.result():
                                    snap_id[sym] = int(orjson.loads(body)["lastUpdateId"])
                                    yield None, body, sym
                                snaps = None
                                delay = 0.5
                            frame = msg.data.encode() if isinstance(msg.data, str) else msg.data
                            stream = _stream_of(frame)
                            if snap_id and stream is not None and "@depth" in stream:
                                d = orjson.loads(frame)["data"]
                                last = snap_id.get(d["s"])
                                if last is not None:
                                    if int(d["u"]) <= last:      # already in the snapshot
                                        self.stale_diffs += 1
                                        continue
                                    del snap_id[d["s"]]          # the first diff after it: in sync from here
                            yield stream, frame, None
                            if stop.is_set():
                                return
                    raise ConnectionError("upstream market stream closed")
                except (aiohttp.ClientError, OSError, ConnectionError, asyncio.TimeoutError) as e:
                    self.errors += 1
                    log.warning("upstream market: %s: reconnecting in %.1f s", e, delay)
                finally:
                    if snaps is not None:
                        snaps.cancel()
                await asyncio.sleep(delay)
                delay = min(10.0, delay * 2)


class SimRunner:
    """A SimExchange + SimServer + market source, run by ``run()`` until ``stop()``."""

    def __init__(self, *, replay: list[str] | None = None, synthetic_seed: int | None = None,
                 speed: float = 1.0, faults: Faults | None = None, api_key: str | None = None,
                 api_secret: str | None = None, weight_limit: int = 2400, loop_replay: bool = False,
                 synthetic_steps: int | None = None, upstream: UpstreamMarket | None = None):
        self.upstream = upstream
        if upstream is not None:
            self.instruments = upstream.instruments
            self.symbols = [i.symbol for i in upstream.instruments]
            self.gen = None
        elif replay:
            self.symbols = [capture_symbol(p) for p in replay]
            insts = []
            for k, (p, s) in enumerate(zip(replay, self.symbols)):
                i = infer_instruments(p, s)[0]
                insts.append(Instrument(**{**{f: getattr(i, f) for f in i.__struct_fields__}, "inst": k,
                                           "min_notional": "5", "max_qty_lots": 10_000_000,
                                           "multiplier_up": "1.0500", "multiplier_down": "0.9500"}))
            self.instruments = insts
            self.gen = None
        else:
            self.instruments = [DEFAULT_BTC]
            self.symbols = [DEFAULT_BTC.symbol]
            self.gen = SyntheticMarket(DEFAULT_BTC, seed=synthetic_seed or 1, start_ms=int(time.time() * 1000))
        self.replay = replay
        self.speed = speed
        self.loop_replay = loop_replay
        self.synthetic_steps = synthetic_steps
        self.sim = SimExchange(self.instruments)
        kw = {}
        if api_key:
            kw = {"api_key": api_key, "api_secret": api_secret or ""}
        self.server = SimServer(self.sim, faults=faults, weight_limit=weight_limit, **kw)
        self._stop = asyncio.Event()
        self.frames = 0
        self.done = asyncio.Event()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        url = await self.server.start(host, port)
        if self.gen is not None:
            self.sim.on_market_frame(self.gen.snapshot_frame(), self.gen.sym)
        return url

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        faults = self.server.faults
        last_disc = last_stall = time.monotonic()
        last_funding = 0.0
        behind = 0                  # frames sent in a row without waiting (the market is behind its clock)
        try:
            while not self._stop.is_set():
                async for stream, frame, delay in self._frames():
                    if self._stop.is_set():
                        return
                    if delay > 0:
                        behind = 0
                        await asyncio.sleep(delay)
                    else:
                        behind += 1
                        if behind % 16 == 0:        # catching up: the REST side still answers in between
                            await asyncio.sleep(0)
                    now = time.monotonic()
                    if faults.disconnect_every_s and now - last_disc >= faults.disconnect_every_s:
                        last_disc = now
                        await self.server.disconnect_all()
                    if faults.stall_every_s and now - last_stall >= faults.stall_every_s:
                        last_stall = now
                        await asyncio.sleep(faults.stall_s)
                    if stream is None:
                        self.sim.on_market_frame(frame, self._default_symbol)
                        continue
                    self.sim.on_market_frame(frame)
                    await self.server.publish(stream, frame)
                    self.frames += 1
                    if self.sim.user_events:
                        await self.server.flush_user_events()
                    if now - last_funding > 1.0:
                        last_funding = now
                        self.sim.funding(self.sim.now_ms())
                        await self.server.flush_user_events()
                if not self.loop_replay or self.gen is not None or self.upstream is not None:
                    break
        finally:
            self.done.set()

    async def _frames(self):
        if self.upstream is not None:
            async for stream, frame, sym in self.upstream.frames(self._stop):
                if sym is not None:
                    self._default_symbol = sym
                yield stream, frame, 0.0
            return
        if self.gen is not None:
            n = 0
            t_next = time.monotonic()
            while not self._stop.is_set() and (self.synthetic_steps is None or n < self.synthetic_steps):
                n += 1
                frames = self.gen.step()
                delay = 0.0
                if self.speed > 0:
                    t_next += self.gen.step_ms / 1000 / self.speed
                    delay = t_next - time.monotonic()
                for k, (stream, frame) in enumerate(frames):
                    yield stream, frame, delay if k == 0 else 0.0
                if self.speed <= 0 and n % 50 == 0:
                    await asyncio.sleep(0)
            return
        from engine.feed.replay import merge_captures
        t0 = time.monotonic()
        first = None
        k = 0
        for local, idx, frame in merge_captures(self.replay):
            self._default_symbol = self.symbols[idx]
            delay = 0.0
            if self.speed > 0:
                first = local if first is None else first
                delay = t0 + (local - first) / 1e9 / self.speed - time.monotonic()
            elif k % 200 == 0:
                await asyncio.sleep(0)
            k += 1
            yield _stream_of(frame), frame, delay

    _default_symbol: str | None = None


class SimProcess:
    """``cryptoscalp sim`` in a process of its own, for harnesses and end-to-end tests: its
    port is read from its banner, and its output is drained into ``lines`` (a pipe nobody
    reads fills up and stalls the sim)."""

    def __init__(self, cli: str, speed: float = 10.0, seed: int = 1, faults: str = "", cpus: set[int] | None = None):
        """``cpus``: pin the sim to these CPUs (a harness keeps it off the engine's core)."""
        import os
        import subprocess
        import threading
        self.proc = subprocess.Popen([cli, "sim", "--port", "0", "--speed", str(speed), "--seed", str(seed)]
                                     + (["--faults", faults] if faults else []),
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
        self.lines: list[str] = []
        self.port = None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("REST"):
                self.port = int(line.split(":")[2].split("/")[0])
                break
        if not self.port:
            self.close()
            raise RuntimeError("the sim did not start:\n" + self.tail())
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.lines[-n:])

    def poll(self):
        return self.proc.poll()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except Exception:          # noqa: BLE001 - TimeoutExpired: it did not stop, kill it
                self.proc.kill()
                self.proc.wait()
