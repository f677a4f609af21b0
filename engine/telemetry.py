"""Telemetry: Prometheus metrics, JSON-lines logging, systemd notification.

``Metrics`` owns its own registry (several engines in one test process do not collide) and
serves it over HTTP (``serve(port)``; port 0 picks a free one). Names:

| metric | type | what |
|---|---|---|
| cryptoscalp_stage_seconds{stage} | histogram | features, inference, strategy, risk, send (frame -> request), tick_to_trade |
| cryptoscalp_orders_total{action} | counter | orders the gate passed (new, cancel, cancel_all) |
| cryptoscalp_fills_total | counter | fills and partial fills |
| cryptoscalp_risk_rejects_total{reason} | counter | the gate's refusals by reason |
| cryptoscalp_venue_rejects_total | counter | rejections by the venue |
| cryptoscalp_market_messages_total | counter | market messages handled |
| cryptoscalp_position_lots{symbol} | gauge | signed position |
| cryptoscalp_pnl | gauge | equity - starting equity (quote currency) |
| cryptoscalp_trading_state | gauge | 0 ACTIVE, 1 REDUCING, 2 HALTED |
| cryptoscalp_heartbeat_timestamp_seconds | gauge | last housekeeping tick (wall clock) |

The hot path pays a list append per stage sample and an integer add per market message:
``StageHistogram`` bins the samples with numpy when Prometheus reads them (or at the
housekeeping tick, ``Metrics.flush``), and ``Metrics.messages_pending`` is added to the
message counter at that tick (the counter lags by up to a second); ``prometheus_client``'s own ``observe`` (a lock and a Python bucket search, ~2 us)
stays off the path between a frame and its order.

``json_logging()`` makes the root logger write one JSON object per line to stdout
(time, level, logger, message, and any ``extra`` fields).

``sd_notify(msg)`` sends READY=1 / WATCHDOG=1 / STOPPING=1 / STATUS=... to systemd when
``NOTIFY_SOCKET`` is set (a unit with Type=notify and WatchdogSec), and does nothing
otherwise.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
import time

import numpy as np

STAGE_BUCKETS = (5e-6, 10e-6, 20e-6, 40e-6, 80e-6, 150e-6, 300e-6, 600e-6, 1.2e-3, 2.5e-3, 5e-3, 10e-3, 25e-3,
                 50e-3, 0.1, 0.25, 1.0)


STAGES = ("features", "inference", "strategy", "risk", "send", "tick_to_trade")


class StageHistogram:
    """cryptoscalp_stage_seconds{stage}, a Prometheus histogram fed in nanoseconds: the hot
    path appends to ``pending[stage]`` (a plain list); ``flush`` moves what is pending into
    per-bucket counts with one numpy call per stage (at the housekeeping tick, and before
    every scrape, from the HTTP thread: the lock keeps two flushes apart; an append racing
    a flush lands in the list after the part being taken)."""

    def __init__(self, name: str, doc: str, stages, buckets, registry):
        self.name, self.doc = name, doc
        self.bounds = tuple(buckets)
        self.edges_ns = np.asarray(buckets, dtype=np.float64) * 1e9
        self.pending = {s: [] for s in stages}
        self.counts = {s: np.zeros(len(buckets) + 1, np.int64) for s in stages}    # last: above every bound
        self.sums_ns = {s: 0 for s in stages}
        self._lock = threading.Lock()
        registry.register(self)

    def labels(self, stage: str):
        """``.observe(seconds)``, as a prometheus_client child has (not for the hot path)."""
        pend = self.pending[stage]
        return type("StageChild", (), {"observe": staticmethod(lambda s: pend.append(int(s * 1e9)))})()

    def flush(self) -> None:
        with self._lock:
            for stage, pend in self.pending.items():
                n = len(pend)
                if not n:
                    continue
                a = np.asarray(pend[:n], dtype=np.float64)
                del pend[:n]
                # bucket i counts le bound i: searchsorted(side="left") puts a value equal to a bound in it
                self.counts[stage] += np.bincount(np.searchsorted(self.edges_ns, a, side="left"),
                                                  minlength=len(self.bounds) + 1)
                self.sums_ns[stage] += int(a.sum())

    def collect(self):
        from prometheus_client.core import HistogramMetricFamily
        from prometheus_client.utils import floatToGoString
        self.flush()
        fam = HistogramMetricFamily(self.name, self.doc, labels=["stage"])
        with self._lock:
            for stage, c in self.counts.items():
                cum = np.cumsum(c)
                if not cum[-1]:
                    continue
                buckets = [(floatToGoString(b), int(cum[i])) for i, b in enumerate(self.bounds)]
                buckets.append(("+Inf", int(cum[-1])))
                fam.add_metric([stage], buckets, self.sums_ns[stage] / 1e9)
        yield fam

    def describe(self):
        from prometheus_client.core import HistogramMetricFamily
        return [HistogramMetricFamily(self.name, self.doc, labels=["stage"])]


class Metrics:
    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Gauge
        r = self.registry = CollectorRegistry()
        self.stage = StageHistogram("cryptoscalp_stage_seconds", "latency per stage", STAGES, STAGE_BUCKETS, r)
        self.stage_ns = self.stage.pending          # stage -> list: append nanoseconds
        self.messages_pending = 0                   # market messages since the last flush
        self.orders = Counter("cryptoscalp_orders_total", "orders passed by the risk gate", ["action"], registry=r)
        self.fills = Counter("cryptoscalp_fills_total", "fills and partial fills", registry=r)
        self.rejects = Counter("cryptoscalp_risk_rejects_total", "risk gate refusals", ["reason"], registry=r)
        self.venue_rejects = Counter("cryptoscalp_venue_rejects_total", "venue rejections", registry=r)
        self.messages = Counter("cryptoscalp_market_messages_total", "market messages handled", registry=r)
        self.position = Gauge("cryptoscalp_position_lots", "signed position, lots", ["symbol"], registry=r)
        self.pnl = Gauge("cryptoscalp_pnl", "equity minus starting equity", registry=r)
        self.state = Gauge("cryptoscalp_trading_state", "0 ACTIVE, 1 REDUCING, 2 HALTED", registry=r)
        self.heartbeat = Gauge("cryptoscalp_heartbeat_timestamp_seconds", "last housekeeping tick", registry=r)
        self.server = None
        self.port = None

    def flush(self) -> None:
        """What the hot path left pending (stage samples, the message count) into the metrics."""
        self.stage.flush()
        n, self.messages_pending = self.messages_pending, 0
        if n:
            self.messages.inc(n)

    def serve(self, port: int, addr: str = "127.0.0.1") -> int:
        from prometheus_client import start_http_server
        self.server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        self.port = self.server.server_port
        return self.port

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


class JsonFormatter(logging.Formatter):
    RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}

    def format(self, rec: logging.LogRecord) -> str:
        out = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(rec.created)) + f".{int(rec.msecs):03d}Z",
               "level": rec.levelname, "logger": rec.name, "message": rec.getMessage()}
        for k, v in rec.__dict__.items():
            if k not in self.RESERVED and not k.startswith("_"):
                out[k] = v
        if rec.exc_info:
            out["exception"] = self.formatException(rec.exc_info)
        return json.dumps(out, default=str)


def json_logging(level: int = logging.INFO, stream=None) -> logging.Handler:
    h = logging.StreamHandler(stream or sys.stdout)
    h.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(h)
    root.setLevel(level)
    return h


def sd_notify(msg: str) -> bool:
    """Send a notification to systemd if this process runs under a Type=notify unit. Never
    blocks: if the receiver's queue is full (a stalled service manager), the message is
    dropped and False returned, rather than stalling the trading loop that sends it."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.setblocking(False)
            s.connect(addr)
            s.sendall(msg.encode())
        return True
    except OSError:
        return False


def watchdog_interval_s() -> float | None:
    """Half the unit's WatchdogSec (systemd passes WATCHDOG_USEC), or None."""
    usec = os.environ.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = os.environ.get("WATCHDOG_PID")
    if pid and int(pid) != os.getpid():
        return None
    return int(usec) / 2e6
