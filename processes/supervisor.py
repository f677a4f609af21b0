"""The supervisor: runs the engine's processes, restarts a dead or hung one, says why.

    cryptoscalp supervise [--watchdog-s 10] [--max-restarts 20] -- cryptoscalp run ...

It speaks systemd's notify protocol to its children (``NOTIFY_SOCKET`` points at its own
datagram socket): a child that sent READY=1 and then stays silent for ``watchdog_s``
(no WATCHDOG=1) is hung: it is killed (SIGKILL) and restarted, exactly what systemd does
with Type=notify and WatchdogSec. A child that exits non-zero or dies of a signal is
restarted after ``backoff_s`` (doubling up to 30 s, reset after a minute of good health).
Every start, death and restart is a JSON line on stdout with its cause, and the restarted
engine gets the cause in ``CRYPTOSCALP_RESTART_CAUSE`` (its journal's start event records
it). SIGINT/SIGTERM go to the child; the supervisor then exits with the child's code.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time


def _say(**kw) -> None:
    kw.setdefault("time", time.time())
    print(json.dumps({"logger": "supervisor", **kw}), flush=True)


def supervise(cmd: list[str], watchdog_s: float = 10.0, max_restarts: int = 20, backoff_s: float = 1.0) -> int:
    d = tempfile.mkdtemp(prefix="cs-supervisor-")
    addr = os.path.join(d, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(addr)
    sock.settimeout(0.2)
    stopping = {"sig": None}
    child: subprocess.Popen | None = None

    def on_signal(sig, _frame):
        stopping["sig"] = sig
        if child is not None and child.poll() is None:
            child.send_signal(sig)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    restarts, cause, delay = 0, None, backoff_s
    try:
        while True:
            env = dict(os.environ, NOTIFY_SOCKET=addr)
            if cause:
                env["CRYPTOSCALP_RESTART_CAUSE"] = cause
            child = subprocess.Popen(cmd, env=env)
            started = time.monotonic()
            _say(event="started", pid=child.pid, restarts=restarts, cause=cause)
            ready, last = False, time.monotonic()
            while child.poll() is None:
                try:
                    msg = sock.recv(4096).decode()
                    for line in msg.splitlines():
                        if line == "READY=1":
                            ready = True
                            _say(event="ready", pid=child.pid)
                        if line in ("READY=1", "WATCHDOG=1"):
                            last = time.monotonic()
                        if line == "STOPPING=1":
                            ready = False          # a stopping child may be quiet
                except socket.timeout:
                    pass
                if ready and stopping["sig"] is None and time.monotonic() - last > watchdog_s:
                    _say(event="hung", pid=child.pid, silent_s=round(time.monotonic() - last, 1))
                    child.kill()
                    child.wait()
                    break
            rc = child.wait()
            if stopping["sig"] is not None:
                _say(event="stopped", pid=child.pid, rc=rc)
                return rc if rc >= 0 else 128 - rc
            if rc == 0:
                _say(event="exited", pid=child.pid, rc=0)
                return 0
            cause = f"killed by signal {-rc}" if rc < 0 else f"exited with code {rc}"
            if time.monotonic() - started > 60:
                delay = backoff_s
            restarts += 1
            _say(event="died", pid=child.pid, cause=cause, restarts=restarts)
            if restarts > max_restarts:
                _say(event="giving_up", restarts=restarts)
                return 1
            time.sleep(delay)
            delay = min(30.0, delay * 2)
    finally:
        sock.close()
        try:
            os.unlink(addr)
            os.rmdir(d)
        except OSError:
            pass


if __name__ == "__main__":
    sys.exit(supervise(sys.argv[1:]))
