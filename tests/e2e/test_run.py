"""`cryptoscalp run`: paper trading on the built-in sim, as `make run` starts it. Orders go
through the gate, fills come back, everything is journaled, Ctrl-C cancels what is open,
and the journal lands in PostgreSQL row for row."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from engine import schema
from engine.journal.journal import RK_EVENT, RK_EXEC, RK_ORDER, RK_REJECT, JournalReader

CLI = shutil.which("cryptoscalp") or os.path.join(os.path.dirname(sys.executable), "cryptoscalp")
TERMINAL = {schema.EX_FILL, schema.EX_CANCELED, schema.EX_EXPIRED, schema.EX_REJECT}


def journal(path):
    r = JournalReader(path)
    es = list(r.entries())
    assert not r.errors, r.errors
    assert [e.seq for e in es] == list(range(1, len(es) + 1))
    return es


def no_order_left_open(es):
    acked = {int(e.record()["client_id"]) for e in es if e.kind == RK_EXEC and int(e.record()["kind"]) == schema.EX_ACK}
    done = {int(e.record()["client_id"]) for e in es if e.kind == RK_EXEC and int(e.record()["kind"]) in TERMINAL}
    return acked - done


def test_paper_trading_run_journals_everything_and_stops_clean(tmp_path):
    j = str(tmp_path / "journal")
    r = subprocess.run([CLI, "run", "--seconds", "14", "--speed", "10", "--journal", j, "--seed", "3"],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.strip().splitlines()
    assert "paper trading on the built-in simulated exchange" in lines[0]
    assert any("BTCUSDT pos" in x and "risk ACTIVE" in x for x in lines[1:-1])
    out = json.loads(lines[-1])
    assert out["orders_sent"] > 0 and out["tick_to_trade_us"]["p50"] > 0
    es = journal(j)
    kinds = [e.kind for e in es]
    assert kinds.count(RK_ORDER) == out["orders_sent"]
    assert kinds.count(RK_REJECT) == sum(out["rejects"].values())
    fills = [e for e in es if e.kind == RK_EXEC and int(e.record()["kind"]) in (schema.EX_FILL, schema.EX_PARTIAL)]
    assert len(fills) == out["fills"]
    events = [e.record()["event"] for e in es if e.kind == RK_EVENT]
    assert events[0] == "start" and events[-1] == "stop" and "reconciled" in events
    assert no_order_left_open(es) == set() and out["venue_open_orders_after_stop"] == 0
    # every order the gate passed was stamped through the stages
    o = next(e.record() for e in es if e.kind == RK_ORDER and int(e.record()["action"]) == schema.ACT_NEW)
    assert 0 < o["mono_origin"] <= o["t_features"] <= o["t_strategy"] <= o["t_risk"] <= o["t_send"]


def test_ctrl_c_cancels_open_orders_first(tmp_path):
    j = str(tmp_path / "journal")
    # losses must not pause quoting here (a cool-down would leave nothing resting to cancel)
    p = subprocess.Popen([CLI, "run", "--speed", "10", "--journal", j, "--seed", "5", "--admin", "none",
                          "--metrics-port", "-1", "--limit", "max_consecutive_losses=100000",
                          "--limit", "max_daily_trades=100000"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240            # a cold numba cache compiles first
    try:
        while time.time() < deadline:        # until a quote is resting
            time.sleep(0.5)
            if os.path.isdir(j):
                es = list(JournalReader(j).entries())
                if no_order_left_open(es):
                    break
        else:
            raise AssertionError("no order was resting within 240 s")
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err[-3000:]
    summary = json.loads(out.strip().splitlines()[-1])
    es = journal(j)
    stop = [e.record() for e in es if e.kind == RK_EVENT][-1]
    assert stop["event"] == "stop" and summary["cancelled_at_stop"] == stop["cancelled"]
    assert stop["venue_open_orders_after"] == 0 == summary["venue_open_orders_after_stop"]
    assert no_order_left_open(es) == set()


def test_the_journal_lands_in_postgres_row_for_row(tmp_path):
    from engine.testing.pg import pg_dsn
    dsn = pg_dsn()
    j = str(tmp_path / "journal")
    r = subprocess.run([CLI, "run", "--seconds", "10", "--speed", "10", "--journal", j, "--seed", "7"],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    name = f"e2e-{os.getpid()}-{time.time_ns()}"
    r = subprocess.run([CLI, "journal", "pg-sync", "--dir", j, "--dsn", dsn, "--name", name], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    es = journal(j)
    assert json.loads(r.stdout)["written"] == len(es)
    import psycopg
    with psycopg.connect(dsn, autocommit=True) as c:
        try:
            for table, kind in (("cs_orders", RK_ORDER), ("cs_execs", RK_EXEC), ("cs_rejects", RK_REJECT),
                                ("cs_events", RK_EVENT)):
                n = c.execute(f"SELECT count(*) FROM {table} WHERE journal = %s", (name,)).fetchone()[0]
                assert n == sum(1 for e in es if e.kind == kind), table
            ids = [row[0] for row in c.execute("SELECT client_id FROM cs_orders WHERE journal = %s ORDER BY journal_seq",
                                               (name,))]
            assert ids == [int(e.record()["client_id"]) for e in es if e.kind == RK_ORDER]
        finally:
            from engine.testing.pg import drop_journal_rows
            drop_journal_rows(dsn, name)


@pytest.mark.parametrize("topology", ["fused", "4proc"])
def test_sim_faults_are_survived_and_counted(tmp_path, topology):
    """Disconnects, sequence gaps, 429s, 5xx and slow acks from the sim: the engine
    reconnects, resyncs, retries, counts each, fails safe (an error storm halts trading),
    and still leaves nothing open at the venue. 4proc: the same with the feed, the brain
    and the gateway in processes of their own (the gateway's user stream drops too)."""
    j = str(tmp_path / "journal")
    faults = "disconnect_every_s=4,http_5xx_prob=0.05,http_429_prob=0.02,ack_delay_ms=30,gap_prob=0.002"
    r = subprocess.run([CLI, "run", "--seconds", "20", "--speed", "10", "--journal", j, "--seed", "9",
                        "--admin", "none", "--metrics-port", "-1", "--sim-faults", faults, "--topology", topology,
                        "--log-format", "json"],
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    f = out["faults_survived"]
    assert f["user_stream_reconnects"] >= 1
    if topology == "fused":
        assert f["feed_disconnects"] >= 2 and f["feed_connects"] >= 3
        assert f["snapshots"] >= 2                              # resynced after gaps and reconnects
        gw = f["gateway"]
    else:                       # the feed's and the gateway's counters are in their processes' stop lines
        lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{") and '"logger"' in x]
        gw = next(x["stats"] for x in lines if x["logger"] == "cryptoscalp.gateway" and "stats" in x)
        assert gw["sent"] + gw["fast_sent"] > 0
    assert gw["rate_limited"] + gw["rejects"] + gw["retries"] >= 1
    assert out["venue_open_orders_after_stop"] == 0
    es = journal(j)
    assert no_order_left_open(es) == set()
    ev = [e.record() for e in es if e.kind == RK_EVENT]
    assert any(x["event"] == "user_stream_lost" for x in ev)
    # HALTED while the user stream is down or reconciling, ACTIVE again once it reconciled
    held = [x for x in ev if x["event"] == "trading_state" and x.get("by") == "user stream down or reconciling"]
    over = [x for x in ev if x["event"] == "trading_state" and x.get("by") == "user stream down or reconciling: over"]
    assert held and all(x["to"] == "HALTED" for x in held) and over and all(x["to"] == "ACTIVE" for x in over)
    if out["trading_state"] != "ACTIVE":                        # a halt is journaled with its reasons
        assert any(x["event"] == "trading_state" and x["reasons"] for x in ev)
