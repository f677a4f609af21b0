"""Run test servers in a background thread: the replay WebSocket server (its own event
loop) and a minimal REST endpoint serving a depth snapshot. For tests that drive the
installed CLI in a subprocess."""
from __future__ import annotations

import asyncio
import http.server
import threading
from urllib.parse import parse_qs, urlparse

from engine.testing.ws_server import ReplayWSServer


class ThreadedReplayWS:
    def __init__(self, frames, rate_hz: float = 0.0):
        self.server = ReplayWSServer(frames, rate_hz)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.url = asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)

    def wait_clients(self, n: int = 1, timeout: float = 30.0) -> None:
        import time
        deadline = time.monotonic() + timeout
        while len(self.server.clients) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.server.clients)} of {n} clients connected")
            time.sleep(0.02)

    def play(self, start: int = 0, stop: int | None = None, timeout: float = 60.0) -> None:
        asyncio.run_coroutine_threadsafe(self.server.play(start, stop), self.loop).result(timeout)

    def disconnect_all(self) -> None:
        self.loop.call_soon_threadsafe(self.server.disconnect_all)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class SnapshotHTTP:
    """GET /fapi/v1/depth?symbol=S -> the snapshot bytes given for S (400 otherwise);
    GET /fapi/v1/exchangeInfo -> ``exchange_info`` when given."""

    def __init__(self, snapshots: dict[str, bytes], exchange_info: bytes | None = None):
        snaps = {k.upper(): v for k, v in snapshots.items()}
        self.requests = 0
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                u = urlparse(self.path)
                sym = parse_qs(u.query).get("symbol", [""])[0].upper()
                outer.requests += 1
                if u.path.endswith("/depth") and sym in snaps:
                    body = snaps[sym]
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                elif u.path.endswith("/exchangeInfo") and exchange_info is not None:
                    body = exchange_info
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                else:
                    body = b'{"code":-1121,"msg":"Invalid symbol."}'
                    self.send_response(400)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/fapi/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
