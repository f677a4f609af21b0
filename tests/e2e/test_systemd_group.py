"""One systemd unit per process, emulated: the engine runs with ``--children systemd`` and
starts none of its processes; each is started as its unit would start it (``cryptoscalp
child ROLE``, with its own NOTIFY_SOCKET) and, after kill -9, restarted at once as
``Restart=always`` would, before the engine has noticed the death. The launcher holds the
new gateway until the engine has dealt with the old one (HALTED, its orders in flight
settled), then trading resumes; each process speaks the notify protocol (READY, WATCHDOG);
at the stop the engine ends its processes (exit 0) and the journal agrees with the venue."""
import json
import os
import signal
import socket
import subprocess
import threading

from test_admin import admin
from test_kill9 import CLI, Lines, entries, fills, kill, show, wait_for
from test_split import events, journal_agrees_with_venue

from cext.shm_core import find_segments, pid_alive
from engine.journal.journal import RK_ORDER
from engine.venues.sim.run import SimProcess
from engine.venues.sim.server import TEST_API_KEY, TEST_API_SECRET

ROLES = ("feed", "brain", "gateway")


class Unit:
    """What systemd does for one Type=notify unit running `cryptoscalp child ROLE`."""

    def __init__(self, role, manifest, tmp, env):
        self.role, self.manifest, self.env = role, manifest, env
        self.path = str(tmp / f"{role}.notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.log = open(tmp / f"{role}.log", "a")
        self.msgs = []
        self.closed = False
        threading.Thread(target=self._listen, daemon=True).start()     # systemd reads its socket all along
        self.start()

    def _listen(self):
        while not self.closed:
            try:
                self.msgs.append(self.sock.recv(4096).decode())
            except (socket.timeout, OSError):
                pass

    def start(self):
        self.proc = subprocess.Popen([CLI, "child", self.role, "--manifest", self.manifest, "--wait-s", "120"],
                                     env=dict(self.env, NOTIFY_SOCKET=self.path), stdout=self.log,
                                     stderr=subprocess.STDOUT)

    def notes(self):
        return list(self.msgs)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.closed = True
        self.sock.close()
        self.log.close()


def test_4proc_with_one_unit_per_process(tmp_path):
    sim = SimProcess(CLI, speed=10, seed=13, faults="ack_delay_ms=100")
    port = sim.port
    eng = out = None
    units = {}
    group = f"u{os.getpid()}"
    manifest = str(tmp_path / "group.json")
    try:
        j = str(tmp_path / "journal")
        ep = f"ipc://{tmp_path / 'admin.sock'}"
        env = dict(os.environ, CRYPTOSCALP_API_KEY=TEST_API_KEY, CRYPTOSCALP_API_SECRET=TEST_API_SECRET)
        env.pop("NOTIFY_SOCKET", None)
        eng = subprocess.Popen([CLI, "run", "--topology", "4proc", "--children", "systemd", "--group", group,
                                "--manifest", manifest, "--venue", f"http://127.0.0.1:{port}", "--journal", j,
                                "--admin", ep, "--metrics-port", "-1", "--log-format", "text",
                                "--feed-max-future-ms", "0", "--limit", "max_consecutive_losses=1000000"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        out = Lines(eng.stdout)
        for role in ROLES:               # started with the engine, as the target starts every unit
            units[role] = Unit(role, manifest, tmp_path, env)
        wait_for(lambda: len(fills(entries(j))) >= 2, 300, "two fills")
        assert os.stat(manifest).st_mode & 0o777 == 0o600
        m = json.load(open(manifest))
        assert set(m["roles"]) == set(ROLES) and m["group"] == group and m["engine_pid"] == eng.pid
        for role in ROLES:                # systemd is their parent: nobody to die with
            args = m["roles"][role]["args"]
            assert args[args.index("--parent") + 1] == "0" and TEST_API_SECRET not in " ".join(args)
        st = admin(ep, "status")
        procs = {p["name"]: p for p in st["processes"]}
        assert set(procs) == {"engine", *ROLES}
        for role in ROLES:               # exec: the unit's main pid is the process itself
            assert procs[role]["pid"] == units[role].proc.pid and procs[role]["alive"], role
            notes = units[role].notes()
            assert notes[0] == "READY=1" and notes.count("WATCHDOG=1") >= 1, (role, notes[:5])
        ev = events(j)
        assert {x["process"] for x in ev if x["event"] == "process_awaited"} == set(ROLES)
        assert {x["process"] for x in ev if x["event"] == "process_up"} == set(ROLES)

        # kill -9 the gateway; its unit restarts it at once (Restart=always, before the engine noticed)
        old = units["gateway"].proc.pid
        units["gateway"].proc.kill()
        units["gateway"].proc.wait()
        units["gateway"].start()
        down = wait_for(lambda: [x for x in events(j) if x["event"] == "gateway_down"], 30, "the gateway's death")[0]
        wait_for(lambda: [x for x in events(j) if x["event"] == "process_restarted" and x["process"] == "gateway"], 60,
                 "the new gateway")
        ev = events(j)
        i_down = next(k for k, x in enumerate(ev) if x["event"] == "gateway_down")
        i_new = next(k for k, x in enumerate(ev) if x["event"] == "process_restarted" and x["process"] == "gateway")
        assert i_down < i_new                     # the successor ran only after the engine dealt with the death
        assert [x for x in ev[i_down:] if x["event"] == "recovered"] or wait_for(
            lambda: [x for x in events(j)[i_down:] if x["event"] == "recovered"], 60, "the venue resync")
        n = len([e for e in entries(j) if e.kind == RK_ORDER and int(e.record()["t_send"])])
        wait_for(lambda: len([e for e in entries(j) if e.kind == RK_ORDER and int(e.record()["t_send"])]) >= n + 4, 120,
                 "orders through the new gateway")
        st = admin(ep, "status")
        gw = next(p for p in st["processes"] if p["name"] == "gateway")
        assert gw["pid"] == units["gateway"].proc.pid != old and gw["restarts"] == 1 and gw["alive"]
        assert st["trading_state"] == "ACTIVE"
        print(f"in flight at the kill: {len(down['unsure_orders'])}")

        eng.send_signal(signal.SIGTERM)
        assert eng.wait(60) == 0
        for role in ROLES:                        # ended by the engine: exit 0 (a unit does not restart it)
            assert units[role].proc.wait(10) == 0, role
        ev = journal_agrees_with_venue(j, port)
        assert sorted(x["process"] for x in ev if x["event"] == "process_stopped") == sorted(ROLES)
        assert not os.path.exists(manifest)
        assert find_segments(f"/cs.{group}.") == [], "the stopped group left segments behind"
        # a unit started now (Restart=always) waits for an engine, then gives up with the reason
        r = subprocess.run([CLI, "child", "brain", "--manifest", manifest, "--wait-s", "1"], capture_output=True,
                           text=True, env=env, timeout=60)
        assert r.returncode == 1 and "no manifest" in r.stderr
    except BaseException:
        show(sim, out)
        for role, u in units.items():
            print(f"--- {role} ---\n" + open(tmp_path / f"{role}.log").read()[-3000:])
        raise
    finally:
        kill(eng)
        for u in units.values():
            u.close()
        for seg in find_segments(f"/cs.{group}."):
            os.unlink("/dev/shm/" + seg.lstrip("/"))
        sim.close()
        assert not [u for u in units.values() if pid_alive(u.proc.pid)]
