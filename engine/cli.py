"""`cryptoscalp` command line."""
from __future__ import annotations

import argparse
import json
import os
import sys

from engine import __version__

STAGE = """\
cryptoscalp {version} self-check: (1) the transport: two real processes, one ring, one
heartbeat region; (2) a live market-data session against the built-in simulated exchange
(synthetic BTCUSDT market, offline): WebSocket streams and a REST snapshot -> parser, book
sync, validation -> the 25 features, with a status line every second."""


def _cmd_run(args) -> int:
    """Paper trading on the built-in simulated exchange (or a Binance-compatible URL), fused
    topology (one process), 2proc (feed process + engine process over a shared-memory ring)
    3proc (feed, brain, engine: risk + gateway + journal) or 4proc (the gateway apart too)."""
    import uvloop

    from processes.fused import RunConfig, run_on_venue, run_paper_on_sim, run_paper_on_upstream
    if args.venue not in ("sim", "binance") and not args.venue.startswith(("http://", "https://")):
        print(f"run: --venue {args.venue}: sim (the offline default), binance (its public data, paper fills; "
              f"real orders with --live), or the URL of a Binance-compatible endpoint", file=sys.stderr)
        return 2
    if args.live and args.venue != "binance":
        print("run: --live is for --venue binance (a URL venue always gets the orders; the sim is paper)",
              file=sys.stderr)
        return 2
    keys = None
    if args.venue not in ("sim", "binance") or args.live:
        keys = _api_keys(args.keys)
        if keys is None:
            return 2
    from engine.risk.limits import RiskLimits
    limits = RiskLimits()
    for item in args.limit or []:
        import msgspec
        name, _, value = item.partition("=")
        fields = [f for f in RiskLimits.__struct_fields__ if f != "regime_profiles"]
        if name not in fields or not value:
            print(f"run: --limit {item!r}: NAME=VALUE with NAME one of {', '.join(fields)}", file=sys.stderr)
            return 2
        try:
            limits = msgspec.structs.replace(limits, **{name: type(getattr(limits, name))(value)})
        except (ValueError, TypeError) as e:
            print(f"run: --limit {item}: {e}", file=sys.stderr)
            return 2
    if args.children == "systemd" and (args.topology in ("fused",) or not args.group):
        print("run: --children systemd (one systemd unit per process) needs a split topology (2proc, 3proc, 4proc) "
              "and --group NAME", file=sys.stderr)
        return 2
    pkeys = None
    if args.publish:
        if not args.publish_keys:
            print("run: --publish needs --publish-keys FILE (JSON: server_public, server_secret, authorized)",
                  file=sys.stderr)
            return 2
        with open(args.publish_keys) as f:
            d = json.load(f)
        pkeys = {"server_public": d["server_public"].encode(), "server_secret": d["server_secret"].encode(),
                 "authorized": [k.encode() for k in d["authorized"]]}
    mkeys = None
    if args.market:
        if not args.market_keys or args.venue == "sim" or args.topology != "fused":
            print("run: --market tcp://HOST:PORT takes the market data from another host's fan-out: it needs "
                  "--market-keys FILE (JSON: client_public, client_secret, server_public), the venue that market "
                  "comes from (--venue URL, or binance --live; the built-in sim has a market of its own) and the "
                  "fused topology", file=sys.stderr)
            return 2
        with open(args.market_keys) as f:
            d = json.load(f)
        mkeys = {k: d[k].encode() for k in ("client_public", "client_secret", "server_public")}
    cpus = {}
    for item in (args.cpus.split(";") if args.cpus else []):
        role, _, cs = item.partition("=")
        if role not in ("engine", "feed", "brain", "gateway", "journal") or not cs or not all(c.isdigit() for c in cs.split(",")):
            print(f"run: --cpus {args.cpus!r}: ROLE=CPU[,CPU];... with ROLE engine, feed, brain, gateway or journal, "
                  f"e.g. 'feed=0;brain=1;engine=2'",
                  file=sys.stderr)
            return 2
        cpus[role] = cs
    if cpus.get("engine"):
        os.sched_setaffinity(0, {int(c) for c in cpus["engine"].split(",")})
    spinners = {"2proc": 1, "3proc": 2, "4proc": 3}.get(args.topology, 0) if args.wait == "spin" else 0
    cores = len(os.sched_getaffinity(0))
    if spinners and cores < spinners + 1:
        print(f"run: warning: --wait spin keeps {spinners} process(es) at 100 % on {cores} core(s), leaving "
              f"the feed less than a core: latency will be worse, not better (use --wait hybrid, or the fused "
              f"topology, on this host)", file=sys.stderr, flush=True)
    cfg = RunConfig(journal_dir=args.journal, seconds=args.seconds, seed=args.seed, quote_lots=args.quote_lots, limits=limits,
                    publish=args.publish, publish_keys=pkeys, market=args.market, market_keys=mkeys,
                    pg_dsn=args.pg, pg_name=args.pg_name,
                    max_inventory_lots=args.max_inventory, model_dir=args.model, model_backend=args.inference,
                    speed=args.speed,
                    admin=None if args.admin == "none" else args.admin,
                    metrics_port=None if args.metrics_port < 0 else args.metrics_port,
                    topology=args.topology, wait=args.wait, cpus=cpus, hot_path=args.hot_path,
                    rehearse_us=args.rehearse_us,
                    children=args.children, group=args.group, manifest=args.manifest,
                    symbols=tuple(s.strip().upper() for s in args.symbols.split(",") if s.strip()) if args.symbols
                    else (("BTCUSDT",) if args.venue == "binance" else ()),
                    max_future_ms=0.0 if (args.venue == "sim" and args.speed > 1) else args.feed_max_future_ms)
    if args.log_format == "json":
        from engine.telemetry import json_logging
        json_logging()
    where = {"sim": "paper trading on the built-in simulated exchange (synthetic BTCUSDT, offline)",
             "binance": (f"LIVE TRADING on Binance USD-M ({args.binance_rest}): real orders, real money" if args.live
                         else f"paper trading on Binance USD-M public data ({args.binance_ws}), fills from the "
                              f"built-in sim's matching")}.get(args.venue, f"trading on {args.venue}")
    print(f"cryptoscalp {__version__}: {where}, {args.topology} topology, market making"
          f"{' + model ' + args.model if args.model else ''}; journal {args.journal}. "
          f"Ctrl-C stops: open orders are cancelled first.", flush=True)
    try:
        if args.venue == "sim":
            out = uvloop.run(run_paper_on_sim(cfg, faults=args.sim_faults))
        elif args.venue == "binance" and not args.live:
            out = uvloop.run(run_paper_on_upstream(cfg, args.binance_ws, args.binance_rest))
        elif args.venue == "binance":
            out = uvloop.run(run_on_venue(cfg, args.binance_rest, *keys, ws_url=args.binance_ws))
        else:
            out = uvloop.run(run_on_venue(cfg, args.venue, *keys))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(json.dumps(out, sort_keys=True))
    return 1 if out.get("fatal") else 0


def _cmd_bench(args) -> int:
    from engine import latency
    tops = ["fused", "2proc", "3proc", "4proc"] if args.topology == "all" else [args.topology]
    for t in tops:
        plot = None
        if args.plot:
            root, ext = os.path.splitext(args.plot)
            plot = args.plot if len(tops) == 1 else f"{root}-{t}{ext or '.png'}"
        print(f"latency: {t} topology, {args.seconds:g} s at {args.speed:g}x market speed", file=sys.stderr, flush=True)
        try:
            recs = latency.run(t, seconds=args.seconds, speed=args.speed, wait=args.wait, warmup_s=args.warmup,
                               model=args.model, inference=args.inference, cpus=_fused_cpus(args.cpus) if t == "fused" else args.cpus,
                               sim_cpus=args.sim_cpus, plot=plot, hot_path=args.hot_path,
                               rehearse_us=args.rehearse_us,
                               progress=lambda m: print(m, file=sys.stderr, flush=True))
        except RuntimeError as e:
            print(f"bench latency: {e}", file=sys.stderr)
            return 1
        for r in recs:
            print(json.dumps(r), flush=True)
        if plot:
            print(f"histogram: {plot}", file=sys.stderr)
    return 0


def _fused_cpus(cpus: str | None) -> str | None:
    """bench --cpus for the fused topology: only the engine's entry counts (it has no other
    process); a bare CPU list means the engine's."""
    if not cpus:
        return None
    if "=" not in cpus:
        return f"engine={cpus}"
    eng = [x for x in cpus.split(";") if x.strip().startswith("engine=")]
    return eng[0].strip() if eng else None


def _api_keys(path: str | None):
    """API key and secret: $CRYPTOSCALP_API_KEY / $CRYPTOSCALP_API_SECRET, or a JSON file
    {"api_key": ..., "api_secret": ...} readable by its owner only (mode 0600)."""
    import stat as _stat
    if path:
        mode = _stat.S_IMODE(os.stat(path).st_mode)
        if mode & 0o077:
            print(f"run: {path} has mode {oct(mode)}: API keys must be readable by their owner only (chmod 600)",
                  file=sys.stderr)
            return None
        with open(path) as f:
            d = json.load(f)
        return d["api_key"], d["api_secret"]
    k, sec = os.environ.get("CRYPTOSCALP_API_KEY"), os.environ.get("CRYPTOSCALP_API_SECRET")
    if not (k and sec):
        print("run: a venue URL needs API keys: CRYPTOSCALP_API_KEY and CRYPTOSCALP_API_SECRET, or --keys FILE (0600)",
              file=sys.stderr)
        return None
    return k, sec


def _cmd_journal(args) -> int:
    from engine.journal.journal import KIND_NAMES, RK_EVENT, JournalReader
    r = JournalReader(args.dir)
    if args.action in ("read", "export"):
        kinds = None if args.kind == "all" else {k for k, v in KIND_NAMES.items() if v == args.kind}
        n = 0
        for e in r.entries(from_seq=args.from_seq):
            if kinds is not None and e.kind not in kinds:
                continue
            rec = e.record()
            body = rec if e.kind == RK_EVENT else {k: (v.item() if hasattr(v, "item") else v)
                                                    for k, v in zip(rec.dtype.names, rec.tolist()) if not k.startswith("_")}
            print(json.dumps({"seq": e.seq, "kind": KIND_NAMES[e.kind], "wall_ns": e.wall_ns, "record": body}))
            n += 1
        if r.errors:
            print(f"journal: stopped at: {'; '.join(r.errors)}", file=sys.stderr)
            return 1
        print(f"journal: {n} records", file=sys.stderr)
        return 0
    if args.action == "pg-sync":
        from engine.journal.pg import PgUnavailable, PgWriter
        w = PgWriter(args.dsn, args.dir, name=args.name)
        try:
            n = w.sync()
        except PgUnavailable as e:
            print(f"journal pg-sync: PostgreSQL unavailable ({e}); the backlog stays in the journal", file=sys.stderr)
            return 1
        print(json.dumps({"written": n, "last_seq": w.progress(), "journal": args.name}))
        return 0
    return 2


def _cmd_admin(args) -> int:
    from engine.ipc.admin import COMMANDS, AdminError, request
    if args.command not in COMMANDS:
        print(f"admin: unknown command {args.command!r}; commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    kv = {}
    for a in args.args:
        if "=" not in a:
            print(f"admin: argument {a!r} is not NAME=VALUE", file=sys.stderr)
            return 2
        k, v = a.split("=", 1)
        kv[k] = v
    ep = args.endpoint
    if ep.startswith("ipc://") and not ep.startswith("ipc:///"):
        ep = "ipc://" + os.path.abspath(ep[len("ipc://"):])
    keys = {}
    if args.curve:
        with open(args.curve) as f:
            keys = {k: v.encode() for k, v in json.load(f).items()}
    try:
        rep = request(ep, args.command, kv, args.timeout, **keys)
    except AdminError as e:
        print(f"admin: {e}", file=sys.stderr)
        return 1
    print(json.dumps(rep.get("result") if rep.get("ok") else rep, indent=1, sort_keys=True))
    return 0 if rep.get("ok") else 1


DEPLOY_UNITS = {"fused": ["cryptoscalp-fused.service"],
                "4proc": ["cryptoscalp-engine.service", "cryptoscalp-feed.service", "cryptoscalp-brain.service",
                          "cryptoscalp-gateway.service", "cryptoscalp-journal.service"]}
SPLIT_CPUS = "engine=2;feed=3;brain=4;gateway=5;journal=1"


def _cmd_deploy(args) -> int:
    """Write the systemd units of deploy/ for one topology, with this installation's paths
    and CPU sets filled in: fused (one unit) or 4proc (one unit per process)."""
    import getpass
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    src = os.path.join(here, "deploy")
    if not os.path.isdir(src):
        print(f"deploy: no unit templates at {src}", file=sys.stderr)
        return 1
    units = DEPLOY_UNITS[args.topology]
    subs = {"@PREFIX@": os.path.abspath(args.prefix or here), "@BIN@": os.path.dirname(os.path.abspath(sys.argv[0]))
            if os.path.basename(sys.argv[0]) == "cryptoscalp" else os.path.join(sys.prefix, "bin"),
            "@USER@": args.user or getpass.getuser(), "@GROUP@": args.group or args.user or getpass.getuser(),
            # the target starts these; the journal unit only when enabled (the engine needs --pg for it)
            "@SERVICES@": " ".join(u for u in units if u != "cryptoscalp-journal.service")}
    cpus = args.cpus or ("2" if args.topology == "fused" else SPLIT_CPUS)
    if args.topology == "fused":
        if "=" in cpus or not all(c.isdigit() for c in cpus.split(",")):
            print(f"deploy: --cpus {cpus!r}: a CPU set for the one process, e.g. '2' or '2,3'", file=sys.stderr)
            return 2
        subs["@CPUS@"] = cpus
    else:
        roles = dict(item.partition("=")[::2] for item in cpus.split(";"))
        want = ("engine", "feed", "brain", "gateway", "journal")
        if sorted(roles) != sorted(want) or not all(v and all(c.isdigit() for c in v.split(",")) for v in roles.values()):
            print(f"deploy: --cpus {cpus!r}: ROLE=CPUS for each of {', '.join(want)}, e.g. '{SPLIT_CPUS}'",
                  file=sys.stderr)
            return 2
        for role, v in roles.items():
            subs[f"@CPUS_{role.upper()}@"] = v.replace(",", " ")
    os.makedirs(args.out, exist_ok=True)
    written = []
    for name in ["cryptoscalp.target", *units]:
        text = open(os.path.join(src, name)).read()
        for k, v in subs.items():
            text = text.replace(k, v)
        with open(os.path.join(args.out, name), "w") as f:
            f.write(text)
        written.append(os.path.join(args.out, name))
    print(json.dumps({"written": written, "substitutions": subs}, indent=1))
    return 0


def _cmd_child(args) -> int:
    from processes.supervisor import exec_child
    return exec_child(args.role, os.path.abspath(args.manifest), wait_s=args.wait_s)


def _cmd_supervise(args) -> int:
    from processes.supervisor import supervise
    cmd = args.cmd[1:] if args.cmd and args.cmd[0] == "--" else args.cmd
    if not cmd:
        print("supervise: give the command after --, e.g. cryptoscalp supervise -- cryptoscalp run", file=sys.stderr)
        return 2
    return supervise(cmd, watchdog_s=args.watchdog_s, max_restarts=args.max_restarts, backoff_s=args.backoff_s)


def _cmd_selfcheck(args) -> int:
    import asyncio

    import numpy as np
    import uvloop

    from engine.feed.live import LiveFeed
    from engine.ipc.selfcheck import run_selfcheck
    from engine.venues.sim.run import SimRunner

    print(STAGE.format(version=__version__))
    print("\n(1) transport self-check")
    run_selfcheck(run=args.run_name, n=args.records, wait=args.wait)
    if args.seconds <= 0:
        return 0
    print(f"\n(2) market data from the sim for {args.seconds:.0f} s (Ctrl-C stops)")

    def status(feed):
        ins = feed.instruments[0]
        b = feed.handler.book(ins.inst)
        st = feed.handler.stats()["books"][ins.symbol]
        fe = feed.features[ins.inst]
        bb, ba = b.best_bid, b.best_ask
        lat = np.asarray(feed.latency_ns[-5000:]) if feed.latency_ns else np.zeros(1)
        print(f"  {ins.symbol} {st['state']:<13} bid {ins.ticks_to_price(bb[0]) if bb else '-':>9} "
              f"ask {ins.ticks_to_price(ba[0]) if ba else '-':>9}  msgs {feed.messages:>6}  "
              f"features ready {int(fe.ready.sum()):>2}/25  frame->features p50 {np.percentile(lat, 50) / 1e3:6.1f} us "
              f"p99 {np.percentile(lat, 99) / 1e3:7.1f} us  gaps {st['gaps']}", flush=True)

    async def main():
        runner = SimRunner(synthetic_seed=args.seed, speed=1.0)
        base = await runner.start()
        sim_task = asyncio.ensure_future(runner.run())
        feed = LiveFeed(runner.instruments, runner.server.ws_url, base + "/fapi/v1")
        try:
            await feed.run(args.seconds, status)
        finally:
            runner.stop()
            await sim_task
            await runner.server.close()
        st = feed.handler.stats()
        print(f"done: {feed.messages} messages, {feed.snapshots} snapshot(s), parser rejects "
              f"{st['parser']['rejected']}, book gaps {st['books'][feed.instruments[0].symbol]['gaps']}")

    try:
        uvloop.run(main())
    except KeyboardInterrupt:
        print("stopped")
    return 0


def _cmd_shm(args) -> int:
    from engine.ipc import cleanup_stale, find_segments, pid_alive, segment_owner
    prefix = args.prefix
    if args.action == "ls":
        rows = []
        for name in find_segments(prefix):
            kind, pid = segment_owner(name)
            rows.append({"name": name, "kind": kind, "owner_pid": pid, "owner_alive": pid_alive(pid)})
        print(json.dumps(rows, indent=2))
    else:
        removed = cleanup_stale(prefix)
        print(json.dumps({"removed": removed}))
    return 0


def _cmd_book_replay(args) -> int:
    from engine.feed.replay import ReplayError, book_replay
    try:
        res = book_replay(args.file, args.out, symbol=args.symbol)
    except ReplayError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(res))
    return 0


def _cmd_replay(args) -> int:
    import time

    from engine.feed.capture import iter_capture
    from engine.feed.handler import FeedHandler
    from engine.feed.replay import capture_symbol, estimate_clock_offset, infer_instruments, merge_captures
    from cext.validate import Validator

    instruments, symbols = [], []
    for path in args.files:
        sym = capture_symbol(path)
        symbols.append(sym)
        for ins in infer_instruments(path, sym):
            if ins.symbol == sym and all(i.symbol != sym for i in instruments):
                instruments.append(ins.__class__(**{**{f: getattr(ins, f) for f in ins.__struct_fields__},
                                                    "inst": len(instruments)}))
    offset = estimate_clock_offset(args.files[0])
    handler = FeedHandler(instruments, validator=Validator(len(instruments), clock_offset_ns=offset))
    records = frames = 0
    t0 = time.monotonic()
    first_local = None
    for local, k, frame in merge_captures(args.files):
        if args.speed > 0:
            first_local = first_local if first_local is not None else local
            due = t0 + (local - first_local) / 1e9 / args.speed
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        res = handler.on_frame(frame, local, symbols[k])
        records += len(res.records)
        frames += 1
    stats = handler.stats()
    stats.update({"frames": frames, "records_out": records, "clock_offset_ns": offset,
                  "wall_s": round(time.monotonic() - t0, 3)})
    print(json.dumps(stats, indent=2, default=str))
    return 0


def _cmd_record(args) -> int:
    import asyncio

    import uvloop

    from engine.feed.recorder import record

    def status(name, info):
        if name == "progress":
            print(f"\r{info['frames']} frames, {info['snapshots']} snapshots, "
                  f"{info['reconnects']} reconnects", end="", file=sys.stderr, flush=True)
        else:
            print(f"\n{name}: {info}", file=sys.stderr)

    symbols = [s.strip() for s in args.symbols.split(",") if s.strip()]
    streams = [s.strip() for s in args.streams.split(",") if s.strip()]
    res = uvloop.run(record(symbols, args.out, ws_url=args.ws_url, rest_url=args.rest_url,
                            seconds=args.seconds, streams=streams, on_status=status))
    print(file=sys.stderr)
    print(json.dumps(res))
    return 0


def _cmd_risk_report(args) -> int:
    from engine.risk.report import risk_report
    rep = risk_report(args.candles, args.out)
    print(json.dumps(rep, indent=2))
    return 0


def _cmd_regimes(args) -> int:
    import os

    from engine.feed.candles import load_candles
    from engine.features.regime import detect_regimes, plot_regimes, regime_table

    os.makedirs(args.out, exist_ok=True)
    res = {}
    for path in args.candles:
        c = load_candles(path)
        d = detect_regimes(c["close"])
        parts = os.path.normpath(path).split(os.sep)
        repo = next((p for p in parts if "__" in p), "")
        name = (repo.split("__")[0] + "_" if repo else "") + os.path.basename(path).split(".")[0]
        tab = regime_table(c["ts"], d["regime"])
        plot_regimes(c["ts"], c["close"], d["regime"], os.path.join(args.out, f"{name}_regimes.png"), title=name)
        res[name] = tab
    with open(os.path.join(args.out, "regimes.json"), "w") as f:
        json.dump(res, f, indent=2)
    print(json.dumps(res, indent=2))
    return 0


def _cmd_sim(args) -> int:
    import asyncio
    import signal

    import uvloop

    from engine.pauses import GcPauses
    from engine.venues.sim.run import SimRunner
    from engine.venues.sim.server import TEST_API_KEY, TEST_API_SECRET, Faults

    async def main():
        runner = SimRunner(replay=args.replay, synthetic_seed=args.seed, speed=args.speed,
                           faults=Faults.parse(args.faults), api_key=args.api_key or TEST_API_KEY,
                           api_secret=args.api_secret or TEST_API_SECRET, loop_replay=args.loop)
        url = await runner.start(args.host, args.port)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, runner.stop)
        src = f"replay of {', '.join(args.replay)}" if args.replay else f"synthetic market, seed {args.seed}"
        print(f"sim exchange ({src}) ready", flush=True)
        print(f"REST      {url}/fapi/v1", flush=True)
        print(f"WebSocket {runner.server.ws_url}/ws/<stream> and {runner.server.ws_url}/stream?streams=...", flush=True)
        print(f"symbols   {', '.join(i.symbol for i in runner.instruments)}", flush=True)
        if not args.api_key:
            print(f"api key   {TEST_API_KEY}\napi secret {TEST_API_SECRET}", flush=True)
        # the venue stand-in answers orders without the collector's pauses in between (a
        # stalled sim holds every order connection of the engine under test)
        pauses = GcPauses()
        pauses.start()

        async def collect():
            while True:
                await asyncio.sleep(1.0)
                pauses.tick()
        gc_task = asyncio.ensure_future(collect())
        await runner.run()
        if not runner._stop.is_set() and args.replay:
            print("replay finished; still serving (Ctrl-C to stop)", flush=True)
            await runner._stop.wait()
        gc_task.cancel()
        pauses.stop()
        await runner.server.close()

    uvloop.run(main())
    return 0


def _cmd_backtest(args) -> int:
    import time as _time

    from engine.backtest.engine import Backtester, LatencyModel
    from engine.backtest.report import write_report
    from engine.features.dataset import message_table
    from engine.feed.replay import capture_symbol, infer_instruments
    from engine.strategies.directional import MeanReversion, MomentumBreakout
    from engine.strategies.market_making import MarketMaker
    from engine.strategies.switcher import RegimeSwitcher
    from engine.strategies.touch import TouchQuoter
    from engine.venues.instruments import Instrument, _decimals, _step_units

    names = ("mm", "mr", "momentum", "switch", "touch")
    if args.strategy not in names:
        print(f"error: strategy {args.strategy!r} is not built (available: {', '.join(names)})", file=sys.stderr)
        return 2
    n = len(args.data)
    for flag in ("tick_size", "lot_size"):
        v = getattr(args, flag) or []
        if len(v) not in (0, 1, n):
            print(f"error: --{flag.replace('_', '-')}: one value for all captures or one per capture ({n})",
                  file=sys.stderr)
            return 2
    instruments, tables = [], []
    for k, path in enumerate(args.data):
        if not os.path.isfile(path):
            print(f"error: no such file: {path}", file=sys.stderr)
            return 2
        sym = capture_symbol(path)
        if sym in [i.symbol for i in instruments]:
            print(f"error: {sym} appears twice (one capture per instrument)", file=sys.stderr)
            return 2
        f = {key: getattr(infer_instruments(path, sym)[0], key) for key in Instrument.__struct_fields__}
        f["inst"] = k
        tick = (args.tick_size or [None])[min(k, len(args.tick_size or [None]) - 1)]
        lot = (args.lot_size or [None])[min(k, len(args.lot_size or [None]) - 1)]
        if tick:
            f["price_decimals"] = max(f["price_decimals"], _decimals(tick))
            f["tick_units"] = _step_units(tick, f["price_decimals"])
        if lot:
            f["qty_decimals"] = max(f["qty_decimals"], _decimals(lot))
            f["lot_units"] = _step_units(lot, f["qty_decimals"])
        ins = Instrument(**f)
        instruments.append(ins)
        tables.append(message_table(path, sym, [ins]))

    def strategy(ins):
        make = {"mm": lambda: MarketMaker(ins.inst, float(ins.tick_size), quote_lots=args.quote_lots,
                                          max_inventory_lots=args.max_inventory),
                "mr": lambda: MeanReversion(ins.inst, lots=args.quote_lots),
                "momentum": lambda: MomentumBreakout(ins.inst, lots=args.quote_lots),
                "touch": lambda: TouchQuoter(ins.inst, quote_lots=args.quote_lots,
                                             max_position_lots=args.max_inventory)}
        if args.strategy == "switch":
            return RegimeSwitcher({"mm": make["mm"](), "mr": make["mr"](), "mom": make["momentum"]()})
        return make[args.strategy]()
    model = None
    if args.model:
        from engine.models.registry import ModelRegistry
        reg = ModelRegistry(args.model)
        reg.load(args.model_version, args.inference)     # refuses here (schema, hashes, check) before any work

        def model():
            return reg.load(args.model_version, args.inference)
    lat = LatencyModel(feed_ns=int(args.feed_latency_ms * 1e6), order_ns=int(args.order_latency_ms * 1e6),
                       ack_ns=int(args.order_latency_ms * 1e6))
    corr = None
    if args.correlation is not None:
        import numpy as _np
        corr = _np.full((n, n), args.correlation)
        _np.fill_diagonal(corr, 1.0)
    bt = Backtester(instruments, [strategy(i) for i in instruments], seed=args.seed, latency=lat, model=model,
                    regime=args.regime, funding_rate=args.funding_rate, correlation=corr)
    t0 = _time.perf_counter()
    res = bt.run(tables)
    wall = _time.perf_counter() - t0
    title = f"{'+'.join(i.symbol for i in instruments)} {args.strategy}" + (" + model" if model else "")
    summary = write_report(res, args.out, title=title, seed=args.seed)
    print(json.dumps(summary, indent=2, sort_keys=True))
    print(f"backtest: {res.summary['events']} events ({res.summary['messages']} messages) in {wall:.2f} s = "
          f"{res.summary['events'] / wall:,.0f} events/s (wall time is not part of the report)", file=sys.stderr)
    return 0

def _cmd_train(args) -> int:
    from engine.models.dataset import LabelSpec
    from engine.models.train import TrainConfig, train
    paths = list(args.data or [])
    if args.synthetic_seconds:
        from engine.venues.sim.generator import write_synthetic_capture
        os.makedirs(args.out, exist_ok=True)
        syn = os.path.join(args.out, f"synthetic-{int(args.synthetic_seconds)}s-seed{args.seed}.gz")
        print(f"writing {args.synthetic_seconds:g} s of the synthetic market to {syn}")
        write_synthetic_capture(syn, args.synthetic_seconds, seed=args.seed + 1)
        paths.append(syn)
    if not paths:
        print("train: give --data FILE [FILE ...] and/or --synthetic-seconds N", file=sys.stderr)
        return 2
    for p in paths:
        if not os.path.isfile(p):
            print(f"train: no such file: {p}", file=sys.stderr)
            return 2
    cfg = TrainConfig(spec=LabelSpec(horizon_s=args.horizon_s, fee_bps=args.fee_bps, extra_bps=args.extra_bps,
                                     sample_ms=args.sample_ms),
                      seed=args.seed, folds=args.folds, embargo_s=args.embargo_s, trials=args.trials,
                      storage=args.storage, progress=not args.quiet,
                      exclude=tuple(x for x in args.exclude.split(",") if x))
    try:
        train(paths, args.out, cfg, promote=True if args.promote else None)
    except ValueError as e:
        print(f"train: {e}", file=sys.stderr)
        return 1
    return 0


def _cmd_model(args) -> int:
    from engine.models.registry import ModelRegistry, RegistryError
    reg = ModelRegistry(args.dir)
    try:
        if args.action == "list":
            cur = reg.current()
            bad = reg.bad_versions()
            for v in reg.versions():
                m = reg.manifest(v)
                ll = m["metrics"]["oos_log_loss"]
                print(json.dumps({"version": v, "current": v == cur, "bad": v in bad, "created": m["created"],
                                  "parent": m.get("parent"), "rows": sum(s["rows"] for s in m["data"]["sources"]),
                                  "oos_log_loss_ensemble": round(ll["ensemble"], 4),
                                  "oos_log_loss_best_baseline": round(min(ll["prior"], ll["persistence"]), 4)}))
        elif args.action == "show":
            print(json.dumps(reg.manifest(args.version or reg.current()), indent=1, sort_keys=True))
        elif args.action == "verify":
            v = args.version or reg.current()
            reg.verify(v)
            print(f"{v}: files match the manifest; feature schema matches this engine")
        elif args.action == "promote":
            if not args.version:
                raise RegistryError("promote needs --version")
            print(json.dumps(reg.promote(args.version, reason="cli")))
        elif args.action == "rollback":
            print(json.dumps(reg.rollback(reason="cli")))
        elif args.action == "history":
            for h in reg.history():
                print(json.dumps(h))
    except (RegistryError, ValueError) as e:
        print(f"model {args.action}: {e}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cryptoscalp", description="Low-latency crypto perpetuals scalping engine")
    p.add_argument("--version", action="version", version=f"cryptoscalp {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)

    rn = sub.add_parser("run", help="the main job: paper trading on the built-in sim (offline default)")
    rn.add_argument("--venue", default="sim", help="sim (default: the built-in simulated exchange, offline), "
                    "binance (Binance USD-M public data; orders are filled by the built-in sim's matching against "
                    "that data unless --live), or the URL of a Binance USD-M compatible endpoint (e.g. a "
                    "`cryptoscalp sim` in another process)")
    rn.add_argument("--live", action="store_true", help="--venue binance: send real orders to Binance (API keys "
                    "from the environment or --keys; real money)")
    rn.add_argument("--symbols", help="comma-separated symbols to trade (default: BTCUSDT on binance, every symbol a "
                    "URL venue lists)")
    rn.add_argument("--binance-ws", default="wss://fstream.binance.com", help="Binance USD-M WebSocket base")
    rn.add_argument("--binance-rest", default="https://fapi.binance.com", help="Binance USD-M REST base")
    rn.add_argument("--limit", action="append", help="override a risk limit, NAME=VALUE (repeatable), "
                    "e.g. --limit max_daily_trades=500")
    rn.add_argument("--publish", help="also publish market records to other hosts: tcp://HOST:PORT (CURVE)")
    rn.add_argument("--publish-keys", help="JSON file: server_public, server_secret, authorized (client public keys)")
    rn.add_argument("--pg", metavar="DSN", help="copy the journal into PostgreSQL as it grows (a journal process; "
                    "PostgreSQL down: the backlog waits in the journal), e.g. postgresql://user@host:5432/db")
    rn.add_argument("--pg-name", help="the journal's name in PostgreSQL (default: the journal's absolute path)")
    rn.add_argument("--market", help="market data from another host's --publish (tcp://HOST:PORT, CURVE) instead of "
                    "a feed of our own; with --venue URL (the venue that market comes from), fused topology")
    rn.add_argument("--market-keys", help="JSON file: client_public, client_secret, server_public")
    rn.add_argument("--keys", help="JSON file with api_key and api_secret (mode 0600); default: the environment")
    rn.add_argument("--seconds", type=float, default=None, help="stop after this long (default: until Ctrl-C)")
    rn.add_argument("--journal", default="run/journal", help="journal directory (default run/journal)")
    rn.add_argument("--seed", type=int, default=1, help="synthetic market seed")
    rn.add_argument("--model", help="model registry directory (the ensemble skews the quotes)")
    rn.add_argument("--inference", choices=["auto", "native", "onnxruntime"], default="auto",
                    help="how the ensemble runs: the graph compiled to C and checked against ONNX Runtime at "
                         "load (native), an ONNX Runtime session (onnxruntime), or native where it passes the "
                         "check (auto, the default)")
    rn.add_argument("--quote-lots", type=int, default=10)
    rn.add_argument("--max-inventory", type=int, default=50)
    rn.add_argument("--speed", type=float, default=1.0,
                    help="synthetic market speed (exchange time per wall second); quoting starts once the "
                         "features it uses are ready (60 s of market time)")
    rn.add_argument("--admin", default="ipc://run/admin.sock",
                    help="admin endpoint (ipc://PATH, mode 0600; 'none' for no admin socket)")
    rn.add_argument("--sim-faults", help="faults the sim injects, e.g. disconnect_every_s=5,http_5xx_prob=0.05,"
                    "http_429_prob=0.01,ack_delay_ms=50,gap_prob=0.001 (see engine/venues/sim/server.py)")
    rn.add_argument("--metrics-port", type=int, default=9464,
                    help="Prometheus /metrics on 127.0.0.1:PORT (0: any free port, -1: off)")
    rn.add_argument("--log-format", choices=["json", "text"], default="json", help="log lines on stdout")
    rn.add_argument("--topology", choices=["fused", "2proc", "3proc", "4proc"], default="fused",
                    help="fused (default: one process, nothing spins; right for small hosts), 2proc (a feed "
                         "process publishing to a shared-memory ring + the engine process), 3proc (feed, "
                         "brain, and the engine: risk, gateway, journal) or 4proc (feed, brain, the engine: "
                         "risk and journal, and the gateway)")
    rn.add_argument("--wait", choices=["spin", "hybrid", "block"], default="hybrid",
                    help="split topologies: how ring readers wait (spin burns a core each; default hybrid); "
                         "fused: spin = the event loop busy-polls and rehearses between messages (one core)")
    rn.add_argument("--cpus", help="CPU sets per process, e.g. 'feed=0;brain=1;engine=2' (default: not pinned)")
    rn.add_argument("--rehearse-us", type=float, default=200.0,
                    help="fused --wait spin: rehearse the model and the order path this often between messages "
                         "(default 200 us; 0: never)")
    rn.add_argument("--hot-path", choices=["compiled", "python"], default="compiled",
                    help="fused, 2proc: the decision from the instrument's state to the order written as one "
                         "compiled call (default; cext.hotpath) or each step called from Python")
    rn.add_argument("--children", choices=["engine", "systemd"], default="engine",
                    help="split topologies: who starts and restarts the other processes: the engine (default) or "
                         "systemd, one unit per process running `cryptoscalp child ROLE` (deploy/; needs --group)")
    rn.add_argument("--group", help="--children systemd: the group's name (its segments are /cs.NAME.*)")
    rn.add_argument("--manifest", default="run/group.json",
                    help="--children systemd: where the processes' command lines are written (default run/group.json)")
    rn.add_argument("--feed-max-future-ms", type=float, default=1000.0,
                    help="drop market records stamped this far ahead of our clock (default 1000; 0: off, for a "
                         "sim running faster than real time, whose clock runs ahead by design; the built-in "
                         "sim with --speed > 1 turns it off itself)")
    rn.set_defaults(func=_cmd_run)

    ad = sub.add_parser("admin", help="talk to a running engine: status, positions, orders, halt, reduce, resume, "
                        "flatten, cancel-all, set-limit, reload-model, rollback-model, shutdown")
    ad.add_argument("command", help="the admin command")
    ad.add_argument("args", nargs="*", help="NAME=VALUE arguments (set-limit name=max_daily_trades value=200)")
    ad.add_argument("--endpoint", default="ipc://run/admin.sock")
    ad.add_argument("--timeout", type=float, default=5.0)
    ad.add_argument("--curve", help="TCP only: a JSON file with client_public, client_secret, server_public (Z85)")
    ad.set_defaults(func=_cmd_admin)

    jn = sub.add_parser("journal", help="read or export the journal; copy it into PostgreSQL")
    jn.add_argument("action", choices=["read", "export", "pg-sync"])
    jn.add_argument("--dir", default="run/journal")
    jn.add_argument("--kind", default="all", choices=["all", "order", "reject", "exec", "event", "market"])
    jn.add_argument("--from-seq", type=int, default=1)
    jn.add_argument("--dsn", default=os.environ.get("CRYPTOSCALP_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test"))
    jn.add_argument("--name", default="main", help="journal name in PostgreSQL (rows are keyed by it)")
    jn.set_defaults(func=_cmd_journal)

    dp = sub.add_parser("deploy", help="write the systemd units (deploy/) for this installation")
    dp.add_argument("what", choices=["units"])
    dp.add_argument("--out", required=True, help="directory for the unit files (e.g. /etc/systemd/system)")
    dp.add_argument("--prefix", help="where the repository lives (default: this one)")
    dp.add_argument("--user", help="the user the engine runs as (default: you)")
    dp.add_argument("--group")
    dp.add_argument("--topology", choices=["fused", "4proc"], default="fused",
                    help="fused: one unit; 4proc: one unit per process (engine, feed, brain, gateway, journal)")
    dp.add_argument("--cpus", help=f"CPUAffinity: fused, a CPU set (default 2); 4proc, per process (default "
                                   f"'{SPLIT_CPUS}')")
    dp.set_defaults(func=_cmd_deploy)

    ch = sub.add_parser("child", help="one process of a group whose engine runs with --children systemd (what each "
                        "systemd unit runs): waits for the engine's manifest, then becomes that process")
    ch.add_argument("role", choices=["feed", "brain", "gateway", "journal"])
    ch.add_argument("--manifest", default="run/group.json", help="the engine's --manifest")
    ch.add_argument("--wait-s", type=float, default=300.0, help="give up (exit 1) after this long")
    ch.set_defaults(func=_cmd_child)

    sv = sub.add_parser("supervise", help="run a command, restart it when it dies or hangs (systemd notify protocol)")
    sv.add_argument("--watchdog-s", type=float, default=10.0, help="silent this long after READY: hung, restarted")
    sv.add_argument("--max-restarts", type=int, default=20)
    sv.add_argument("--backoff-s", type=float, default=1.0)
    sv.add_argument("cmd", nargs=argparse.REMAINDER, help="-- COMMAND ...")
    sv.set_defaults(func=_cmd_supervise)

    be = sub.add_parser("bench", help="benchmarks: tick-to-trade latency per stage (bench latency)")
    be.add_argument("what", choices=["latency"])
    be.add_argument("--topology", choices=["fused", "2proc", "3proc", "4proc", "all"], default="fused")
    be.add_argument("--seconds", type=float, default=60.0, help="engine run length (warm-up included)")
    be.add_argument("--speed", type=float, default=20.0, help="synthetic market speed (x real time)")
    be.add_argument("--wait", choices=["spin", "hybrid", "block"], default="hybrid",
                    help="split topologies: ring wait strategy; fused: spin = the event loop busy-polls")
    be.add_argument("--warmup", type=float, default=5.0, help="seconds after the first order left out")
    be.add_argument("--model", help="model registry directory: the ensemble in the path")
    be.add_argument("--inference", choices=["auto", "native", "onnxruntime"], default="auto",
                    help="how the ensemble runs: the graph compiled to C and checked against ONNX Runtime at "
                         "load (native), an ONNX Runtime session (onnxruntime), or native where it passes the "
                         "check (auto, the default)")
    be.add_argument("--cpus", help="CPU sets, e.g. 'feed=0;engine=1' (fused: 'engine=1' or just '1')")
    be.add_argument("--sim-cpus", help="CPU set for the sim process, e.g. '0' (default: not pinned)")
    be.add_argument("--rehearse-us", type=float, default=200.0,
                    help="fused --wait spin: the engine's --rehearse-us (default 200)")
    be.add_argument("--hot-path", choices=["compiled", "python"], default="compiled",
                    help="fused, 2proc: the engine's --hot-path (the decision compiled into one call, or each "
                         "step called from Python: the comparison)")
    be.add_argument("--plot", help="PNG histogram path (per topology with --topology all)")
    be.set_defaults(func=_cmd_bench)

    r = sub.add_parser("selfcheck", help="transport self-check and a market-data session against the sim")
    r.add_argument("--run-name", default="selfcheck", help="segment name prefix /cs.<run>.")
    r.add_argument("--records", type=int, default=200_000, help="records to send (default 200000)")
    r.add_argument("--wait", choices=["spin", "yield", "block"], default="block",
                   help="reader wait strategy (default block: safe on small hosts)")
    r.add_argument("--seconds", type=float, default=15.0, help="market-data session length (0: skip it)")
    r.add_argument("--seed", type=int, default=1, help="synthetic market seed")
    r.set_defaults(func=_cmd_selfcheck)

    s = sub.add_parser("shm", help="list or clean shared-memory segments")
    s.add_argument("action", choices=["ls", "clean"], help="ls: list; clean: unlink those whose owner is dead")
    s.add_argument("--prefix", default="/cs.", help="name prefix (default /cs.)")
    s.set_defaults(func=_cmd_shm)

    b = sub.add_parser("book-replay", help="replay a capture through parser, sync and book; "
                       "write update_id,bid_px,bid_qty,ask_px,ask_qty per applied depth message")
    b.add_argument("file", help="capture (.gz): '<ns> <frame>' per line")
    b.add_argument("--symbol", help="symbol (default: the capture's)")
    b.add_argument("--out", required=True, help="CSV to write")
    b.set_defaults(func=_cmd_book_replay)

    rp = sub.add_parser("replay", help="replay captures through the feed handler; print its stats")
    rp.add_argument("files", nargs="+", help="captures, one symbol each, merged by receive time")
    rp.add_argument("--speed", type=float, default=0.0, help="0: as fast as possible; 1: real time; N: N x")
    rp.set_defaults(func=_cmd_replay)

    rc = sub.add_parser("record", help="record raw market-data frames to a gzip capture")
    rc.add_argument("--symbols", required=True, help="comma-separated, e.g. BTCUSDT,ETHUSDT")
    rc.add_argument("--out", required=True, help="capture file to append to (.gz)")
    rc.add_argument("--seconds", type=float, help="stop after this long (default: until Ctrl-C)")
    rc.add_argument("--streams", default="depth@0ms,bookTicker,trade", help="stream types per symbol")
    rc.add_argument("--ws-url", default="wss://fstream.binance.com", help="WebSocket base URL (COIN-M: wss://dstream.binance.com)")
    rc.add_argument("--rest-url", default="https://fapi.binance.com/fapi/v1",
                    help="REST base for depth snapshots (COIN-M: https://dapi.binance.com/dapi/v1); '' for none")
    rc.set_defaults(func=_cmd_record)

    rr = sub.add_parser("risk-report", help="volatility estimators, GARCH vs arch, Kupiec VaR backtests on candles")
    rr.add_argument("--candles", required=True, help="1-minute candles (.feather or .csv)")
    rr.add_argument("--out", help="directory for risk_report.json and var_backtest.png")
    rr.set_defaults(func=_cmd_risk_report)

    rg = sub.add_parser("regimes", help="market regimes on 1-minute candles: plot and table")
    rg.add_argument("--candles", nargs="+", required=True, help="1-minute candle files")
    rg.add_argument("--out", required=True, help="directory for <name>_regimes.png and regimes.json")
    rg.set_defaults(func=_cmd_regimes)

    sm = sub.add_parser("sim", help="run the simulated Binance USD-M exchange (REST + WebSocket on one port)")
    src = sm.add_mutually_exclusive_group()
    src.add_argument("--replay", nargs="+", help="captures to replay (one symbol each)")
    src.add_argument("--synthetic", action="store_true", help="seeded synthetic market (default)")
    sm.add_argument("--seed", type=int, default=1)
    sm.add_argument("--speed", type=float, default=1.0, help="1 = real time, N = N x, 0 = as fast as possible")
    sm.add_argument("--loop", action="store_true", help="replay again from the start when done")
    sm.add_argument("--host", default="127.0.0.1")
    sm.add_argument("--port", type=int, default=0, help="0 = any free port (printed)")
    sm.add_argument("--faults", default="", help="e.g. gap_prob=0.01,http_5xx_prob=0.02,ack_delay_ms=50")
    sm.add_argument("--api-key")
    sm.add_argument("--api-secret")
    sm.set_defaults(func=_cmd_sim)

    bt = sub.add_parser("backtest", help="event-driven backtest on captures (one per instrument)")
    bt.add_argument("--data", nargs="+", required=True, help="capture(s), one instrument each")
    bt.add_argument("--strategy", default="mm", help="mm (market making), mr (mean reversion), momentum, "
                    "switch (all three under the regime switcher), touch (one tick behind the touch)")
    bt.add_argument("--out", required=True, help="output directory")
    bt.add_argument("--seed", type=int, default=0)
    bt.add_argument("--tick-size", nargs="+", help="the exchange's tick (e.g. 0.10 for BTCUSDT), one for all "
                    "or one per capture; default: the capture's last decimal")
    bt.add_argument("--lot-size", nargs="+", help="the exchange's lot (e.g. 0.001), one for all or one per capture")
    bt.add_argument("--quote-lots", type=int, default=10)
    bt.add_argument("--max-inventory", type=int, default=50)
    bt.add_argument("--feed-latency-ms", type=float, default=5.0)
    bt.add_argument("--order-latency-ms", type=float, default=10.0)
    bt.add_argument("--model", help="model registry directory: the ensemble scores every ready row")
    bt.add_argument("--model-version", help="a version of --model (default: its current one)")
    bt.add_argument("--inference", choices=["auto", "native", "onnxruntime"], default="auto",
                    help="how the ensemble runs: the graph compiled to C and checked against ONNX Runtime at "
                         "load (native), an ONNX Runtime session (onnxruntime), or native where it passes the "
                         "check (auto, the default)")
    bt.add_argument("--regime", default="auto", help="auto (detected from 1-minute mid closes) or a fixed "
                    "regime name (NORMAL, VOLATILE, TRENDING, CRASH, BULL_RUN, RECOVERY)")
    bt.add_argument("--funding-rate", type=float, default=0.0001,
                    help="funding rate per 8 h when the recording has none (default 0.0001, Binance's base)")
    bt.add_argument("--correlation", type=float, help="correlation between every pair of instruments for the "
                    "risk gate; without it the gate refuses exposure it cannot assess (no_correlation)")
    bt.set_defaults(func=_cmd_backtest)

    tr = sub.add_parser("train", help="train the model ensemble on recordings; export ONNX; register a version")
    tr.add_argument("--data", nargs="+", help="capture(s) the replay path reads (each one symbol)")
    tr.add_argument("--synthetic-seconds", type=float, default=0.0,
                    help="also generate this much of the synthetic market (written into --out) and train on it")
    tr.add_argument("--out", required=True, help="model registry directory (a new version vNNNN inside)")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--horizon-s", type=float, default=10.0, help="label horizon (default 10 s)")
    tr.add_argument("--fee-bps", type=float, default=2.0, help="fee per side; the label threshold is a round trip")
    tr.add_argument("--extra-bps", type=float, default=0.0, help="added to the round-trip threshold")
    tr.add_argument("--sample-ms", type=int, default=100, help="row clock (0: one row per message)")
    tr.add_argument("--folds", type=int, default=4, help="walk-forward folds")
    tr.add_argument("--embargo-s", type=float, default=1.0)
    tr.add_argument("--exclude", default="best_bid,best_ask", help="features the models do not see (comma list)")
    tr.add_argument("--trials", type=int, default=0, help="Optuna trials per member (0: no search)")
    tr.add_argument("--storage", help="Optuna storage URL shared by several machines, e.g. postgresql://...")
    tr.add_argument("--promote", action="store_true", help="serve the new version (the first one always is)")
    tr.add_argument("--quiet", action="store_true", help="no progress bars")
    tr.set_defaults(func=_cmd_train)

    md = sub.add_parser("model", help="the model registry: list, show, verify, promote, rollback, history")
    md.add_argument("action", choices=["list", "show", "verify", "promote", "rollback", "history"])
    md.add_argument("--dir", required=True, help="registry directory")
    md.add_argument("--version", help="a version (show/verify: default the current one; promote: required)")
    md.set_defaults(func=_cmd_model)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
