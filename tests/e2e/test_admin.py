"""`cryptoscalp admin` against a running `cryptoscalp run`: status with its processes,
halt / resume through the gate, set-limit, refusals, shutdown; the 0600 socket."""
import json
import os
import shutil
import stat
import subprocess
import sys
import time

CLI = shutil.which("cryptoscalp") or os.path.join(os.path.dirname(sys.executable), "cryptoscalp")


def admin(ep, *args, check=True):
    r = subprocess.run([CLI, "admin", *args, "--endpoint", ep], capture_output=True, text=True, timeout=60)
    if check:
        assert r.returncode == 0, r.stderr + r.stdout
        return json.loads(r.stdout)
    return r


def test_admin_commands_on_a_running_engine(tmp_path):
    sock = tmp_path / "admin.sock"
    ep = f"ipc://{sock}"
    p = subprocess.Popen([CLI, "run", "--speed", "10", "--journal", str(tmp_path / "j"), "--admin", ep, "--seed", "4"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240                  # a cold numba cache compiles the kernels first
        st = None
        while time.time() < deadline:
            r = admin(ep, "status", check=False) if sock.exists() else None
            if r is not None and r.returncode == 0:
                st = json.loads(r.stdout)
                break
            time.sleep(0.5)
        assert st is not None, "the engine's admin socket never answered"
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        for key in ("trading_state", "positions", "orders_sent", "fills", "rejects", "processes"):
            assert key in st, key
        proc = st["processes"][0]
        assert proc["name"] == "fused" and proc["pid"] == p.pid and proc["alive"] is True and proc["restarts"] == 0
        assert 0 <= proc["last_heartbeat_age_s"] < 5
        assert st["trading_state"] == "ACTIVE" and st["positions"] == {"BTCUSDT": 0} or "BTCUSDT" in st["positions"]

        h = admin(ep, "halt", "reason=test")
        assert h["trading_state"] == "HALTED"
        time.sleep(3)                                  # the strategy keeps asking; the gate says no
        st = admin(ep, "status")
        assert st["trading_state"] == "HALTED"
        assert admin(ep, "orders") == {}               # halt cancelled what was resting
        r = admin(ep, "resume")
        assert r["trading_state"] == "ACTIVE"
        r = admin(ep, "set-limit", "name=max_daily_trades", "value=7")
        assert r == {"name": "max_daily_trades", "old": 100, "new": 7}
        bad = admin(ep, "set-limit", "name=nope", "value=1", check=False)
        assert bad.returncode == 1 and "unknown limit" in bad.stdout
        assert admin(ep, "reload-model", check=False).returncode == 1          # rule-based: no model to reload
        assert subprocess.run([CLI, "admin", "launch-rockets", "--endpoint", ep], capture_output=True,
                              text=True).returncode == 2
        assert admin(ep, "shutdown") == {"stopping": True}
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err[-2000:]
        assert json.loads(out.strip().splitlines()[-1])["venue_open_orders_after_stop"] == 0
    finally:
        if p.poll() is None:
            p.kill()
    r = admin(ep, "status", check=False)
    assert r.returncode == 1 and "no reply" in r.stderr
