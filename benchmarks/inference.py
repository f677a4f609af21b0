#!/usr/bin/env python
"""Ensemble inference, one feature row at a time, as the brain calls it.

    python benchmarks/inference.py [--model-dir REGISTRY_OR_VERSION] [--data CAPTURE] [--n 20000]

Without --model-dir it trains a model first (900 s of the synthetic market, seed 5; about
half a minute, not timed). The rows are what the brain would score: the feature rows after
every message of a recording (``build_rows(..., sample_ms=0)``), by default 600 s of the
synthetic market with another seed (6, never seen in training; ~60,000 rows once the 300 s
feature warm-up is over), or ``--data`` (e.g. the BTCUSDT capture: ~60 s of rows).

Why the order of the rows matters: the two tree ensembles (364 trees) cost 7 us when
consecutive rows are alike, as consecutive market events are, and 15-20 us more when
every row differs (a branch mispredicted at most tree levels). So the rows are timed in
arrival order (the live case, and the target's) and again shuffled (the worst case for the
trees), both reported.

Cases, all in this run, on the same rows:
- fused graph, one ORT session, one thread, I/O binding (``EnsembleRuntime.predict``,
  backend onnxruntime), rows in order; the same, rows shuffled;
- the same graph compiled to one C program (backend native, what the engine runs by
  default), in order and shuffled, with the AVX2+FMA and the baseline matrix kernel;
- the same fused session through ``session.run`` with an input dict (no binding);
- four separate ORT sessions (the members' own .onnx files) + the average in numpy;
- native predict: scikit-learn LR and RF, XGBoost, torch LSTM one step, + the average.
Excluded: session creation, model loading, the first 1000 calls (warm-up). Targets for
the fused case (issue 6): p50 <= 30 us, p99 <= 80 us.
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import emit, host, latency_stats, synthetic_model  # noqa: E402

WARMUP = 1000              # calls before timing (ORT allocations, caches)


def timed(fn, X, n):
    lat = np.empty(n, np.int64)
    pc = time.perf_counter_ns
    m = len(X)
    for k in range(WARMUP):
        fn(X[k % m])
    for k in range(n):
        x = X[k % m]
        t0 = pc()
        fn(x)
        lat[k] = pc() - t0
    return lat


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", help="a registry root (its CURRENT) or one version directory")
    ap.add_argument("--data", help="a recording whose feature rows are scored (default: 600 s synthetic, seed 6)")
    ap.add_argument("--n", type=int, default=20_000)
    a = ap.parse_args()
    import json

    import onnxruntime as ort

    from engine.models.learners import HIDDEN, LAYERS, MEMBERS, state_names
    from engine.models.registry import ModelRegistry
    from engine.models.runtime import EnsembleRuntime, session_options
    h = host()
    tmp = None
    if a.model_dir is None:
        tmp = tempfile.mkdtemp(prefix="cs-bench-")
        a.model_dir = synthetic_model(tmp)
    if os.path.isfile(os.path.join(a.model_dir, "manifest.json")):
        vdir = a.model_dir
    else:
        reg = ModelRegistry(a.model_dir)
        vdir = reg.path(reg.current())
    with open(os.path.join(vdir, "manifest.json")) as f:
        man = json.load(f)
    # rows: the feature rows after every message of a recording the model never saw, in order
    from engine.models.dataset import LabelSpec, build_rows
    if a.data is None:
        from engine.venues.sim.generator import write_synthetic_capture
        tmp = tmp or tempfile.mkdtemp(prefix="cs-bench-")
        a.data = os.path.join(tmp, "rows.gz")
        write_synthetic_capture(a.data, 600, seed=6)
    X = np.ascontiguousarray(build_rows([a.data], LabelSpec(sample_ms=0)).X)
    Xs = X[np.random.default_rng(0).permutation(len(X))]
    from engine.features.vector import NAMES
    mask = np.array([0.0 if f in man.get("excluded_features", []) else 1.0 for f in NAMES], np.float32)
    rt = EnsembleRuntime.from_dir(vdir, man, backend="onnxruntime")
    base = {"bench": "inference", "unit": "ns", "model": man["version"], "rows": len(X),
            "rows_from": os.path.basename(a.data),
            "quantized": man["quantization"], "excluded": f"session creation, {WARMUP} warm-up calls"}
    n = a.n

    target = {"p50": 30_000, "p99": 80_000}
    for order, rows in (("in order", X), ("shuffled", Xs)):
        rt.reset_state()
        st = latency_stats(timed(rt.predict, rows, n))
        emit({**base, "case": f"fused graph, 1 session, 1 thread, I/O binding (EnsembleRuntime.predict), rows {order}",
              **st, "target_ns": target, "target_met": all(st[k] <= v for k, v in target.items())}, h)

    # the same graph compiled to C (engine/models/native.py), checked against ORT at load;
    # both matrix kernels (AVX2+FMA where the CPU has it, the baseline otherwise)
    from cext import ensemble as CE
    nat = EnsembleRuntime.from_dir(vdir, man, backend="native")
    wide = CE.kernel()
    kernels = [wide] + (["baseline"] if wide != "baseline" else [])
    for kern in kernels:
        CE.use_wide(kern != "baseline")
        for order, rows in (("in order", X), ("shuffled", Xs)):
            nat.reset_state()
            st = latency_stats(timed(nat.predict, rows, n))
            emit({**base, "case": f"fused graph compiled to C ({kern} kernel, EnsembleRuntime backend native), "
                                  f"rows {order}", "vs": "fused I/O binding", **st,
                  "max_abs_diff_vs_ort_at_load": max(nat.native_diff.values())}, h)
    CE.use_wide(wide != "baseline")

    sess = rt.sess
    hs = np.zeros((1, HIDDEN), np.float32)
    w = rt.w.copy()
    st = {n: hs for n in state_names()}

    def fused_run(x):
        return sess.run(None, {"x": x.reshape(1, -1), "weights": w, **st})
    emit({**base, "case": "fused graph, session.run with an input dict (no binding)", "vs": "fused I/O binding",
          **latency_stats(timed(fused_run, X, n))}, h)

    sessions = {}
    for k in MEMBERS:
        with open(os.path.join(vdir, f"{k}.onnx"), "rb") as f:
            sessions[k] = ort.InferenceSession(f.read(), session_options(), providers=["CPUExecutionProvider"])
    maps = {k: (None if man["classes"][k] is None else
                __import__("engine.models.learners", fromlist=["class_map"]).class_map(man["classes"][k]))
            for k in MEMBERS}

    def separate(x):
        xm = (x * mask).reshape(1, -1)
        acc = np.zeros(3, np.float32)
        for k in ("lr", "rf", "xgb"):
            acc += (sessions[k].run(["probabilities"], {"x": xm})[0] @ maps[k])[0]
        acc += sessions["lstm"].run(["probs"], {"x": xm, **st})[0][0]
        return acc / 4
    emit({**base, "case": "4 separate ORT sessions + numpy average", "vs": "fused I/O binding",
          **latency_stats(timed(separate, X, n))}, h)

    # native: the very models that were exported, as training kept them (native.pkl)
    nat = os.path.join(vdir, "native.pkl")
    if os.path.isfile(nat):
        import pickle

        import torch
        with open(nat, "rb") as f:
            natives = pickle.load(f)
        torch.set_num_threads(1)
        lstm = natives["lstm"]
        h0 = torch.zeros(LAYERS, 1, HIDDEN)

        def native(x):
            xm = (x * mask).reshape(1, -1)
            acc = np.zeros(3, np.float32)
            for k in ("lr", "rf", "xgb"):
                acc += natives[k].predict_proba(xm)[0]
            with torch.no_grad():
                acc += lstm(torch.from_numpy(xm), h0, h0)[0][0].numpy()
            return acc / 4
        emit({**base, "case": "native predict: sklearn LR + RF, XGBoost, torch LSTM step + average",
              "vs": "fused I/O binding", **latency_stats(timed(native, X, max(200, n // 10)))}, h)
    else:
        print(f"native case skipped: {nat} absent (models trained before native pickles were kept)", file=sys.stderr)
    if tmp:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
