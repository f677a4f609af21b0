"""The simulated exchange running in a background thread, with a small signed REST client
(urllib, HMAC-SHA256 as Binance specifies) for tests and benchmarks."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import uvloop

from engine.venues.sim.run import SimRunner
from engine.venues.sim.server import TEST_API_KEY, TEST_API_SECRET


class ThreadedSim:
    def __init__(self, **runner_kwargs):
        self.loop = uvloop.new_event_loop()
        self.runner: SimRunner | None = None
        ready = threading.Event()
        self.error = None

        def main():
            asyncio.set_event_loop(self.loop)
            try:
                self.runner = SimRunner(**runner_kwargs)
                self.base = self.loop.run_until_complete(self.runner.start())
                ready.set()
                self.loop.run_until_complete(self.runner.run())
                self.loop.run_until_complete(self.runner._stop.wait())
                self.loop.run_until_complete(self.runner.server.close())
            except Exception as e:   # surfaced to the test
                self.error = e
                ready.set()

        self.thread = threading.Thread(target=main, daemon=True)
        self.thread.start()
        if not ready.wait(30) or self.error:
            raise RuntimeError(f"sim did not start: {self.error}")
        self.ws = self.runner.server.ws_url
        self.key, self.secret = TEST_API_KEY, TEST_API_SECRET

    @property
    def sim(self):
        return self.runner.sim

    def with_book(self, timeout_s: float = 10.0) -> "ThreadedSim":
        """Wait (at most ``timeout_s``) until the synthetic market has a best bid on
        instrument 0, so that a test's first order meets a book; returns the sim."""
        deadline = time.time() + timeout_s
        while not self.sim.engine.book(0).best_bid and time.time() < deadline:
            time.sleep(0.05)
        return self

    def call_soon(self, fn, *args):
        """Run fn(*args) on the sim's loop and wait for its result."""
        fut = asyncio.run_coroutine_threadsafe(_run(fn, *args), self.loop)
        return fut.result(10)

    def request(self, method: str, path: str, params: dict | None = None, signed: bool = True,
                key: str | None = None, secret: str | None = None, timestamp: int | None = None,
                headers: dict | None = None):
        """(HTTP status, JSON body, response headers)."""
        params = dict(params or {})
        hdrs = dict(headers or {})
        if signed:
            params.setdefault("timestamp", timestamp if timestamp is not None else int(time.time() * 1000))
            q = urllib.parse.urlencode(params)
            sig = hmac.new((secret or self.secret).encode(), q.encode(), hashlib.sha256).hexdigest()
            q += f"&signature={sig}"
        else:
            q = urllib.parse.urlencode(params)
        if signed or key:
            hdrs["X-MBX-APIKEY"] = key or self.key
        url = f"{self.base}{path}" + (f"?{q}" if q else "")
        req = urllib.request.Request(url, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read() or b"null"), dict(r.headers)
        except urllib.error.HTTPError as e:
            body = e.read()
            return e.code, (json.loads(body) if body else None), dict(e.headers)

    def close(self):
        self.loop.call_soon_threadsafe(self.runner.stop)
        self.thread.join(15)


async def _run(fn, *args):
    r = fn(*args)
    if asyncio.iscoroutine(r):
        r = await r
    return r
