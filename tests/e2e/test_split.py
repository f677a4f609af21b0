"""The split topologies against a sim in another process.

2proc (feed process -> market ring -> engine process), under the supervisor: kill -9 the
feed (the engine restarts it and trading resumes), then kill -9 the engine (its feed dies
with it, the supervisor restarts the engine, which recovers and starts a new feed).

3proc (feed -> brain -> engine: risk, gateway, journal): kill -9 the brain: its quotes are
cancelled, a new brain with a new block of client ids trades on, and nothing the dead one
published reaches the venue afterwards.

4proc (feed -> brain -> engine: risk, journal -> gateway): kill -9 the gateway with orders
in flight: HALTED, a new gateway, the dead one's orders settled with the venue, trading on.

At the end of each: journal fills = the sim's trades, each once; every acknowledged order
ended; nothing open at the venue; the final position is the venue's; no shared-memory
segment left behind."""
import os
import signal
import subprocess
import time

from test_admin import admin
from test_kill9 import CLI, Lines, entries, fills, kill, show, sim_call, wait_for

from cext.shm_core import find_segments, pid_alive
from engine import schema
from engine.journal.journal import RK_EVENT, RK_EXEC, RK_ORDER
from engine.venues.sim.run import SimProcess
from engine.venues.sim.server import TEST_API_KEY, TEST_API_SECRET


def events(j):
    return [e.record() for e in entries(j) if e.kind == RK_EVENT]


def journal_agrees_with_venue(j, port) -> list:
    """After a stop: every fill once and the venue's, every acknowledged order ended, nothing
    open, the journal's final position the venue's. Returns the journal's events."""
    es = entries(j)
    ev = [e.record() for e in es if e.kind == RK_EVENT]
    ids = [int(r["trade_id"]) for r in fills(es)]
    assert len(ids) == len(set(ids)), "a fill was journaled twice"
    trades = sim_call(port, "/fapi/v1/userTrades", {"symbol": "BTCUSDT", "limit": 1000})
    assert sorted(ids) == sorted(int(t["id"]) for t in trades)
    acked = {int(e.record()["client_id"]) for e in es if e.kind == RK_EXEC and int(e.record()["kind"]) == schema.EX_ACK}
    ended = {int(e.record()["client_id"]) for e in es if e.kind == RK_EXEC and int(e.record()["kind"]) in
             (schema.EX_FILL, schema.EX_CANCELED, schema.EX_EXPIRED, schema.EX_REJECT)}
    assert acked - ended == set()
    assert sim_call(port, "/fapi/v1/openOrders", {}) == []
    stop = [x for x in ev if x["event"] == "stop"][-1]
    pos = sim_call(port, "/fapi/v2/positionRisk", {"symbol": "BTCUSDT"})[0]["positionAmt"]
    assert round(float(pos) * 1000) == stop["positions"]["BTCUSDT"]
    return ev


def test_2proc_kill_feed_then_engine(tmp_path):
    sim = SimProcess(CLI, speed=10, seed=3)
    port = sim.port
    sup = out = None
    try:
        j = str(tmp_path / "journal")
        ep = f"ipc://{tmp_path / 'admin.sock'}"
        env = dict(os.environ, CRYPTOSCALP_API_KEY=TEST_API_KEY, CRYPTOSCALP_API_SECRET=TEST_API_SECRET)
        sup = subprocess.Popen([CLI, "supervise", "--watchdog-s", "20", "--backoff-s", "0.5", "--", CLI, "run",
                                "--topology", "2proc", "--venue", f"http://127.0.0.1:{port}", "--journal", j,
                                "--admin", ep, "--metrics-port", "-1", "--log-format", "text"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        out = Lines(sup.stdout)
        wait_for(lambda: len(fills(entries(j))) >= 2, 300, "two fills before the first kill")

        # the group as the admin sees it
        st = admin(ep, "status")
        assert st["topology"] == "2proc"
        procs = {p["name"]: p for p in st["processes"]}
        assert set(procs) == {"engine", "feed"}
        assert procs["feed"]["alive"] and procs["feed"]["restarts"] == 0 and procs["feed"]["last_heartbeat_age_s"] < 3
        assert procs["feed"]["events"] > 0
        engine_pid, feed_pid = procs["engine"]["pid"], procs["feed"]["pid"]
        assert find_segments(f"/cs.g{engine_pid}.")                    # market ring, book region, procs region

        # 1. kill -9 the feed: the engine restarts it, trading goes on
        n_orders = len([e for e in entries(j) if e.kind == RK_ORDER])
        os.kill(feed_pid, signal.SIGKILL)
        died = wait_for(lambda: [x for x in events(j) if x["event"] == "process_died"], 30, "the feed's death journaled")
        assert died[0]["process"] == "feed" and died[0]["cause"] == "killed by signal 9"
        wait_for(lambda: [x for x in events(j) if x["event"] == "process_restarted"], 30, "the feed's restart")
        wait_for(lambda: len([e for e in entries(j) if e.kind == RK_ORDER]) >= n_orders + 4, 120,
                 "orders after the feed's restart")
        st = admin(ep, "status")
        feed = next(p for p in st["processes"] if p["name"] == "feed")
        assert feed["alive"] and feed["restarts"] == 1 and feed["pid"] != feed_pid
        assert feed["last_cause"] == "killed by signal 9"
        new_feed_pid = feed["pid"]

        # 2. kill -9 the engine: its feed dies with it, the supervisor restarts the engine
        os.kill(engine_pid, signal.SIGKILL)
        wait_for(lambda: [e for e in out.events() if e["event"] == "died"], 30, "the supervisor to see it")
        wait_for(lambda: not pid_alive(new_feed_pid), 10, "the orphaned feed to die with its engine")

        def resumed():
            ev = events(j)
            starts = [x for x in ev if x["event"] == "start"]
            new_orders = [e for e in entries(j) if e.kind == RK_ORDER
                          and int(e.record()["client_id"]) >= (1 << 40) + (1 << 28)]
            return len(starts) >= 2 and any(x["event"] == "recovered" for x in ev[len(ev) // 2:]) and len(new_orders) >= 2
        wait_for(resumed, 180, "trading to resume after the engine's restart")
        st = admin(ep, "status")
        new_engine = next(p for p in st["processes"] if p["name"] == "engine")["pid"]
        assert new_engine != engine_pid

        sup.send_signal(signal.SIGTERM)
        assert sup.wait(60) == 0
        time.sleep(1.0)
        assert sim.poll() is None, f"the sim exited ({sim.poll()})"
        ev = journal_agrees_with_venue(j, port)
        assert [x["topology"] for x in ev if x["event"] == "start"] == ["2proc", "2proc"]
        assert [x["process"] for x in ev if x["event"] == "process_stopped"] == ["feed"]
        assert find_segments(f"/cs.g{new_engine}.") == [], "the stopped group left segments behind"
    except BaseException:
        show(sim, out, "supervisor and engine")
        raise
    finally:
        kill(sup)
        sim.close()


def test_3proc_kill_brain(tmp_path):
    sim = SimProcess(CLI, speed=10, seed=5)
    port = sim.port
    eng = out = None
    try:
        j = str(tmp_path / "journal")
        ep = f"ipc://{tmp_path / 'admin.sock'}"
        env = dict(os.environ, CRYPTOSCALP_API_KEY=TEST_API_KEY, CRYPTOSCALP_API_SECRET=TEST_API_SECRET)
        eng = subprocess.Popen([CLI, "run", "--topology", "3proc", "--venue", f"http://127.0.0.1:{port}", "--journal", j,
                                "--admin", ep, "--metrics-port", "-1", "--log-format", "text",
                                "--feed-max-future-ms", "0",
                                # no loss-streak cool-down: the new brain's NEW orders must reach the gate's end
                                "--limit", "max_consecutive_losses=1000000"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        out = Lines(eng.stdout)
        wait_for(lambda: len(fills(entries(j))) >= 2, 300, "two fills before the kill")
        st = admin(ep, "status")
        assert st["topology"] == "3proc"
        procs = {p["name"]: p for p in st["processes"]}
        assert set(procs) == {"engine", "feed", "brain"}
        assert procs["brain"]["alive"] and procs["brain"]["restarts"] == 0 and procs["brain"]["events"] > 0
        assert procs["engine"]["pid"] == eng.pid
        assert admin(ep, "reload-model", check=False).returncode == 1      # rule-based: refused, the brain untouched
        first_life = [int(e.record()["client_id"]) for e in entries(j) if e.kind == RK_ORDER]
        assert first_life and min(first_life) >= (1 << 40)

        os.kill(procs["brain"]["pid"], signal.SIGKILL)
        down = wait_for(lambda: [x for x in events(j) if x["event"] == "brain_down_quotes_cancelled"], 30,
                        "the dead brain's quotes cancelled")[0]
        assert down["cause"] == "killed by signal 9"
        floor = down["next_client_id"]
        assert floor > max(first_life)
        wait_for(lambda: [x for x in events(j) if x["event"] == "process_restarted" and x["process"] == "brain"], 30,
                 "the brain's restart")
        # the new brain trades (its features warm up again first), with ids of its own block
        wait_for(lambda: len([e for e in entries(j) if e.kind == RK_ORDER and int(e.record()["client_id"]) >= floor]) >= 4,
                 180, "orders from the new brain")
        st = admin(ep, "status")
        brain = next(p for p in st["processes"] if p["name"] == "brain")
        assert brain["alive"] and brain["restarts"] == 1 and brain["pid"] != procs["brain"]["pid"]
        # nothing the dead brain published went out after its quotes were cancelled
        es = entries(j)
        at = next(i for i, e in enumerate(es) if e.kind == RK_EVENT and e.record()["event"] == "brain_down_quotes_cancelled")
        late = [int(e.record()["client_id"]) for e in es[at:] if e.kind == RK_ORDER
                and int(e.record()["action"]) == schema.ACT_NEW]
        assert late and all(c >= floor for c in late)

        eng.send_signal(signal.SIGTERM)
        assert eng.wait(60) == 0
        ev = journal_agrees_with_venue(j, port)
        assert sorted(x["process"] for x in ev if x["event"] == "process_stopped") == ["brain", "feed"]
        assert find_segments(f"/cs.g{eng.pid}.") == [], "the stopped group left segments behind"
    except BaseException:
        show(sim, out)
        raise
    finally:
        kill(eng)
        sim.close()


def test_4proc_kill_gateway(tmp_path):
    """4proc (feed, brain, engine: risk + journal, gateway): kill -9 the gateway while orders
    are in flight (the sim answers each after 150 ms): trading HALTS, a new gateway starts,
    every order the dead one had in flight is settled with the venue (never placed, or
    placed and then cancelled), and trading resumes; at the stop the journal agrees with
    the venue, and no order went out twice."""
    sim = SimProcess(CLI, speed=10, seed=7, faults="ack_delay_ms=150")
    port = sim.port
    eng = out = None
    try:
        j = str(tmp_path / "journal")
        ep = f"ipc://{tmp_path / 'admin.sock'}"
        env = dict(os.environ, CRYPTOSCALP_API_KEY=TEST_API_KEY, CRYPTOSCALP_API_SECRET=TEST_API_SECRET)
        eng = subprocess.Popen([CLI, "run", "--topology", "4proc", "--venue", f"http://127.0.0.1:{port}", "--journal", j,
                                "--admin", ep, "--metrics-port", "-1", "--log-format", "text",
                                "--feed-max-future-ms", "0", "--limit", "max_consecutive_losses=1000000"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        out = Lines(eng.stdout)
        wait_for(lambda: len(fills(entries(j))) >= 2, 300, "two fills before the kill")
        st = admin(ep, "status")
        assert st["topology"] == "4proc" and st["trading_state"] == "ACTIVE"
        procs = {p["name"]: p for p in st["processes"]}
        assert set(procs) == {"engine", "feed", "brain", "gateway"}
        # its heartbeat (once a second) counts the orders it sent
        gw = wait_for(lambda: [p for p in admin(ep, "status")["processes"] if p["name"] == "gateway" and p["events"] > 0],
                      10, "the gateway's heartbeat to count its orders")[0]
        assert gw["alive"] and gw["restarts"] == 0 and gw["last_heartbeat_age_s"] < 3
        assert TEST_API_SECRET not in " ".join(open(f"/proc/{gw['pid']}/cmdline").read().split("\0"))

        os.kill(gw["pid"], signal.SIGKILL)
        down = wait_for(lambda: [x for x in events(j) if x["event"] == "gateway_down"], 30, "the gateway's death")[0]
        assert down["cause"] == "killed by signal 9"
        halted = [x for x in events(j) if x["event"] == "trading_state" and x["to"] == "HALTED"]
        assert any("gateway process down or restarting" in x["reasons"] for x in halted)
        wait_for(lambda: [x for x in events(j) if x["event"] == "process_restarted" and x["process"] == "gateway"], 30,
                 "the gateway's restart")

        def resync():
            ev = events(j)
            i = next(k for k, x in enumerate(ev) if x["event"] == "gateway_down")
            return [x for x in ev[i:] if x["event"] == "recovered"]
        rec = wait_for(resync, 60, "the venue resync after the gateway's restart")[0]
        assert rec["unsure"] == len(down["unsure_orders"]) and rec["unresolved"] == []
        # every order the dead gateway had in flight has its end in the journal
        es = entries(j)
        ends = {int(e.record()["client_id"]) for e in es if e.kind == RK_EXEC and int(e.record()["kind"]) in
                (schema.EX_FILL, schema.EX_CANCELED, schema.EX_EXPIRED, schema.EX_REJECT)}
        assert set(down["unsure_orders"]) <= ends
        at = next(i for i, e in enumerate(es) if e.kind == RK_EVENT and e.record()["event"] == "gateway_down")
        n_before = len([e for e in es[at:] if e.kind == RK_ORDER and int(e.record()["t_send"])])
        wait_for(lambda: len([e for e in entries(j)[at:] if e.kind == RK_ORDER and int(e.record()["t_send"])]) >= n_before + 4,
                 120, "orders through the new gateway")
        st = admin(ep, "status")
        assert st["trading_state"] == "ACTIVE"
        gw2 = next(p for p in st["processes"] if p["name"] == "gateway")
        assert gw2["alive"] and gw2["restarts"] == 1 and gw2["pid"] != gw["pid"] and gw2["last_cause"] == "killed by signal 9"

        eng.send_signal(signal.SIGTERM)
        assert eng.wait(60) == 0
        ev = journal_agrees_with_venue(j, port)
        es = entries(j)
        news = [int(e.record()["client_id"]) for e in es if e.kind == RK_ORDER and int(e.record()["action"]) == schema.ACT_NEW]
        assert len(news) == len(set(news)), "an order was sent twice"
        assert sorted(x["process"] for x in ev if x["event"] == "process_stopped") == ["brain", "feed", "gateway"]
        assert find_segments(f"/cs.g{eng.pid}.") == [], "the stopped group left segments behind"
        assert not [f for f in os.listdir("/dev/shm") if f.startswith(f"csbell.g{eng.pid}.")], "doorbells left behind"
        print(f"in flight at the kill: {len(down['unsure_orders'])}, ended: {rec['orders_ended']}")
    except BaseException:
        show(sim, out)
        raise
    finally:
        kill(eng)
        sim.close()
