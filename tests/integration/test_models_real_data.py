"""Training on the real Binance captures, and the Optuna search with shared storage."""
import json
import os

import numpy as np
import pytest

from engine.models.dataset import LabelSpec, build_rows
from engine.models.registry import ModelRegistry
from engine.models.train import TrainConfig, search, train


def test_train_on_the_btc_and_eth_captures(btc_capture, eth_capture, tmp_path):
    rows = build_rows([btc_capture, eth_capture], LabelSpec())
    # 345 s captures, 300 s of feature warm-up, 10 s horizon: ~35 s of rows each at 100 ms
    assert [s["symbol"] for s in rows.source] == ["BTCUSDT", "ETHUSDT"]
    assert all(300 <= s["rows"] <= 400 for s in rows.source)
    assert np.isfinite(rows.X).all()
    root = str(tmp_path / "models")
    m = train([btc_capture, eth_capture], root, TrainConfig(seed=1), rows=rows, log=lambda *a: None)
    reg = ModelRegistry(root)
    assert reg.current() == m["version"] == "v0001"
    assert [s["symbol"] for s in m["data"]["sources"]] == ["BTCUSDT", "ETHUSDT"]
    rep = json.load(open(os.path.join(reg.path("v0001"), "report.json")))
    # whatever the numbers are, they are there for every model and both baselines
    for k in ("lr", "rf", "xgb", "lstm", "ensemble", "prior", "persistence"):
        assert np.isfinite(rep["oos"][k]["log_loss"])
    rt = reg.load()
    assert rt.backend == "native", rt.backend_note      # the compiled program passed its load-time check
    assert rt.predict(rows.X[-1]).sum() == pytest.approx(1.0, abs=1e-5)
    # the compiled program and ONNX Runtime on every real row, LSTM state carried, regime weights varied
    nat, ort_ = reg.load(backend="native"), reg.load(backend="onnxruntime")
    assert ort_.backend == "onnxruntime"
    worst = 0.0
    for i, x in enumerate(rows.X):
        for rt_ in (nat, ort_):
            rt_.set_regime(i % 6)
        commit = i % 3 != 2
        a, b = nat.predict(x, commit), ort_.predict(x, commit)
        worst = max(worst, float(np.abs(a - b).max()), float(np.abs(nat.members - ort_.members).max()))
        assert a.argmax() == b.argmax() or abs(float(np.sort(b)[-1] - np.sort(b)[-2])) < 1e-5
    assert worst <= 1e-5
    for s_nat, s_ort in zip(nat.lstm_state, ort_.lstm_state):
        assert np.abs(s_nat - s_ort).max() <= 1e-5 * max(1.0, float(np.abs(s_ort).max()))


def test_too_little_data_is_a_clear_error(btc_capture, tmp_path):
    with pytest.raises(ValueError, match="no labelled row"):
        build_rows([btc_capture], LabelSpec(), max_messages=20_000)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_optuna_search_shares_a_study_through_storage(trained_registry, tmp_path, backend):
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path}/optuna.db"
    else:
        from engine.testing.pg import pg_dsn
        url = pg_dsn()
    rows = build_rows([trained_registry["capture"]], LabelSpec())
    cfg = TrainConfig(seed=4, trials=2, storage=url, folds=2)
    a = search(rows, cfg)
    b = search(rows, cfg)                  # a second worker on the same study adds its trials
    for k in ("lr", "rf", "xgb"):
        assert b[k]["trials"] >= a[k]["trials"] + 2
        assert np.isfinite(b[k]["mean_fold_log_loss"])
    if backend == "postgresql":            # leave CI's database as it was
        import optuna
        for k in ("lr", "rf", "xgb"):
            name = f"cryptoscalp-{k}-BTCUSDT-h10"
            optuna.delete_study(study_name=name, storage="postgresql+psycopg://" + url[len("postgresql://"):])
