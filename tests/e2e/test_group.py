"""The whole process group, as the issue asks: 4proc (feed, brain, engine: risk + journal,
gateway) plus the journal process copying into PostgreSQL, under the supervisor, against a
sim process that answers every order after 50 ms. Kill -9 each process in turn (feed,
brain, gateway, journal, then the engine itself): each is restarted, trading resumes after
reconciliation, and at the stop no order is lost or duplicated: journal fills = the sim's
trades, each once; every acknowledged order ended; nothing open; no client id sent twice;
PostgreSQL holds every journal record once."""
import os
import signal
import subprocess
import time

from test_admin import admin
from test_kill9 import CLI, Lines, entries, fills, kill, show, wait_for
from test_split import events, journal_agrees_with_venue

from cext.shm_core import find_segments, pid_alive
from engine import schema
from engine.journal.journal import RK_ORDER
from engine.testing.pg import assert_pg_holds_journal, drop_journal_rows, pg_dsn
from engine.venues.sim.run import SimProcess
from engine.venues.sim.server import TEST_API_KEY, TEST_API_SECRET


def sent(j):
    return len([e for e in entries(j) if e.kind == RK_ORDER and int(e.record()["t_send"])])


def test_kill_each_process_of_the_group_in_turn(tmp_path):
    dsn = pg_dsn()
    name = f"e2e-group-{os.getpid()}-{time.time_ns()}"
    sim = SimProcess(CLI, speed=10, seed=19, faults="ack_delay_ms=50")
    port = sim.port
    sup = out = None
    try:
        j = str(tmp_path / "journal")
        ep = f"ipc://{tmp_path / 'admin.sock'}"
        env = dict(os.environ, CRYPTOSCALP_API_KEY=TEST_API_KEY, CRYPTOSCALP_API_SECRET=TEST_API_SECRET)
        sup = subprocess.Popen([CLI, "supervise", "--watchdog-s", "20", "--backoff-s", "0.5", "--", CLI, "run",
                                "--topology", "4proc", "--venue", f"http://127.0.0.1:{port}", "--journal", j,
                                "--pg", dsn, "--pg-name", name, "--admin", ep, "--metrics-port", "-1",
                                "--log-format", "text", "--feed-max-future-ms", "0",
                                "--limit", "max_consecutive_losses=1000000"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        out = Lines(sup.stdout)
        wait_for(lambda: len(fills(entries(j))) >= 2, 300, "two fills")
        st = admin(ep, "status")
        procs = {p["name"]: p for p in st["processes"]}
        assert set(procs) == {"engine", "feed", "brain", "gateway", "journal"}
        engine_pid = procs["engine"]["pid"]

        for role in ("feed", "brain", "gateway", "journal"):
            pid = next(p for p in admin(ep, "status")["processes"] if p["name"] == role)["pid"]
            n = sent(j)
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: [x for x in events(j) if x["event"] == "process_restarted" and x["process"] == role], 60,
                     f"the {role}'s restart")
            wait_for(lambda: sent(j) >= n + 4, 180, f"orders after the {role}'s restart")
            st = admin(ep, "status")
            p = next(p for p in st["processes"] if p["name"] == role)
            assert p["alive"] and p["restarts"] == 1 and p["pid"] != pid and p["last_cause"] == "killed by signal 9"
        ev = events(j)
        assert [x for x in ev if x["event"] == "brain_down_quotes_cancelled"]
        assert [x for x in ev if x["event"] == "gateway_down"]
        wait_for(lambda: (admin(ep, "status")["postgres"] or {}).get("rows_written", 0) > 0, 60,
                 "the new journal process writing")

        # the engine itself: its processes die with it, the supervisor starts a new one, which recovers
        os.kill(engine_pid, signal.SIGKILL)
        wait_for(lambda: [e for e in out.events() if e["event"] == "died"], 30, "the supervisor to see it")
        wait_for(lambda: not [p for p in procs.values() if p["name"] != "engine" and pid_alive(p["pid"])], 15,
                 "the dead engine's processes to die with it")

        def resumed():
            starts = [x for x in events(j) if x["event"] == "start"]
            new = [e for e in entries(j) if e.kind == RK_ORDER and int(e.record()["t_send"])
                   and int(e.record()["client_id"]) >= (1 << 40) + (1 << 28)]
            return len(starts) >= 2 and len(new) >= 4
        wait_for(resumed, 240, "trading after the engine's restart")

        sup.send_signal(signal.SIGTERM)
        assert sup.wait(90) == 0
        assert sim.poll() is None
        ev = journal_agrees_with_venue(j, port)
        es = entries(j)
        news = [int(e.record()["client_id"]) for e in es if e.kind == RK_ORDER
                and int(e.record()["action"]) == schema.ACT_NEW]
        assert len(news) == len(set(news)), "an order was sent twice"
        new_engine = [x for x in ev if x["event"] == "start"][-1]["pid"]
        assert new_engine != engine_pid and find_segments(f"/cs.g{new_engine}.") == []
        assert_pg_holds_journal(dsn, name, es)
        import psycopg
        with psycopg.connect(dsn, autocommit=True) as c:
            pg_trades = sorted(r[0] for r in c.execute(
                "SELECT trade_id FROM cs_execs WHERE journal = %s AND qty > 0 AND kind IN (%s, %s)",
                (name, schema.EX_PARTIAL, schema.EX_FILL)))
        assert pg_trades == sorted(int(r["trade_id"]) for r in fills(es))
    except BaseException:
        show(sim, out, "supervisor and engine")
        raise
    finally:
        kill(sup)
        sim.close()
        drop_journal_rows(dsn, name)
