"""``cryptoscalp train``: rows -> walk-forward evaluation -> final fit -> ONNX -> fused
graph -> parity -> registry version with its report.

Steps (each with a progress bar when asked):
1. rows from the recordings (``engine.models.dataset``), sampled and labelled;
2. walk-forward folds (``engine.models.splits``): every member and both baselines are fitted
   on each fold's purged training rows and scored on its test block; the pooled
   out-of-sample predictions give each one's metrics (``engine.models.metrics``);
3. optional Optuna search (``trials`` > 0) per tree/linear member on the mean fold
   log-loss, shared through ``storage`` (an RDB URL: several machines, one study);
4. final fit on everything before the last 20 % of time (purged), export, quantization
   check and fused-graph parity on that held-out 20 %;
5. a new version in the registry with manifest, report.json, report.md, calibration.png,
   confusion.png, and drift reference histograms. It is promoted to CURRENT only when
   ``promote`` is set (the CLI does it for the first version of a registry, or on --promote).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field

import numpy as np

from engine.models import metrics as M
from engine.models.dataset import CLASS_NAMES, LabelSpec, Rows, build_rows
from engine.models.learners import MEMBERS, last_matured, make_member, persistence_proba, prior_proba
from engine.models.splits import final_split, walk_forward


@dataclass
class TrainConfig:
    spec: LabelSpec = field(default_factory=LabelSpec)
    seed: int = 0
    folds: int = 4
    embargo_s: float = 1.0
    holdout_frac: float = 0.2
    trials: int = 0
    storage: str | None = None
    params: dict = field(default_factory=dict)      # member -> hyperparameters
    progress: bool = False
    max_messages: int | None = None
    # Features the models do not see (zeroed in training and in the fused graph): absolute
    # price levels never repeat, so a model fitted on them extrapolates on the next day.
    exclude: tuple = ("best_bid", "best_ask")

    def feature_mask(self) -> np.ndarray:
        from engine.features.vector import NAMES
        unknown = set(self.exclude) - set(NAMES)
        if unknown:
            raise ValueError(f"exclude: unknown feature(s) {sorted(unknown)}; features: {', '.join(NAMES)}")
        return np.array([0.0 if n in self.exclude else 1.0 for n in NAMES], np.float32)


def segments(rows: Rows) -> np.ndarray:
    seg = np.zeros(len(rows), np.int64)
    for i, s in enumerate(rows.source):
        seg[s["first"]:s["first"] + s["rows"]] = i
    return seg


def _bar(it, cfg, desc, total=None):
    if not cfg.progress:
        return it
    from tqdm import tqdm
    return tqdm(it, desc=desc, total=total, unit="step")


def fit_predict(kind: str, rows: Rows, seg: np.ndarray, train: np.ndarray, test: np.ndarray, seed: int,
                params: dict | None):
    m = make_member(kind, seed, params)
    if kind == "lstm":
        mask = np.zeros(len(rows), bool)
        mask[train] = True
        m.fit(rows.X, rows.y, mask, seg)
        return m, m.stream_proba(rows.X, seg)[test]
    m.fit(rows.X[train], rows.y[train])
    return m, m.predict_proba(rows.X[test])


def walk_forward_eval(rows: Rows, cfg: TrainConfig, kinds=MEMBERS, params: dict | None = None) -> dict:
    """Pooled out-of-sample probabilities for members and baselines, and per-fold log-loss."""
    params = params if params is not None else cfg.params
    seg = segments(rows)
    prev = last_matured(rows.t, rows.label_end, rows.y, seg)
    folds = walk_forward(rows.t, rows.label_end, cfg.folds, cfg.embargo_s)
    if not folds:
        raise ValueError(f"no walk-forward fold has enough training rows ({len(rows)} rows in all): use more data")
    oos = {k: [] for k in (*kinds, "prior", "persistence")}
    idx, per_fold = [], []
    for f in _bar(folds, cfg, "walk-forward"):
        fold = {"k": f.k, "train": int(len(f.train)), "test": int(len(f.test)), "purged": f.purged}
        for kind in kinds:
            _, p = fit_predict(kind, rows, seg, f.train, f.test, cfg.seed, params.get(kind))
            oos[kind].append(p)
            fold[kind] = M.log_loss(rows.y[f.test], p)
        oos["prior"].append(prior_proba(rows.y[f.train], len(f.test)))
        oos["persistence"].append(persistence_proba(prev[f.test], prev[f.train], rows.y[f.train]))
        for b in ("prior", "persistence"):
            fold[b] = M.log_loss(rows.y[f.test], oos[b][-1])
        idx.append(f.test)
        per_fold.append(fold)
    test = np.concatenate(idx)
    return {"test": test, "probs": {k: np.concatenate(v) for k, v in oos.items()}, "folds": per_fold}


def search(rows: Rows, cfg: TrainConfig) -> dict:
    """Optuna per member (lr, rf, xgb) on the mean walk-forward log-loss; best params."""
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = cfg.storage
    if storage and storage.startswith("postgresql://"):
        storage = "postgresql+psycopg://" + storage[len("postgresql://"):]
    spaces = {
        "lr": lambda t: {"C": t.suggest_float("C", 1e-3, 1e2, log=True)},
        "rf": lambda t: {"max_depth": t.suggest_int("max_depth", 3, 12),
                         "min_samples_leaf": t.suggest_int("min_samples_leaf", 1, 50, log=True)},
        "xgb": lambda t: {"max_depth": t.suggest_int("max_depth", 2, 8),
                          "learning_rate": t.suggest_float("learning_rate", 0.01, 0.3, log=True),
                          "n_estimators": t.suggest_int("n_estimators", 30, 300, log=True),
                          "min_child_weight": t.suggest_float("min_child_weight", 0.5, 20, log=True),
                          "subsample": t.suggest_float("subsample", 0.5, 1.0)},
    }
    best = {}
    for kind, space in spaces.items():
        def objective(trial, kind=kind, space=space):
            r = walk_forward_eval(rows, TrainConfig(**{**cfg.__dict__, "progress": False}), kinds=(kind,),
                                  params={kind: space(trial)})
            return float(np.mean([f[kind] for f in r["folds"]]))
        study = optuna.create_study(direction="minimize", storage=storage, load_if_exists=True,
                                    study_name=f"cryptoscalp-{kind}-{rows.source[0]['symbol']}-h{cfg.spec.horizon_s:g}",
                                    sampler=optuna.samplers.TPESampler(seed=cfg.seed))
        study.optimize(objective, n_trials=cfg.trials, show_progress_bar=cfg.progress)
        best[kind] = {"params": study.best_params, "mean_fold_log_loss": study.best_value,
                      "trials": len(study.trials)}
    return best


def default_regime_weights() -> dict:
    """Equal weights in every regime. A per-regime table needs labelled data from each
    regime; the recordings at hand span minutes of one. Edit the manifest's table (or
    train with ``regime_weights``) to change it; the fused graph takes weights as input."""
    from engine.features.regime import NAMES
    return {r: [1.0] * len(MEMBERS) for r in NAMES}


def drift_reference(X: np.ndarray, bins: int = 10) -> dict:
    """Per-feature quantile bin edges and training fractions (for PSI)."""
    edges, fracs = [], []
    for j in range(X.shape[1]):
        q = np.unique(np.quantile(X[:, j], np.linspace(0, 1, bins + 1)[1:-1]))
        c = np.bincount(np.searchsorted(q, X[:, j], side="right"), minlength=len(q) + 1)
        edges.append(q.tolist())
        fracs.append((c / c.sum()).tolist())
    return {"edges": edges, "fractions": fracs, "rows": int(len(X))}


def train(paths, registry_root: str, cfg: TrainConfig | None = None, rows: Rows | None = None,
          promote: bool | None = None, log=print) -> dict:
    """Train, evaluate, export and register one version. Returns its manifest."""
    from engine.models import export as E
    from engine.models.registry import ModelRegistry, feature_schema_hash
    from engine.models.runtime import EnsembleRuntime
    cfg = cfg or TrainConfig()
    t0 = time.time()
    np.random.seed(cfg.seed)
    if rows is None:
        rows = build_rows(paths, cfg.spec, cfg.max_messages, progress=cfg.progress)
    per_file = ", ".join("%s %d" % (s["symbol"], s["rows"]) for s in rows.source)
    log(f"rows: {len(rows)} ({per_file}); "
        f"classes down/flat/up = {np.bincount(rows.y, minlength=3).tolist()}; threshold {cfg.spec.threshold * 1e4:.2f} bps, "
        f"horizon {cfg.spec.horizon_s:g} s")
    raw_X = rows.X
    rows = Rows(rows.X * cfg.feature_mask(), rows.y, rows.t, rows.label_end, rows.ret, rows.source)
    tuned = {}
    if cfg.trials > 0:
        tuned = search(rows, cfg)
        cfg.params = {**cfg.params, **{k: v["params"] for k, v in tuned.items()}}
        log(f"optuna: {json.dumps(tuned)}")
    wf = walk_forward_eval(rows, cfg)
    y_oos = rows.y[wf["test"]]
    probs = dict(wf["probs"])
    probs["ensemble"] = np.mean([probs[k] for k in MEMBERS], axis=0)
    oos_metrics = {k: M.evaluate(y_oos, p) for k, p in probs.items()}

    seg = segments(rows)
    tr, ho = final_split(rows.t, rows.label_end, cfg.holdout_frac, cfg.embargo_s)
    if len(tr) < 50 or len(ho) == 0:
        raise ValueError(f"final split: {len(tr)} training and {len(ho)} held-out rows: use more data")
    reg = ModelRegistry(registry_root)
    version, vdir = reg.new_version_dir()
    try:
        return _fit_export_register(rows, raw_X, seg, tr, ho, cfg, reg, version, vdir, wf, y_oos, probs,
                                    oos_metrics, tuned, promote, log, t0)
    except BaseException:
        import shutil
        shutil.rmtree(vdir, ignore_errors=True)      # no half-written version is left behind
        raise


def _fit_export_register(rows, raw_X, seg, tr, ho, cfg, reg, version, vdir, wf, y_oos, probs, oos_metrics,
                         tuned, promote, log, t0):
    from engine.models import export as E
    from engine.models.registry import feature_schema_hash
    from engine.models.runtime import EnsembleRuntime
    members, natives, quant, fitted = {}, {}, {}, {}
    for kind in _bar(MEMBERS, cfg, "fit + export"):
        m, p_native = fit_predict(kind, rows, seg, tr, ho, cfg.seed, cfg.params.get(kind))
        mask = cfg.feature_mask()
        if kind == "lr":      # already ~0 (the column was constant 0); make it exact
            m.model.named_steps["clf"].coef_[:, mask == 0] = 0.0
        onx = E.export_member(m, mask).SerializeToString()
        classes = None if kind == "lstm" else m.classes
        # The LSTM's held-out rows are scored in one stream from the recording's start
        # (as live); the quantization check runs the stream on the held-out rows alone.
        Xq = rows.X[ho]
        chosen, quant[kind] = E.quantization_check(onx, kind, Xq, classes)
        with open(os.path.join(vdir, f"{kind}.onnx"), "wb") as f:
            f.write(chosen)
        members[kind] = (chosen, classes)
        natives[kind] = p_native
        fitted[kind] = m.net if kind == "lstm" else m
    # The native models too (benchmarks and parity re-checks; loading needs the train extra).
    import pickle
    with open(os.path.join(vdir, "native.pkl"), "wb") as f:
        pickle.dump(fitted, f)
    fused = E.fuse(members)
    with open(os.path.join(vdir, "fused.onnx"), "wb") as f:
        f.write(fused.SerializeToString())
    # Parity: the fused graph, stepped row by row from each recording's first row (the LSTM
    # state as live), against each native model on the held-out rows. ONNX Runtime runs the
    # graph here: it is the reference the compiled program is itself checked against at load.
    weights = default_regime_weights()
    rt = EnsembleRuntime(fused.SerializeToString(), weights, version, backend="onnxruntime")
    fused_members = np.zeros((len(rows), len(MEMBERS), 3), np.float32)
    fused_probs = np.zeros((len(rows), 3), np.float32)
    for s in np.unique(seg):
        rt.reset_state()
        for i in np.flatnonzero(seg == s):
            fused_probs[i] = rt.predict(raw_X[i])      # raw features: the graph masks
            fused_members[i] = rt.members
    parity = {}
    for j, kind in enumerate(MEMBERS):
        d = np.abs(fused_members[ho, j] - natives[kind])
        parity[kind] = {"max_abs_diff": float(d.max()), "argmax_agreement":
                        float((fused_members[ho, j].argmax(1) == natives[kind].argmax(1)).mean()),
                        "quantized": bool(quant[kind].get("kept"))}
    bad = {k: v["max_abs_diff"] for k, v in parity.items() if not v["quantized"] and v["max_abs_diff"] > E.PARITY_TOL}
    if bad:
        raise ValueError(f"fused graph does not reproduce the native models on held-out rows (max |p diff| "
                         f"{bad} > {E.PARITY_TOL}); version not registered")
    ens_native = np.mean([natives[k] for k in MEMBERS], axis=0)
    parity["ensemble"] = {"max_abs_diff": float(np.abs(fused_probs[ho] - ens_native).max())}
    holdout_metrics = {k: M.evaluate(rows.y[ho], natives[k]) for k in MEMBERS}
    holdout_metrics["fused"] = M.evaluate(rows.y[ho], fused_probs[ho])

    report = {"rows": len(rows), "classes": dict(zip(CLASS_NAMES, np.bincount(rows.y, minlength=3).tolist())),
              "label": cfg.spec.to_dict(), "folds": wf["folds"], "oos_rows": int(len(y_oos)),
              "oos": oos_metrics, "holdout": holdout_metrics, "holdout_rows": int(len(ho)),
              "quantization": quant, "parity": parity, "optuna": tuned, "seed": cfg.seed}
    M.plot_report(y_oos, {k: probs[k] for k in (*MEMBERS, "ensemble", "prior", "persistence")}, vdir)
    with open(os.path.join(vdir, "report.json"), "w") as f:
        json.dump(report, f, indent=1, sort_keys=True)
    with open(os.path.join(vdir, "report.md"), "w") as f:
        f.write(report_markdown(report, version))
    with open(os.path.join(vdir, "drift_reference.json"), "w") as f:
        json.dump(drift_reference(raw_X[tr]), f)
    manifest = reg.write_manifest(version, {
        "feature_schema_hash": feature_schema_hash(),
        "data": {"sources": rows.source, "t_first_ns": int(rows.t.min()), "t_last_ns": int(rows.t.max())},
        "label": cfg.spec.to_dict(), "seed": cfg.seed, "params": cfg.params,
        "metrics": {"oos_log_loss": {k: v["log_loss"] for k, v in oos_metrics.items()},
                    "oos_accuracy": {k: v["accuracy"] for k, v in oos_metrics.items()},
                    "holdout_log_loss": {k: v["log_loss"] for k, v in holdout_metrics.items()}},
        "quantization": {k: v.get("kept", False) for k, v in quant.items()},
        "parity_max_abs_diff": {k: v["max_abs_diff"] for k, v in parity.items()},
        "regime_weights": weights, "members": list(MEMBERS), "excluded_features": list(cfg.exclude),
        "classes": {k: (None if members[k][1] is None else [int(c) for c in members[k][1]]) for k in MEMBERS},
        "train_seconds": round(time.time() - t0, 1)})
    if promote or (promote is None and reg.current() is None):
        reg.promote(version, reason="first version" if promote is None else "train --promote",
                    oos_log_loss=oos_metrics["ensemble"]["log_loss"])
    log(report_markdown(report, version))
    log(f"version {version} in {vdir} ({time.time() - t0:.1f} s)")
    return manifest


def make_retrainer(recent_paths, registry_root: str, cfg: TrainConfig | None = None, log=print):
    """The adapter's retrain step: train on the recordings ``recent_paths()`` names now,
    register the version without serving it, return its name."""
    def retrain() -> str:
        c = TrainConfig(**{**(cfg or TrainConfig()).__dict__, "progress": False})
        return train(recent_paths(), registry_root, c, promote=False, log=log)["version"]
    return retrain


def window_log_loss(registry, version: str, rows: Rows, frac: float = 0.2) -> float:
    """Log-loss of a version's ensemble on the latest ``frac`` of the rows' time range
    (each recording stepped from its first row, so the LSTM state is as live)."""
    rt = registry.load(version)
    seg = segments(rows)
    lo, hi = int(rows.t.min()), int(rows.t.max()) + 1
    start = int(hi - (hi - lo) * frac)
    idx, probs = [], []
    for s in np.unique(seg):
        rt.reset_state()
        for i in np.flatnonzero(seg == s):
            p = rt.predict(rows.X[i])
            if rows.t[i] >= start:
                idx.append(i)
                probs.append(p.copy())
    return M.log_loss(rows.y[np.asarray(idx)], np.asarray(probs))


def make_evaluator(registry, recent_rows, frac: float = 0.2):
    """The adapter's evaluate step: ``version -> log-loss`` on the latest window of
    ``recent_rows()`` (the same rows for champion and challenger)."""
    cache = {}

    def evaluate(version: str) -> float:
        rows = cache.setdefault("rows", recent_rows())
        return window_log_loss(registry, version, rows, frac)
    return evaluate


def report_markdown(r: dict, version: str) -> str:
    lines = [f"# Model {version}: out-of-sample report", "",
             f"{r['rows']} rows (down/flat/up = {r['classes']['down']}/{r['classes']['flat']}/{r['classes']['up']}), "
             f"label: mid move over {r['label']['horizon_s']:g} s beyond +-{r['label']['threshold_bps']:.2f} bps, "
             + (f"sampled every {r['label']['sample_ms']} ms. " if r['label']['sample_ms'] else "one row per message. ")
             + f"Walk-forward: {len(r['folds'])} folds, "
             f"{r['oos_rows']} pooled out-of-sample rows.", "",
             "| model | log-loss | accuracy | Brier | ECE | down P/R | flat P/R | up P/R |",
             "|---|---|---|---|---|---|---|---|"]
    for k, m in r["oos"].items():
        pc = m["per_class"]
        pr = " | ".join(f"{pc[c]['precision']:.2f}/{pc[c]['recall']:.2f}" for c in CLASS_NAMES)
        lines.append(f"| {k} | {m['log_loss']:.4f} | {m['accuracy']:.3f} | {m['brier']:.4f} | {m['ece']:.3f} | {pr} |")
    best_base = min(r["oos"]["prior"]["log_loss"], r["oos"]["persistence"]["log_loss"])
    beat = [k for k in (*MEMBERS, "ensemble") if r["oos"][k]["log_loss"] < best_base]
    lines += ["", f"Better than the best baseline (log-loss {best_base:.4f}): {', '.join(beat) if beat else 'none'}.", "",
              "Held-out parity (fused graph vs native model, max |p diff|): " +
              ", ".join(f"{k} {v['max_abs_diff']:.2e}" for k, v in r["parity"].items()), "",
              "Quantization: " + ", ".join(
                  f"{k} " + ("kept" if q.get("kept") else "not kept") +
                  (f" (agreement {q['agreement']:.4f}, max diff {q['max_prob_diff']:.4f})" if "agreement" in q
                   else f" ({q.get('reason') or q.get('error')})") for k, q in r["quantization"].items()), ""]
    return "\n".join(lines)
