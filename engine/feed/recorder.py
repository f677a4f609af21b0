"""Recorder: raw frames with their receive timestamps, into a gzip capture.

Same line format as the captures in ../shared/data (``<wall ns> <frame>``), so
``replay`` and ``book-replay`` read our recordings unchanged. For each symbol with a depth
stream, the REST depth snapshot is fetched after the first diffs have arrived (as the
exchange's procedure needs) and written as a line without a stream wrapper; after a
reconnect, a new snapshot is fetched and written.
"""
from __future__ import annotations

import asyncio
import logging
import time

from engine.feed.capture import CaptureWriter
from engine.feed.ws import StreamSession, fetch_depth_snapshot

log = logging.getLogger("cryptoscalp.recorder")

DEFAULT_STREAMS = ("depth@0ms", "bookTicker", "trade")


async def record(symbols: list[str], out_path: str, *, ws_url: str, rest_url: str | None,
                 seconds: float | None = None, streams=DEFAULT_STREAMS, flush_every_s: float = 1.0,
                 on_status=None, stop: asyncio.Event | None = None) -> dict:
    """Record until ``seconds`` elapsed or ``stop`` is set. Returns counters."""
    names = [f"{s.lower()}@{st}" for s in symbols for st in streams]
    depth_syms = [s.upper() for s in symbols] if any(st.startswith("depth") for st in streams) else []
    writer = CaptureWriter(out_path)
    need_snapshot = set(depth_syms)
    pending: set[str] = set()
    counts = {"frames": 0, "snapshots": 0, "snapshot_errors": 0, "reconnects": 0}
    stop = stop or asyncio.Event()

    def on_frame(payload: bytes, mono: int, wall: int) -> None:
        writer.write(wall, payload)
        counts["frames"] += 1
        if need_snapshot and rest_url and b"depthUpdate" in payload[:80]:
            for sym in list(need_snapshot):
                if f'"{sym.lower()}@depth'.encode() in payload[:60]:
                    need_snapshot.discard(sym)
                    pending.add(sym)

    def on_event(name: str, info: dict) -> None:
        if name == "disconnected":
            counts["reconnects"] += 1
            need_snapshot.update(depth_syms)        # the diff chain broke: a new snapshot
        if on_status:
            on_status(name, info)

    session = StreamSession(ws_url, names, on_frame, on_event=on_event)
    task = asyncio.ensure_future(session.run())
    t0 = time.monotonic()
    last_flush = t0
    try:
        while not stop.is_set() and (seconds is None or time.monotonic() - t0 < seconds):
            for sym in list(pending):
                pending.discard(sym)
                try:
                    snap = await fetch_depth_snapshot(rest_url, sym)
                    writer.write(time.time_ns(), snap.replace(b"\n", b""))
                    counts["snapshots"] += 1
                except Exception as e:       # network errors: retry on the next diff
                    counts["snapshot_errors"] += 1
                    log.warning("snapshot for %s failed: %s", sym, e)
                    need_snapshot.add(sym)
            if time.monotonic() - last_flush >= flush_every_s:
                writer.flush()
                last_flush = time.monotonic()
                if on_status:
                    on_status("progress", dict(counts))
            await asyncio.sleep(0.05)
    finally:
        session.stop()
        await task
        writer.close()
    counts.update(session.stats)
    return counts
