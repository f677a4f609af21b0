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
    # one write with its newline (print() writes the newline apart when stdout is unbuffered):
    # the engine shares this pipe, and a line must never be cut by one of its lines
    sys.stdout.write(json.dumps({"logger": "supervisor", **kw}) + "\n")
    sys.stdout.flush()


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


class Child:
    """One process of a split topology, owned by the engine: started, watched (exit code and
    heartbeat age, polled from the engine's housekeeping loop, never blocking it) and
    restarted with a doubling back-off. ``check`` returns what happened, for the journal."""

    def __init__(self, name: str, cmd: list[str], hung_after_s: float = 10.0, backoff_s: float = 0.5,
                 max_restarts: int = 20, env: dict | None = None):
        self.name, self.cmd = name, cmd
        self.env = env                    # the environment (default: ours), e.g. with the API keys
        self.hung_after_s, self.backoff_s, self.max_restarts = hung_after_s, backoff_s, max_restarts
        self.proc: subprocess.Popen | None = None
        self.restarts = 0
        self.last_cause: str | None = None
        self._delay = backoff_s
        self._restart_at: float | None = None
        self._started = 0.0

    def start(self) -> None:
        env = dict(self.env if self.env is not None else os.environ)
        env.pop("NOTIFY_SOCKET", None)     # the engine's service manager hears the engine, never its children
        self.proc = subprocess.Popen(self.cmd, env=env)
        self._started = time.monotonic()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def heartbeat_age(self, beat: dict | None) -> float:
        """Seconds since this process's last beat (since its start if it never beat: a beat
        left by a dead predecessor does not count)."""
        if beat is not None and beat["pid"] == self.pid:
            return beat["age_s"]
        return time.monotonic() - self._started

    def check(self, beat: dict | None) -> dict | None:
        """Called about once a second with the role's last heartbeat (``Heartbeats.read``):
        restart a dead process (after its back-off) or kill a hung one (no heartbeat for
        ``hung_after_s``). Returns an event dict when something happened."""
        now = time.monotonic()
        if self._restart_at is not None:
            if now < self._restart_at:
                return None
            self._restart_at = None
            self.start()
            return {"event": "process_restarted", "process": self.name, "pid": self.proc.pid,
                    "restarts": self.restarts, "cause": self.last_cause}
        if self.proc is None:
            return None
        rc = self.proc.poll()
        cause = None
        if rc is None:
            age = self.heartbeat_age(beat)
            if age > self.hung_after_s:
                self.proc.kill()
                self.proc.wait()
                cause = f"hung (no heartbeat for {age:.1f} s)"
            else:
                if now - self._started > 60:
                    self._delay = self.backoff_s           # a minute of good health resets the back-off
                return None
        if cause is None:
            cause = f"killed by signal {-rc}" if rc < 0 else f"exited with code {rc}"
        self.restarts += 1
        self.last_cause = cause
        if self.restarts > self.max_restarts:
            self.proc = None
            return {"event": "process_given_up", "process": self.name, "restarts": self.restarts, "cause": cause}
        self._restart_at = now + self._delay
        self._delay = min(30.0, self._delay * 2)
        return {"event": "process_died", "process": self.name, "pid": self.proc.pid, "cause": cause,
                "restarts": self.restarts, "restart_in_s": round(self._restart_at - now, 2)}

    def stop(self, timeout_s: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout_s``. Returns the exit code."""
        self._restart_at = None
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


class ExternalChild:
    """A process of the group that a service manager starts and restarts (``cryptoscalp run
    --children systemd``: one systemd unit per process, each running ``cryptoscalp child
    ROLE``), the same interface as ``Child`` for the engine's watch. The engine never starts
    it; it learns its pid from its heartbeat, reports its death (the pid gone, or no beat for
    ``hung_after_s``: then it kills it, and the unit restarts it) and its return (a new pid
    beating), and at its own stop ends it with SIGTERM (exit 0: the unit does not restart
    it). ``after_pid``: the last dead pid the engine has dealt with; ``cryptoscalp child``
    waits for it before a successor starts, so that the engine has settled what the dead
    one left (its quotes, its orders in flight) before the new one runs."""

    def __init__(self, name: str, cmd: list[str], hung_after_s: float = 10.0):
        self.name, self.cmd = name, cmd
        self.hung_after_s = hung_after_s
        self.pid: int | None = None
        self.restarts = 0
        self.last_cause: str | None = None
        self.after_pid = 0
        self._dead = False
        self._since = time.monotonic()

    def start(self) -> None:
        self._since = time.monotonic()

    @property
    def alive(self) -> bool:
        from cext.shm_core import pid_alive
        return self.pid is not None and not self._dead and pid_alive(self.pid)

    def heartbeat_age(self, beat: dict | None) -> float:
        if beat is not None and beat["pid"] == self.pid:
            return beat["age_s"]
        return time.monotonic() - self._since

    def check(self, beat: dict | None) -> dict | None:
        from cext.shm_core import pid_alive
        if self.pid is not None and not self._dead:
            cause = None
            if not pid_alive(self.pid):
                cause = "exited (its service manager restarts it)"
            elif self.heartbeat_age(beat) > self.hung_after_s:
                cause = f"hung (no heartbeat for {self.heartbeat_age(beat):.1f} s): killed, its service manager restarts it"
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if cause is not None:
                self._dead, self.after_pid = True, self.pid
                self.restarts += 1
                self.last_cause = cause
                self._since = time.monotonic()
                return {"event": "process_died", "process": self.name, "pid": self.pid, "cause": cause,
                        "restarts": self.restarts}
        if beat is not None and beat["pid"] != self.pid and pid_alive(beat["pid"]) and beat["pid"] != self.after_pid:
            first = self.pid is None
            self.pid, self._dead = beat["pid"], False
            self._since = time.monotonic()
            return {"event": "process_up" if first else "process_restarted", "process": self.name, "pid": self.pid,
                    "restarts": self.restarts, "cause": self.last_cause}
        return None

    def stop(self, timeout_s: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout_s`` (not our child: no exit code)."""
        from cext.shm_core import pid_alive
        if not self.alive:
            return None
        try:
            os.kill(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
            while pid_alive(self.pid) and time.monotonic() < deadline:
                time.sleep(0.02)
            if pid_alive(self.pid):
                os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._dead = True
        return None


def exec_child(role: str, manifest: str, wait_s: float = 300.0) -> int:
    """``cryptoscalp child ROLE``: what a systemd unit runs for one process of a group whose
    engine runs with ``--children systemd``. Waits until the engine is up and has written
    the group's manifest, and, if a predecessor of this role died, until the engine has dealt
    with its death (``after_pid``); then replaces itself (exec: same pid, so the unit's
    notify socket and watchdog see the process itself) with the role's process. Exits 1 with
    the reason if that does not happen within ``wait_s``, 3 if the engine runs no such
    process (its unit is not restarted)."""
    import json

    from cext.shm_core import pid_alive
    from engine.feed.ringfeed import segments
    from engine.ipc import segment_not_ready
    from engine.ipc.heartbeat import ROLES, Heartbeats
    if role not in ROLES or role == "engine":
        print(f"child: ROLE must be one of {', '.join(r for r in ROLES if r != 'engine')}", file=sys.stderr)
        return 2
    deadline = time.monotonic() + wait_s
    why = "no manifest yet"
    while time.monotonic() < deadline:
        try:
            with open(manifest) as f:
                m = json.load(f)
        except FileNotFoundError:
            m, why = None, f"no manifest at {manifest} (is the engine up, with --children systemd?)"
        except ValueError as e:
            m, why = None, f"manifest {manifest}: {e}"
        if m is not None:
            r = m["roles"].get(role)
            if not pid_alive(int(m["engine_pid"])):
                why = f"the manifest's engine (pid {m['engine_pid']}) is gone"
            elif r is None:                 # exit 3: a unit with RestartPreventExitStatus=3 stays down
                print(f"child {role}: the engine runs no {role} process (roles: {', '.join(m['roles'])})",
                      file=sys.stderr)
                return 3
            else:
                prev = 0
                try:
                    hb = Heartbeats.attach(segments(m["group"])[2], notify=False)
                    beat = hb.read(role)
                    hb.close()
                    prev = beat["pid"] if beat else 0
                except Exception as e:
                    if not segment_not_ready(e):
                        raise
                if prev and not pid_alive(prev) and prev != r["after_pid"]:
                    why = f"the engine has not yet dealt with the death of {role} pid {prev}"
                elif prev and pid_alive(prev):
                    why = f"a {role} process (pid {prev}) is still running"
                else:
                    env = dict(os.environ, **r.get("env", {}))
                    argv = [sys.executable, "-m", r["module"], *r["args"]]
                    sys.stdout.flush()
                    os.execve(sys.executable, argv, env)
        time.sleep(0.2)
    print(f"child {role}: gave up after {wait_s:g} s: {why}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(supervise(sys.argv[1:]))
