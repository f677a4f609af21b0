"""kill -9 the engine while it trades against a sim in another process: the supervisor
restarts it, it recovers (orphans cancelled, missed fills and order ends fetched, positions
seeded), trading resumes, and no fill is lost or duplicated: journal = the sim's trades =
PostgreSQL rows."""
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

from engine import schema
from engine.journal.journal import RK_EVENT, RK_EXEC, RK_ORDER, JournalReader
from engine.venues.sim.run import SimProcess
from engine.venues.sim.server import TEST_API_KEY, TEST_API_SECRET

CLI = shutil.which("cryptoscalp") or os.path.join(os.path.dirname(sys.executable), "cryptoscalp")
TERMINAL = {schema.EX_FILL, schema.EX_CANCELED, schema.EX_EXPIRED, schema.EX_REJECT}


class Lines:
    """Collect a stream's lines in a thread (so that the process never blocks on a full pipe)."""

    def __init__(self, stream):
        self.lines = []
        self.t = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self.t.start()

    def _run(self, stream):
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def tail(self, n=60):
        return "\n".join(self.lines[-n:])

    def events(self):
        out = []
        for x in list(self.lines):
            if x.startswith("{") and '"supervisor"' in x:
                out.append(json.loads(x))
        return out


def show(sim=None, out=None, label="engine", n=200):
    """On a failure: what the sim and the process said, so that it can be read from the CI log."""
    if sim is not None:
        print(f"--- sim (exit {sim.poll()}) ---\n" + sim.tail())
    print(f"--- {label} ---\n" + (out.tail(n) if out else ""))


def kill(proc):
    """At the end of a test, whatever happened: the process is gone."""
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait()


def entries(j):
    return list(JournalReader(j).entries()) if os.path.isdir(j) else []


def fills(es):
    return [e.record() for e in es if e.kind == RK_EXEC and int(e.record()["kind"]) in (schema.EX_FILL, schema.EX_PARTIAL)
            and int(e.record()["qty"]) > 0]


def wait_for(cond, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def sim_call(port, path, params):
    from engine.execution.gateway import BinanceRest

    async def go():
        r = BinanceRest(f"http://127.0.0.1:{port}", TEST_API_KEY, TEST_API_SECRET)
        try:
            return await r.call("GET", path, params)
        finally:
            await r.close()
    return asyncio.run(go())


def test_kill_9_restart_recover_no_fill_lost_or_duplicated(tmp_path):
    sim = SimProcess(CLI, speed=10, seed=2)
    try:
        _run_kill9(tmp_path, sim.port, sim)
    except BaseException:
        # what the processes said, so that a failure here can be read from the CI log
        print(f"--- sim (exit {sim.poll()}) ---\n" + sim.tail())
        raise
    finally:
        sim.close()


def _run_kill9(tmp_path, port, sim):
    sup = out = None
    try:
        j = str(tmp_path / "journal")
        env = dict(os.environ, CRYPTOSCALP_API_KEY=TEST_API_KEY, CRYPTOSCALP_API_SECRET=TEST_API_SECRET)
        sup = subprocess.Popen([CLI, "supervise", "--watchdog-s", "20", "--backoff-s", "0.5", "--", CLI, "run",
                                "--venue", f"http://127.0.0.1:{port}", "--journal", j, "--admin", "none",
                                "--metrics-port", "-1", "--log-format", "text"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        out = Lines(sup.stdout)
        wait_for(lambda: len(fills(entries(j))) >= 2, 300, "two fills before the kill")
        first = [e for e in out.events() if e["event"] == "started"][0]
        os.kill(first["pid"], signal.SIGKILL)
        died = wait_for(lambda: [e for e in out.events() if e["event"] == "died"], 30, "the supervisor to see it")
        assert died[0]["cause"] == "killed by signal 9"
        wait_for(lambda: len([e for e in out.events() if e["event"] == "started"]) >= 2, 30, "the restart")

        def resumed():
            es = entries(j)
            ev = [e.record() for e in es if e.kind == RK_EVENT]
            starts = [x for x in ev if x["event"] == "start"]
            new_orders = [e for e in es if e.kind == RK_ORDER and int(e.record()["client_id"]) >= (1 << 40) + (1 << 28)]
            return len(starts) >= 2 and any(x["event"] == "recovered" for x in ev) and len(new_orders) >= 2
        wait_for(resumed, 120, "trading to resume after recovery")
        time.sleep(3)
        sup.send_signal(signal.SIGTERM)
        assert sup.wait(60) == 0
        assert [e["cause"] for e in out.events() if e["event"] == "died"] == ["killed by signal 9"]   # no crash loop
        time.sleep(1.0)                       # any fill in flight reaches the sim's trade list
        assert sim.poll() is None, f"the sim exited ({sim.poll()}) during the test"
        es = entries(j)
        ev = [e.record() for e in es if e.kind == RK_EVENT]
        start2 = [x for x in ev if x["event"] == "start"][1]
        assert start2["restart_cause"] == "killed by signal 9" and start2["run"] == 1
        rec = [x for x in ev if x["event"] == "recovered"][-1]
        # journal fills == the sim's trades of this account, each once
        mine = fills(es)
        ids = [int(r["trade_id"]) for r in mine]
        assert len(ids) == len(set(ids)), "a fill was journaled twice"
        trades = sim_call(port, "/fapi/v1/userTrades", {"symbol": "BTCUSDT", "limit": 1000})
        assert sorted(ids) == sorted(int(t["id"]) for t in trades), (rec, sorted(ids), [t["id"] for t in trades])
        # every order acknowledged has an end in the journal; the venue holds nothing of ours
        acked = {int(e.record()["client_id"]) for e in es if e.kind == RK_EXEC and int(e.record()["kind"]) == schema.EX_ACK}
        ended = {int(e.record()["client_id"]) for e in es if e.kind == RK_EXEC and int(e.record()["kind"]) in TERMINAL}
        assert acked - ended == set()
        assert sim_call(port, "/fapi/v1/openOrders", {}) == []
        # the position the engine ended with is the venue's
        pos = sim_call(port, "/fapi/v2/positionRisk", {"symbol": "BTCUSDT"})[0]["positionAmt"]
        stop = [x for x in ev if x["event"] == "stop"][-1]
        assert round(float(pos) * 1000) == stop["positions"]["BTCUSDT"]
        # and PostgreSQL gets the same fills, row for row
        from engine.testing.pg import pg_dsn
        dsn = pg_dsn()
        name = f"kill9-{os.getpid()}-{time.time_ns()}"
        r = subprocess.run([CLI, "journal", "pg-sync", "--dir", j, "--dsn", dsn, "--name", name], capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        import psycopg
        with psycopg.connect(dsn, autocommit=True) as c:
            try:
                rows = [x[0] for x in c.execute("SELECT trade_id FROM cs_execs WHERE journal = %s AND qty > 0 "
                                                "AND kind IN (%s, %s)", (name, schema.EX_FILL, schema.EX_PARTIAL))]
                assert sorted(rows) == sorted(ids)
            finally:
                from engine.testing.pg import drop_journal_rows
                drop_journal_rows(dsn, name)
    except BaseException:
        show(out=out, label="supervisor and engine")
        raise
    finally:
        kill(sup)
