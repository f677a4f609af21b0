"""systemd: the generated units verify, and the engine speaks the notify protocol
(READY, WATCHDOG every second, STOPPING) that Type=notify + WatchdogSec rely on."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

CLI = shutil.which("cryptoscalp") or os.path.join(os.path.dirname(sys.executable), "cryptoscalp")


def test_generated_units_pass_systemd_analyze_verify(tmp_path):
    r = subprocess.run([CLI, "deploy", "units", "--out", str(tmp_path), "--cpus", "1"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    written = json.loads(r.stdout)["written"]
    assert {os.path.basename(p) for p in written} == {"cryptoscalp.target", "cryptoscalp-fused.service"}
    for p in written:
        assert "@" not in open(p).read().replace("ipc:///", ""), p
    unit = open(tmp_path / "cryptoscalp-fused.service").read()
    for line in ("Type=notify", "WatchdogSec=10", "Restart=on-failure", "CPUAffinity=1", "NoNewPrivileges=yes"):
        assert line in unit
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed here: the units were generated but not verified")
    v = subprocess.run(["systemd-analyze", "verify", *written], capture_output=True, text=True)
    assert v.returncode == 0, v.stderr


def test_the_engine_notifies_systemd(tmp_path):
    path = str(tmp_path / "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(0.5)
    env = dict(os.environ, NOTIFY_SOCKET=path)
    p = subprocess.Popen([CLI, "run", "--seconds", "4", "--speed", "10", "--journal", str(tmp_path / "j"),
                          "--admin", "none", "--metrics-port", "-1"], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    msgs = []
    deadline = time.time() + 240
    while time.time() < deadline and p.poll() is None:
        try:
            msgs.append(s.recv(4096).decode())
        except socket.timeout:
            pass
    out, err = p.communicate(timeout=60)
    while True:
        try:
            msgs.append(s.recv(4096).decode())
        except (socket.timeout, BlockingIOError):
            break
    s.close()
    assert p.returncode == 0, err[-2000:]
    assert msgs[0] == "READY=1"
    assert msgs.count("WATCHDOG=1") >= 2
    assert msgs[-1] == "STOPPING=1"


def test_grafana_dashboard_uses_only_metrics_the_engine_exports():
    import re

    from engine.telemetry import Metrics
    from engine.testing.data import REPO
    dash = json.load(open(os.path.join(REPO, "deploy", "grafana-cryptoscalp.json")))
    m = Metrics()
    m.stage.labels("features").observe(1e-5)
    m.orders.labels("new").inc()
    m.rejects.labels("halted").inc()
    m.position.labels("BTCUSDT").set(1)
    from prometheus_client import generate_latest
    exported = {line.split("{")[0].split(" ")[0] for line in generate_latest(m.registry).decode().splitlines()
                if line and not line.startswith("#")}
    used = set()
    for p in dash["panels"]:
        for t in p["targets"]:
            used |= set(re.findall(r"cryptoscalp_[a-z_]+", t["expr"]))
    assert used and used <= exported, used - exported
