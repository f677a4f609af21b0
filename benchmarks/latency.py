#!/usr/bin/env python
"""Tick-to-trade by stage, fused topology (without and with the ensemble; with the ensemble
also busy-polling, unpinned and pinned, and pinned twice more: with the ensemble in ONNX
Runtime instead of the compiled graph, and with each step from the brain to the write
called from Python instead of the compiled decision path, ``--hot-path python``) against
2proc and 3proc (spin and hybrid waits) and 4proc (hybrid), in one run:
the same harness as ``cryptoscalp bench latency`` (engine/latency.py: a sim process, the
engine against it, stage stamps read back from the journal's orders, CPU and RSS per
process from /proc). One JSON line per stage and per process (STYLE.md), PNG histograms
in bench-out/ (git-ignored).

    python benchmarks/latency.py [--seconds 60] [--quick] [--model REGISTRY | --no-model]

Without --model, the ensemble case trains the benchmarks' model first (900 s of the
synthetic market, ~30 s, not timed).
"""
import argparse
import json
import os
import shutil
import sys
import tempfile

from engine import latency

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import synthetic_model  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--quick", action="store_true", help="20 s per case")
    ap.add_argument("--model", help="model registry for the ensemble case (default: train one)")
    ap.add_argument("--no-model", action="store_true", help="skip the ensemble case")
    args = ap.parse_args()
    tmp = None
    if args.model is None and not args.no_model:
        tmp = tempfile.mkdtemp(prefix="cs-bench-")
        args.model = synthetic_model(tmp)
    seconds = 20.0 if args.quick else args.seconds
    out = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench-out")
    os.makedirs(out, exist_ok=True)
    # fused, event loop asleep between frames (hybrid) or busy-polling (spin: one core, the model and
    # the order path rehearsed between messages); the last fused case pins the engine to CPU 1 and
    # the sim to CPU 0 (the other CPUs, if any, stay free)
    # the ensemble runs as the engine runs it by default (the graph compiled to C, checked
    # against ONNX Runtime at load), and once more in ONNX Runtime, pinned: the alternative
    # and the decision from the instrument's state to the write as one compiled call (the default,
    # cext.hotpath), and once more each step called from Python, pinned: the alternative
    pin = ("engine=1", "0") if os.cpu_count() >= 2 else (None, None)
    fused = [("fused", "hybrid", None, (None, None), "auto", "compiled")]
    if args.model:
        fused += [("fused", "hybrid", args.model, (None, None), "auto", "compiled"),
                  ("fused", "spin", args.model, (None, None), "auto", "compiled"),
                  ("fused", "spin", args.model, pin, "auto", "compiled"),
                  ("fused", "spin", args.model, pin, "onnxruntime", "compiled"),
                  ("fused", "spin", args.model, pin, "auto", "python")]
    cases = fused + [(t, w, None, (None, None), "auto", "compiled") for t, w in
                     (("2proc", "spin"), ("2proc", "hybrid"), ("3proc", "spin"), ("3proc", "hybrid"), ("4proc", "hybrid"))]
    # 4proc spin: three spinning processes on a 2-core host, not run
    for topology, wait, model, (cpus, sim_cpus), inference, hot_path in cases:
        name = (topology if topology == "fused" and wait == "hybrid" else f"{topology}-{wait}") + \
            ("-ensemble" if model else "") + ("-pinned" if cpus else "") + \
            ("-onnxruntime" if inference == "onnxruntime" else "") + ("-python" if hot_path == "python" else "")
        recs = latency.run(topology, seconds=seconds, wait=wait, model=model, cpus=cpus, sim_cpus=sim_cpus,
                           inference=inference, hot_path=hot_path, plot=os.path.join(out, f"latency-{name}.png"),
                           progress=lambda m: print(m, file=sys.stderr, flush=True))
        for r in recs:
            if (topology != "fused" or model or wait != "hybrid") and r["stage"] == "tick_to_trade":
                r["vs"] = "fused"
            if model and r["stage"] == "tick_to_trade":
                r["target_us"] = {"p50": 40, "p99": 150}          # issue 10: fused, ensemble in the path
                r["target_met"] = bool(r["n"] > 0 and r["p50"] <= 40 and r["p99"] <= 150)
            print(json.dumps(r), flush=True)
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
