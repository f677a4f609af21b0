"""The engine process: brain, risk, gateway and journal as function calls in one event loop,
with the feed either in the same loop or in a process of its own (``RunConfig.topology``):

- ``fused`` (the default): the feed too, no rings. Safe on any host, two cores included,
  because nothing spins (unless ``wait`` is ``spin``: the event loop then busy-polls and
  rehearses the model and the order path between messages, one core at 100 %).
- ``2proc``: the feed process (processes/feed.py: websocket, books, validation) publishes
  market records to the market ring and book tops to the book region; this process reads
  them (engine.feed.ringfeed.RingFeed, wait strategy ``RunConfig.wait``) and owns the
  feed process: it starts it, watches its heartbeat in the ``procs`` region, restarts it
  when it dies or hangs, and journals each restart with its cause. While the feed is down
  no market data arrives: the monitor's stale-feed rule HALTS trading until it is back.
- ``3proc``: the same feed process, and the brain (features, regime, ensemble, strategy)
  in a process of its own (processes/brain.py, engine.brain.Brain): it reads the market
  ring and writes intents to the intent ring; this process is risk, gateway and journal:
  it gates each intent against the mark it reads from the book region, sends it, and
  returns execution reports and positions over the exec ring and position region
  (engine.ipc.orderflow). A dead brain's quotes are cancelled at once; its successor
  starts with a fresh block of client ids, and what the dead one left unread is dropped.
- ``4proc``: as 3proc, and the gateway (order sessions, the user data stream, the
  cancel-on-disconnect countdown) in a process of its own (processes/gateway.py): this
  process is risk and journal; it publishes each gated order on the order ring and gets
  its results back on the gateway ring (engine.ipc.orderflow.GatewayLink). While the
  gateway is down, restarting or reconciling, trading is HALTED; when it died, what it had
  in flight is settled with the venue (VenueSync.recover: every open order of ours
  cancelled, every unsure order looked up by client id, missed fills fetched, positions
  from the venue) before the new one is used; cancels needed meanwhile go out through this
  process's own REST session.

Wiring (every piece is a component from engine/ or cext/):
    LiveFeed (WebSocket + FeedHandler + books + FeatureEngine)  --on_message-->
    brain: regime (OnlineRegime) -> model (EnsembleRuntime, optional) -> strategy
    risk:  RiskGate.check against RiskState (PositionBook keeps it current; TradingMonitor
           moves ACTIVE / REDUCING / HALTED every second)
    gateway: OrderGateway over signed REST; fills from the user data stream; VenueSync
             (engine.execution.recovery) at start, after user-stream gaps and at the stop
    journal: every intent's order or reject, every execution report, every state change
             (JournalWriter); market records are not journaled here (the recorder keeps
             raw frames when asked)

The hot path (``hot_path="compiled"``, the default): the same components, called from C
(cext.hotpath): in the fused topology FeedPath takes each frame from the WebSocket session
through the FeedHandler, the book top and the features, and at the end of each socket
read DecisionPath decides on each instrument's latest state (regime, model, strategy,
mark, gate) and writes every request the gate passes before it returns; the Python code
here then does the bookkeeping (``_decided``: answers' tasks, journal, metrics, refusals
told to the strategy). 2proc: the ring reader's ``on_message`` and ``_brain_pass`` call
DecisionPath. ``hot_path="python"``: each step called from here (``_decide_python``).

Stages are stamped on each order (CLOCK_MONOTONIC): ``mono_origin`` (frame read off the
socket), ``t_features``, ``t_infer``, ``t_strategy``, ``t_risk``, ``t_send`` (REST request
written); tick-to-trade = t_send - mono_origin.

Telemetry: Prometheus metrics (``engine.telemetry.Metrics``, ``metrics_port``), JSON log
lines, READY / WATCHDOG / STOPPING to systemd when run under a Type=notify unit (the
watchdog is fed by the once-a-second housekeeping loop).

Stop (Ctrl-C or SIGTERM): quoting stops, every open order is cancelled (cancel-all per
instrument), the journal records it and is flushed, then the process exits.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from cext.book import top_fields
from cext.hotpath import ACCEPTED, WRITTEN
from cext.records import message_times
from cext.risk import RiskGate, RiskState
from engine import schema
from engine.brain import Brain
from engine.execution.gateway import MARKET_OUTCOMES, OrderGateway
from engine.execution.recovery import VenueSync, journal_memory
from engine.ipc.orderflow import GATEWAY_DOWN as GW_REFUSED
from engine.features.vector import NAMES as FEATURE_NAMES
from engine.journal.journal import RK_EXEC, RK_ORDER, RK_REJECT, JournalWriter
from engine.risk.limits import RiskLimits
from engine.risk.monitor import TradingMonitor
from engine.risk.positions import PositionBook
from engine.telemetry import sd_notify

log = logging.getLogger("cryptoscalp.fused")
STATE_NAMES = {schema.TS_ACTIVE: "ACTIVE", schema.TS_REDUCING: "REDUCING", schema.TS_HALTED: "HALTED"}


@dataclass
class RunConfig:
    journal_dir: str = "run/journal"
    seconds: float | None = None            # None: until Ctrl-C
    seed: int = 1
    equity: float = 100_000.0
    daily_vol: float = 0.03
    quote_lots: int = 10
    max_inventory_lots: int = 50
    model_dir: str | None = None
    model_backend: str = "auto"              # how the ensemble runs: auto | native | onnxruntime (models/runtime.py)
    limits: RiskLimits = field(default_factory=RiskLimits)
    status_every_s: float = 1.0
    speed: float = 1.0                      # synthetic market speed (sim venue)
    max_future_ms: float = 1000.0           # feed: drop records stamped this far ahead (0: off; the
                                            # built-in sim faster than real time turns it off)
    admin: str | None = "ipc://run/admin.sock"   # None: no admin socket
    metrics_port: int | None = None          # Prometheus /metrics on 127.0.0.1 (0: any free port)
    symbols: tuple = ()                      # --venue URL: which symbols (default: all it lists)
    publish: str | None = None               # tcp://HOST:PORT: market records to other hosts (CURVE)
    publish_keys: dict | None = None         # server_public, server_secret, authorized [client public keys]
    pg_dsn: str | None = None                # the journal process copies the journal into PostgreSQL
    pg_name: str | None = None               # the journal's name there (default: its absolute path)
    market: str | None = None                # tcp://HOST:PORT: market data from another host's fan-out
    market_keys: dict | None = None          # client_public, client_secret, server_public (CURVE)
    topology: str = "fused"                  # fused | 2proc | 3proc | 4proc (see the module's docstring)
    children: str = "engine"                 # split topologies: who starts the processes: engine | systemd
    group: str | None = None                 # --children systemd: the group's name (segments /cs.NAME.*)
    manifest: str = "run/group.json"         # --children systemd: the processes' command lines
    wait: str = "hybrid"                     # 2proc: the market ring reader's wait (spin | hybrid | block);
                                             # fused: spin = the event loop busy-polls (one core)
    rehearse_us: float = 200.0               # fused spin: rehearse the model and the order path this often (0: off)
    hot_path: str = "compiled"               # fused, 2proc: the decision as one compiled call (cext.hotpath:
                                             # brain, gate, order written) | python (Brain.on_state, then the gate
                                             # and OrderGateway.start, each called from Python)
    cpus: dict = field(default_factory=dict)  # role -> CPU set, e.g. {"engine": "1", "feed": "0"}

TOPOLOGIES = ("fused", "2proc", "3proc", "4proc")
HOT_PATHS = ("compiled", "python")
RECONCILING = "user stream down or reconciling"
GATEWAY_DOWN = "gateway process down or restarting"


class FusedEngine:
    def __init__(self, cfg: RunConfig, instruments, rest, gateway, ws_url: str, rest_url: str):
        from engine.feed.live import LiveFeed
        self.cfg = cfg
        self.instruments = instruments
        self.rest, self.gateway = rest, gateway
        self.ws_url = ws_url
        n = max(i.inst for i in instruments) + 1
        self.state = RiskState(n)
        self.state.equity = self.state.peak_equity = self.state.day_start_equity = cfg.equity
        for ins in instruments:
            self.state.configure(ins.inst, tick_size=float(ins.tick_size), lot_size=float(ins.lot_size),
                                 min_qty_lots=ins.min_qty_lots, max_qty_lots=ins.max_qty_lots,
                                 min_notional=float(ins.min_notional), leverage=10.0)
            self.state.set_vol(ins.inst, cfg.daily_vol)
        self.gate = RiskGate(cfg.limits)
        self.book = PositionBook(self.state, balance=cfg.equity)
        for ins in instruments:
            self.book.add_instrument(ins.inst, float(ins.tick_size), float(ins.lot_size))
        self.monitor = TradingMonitor(cfg.limits, self.state)
        # Client ids must never repeat across restarts (the venue, the journal and PostgreSQL
        # key orders by them): each run of this journal gets its own 2^28-wide block.
        self.run_no, self.past = journal_memory(cfg.journal_dir)
        self.cid_base = (1 << 40) + (self.run_no << 28)
        if cfg.topology not in TOPOLOGIES:
            raise ValueError(f"topology {cfg.topology!r}: one of {', '.join(TOPOLOGIES)}")
        self.journal = JournalWriter(cfg.journal_dir)
        self.venue = VenueSync(rest, gateway, self.journal, instruments, self.past)
        # the brain in this process (fused, 2proc), or in a process of its own (3proc: self.link)
        self.brain = None
        if cfg.topology in ("fused", "2proc"):
            self.brain = Brain(instruments, quote_lots=cfg.quote_lots, max_inventory_lots=cfg.max_inventory_lots,
                               client_id_base=self.cid_base, model_dir=cfg.model_dir,
                               model_backend=cfg.model_backend, on_event=self.journal.append_event)
        self.journal.append_event({"event": "start", "topology": cfg.topology, "wait": cfg.wait, "instruments": [i.symbol for i in instruments],
                                   "model": cfg.model_dir, "seq_before": self.journal.seq, "run": self.run_no,
                                   "pid": os.getpid(), "restart_cause": os.environ.get("CRYPTOSCALP_RESTART_CAUSE")})
        self.children = {}
        self.heartbeats = None
        self.link = None                                   # 3proc, 4proc: intents in, execs and positions out
        self.book_region = None                            # 3proc, 4proc: marks from the feed's book region
        self.gw_link = None                                # 4proc: the gateway process's end (self.gateway)
        self.gw_unsure: dict[int, int] = {}                # 4proc: client id -> inst, in flight when it died
        self.gw_resync = False                             # 4proc: the venue must be asked before trading on
        self.gw_life = 0
        self.feed_handler = None                           # fused: the FeedHandler (its t_parse stamp)
        if cfg.market:                                     # another host's feed: no feed of our own
            if cfg.topology != "fused":
                raise ValueError("market data from a fan-out (--market) replaces the engine's feed: fused topology only")
            from engine.ipc.fanout import FanoutFeed
            self.feed = FanoutFeed(cfg.market, cfg.market_keys or {}, instruments, on_message=self.on_message,
                                   wait=cfg.wait)
        elif cfg.topology == "fused":
            self.feed = LiveFeed(instruments, ws_url, rest_url, on_message=self.on_message,
                                 max_future_ms=self.cfg.max_future_ms, on_read_end=self._brain_pass)
            self.feed_handler = self.feed.handler
        else:
            self.feed = self._split_feed(ws_url, rest_url)
        self.path = self.feed_path = None
        if cfg.hot_path not in HOT_PATHS:
            raise ValueError(f"hot path {cfg.hot_path!r}: one of {', '.join(HOT_PATHS)}")
        self.pg_name = cfg.pg_name or os.path.abspath(cfg.journal_dir)
        self.pg_final = None
        if cfg.pg_dsn:
            self._journal_writer()
        self.publisher = None
        if cfg.publish:
            from engine.ipc.fanout import MarketPublisher
            k = cfg.publish_keys or {}
            self.publisher = MarketPublisher(cfg.publish, k.get("server_public", b""), k.get("server_secret", b""),
                                             k.get("authorized", []))
            self.journal.append_event({"event": "publishing", "endpoint": self.publisher.endpoint})
        self.stopping = False
        self.tasks: set[asyncio.Task] = set()
        self.t2t_ns: list[int] = []
        from engine.pauses import GcPauses
        self.gc = GcPauses()
        self.data_ns: dict[int, int] = {}
        self.counts = {"intents": 0, "orders_sent": 0, "fills": 0, "rejects": 0, "venue_rejects": 0, "cancels": 0,
                       "conflated": 0}
        self._latest: dict = {}                            # inst -> its latest message's state, for _brain_pass
        self._pass_due = False
        self._mids = {}                  # inst -> the book mid (ticks) of its last decision (rehearsals)
        self._rehearsal_intent = None
        self.rehearsals = 0
        self.rehearsal_error = None
        self.rejects_by_layer: dict[str, int] = {}
        self.t_start = time.monotonic()
        self.last_tick = time.monotonic()
        self.user_reconnects = 0
        self.fatal: str | None = None                      # why the engine stopped itself, if it did
        self.stop_event: asyncio.Event | None = None
        from engine.telemetry import Metrics
        self.metrics = Metrics()
        self.stage_ns = self.metrics.stage_ns               # stage -> list of nanoseconds (flushed each second)
        # labelled children looked up once (``labels()`` costs a few us per call)
        self.order_ctr = {schema.ACT_NEW: self.metrics.orders.labels("new"),
                          schema.ACT_CANCEL: self.metrics.orders.labels("cancel"), -1: self.metrics.orders.labels("other")}
        # the decision, from the instrument's state to the order written, as one compiled call; in
        # the fused topology the market side too, from the frame to the decision (unless every
        # message is also published to other hosts: that stays the Python on_message's)
        if self.brain is not None and cfg.hot_path == "compiled" and isinstance(gateway, OrderGateway):
            from cext.hotpath import DecisionPath, FeedPath
            self.path = DecisionPath(self.brain, self.gate, self.state, self.book, gateway, self.feed.features)
            if self.feed_handler is not None and self.publisher is None:
                self.feed_path = FeedPath(self.feed_handler, self.feed.features, self.path, self.feed, self)
                self.feed.session.on_frame = self.feed_path.frame
                self.feed.session.on_read_end = self.feed_path.read_end

    def _split_feed(self, ws_url: str, rest_url: str):
        """2proc: the heartbeat region, the ring reader, and the feed process (started in run).
        3proc: the same feed process, the brain process, and the link to it (exec ring and
        position region created here, the brain's intent ring read in run)."""
        import sys

        import msgspec

        from engine.feed.ringfeed import RingFeed
        self._group_init()
        cmd = [sys.executable, "-m", "processes.feed", "--run", self.group, "--ws", ws_url, "--rest", rest_url,
               "--instruments", msgspec.json.encode(self.instruments).decode(), "--parent", str(os.getpid()),
               "--max-future-ms", str(self.cfg.max_future_ms)]
        if self.cfg.cpus.get("feed"):
            cmd += ["--cpus", self.cfg.cpus["feed"]]
        self.children["feed"] = self._child("feed", cmd)
        if self.cfg.topology == "2proc":
            return RingFeed(self.group, self.instruments, on_message=self.on_message, wait=self.cfg.wait)
        from engine.ipc.orderflow import EngineLink
        self.link = EngineLink(self.group, max(i.inst for i in self.instruments) + 1)
        self._top = np.zeros(1, schema.BOOK_TOP_DTYPE)
        self.children["brain"] = self._child("brain", self._brain_cmd(self.link.next_life(self.cid_base)))
        if self.cfg.topology == "4proc":
            self._gateway_process()
        return self.link

    def _gateway_process(self) -> None:
        """4proc: the order ring and this end of the gateway ring; the gateway process, with
        the API keys in its environment (never on a command line)."""
        import sys

        import msgspec

        from engine.ipc.orderflow import GatewayLink
        self.gw_link = self.gateway = GatewayLink(self.group, self.rest, self.instruments)
        self.gateway.on_report = self.on_exec
        self.gateway.on_state = self._gateway_state
        cmd = [sys.executable, "-m", "processes.gateway", "--run", self.group, "--base", self.rest.base,
               "--ws", self.ws_url, "--instruments", msgspec.json.encode(self.instruments).decode(),
               "--parent", str(os.getpid()), "--wait", self.cfg.wait]
        if self.cfg.cpus.get("gateway"):
            cmd += ["--cpus", self.cfg.cpus["gateway"]]
        env = dict(os.environ, CRYPTOSCALP_API_KEY=self.rest.key, CRYPTOSCALP_API_SECRET=self.rest.secret.decode())
        self.children["gateway"] = self._child("gateway", cmd, env=env)

    def _gateway_died(self, ev: dict) -> None:
        """4proc: HALTED; what the dead gateway had in flight is settled with the venue once
        its successor is READY (``_gateway_state``)."""
        self.gw_life += 1
        for order in self.gateway.down():
            if int(order["action"][0]) in (schema.ACT_NEW, schema.ACT_REPLACE):
                self.gw_unsure[int(order["client_id"][0])] = int(order["inst"][0])
        self.gw_resync = True
        self._hold(GATEWAY_DOWN)
        self.journal.append_event({"event": "gateway_down", "cause": ev.get("cause", ""),
                                   "unsure_orders": sorted(self.gw_unsure)})

    def _gateway_state(self, state: int) -> None:
        if self.stopping:
            return
        if state == schema.GW_RECONCILING:
            if self.gateway.up:                          # it was trading: its user stream dropped
                self.user_reconnects += 1
                self.journal.append_event({"event": "user_stream_lost", "process": "gateway"})
            self._hold(RECONCILING)
        elif state == schema.GW_READY:
            task = asyncio.ensure_future(self._gateway_ready(self.gw_life))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _gateway_ready(self, life: int) -> None:
        """The gateway is connected and reconciled its own orders: fetch the fills nobody
        heard (and, after its death, settle everything it had in flight), take the venue's
        positions, trade again. Retried until it succeeds: trading stays HALTED until then."""
        async with self.gw_lock:
            while not self.stopping and life == self.gw_life:
                try:
                    if self.gw_resync:
                        rec = await self.venue.recover(self.seed_positions, unsure=dict(self.gw_unsure),
                                                       emit=self.on_exec)
                        self.gw_unsure.clear()
                        self.gw_resync = False
                        ended = len(rec["orders_ended"])
                    else:
                        if await self.venue.sync_fills():
                            await self.seed_positions()
                        ended = 0
                except Exception as e:
                    log.error("reconciling after the gateway's READY: %s (HALTED; again in 2 s)", e)
                    self.journal.append_event({"event": "reconcile_failed", "error": str(e)[:200]})
                    await asyncio.sleep(2.0)
                    continue
                if life != self.gw_life:                 # it died again meanwhile: its successor's READY
                    return
                self.gateway.up = True
                self.journal.append_event({"event": "reconciled", "by": "gateway", "orders_ended": ended})
                self._release(GATEWAY_DOWN)
                self._release(RECONCILING)
                return

    def _group_init(self) -> None:
        """The group's name and its heartbeat region, for the processes this engine owns."""
        if self.heartbeats is not None:
            return
        from cext.shm_core import cleanup_stale, find_segments, pid_alive, segment_owner
        from engine.feed.ringfeed import segments
        from engine.ipc import run_prefix
        from engine.ipc.heartbeat import Heartbeats
        from engine.ipc.waits import remove_bells
        if self.cfg.children == "systemd":            # a fixed name: the units' processes find it
            if not self.cfg.group:
                raise ValueError("--children systemd needs --group NAME (the group the units' processes join)")
            self.group = self.cfg.group
            live = {n: segment_owner(n)[1] for n in find_segments(run_prefix(self.group))}
            live = {n: p for n, p in live.items() if pid_alive(p)}
            if live:
                raise RuntimeError(f"group {self.group!r}: segments of live processes exist ({live}): another engine "
                                   f"of this group, or its processes, still run")
            cleanup_stale(run_prefix(self.group))     # a dead predecessor's
            remove_bells(self.group)
        else:
            cleanup_stale("/cs.g")                    # segments of groups whose processes died
            remove_bells()                            # and the doorbells of groups whose engine died
            self.group = f"g{os.getpid()}"
        self.heartbeats = Heartbeats.create(segments(self.group)[2])
        self.segment_prefix = run_prefix(self.group)

    def _child(self, name: str, cmd: list[str], env: dict | None = None):
        """A process of the group: started and restarted by this engine (``Child``), or by
        systemd, one unit per process (``ExternalChild``: ``--children systemd``; its
        command line is in the group's manifest, ``cryptoscalp child ROLE`` reads it)."""
        from processes.supervisor import Child, ExternalChild
        if self.cfg.children == "systemd":
            return ExternalChild(name, cmd)
        return Child(name, cmd, env=env)

    def _write_manifest(self) -> None:
        """--children systemd: each process's command line (``--parent 0``: systemd is its
        parent) and the last dead pid of each that this engine has dealt with, written
        atomically (0600) for ``cryptoscalp child ROLE``. No secret is in it: the gateway's
        keys come from its unit's EnvironmentFile (the built-in sim's public test keys
        excepted)."""
        import json

        from engine.venues.sim.server import TEST_API_KEY, TEST_API_SECRET
        roles = {}
        for name, c in self.children.items():
            args = list(c.cmd[3:])                    # after: python -m processes.NAME
            if "--parent" in args:
                args[args.index("--parent") + 1] = "0"
            roles[name] = {"module": c.cmd[2], "args": args, "after_pid": c.after_pid}
        if "gateway" in roles and self.rest.key == TEST_API_KEY:
            roles["gateway"]["env"] = {"CRYPTOSCALP_API_KEY": TEST_API_KEY, "CRYPTOSCALP_API_SECRET": TEST_API_SECRET}
        path = os.path.abspath(self.cfg.manifest)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"group": self.group, "engine_pid": os.getpid(), "roles": roles}, f)
        os.replace(tmp, path)

    def _journal_writer(self) -> None:
        """--pg: the journal process copies the journal into PostgreSQL as it grows."""
        import sys

        self._group_init()
        cmd = [sys.executable, "-m", "processes.journal", "--run", self.group, "--journal",
               os.path.abspath(self.cfg.journal_dir), "--dsn", self.cfg.pg_dsn, "--name", self.pg_name,
               "--parent", str(os.getpid())]
        if self.cfg.cpus.get("journal"):
            cmd += ["--cpus", self.cfg.cpus["journal"]]
        self.children["journal"] = self._child("journal", cmd)

    def _brain_cmd(self, cid_start: int) -> list[str]:
        import sys

        import msgspec
        cmd = [sys.executable, "-m", "processes.brain", "--run", self.group, "--cid-start", str(cid_start),
               "--instruments", msgspec.json.encode(self.instruments).decode(), "--parent", str(os.getpid()),
               "--quote-lots", str(self.cfg.quote_lots), "--max-inventory-lots", str(self.cfg.max_inventory_lots),
               "--wait", self.cfg.wait]
        if self.cfg.model_dir:
            cmd += ["--model", self.cfg.model_dir, "--inference", self.cfg.model_backend]
        if self.cfg.cpus.get("brain"):
            cmd += ["--cpus", self.cfg.cpus["brain"]]
        return cmd

    def _brain_died(self, ev: dict) -> None:
        """3proc: the brain is gone. Its quotes are cancelled, whatever it published that is
        not gated yet is dropped, and its successor gets a new block of client ids."""
        c = self.children["brain"]
        c.cmd = self._brain_cmd(self.link.next_life(self.cid_base))
        if self.stopping:
            return
        task = asyncio.ensure_future(self._cancel_quotes(ev.get("cause", "")))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _cancel_quotes(self, cause: str) -> None:
        n = await self.cancel_all()
        self.journal.append_event({"event": "brain_down_quotes_cancelled", "cancelled": n, "cause": cause,
                                   "next_client_id": self.link.floor})

    def _input_died(self, task: asyncio.Task) -> None:
        """The market (or, 3proc, intent) reader must never die quietly: an engine that no
        longer hears the market stops (its orders cancelled) and exits non-zero, so that its
        supervisor restarts it."""
        if self.stopping or task.cancelled() or task.exception() is None:
            return
        e = task.exception()
        log.critical("the engine's input died: %r: stopping (open orders are cancelled first)", e, exc_info=e)
        self.fatal = f"{type(e).__name__}: {e}"[:300]
        self.journal.append_event({"event": "fatal", "where": "input", "error": self.fatal})
        if self.stop_event is not None:
            self.stop_event.set()

    def _need_model(self) -> None:
        if not self.cfg.model_dir:
            raise ValueError("no model: the engine runs rule-based (start it with --model DIR)")

    def _restart_brain(self, why: str) -> dict:
        """3proc: a model change is a new brain (SIGTERM; the watch restarts it with the
        registry's current version, after its quotes were cancelled)."""
        self._need_model()
        c = self.children["brain"]
        if c.alive:
            os.kill(c.pid, signal.SIGTERM)
        self.journal.append_event({"event": "brain_restart", "why": why})
        return {"brain_restarting": True, "why": why}

    # ------------------------------------------------------------------ brain + risk
    def on_message(self, inst: int, records, fe, top) -> None:
        """fused, 2proc: one market message (book and features already updated by the feed).
        The brain does not run here but once the frames read together are all applied
        (``_brain_pass``): a burst of messages for an instrument becomes one decision on its
        latest state (the rest are counted, ``conflated``), so the engine cannot fall behind
        the market by scoring every message of a burst. fused: the feed calls the pass as
        soon as the socket read's frames are all handed over (LiveFeed's ``on_read_end``);
        2proc, and fused if that did not happen: next in the event loop."""
        if self.publisher is not None:
            self.publisher.publish(self._sym(inst), records, top)
        self.metrics.messages_pending += 1
        if self.stopping:
            return
        origin, ts = message_times(records)
        t_parse = self.feed_handler.t_parse if self.feed_handler is not None else 0   # fused only
        if inst in self._latest:
            self.counts["conflated"] += 1
        # the top's fields, not the array: a ring reader hands every instrument the same buffer
        self._latest[inst] = (origin, ts, t_parse, fe, top_fields(top))
        if not self._pass_due:
            self._pass_due = True
            asyncio.get_running_loop().call_soon(self._brain_pass)

    def _brain_pass(self) -> None:
        if not self._pass_due:
            return                          # fused: already done at the end of the socket read
        self._pass_due = False
        latest, self._latest = self._latest, {}
        if self.stopping:
            return
        for inst, (origin, ts, t_parse, fe, top) in latest.items():
            self._decide(inst, origin, ts, t_parse, fe, top)

    def _decide(self, inst: int, origin: int, ts: int, t_parse: int, fe, top: tuple) -> None:
        """The brain on an instrument's latest state, its intents through the gate and out:
        one compiled call (``DecisionPath.decide``: every request the gate passes written
        before it returns), then the bookkeeping of what it did, in order: a written
        order's task (``OrderGateway.written``), the slow path of one it could not write,
        a refusal journaled and told to the strategy."""
        if self.path is None:
            return self._decide_python(inst, origin, ts, t_parse, fe, top)
        self._decided(inst, origin, self.path.decide(inst, origin, ts, t_parse, *top))

    def _decided(self, inst: int, origin: int, out) -> None:
        """The bookkeeping of one ``DecisionPath`` decision (``out``: its outcomes, None
        when the strategy had nothing to do), after every request it made was written."""
        t_feat, t_inf, t_str, scored, mid = self.path.last(inst)
        self.data_ns[inst] = t_feat
        if mid:
            self._mids[inst] = mid
        if out:
            self.counts["intents"] += len(out)
            for outcome, rec, a, b in out:
                if outcome == WRITTEN:
                    self._sent(rec, self.gateway.written(rec, a, b), int(rec["t_strategy"][0]))
                elif outcome == ACCEPTED:
                    self._sent(rec, self.gateway.start(rec, write=False), int(rec["t_strategy"][0]))
                else:
                    self._after(False, rec, a)
        st = self.stage_ns
        st["features"].append(t_feat - origin)
        if scored:
            st["inference"].append(t_inf - t_feat)
        st["strategy"].append(t_str - t_inf)

    def _decide_python(self, inst: int, origin: int, ts: int, t_parse: int, fe, top: tuple) -> None:
        """``_decide`` through Python (``--hot-path python``): Brain.on_state, then each
        intent gated and written (``_gate_and_write``) and finished (``_after``)."""
        b = self.brain
        intents = b.on_state(inst, origin, ts, fe, *top, t_parse)
        t_feat = b.t_feat
        self.data_ns[inst] = t_feat
        if b.mid:
            self._mids[inst] = b.mid
            self.state.set_market(inst, mark_px=b.mid, mark_ns=t_feat, data_ns=t_feat, book_valid=True)
            self.book.on_mark(inst, b.mid)
        if intents:
            self.counts["intents"] += len(intents)
            # every intent gated and written in order first; then, the message's requests out of
            # the door, the refusals' and the writes' bookkeeping (journal, strategy, tasks, metrics)
            out = []
            try:
                for it in intents:
                    out.append(self._gate_and_write(it))
            finally:                        # an order written is always awaited and journaled
                for done in out:
                    self._after(*done)
        st = self.stage_ns
        st["features"].append(t_feat - origin)
        if b.scored:
            st["inference"].append(b.t_inf - t_feat)
        st["strategy"].append(b.t_str - b.t_inf)

    def on_intent(self, it) -> None:
        """3proc: one intent from the brain process. The instrument's mark is read from the
        feed's book region first (the gate checks prices and exposure against it)."""
        if self.stopping:
            return
        self.counts["intents"] += 1
        self._mark_from_region(int(it["inst"][0]))
        self._submit(it)

    def _mark_from_region(self, inst: int) -> None:
        if self.book_region is None:
            from cext.region import Region
            from engine.feed.ringfeed import segments
            from engine.ipc import segment_not_ready
            try:
                self.book_region = Region.attach(segments(self.group)[1], schema.BOOK_TOP_DTYPE)
            except Exception as e:
                if segment_not_ready(e):
                    return                              # the feed has not made it yet: no mark
                raise
        top = self._top
        self.book_region.read(inst, top)
        bb, ba, t = int(top["bid_px"][0, 0]), int(top["ask_px"][0, 0]), int(top["mono_pub"][0])
        if t:
            self.data_ns[inst] = t
        if not (int(top["flags"][0]) & schema.F_BOOK_INVALID) and bb > 0 and ba > bb:
            mid = (bb + ba) // 2
            self.state.set_market(inst, mark_px=mid, mark_ns=t, data_ns=t, book_valid=True)
            self.book.on_mark(inst, mid)

    def _to_brain(self, e) -> None:
        """An execution report for the strategy: in this process, or over the exec ring."""
        if self.brain is not None:
            self.brain.on_exec(e)
        else:
            self.link.send_exec(e)

    def _submit(self, it) -> None:
        self._after(*self._gate_and_write(it))

    def _gate_and_write(self, it):
        """The gate; if it passes, the request written now (``OrderGateway.start``) and the
        PositionBook told (the next intent's gate check sees this order). Returns what
        ``_after`` needs to finish either outcome: everything else waits until the other
        intents of the message are written too."""
        ok, res = self.gate.check(it, self.state)
        if not ok:
            return False, schema.copy_records(res), it
        order = schema.copy_records(res)        # t_risk: the gate's
        # first out of the door (NEW/CANCEL written here, t_send stamped after the write), then
        # the bookkeeping: no await in between, so no answer can arrive before it is done
        pending = self.gateway.start(order)
        self.book.on_order_sent(order)
        return True, order, (pending, int(it["t_strategy"][0]))

    def _after(self, ok: bool, rec, more) -> None:
        """``_gate_and_write``'s outcome finished: a refusal journaled and reported to the
        strategy; a written order's task and metrics (``_sent``)."""
        if ok:
            self._sent(rec, *more)
            return
        self.counts["rejects"] += 1
        name = RiskGate.reason_name(int(rec["reason"][0]))
        self.rejects_by_layer[name] = self.rejects_by_layer.get(name, 0) + 1
        self.metrics.rejects.labels(name).inc()
        self.journal.append_record(RK_REJECT, rec)
        e = np.zeros(1, schema.EXEC_DTYPE)
        e["kind"], e["client_id"], e["inst"] = schema.EX_REJECT, more["client_id"][0], more["inst"][0]
        self._to_brain(e[0])

    def _sent(self, order, pending, t_str: int) -> None:
        """After the write: the task that awaits the answer, counters and stage metrics."""
        task = asyncio.ensure_future(self._send(order, pending))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        action = int(order["action"][0])
        self.counts["orders_sent"] += 1
        if action == schema.ACT_CANCEL:
            self.counts["cancels"] += 1
        self.stage_ns["risk"].append(int(order["t_risk"][0]) - t_str if t_str else 0)
        self.order_ctr.get(action, self.order_ctr[-1]).inc()

    async def _send(self, order, pending) -> None:
        execs = await pending
        self.journal.append_record(RK_ORDER, order)     # with its t_send
        if int(order["action"][0]) == schema.ACT_NEW and int(order["mono_origin"][0]) and int(order["t_send"][0]):
            t2t = int(order["t_send"][0]) - int(order["mono_origin"][0])
            if len(self.t2t_ns) < 1_000_000:
                self.t2t_ns.append(t2t)
            self.stage_ns["tick_to_trade"].append(t2t)
            self.stage_ns["send"].append(int(order["t_send"][0]) - int(order["t_risk"][0]))
        for e in execs:
            if int(e["kind"]) == schema.EX_REJECT:
                self.counts["venue_rejects"] += 1
                self.metrics.venue_rejects.inc()
                if int(e["reason"]) not in MARKET_OUTCOMES and int(e["reason"]) != GW_REFUSED:   # a venue problem
                    self.monitor.on_exchange_error(time.monotonic_ns())
            self.on_exec(e)

    def on_exec(self, e) -> None:
        k, inst = int(e["kind"]), int(e["inst"])
        if (k in (schema.EX_FILL, schema.EX_PARTIAL) and int(e["qty"])
                and (inst, int(e["trade_id"])) in self.past["trades"]):
            return                          # already journaled (recovered from userTrades earlier)
        self.journal.append_record(RK_EXEC, np.asarray(e).reshape(1))
        cid = int(e["client_id"])
        if k == schema.EX_ACK and int(e["exch_order_id"]):
            self.past["order_of"][(inst, int(e["exch_order_id"]))] = cid
            self.past["open"][cid] = (inst, int(e["exch_order_id"]))
        elif k in (schema.EX_FILL, schema.EX_PARTIAL) and int(e["qty"]):
            self.past["trades"].add((inst, int(e["trade_id"])))
            self.counts["fills"] += 1
            self.metrics.fills.inc()
        if k in (schema.EX_FILL, schema.EX_CANCELED, schema.EX_EXPIRED, schema.EX_REJECT):
            self.past["open"].pop(cid, None)
        self.book.on_exec(e)
        if self.link is not None and k in (schema.EX_FILL, schema.EX_PARTIAL):
            self.link.set_position(inst, self.book.positions[inst].qty)
        self._to_brain(e)

    # ------------------------------------------------------------------ user data stream
    async def user_stream(self) -> None:
        """Execution reports from the venue's user data stream. Until it is connected and
        reconciled (open orders, missed fills, positions), at start and after every loss,
        trading is HALTED: nothing new goes out while the engine may not know its orders."""
        def down(err) -> None:
            self._hold(RECONCILING)
            if err is not None:
                self.user_reconnects += 1
                self.journal.append_event({"event": "user_stream_lost", "error": str(err)[:200]})

        async def reconciled(rec) -> None:
            for e in rec["gone"]:
                self.on_exec(e)
            if await self.venue.sync_fills():          # fills that happened while we were not listening
                await self.seed_positions()
            self.journal.append_event({"event": "reconciled", "gone": int(len(rec["gone"])),
                                       "unknown": len(rec["unknown"]), "positions": rec["positions"]})
            self._release(RECONCILING)

        def reports(execs) -> None:
            for e in execs:
                self.on_exec(e)
        await self.gateway.follow_user_stream(self.ws_url, lambda: self.stopping, down, reconciled, reports)

    # ------------------------------------------------------------------ recovery
    async def seed_positions(self) -> dict:
        """Positions from the venue (the truth after a crash or a gap in the user stream)
        into the position book, the risk state and the strategy (3proc: the position region)."""
        positions = {}
        for ins, lots, entry_ticks in await self.venue.positions():
            pos = self.book.positions[ins.inst]
            if lots != pos.qty:
                pos.qty = lots
                pos.avg_px = entry_ticks
                self.state.set_position(ins.inst, lots)
            if self.brain is not None:
                self.brain.set_inventory(ins.inst, lots)
            else:
                self.link.set_position(ins.inst, lots)
            positions[ins.symbol] = lots
        return positions

    # ------------------------------------------------------------------ housekeeping
    def _sym(self, inst: int) -> str:
        return next(i.symbol for i in self.instruments if i.inst == inst)

    def status(self) -> dict:
        t2t = np.asarray(self.t2t_ns[-20000:]) if self.t2t_ns else None
        el = max(1e-9, time.monotonic() - self.t_start)
        pos = {self._sym(i): int(p.qty) for i, p in self.book.positions.items()}
        return {"trading_state": STATE_NAMES.get(self.state.trading_state, "?"), "positions": pos,
                "pnl": round(self.book.equity() - self.cfg.equity, 4), "orders_sent": self.counts["orders_sent"],
                "fills": self.counts["fills"], "rejects": dict(self.rejects_by_layer),
                "venue_rejects": self.counts["venue_rejects"],
                "tick_to_trade_us": None if t2t is None else {"p50": round(float(np.percentile(t2t, 50)) / 1e3, 1),
                                                              "p99": round(float(np.percentile(t2t, 99)) / 1e3, 1)},
                "send_split_us": self.rest.send_split(),         # 4proc: in the gateway process (its stop line)
                "events_per_s": round(self.feed.messages / el, 1), "messages": self.feed.messages,
                "conflated": self.counts["conflated"],     # messages the brain skipped for a later one
                "rehearsals": self.rehearsals,             # fused --wait spin: cache warmings between messages
                "rehearsal_error": self.rehearsal_error,
                "journal_seq": self.journal.seq, "gc": self.gc.stats(),
                "postgres": self._pg_status(),
                "topology": self.cfg.topology,
                "faults_survived": {**self.feed.fault_stats(), "user_stream_reconnects": self.user_reconnects,
                                    "process_restarts": {n: c.restarts for n, c in self.children.items()},
                                    "gateway": {**self.gateway.counters(),
                                                **(self.gw_link.counts if self.gw_link else {})}}}

    def _pg_status(self) -> dict | None:
        """--pg: rows the journal process wrote (this run of it) and its outages."""
        if "journal" not in self.children:
            return None
        if self.pg_final is not None:               # the group's segments are gone: the last reading
            return self.pg_final
        beat = self.heartbeats.read("journal")
        ok = beat is not None and beat["pid"] == self.children["journal"].pid
        return {"journal": self.pg_name, "rows_written": beat["events"] if ok else 0,
                "outages": beat["errors"] if ok else 0, "writer_alive": self.children["journal"].alive}

    def processes(self) -> list[dict]:
        """Each process of the group: name, pid, alive, restarts, last heartbeat age."""
        out = [{"name": "engine" if self.children else "fused", "pid": os.getpid(), "alive": True, "restarts": 0,
                "last_heartbeat_age_s": round(time.monotonic() - self.last_tick, 3)}]
        for name, c in self.children.items():
            beat = self.heartbeats.read(name)
            out.append({"name": name, "pid": c.pid, "alive": c.alive, "restarts": c.restarts,
                        "last_heartbeat_age_s": round(c.heartbeat_age(beat), 3), "last_cause": c.last_cause,
                        "events": beat["events"] if beat and beat["pid"] == c.pid else 0})
        return out

    def _watch_children(self) -> None:
        if self.heartbeats is None:
            return
        self.heartbeats.beat("engine", events=self.feed.messages)
        for name, c in self.children.items():
            beat = self.heartbeats.read(name)
            if name == "brain" and beat is not None and beat["pid"] == c.pid:
                self.link.messages = beat["events"]
                self.link.brain_ready = beat["state"] == schema.PS_READY
            ev = c.check(beat)
            if ev is not None:
                log.warning("%s: %s", ev["event"], ev)
                self.journal.append_event(ev)
                if name == "brain" and ev["event"] in ("process_died", "process_given_up"):
                    self._brain_died(ev)
                if name == "gateway" and ev["event"] in ("process_died", "process_given_up"):
                    self._gateway_died(ev)
                if ev["event"] == "process_died" and self.cfg.children == "systemd":
                    self._write_manifest()              # its successor may start now (after_pid)

    def print_status(self) -> None:
        s = self.status()
        t2t = s["tick_to_trade_us"] or {"p50": float("nan"), "p99": float("nan")}
        ins = self.instruments[0]
        q = s["positions"][ins.symbol]
        if self.brain is not None:
            rd = self.feed.features[ins.inst].ready
            ready = int(rd.sum())
            missing = [n for n, r in zip(FEATURE_NAMES, rd) if not r]
            warm = "" if ready == 25 else (f"  features {ready}/25 ready (waiting for: {', '.join(missing[:3])}"
                                           f"{f' +{len(missing) - 3} more' if len(missing) > 3 else ''})")
        else:                                   # 3proc: the features are in the brain process
            warm = "" if self.link.brain_ready else "  (waiting for: the brain process's features)"
        # one write with its newline: the processes of a group (and a supervisor) share stdout
        sys.stdout.write(f"{ins.symbol} pos {ins.lots_to_qty(abs(q)) if q >= 0 else '-' + ins.lots_to_qty(-q):>7} "
                         f"pnl {s['pnl']:>9.2f}  orders {s['orders_sent']:>5} fills {s['fills']:>4} "
                         f"rejects {sum(s['rejects'].values()):>4}  risk {s['trading_state']:<8} "
                         f"t2t p50 {t2t['p50']:>7.1f} us p99 {t2t['p99']:>8.1f} us  {s['events_per_s']:>6.0f} ev/s"
                         f"{warm}\n")
        sys.stdout.flush()

    async def _housekeeping(self) -> None:
        while not self.stopping:
            await asyncio.sleep(1.0)
            self.last_tick = time.monotonic()
            self._watch_children()
            if self.link is not None:                 # 3proc: marks and data age from the book region
                for ins in self.instruments:
                    self._mark_from_region(ins.inst)
            now = time.monotonic_ns()
            self.gc.tick()                            # the collector's pauses here, not mid-message
            if self.path is not None:
                self.path.refresh_models()            # (reloads tell it at once; this catches any other way)
            m = self.metrics
            m.flush()
            m.heartbeat.set(time.time())
            m.pnl.set(self.book.equity() - self.cfg.equity)
            m.state.set({schema.TS_ACTIVE: 0, schema.TS_REDUCING: 1, schema.TS_HALTED: 2}.get(self.state.trading_state, 2))
            for inst, p in self.book.positions.items():
                m.position.labels(self._sym(inst)).set(p.qty)
            if not self.stopping:
                sd_notify("WATCHDOG=1")        # systemd's watchdog is fed by this loop: a hung loop gets restarted
            before = self.state.trading_state
            self.monitor.evaluate(now, self.book.consecutive_losses, self.data_ns)
            if self.state.trading_state != before:
                self.journal.append_event({"event": "trading_state", "from": STATE_NAMES[before],
                                           "to": STATE_NAMES[self.state.trading_state],
                                           "reasons": sorted(self.monitor.reasons)})
            try:
                await self.gateway.heartbeat()            # cancel-on-disconnect countdown
            except Exception as e:
                log.warning("countdownCancelAll: %s", e)

    def _models_changed(self, out):
        """The brain loaded other models: the compiled path takes them for its next decision."""
        if self.path is not None:
            self.path.refresh_models()
        return out

    def _rehearse_order(self, gateway) -> None:
        """A post-only bid of the strategy's size one tick under the last mid of the next
        instrument in turn, through what ``_decide`` and ``_gate_and_write`` do with an
        intent, changing nothing: RiskGate.rehearse (the gate's state put back), the copy
        and stamp, OrderGateway.rehearse (built and signed, not written)."""
        if not self._mids:
            if gateway is not None:
                gateway.rehearse()
            return
        d = self._rehearsal_intent
        if d is None:
            d = self._rehearsal_intent = np.zeros(1, schema.ORDER_DTYPE)
            d["action"], d["side"], d["otype"], d["qty"] = \
                schema.ACT_NEW, schema.SIDE_BUY, schema.OT_POST_ONLY, self.cfg.quote_lots
        insts = sorted(self._mids)
        inst = insts[(insts.index(int(d["inst"][0])) + 1) % len(insts)] if int(d["inst"][0]) in self._mids \
            else insts[0]
        d["inst"], d["px"] = inst, self._mids[inst] - 1
        ok, res = self.gate.rehearse(d, self.state)
        if ok and gateway is not None:
            gateway.rehearse(schema.copy_records(res))

    async def _busy_poll(self) -> None:
        """fused ``--wait spin``: the event loop never sleeps. Every turn polls the sockets
        with a zero timeout, so a frame is read as soon as it lands and, above all, the
        core stays busy: its caches, branch predictors and clock stay those of this loop.
        Sleeping in epoll between frames, the first few hundred microseconds after each
        wake-up run ~3x slower (measured in benchmarks/hot_path.py). Costs one core.
        Every ``rehearse_us`` between messages it also rehearses what the next message
        will need: the ensemble on the current features (Brain.rehearse), and a NEW order
        like the strategy's next one through the gate and the gateway up to the write
        (``_rehearse_order``): executed often, that code and its data stay in the caches
        the rest of the loop, the kernel and the sim's process evict. Measured in the
        engine: the gate 5.9 -> 3.7 us, copying the gate's order 12.6 -> 2.7 us, the
        gateway's checks and client id 22 -> 6 us."""
        sleep, clock = asyncio.sleep, time.monotonic_ns
        every = int(self.cfg.rehearse_us * 1000)
        gateway = self.gateway if hasattr(self.gateway, "rehearse") else None
        last = 0
        while not self.stopping:
            await sleep(0)
            now = clock()
            if every and now - last >= every and not self._pass_due:    # never ahead of a decision
                last = now
                try:
                    if self.path is not None:
                        self.path.rehearse()
                    else:
                        if self.brain is not None:
                            self.brain.rehearse()
                        self._rehearse_order(gateway)
                    self.rehearsals += 1
                except Exception as e:                  # warming must never stop the loop
                    self.rehearsal_error = repr(e)
                    log.error("rehearsal failed, turned off: %r", e)
                    every = 0

    # ------------------------------------------------------------------ admin
    def admin_handlers(self) -> dict:
        def status(_):
            s = self.status()
            s["processes"] = self.processes()
            s["model_versions"] = (self.brain.model_versions() if self.brain is not None
                                   else {"brain_process": self.cfg.model_dir})     # 3proc: loaded over there
            return s

        def positions(_):
            return {self._sym(i): {"lots": p.qty, "qty": self._ins(i).lots_to_qty(abs(p.qty)) if p.qty >= 0
                                   else "-" + self._ins(i).lots_to_qty(-p.qty), "avg_px_ticks": p.avg_px,
                                   "realized": p.realized, "fees": p.fees, "funding": p.funding,
                                   "unrealized": self.book.unrealized(i)} for i, p in self.book.positions.items()}

        def orders(_):
            return {str(cid): {"symbol": self._sym(v["inst"]), "order_id": v["order_id"]}
                    for cid, v in self.gateway.open.items()}

        async def halt(args):
            self.monitor.halt(args.get("reason", "admin halt"), time.monotonic_ns())
            self._journal_state("admin halt")
            return {"trading_state": "HALTED", "cancelled": await self.cancel_all()}

        def reduce(args):
            self.monitor.reduce(args.get("reason", "admin reduce"), time.monotonic_ns())
            self._journal_state("admin reduce")
            return {"trading_state": STATE_NAMES[self.state.trading_state]}

        def resume(args):
            self.monitor.reasons.clear()
            self.monitor.resume(time.monotonic_ns(), args.get("reason", "admin resume"))
            self._journal_state("admin resume")
            return {"trading_state": STATE_NAMES[self.state.trading_state]}

        async def cancel_all(_):
            return {"cancelled": await self.cancel_all()}

        async def flatten(_):
            n = await self.cancel_all()
            sent = []
            for inst, p in self.book.positions.items():
                if p.qty:
                    o = np.zeros(1, schema.ORDER_DTYPE)
                    o["action"], o["otype"], o["inst"] = schema.ACT_NEW, schema.OT_MARKET, inst
                    o["side"] = schema.SIDE_SELL if p.qty > 0 else schema.SIDE_BUY
                    o["qty"], o["flags"] = abs(p.qty), schema.OF_REDUCE_ONLY
                    o["client_id"] = (15 << 40) + self.counts["intents"]
                    o["mono_origin"] = time.monotonic_ns()
                    self.counts["intents"] += 1
                    self._submit(o)
                    sent.append(self._sym(inst))
            return {"cancelled": n, "flatten_orders": sent}

        def set_limit(args):
            import msgspec
            name, value = args.get("name"), args.get("value")
            fields = [f for f in self.cfg.limits.__struct_fields__ if f != "regime_profiles"]
            if name not in fields:
                raise ValueError(f"unknown limit {name!r}; limits: {', '.join(fields)}")
            old = getattr(self.cfg.limits, name)
            new = type(old)(value)
            self.cfg.limits = msgspec.structs.replace(self.cfg.limits, **{name: new})   # validated again
            self.gate = RiskGate(self.cfg.limits)
            self.monitor.limits = self.cfg.limits
            self.journal.append_event({"event": "set_limit", "name": name, "old": old, "new": new})
            return {"name": name, "old": old, "new": new}

        def reload_model(_):
            if self.brain is not None:
                return self._models_changed(self.brain.reload_model())
            return self._restart_brain("model reload")

        def rollback_model(_):
            if self.brain is not None:
                return self._models_changed(self.brain.rollback_model())
            from engine.models.registry import ModelRegistry
            self._need_model()                        # refused before the registry moves
            rec = ModelRegistry(self.cfg.model_dir).rollback(reason="admin")
            return {"rollback": rec, **self._restart_brain("model rollback")}

        def shutdown(_):
            if self.stop_event is not None:
                self.stop_event.set()
            return {"stopping": True}

        return {"status": status, "positions": positions, "orders": orders, "halt": halt, "reduce": reduce,
                "resume": resume, "cancel-all": cancel_all, "flatten": flatten, "set-limit": set_limit,
                "reload-model": reload_model, "rollback-model": rollback_model, "shutdown": shutdown}

    def _close_segments(self) -> None:
        from cext.shm_core import cleanup_stale
        self.pg_final = self._pg_status()
        if self.cfg.topology != "fused":
            self.feed.close()                       # 3proc: the link (unlinks the exec ring, position region)
        if self.gw_link is not None:
            self.gw_link.close()                    # 4proc: unlinks the order ring
        if self.book_region is not None:
            self.book_region.close()
        self.heartbeats.unlink()
        self.heartbeats.close()
        cleanup_stale(self.segment_prefix)          # the rings and book region: their writers have exited
        from engine.ipc.waits import remove_bells
        remove_bells(self.group)                    # and the doorbells beside them
        if self.cfg.children == "systemd":
            try:                                    # no unit may start a process for this engine now
                os.unlink(os.path.abspath(self.cfg.manifest))
            except FileNotFoundError:
                pass

    def _ins(self, inst: int):
        return next(i for i in self.instruments if i.inst == inst)

    def _hold(self, reason: str) -> None:
        before = self.state.trading_state
        self.monitor.hold(reason, time.monotonic_ns())
        if self.state.trading_state != before:
            self._journal_state(reason)

    def _release(self, reason: str) -> None:
        before = self.state.trading_state
        self.monitor.release(reason, time.monotonic_ns())
        if self.state.trading_state != before:
            self._journal_state(f"{reason}: over")

    def _journal_state(self, why: str) -> None:
        self.journal.append_event({"event": "trading_state", "to": STATE_NAMES[self.state.trading_state],
                                   "reasons": sorted(self.monitor.reasons), "by": why})

    async def cancel_all(self) -> int:
        cancelled = 0
        for ins in self.instruments:
            o = np.zeros(1, schema.ORDER_DTYPE)
            o["action"], o["inst"], o["client_id"] = schema.ACT_CANCEL_ALL, ins.inst, 0
            try:
                try:
                    execs = await asyncio.wait_for(self.gateway.send(o), 10.0)
                except asyncio.TimeoutError:
                    if self.gw_link is None:
                        raise
                    # 4proc: the gateway process died unseen or hangs: cancel through our own session
                    log.error("cancel-all on %s: no answer from the gateway process in 10 s: sent through "
                              "this process's own session", ins.symbol)
                    o["client_id"] = 0
                    execs = await self.gw_link.send_own(o)
                for e in execs:
                    cancelled += 1
                    self.on_exec(e)
            except Exception as e:
                log.error("cancel-all on %s failed: %s", ins.symbol, e)
        return cancelled

    async def shutdown(self) -> None:
        """Stop quoting, cancel everything, settle every order with the venue, journal it."""
        self.stopping = True
        if self.tasks:                  # orders on their way: their answers (at most 5 s in all)
            await asyncio.wait(list(self.tasks), timeout=5)
        cancelled = await self.cancel_all()
        try:
            await asyncio.sleep(0.2)           # a fill racing the cancel reaches the venue's trade list
            # what the cancel-all did not settle (refused while rate limited, an answer lost, an order the
            # venue's countdown cancelled while the user stream was down, an acknowledgement later than the
            # wait above): every order of ours still open at the venue cancelled, with retries; every order
            # acknowledged and never seen to end looked up, its end journaled; fills nobody heard fetched
            rec = await self.venue.recover(self.seed_positions, emit=self.on_exec, event="settled_at_stop")
            cancelled += len(rec["orphans_cancelled"])
        except Exception as e:
            log.error("settling orders and fills with the venue at stop: %s", e)
        try:            # what the venue still holds for us after the cancel-all (must be nothing)
            left = len(await self.venue.call("GET", "/fapi/v1/openOrders"))
        except Exception as e:
            log.error("open orders after stop: %s", e)
            left = None
        self.venue_open_after_stop = left
        self.journal.append_event({"event": "stop", "cancelled": cancelled, "venue_open_orders_after": left,
                                   **self.status()})
        self.journal.flush()
        return cancelled

    async def run(self, stop: asyncio.Event | None = None) -> dict:
        stop = stop or asyncio.Event()
        self.stop_event = stop
        loop = asyncio.get_running_loop()
        admin = None
        if self.cfg.admin:
            from engine.ipc.admin import AdminServer
            admin = AdminServer(self.admin_handlers(), _abs_ipc(self.cfg.admin))
            admin_task = asyncio.ensure_future(admin.serve())
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (RuntimeError, ValueError):   # not the main thread (tests)
                pass
        await self.rest.sync_time()
        self.recovery = await self.venue.recover(self.seed_positions)
        if self.cfg.metrics_port is not None:
            try:
                port = self.metrics.serve(self.cfg.metrics_port)
                log.info("metrics on http://127.0.0.1:%d/metrics", port, extra={"metrics_port": port})
                self.journal.append_event({"event": "metrics", "port": port})
            except OSError as e:
                log.error("metrics endpoint on port %s: %s (running without it)", self.cfg.metrics_port, e)
        self.gw_lock = asyncio.Lock()
        if self.gw_link is not None:           # 4proc: the gateway process owns the user stream
            self._hold(GATEWAY_DOWN)
            us = asyncio.ensure_future(self.gw_link.run(self.cfg.wait, lambda: True))
            us.add_done_callback(self._input_died)
        else:
            us = asyncio.ensure_future(self.user_stream())
        hk = asyncio.ensure_future(self._housekeeping())
        hk.add_done_callback(_log_death)
        if self.children and self.cfg.children == "systemd":
            self._write_manifest()
        for c in self.children.values():
            c.start()
            if self.cfg.children == "systemd":       # its unit starts it; process_up when it beats
                self.journal.append_event({"event": "process_awaited", "process": c.name, "by": "systemd",
                                           "manifest": os.path.abspath(self.cfg.manifest)})
            else:
                self.journal.append_event({"event": "process_started", "process": c.name, "pid": c.pid})
        if self.link is not None:
            feed = asyncio.ensure_future(self.link.run(self.on_intent, self.cfg.wait, lambda: not self.stopping))
        else:
            feed = asyncio.ensure_future(self.feed.run(None, None))
        busy = None
        if self.cfg.topology == "fused" and self.cfg.wait == "spin":
            busy = asyncio.ensure_future(self._busy_poll())
        feed.add_done_callback(self._input_died)
        t0 = time.monotonic()
        self.gc.start()                        # books, model, sessions exist: freeze them, collect by the clock
        sd_notify("READY=1")
        try:
            while not stop.is_set() and (self.cfg.seconds is None or time.monotonic() - t0 < self.cfg.seconds):
                try:
                    await asyncio.wait_for(stop.wait(), self.cfg.status_every_s)
                except asyncio.TimeoutError:
                    pass
                if self.cfg.status_every_s:
                    self.print_status()
        finally:
            self.stopping = True               # before STOPPING=1: no WATCHDOG=1 may follow it
            self.gc.stop()
            sd_notify("STOPPING=1")
            cancelled = await self.shutdown()
            feed.cancel()
            if busy is not None:
                busy.cancel()
            # the journal process last, after a flush: it copies everything up to its own stop
            # event into PostgreSQL (that one follows at its next start)
            for c in sorted(self.children.values(), key=lambda c: c.name == "journal"):
                if c.name == "journal":
                    self.journal.flush()
                self.journal.append_event({"event": "process_stopped", "process": c.name, "rc": c.stop()})
            hk.cancel()
            us.cancel()
            extra = []
            if admin is not None:
                admin_task.cancel()
                extra.append(admin_task)
            for t in (feed, hk, us, *extra, *([busy] if busy is not None else [])):
                try:
                    await t
                except (asyncio.CancelledError, Exception):
                    pass
            if admin is not None:
                admin.close()
            self.metrics.close()
            if self.publisher is not None:
                self.publisher.close()
            if self.cfg.market:
                self.feed.close()
            if self.heartbeats is not None:
                self._close_segments()
            self.journal.close()
        out = self.status()
        out["cancelled_at_stop"] = cancelled
        out["venue_open_orders_after_stop"] = self.venue_open_after_stop
        out["fatal"] = self.fatal
        return out


def _log_death(task: asyncio.Task) -> None:
    """The housekeeping loop feeds the watchdog: if it dies, the supervisor (or systemd)
    restarts the process; say why first."""
    if not task.cancelled() and task.exception() is not None:
        log.critical("housekeeping loop died (the watchdog will restart this process): %r", task.exception(),
                     exc_info=task.exception())


def _abs_ipc(endpoint: str) -> str:
    if endpoint.startswith("ipc://") and not endpoint.startswith("ipc:///"):
        return "ipc://" + os.path.abspath(endpoint[len("ipc://"):])
    return endpoint


async def run_on_venue(cfg: RunConfig, base_url: str, api_key: str, api_secret: str, ws_url: str | None = None) -> dict:
    """Trade on a Binance USD-M compatible endpoint (e.g. a `cryptoscalp sim` in another
    process, or Binance itself with ``ws_url`` its stream host): instruments from its
    exchangeInfo, market data from its WebSocket."""
    from engine.execution.gateway import BinanceRest, OrderGateway
    from engine.venues.instruments import from_binance_exchange_info
    base = base_url.rstrip("/")
    ws = ws_url.rstrip("/") if ws_url else ("ws" + base[len("http"):] if base.startswith("http") else base)
    rest = BinanceRest(base, api_key, api_secret)
    try:
        info = await rest.call("GET", "/fapi/v1/exchangeInfo", signed=False)
        instruments = from_binance_exchange_info(info, cfg.symbols or None)
        gw = OrderGateway(rest, instruments)
        eng = FusedEngine(cfg, instruments, rest, gw, ws, base + "/fapi/v1")
        return await eng.run()
    finally:
        await rest.close()


async def run_paper_on_sim(cfg: RunConfig, faults: str | None = None) -> dict:
    """Paper trading against the built-in simulated exchange (synthetic market), offline;
    ``faults``: the sim's fault spec (engine.venues.sim.server.Faults), e.g.
    'disconnect_every_s=5,http_5xx_prob=0.05'."""
    from engine.venues.sim.run import SimRunner
    from engine.venues.sim.server import Faults
    return await _paper(cfg, SimRunner(synthetic_seed=cfg.seed, speed=cfg.speed, faults=Faults.parse(faults)))


async def run_paper_on_upstream(cfg: RunConfig, ws_url: str, rest_url: str) -> dict:
    """Paper trading on a real venue's public data (``--venue binance``): the instruments
    and their rules from its exchangeInfo, its streams as the built-in sim's market
    (engine.venues.sim.run.UpstreamMarket), our orders matched by the sim against that
    book (queue position included). No key, no order leaves this host."""
    import aiohttp

    from engine.venues.instruments import from_binance_exchange_info
    from engine.venues.sim.run import SimRunner, UpstreamMarket
    rest = rest_url.rstrip("/") + "/fapi/v1"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{rest}/exchangeInfo") as r:
            if r.status != 200:
                raise ConnectionError(f"{rest}/exchangeInfo: HTTP {r.status}: {(await r.text())[:200]}")
            info = await r.json(content_type=None)
    instruments = from_binance_exchange_info(info, cfg.symbols or None)
    return await _paper(cfg, SimRunner(upstream=UpstreamMarket(ws_url, rest, instruments)))


async def _paper(cfg: RunConfig, runner) -> dict:
    from engine.execution.gateway import BinanceRest, OrderGateway
    from engine.venues.sim.server import TEST_API_KEY, TEST_API_SECRET
    base = await runner.start()
    sim_task = asyncio.ensure_future(runner.run())
    rest = BinanceRest(base, TEST_API_KEY, TEST_API_SECRET)
    gw = OrderGateway(rest, runner.instruments)
    eng = FusedEngine(cfg, runner.instruments, rest, gw, runner.server.ws_url, base + "/fapi/v1")
    try:
        return await eng.run()
    finally:
        runner.stop()
        try:
            await asyncio.wait_for(sim_task, 10)     # an upstream source may be waiting to reconnect
        except asyncio.TimeoutError:
            pass
        await rest.close()
        await runner.server.close()
