"""`cryptoscalp train` and `cryptoscalp model` as a user runs them."""
import json
import os
import subprocess
import sys


def cli(*args, check=True):
    r = subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True, timeout=600)
    if check:
        assert r.returncode == 0, r.stderr[-3000:]
    return r


def test_train_list_show_promote_rollback(btc_capture, tmp_path):
    out = str(tmp_path / "models")
    r = cli("train", "--data", btc_capture, "--out", out, "--quiet", "--seed", "2")
    assert "out-of-sample report" in r.stdout and "version v0001" in r.stdout
    r = cli("train", "--data", btc_capture, "--out", out, "--quiet", "--seed", "2")
    assert "version v0002" in r.stdout
    # same data, same seed: byte-identical model files
    m1, m2 = (json.loads(cli("model", "show", "--dir", out, "--version", v).stdout) for v in ("v0001", "v0002"))
    assert m1["content_hash"] == m2["content_hash"] and m1["metrics"] == m2["metrics"]
    lines = [json.loads(x) for x in cli("model", "list", "--dir", out).stdout.splitlines()]
    assert [(x["version"], x["current"]) for x in lines] == [("v0001", True), ("v0002", False)]
    assert lines[1]["parent"] == "v0001"
    cli("model", "promote", "--dir", out, "--version", "v0002")
    assert json.loads(cli("model", "show", "--dir", out).stdout)["version"] == "v0002"
    r = cli("model", "rollback", "--dir", out)
    assert json.loads(r.stdout)["version"] == "v0001"
    r = cli("model", "rollback", "--dir", out, check=False)
    assert r.returncode == 1 and "no earlier good version" in r.stderr
    assert "files match" in cli("model", "verify", "--dir", out).stdout
    assert os.path.isfile(os.path.join(out, "v0002", "calibration.png"))


def test_bad_arguments_are_clear(tmp_path):
    r = cli("train", "--out", str(tmp_path / "m"), check=False)
    assert r.returncode == 2 and "--data" in r.stderr
    r = cli("train", "--data", str(tmp_path / "nope.gz"), "--out", str(tmp_path / "m"), check=False)
    assert r.returncode == 2 and "no such file" in r.stderr
    r = cli("model", "show", "--dir", str(tmp_path / "empty"), "--version", "v0009", check=False)
    assert r.returncode == 1 and "no model version" in r.stderr
