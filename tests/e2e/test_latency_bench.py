"""`cryptoscalp bench latency --topology 4proc` end to end: a sim process, the engine (risk,
journal), its feed, brain and gateway processes, every stage measured from the orders
actually sent (the send stage's halves from the gateway process's stop line)."""
import json
import os
import subprocess

from test_kill9 import CLI


def test_bench_latency_4proc(tmp_path):
    png = tmp_path / "lat.png"
    r = subprocess.run([CLI, "bench", "latency", "--topology", "4proc", "--seconds", "25", "--warmup", "2",
                        "--plot", str(png)], capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr[-3000:] + r.stdout[-3000:]
    recs = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    stages = {x["stage"]: x for x in recs if x["stage"] != "process"}
    assert list(stages) == ["feed", "parse", "book", "features", "inference", "strategy", "risk", "send",
                            "tick_to_trade", "first_order_out", "send.order_hop", "send.sign", "send.write"]
    for half in ("send.order_hop", "send.sign", "send.write"):     # the gateway's own split of the send stage
        assert stages[half]["n"] > 10 and 0 < stages[half]["p50"] <= stages[half]["p99"]
    assert stages["parse"]["n"] == stages["book"]["n"] == 0      # split: the parse stamp stays in the feed process
    e2e = stages["tick_to_trade"]
    assert e2e["n"] > 10 and e2e["case"] == "4proc, wait hybrid"
    assert 0 < e2e["p50"] <= e2e["p90"] <= e2e["p99"] <= e2e["p999"] <= e2e["max"]
    parts = sum(stages[s]["p50"] for s in ("feed", "features", "inference", "strategy", "risk", "send"))
    assert parts > 0.5 * e2e["p50"]                 # the stages account for the path
    assert e2e["per_s"] > 0 and "warm-up" in e2e["excluded"]
    assert 0 < e2e["orders_written_at_once"] <= e2e["orders_sent"]
    first = stages["first_order_out"]          # per message (cancel-only messages too: another population)
    assert first["n"] > 0 and 0 < first["p50"] <= first["max"]
    procs = {x["process"]: x for x in recs if x["stage"] == "process"}
    assert set(procs) == {"engine", "feed", "brain", "gateway"} and all(p["rss_mb"] > 10 for p in procs.values())
    assert recs[0]["host"]["cores"] == os.cpu_count()
    assert png.stat().st_size > 10_000


def test_bench_latency_fused_busy_polling_pinned():
    """fused --wait spin (the loop busy-polls and rehearses the order path between
    messages), the engine pinned to the last usable CPU and the sim to the first (the same
    one on a one-CPU host): orders measured, the case named, the collector's pauses
    reported (engine/pauses.py: collections taken once a second)."""
    usable = sorted(os.sched_getaffinity(0))
    eng, sim = str(usable[-1]), str(usable[0])
    r = subprocess.run([CLI, "bench", "latency", "--topology", "fused", "--wait", "spin", "--cpus", eng,
                        "--sim-cpus", sim, "--seconds", "20", "--warmup", "2"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:] + r.stdout[-3000:]
    recs = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    e2e = next(x for x in recs if x["stage"] == "tick_to_trade")
    assert e2e["case"] == f"fused, wait spin, pinned (engine={eng}; sim={sim})"
    assert e2e["n"] > 10 and 0 < e2e["p50"] <= e2e["p99"]
    sign = next(x for x in recs if x["stage"] == "send.sign")       # the compiled request encoder
    assert sign["n"] > 10 and sign["p50"] > 0
    assert e2e["gc"]["frozen_objects"] > 0 and e2e["gc"]["collections"] > 5
    # the order path was rehearsed between messages, never failing (a failure turns it off)
    assert e2e["rehearsals"] > 1000 and e2e["rehearsal_error"] is None
    assert [x["process"] for x in recs if x["stage"] == "process"] == ["engine"]
