"""Helpers shared by the benchmarks: host description, percentiles, JSON-line output."""
import json
import os
import sys

import numpy as np

from engine.latency import host  # noqa: F401  (one description of the host, the CLI bench uses it too)


def latency_stats(samples_ns, unit="ns"):
    a = np.asarray(samples_ns, dtype=np.float64)
    if a.size == 0:
        return {"unit": unit, "n": 0}
    p50, p90, p99, p999 = np.percentile(a, [50, 90, 99, 99.9])
    return {"unit": unit, "n": int(a.size), "p50": round(p50, 1), "p90": round(p90, 1),
            "p99": round(p99, 1), "p999": round(p999, 1), "max": round(float(a.max()), 1),
            "mean": round(float(a.mean()), 1)}


def synthetic_model(tmp: str) -> str:
    """Train the benchmarks' model (900 s of the synthetic market, seed 5; ~30 s, not
    timed) into ``tmp``/models; returns the registry root."""
    from engine.models.train import TrainConfig, train
    from engine.venues.sim.generator import write_synthetic_capture
    cap = os.path.join(tmp, "syn.gz")
    write_synthetic_capture(cap, 900, seed=5)
    train([cap], os.path.join(tmp, "models"), TrainConfig(seed=0), log=lambda *x: None)
    return os.path.join(tmp, "models")


def emit(record, host_info):
    """Print one JSON object per case on its own line (STYLE.md)."""
    record = dict(record)
    record["host"] = host_info
    print(json.dumps(record), flush=True)


def pin(cpu):
    """Pin this process to one CPU if it is usable; returns whether it did."""
    if cpu is None:
        return False
    try:
        os.sched_setaffinity(0, {cpu})
        return True
    except OSError as e:
        print(f"warning: could not pin to cpu {cpu}: {e}", file=sys.stderr)
        return False


def steal_ms():
    """Total CPU time stolen by the hypervisor so far (ms, all CPUs), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return int(fields[8]) * 1000 // os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return -1


def involuntary_switches():
    """This process's involuntary context switches so far (preemptions)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("nonvoluntary_ctxt_switches"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1
