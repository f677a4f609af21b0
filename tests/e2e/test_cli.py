"""The installed `cryptoscalp` command, as a user runs it."""
import json
import os
import shutil
import subprocess
import sys

import pytest

CLI = shutil.which("cryptoscalp") or os.path.join(os.path.dirname(sys.executable), "cryptoscalp")


def run(*args, timeout=120):
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=timeout)


def test_cli_is_installed():
    assert os.path.exists(CLI), "the cryptoscalp entry point is not installed in this environment"
    r = run("--version")
    assert r.returncode == 0 and r.stdout.startswith("cryptoscalp ")


@pytest.mark.parametrize("wait", ["block", "spin"])
def test_run_selfcheck_moves_every_record_between_processes(wait):
    r = run("selfcheck", "--run-name", f"e2e-{wait}", "--records", "20000", "--wait", wait, "--seconds", "0")
    assert r.returncode == 0, r.stderr
    assert "ok: 20000 records, none lost or out of order" in r.stdout
    # nothing is left behind in /dev/shm
    ls = run("shm", "ls", "--prefix", f"/cs.e2e-{wait}.")
    assert json.loads(ls.stdout) == []


def test_shm_clean_removes_a_dead_owners_segment(tmp_path):
    # a writer process that dies without cleaning up
    code = ("from cext.ring import RingWriter; from engine.schema import MARKET_DTYPE;"
            "RingWriter.create('/cs.e2e-stale.market', MARKET_DTYPE, 8)")
    subprocess.run([sys.executable, "-c", code], check=True)
    ls = json.loads(run("shm", "ls", "--prefix", "/cs.e2e-stale.").stdout)
    assert [(x["name"], x["kind"], x["owner_alive"]) for x in ls] == [("/cs.e2e-stale.market", "ring", False)]
    cleaned = json.loads(run("shm", "clean", "--prefix", "/cs.e2e-stale.").stdout)
    assert cleaned == {"removed": ["/cs.e2e-stale.market"]}


def test_run_market_data_session_against_the_sim():
    import re
    r = run("selfcheck", "--run-name", "e2e-md", "--records", "5000", "--seconds", "4")
    assert r.returncode == 0, r.stderr
    assert "BTCUSDT synced" in r.stdout
    m = re.search(r"done: (\d+) messages, (\d+) snapshot\(s\), parser rejects (\d+), book gaps (\d+)", r.stdout)
    assert m and int(m.group(1)) > 50 and int(m.group(2)) >= 1 and m.group(3) == "0" and m.group(4) == "0"
