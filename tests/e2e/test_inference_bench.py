"""benchmarks/inference.py runs and prints one JSON line per case (a smoke test: no timing
is asserted, the machine is shared)."""
import json
import os
import subprocess
import sys

from engine.testing.data import REPO


def test_inference_benchmark_prints_every_case(trained_registry):
    r = subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", "inference.py"),
                        "--model-dir", trained_registry["root"], "--n", "300"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    from cext.ensemble import kernel
    kernels = 2 if kernel() != "baseline" else 1             # the compiled graph per matrix kernel
    assert len(lines) == 5 + 2 * kernels
    for d in lines:
        assert d["bench"] == "inference" and d["n"] >= 200 and d["p50"] > 0 and "host" in d
        assert d["rows"] > 1000            # the feature rows of a held-out recording
    assert lines[0]["case"].endswith("rows in order") and lines[1]["case"].endswith("rows shuffled")
    for d in lines[:2]:
        assert d["case"].startswith("fused graph, 1 session") and d["target_ns"] == {"p50": 30000, "p99": 80000}
        assert d["target_met"] == (d["p50"] <= 30000 and d["p99"] <= 80000)
    assert all(d.get("vs") == "fused I/O binding" for d in lines[2:])
    compiled = [d for d in lines if d["case"].startswith("fused graph compiled to C")]
    assert len(compiled) == 2 * kernels
    assert all(0 <= d["max_abs_diff_vs_ort_at_load"] <= 1e-5 for d in compiled)
