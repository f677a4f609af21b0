"""The trained ensemble end to end: files and manifest, fused graph == native models, the
runtime's state and weights, quantization's rule, registry refusals, reload and rollback,
and the adapter's decisions."""
import json
import os
import pickle
import shutil

import numpy as np
import pytest

from engine.features.regime import NAMES as REGIMES
from engine.models import export as E
from engine.models.learners import MEMBERS
from engine.models.registry import ModelHandle, ModelRegistry, RegistryError, SchemaMismatch


def version_dir(root):
    r = ModelRegistry(root)
    return r, r.path(r.current())


def test_a_version_has_its_files_manifest_and_report(trained_registry):
    reg, d = version_dir(trained_registry["root"])
    m = reg.verify(reg.current())
    for f in ("fused.onnx", "lr.onnx", "rf.onnx", "xgb.onnx", "lstm.onnx", "report.json", "report.md",
              "calibration.png", "confusion.png", "drift_reference.json", "native.pkl"):
        assert os.path.getsize(os.path.join(d, f)) > 0, f
    for key in ("content_hash", "feature_schema_hash", "data", "metrics", "parent", "created", "label",
                "regime_weights", "quantization", "parity_max_abs_diff"):
        assert key in m, key
    assert m["data"]["t_first_ns"] < m["data"]["t_last_ns"]
    assert set(m["regime_weights"]) == set(REGIMES)
    rep = json.load(open(os.path.join(d, "report.json")))
    for k in (*MEMBERS, "prior", "persistence", "ensemble"):
        assert {"log_loss", "accuracy", "per_class", "confusion"} <= set(rep["oos"][k])
    assert len(rep["folds"]) >= 2
    assert "Better than the best baseline" in open(os.path.join(d, "report.md")).read()


def test_fused_graph_reproduces_every_native_model(trained_registry):
    """Held-out parity as recorded, and again here from the files: the fused graph's member
    outputs vs the native models (the LSTM stepped from the recording's start in both)."""
    reg, d = version_dir(trained_registry["root"])
    m = reg.manifest(reg.current())
    for k, v in m["parity_max_abs_diff"].items():
        if k in MEMBERS and not m["quantization"][k]:
            assert v <= E.PARITY_TOL, (k, v)
    natives = pickle.load(open(os.path.join(d, "native.pkl"), "rb"))
    from engine.models.dataset import LabelSpec, build_rows
    rows = build_rows([trained_registry["capture"]], LabelSpec())
    X = rows.X
    mask = np.array([0.0 if n in m["excluded_features"] else 1.0
                     for n in __import__("engine.features.vector", fromlist=["NAMES"]).NAMES], np.float32)
    rt = reg.load()
    fused = np.array([rt.predict(x).copy() for x in X])
    import torch
    with torch.no_grad():
        lstm_p, _, _ = natives["lstm"].seq_logits(torch.tensor(X * mask).unsqueeze(1),
                                                  torch.zeros(2, 1, 64), torch.zeros(2, 1, 64))
        lstm_p = torch.softmax(lstm_p[:, 0], -1).numpy()
    nat = np.mean([natives["lr"].predict_proba(X * mask), natives["rf"].predict_proba(X * mask),
                   natives["xgb"].predict_proba(X * mask), lstm_p], axis=0)
    assert np.abs(fused - nat).max() < 1e-4


@pytest.mark.parametrize("backend", ["native", "onnxruntime"])
def test_runtime_state_commit_and_regime_weights(trained_registry, backend):
    reg, _ = version_dir(trained_registry["root"])
    rt = reg.load(backend=backend)
    assert rt.backend == backend
    rng = np.random.default_rng(0)
    ref = json.load(open(os.path.join(reg.path(reg.current()), "drift_reference.json")))
    xs = [np.array([rng.choice(e) if e else 0.0 for e in ref["edges"]], np.float32) for _ in range(5)]
    a = rt.predict(xs[0], commit=False).copy()
    lstm_a = rt.members[3].copy()
    b = rt.predict(xs[0], commit=False).copy()
    assert np.array_equal(a, b)                       # no commit: the LSTM state did not move
    rt.predict(xs[0], commit=True)
    rt.predict(xs[0], commit=False)
    assert not np.array_equal(lstm_a, rt.members[3])  # committed: the same row now meets another state
    st = [s.copy() for s in rt.lstm_state]
    assert any(np.abs(s).sum() > 0 for s in st)
    rt.reset_state()
    assert all(np.abs(s).sum() == 0 for s in rt.lstm_state)
    # weights: only member k -> the ensemble is exactly member k
    for k in range(4):
        w = np.zeros(4, np.float32)
        w[k] = 3.0
        rt.regime_weights["CRASH"] = w
        rt.set_regime("CRASH")
        p = rt.predict(xs[1], commit=False)
        assert np.allclose(p, rt.members[k], atol=1e-7)
    with pytest.raises(ValueError, match="unknown regime"):
        rt.set_regime("SIDEWAYS")
    bad = xs[2].copy()
    bad[4] = np.nan
    with pytest.raises(ValueError, match="not all finite"):
        rt.predict(bad)


def test_auto_backend_is_the_checked_native_program(trained_registry):
    reg, _ = version_dir(trained_registry["root"])
    rt = reg.load()
    assert rt.backend == "native" and rt.backend_note == ""
    assert set(rt.native_diff) == {"probs", "members", "h0_out", "c0_out", "h1_out", "c1_out"}
    assert max(rt.native_diff.values()) <= 1e-5
    assert rt.sess is not None                       # the ONNX Runtime session is made all the same


def test_auto_backend_falls_back_to_onnxruntime_and_says_why(trained_registry, monkeypatch):
    """A graph with an operator the program does not do, and a program whose outputs
    disagree with ONNX Runtime: auto serves from the session, native refuses."""
    import onnx
    from onnx import helper

    from engine.models import native
    from engine.models.runtime import EnsembleRuntime
    reg, d = version_dir(trained_registry["root"])
    m = reg.manifest(reg.current())
    model = onnx.load(os.path.join(d, "fused.onnx"))
    # the LSTM head's Softmax as Exp -> ReduceSum -> Div: the same function, operators the program lacks
    g = model.graph
    k = next(i for i, n in enumerate(g.node) if n.op_type == "Softmax")
    sm = g.node[k]
    src, dst = sm.input[0], sm.output[0]
    g.node.remove(sm)
    for j, n in enumerate([helper.make_node("Exp", [src], ["sm_e"]),
                           helper.make_node("ReduceSum", ["sm_e", "sm_axes"], ["sm_s"], keepdims=1),
                           helper.make_node("Div", ["sm_e", "sm_s"], [dst])]):
        g.node.insert(k + j, n)
    g.initializer.append(onnx.numpy_helper.from_array(np.array([-1], np.int64), "sm_axes"))
    data = model.SerializeToString()
    rt = EnsembleRuntime(data, m["regime_weights"])
    assert rt.backend == "onnxruntime" and "operator Exp" in rt.backend_note
    x = np.linspace(-1, 1, 25).astype(np.float32)
    ref = reg.load(backend="onnxruntime").predict(x)
    assert np.allclose(rt.predict(x), ref, atol=1e-6)
    with pytest.raises(native.Unsupported, match="Exp"):
        EnsembleRuntime(data, m["regime_weights"], backend="native")
    # a program that computes something else is caught by the load-time check
    real_check = native.check
    monkeypatch.setattr(native, "check", lambda *a: {**real_check(*a), "probs": 0.25})
    rt = reg.load()
    assert rt.backend == "onnxruntime" and "differ" in rt.backend_note and "probs" in rt.backend_note
    with pytest.raises(native.Unsupported, match="differ"):
        reg.load(backend="native")
    with pytest.raises(ValueError, match="backend 'gpu'"):
        reg.load(backend="gpu")


def test_regime_weights_are_validated(trained_registry):
    from engine.models.runtime import EnsembleRuntime
    reg, d = version_dir(trained_registry["root"])
    m = reg.manifest(reg.current())
    data = open(os.path.join(d, "fused.onnx"), "rb").read()
    w = dict(m["regime_weights"])
    w["VOLATILE"] = [0, 0, 0, 0]
    with pytest.raises(ValueError, match="VOLATILE"):
        EnsembleRuntime(data, w)


def test_quantization_rule_is_applied_and_recorded(trained_registry):
    reg, d = version_dir(trained_registry["root"])
    rep = json.load(open(os.path.join(d, "report.json")))
    q = rep["quantization"]["lstm"]
    assert q["tried"]
    if "agreement" in q:
        expect = q["agreement"] >= E.QUANT_MIN_AGREEMENT and q["max_prob_diff"] <= E.QUANT_MAX_PROB_DIFF
        assert q["kept"] == expect
    for k in ("lr", "rf", "xgb"):
        assert rep["quantization"][k]["kept"] is False      # no weights to quantize in these graphs


def test_a_model_for_another_feature_schema_is_refused(registry_copy):
    reg = ModelRegistry(registry_copy)
    v = reg.current()
    p = os.path.join(reg.path(v), "manifest.json")
    m = json.load(open(p))
    m["feature_schema_hash"] = "0" * 64
    json.dump(m, open(p, "w"))
    with pytest.raises(SchemaMismatch, match="feature schema 000000000000"):
        reg.load()


def test_a_tampered_file_is_refused(registry_copy):
    reg = ModelRegistry(registry_copy)
    with open(os.path.join(reg.path(reg.current()), "lr.onnx"), "ab") as f:
        f.write(b"x")
    with pytest.raises(RegistryError, match="lr.onnx"):
        reg.load()


def clone_version(reg, src):
    """A second version: the same model files under a new name (parent = src)."""
    name, path = reg.new_version_dir()
    shutil.rmtree(path)
    shutil.copytree(reg.path(src), path)
    m = reg.manifest(src)
    m.pop("files")
    reg.write_manifest(name, dict(m, created=None or m["created"], parent=src))
    return name


def test_hot_reload_and_rollback(registry_copy):
    reg = ModelRegistry(registry_copy)
    v1 = reg.current()
    h = ModelHandle(reg)
    assert h.version == v1
    assert h.reload() == {"ok": True, "version": v1, "changed": False}
    v2 = clone_version(reg, v1)
    reg.promote(v2)
    r = h.reload()
    assert r["changed"] and h.version == v2 and r["previous"] == v1
    r = h.rollback("test")
    assert h.version == v1 and reg.current() == v1
    assert v2 in reg.bad_versions()
    with pytest.raises(RegistryError, match="no earlier good version"):
        reg.rollback()
    events = [e["event"] for e in reg.history()]
    assert events[-3:] == ["promote", "mark_bad", "rollback"]


def test_a_failed_reload_keeps_the_serving_model(registry_copy):
    reg = ModelRegistry(registry_copy)
    v1 = reg.current()
    h = ModelHandle(reg)
    v2 = clone_version(reg, v1)
    reg.promote(v2)
    os.remove(os.path.join(reg.path(v2), "fused.onnx"))
    r = h.reload()
    assert r["ok"] is False and h.version == v1
    assert h.runtime.predict(np.zeros(25, np.float32)).shape == (3,)
    assert reg.history()[-1]["event"] == "reload_refused"


def test_adapter_retrains_promotes_and_rolls_back(registry_copy):
    from engine.models.drift import AdaptConfig, Adapter, DriftMonitor, LiveScorer
    reg = ModelRegistry(registry_copy)
    v1 = reg.current()
    h = ModelHandle(reg)
    made = []

    def retrain():
        made.append(clone_version(reg, v1))
        return made[-1]

    losses = {}
    ad = Adapter(reg, h, retrain, lambda v: losses[v], AdaptConfig(min_rows=100, min_labels=50))
    ref = json.load(open(os.path.join(reg.path(v1), "drift_reference.json")))
    drift = DriftMonitor(ref)
    scorer = LiveScorer(1.0, 4e-4)
    assert ad.check(drift, scorer) is None                     # nothing seen: nothing to do
    X = np.array([[e[-1] + 1.0 if e else 1.0 for e in ref["edges"]]] * 200)   # everything off the scale
    drift.update_many(X)
    d = ad.check(drift, scorer)
    assert d["event"] == "retrain_started" and d["psi"]["share_over"] > 0.2
    ad.wait(30)
    losses.update({v1: 0.70, made[0]: 0.90})                   # challenger worse on the latest window
    d = ad.check(drift, scorer)
    assert d["event"] == "challenger_rejected" and reg.current() == v1
    d = ad.check(drift, scorer)                                # drift persists: retrain again
    assert d["event"] == "retrain_started"
    ad.wait(30)
    losses[made[1]] = 0.60                                     # better: promoted
    # live metrics of the champion before the switch: a perfect-ish forecaster
    S = 1_000_000_000
    for i in range(60):
        scorer.on_prediction(i * S, 100.0, [0.05, 0.9, 0.05])
        scorer.on_mid(i * S, 100.0)
    scorer.on_mid(100 * S, 100.0)
    d = ad.check(drift, scorer)
    assert d["event"] == "challenger_promoted" and reg.current() == made[1] and h.version == made[1]
    # the promoted model does worse live than that: rolled back
    for i in range(200, 300):
        scorer.on_prediction(i * S, 100.0, [0.6, 0.2, 0.2])
        scorer.on_mid(i * S, 100.0)
    scorer.on_mid(400 * S, 100.0)
    d = ad.check(drift, scorer)
    assert d["event"] == "rolled_back" and d["to_version"] == v1 and h.version == v1
    assert [x["event"] for x in ad.decisions] == ["retrain_started", "challenger_rejected", "retrain_started",
                                                   "challenger_promoted", "rolled_back"]
    assert all("champion" in x or "from_version" in x for x in ad.decisions)


def test_adapter_with_a_real_retrain_and_evaluation(registry_copy, trained_registry):
    """Drift -> a real training run in the background -> both versions scored on the same
    latest window -> promoted exactly when the challenger's log-loss is lower."""
    from engine.models.dataset import LabelSpec, build_rows
    from engine.models.drift import AdaptConfig, Adapter, DriftMonitor, LiveScorer
    from engine.models.train import TrainConfig, make_evaluator, make_retrainer
    reg = ModelRegistry(registry_copy)
    v1 = reg.current()
    h = ModelHandle(reg)
    cap = trained_registry["capture"]
    evaluate = make_evaluator(reg, lambda: build_rows([cap], LabelSpec()))
    ad = Adapter(reg, h, make_retrainer(lambda: [cap], registry_copy, TrainConfig(seed=9), log=lambda *a: None),
                 evaluate, AdaptConfig(min_rows=50))
    ref = json.load(open(os.path.join(reg.path(v1), "drift_reference.json")))
    drift = DriftMonitor(ref)
    drift.update_many(np.array([[e[0] - 1.0 if e else -1.0 for e in ref["edges"]]] * 100))
    assert ad.check(drift, LiveScorer(10.0, 4e-4))["event"] == "retrain_started"
    ad.wait(300)
    d = ad.check(drift, LiveScorer(10.0, 4e-4))
    assert d["event"] in ("challenger_promoted", "challenger_rejected"), d
    assert d["challenger"] == "v0002" and d["champion"] == v1
    assert (d["event"] == "challenger_promoted") == (d["challenger_log_loss"] < d["champion_log_loss"])
    assert reg.current() == ("v0002" if d["event"] == "challenger_promoted" else v1) == h.version
    assert d["champion_log_loss"] == pytest.approx(evaluate(v1))
