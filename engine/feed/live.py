"""LiveFeed: a WebSocket session, the feed handler, REST snapshots when a book needs one,
and the feature engines: the feed side of the process group, without processes.

``on_message(inst, records, features, top)`` (optional) gets every published message with
the instrument's feature engine after it (None with ``features=False``, the feed process)
and its book top (BOOK_TOP_DTYPE, one element). Books resync on their own: a gap or a
crossed book asks for a snapshot, which is fetched (weight-aware, one at a time per
instrument) and applied with the buffered updates.
"""
from __future__ import annotations

import asyncio
import logging
import time

import aiohttp

from engine.feed.handler import FeedHandler
from engine.feed.ws import StreamSession
from engine.features.vector import FeatureEngine
from engine.venues.instruments import Instrument

log = logging.getLogger("cryptoscalp.feed")


class LiveFeed:
    def __init__(self, instruments: list[Instrument], ws_url: str, rest_url: str,
                 streams=("depth@0ms", "bookTicker", "trade"), on_message=None, features: bool = True,
                 max_future_ms: float = 1000.0, on_read_end=None):
        """``max_future_ms``: a record stamped further ahead of this host's clock is dropped
        (Validator); 0 turns the check off, for a sim market running faster than real time,
        whose exchange clock runs ahead by design. ``on_read_end()``: called once the
        messages of one socket read were all handed to ``on_message``."""
        from cext.validate import Validator
        self.instruments = instruments
        # live: a record's wall time is its monotonic receive stamp plus this host's offset
        offset = time.time_ns() - time.monotonic_ns()
        max_future_ns = int(max_future_ms * 1e6) if max_future_ms > 0 else 1 << 62
        self.handler = FeedHandler(instruments, validator=Validator(max(i.inst for i in instruments) + 1,
                                                                    clock_offset_ns=offset, max_future_ns=max_future_ns))
        self.features = {i.inst: FeatureEngine(float(i.tick_size), float(i.lot_size))
                         for i in instruments} if features else {}
        for fe in self.features.values():
            fe.warmup()
        self.rest_url = rest_url.rstrip("/")
        self.on_message = on_message
        names = [f"{i.symbol.lower()}@{s}" for i in instruments for s in streams]
        self.session = StreamSession(ws_url, names, self._on_frame, on_event=self._on_event, on_read_end=on_read_end)
        self.messages = 0
        self.snapshots = 0
        self.latency_ns: list[int] = []          # frame received -> features updated
        self._pending: set[int] = set()
        self._http: aiohttp.ClientSession | None = None

    def _on_frame(self, payload: bytes, mono: int, wall: int) -> None:
        res = self.handler.on_frame(payload, mono)
        if res.inst < 0 or not len(res.records):
            return
        top = self.handler.books[res.inst].top_record(self.handler.is_valid(res.inst))
        fe = self.features.get(res.inst)
        if fe is not None:
            fe.on_message(res.records, top)
        self.messages += 1
        if len(self.latency_ns) < 100_000:
            self.latency_ns.append(time.monotonic_ns() - mono)
        if self.on_message is not None:
            self.on_message(res.inst, res.records, fe, top)

    def _on_event(self, name: str, info: dict) -> None:
        if name in ("connected", "disconnected"):
            log.info("feed %s: %s", name, info)

    async def _snapshots(self) -> None:
        while True:
            for inst in list(self.handler.snapshot_needed):
                ins = next(i for i in self.instruments if i.inst == inst)
                try:
                    async with self._http.get(f"{self.rest_url}/depth", params={"symbol": ins.symbol, "limit": 1000}) as r:
                        body = await r.read()
                    if r.status == 200:
                        self.handler.on_frame(body, time.monotonic_ns(), ins.symbol)
                        self.snapshots += 1
                    else:
                        log.warning("snapshot for %s: HTTP %d %s", ins.symbol, r.status, body[:200])
                        await asyncio.sleep(1.0)
                except aiohttp.ClientError as e:
                    log.warning("snapshot for %s failed: %s", ins.symbol, e)
                    await asyncio.sleep(1.0)
            await asyncio.sleep(0.05)

    def fault_stats(self) -> dict:
        return {"feed_connects": self.session.stats["connects"], "feed_disconnects": self.session.stats["disconnects"],
                "book_gaps": sum(b["gaps"] for b in self.handler.stats()["books"].values()),
                "snapshots": self.snapshots}

    async def run(self, seconds: float | None = None, status=None, status_every_s: float = 1.0) -> None:
        self._http = aiohttp.ClientSession()
        ws = asyncio.ensure_future(self.session.run())
        snaps = asyncio.ensure_future(self._snapshots())
        t0 = time.monotonic()
        try:
            while seconds is None or time.monotonic() - t0 < seconds:
                await asyncio.sleep(status_every_s)
                if status:
                    status(self)
        finally:
            self.session.stop()
            snaps.cancel()
            await ws
            await self._http.close()
