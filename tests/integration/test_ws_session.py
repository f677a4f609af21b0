"""The WebSocket session against a local server playing a real capture: every frame
exactly once across planned rotations (no book gap), reconnect after a drop with a
detected gap and resync, runtime subscribe."""
import asyncio

import orjson
import pytest
import uvloop

from engine.feed.capture import iter_capture
from engine.feed.handler import FeedHandler
from engine.feed.replay import infer_instruments
from engine.feed.ws import StreamSession
from engine.testing.ws_server import ReplayWSServer

STREAMS = ["btcusdt@depth@0ms", "btcusdt@bookTicker", "btcusdt@trade"]


def load(path, n=4000):
    frames, snap = [], None
    for k, (_, f) in enumerate(iter_capture(path)):
        if k >= n:
            break
        if f.startswith(b'{"stream"'):
            frames.append((orjson.loads(f)["stream"], f))
        else:
            snap = f
    return frames, snap


async def _session_run(frames, snap, ins, *, rotate_after_s, drop_at=None, rate=4000):
    srv = ReplayWSServer(frames, rate_hz=rate)
    url = await srv.start()
    h = FeedHandler(ins)
    h.on_frame(snap, 0, "BTCUSDT")              # the snapshot first: earlier diffs are stale
    got, events = [], []
    s = StreamSession(url, STREAMS, lambda p, m, w: (got.append(p), h.on_frame(p, m)),
                      on_event=lambda n, i: events.append(n), rotate_after_s=rotate_after_s,
                      handover_s=0.5, backoff_initial_s=0.05, seed=1)
    task = asyncio.ensure_future(s.run())
    while not s.connected:
        await asyncio.sleep(0.01)
    if drop_at is None:
        await srv.play()
    else:
        await srv.play(0, drop_at)
        srv.disconnect_all()
        while not s.connected or len(srv.clients) == 0:
            await asyncio.sleep(0.01)
        await srv.play(drop_at + 200)            # frames sent while we were away are lost
    await asyncio.sleep(0.3)
    s.stop()
    await task
    await srv.close()
    return got, events, s.stats, h


def test_rotations_deliver_every_frame_once_without_a_book_gap(btc_capture):
    frames, snap = load(btc_capture)
    ins = infer_instruments(btc_capture, "BTCUSDT")
    got, events, stats, h = uvloop.run(_session_run(frames, snap, ins, rotate_after_s=0.25))
    assert stats["rotations"] >= 2 and stats["duplicates_dropped"] > 0
    assert got == [f for _, f in frames]           # every frame, once, in order
    b = h.stats()["books"]["BTCUSDT"]
    assert b["gaps"] == 0 and b["state"] == "synced"
    assert events.count("rotated") == stats["rotations"]


def test_reconnect_after_a_drop_detects_the_gap(btc_capture):
    frames, snap = load(btc_capture)
    ins = infer_instruments(btc_capture, "BTCUSDT")
    got, events, stats, h = uvloop.run(_session_run(frames, snap, ins, rotate_after_s=3600, drop_at=1500))
    assert "disconnected" in events and stats["connects"] >= 2
    assert h.stats()["books"]["BTCUSDT"]["gaps"] == 1
    assert 0 in h.snapshot_needed and not h.is_valid(0)   # no trading until a new snapshot


async def _subscribe(frames):
    srv = ReplayWSServer(frames, rate_hz=0)
    url = await srv.start()
    got = []
    s = StreamSession(url, ["btcusdt@trade"], lambda p, m, w: got.append(orjson.loads(p)["stream"]))
    task = asyncio.ensure_future(s.run())
    while not s.connected or not srv.clients:
        await asyncio.sleep(0.01)
    await srv.play(0, 500)
    await s.subscribe(["BTCUSDT@bookTicker"])
    await srv.play(500, 1000)
    await asyncio.sleep(0.2)
    s.stop()
    await task
    await srv.close()
    return got, s.stats, s.url


def test_runtime_subscribe_is_sent_and_kept_for_reconnects(btc_capture):
    frames, _ = load(btc_capture, 1200)
    got, stats, url = uvloop.run(_subscribe(frames))
    first = set(got[:10])
    assert first == {"btcusdt@trade"}
    assert "btcusdt@bookTicker" in got
    assert stats["control_frames"] == 1             # the SUBSCRIBE reply is not data
    assert url.endswith("btcusdt@trade/btcusdt@bookTicker")


async def _greeted(frames, n):
    srv = ReplayWSServer(frames, send_on_connect=n)
    url = await srv.start()
    got = []
    s = StreamSession(url, STREAMS, lambda p, m, w: got.append(p), seed=1)
    task = asyncio.ensure_future(s.run())
    for _ in range(500):
        if len(got) >= n:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)                   # nothing more may come
    s.stop()
    await asyncio.wait_for(task, 5)
    await srv.close()
    return got, dict(s.stats)


def test_frames_sent_with_the_handshake_are_delivered(btc_capture):
    """A venue streams from the moment the handshake is done: the frames that arrive with
    (or right behind) the handshake's answer, before the session's coroutine has resumed,
    are delivered, not dropped as a closing connection's (found as a recorder test losing
    1 of 2,999 frames now and then)."""
    frames, _ = load(btc_capture, 300)
    got, stats = uvloop.run(_greeted(frames, 200))
    assert got == [p for _, p in frames[:200]]
    assert stats["closing_dropped"] == 0 and stats["frames"] == 200


async def _read_ends(frames, n, fail_first=False):
    srv = ReplayWSServer(frames, send_on_connect=n)
    url = await srv.start()
    got, ends, errors = [], [], []
    asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: errors.append(ctx["exception"]))

    def read_end():
        ends.append(len(got))
        if fail_first and len(ends) == 1:
            raise RuntimeError("a consumer's bug")

    s = StreamSession(url, STREAMS, lambda p, m, w: got.append(p), on_read_end=read_end, seed=1)
    task = asyncio.ensure_future(s.run())
    for _ in range(500):
        if len(got) >= n:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    s.stop()
    await asyncio.wait_for(task, 5)
    await srv.close()
    return got, ends, errors, dict(s.stats)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_read_end_is_called_after_each_reads_frames(btc_capture, loop):
    """``on_read_end`` (the fused engine's brain pass) comes once the frames of a socket read
    were all delivered: after the last frame, never before a frame of the same read, fewer
    times than there are frames when they arrive together; a consumer that raises there is
    reported as a failed loop callback and the connection carries on."""
    frames, _ = load(btc_capture, 300)
    run = asyncio.run if loop == "asyncio" else uvloop.run
    got, ends, errors, stats = run(_read_ends(frames, 200))
    assert got == [p for _, p in frames[:200]]
    assert ends and ends[-1] == 200 and ends == sorted(ends)
    assert len([e for e in ends if e]) < 200           # 200 frames sent at once: several per read
    assert errors == []
    got, ends, errors, stats = run(_read_ends(frames, 200, fail_first=True))
    assert got == [p for _, p in frames[:200]] and ends[-1] == 200
    assert [type(e) for e in errors] == [RuntimeError] and stats["connects"] == 1     # never reconnected


def test_a_transport_without_set_protocol_tells_the_read_end_by_the_last_frame(caplog):
    """Where the transport cannot take the read-end protocol, the session says so and goes
    on: the read's end is told after the frame picows marks as the last of its buffer, and
    one loop turn later (the buffer's last frame may be a ping picows answered itself)."""
    from picows import WSMsgType
    from engine.feed.ws import _Listener

    class Frame:                     # what the listener reads of picows's WSFrame
        msg_type = WSMsgType.TEXT

        def __init__(self, payload, last):
            self.payload, self.last_in_buffer = payload, last

        def get_payload_as_bytes(self):
            return self.payload

    class Bare:                      # an underlying transport with no set_protocol
        def get_protocol(self):
            return object()

    class WS:
        underlying_transport = Bare()

    got, ends = [], []
    s = StreamSession("ws://127.0.0.1:1", STREAMS, lambda p, m, w: got.append(p), on_read_end=lambda: ends.append(len(got)))
    lst = _Listener(s, 0)
    with caplog.at_level("WARNING", logger="cryptoscalp.ws"):
        lst.on_ws_connected(WS())
    assert lst.transport is not None
    assert any("no read-end hook" in r.getMessage() for r in caplog.records)
    s._connecting = 0                # this connection is the one being opened as primary

    async def frames():
        for k in range(3):           # three frames read together: only the last one is marked
            lst.on_ws_frame(None, Frame(b'{"k":%d}' % k, k == 2))
        assert got == [b'{"k":0}', b'{"k":1}', b'{"k":2}'] and ends == [3]
        lst.on_ws_frame(None, Frame(b'{"k":3}', False))     # a ping picows answered was the buffer's last
        assert ends == [3]
        await asyncio.sleep(0)                              # one loop turn later: told all the same
        assert ends == [3, 4]
    asyncio.run(frames())
