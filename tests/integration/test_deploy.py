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


def _verify(written):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed here: the units were generated but not verified")
    v = subprocess.run(["systemd-analyze", "verify", *written], capture_output=True, text=True)
    assert v.returncode == 0, v.stderr


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
    assert "Wants=cryptoscalp-fused.service" in open(tmp_path / "cryptoscalp.target").read()
    _verify(written)


def test_one_unit_per_process_for_4proc(tmp_path):
    r = subprocess.run([CLI, "deploy", "units", "--topology", "4proc", "--out", str(tmp_path),
                        "--cpus", "engine=1;feed=2;brain=3;gateway=4,5;journal=0"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    written = json.loads(r.stdout)["written"]
    names = {os.path.basename(p) for p in written}
    assert names == {"cryptoscalp.target", "cryptoscalp-engine.service", "cryptoscalp-feed.service",
                     "cryptoscalp-brain.service", "cryptoscalp-gateway.service", "cryptoscalp-journal.service"}
    for p in written:
        assert "@" not in open(p).read().replace("ipc:///", ""), p
    engine = open(tmp_path / "cryptoscalp-engine.service").read()
    assert "--children systemd --group main --manifest /run/cryptoscalp/group.json" in engine
    assert "CPUAffinity=1\n" in engine and "Type=notify" in engine and "Restart=on-failure" in engine
    for role, cpus in (("feed", "2"), ("brain", "3"), ("gateway", "4 5"), ("journal", "0")):
        unit = open(tmp_path / f"cryptoscalp-{role}.service").read()
        for line in ("ExecStart=", f"cryptoscalp child {role} --manifest /run/cryptoscalp/group.json",
                     "Type=notify", "WatchdogSec=10", "BindsTo=cryptoscalp-engine.service", "Restart=always",
                     "RestartPreventExitStatus=3", f"CPUAffinity={cpus}\n", "NoNewPrivileges=yes"):
            assert line in unit, (role, line)
    assert "EnvironmentFile=-/etc/cryptoscalp/keys.env" in open(tmp_path / "cryptoscalp-gateway.service").read()
    target = open(tmp_path / "cryptoscalp.target").read()
    assert "Wants=cryptoscalp-engine.service cryptoscalp-feed.service cryptoscalp-brain.service " \
           "cryptoscalp-gateway.service\n" in target          # the journal unit: when enabled (--pg)
    bad = subprocess.run([CLI, "deploy", "units", "--topology", "4proc", "--out", str(tmp_path / "x"),
                          "--cpus", "engine=1;feed=2"], capture_output=True, text=True)
    assert bad.returncode == 2 and "ROLE=CPUS for each of" in bad.stderr
    _verify(written)


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


def test_sd_notify_never_blocks_on_a_stalled_service_manager(tmp_path, monkeypatch):
    """A receiver that reads nothing (its queue holds a few datagrams): notifications beyond
    that are dropped (False), never a stalled trading loop."""
    from engine.telemetry import sd_notify
    path = str(tmp_path / "stalled.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    t0 = time.monotonic()
    sent = [sd_notify("WATCHDOG=1") for _ in range(2000)]
    assert time.monotonic() - t0 < 30                 # (blocking, the first call past the queue never returns)
    assert sent[0] and not sent[-1]
    assert s.recv(4096) == b"WATCHDOG=1"
    s.close()
