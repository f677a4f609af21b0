#!/usr/bin/env python
"""Tick-to-trade by stage, fused topology against 2proc (spin and hybrid waits), in one run:
the same harness as ``cryptoscalp bench latency`` (engine/latency.py: a sim process, the
engine against it, stage stamps read back from the journal's orders, CPU and RSS per
process from /proc). One JSON line per stage and per process (STYLE.md), PNG histograms
in bench-out/ (git-ignored).

    python benchmarks/latency.py [--seconds 60] [--quick]
"""
import argparse
import json
import os
import sys

from engine import latency


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--quick", action="store_true", help="20 s per case")
    args = ap.parse_args()
    seconds = 20.0 if args.quick else args.seconds
    out = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench-out")
    os.makedirs(out, exist_ok=True)
    for topology, wait in (("fused", "hybrid"), ("2proc", "spin"), ("2proc", "hybrid")):
        name = topology if topology == "fused" else f"{topology}-{wait}"
        recs = latency.run(topology, seconds=seconds, wait=wait, plot=os.path.join(out, f"latency-{name}.png"),
                           progress=lambda m: print(m, file=sys.stderr, flush=True))
        for r in recs:
            if topology != "fused" and r["stage"] == "tick_to_trade":
                r["vs"] = "fused"
            print(json.dumps(r), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
