"""Tick-to-trade latency harness: ``cryptoscalp bench latency [--topology fused|2proc|3proc|4proc]``.

What it does, the way a user would measure it:
1. starts the simulated exchange in a process of its own (``cryptoscalp sim``, synthetic
   market at ``speed`` x real time: its moves make the market maker requote all the time);
2. starts the engine in the chosen topology against it (``cryptoscalp run --venue URL``,
   risk limits opened up so that the gate passes what a bench needs: more trades per day,
   no loss cool-down), with a journal in a scratch directory;
3. samples CPU time and RSS of every engine process (the engine and its children) from
   /proc once a second;
4. reads every NEW order from the journal: each carries its stage stamps
   (CLOCK_MONOTONIC, engine/schema.py ORDER_DTYPE), so per-stage and end-to-end latency
   come from the orders actually sent, not from a synthetic loop.

Stages (an order's stamps, in path order):
    feed        mono_origin -> t_book       frame read off the socket -> parsed, validated,
                                            book applied (split topologies: and published to the ring)
    parse       mono_origin -> t_parse      fused only: the frame parsed into records
    book        t_parse -> t_book           fused only: validated, book applied, top read
    features    t_book -> t_features        features updated, and the wait for the brain's pass (fused,
                                            2proc: the brain decides once per batch of frames read
                                            together, on the latest one; split topologies: includes
                                            the market ring hop and the book-region read)
    inference   t_features -> t_infer       mark and regime updates and the ONNX ensemble
                                            (without --model: mark and regime only)
    strategy    t_infer -> t_strategy
    risk        t_strategy -> t_risk        (3proc, 4proc: the intent ring hop to the engine process,
                                            the mark read from the book region, then) the gate,
                                            and the intents of the same
                                            message before this one, each gated and written
                                            (a requote is cancel bid, new bid, cancel ask, new
                                            ask: the new ask waits for three requests)
    send        t_risk -> t_send            (4proc: the order ring hop to the gateway process, then)
                                            encoded, signed and written to a keep-alive
                                            connection (``OrderGateway.start``: stamped after
                                            the write); with no idle connection, the stamp is
                                            taken as the aiohttp request starts (the count of
                                            orders written at once is reported)
    tick_to_trade  mono_origin -> t_send    per NEW order
    send.order_hop                          4proc: the order ring hop, t_risk -> the order read
                                            in the gateway process (its own clock reading, the
                                            same CLOCK_MONOTONIC; from its stop line)
    send.sign, send.write                   the send stage's halves, timed by the engine around
                                            the signing and the write of every request written
                                            at once (not order stamps: warm-up included; 4proc:
                                            the gateway process's, from its stop line)
    first_order_out                         per market message that made orders: the frame
                                            read -> the first request written (NEW or CANCEL):
                                            how soon the engine reacts on the wire

Waits (``wait``): fused ``hybrid`` sleeps in epoll between frames; fused ``spin`` busy-polls
the event loop (one core at 100 %) and rehearses the ensemble, the strategy and the order
path (gate, request built and signed, not written) between messages (processes/fused.py
``_busy_poll``). ``cpus`` pins the engine (``engine=1``, the engine process's ``--cpus``),
``sim_cpus`` the sim process: on a 2-core host, engine on one CPU and sim on the other.
``inference``: how the ensemble runs (``--inference``: the graph compiled to C where it
passes its load-time check against ONNX Runtime, the default; or ONNX Runtime); the
records name the one used.

The send stage's write (``send.write``) is a loopback TCP write to the sim: the kernel
delivers the bytes to the sim's socket inside the engine's ``write`` call, waking the sim
if it sleeps in epoll (measured on this 2-core VM, a 300-byte send every 300 us to a
reader on the other CPU: ~24 us p50 when it sleeps, ~6 us when it busy-polls; the 20x
sim is busy most of the time and a busy-polling sim did not change ``send.write``). A
write to a venue over the network only queues the bytes to the NIC.

Warm-up is excluded: orders in the first ``warmup_s`` seconds after the first order (numba
compilation and the ONNX session happen before trading starts; the features need 60 s of
market time before the strategy quotes at all).
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

from engine import schema

STAGES = (("feed", "mono_origin", "t_book"), ("parse", "mono_origin", "t_parse"), ("book", "t_parse", "t_book"),
          ("features", "t_book", "t_features"),
          ("inference", "t_features", "t_infer"), ("strategy", "t_infer", "t_strategy"),
          ("risk", "t_strategy", "t_risk"), ("send", "t_risk", "t_send"),
          ("tick_to_trade", "mono_origin", "t_send"))
# order_rate 15 NEW/s (the gate's bucket counts new orders; cancels are never throttled): with about as
# many cancels, ~1,800 requests a minute, within the venue's request weight of 2,400 a minute with room
# for the countdown renewals (10 each, every 2.5 s) and the rest. At 20/s the sim answered 429 after
# ~45 s (and with the countdown renewed every second, sooner), and the orders after a 429 went the slow way.
BENCH_LIMITS = ("max_daily_trades=1000000", "max_consecutive_losses=1000000", "order_rate=15", "order_burst=30")


def host() -> dict:
    """What the numbers were measured on."""
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "usable_cpus": sorted(os.sched_getaffinity(0)),
            "cpu": model or platform.processor(), "kernel": platform.release(),
            "python": platform.python_version(), "numpy": np.__version__}


def percentiles(a_ns) -> dict:
    a = np.asarray(a_ns, dtype=np.float64) / 1e3
    if not a.size:
        return {"unit": "us", "n": 0}
    p50, p90, p99, p999 = np.percentile(a, [50, 90, 99, 99.9])
    return {"unit": "us", "n": int(a.size), "p50": round(p50, 1), "p90": round(p90, 1), "p99": round(p99, 1),
            "p999": round(p999, 1), "max": round(float(a.max()), 1)}


def order_stages(orders: np.ndarray, warmup_s: float = 5.0, since_ns: int = 0) -> dict[str, np.ndarray]:
    """Per-stage latencies (ns) of NEW orders with a market origin, warm-up (the first
    ``warmup_s`` after the first order) excluded; and ``first_order_out`` per originating
    message. A stage whose stamps are not both set on an order (e.g. inference without a
    model) has no sample for that order. ``since_ns``: only orders from messages read at or
    after this CLOCK_MONOTONIC time (with a model: once every feature is ready, so that
    every sample went through the ensemble)."""
    sent = orders[(orders["mono_origin"] > 0) & (orders["t_send"] > 0) & (orders["mono_origin"] >= since_ns)]
    if len(sent):
        sent = sent[sent["mono_origin"] >= int(sent["mono_origin"].min()) + int(warmup_s * 1e9)]
    o = sent[sent["action"] == schema.ACT_NEW]
    out = {}
    for name, a, b in STAGES:
        ok = (o[a] > 0) & (o[b] > 0)
        if name == "inference":
            ok &= o["t_infer"] > o["t_features"]
        out[name] = (o[b][ok] - o[a][ok]).astype(np.int64)
    origins, inv = np.unique(sent["mono_origin"], return_inverse=True)
    first = np.full(len(origins), np.iinfo(np.int64).max, np.int64)
    np.minimum.at(first, inv, sent["t_send"].astype(np.int64))
    out["first_order_out"] = first - origins.astype(np.int64)
    return out


def journal_models(journal_dir: str) -> list[dict]:
    """The run's ``model_loaded`` events (version, backend, why not native)."""
    from engine.journal.journal import RK_EVENT, JournalReader
    return [ev for ev in (e.record() for e in JournalReader(journal_dir).entries() if e.kind == RK_EVENT)
            if ev.get("event") == "model_loaded"]


def journal_orders(journal_dir: str) -> np.ndarray:
    from engine.journal.journal import RK_ORDER, JournalReader
    recs = [e.record() for e in JournalReader(journal_dir).entries() if e.kind == RK_ORDER]
    return np.array(recs, dtype=schema.ORDER_DTYPE) if recs else np.zeros(0, schema.ORDER_DTYPE)


# ------------------------------------------------------------------ processes
def _children(pid: int) -> list[int]:
    out = []
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{t}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def _proc(pid: int) -> dict | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/status") as f:
            kv = dict(line.split(":", 1) for line in f if ":" in line)
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().split(b"\0")
    except OSError:
        return None
    if not cmd[0]:                  # exited, not yet reaped (a zombie: no cmdline, no memory): keep the last sample
        return None
    tck = os.sysconf("SC_CLK_TCK")
    name = next((r for r in ("feed", "brain", "gateway", "journal") if f"processes.{r}".encode() in cmd), "engine")
    return {"pid": pid, "name": name, "cpu_s": (int(st[11]) + int(st[12])) / tck,
            "rss_mb": int(kv.get("VmRSS", "0 kB").split()[0]) / 1024, "hwm_mb": int(kv.get("VmHWM", "0 kB").split()[0]) / 1024}


class ProcSampler:
    """CPU seconds and RSS of a process and its children, sampled once a second in a thread;
    ``result`` gives per-process CPU % over the window from ``mark()`` to the last sample."""

    def __init__(self, pid: int):
        self.pid = pid
        self.first: dict[int, tuple[float, dict]] = {}
        self.last: dict[int, tuple[float, dict]] = {}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._marked = False
        self._t.start()

    def mark(self) -> None:
        self.first.clear()
        self._marked = True

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            if not self._marked:
                continue
            now = time.monotonic()
            for pid in [self.pid, *_children(self.pid)]:
                p = _proc(pid)
                if p is None:
                    continue
                self.first.setdefault(pid, (now, p))
                self.last[pid] = (now, p)

    def stop(self) -> list[dict]:
        self._stop.set()
        self._t.join(5)
        out = []
        for pid, (t1, p1) in self.last.items():
            t0, p0 = self.first[pid]
            if t1 - t0 < 1.0:
                continue
            out.append({"process": p1["name"], "pid": pid, "cpu_pct": round(100 * (p1["cpu_s"] - p0["cpu_s"]) / (t1 - t0), 1),
                        "rss_mb": round(p1["rss_mb"], 1), "peak_rss_mb": round(p1["hwm_mb"], 1),
                        "window_s": round(t1 - t0, 1)})
        return out


# ------------------------------------------------------------------ the run
def run(topology: str = "fused", seconds: float = 60.0, speed: float = 20.0, wait: str = "hybrid",
        warmup_s: float = 5.0, model: str | None = None, cpus: str | None = None, plot: str | None = None,
        cli: str | None = None, progress=print, sim_cpus: str | None = None, inference: str = "auto",
        hot_path: str = "compiled", rehearse_us: float = 200.0) -> list[dict]:
    """One measured run; returns the JSON-line records (see the module docstring).
    ``cpus``: the engine's ``--cpus``; ``sim_cpus``: CPUs for the sim process ('0', '0,1');
    ``inference``: the engine's ``--inference`` (how the ensemble runs); ``hot_path``: the
    engine's ``--hot-path`` (fused, 2proc: the decision compiled into one call, or Python)."""
    cli = cli or shutil.which("cryptoscalp") or os.path.join(os.path.dirname(sys.executable), "cryptoscalp")
    from engine.venues.sim.run import SimProcess
    from engine.venues.sim.server import TEST_API_KEY, TEST_API_SECRET
    scratch = tempfile.mkdtemp(prefix="cs-latency-")
    sim_set = {int(c) for c in sim_cpus.split(",")} if sim_cpus else None
    sim = SimProcess(cli, speed=speed, seed=7, cpus=sim_set)
    eng = None
    try:
        j = os.path.join(scratch, "journal")
        cmd = [cli, "run", "--venue", sim.url, "--topology", topology, "--wait", wait,
               "--journal", j, "--admin", "none", "--metrics-port", "-1", "--log-format", "text",
               # with a model, the features' 300 s of market time (~15 s at 20x) come first
               "--seconds", str(seconds + (25.0 if model else 0.0)),
               # the sim runs `speed` x faster than real time: its exchange clock runs ahead of ours by
               # design, and the feed's future-timestamp check would drop every trade and ticker
               "--feed-max-future-ms", "0"]
        for lim in BENCH_LIMITS:
            cmd += ["--limit", lim]
        if model:
            cmd += ["--model", model, "--inference", inference]
        if cpus:
            cmd += ["--cpus", cpus]
        if topology in ("fused", "2proc"):
            cmd += ["--hot-path", hot_path]
        if topology == "fused" and wait == "spin":
            cmd += ["--rehearse-us", str(rehearse_us)]
        env = dict(os.environ, CRYPTOSCALP_API_KEY=TEST_API_KEY, CRYPTOSCALP_API_SECRET=TEST_API_SECRET)
        eng = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        sampler = ProcSampler(eng.pid)
        final, gw_final, t_first_order, t_ready = None, None, None, None
        for line in eng.stdout:
            if line.startswith("{") and '"tick_to_trade_us"' in line:
                final = json.loads(line)
            elif line.startswith("{") and '"send_split_us"' in line and '"cryptoscalp.gateway"' in line:
                gw_final = json.loads(line)            # 4proc: the gateway process's own stop line
            elif model and t_ready is None and line.startswith("BTCUSDT") and "waiting for" not in line:
                t_ready = time.monotonic_ns()          # every feature ready: the ensemble scores from now
                progress(f"  {topology}: features ready, the ensemble is in the path from here")
            elif line.startswith("BTCUSDT") and t_first_order is None and " orders     0 " not in line:
                t_first_order = time.monotonic()
                threading.Timer(warmup_s, sampler.mark).start()        # CPU window: after the warm-up
                progress(f"  {topology}: trading; measuring for the rest of {seconds:.0f} s")
        rc = eng.wait(60)
        procs = sampler.stop()
        if rc != 0 or final is None:
            raise RuntimeError(f"the engine exited with {rc} and no final status")
        if model and t_ready is None:
            raise RuntimeError("the features never all became ready: no order went through the ensemble")
        stages = order_stages(journal_orders(j), warmup_s, since_ns=t_ready or 0)
        if not len(stages["tick_to_trade"]):
            raise RuntimeError(f"no order to measure: {final['orders_sent']} orders sent in {seconds:g} s, none after "
                               f"the warm-up (the final status: {json.dumps(final)[:400]})")
        h = host()
        case = f"{topology}, wait {wait}" if topology != "fused" or wait == "spin" else "fused"
        if cpus or sim_cpus:
            case += f", pinned ({cpus or 'engine unpinned'}; sim={sim_cpus or 'unpinned'})"
        backends = sorted({m["backend"] for m in journal_models(j)})
        if topology in ("fused", "2proc") and hot_path != "compiled":
            case += f", {hot_path} hot path"
        if model:
            # the 3proc/4proc brain journals nothing of its own: its backend is the one asked for
            case += f", ensemble ({'/'.join(backends) or inference})"
        out = []
        for name in stages:
            out.append({"bench": "latency", "case": case, "stage": name, **percentiles(stages[name]), "host": h})
        t2t = next(r for r in out if r["stage"] == "tick_to_trade")
        t2t["per_s"] = final["events_per_s"]
        t2t["messages"] = final["messages"]
        t2t["orders_sent"] = final["orders_sent"]
        if wait == "spin" and topology == "fused":
            t2t["rehearse_us"] = rehearse_us
            t2t["rehearsals"] = final.get("rehearsals")
            t2t["rehearsal_error"] = final.get("rehearsal_error")
        if model:
            t2t["inference"] = "/".join(backends) or inference
        if gw_final is not None:                       # 4proc: signing and writing happen in the gateway
            final["send_split_us"] = gw_final["send_split_us"]
            final.setdefault("faults_survived", {})["gateway"] = gw_final["stats"]
        gw = final.get("faults_survived", {}).get("gateway", {})
        t2t["orders_written_at_once"] = gw.get("fast_sent")   # the rest waited for the loop (aiohttp)
        t2t["gateway"] = gw                            # its counters: fast_errors, rate_limited, links_all_busy, ...
        t2t["excluded"] = (("orders before every feature was ready (the ensemble did not run yet); "
                            if model else "") +
                           f"orders in the first {warmup_s:g} s after the first order (warm-up); numba "
                               "compilation and ORT session creation happen before trading")
        for part, v in (final.get("send_split_us") or {}).items():      # the send stage's parts
            if v.get("n"):
                note = ("the gateway process's clock reading at each order read off the order ring minus its "
                        "t_risk (warm-up included; the first 100,000)" if part == "order_hop" else
                        "the engine's own clock around sign / write, every request written at once "
                        "(warm-up included; the last 20,000)")
                out.append({"bench": "latency", "case": case, "stage": f"send.{part}", "unit": "us", **v, "host": h,
                            "note": note})
        gc = final.get("gc")
        if gc:
            t2t["gc"] = gc                             # the collector's pauses, taken once a second (engine/pauses.py)
        for p in procs:
            out.append({"bench": "latency", "case": case, "stage": "process", **p, "host": h})
        if plot:
            _plot(stages, case, plot)
        return out
    finally:
        if eng is not None and eng.poll() is None:
            eng.send_signal(signal.SIGTERM)
            try:
                eng.wait(30)
            except subprocess.TimeoutExpired:
                eng.kill()
                eng.wait()
        sim.close()
        shutil.rmtree(scratch, ignore_errors=True)


def _plot(stages: dict, case: str, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = [n for n in stages if len(stages[n])]
    fig, axes = plt.subplots(len(names), 1, figsize=(8, 1.6 * len(names) + 0.8), sharex=True)
    axes = np.atleast_1d(axes)
    lo = max(0.05, min(float(np.min(stages[n])) / 1e3 for n in names))
    hi = max(float(np.max(stages[n])) / 1e3 for n in names)
    bins = np.logspace(np.log10(lo), np.log10(max(hi, lo * 10)), 80)
    for ax, n in zip(axes, names):
        us = stages[n] / 1e3
        ax.hist(np.clip(us, lo, None), bins=bins,
                color="tab:red" if n in ("tick_to_trade", "first_order_out") else "tab:blue")
        p50, p99 = np.percentile(us, [50, 99])
        ax.axvline(p50, color="k", lw=0.8)
        ax.axvline(p99, color="k", lw=0.8, ls="--")
        ax.set_ylabel(n, rotation=0, ha="right", va="center")
        ax.text(0.99, 0.8, f"p50 {p50:.1f} us  p99 {p99:.1f} us  n {len(us)}", transform=ax.transAxes, ha="right",
                fontsize=8)
    axes[-1].set_xscale("log")
    axes[-1].set_xlabel("microseconds (log scale); solid p50, dashed p99")
    fig.suptitle(f"cryptoscalp tick-to-trade by stage: {case}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
